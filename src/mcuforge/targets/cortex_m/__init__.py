"""Cortex-M target: arm-none-eabi-gcc builds for Cortex-M4/M7, run bare-metal in QEMU's MPS2 boards
(AN386, AN500) with semihosting, exact instruction counts from mcuforge's own QEMU TCG plugin, and a
code-size report from arm-none-eabi-size.

    from mcuforge.targets.cortex_m import CortexMModel
    m = CortexMModel.build(lib, core="cortex-m7", opt="-O2")
    outputs = m.run([x]); instructions = m.count_instructions([x]); print(m.size_report().lines())
"""
from __future__ import annotations

from .build import CORES, Core, toolchain_missing
from .model import CortexMModel, build_into
from .size import SizeReport

__all__ = ["CORES", "Core", "CortexMModel", "SizeReport", "build_into", "toolchain_missing"]
