"""Code-size report of a Cortex-M build: the model's code (generated C and the inlined kernels) apart from
its weights, as linked (the input sections the linker map places, so that functions the linker drops with
--gc-sections, e.g. unused API helpers, do not count), and the linked image as a whole (arm-none-eabi-size)."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

from .build import Build, _run, tool

HARNESS_OBJECTS = ("mcu_harness.o", "mcu_startup.o")


@dataclass(frozen=True)
class Sections:
    text: int = 0  # machine code (with its literal pools)
    rodata: int = 0  # const data
    data: int = 0  # initialised RAM (its initial values also take flash)
    bss: int = 0  # zeroed RAM

    def __add__(self, other: "Sections") -> "Sections":
        return Sections(self.text + other.text, self.rodata + other.rodata, self.data + other.data,
                        self.bss + other.bss)


_KINDS = (("text", (".text", ".vectors")), ("rodata", (".rodata", ".ARM.exidx")), ("data", (".data",)),
          ("bss", (".bss", "COMMON")))


def _kind(section: str) -> str | None:
    for kind, prefixes in _KINDS:
        if section.startswith(prefixes):
            return kind
    return None


NOT_LOADED = (".comment", ".ARM.attributes", ".debug", ".note", ".stab", ".gnu")  # no flash, no RAM
_MAP_LINE = re.compile(r"^ (\S+)?\s+0x([0-9a-fA-F]+)\s+0x([0-9a-fA-F]+)\s+(\S+\.o)\s*$")
_MAP_NAME = re.compile(r"^ (\S+)\s*$")


def linked_sizes(map_path: Path) -> dict[str, Sections]:
    """Per object file, the sizes of its input sections the linker placed (GNU ld map, after "Linker script
    and memory map": the discarded sections are listed before it). Sections of other kinds (a custom
    section name) count as `other`: returned under the key "<object>:other" as rodata."""
    text = map_path.read_text(errors="replace")
    start = text.find("Linker script and memory map")
    out: dict[str, dict[str, int]] = {}
    pending = None
    for line in text[start:].splitlines():
        m = _MAP_LINE.match(line)
        if m:
            name, size, obj = m.group(1) or pending, int(m.group(3), 16), m.group(4)
            pending = None
            if not name or not size or name.startswith(NOT_LOADED):
                continue
            kind = _kind(name)
            key = obj if kind else obj + ":other"
            sizes = out.setdefault(key, {"text": 0, "rodata": 0, "data": 0, "bss": 0})
            sizes[kind or "rodata"] += size
            continue
        n = _MAP_NAME.match(line)
        pending = n.group(1) if n and not n.group(1).startswith("*") else None
    return {obj: Sections(**sizes) for obj, sizes in out.items()}


def section_sizes(path: Path) -> Sections:
    """Sizes by kind of section, summing .text.*, .rodata.* etc. (-ffunction-sections/-fdata-sections)."""
    out = _run([tool("arm-none-eabi-size"), "-A", "-d", str(path)], path.parent, "arm-none-eabi-size")
    sizes = {"text": 0, "rodata": 0, "data": 0, "bss": 0}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 2 or not parts[1].isdigit():
            continue
        name, size = parts[0], int(parts[1])
        kind = _kind(name)
        if kind:
            sizes[kind] += size
    return Sections(**sizes)


@dataclass(frozen=True)
class SizeReport:
    """Bytes of a Cortex-M build. `code_bytes` + `const_bytes` is the model's code without its weights."""

    model: str
    core: str
    opt: str
    code_bytes: int  # .text of the model's objects: the generated calls and the kernels inlined into them
    const_bytes: int  # .rodata of the model's code (small tables), not the weights
    weights_bytes: int  # .rodata of <name>_weights.o: weights, biases, requantization constants
    data_bytes: int  # .data of the model's objects
    bss_bytes: int  # .bss of the model's objects: the arena
    image_flash_bytes: int  # the linked ELF (harness, startup, libc included): text + rodata + data
    image_ram_bytes: int  # the linked ELF: data + bss (the stack comes on top)

    @property
    def model_code_bytes(self) -> int:
        """Flash of the model without its weights: code, its constant tables and initialised data."""
        return self.code_bytes + self.const_bytes + self.data_bytes

    def as_json(self) -> dict:
        return {**asdict(self), "model_code_bytes": self.model_code_bytes}

    def lines(self) -> list[str]:
        return [f"{self.core} code size ({self.opt}, arm-none-eabi-gcc):",
                f"  model code (.text)        {self.code_bytes:>10,} B",
                f"  model constants (.rodata) {self.const_bytes:>10,} B",
                f"  model .data               {self.data_bytes:>10,} B",
                f"  weights (.rodata)         {self.weights_bytes:>10,} B",
                f"  arena and .bss            {self.bss_bytes:>10,} B",
                f"  whole image: flash {self.image_flash_bytes:,} B, RAM {self.image_ram_bytes:,} B "
                "(with harness, startup and libc)"]


def size_report(build: Build, model: str) -> SizeReport:
    weights_obj = f"{model}_weights.o"
    linked = linked_sizes(build.folder / "model.map")
    model_objs = [o.name for o in build.objects() if o.name not in HARNESS_OBJECTS and o.name != weights_obj]
    code = sum((linked.get(o, Sections()) for o in model_objs), Sections())
    weights = linked.get(weights_obj, Sections()) + linked.get(weights_obj + ":other", Sections())
    code = code + Sections(bss=sum(linked.get(o + ":other", Sections()).rodata for o in model_objs))  # a placed arena
    image = section_sizes(build.elf)
    return SizeReport(model=model, core=build.core.name, opt=build.opt, code_bytes=code.text,
                      const_bytes=code.rodata, weights_bytes=weights.rodata + weights.text + weights.data,
                      data_bytes=code.data, bss_bytes=code.bss + weights.bss,
                      image_flash_bytes=image.text + image.rodata + image.data,
                      image_ram_bytes=image.data + image.bss)
