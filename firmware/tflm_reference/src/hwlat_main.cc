// hwlat TFLM reference firmware: receives int8 .tflite kernels over UART, runs them with TFLM's
// MicroInterpreter and reports DWT cycle counts (docs/mcu.md). Board specifics live in board_*.cc.
#include <stdio.h>
#include <string.h>

#include <new>

#include "board.h"
#include "hwlat_proto.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"
#include "tensorflow/lite/schema/schema_utils.h"

#ifndef HWLAT_ARENA_BYTES
#define HWLAT_ARENA_BYTES (256 * 1024)
#endif
#ifndef HWLAT_MODEL_BYTES
#define HWLAT_MODEL_BYTES (128 * 1024)  // uploaded models live in RAM
#endif
#ifndef HWLAT_MAX_PAYLOAD
#define HWLAT_MAX_PAYLOAD 1024
#endif
#ifndef HWLAT_TFLM_VERSION
#define HWLAT_TFLM_VERSION "tflite-micro (unknown commit)"
#endif

using namespace hwlat;

namespace {

alignas(16) uint8_t g_arena[HWLAT_ARENA_BYTES];
alignas(16) uint8_t g_model[HWLAT_MODEL_BYTES];
uint8_t g_rx[kHeader + HWLAT_MAX_PAYLOAD + 4];
uint8_t g_tx[kHeader + HWLAT_MAX_PAYLOAD + 4];
alignas(tflite::MicroInterpreter) uint8_t g_interp_mem[sizeof(tflite::MicroInterpreter)];

using Resolver = tflite::MicroMutableOpResolver<26>;
Resolver g_resolver;
tflite::MicroInterpreter* g_interp = nullptr;
uint32_t g_size = 0, g_crc = 0, g_received = 0, g_arena_used = 0;

void register_ops() {
  // Every op the hwlat kernel exporter emits for int8 kernels (see docs/kernels.md); GELU is
  // included because recent TFLM has it (the pip tflite-micro build does not).
  g_resolver.AddConv2D();
  g_resolver.AddDepthwiseConv2D();
  g_resolver.AddFullyConnected();
  g_resolver.AddBatchMatMul();
  g_resolver.AddAdd();
  g_resolver.AddSub();
  g_resolver.AddMul();
  g_resolver.AddSoftmax();
  g_resolver.AddMaxPool2D();
  g_resolver.AddAveragePool2D();
  g_resolver.AddMean();
  g_resolver.AddReshape();
  g_resolver.AddTranspose();
  g_resolver.AddConcatenation();
  g_resolver.AddPad();
  g_resolver.AddPadV2();
  g_resolver.AddHardSwish();
  g_resolver.AddLogistic();
  g_resolver.AddRelu();
  g_resolver.AddRelu6();
  g_resolver.AddQuantize();
  g_resolver.AddDequantize();
  g_resolver.AddRsqrt();
  g_resolver.AddSquaredDifference();
  g_resolver.AddGelu();
  g_resolver.AddStridedSlice();
}

void send(uint8_t type, uint8_t seq, const uint8_t* payload, uint32_t len) {
  g_tx[0] = kMagic0;
  g_tx[1] = kMagic1;
  g_tx[2] = type;
  g_tx[3] = seq;
  put_u32(g_tx + 4, len);
  if (payload != g_tx + kHeader && len) memcpy(g_tx + kHeader, payload, len);
  put_u32(g_tx + kHeader + len, crc32(g_tx + 2, kHeader - 2 + len));
  board_write(g_tx, kHeader + len + 4);
}

void send_error(uint8_t seq, uint16_t code, const char* text) {
  uint8_t* p = g_tx + kHeader;
  put_u16(p, code);
  size_t n = strlen(text);
  if (n > HWLAT_MAX_PAYLOAD - 2) n = HWLAT_MAX_PAYLOAD - 2;
  memcpy(p + 2, text, n);
  send(kError, seq, p, 2 + n);
}

size_t put_str(uint8_t* p, const char* s) {
  size_t n = strlen(s);
  if (n > 255) n = 255;
  p[0] = static_cast<uint8_t>(n);
  memcpy(p + 1, s, n);
  return n + 1;
}

void unload() {
  if (g_interp) g_interp->~MicroInterpreter();
  g_interp = nullptr;
  g_arena_used = 0;
}

void on_hello(uint8_t seq) {
  uint8_t* p = g_tx + kHeader;
  put_u16(p, kProtoVersion);
  put_u32(p + 2, board_clock_hz());
  put_u32(p + 6, HWLAT_ARENA_BYTES);
  put_u32(p + 10, board_ram_total());
  put_u32(p + 14, board_flash_total());
  put_u32(p + 18, HWLAT_MODEL_BYTES);
  put_u32(p + 22, HWLAT_MAX_PAYLOAD);
  size_t n = 26;
  n += put_str(p + n, board_name());
  n += put_str(p + n, HWLAT_TFLM_VERSION);
  send(kHelloR, seq, p, n);
}

void on_loaded(uint8_t seq) {
  uint8_t* p = g_tx + kHeader;
  put_u32(p, g_size);
  put_u32(p + 4, g_arena_used);
  put_u16(p + 8, static_cast<uint16_t>(g_interp->inputs_size()));
  put_u16(p + 10, static_cast<uint16_t>(g_interp->outputs_size()));
  send(kLoadedR, seq, p, 12);
}

void on_upload_end(uint8_t seq) {
  if (g_interp && crc32(g_model, g_size) == g_crc) return on_loaded(seq);  // retransmitted END
  if (g_received != g_size) return send_error(seq, kUploadSequence, "upload incomplete");
  if (crc32(g_model, g_size) != g_crc) return send_error(seq, kModelCrc, "model CRC mismatch after upload");
  const tflite::Model* model = tflite::GetModel(g_model);
  if (model->version() != TFLITE_SCHEMA_VERSION) return send_error(seq, kBadModel, "unsupported schema version");
  // Check operators first so the host learns *which* op is missing, not just "allocate failed".
  auto* codes = model->operator_codes();
  for (size_t i = 0; codes && i < codes->size(); ++i) {
    const tflite::BuiltinOperator op = tflite::GetBuiltinCode(codes->Get(i));
    if (op == tflite::BuiltinOperator_CUSTOM || g_resolver.FindOp(op) == nullptr) {
      char msg[96];
      snprintf(msg, sizeof msg, "operator %s is not in this TFLM build", tflite::EnumNameBuiltinOperator(op));
      return send_error(seq, kUnsupportedOp, msg);
    }
  }
  g_interp = new (g_interp_mem) tflite::MicroInterpreter(model, g_resolver, g_arena, HWLAT_ARENA_BYTES);
  if (g_interp->AllocateTensors() != kTfLiteOk) {
    unload();
    char msg[96];
    snprintf(msg, sizeof msg, "AllocateTensors failed with a %u-byte arena", (unsigned)HWLAT_ARENA_BYTES);
    return send_error(seq, kArenaTooSmall, msg);
  }
  g_arena_used = g_interp->arena_used_bytes();
  on_loaded(seq);
}

void fill_inputs(uint32_t seed) {
  uint32_t x = seed ? seed : 0x9E3779B9u;  // xorshift32 must not start at 0
  for (size_t i = 0; i < g_interp->inputs_size(); ++i) {
    TfLiteTensor* t = g_interp->input(i);
    if (t->type == kTfLiteFloat32) {
      float* f = t->data.f;
      for (size_t k = 0; k < t->bytes / 4; ++k) {
        x ^= x << 13; x ^= x >> 17; x ^= x << 5;
        f[k] = (x >> 8) * (2.0f / 16777216.0f) - 1.0f;  // U(-1, 1)
      }
    } else {
      for (size_t k = 0; k < t->bytes; ++k) {
        x ^= x << 13; x ^= x >> 17; x ^= x << 5;
        t->data.uint8[k] = static_cast<uint8_t>(x);
      }
    }
  }
}

void on_run(uint8_t seq, const uint8_t* p, uint32_t len) {
  if (len < 12) return send_error(seq, kBadFrame, "RUN needs n, warmup, seed");
  if (!g_interp) return send_error(seq, kNoModel, "no model loaded: upload one first");
  const uint32_t n = get_u32(p), warmup = get_u32(p + 4), seed = get_u32(p + 8);
  if (n > (HWLAT_MAX_PAYLOAD - 4) / 12) return send_error(seq, kBadFrame, "RUN n exceeds one frame");
  fill_inputs(seed);
  for (uint32_t i = 0; i < warmup; ++i) {
    if (g_interp->Invoke() != kTfLiteOk) return send_error(seq, kInvokeFailed, "invoke failed");
  }
  uint8_t* out = g_tx + kHeader;
  put_u32(out, n);
  const uint32_t per_us = board_clock_hz() / 1000000u;
  for (uint32_t i = 0; i < n; ++i) {
    const uint64_t c0 = board_cycles();
    const TfLiteStatus st = g_interp->Invoke();
    const uint64_t dc = board_cycles() - c0;
    if (st != kTfLiteOk) return send_error(seq, kInvokeFailed, "invoke failed");
    put_u64(out + 4 + 12 * i, dc);
    put_u32(out + 12 + 12 * i, static_cast<uint32_t>(per_us ? dc / per_us : 0));
  }
  send(kRunR, seq, out, 4 + 12 * n);
}

void on_stats(uint8_t seq) {
  uint8_t* p = g_tx + kHeader;
  put_u32(p, HWLAT_ARENA_BYTES);
  put_u32(p + 4, g_interp ? g_interp->arena_used_bytes() : 0);
  put_u32(p + 8, board_ram_used());
  put_u32(p + 12, board_ram_total());
  put_u32(p + 16, board_flash_used());
  put_u32(p + 20, board_flash_total());
  put_u32(p + 24, g_interp ? g_size : 0);
  send(kStatsR, seq, p, 28);
}

void dispatch(uint8_t type, uint8_t seq, const uint8_t* p, uint32_t len) {
  switch (type) {
    case kHello: return on_hello(seq);
    case kUploadBegin: {
      if (len < 8) return send_error(seq, kBadFrame, "UPLOAD_BEGIN needs size, crc");
      const uint32_t size = get_u32(p);
      if (size > HWLAT_MODEL_BYTES) return send_error(seq, kModelTooLarge, "model larger than the model buffer");
      unload();
      g_size = size;
      g_crc = get_u32(p + 4);
      g_received = 0;
      return send(kOk, seq, nullptr, 0);
    }
    case kUploadChunk: {
      if (len < 4) return send_error(seq, kBadFrame, "UPLOAD_CHUNK needs an offset");
      const uint32_t off = get_u32(p), n = len - 4;
      if (off == g_received && off + n <= g_size) {
        memcpy(g_model + off, p + 4, n);
        g_received += n;
      } else if (!(off + n == g_received && memcmp(g_model + off, p + 4, n) == 0)) {
        return send_error(seq, kUploadSequence, "chunk offset does not follow the received bytes");
      }
      uint8_t* r = g_tx + kHeader;
      put_u32(r, g_received);
      return send(kOk, seq, r, 4);
    }
    case kUploadEnd: return on_upload_end(seq);
    case kRun: return on_run(seq, p, len);
    case kStats: return on_stats(seq);
    case kReset: unload(); g_received = g_size = 0; return send(kOk, seq, nullptr, 0);
    default: return send_error(seq, kUnknownCmd, "unknown command");
  }
}

}  // namespace

int main() {
  board_init();
  register_ops();
  Receiver rx(g_rx, sizeof g_rx);
  uint32_t last = board_millis();
  for (;;) {
    board_cycles();  // keep the 64-bit cycle extension current while idle
    const int b = board_read_byte(10);
    if (b < 0) {
      if (!rx.idle() && board_millis() - last > 500) rx.reset();  // stale partial frame
      continue;
    }
    last = board_millis();
    switch (rx.feed(static_cast<uint8_t>(b))) {
      case Receiver::kFrame: dispatch(rx.type(), rx.seq(), rx.payload(), rx.len()); break;
      case Receiver::kCrcError: send_error(rx.seq(), kBadCrc, "CRC mismatch"); break;
      case Receiver::kTooLong: send_error(0, kBadFrame, "frame longer than HWLAT_MAX_PAYLOAD"); break;
      case Receiver::kNone: break;
    }
  }
}
