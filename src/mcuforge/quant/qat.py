"""Quantization-aware training: fine-tune a PyTorch model under int8 fake quantization, then convert it.

    qat = prepare_qat(model, torch.randn(1, 1, 8, 8), calibration=x_train)  # x_train: IR layout (NHWC)
    optimizer = torch.optim.Adam(qat.parameters(), lr=1e-3)
    for x, y in batches:                           # x: IR layout, e.g. channels_last(x_nchw)
        loss = F.cross_entropy(qat(x), y)
        optimizer.zero_grad(); loss.backward(); optimizer.step()
    int8_graph = convert(qat.eval())               # compile_model(int8_graph), ptq.quantize_input, ...

The model is captured with `from_torch` (float IR: NHWC, batch 1, batch norm folded into the convolution
before it, activations fused). Batch-norm statistics are therefore frozen at their eval-mode values and the
folded weights are what trains: the usual "fold BN, then fine-tune" QAT. The QATModel runs that graph in
torch (`TorchGraph`) with int8 fake quantization (`fake_quant`) that follows the integer kernels:

- Weights: per output channel (CONV_2D, DEPTHWISE_CONV_2D) or per tensor (FULLY_CONNECTED) symmetric
  int8 in [-127, 127], with the scales `quantize_with_ranges` picks (`layer_weight_scales`); or, with
  `weights=` int4, ternary, pow2 or codebook:B (for all layers or per layer), the scales and codes of that
  format (`weight_grids`), which `convert` writes into the int8 graph and marks with the format, so the
  engine stores them in it. A codebook's table is a parameter that trains (`tables`). Biases: rounded to
  int32 steps of input_scale * weight_scale. Gradients pass straight through both.
- Activations: every tensor the graph computes, and its inputs, becomes (clamp(code, -128, 127) -
  zero_point) * scale with the parameters `activation_params` gives for the current ranges, so shared
  groups (pools, reshapes, concatenations), fixed SOFTMAX / LOGISTIC / TANH outputs and TFLite's scale
  floors are the integer graph's. The gradient is 1 where the code is inside [-128, 127], 0 where it was
  clamped. A fused RELU / RELU6 acts before the rounding, which equals the kernel's clamp of the code.
- Rounding is the integer path's, double rounding of the requantization included (see `fake_quant`):
  on small CNNs (convolutions, depthwise, residual adds, pools, fully connected) the fake-quantized
  outputs equal the int8 graph's dequantized outputs. SOFTMAX, LOGISTIC, TANH and HARD_SWISH use
  fixed-point approximations in the integer kernels; there the two can differ by a code.

Ranges: seeded with the min and max over `calibration` when given, else from the first training batch;
tracked by an observer (EMA of each batch's min and max by default) while the model is in training mode,
frozen in eval mode or after `freeze_ranges()`. A forward pass quantizes with the ranges as they were when
it started and updates them with the float values it sees (before their fake quantization).

Layout: QATModel takes and returns tensors in the IR's layout, batch first: NHWC images ([N, H, W, C]),
[N, L, C] signals, other tensors as in torch. `channels_last` turns torch's NCHW / NCL batches into it.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from ..errors import ModelError
from ..frontends.torch_capture import from_torch
from ..ir import Graph, QuantParams
from . import intmath
from .fake_quant import OpGrid, Rounding, fake_quantize, fake_quantize_constant, layer_grid, op_grid
from .observers import Observer, Range
from .ptq import Calibration, ObserverChoice, calibrate
from .ptq import observer_factory
from .quantize_graph import WEIGHT_AXIS, activation_params, bias_scales, quantize_with_ranges
from .torch_graph import TorchGraph
from .weight_grids import LayerWeights, check_format, initial_table, pinned_zeros, quantize_layer

__all__ = ["QATModel", "channels_last", "convert", "prepare_qat"]

Array = TypeVar("Array", np.ndarray, torch.Tensor)


@dataclass(frozen=True)
class _Layer:
    """A CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED: its tensors (bias "" when it has none)."""

    kind: str
    name: str
    input: str
    weights: str
    bias: str
    output: str



def _layers(graph: Graph) -> list[_Layer]:
    layers = [_Layer(op.kind, op.name, op.inputs[0], op.inputs[1], op.inputs[2] if len(op.inputs) > 2 else "",
                     op.outputs[0]) for op in graph.ops if op.kind in WEIGHT_AXIS]
    owner: dict[str, str] = {}
    for layer in layers:
        for name in filter(None, (layer.weights, layer.bias)):
            if name in owner:
                raise ModelError(f"{layer.kind} {layer.name} shares the constant {name!r} with {owner[name]}: "
                                 "quantization-aware training needs every layer to own its weights and bias")
            owner[name] = f"{layer.kind} {layer.name}"
    return layers


def _roundings(graph: Graph) -> dict[str, Rounding]:
    """The tensors not rounded as requantized outputs: graph inputs and average-pool outputs."""
    out = {op.outputs[0]: Rounding.POOL for op in graph.ops if op.kind == "AVERAGE_POOL_2D"}
    out.update({name: Rounding.INPUT for name in graph.inputs})
    return out


@dataclass(frozen=True)
class _Quantization:
    """What one forward pass quantizes with: activation parameters and first-rounding grids by tensor
    name; the weights' scales and codes, and the codebooks' tables (as trained, in int8 steps), by layer
    name."""

    params: dict[str, QuantParams]
    grids: dict[str, OpGrid]
    weights: dict[str, LayerWeights]
    tables: dict[str, torch.Tensor]


class _ConstantHookGraph(TorchGraph):
    """A TorchGraph whose weight hook also receives the biases of its weighted layers."""

    def __init__(self, graph: Graph, biases: set[str]) -> None:
        super().__init__(graph)
        self._biases = frozenset(biases)

    def _operand(self, name: str, values: dict[str, torch.Tensor], weight_hook: Any) -> torch.Tensor | None:
        if weight_hook is not None and name in self._biases:
            return weight_hook(name, self.parameter(name))
        return super()._operand(name, values, weight_hook)


class QATModel(nn.Module):
    """A float IR graph trained under int8 fake quantization (see the module docstring).

    `forward(*inputs)` takes float batches in IR layout, one per graph input, and returns the
    fake-quantized outputs in IR layout: a tensor for a graph with one output, else a tuple of tensors."""

    def __init__(self, float_graph: Graph, observer: ObserverChoice = "ema",
                 weights: str | Mapping[str, str] = "int8") -> None:
        super().__init__()
        self._layers = _layers(float_graph)
        self.net = _ConstantHookGraph(float_graph, {layer.bias for layer in self._layers if layer.bias})
        self.formats = _layer_formats(self._layers, weights)
        self.tables = nn.ParameterDict()  # codebook layers: the table's entries after a pinned 0, / 127
        self._table_key: dict[str, tuple[str, int]] = {}  # layer name -> (key in tables, entries)
        for i, layer in enumerate(self._layers):
            fmt = self.formats[layer.weights]
            if fmt.startswith("codebook"):
                table = initial_table(fmt, layer.kind, float_graph[layer.weights].data)
                key = f"table{i}"
                self._table_key[layer.name] = key, table.size
                self.tables[key] = nn.Parameter(torch.tensor(table[pinned_zeros(table.size):] / WEIGHT_STEPS,
                                                             dtype=torch.float32))
        self._layer_of = {name: layer for layer in self._layers for name in (layer.weights, layer.bias) if name}
        self._rounding = _roundings(float_graph)
        self._new_observer = observer_factory(observer)
        self._observers: dict[str, Observer] = {}
        self.ranges_frozen = False
        self._current: _Quantization | None = None  # set during a forward pass

    @property
    def graph(self) -> Graph:
        """The float graph as captured (its constants as they were before training)."""
        return self.net.graph

    def float_graph(self) -> Graph:
        """The float graph with the trained weights and biases."""
        return self.net.to_graph()

    def weight_parameters(self) -> dict[str, nn.Parameter]:
        """The weights of the convolution, depthwise and fully-connected layers, by tensor name (what
        compress.prune prunes)."""
        return {layer.weights: self.net.parameter(layer.weights) for layer in self._layers}

    # ------------------------------------------------------------ ranges

    @property
    def tracking(self) -> bool:
        """Whether forward passes update the ranges: in training mode, unless frozen."""
        return self.training and not self.ranges_frozen

    def freeze_ranges(self, frozen: bool = True) -> QATModel:
        """Stops (or, with False, resumes) range tracking in training mode; eval mode never tracks."""
        self.ranges_frozen = frozen
        return self

    def set_ranges(self, ranges: dict[str, Range]) -> None:
        """Restarts the observer of every activation named in `ranges` from its (lo, hi)."""
        for name in self.graph.activations():
            if name in ranges:
                self._observers[name] = self._new_observer()
                self._observers[name].update(np.asarray(ranges[name], np.float64))

    def ranges(self) -> dict[str, Range]:
        """The current real range (lo, hi) of every activation observed so far."""
        return {name: obs.range() for name, obs in self._observers.items()}

    def missing_ranges(self) -> list[str]:
        return [name for name in self.graph.activations() if name not in self._observers]

    def quant_params(self) -> dict[str, QuantParams]:
        """The int8 parameters of every activation for the current ranges (those `convert` gives)."""
        missing = self.missing_ranges()
        if missing:
            shown = ", ".join(map(repr, missing[:3])) + (", ..." if len(missing) > 3 else "")
            raise ModelError(f"no range yet for {len(missing)} activation(s) ({shown}): pass calibration data "
                             "to prepare_qat, or run a batch in training mode first")
        return activation_params(self.graph, self.ranges())

    def _observe(self, name: str, value: torch.Tensor) -> None:
        if name not in self._observers:
            self._observers[name] = self._new_observer()
        try:
            self._observers[name].update(value.detach())
        except ValueError as e:
            raise ValueError(f"observing tensor {name!r}: {e}") from None

    def _observe_float(self, inputs: Sequence[torch.Tensor]) -> None:
        """Runs the float graph once, observing every activation (the first ranges, without calibration)."""

        def observe(name: str, value: torch.Tensor) -> torch.Tensor:
            self._observe(name, value)
            return value

        with torch.no_grad():
            self.net(*inputs, observe=observe)

    # ------------------------------------------------------------ running

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if self.tracking and self.missing_ranges():
            self._observe_float(inputs)
        self._current = self._quantization()
        try:
            outputs = self.net(*inputs, observe=self._fake_quantize_activation,
                               weight_hook=self._fake_quantize_constant)
        finally:
            self._current = None
        return outputs[0] if len(outputs) == 1 else outputs

    def _table(self, layer_name: str) -> torch.Tensor:
        """A codebook layer's whole table in int8 steps (the pinned 0 first), differentiable."""
        key, size = self._table_key[layer_name]
        entries = self.tables[key] * WEIGHT_STEPS
        return torch.cat([entries.new_zeros(size - entries.numel()), entries])

    def _tables(self) -> dict[str, torch.Tensor]:
        return {name: self._table(name) for name in self._table_key}

    def _layer_weights(self, layer: _Layer, input_scale: float, tables: dict[str, torch.Tensor]) -> LayerWeights:
        weights = self.net.parameter(layer.weights).detach().cpu().numpy()
        bias = self.net.parameter(layer.bias).detach().cpu().numpy() if layer.bias else None
        table = tables[layer.name].detach().cpu().numpy() if layer.name in tables else None
        return quantize_layer(self.formats[layer.weights], layer.kind, weights, bias, input_scale, table)

    def _quantization(self) -> _Quantization:
        params = self.quant_params()
        grids = {op.outputs[0]: grid for op in self.graph.ops
                 if (grid := op_grid(op, self.graph, params)) is not None}
        tables = self._tables()
        weights: dict[str, LayerWeights] = {}
        for layer in self._layers:
            input_scale = params[layer.input].s
            weights[layer.name] = self._layer_weights(layer, input_scale, tables)
            grids[layer.output] = layer_grid(input_scale, weights[layer.name].scales, params[layer.output].s)
        return _Quantization(params, grids, weights, tables)

    def _fake_quantize_activation(self, name: str, value: torch.Tensor) -> torch.Tensor:
        assert self._current is not None
        if self.tracking:
            self._observe(name, value)
        grid = self._current.grids.get(name)
        rounding = self._rounding.get(name, Rounding.REQUANTIZE)
        if grid is None:
            return fake_quantize(value, self._current.params[name], rounding)
        return fake_quantize(value, self._current.params[name], rounding, grid.for_values(value))

    def _fake_quantize_constant(self, name: str, real: torch.Tensor) -> torch.Tensor:
        assert self._current is not None
        layer = self._layer_of[name]
        grid = self._current.weights[layer.name]
        if name == layer.weights:
            return _fake_weights(real, grid, self._current.tables.get(layer.name))
        steps = bias_scales(self._current.params[layer.input].s, grid.scales)
        return fake_quantize_constant(real, steps, None if steps.size == 1 else 0,
                                      intmath.INT32_MIN, intmath.INT32_MAX)

    def weight_grid(self, op, real: np.ndarray, bias: np.ndarray | None, input_scale: float) -> LayerWeights:
        """quantize_graph.WeightGrid: a layer's weights as this model's fake quantization takes them."""
        table = self._table(op.name).detach().cpu().numpy() if op.name in self._table_key else None
        return quantize_layer(self.formats[op.inputs[1]], op.kind, real, bias, input_scale, table)


