// What the protocol loop needs from a board. One board_<name>.cc implements it.
#pragma once
#include <stddef.h>
#include <stdint.h>

void board_init();                         // clocks, UART at HWLAT_BAUD, cycle counter on
int board_read_byte(uint32_t timeout_ms);  // 0..255, or -1 on timeout
void board_write(const uint8_t* data, size_t n);
uint64_t board_cycles();                   // free-running core cycle counter, 64-bit extended
uint32_t board_clock_hz();
uint32_t board_millis();
const char* board_name();
uint32_t board_ram_total();
uint32_t board_ram_used();                 // static RAM in use (.data + .bss), from linker symbols
uint32_t board_flash_total();
uint32_t board_flash_used();               // firmware image size, from linker symbols
