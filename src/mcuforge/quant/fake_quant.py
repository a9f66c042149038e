"""int8 fake quantization in torch that rounds as the integer kernels do (used by `qat`).

An integer kernel's output code is clamp(zero_point + MultiplyByQuantizedMultiplier(acc, M, shift)).
MultiplyByQuantizedMultiplier rounds twice, halves away from zero each time: the high multiply leaves
multiples of 2^shift codes (for a right shift), then the shift rounds to a whole code. So a real value
just below a half code can still round up. `fake_quantize` reproduces that with `steps_per_code` = 2^-shift
(`OpGrid`), computed from the same float32 scales and the same `intmath.quantize_multiplier` as TFLM's
Prepare, for CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, RELU, LEAKY_RELU, MEAN, ADD and SUB (the sum's
multiplier after the left shift of 20; the inputs' rescaling is exact to 2^-20). Elsewhere real / scale
is snapped to a 1/4096 grid, which removes float32 noise: average pooling divides sums of integer codes,
so its exact ties must stay ties. Graph inputs round as `ptq.quantize_input` does.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
import torch

from ..ir import Graph, Op, QuantParams
from . import intmath

SNAP = 4096.0  # default steps per code of the first rounding
ADD_LEFT_SHIFT = 20  # operators.add.LEFT_SHIFT: TFLM's headroom shift of int8 ADD and SUB
INT8_MIN, INT8_MAX = -128, 127


class Rounding(Enum):
    """How the integer path rounds a tensor's real value to its code."""

    INPUT = "input"  # ptq.quantize_input: float32 real / scale, halves away from zero, plus the zero point
    REQUANTIZE = "requantize"  # MultiplyByQuantizedMultiplier: round(real / scale) + zero point
    POOL = "pool"  # average pooling divides raw codes: round(real / scale + zero point)


def _round_half_away(v: torch.Tensor) -> torch.Tensor:
    return torch.sign(v) * torch.floor(torch.abs(v) + 0.5)


def _codes(x: torch.Tensor, scale: float, zero_point: int, rounding: Rounding,
           steps_per_code: torch.Tensor | float) -> torch.Tensor:
    """Unclamped int8 codes of real values x (float32 for INPUT, float64 otherwise)."""
    if rounding is Rounding.INPUT:
        return _round_half_away(x.to(torch.float32) / float(np.float32(scale))) + zero_point
    fine = _round_half_away(x.detach().to(torch.float64) / scale * steps_per_code) / steps_per_code
    before = zero_point if rounding is Rounding.POOL else 0
    return _round_half_away(fine + before) + (zero_point - before)