WEIGHT_STEPS = 127.0  # a codebook's trained entries are kept in units of the largest int8 code


def _layer_formats(layers: list[_Layer], weights: str | Mapping[str, str]) -> dict[str, str]:
    """The format of each layer's weights (by weight tensor name) from one format or a mapping."""
    if isinstance(weights, str):
        return {layer.weights: check_format(weights) for layer in layers}
    known = {layer.weights for layer in layers}
    unknown = sorted(set(weights) - known)
    if unknown:
        raise ModelError(f"no layer has the weights {unknown[0]!r}: name them as QATModel.weight_parameters() does")
    return {layer.weights: check_format(weights.get(layer.weights, "int8")) for layer in layers}


def _fake_weights(real: torch.Tensor, grid: LayerWeights, table: torch.Tensor | None) -> torch.Tensor:
    """scales x codes with the straight-through gradient to the real weights (and, for a codebook, to the
    table: d value / d entry = the scale, summed over the weights that take the entry)."""
    shape = [1] * real.ndim
    if grid.axis is not None:
        shape[grid.axis] = -1
    scales = torch.as_tensor(grid.scales.astype(np.float64), device=real.device).reshape(shape)
    value = (torch.as_tensor(grid.codes, device=real.device).to(torch.float64) * scales).to(real.dtype)
    out = value + (real - real.detach())
    if table is not None:
        taken = table[torch.as_tensor(grid.index, device=real.device)]
        out = out + (scales.to(real.dtype) * (taken - taken.detach())).to(real.dtype)
    return out


