"""PyTorch modules -> the float IR: capture with torch.export, translate the ATen graph op by op.

`from_torch(model, example_input)` returns a float32 Graph (activations "float32", no quantization) in the
IR's conventions (mcuforge.ir), ready for post-training quantization:
- Layout is TFLite's: a [N, C, H, W] input becomes an IR input [1, H, W, C]; a [N, C, L] input of a 1-D
  model (Conv1d, pools, BatchNorm1d) becomes [1, L, C], reshaped to a [1, 1, L, C] image for its layers;
  other inputs keep their shape. Outputs: 4-D ones NHWC, 3-D ones [1, L, C] in a 1-D signal model (one
  with such an input), others as in torch. The IR has batch 1 whatever the example's batch.
- Conv1d/Conv2d -> CONV_2D (DEPTHWISE_CONV_2D when groups == in_channels > 1), Linear -> FULLY_CONNECTED,
  weights float32 in the IR's layouts, bias float32 (zeros when the layer has none). BatchNorm folds into
  the convolution or Linear before it, else becomes a 1x1 depthwise convolution. ReLU/ReLU6 fuse into the
  convolution, Linear or add that produces their input when nothing else reads it.
- Flattening a feature map for a Linear permutes the Linear's weight columns into NHWC order: no TRANSPOSE.
- Anything else raises ModelError naming the op and the module it sits in.
"""
from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.fx
from torch.export import ExportedProgram
from torch.export.graph_signature import InputKind
from torch.utils import _pytree

from ..errors import ModelError
from ..ir import Graph
from ..ir.passes import validate
from . import torch_ops_spatial  # noqa: F401  (registers the pooling and data-movement converters)
from .torch_context import Capture, Value, module_location, op_label
from .torch_layout import Layout
from .torch_ops import CONVERTERS, REFUSALS

# ops that check shapes or dtypes at run time and compute nothing
_CHECKS = frozenset({"_assert_tensor_metadata", "_assert_async", "_assert_scalar", "sym_constrain_range_for_size"})
# ops that read their input channel-first: a rank-3 input they read is a [N, C, L] signal
_CHANNEL_FIRST = frozenset({"conv1d", "convolution", "batch_norm", "max_pool1d", "avg_pool1d",
                            "adaptive_avg_pool1d", "adaptive_max_pool1d"})


def from_torch(model: torch.nn.Module, example_input: torch.Tensor | Sequence[torch.Tensor]) -> Graph:
    """Capture `model` (in eval mode) on `example_input` (a tensor or a tuple of tensors) as a float IR Graph."""
    inputs = tuple(example_input) if isinstance(example_input, (tuple, list)) else (example_input,)
    capture = Capture(_batch_size(inputs))
    program = _export(model, inputs)
    constants = _constants(program)
    for node in program.graph.nodes:
        if node.op == "placeholder":
            _placeholder(capture, node, constants)
        elif node.op == "call_function":
            _call(capture, node)
        elif node.op == "output":
            _outputs(capture, node)
        else:
            raise ModelError(f"unsupported fx node {node.op} {node.target} at {module_location(node)}")
    graph = capture.build(type(model).__name__)
    validate(graph, allow_float=True)
    return graph


def supported_operations() -> list[str]:
    """The ATen operators from_torch translates (in-place variants included)."""
    return sorted(CONVERTERS)


def _batch_size(inputs: tuple[Any, ...]) -> int:
    for x in inputs:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() < 1:
            raise ModelError("example inputs must be floating-point tensors with a leading batch dimension")
    batches = {int(x.shape[0]) for x in inputs}
    if len(batches) != 1:
        raise ModelError(f"example inputs disagree on the batch size: {sorted(batches)}")
    return batches.pop()


def _export(model: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> ExportedProgram:
    training = model.training
    model.eval()
    try:
        return torch.export.export(model, inputs)
    except Exception as e:  # torch raises many kinds; the user needs the first lines, not a traceback
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"torch.export could not capture {type(model).__name__}: {first}") from e
    finally:
        model.train(training)


