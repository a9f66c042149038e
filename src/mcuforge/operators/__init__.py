"""The operator registry: the operators that live in one module each (see base.Operator); a module defines
OPERATOR, or OPERATORS for a family that shares its code (PACK and UNPACK).

Adding an operator: its module in this package, its C kernel (engine/runtime/mcu_<op>_<type>.h), its
tests, and one entry in MODULES. Importing `mcuforge.engine` installs them; the reader, the writer and
validation call `install()` too (it runs once), since they work without the engine.
Modules that several operators share their code from: base (Operator), binary (the broadcast of the binary
elementwise operators), convolution (the weight-product operators' Prepare, geometry and reading) and
lowering (what the reader lowers into canonical operators).
"""
from __future__ import annotations

import importlib

MODULES = (
    "conv_2d",
    "depthwise_conv_2d",
    "fully_connected",
    "conv_accumulate",
    "add",
    "mul",
    "relu",
    "quantize",
    "pad",
    "reshape",
    "concatenation",
    "strided_slice",
    "paste",
    "svdf",
    "lstm",
    "pack",
    "split",
    "gather",
    "tile",
    "resize_bilinear",
    "transpose_conv",
    "batch_matmul",
    "hard_swish",
    "leaky_relu",
    "resize_nearest",
    "relu6",
    "logistic_tanh",
    "reduce",
    "transpose",
    "minmax",
    "softmax",
    "pool",
)

_installed: dict = {}  # kind -> Operator, once installed


def install() -> None:
    """Enter every registered operator in the stages' tables (idempotent)."""
    if _installed:
        return
    for name in MODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        for operator in getattr(module, "OPERATORS", ()) or (module.OPERATOR,):
            operator.install()
            _installed[operator.kind] = operator


def registered() -> dict:
    """The registered operators by kind (installed first)."""
    install()
    return dict(_installed)
