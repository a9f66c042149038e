"""Board profiles: the SRAM, flash, core and clock a compiled model must fit.

`sram_bytes` is the largest *contiguous* RAM block the arena can be placed in, which is what a model's
peak SRAM is checked against; `total_sram_bytes` is all on-chip RAM (they differ where the RAM is split
into separate regions, e.g. the STM32H743's AXI SRAM, D2/D3 SRAMs and TCMs). Figures are from the vendors'
datasheets and reference manuals (STM32F412: DS11139; STM32F74x/75x: RM0385; STM32F76x/77x: RM0410;
STM32H743: DS12110/RM0433; nRF52840: Product Specification v1.7; RP2040: datasheet, Pico board flash).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import McuforgeError

KIB = 1024
MIB = 1024 * 1024

CORTEX_M0PLUS = "cortex-m0plus"
CORTEX_M4 = "cortex-m4"
CORTEX_M7 = "cortex-m7"
CORES_WITH_TARGET = (CORTEX_M4, CORTEX_M7)  # cores `--target` can build and run under QEMU


class BoardError(McuforgeError, ValueError):
    """An unknown board name."""

    exit_code = 2


@dataclass(frozen=True)
class Board:
    name: str  # the --board value, lower case
    mcu: str  # the part, as its vendor writes it
    core: str  # "cortex-m4", "cortex-m7", "cortex-m0plus"
    sram_bytes: int  # largest contiguous RAM block: the arena's budget
    flash_bytes: int  # on-chip flash (RP2040: the external QSPI flash of the Raspberry Pi Pico)
    clock_hz: int  # maximum core clock
    dsp: bool  # Armv7E-M DSP extension (SMLAD, SXTB16, ...): __ARM_FEATURE_DSP
    total_sram_bytes: int  # all on-chip RAM, including regions the arena cannot span
    note: str = ""

    @property
    def target(self) -> str | None:
        """The `--target` that builds for this board's core, or None when mcuforge has no such target."""
        return self.core if self.core in CORES_WITH_TARGET else None

    def cycles_to_ms(self, cycles: int) -> float:
        """Milliseconds for `cycles` core cycles at this board's maximum clock."""
        return cycles / self.clock_hz * 1e3

    def as_json(self) -> dict:
        return {"board": self.name, "mcu": self.mcu, "core": self.core, "sram_bytes": self.sram_bytes,
                "flash_bytes": self.flash_bytes, "clock_hz": self.clock_hz, "dsp": self.dsp,
                "total_sram_bytes": self.total_sram_bytes}


BOARDS: dict[str, Board] = {b.name: b for b in (
    Board("stm32f412", "STM32F412", CORTEX_M4, 256 * KIB, 1 * MIB, 100_000_000, True, 256 * KIB),
    Board("stm32f746", "STM32F746", CORTEX_M7, 320 * KIB, 1 * MIB, 216_000_000, True, 320 * KIB,
          "DTCM 64 KB + SRAM1 240 KB + SRAM2 16 KB, one contiguous block"),
    Board("stm32f765", "STM32F765", CORTEX_M7, 512 * KIB, 2 * MIB, 216_000_000, True, 512 * KIB,
          "DTCM 128 KB + SRAM1 368 KB + SRAM2 16 KB, one contiguous block"),
    Board("stm32h743", "STM32H743", CORTEX_M7, 512 * KIB, 2 * MIB, 480_000_000, True, 1 * MIB,
          "1 MB RAM in separate regions; the arena fits the 512 KB AXI SRAM (DTCM 128 KB, SRAM1-4 352 KB "
          "and ITCM 64 KB are apart); 480 MHz on revision V parts"),
    Board("nrf52840", "nRF52840", CORTEX_M4, 256 * KIB, 1 * MIB, 64_000_000, True, 256 * KIB),
    Board("rp2040", "RP2040", CORTEX_M0PLUS, 264 * KIB, 2 * MIB, 133_000_000, False, 264 * KIB,
          "flash is the Raspberry Pi Pico's external 2 MB QSPI flash; no DSP extension, no --target yet"),
)}

ALIASES = {"f412": "stm32f412", "f746": "stm32f746", "f765": "stm32f765", "h743": "stm32h743",
           "nrf52": "nrf52840", "pico": "rp2040"}


def board_names() -> list[str]:
    return list(BOARDS)


def get_board(name: str) -> Board:
    """The profile for `name` (case-insensitive; vendor suffixes such as 'STM32F746NG' or
    'STM32F746-disco' resolve to their part); BoardError lists the known boards otherwise."""
    key = name.strip().lower().replace("_", "-")
    key = ALIASES.get(key, key)
    if key in BOARDS:
        return BOARDS[key]
    matches = [b for b in BOARDS.values() if key.startswith(b.name)]
    if len(matches) == 1:
        return matches[0]
    listing = ", ".join(f"{b.name} ({b.core}, {b.sram_bytes // KIB} KB SRAM, {b.flash_bytes // KIB} KB flash)"
                        for b in BOARDS.values())
    raise BoardError(f"unknown board '{name}'; known boards: {listing}")
