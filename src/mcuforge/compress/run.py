"""`mcuforge compress`: read an int8 model, re-quantize its weights into a format, write it, say what changed."""
from __future__ import annotations

import os
from typing import Callable

import numpy as np

from ..errors import UsageError, shown
from ..ir.formats import codebook_bits
from .weights import compress_weights, output_changes, weight_bytes


def _samples(graph, calib: str | None, count: int) -> tuple[np.ndarray, np.ndarray | None, str]:
    """(int8 inputs [N, *shape], labels or None, where they come from)."""
    from ..validate import load_data, model_inputs, stack_samples

    t = graph[graph.inputs[0]]
    if calib is None:
        rng = np.random.default_rng(0)
        info = np.iinfo(t.dtype) if t.dtype != "float32" else None
        if info is None:
            return rng.standard_normal((count, *t.shape)).astype(np.float32), None, f"{count} random inputs (seed 0)"
        return rng.integers(info.min, info.max + 1, (count, *t.shape)).astype(t.dtype), None, \
            f"{count} random inputs (seed 0)"
    data = load_data(calib)
    x = stack_samples(data.x, t.shape, data.source)[:count]
    inputs, _ = model_inputs(graph, x, data.source)
    labels = None if data.y is None else np.asarray(data.y).reshape(len(data.x), -1)[:count]
    return inputs, labels, f"{len(inputs)} samples of {data.source}"


def compress_model(model: str | os.PathLike, fmt: str, out: str | os.PathLike, *, calib: str | None = None,
                   samples: int = 32, sparsity: float = 0.5, print_line: Callable[[str], None] = print) -> int:
    """Compress `model`'s weights into `fmt`, write `out` (.tflite, atomically), print the sizes and how the
    outputs move. Returns the exit status (0)."""
    from ..frontends.tflite_writer import write_tflite
    from ..outdir import check_output_file, write_file_atomically
    from ..pipeline import load_model

    target = check_output_file(out, (".tflite",), "the compressed model")
    graph = load_model(model)
    if len(graph.inputs) != 1:
        raise UsageError(f"{shown(os.fspath(model))} has {len(graph.inputs)} inputs; compress takes models with one")
    inputs, labels, source = _samples(graph, calib, samples)
    compressed, rows = compress_weights(graph, fmt, sparsity)
    data = write_tflite(compressed)
    before, _ = weight_bytes(graph)
    after, _ = weight_bytes(compressed)
    done = {"sparse": "pruned", "sparse:int4": "pruned and re-quantized"}.get(fmt, "re-quantized")
    print_line(f"{len(rows)} weight tensors {done} into {fmt}: weights {before:,} B as int8 -> {after:,} B as "
               f"{fmt} ({after / max(before, 1):.2f}x); relative RMS error of the weights "
               f"{min(r.rms_error for r in rows):.3f} .. {max(r.rms_error for r in rows):.3f}")
    for change in output_changes(graph, compressed, inputs):
        line = (f"output {shown(change.name)} on {source}: mean change {change.mean_steps:.2f} steps, largest "
                f"{change.max_steps}")
        if change.top1_agreement is not None:
            line += f"; top-1 unchanged on {100 * change.top1_agreement:.1f} %"
        print_line(line)
    if labels is not None:
        from ..engine import reference

        y = labels.reshape(len(labels), -1)[:, 0] if labels.shape[1] == 1 else labels.argmax(1)
        for name, g in (("original", graph), ("compressed", compressed)):
            predicted = np.array([np.asarray(reference.run(g, [x])[0]).reshape(-1).argmax() for x in inputs])
            print_line(f"top-1 accuracy of the {name} model on {source}: {100 * float((predicted == y).mean()):.2f} %")
    write_file_atomically(target, lambda f: f.write(data))
    if fmt == "int4":
        print_line(f"wrote {os.fspath(out)} ({len(data):,} bytes; its convolution weights are INT4 tensors, which TFLM "
                   f"runs); compile it with --weights auto to store the fully-connected weights as {fmt} too")
    else:
        zeros = f"{100 * sparsity:g} % of them 0"
        what = {"ternary": "in -1, 0, 1", "ternary:base3": "in -1, 0, 1", "pow2": "0 or +-2^k", "sparse": zeros,
                "sparse:int4": f"in -8..7, {zeros}"}.get(
            fmt, f"with at most {1 << codebook_bits(fmt)} values per tensor")
        how = ("--weights ternary:base3 to store them five to a byte" if fmt == "ternary:base3" else
               "--weights auto to store them in the smallest format that holds them")
        print_line(f"wrote {os.fspath(out)} ({len(data):,} bytes, int8 weights {what}); compile it with {how}")
    return 0