# ---------------------------------------------------------------- entry points


def prepare_qat(model: nn.Module | Graph, example_input: torch.Tensor | Sequence[torch.Tensor] | None = None,
                calibration: Calibration | None = None, *, observer: ObserverChoice = "ema",
                batch_size: int = 64, weights: str | Mapping[str, str] = "int8") -> QATModel:
    """A QATModel of `model` (captured on `example_input`, in torch's own layout), in training mode.

    `calibration` (IR layout: NHWC [N, H, W, C] float images; anything `ptq.calibrate` takes) seeds
    every range with its min and max; without it the first training batch does. `observer` ('ema',
    'minmax', or a factory of observers) tracks the ranges while training. `weights`: the format the
    weights train into (weight_grids.TRAINABLE), one for all or by weight tensor name (int8 when not named).
    `model` may also be a float IR graph (example_input then unused)."""
    graph = model if isinstance(model, Graph) else from_torch(model, example_input)
    qat = QATModel(graph, observer, weights)
    if calibration is not None:
        qat.set_ranges(calibrate(qat.graph, calibration, "minmax", batch_size=batch_size, progress=False))
    return qat.train()


def convert(qat_model: QATModel) -> Graph:
    """The int8 IR graph of a trained QATModel: its weights and current ranges through
    `quantize_with_ranges`, the integer arithmetic its fake quantization simulated."""
    qat_model.quant_params()  # a clear error when some range was never observed
    graph = quantize_with_ranges(qat_model.float_graph(), qat_model.ranges(), qat_model.weight_grid)
    tensors = {name: replace(t, format=qat_model.formats[name]) for name, t in graph.tensors.items()
               if qat_model.formats.get(name, "int8") != "int8"}
    return replace(graph, tensors={**graph.tensors, **tensors})


def channels_last(x: Array) -> Array:
    """A batch in torch's layout in the IR's: [N, C, H, W] -> [N, H, W, C], [N, C, L] -> [N, L, C]
    (numpy arrays or torch tensors; rank 2 and below unchanged). Pass 3-D batches only for a model whose
    3-D input is a [N, C, L] signal read by Conv1d or 1-D pools: other 3-D inputs keep their layout."""
    if x.ndim < 3:
        return x
    order = (0, *range(2, x.ndim), 1)
    if isinstance(x, torch.Tensor):
        return x.permute(*order).contiguous()
    return np.ascontiguousarray(np.transpose(x, order))
