"""Read a `.tflite` flatbuffer into the canonical IR, refusing what the engine cannot run.

Every failure, from a truncated file to an unsupported operator, is a ModelError: one short line that
names the operator or tensor (escaped and shortened, see errors.shown) and says what to do. The checks
run in this order, each relying on the ones before it:
1. the file: its size (before it is read whole), the 'TFL3' identifier, every offset inside the file
   (flatbuffer_check), the schema version, one subgraph;
2. each tensor: element type, shape, buffer index and size, quantization parameters (tflite_tensors);
3. constant folding: shape arithmetic (SHAPE -> STRIDED_SLICE -> PACK, ...) becomes constants
   (tflite_fold);
4. each operator left: a supported builtin, its operand counts, its options table and attributes
   (tflite_ops);
5. the graph: one writer per tensor, inputs and outputs, shapes, types and quantization against the
   operators that use them (ir.passes.validate and ir.shapes).
"""
from __future__ import annotations

from pathlib import Path

from ..errors import ModelError, shown
from ..ir import Graph, Op, Tensor
from ..ir.passes import check_structure, fold_pads, validate
from .flatbuffer_check import check_flatbuffer
from .tflite_fold import fold_constants
from .tflite_ops import BUILTIN_NAMES, CONVERTERS, RawOp, to_canonical
from .tflite_tensors import read_tensor

MAX_FILE_BYTES = 256 << 20  # no microcontroller has this much flash; FlatBuffers' own limit is 2 GiB
SCHEMA_VERSION = 3


def read_tflite_file(path: str | Path, name: str | None = None) -> Graph:
    path = Path(path)
    try:
        if path.is_dir():
            raise ModelError(f"{shown(str(path))} is a folder, not a .tflite file")
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ModelError(f"{shown(str(path))}: {size:,} bytes, over the {MAX_FILE_BYTES >> 20} MiB a "
                             "microcontroller model can have; is it the right file?")
        data = path.read_bytes()
    except OSError as e:
        raise ModelError(f"cannot read {shown(str(path))}: {e.strerror or type(e).__name__}") from None
    return read_tflite(data, name or path.stem)


def read_tflite(data: bytes, name: str = "model") -> Graph:
    """Parse, normalise and validate a TFLite model."""
    where = shown(name)
    if len(data) > MAX_FILE_BYTES:
        raise ModelError(f"{where}: {len(data):,} bytes, over the {MAX_FILE_BYTES >> 20} MiB a "
                         "microcontroller model can have")
    if len(data) < 16 or data[4:8] != b"TFL3":
        raise ModelError(f"{where}: not a TFLite flatbuffer (missing 'TFL3' identifier; is the file truncated?)")
    check_flatbuffer(data, where)
    graph = _parse(data, name, where)
    validate(graph)
    graph = fold_pads(graph)
    validate(graph)
    return graph


def _parse(data: bytes, name: str, where: str) -> Graph:
    import tflite

    from ..operators import install

    install()
    model = tflite.Model.GetRootAsModel(data, 0)
    if model.Version() != SCHEMA_VERSION:
        raise ModelError(f"{where}: schema version {model.Version()}, but TFLite (and mcuforge) read version "
                         f"{SCHEMA_VERSION}; re-export the model with a current TFLite converter")
    if model.SubgraphsLength() != 1:
        what = "no subgraph" if model.SubgraphsLength() < 1 else f"{model.SubgraphsLength()} subgraphs"
        raise ModelError(f"{where}: {what}; mcuforge runs models with exactly one subgraph (no control flow)")
    sub = model.Subgraphs(0)
    codes = _operator_kinds(model, sub, where)
    names: list[str] = []
    tensors: dict[str, Tensor] = {}
    for i in range(sub.TensorsLength()):
        t = read_tensor(model, sub.Tensors(i), i, tensors)
        names.append(t.name)
        tensors[t.name] = t
    raws = _raw_ops(sub, codes, names)
    g_inputs = _tensor_list(sub.InputsAsNumpy() if sub.InputsLength() else [], names, "the model inputs")
    g_outputs = _tensor_list(sub.OutputsAsNumpy() if sub.OutputsLength() else [], names, "the model outputs")
    if not g_inputs or not g_outputs:
        raise ModelError(f"{where}: the model declares no inputs or no outputs")
    if not raws:
        raise ModelError(f"{where}: the model has no operators; there is nothing to compile")
    # the graph's structure first (writers, inputs, outputs): it explains more than any one operator's check
    check_structure(Graph(tensors, tuple(Op(r.kind, r.inputs, r.outputs) for r in raws), g_inputs, g_outputs))
    raws = fold_constants(raws, tensors)
    _refuse_unsupported(raws, where)
    ops = [op for raw in raws for op in to_canonical(raw, tensors)]
    return Graph(tensors=tensors, ops=tuple(ops), inputs=g_inputs, outputs=g_outputs, name=name)


