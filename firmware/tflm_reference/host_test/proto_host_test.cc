// Host build of the firmware's frame receiver and CRC (no TFLM, no board): reads a byte stream on
// stdin and prints one line per event. tests/test_mcu_firmware_proto.py feeds it frames made by
// device_agents/hwlat_serial_proto.py, so the C++ and Python codecs are checked against each other.
#include <cstdio>

#include "hwlat_proto.h"

int main() {
  static uint8_t buf[2048];
  hwlat::Receiver rx(buf, sizeof buf);
  int c;
  while ((c = getchar()) != EOF) {
    switch (rx.feed(static_cast<uint8_t>(c))) {
      case hwlat::Receiver::kFrame:
        printf("frame type=%u seq=%u len=%u crc=%08x\n", rx.type(), rx.seq(), (unsigned)rx.len(),
               (unsigned)hwlat::crc32(rx.payload(), rx.len()));
        break;
      case hwlat::Receiver::kCrcError: printf("crc_error seq=%u\n", rx.seq()); break;
      case hwlat::Receiver::kTooLong: printf("too_long\n"); break;
      case hwlat::Receiver::kNone: break;
    }
  }
  return 0;
}
