// NUCLEO-H743ZI2 (STM32H743, Cortex-M7 @ 480 MHz). UART: USART3 on the ST-LINK virtual COM port.
// Expects a CubeMX project providing SystemClock_Config(), MX_USART3_UART_Init() and huart3.
#include "board.h"

#include "stm32h7xx_hal.h"

extern UART_HandleTypeDef huart3;
extern "C" void SystemClock_Config(void);
extern "C" void MX_GPIO_Init(void);
extern "C" void MX_USART3_UART_Init(void);
// Linker-script symbols (STM32CubeIDE defaults).
extern "C" uint32_t _sdata, _ebss, _estack, _sidata, _edata, __FLASH_SIZE__;

static uint32_t g_hi = 0, g_last = 0;

void board_init() {
  HAL_Init();
  SystemClock_Config();
  MX_GPIO_Init();
  MX_USART3_UART_Init();  // baud from CubeMX: set it to HWLAT_BAUD (921600 works on the ST-LINK V3)
  SCB_EnableICache();
  SCB_EnableDCache();
  CoreDebug->DEMCR |= CoreDebug_DEMCR_TRCENA_Msk;  // enable the DWT unit
  DWT->LAR = 0xC5ACCE55;                           // unlock (needed on M7)
  DWT->CYCCNT = 0;
  DWT->CTRL |= DWT_CTRL_CYCCNTENA_Msk;
}

uint64_t board_cycles() {
  // CYCCNT wraps every ~9 s at 480 MHz: extend to 64 bits (called at least once per wrap).
  const uint32_t now = DWT->CYCCNT;
  if (now < g_last) ++g_hi;
  g_last = now;
  return (static_cast<uint64_t>(g_hi) << 32) | now;
}

int board_read_byte(uint32_t timeout_ms) {
  uint8_t b;
  return HAL_UART_Receive(&huart3, &b, 1, timeout_ms) == HAL_OK ? b : -1;
}

void board_write(const uint8_t* data, size_t n) {
  HAL_UART_Transmit(&huart3, const_cast<uint8_t*>(data), static_cast<uint16_t>(n), HAL_MAX_DELAY);
}

uint32_t board_clock_hz() { return HAL_RCC_GetSysClockFreq(); }
uint32_t board_millis() { return HAL_GetTick(); }
const char* board_name() { return "NUCLEO-H743ZI2"; }
uint32_t board_ram_total() { return 512 * 1024; }  // AXI SRAM, where .data/.bss/arena live
uint32_t board_ram_used() {
  return reinterpret_cast<uint32_t>(&_ebss) - reinterpret_cast<uint32_t>(&_sdata);
}
uint32_t board_flash_total() { return 2 * 1024 * 1024; }
uint32_t board_flash_used() {
  return reinterpret_cast<uint32_t>(&_sidata) + (reinterpret_cast<uint32_t>(&_edata) -
         reinterpret_cast<uint32_t>(&_sdata)) - 0x08000000u;
}
