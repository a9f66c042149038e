"""Three-way check: generated C vs the numpy reference vs TFLM (when `tflite-micro` is installed).

On a difference it names the first layer whose output differs: between C and reference through a trace
build of the C code (a hook after every layer), between reference and TFLM through TFLM's
preserve-all-tensors mode.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .engine.reference import initial_state, run_all
from .errors import shown
from .ir import NUMPY_DTYPES, Graph
from .engine.schedule import MAX_EXTRA_MACS
from .pipeline import Compiled, compile_model


@dataclass(frozen=True)
class Mismatch:
    sample: int
    engines: str  # e.g. "c vs reference"
    layer: str  # first differing layer (or the output) as "#i KIND 'name'"
    max_abs_diff: float


@dataclass
class VerifyResult:
    model: str
    samples: int = 0
    tflm_checked: bool = False
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches


def random_inputs(graph: Graph, count: int, seed: int = 0) -> list[list[np.ndarray]]:
    """Inputs covering the whole int8 (uint8) range (float inputs: the range their QUANTIZE can represent)."""
    rng = np.random.default_rng(seed)
    batch = []
    for _ in range(count):
        xs = []
        for name in graph.inputs:
            t = graph[name]
            if t.dtype == "int8":
                xs.append(rng.integers(-128, 128, size=t.shape, dtype=np.int8))
                continue
            if t.dtype == "uint8":
                xs.append(rng.integers(0, 256, size=t.shape, dtype=np.uint8))
                continue
            users = [graph.ops[i] for i in graph.consumers(name)]
            q = next((graph[u.outputs[0]].quant for u in users if u.kind == "QUANTIZE"), None)
            lo, hi = ((-128 - q.zp) * q.s, (127 - q.zp) * q.s) if q is not None else (-1.0, 1.0)
            span = hi - lo
            xs.append(rng.uniform(lo - 0.05 * span, hi + 0.05 * span, size=t.shape).astype(NUMPY_DTYPES[t.dtype]))
        batch.append(xs)
    return batch


def _layer(graph: Graph, i: int) -> str:
    op = graph.ops[i]
    return f"#{i} {op.kind} {shown(op.name)}"


def _diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0


def _first_c_layer(compiled: Compiled, xs: list[np.ndarray], ref: dict[str, np.ndarray]) -> str:
    from .targets.host import HostModel

    graph, plan = compiled.graph, compiled.plan
    model = HostModel.build(compiled.lib, trace=True)
    found: list[int] = []

    def on_layer(i: int, arena: bytes) -> None:
        if found:
            return
        for name in graph.ops[i].outputs:
            if name not in ref:
                continue  # a tensor of a rewritten stage (one patch of a layer's output)
            t = graph[name]
            off = plan.offsets[name]
            got = np.frombuffer(arena[off:off + t.nbytes], NUMPY_DTYPES[t.dtype]).reshape(t.shape)
            if not np.array_equal(got, ref[name]):
                found.append(i)

    model.run_traced(xs, on_layer)
    return _layer(graph, found[0]) if found else "(no single layer: check the output copy)"


def _tflm(data: bytes, preserve: bool):
    from tflite_micro import runtime

    cfg = runtime.InterpreterConfig.kPreserveAllTensors if preserve else runtime.InterpreterConfig.kAllocationRecording
    return runtime.Interpreter.from_bytes(data, arena_size=16 << 20, intrepreter_config=cfg)


def _first_tflm_layer(graph: Graph, data: bytes, xs: list[np.ndarray], ref: dict[str, np.ndarray]) -> str:
    import tflite

    sub = tflite.Model.GetRootAsModel(data, 0).Subgraphs(0)
    index = {sub.Tensors(i).Name().decode("utf-8", "replace"): i for i in range(sub.TensorsLength())}
    it = _tflm(data, preserve=True)
    for j, x in enumerate(xs):
        it.set_input(np.ascontiguousarray(x), j)
    it.invoke()
    for i, op in enumerate(graph.ops):
        for name in op.outputs:
            if name not in index:
                continue
            got = np.asarray(it.GetTensor(index[name], 0)["tensor_data"]).reshape(ref[name].shape)
            if not np.array_equal(got, ref[name]):
                return _layer(graph, i)
    return "(an output)"


def verify(graph: Graph, *, samples: int = 20, given: Sequence[np.ndarray] = (), tflite_bytes: bytes | None = None,
           use_tflm: bool = True, seed: int = 0, compiled: Compiled | None = None, strategy: str = "layer",
           max_extra_macs: float = MAX_EXTRA_MACS) -> VerifyResult:
    """Runs `samples` random inputs plus the `given` single-input samples through all engines (the C
    compiled with `strategy`, unless `compiled` is given)."""
    from .targets.host import HostModel

    compiled = compiled or compile_model(graph, strategy=strategy, max_extra_macs=max_extra_macs)
    model = HostModel.build(compiled.lib)
    batch = random_inputs(graph, samples, seed) + [[x] for x in given]
    result = VerifyResult(graph.name)
    interp = None
    if use_tflm:
        try:
            import tflite_micro  # noqa: F401
        except ImportError:
            use_tflm = False
    if use_tflm:
        if tflite_bytes is None:
            from .frontends.tflite_writer import write_tflite

            tflite_bytes = write_tflite(graph)
        interp = _tflm(tflite_bytes, preserve=False)
        result.tflm_checked = True
    state = initial_state(graph)  # a stateful model runs the samples as one sequence, as the C and TFLM do
    for k, xs in enumerate(batch):
        values = run_all(graph, xs, state)
        ref = [values[n] for n in graph.outputs]
        got = model.run(xs)
        if any(not np.array_equal(a, b) for a, b in zip(got, ref)):
            d = max(_diff(a, b) for a, b in zip(got, ref))
            result.mismatches.append(Mismatch(k, "c vs reference", _first_c_layer(compiled, xs, values), d))
        if interp is not None:
            for j, x in enumerate(xs):
                interp.set_input(np.ascontiguousarray(x), j)
            interp.invoke()
            oracle = [np.asarray(interp.get_output(j)).reshape(r.shape) for j, r in enumerate(ref)]
            if any(not np.array_equal(a, b) for a, b in zip(oracle, ref)):
                d = max(_diff(a, b) for a, b in zip(oracle, ref))
                layer = _first_tflm_layer(graph, tflite_bytes, xs, values)
                result.mismatches.append(Mismatch(k, "reference vs tflm", layer, d))
        result.samples += 1
    return result