class _FakeQuantize(torch.autograd.Function):
    """(clamp(code, -128, 127) - zero point) * scale; gradient 1 where the code was inside [-128, 127]."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, scale: float, zero_point: int, rounding: Rounding,
                steps_per_code: torch.Tensor | float) -> torch.Tensor:
        codes = _codes(x, scale, zero_point, rounding, steps_per_code)
        ctx.save_for_backward((codes >= INT8_MIN) & (codes <= INT8_MAX))
        return ((codes.clamp(INT8_MIN, INT8_MAX) - zero_point) * float(np.float32(scale))).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None, None, None]:
        (inside,) = ctx.saved_tensors
        return grad * inside.to(grad.dtype), None, None, None, None


def fake_quantize(x: torch.Tensor, q: QuantParams, rounding: Rounding = Rounding.REQUANTIZE,
                  steps_per_code: torch.Tensor | float = SNAP) -> torch.Tensor:
    """x rounded to the per-tensor int8 grid of `q` and back, with the straight-through gradient.

    `steps_per_code` (a number, or a tensor broadcasting against x) is the grid of the first rounding of
    real / scale (see the module docstring)."""
    return _FakeQuantize.apply(x, q.s, q.zp, rounding, steps_per_code)


def fake_quantize_constant(real: torch.Tensor, scales: np.ndarray, axis: int | None,
                           lo: float, hi: float) -> torch.Tensor:
    """real rounded (halves to even, as numpy) to multiples of its scales (one per index of `axis`, or
    one for all), in steps clamped to [lo, hi]; the gradient passes straight through."""
    shape = [1] * real.ndim
    if axis is not None:
        shape[axis] = -1
    step = torch.as_tensor(np.asarray(scales, np.float64), device=real.device).reshape(shape)
    steps = torch.round(real.detach().to(torch.float64) / step).clamp(lo, hi)
    return real + ((steps * step).to(real.dtype) - real).detach()


# ---------------------------------------------------------------- the integer kernels' first rounding


@dataclass(frozen=True)
class OpGrid:
    """Steps per code of an op's first rounding, for outputs >= 0 and < 0 (they differ for LEAKY_RELU);
    one per output channel (last axis) or one for all."""

    positive: np.ndarray
    negative: np.ndarray

    @staticmethod
    def of(reals: np.ndarray) -> OpGrid:
        steps = _steps(reals)
        return OpGrid(steps, steps)

    def for_values(self, values: torch.Tensor) -> torch.Tensor:
        positive = torch.as_tensor(self.positive, device=values.device)
        if self.negative is self.positive:
            return positive
        return torch.where(values >= 0, positive, torch.as_tensor(self.negative, device=values.device))


def _steps(reals: np.ndarray, extra_right_shift: int = 0) -> np.ndarray:
    """2^r for each real multiplier, r the right shift of its quantized form (TFLM's QuantizeMultiplier)."""
    _, shifts = intmath.quantize_multipliers(np.abs(np.asarray(reals, np.float64)))
    return np.exp2(np.maximum(extra_right_shift - shifts, 0)).astype(np.float64)


def _f32(x: float) -> np.float32:
    return np.float32(x)


def layer_grid(input_scale: float, weight_scales: np.ndarray, output_scale: float) -> OpGrid:
    """CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED: double(in_s) * double(w_s) / double(out_s)."""
    return OpGrid.of(float(_f32(input_scale)) * weight_scales.astype(np.float32).astype(np.float64)
                     / float(_f32(output_scale)))


def op_grid(op: Op, graph: Graph, params: Mapping[str, QuantParams]) -> OpGrid | None:
    """The grid of a RELU, LEAKY_RELU, MEAN, ADD or SUB (their TFLM Prepare's multipliers); None for other
    ops."""
    if op.kind not in ("RELU", "LEAKY_RELU", "MEAN", "ADD", "SUB"):
        return None
    si, so = _f32(params[op.inputs[0]].s), _f32(params[op.outputs[0]].s)
    if op.kind in ("ADD", "SUB"):  # operators.add.prepare: the sum's multiplier, after a left shift of 20
        if len(op.inputs) < 2 or op.inputs[1] not in params:
            return None
        twice_max = 2.0 * float(max(si, _f32(params[op.inputs[1]].s)))
        return OpGrid.of(np.array([twice_max / ((1 << ADD_LEFT_SHIFT) * float(so))]))
    if op.kind == "RELU":
        return OpGrid.of(np.array([float(si) / float(so)]))
    if op.kind == "LEAKY_RELU":
        alpha = _f32(op.attrs.get("alpha", 0.2))
        return OpGrid(_steps(np.array([float(si / so)])), _steps(np.array([float(si * alpha / so)])))
    real = float(np.float64(si) / np.float64(so))
    shape = graph[op.inputs[0]].shape
    count = int(np.prod([shape[a] for a in {int(a) % len(shape) for a in op.attrs["axes"]}]))
    _, shift = intmath.quantize_multiplier(real)
    divided = min(count.bit_length() - 1, 32, 31 + shift)  # MEAN folds 1/count into the multiplier
    return OpGrid(*[_steps(np.array([real]), divided)] * 2)
