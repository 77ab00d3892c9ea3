// hwlat MCU serial protocol v1 (docs/mcu.md). Mirrors device_agents/hwlat_serial_proto.py:
// keep the numbers in sync with it.
#pragma once
#include <stddef.h>
#include <stdint.h>

namespace hwlat {

constexpr uint16_t kProtoVersion = 1;
constexpr uint8_t kMagic0 = 0xA5, kMagic1 = 0x5A;
constexpr size_t kHeader = 2 + 1 + 1 + 4;  // magic, type, seq, len

enum Cmd : uint8_t {
  kHello = 0x01, kUploadBegin = 0x02, kUploadChunk = 0x03, kUploadEnd = 0x04,
  kRun = 0x05, kStats = 0x06, kReset = 0x07,
  kOk = 0x80, kHelloR = 0x81, kLoadedR = 0x84, kRunR = 0x85, kStatsR = 0x86, kError = 0xFF,
};

enum Err : uint16_t {
  kBadCrc = 1, kBadFrame = 2, kUnknownCmd = 3, kModelTooLarge = 4, kUploadSequence = 5,
  kModelCrc = 6, kBadModel = 7, kUnsupportedOp = 8, kArenaTooSmall = 9, kNoModel = 10,
  kInvokeFailed = 11, kInternal = 12,
};

uint32_t crc32(const uint8_t* data, size_t n, uint32_t crc = 0);

// Little-endian helpers for payloads.
inline void put_u16(uint8_t* p, uint16_t v) { p[0] = v; p[1] = v >> 8; }
inline void put_u32(uint8_t* p, uint32_t v) { for (int i = 0; i < 4; ++i) p[i] = v >> (8 * i); }
inline void put_u64(uint8_t* p, uint64_t v) { for (int i = 0; i < 8; ++i) p[i] = v >> (8 * i); }
inline uint32_t get_u32(const uint8_t* p) {
  return p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<uint32_t>(p[3]) << 24);
}

// Incremental frame receiver: feed bytes, it reports complete frames (CRC checked).
class Receiver {
 public:
  enum Result { kNone, kFrame, kCrcError, kTooLong };
  Receiver(uint8_t* buf, size_t cap) : buf_(buf), cap_(cap) {}
  Result feed(uint8_t b);
  void reset() { n_ = 0; }
  bool idle() const { return n_ == 0; }
  uint8_t type() const { return buf_[2]; }
  uint8_t seq() const { return buf_[3]; }
  uint32_t len() const { return get_u32(buf_ + 4); }
  const uint8_t* payload() const { return buf_ + kHeader; }

 private:
  uint8_t* buf_;
  size_t cap_;
  size_t n_ = 0;
};

}  // namespace hwlat
