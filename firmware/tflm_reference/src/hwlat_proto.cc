#include "hwlat_proto.h"

namespace hwlat {

uint32_t crc32(const uint8_t* data, size_t n, uint32_t crc) {
  // Bitwise IEEE 802.3 CRC-32 (zlib.crc32 compatible); no table: saves 1 KB of flash.
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) {
    crc ^= data[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

Receiver::Result Receiver::feed(uint8_t b) {
  if (n_ == 0 && b != kMagic0) return kNone;
  if (n_ == 1 && b != kMagic1) { n_ = (b == kMagic0) ? 1 : 0; return kNone; }
  buf_[n_++] = b;
  if (n_ < kHeader) return kNone;
  const uint32_t len = this->len();
  if (kHeader + len + 4 > cap_) { n_ = 0; return kTooLong; }
  if (n_ < kHeader + len + 4) return kNone;
  const uint32_t want = get_u32(buf_ + kHeader + len);
  n_ = 0;
  return crc32(buf_ + 2, kHeader - 2 + len) == want ? kFrame : kCrcError;
}

}  // namespace hwlat