def _constants(program: ExportedProgram) -> dict[str, np.ndarray]:
    """Parameters, buffers and lifted constants by placeholder name."""
    out: dict[str, np.ndarray] = {}
    for spec in program.graph_signature.input_specs:
        if spec.kind == InputKind.USER_INPUT or spec.target is None:
            continue
        tensor = program.state_dict.get(spec.target, program.constants.get(spec.target))
        if isinstance(tensor, torch.Tensor):
            array = tensor.detach().cpu()
            out[spec.arg.name] = (array.double() if array.is_floating_point() else array).numpy()
    return out


def _placeholder(capture: Capture, node: torch.fx.Node, constants: dict[str, np.ndarray]) -> None:
    if node.name in constants:
        capture.values[node] = constants[node.name]
        return
    val = node.meta.get("val")
    if not isinstance(val, torch.Tensor):
        if node.users:
            raise ModelError(f"model input '{node.name}' is not a tensor; only tensor inputs are supported")
        return
    shape = capture.shape(node)
    capture.signal_model = capture.signal_model or _is_signal(node)
    layout = input_layout(node, shape)
    name = capture.add_tensor(node.name, layout.ir_shape)
    capture.inputs.append(name)
    capture.values[node] = Value(shape, layout, {layout: name})


def input_layout(node: torch.fx.Node, shape: tuple[int, ...] | None = None) -> Layout:
    """How a model input of torch shape `shape` (default: the node's own) becomes an IR tensor:
    channels-last for images and for [N, C, L] signals (an input that a Conv1d, BatchNorm1d or 1-D pool
    reads), else torch's own order."""
    shape = tuple(int(d) for d in node.meta["val"].shape) if shape is None else shape
    return Layout.channels_last(shape) if len(shape) == 4 or _is_signal(node) else Layout.plain(shape)


def _is_signal(node: torch.fx.Node) -> bool:
    rank = len(node.meta["val"].shape)
    return rank == 3 and any(getattr(getattr(u.target, "overloadpacket", None), "__name__", "") in _CHANNEL_FIRST
                             for u in node.users)


def _call(capture: Capture, node: torch.fx.Node) -> None:
    if node.target is operator.getitem:
        _getitem(capture, node)
        return
    packet = getattr(node.target, "overloadpacket", None)
    name = packet.__name__ if packet is not None and node.target.namespace == "aten" else ""
    if name in _CHECKS:
        return
    convert = CONVERTERS.get(name) or REFUSALS.get(name)
    if convert is None:
        supported = ", ".join(sorted({n.rstrip("_") for n in CONVERTERS if not n.startswith("_")}))
        raise ModelError(f"unsupported torch operation {op_label(node)} at {module_location(node)}: "
                         f"supported are {supported}")
    try:
        convert(capture, node)
    except ModelError:
        raise
    except Exception as e:  # an argument combination the converter did not foresee: say where
        raise capture.error(node, f"could not be translated ({type(e).__name__}: {e})") from e
    if name.endswith("_") and isinstance(node.args[0], torch.fx.Node):  # in place: later reads see the result
        capture.values[node.args[0]] = capture.values[node]


def _getitem(capture: Capture, node: torch.fx.Node) -> None:
    source, index = node.args
    parts = capture.values.get(source)
    if not isinstance(parts, (tuple, list)):
        raise capture.error(node, "indexing an activation is not supported")
    if parts[index] is None:
        if node.users:
            raise capture.error(node, f"output #{index} of {op_label(source)} (e.g. pooling indices) "
                                      "is not supported")
        return
    capture.values[node] = parts[index]


def _outputs(capture: Capture, node: torch.fx.Node) -> None:
    for arg in _pytree.tree_leaves(node.args[0]):
        value = capture.values.get(arg) if isinstance(arg, torch.fx.Node) else arg
        if not isinstance(value, Value):
            raise ModelError(f"model output {arg} is not computed from the model's inputs")
        capture.outputs.append(capture.realize(value, _output_layout(capture, value)))


def _output_layout(capture: Capture, value: Value) -> Layout:
    if value.rank == 4:
        return Layout.channels_last(value.shape)
    if value.rank == 3 and capture.signal_model:
        return Layout.channels_last(value.shape)
    return Layout.plain(value.shape)