def _tensor_list(indices, names: list[str], what: str, optional: bool = False) -> tuple[str, ...]:
    out = []
    for index in (int(i) for i in indices):
        if optional and index == -1:
            out.append("")
        elif not 0 <= index < len(names):
            raise ModelError(f"{what} refer to tensor #{index}, but the model has {len(names)} tensors")
        else:
            out.append(names[index])
    return tuple(out)


def _operator_kinds(model, sub, where: str) -> list[str]:
    """The builtin kind of each operator code; refuses custom operators."""
    codes = []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        code = max(int(oc.BuiltinCode()), int(oc.DeprecatedBuiltinCode()))
        custom = oc.CustomCode()
        codes.append((BUILTIN_NAMES.get(code, f"builtin #{code}"), custom.decode("utf-8", "replace") if custom else ""))
    for i in range(sub.OperatorsLength()):
        idx = sub.Operators(i).OpcodeIndex()
        if not 0 <= idx < len(codes):
            raise ModelError(f"{where}: operator #{i} has opcode index {idx}, but the model has {len(codes)} "
                             "operator codes")
        kind, custom = codes[idx]
        if kind == "CUSTOM":
            raise ModelError(f"operator #{i}: custom operator {shown(custom)} is not supported; custom ops (e.g. "
                             "Vela/Ethos-U NPU code) need the vendor's runtime. Compile the model from its "
                             "original int8 .tflite instead")
    return [kind for kind, _ in codes]


def _refuse_unsupported(raws: list[RawOp], where: str) -> None:
    """Every operator left after constant folding must be one the engine runs; all others in one line."""
    unsupported: dict[str, list[int]] = {}
    for raw in raws:
        if raw.kind not in CONVERTERS:
            unsupported.setdefault(raw.kind, []).append(raw.index)
    if unsupported:
        listed = ", ".join(f"{k} (#{v[0]}{f' and {len(v) - 1} more' if len(v) > 1 else ''})"
                           for k, v in list(unsupported.items())[:4])
        more = f" and {len(unsupported) - 4} other kinds" if len(unsupported) > 4 else ""
        raise ModelError(f"{where}: operator{'s' if len(unsupported) > 1 else ''} {listed}{more} not supported "
                         "yet (the README's 'What works' lists the operators the engine runs)")


def _raw_ops(sub, codes: list[str], names: list[str]) -> list[RawOp]:
    raws: list[RawOp] = []
    for i in range(sub.OperatorsLength()):
        op = sub.Operators(i)
        kind = codes[op.OpcodeIndex()]
        what = f"operator #{i} ({kind})"
        inputs = _tensor_list(op.InputsAsNumpy() if op.InputsLength() else [], names, f"{what}'s inputs", True)
        outputs = _tensor_list(op.OutputsAsNumpy() if op.OutputsLength() else [], names, f"{what}'s outputs")
        raws.append(RawOp(kind=kind, inputs=inputs, outputs=outputs, options=op.BuiltinOptions(),
                          options_type=op.BuiltinOptionsType(), index=i))
    return raws
