"""The fast kernel variants against the reference interpreter, bit for bit.

Variants: pointwise convolution as a GEMM (mcu_conv_s8_1x1: four pixels against one filter or, deep,
three against two; column in the planner's scratch or the output's tail, direct rows for the last pixels,
or the column over the input pixels already read where the input dies with the layer), other convolutions
through im2col (mcu_conv_s8_im2col: column in the planner's scratch, in the output's tail, or tap by tap;
windows whose rows are not whole groups of four reordered), depthwise row by row (mcu_dwconv_s8_rows, in
place through a ring of rows: mcu_dwconv_s8_inplace_rows) or by channel planes in blocks of up to 8
outputs (mcu_dwconv_s8_plane, Cortex-M), fully connected as a GEMM (mcu_fc_s8_gemm), and the one-step
requantization (mcu_requantize_folded). Shapes include odd channel counts, odd pixel counts, batches,
windows that overhang every border, and tiny images. Host builds run normally and under
-fsanitize=address,undefined; with the Arm toolchain the same graphs run on Cortex-M4 and Cortex-M7 in
QEMU, where the DSP paths (SXTB16, SMLAD) are compiled in.
"""
from __future__ import annotations

import re

import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pytest

from mcuforge.engine import compile_graph, reference
from mcuforge.engine.codegen import runtime_source, with_dependencies
from mcuforge.engine.plan import plan_memory
from mcuforge.engine.plan import scratch as scratch_module
from mcuforge.engine.plan.scratch import kernel_scratch
from mcuforge.ir import Graph
from mcuforge.models.builder import GraphBuilder
from mcuforge.operators.conv_2d import im2col_order
from mcuforge.operators.convolution import conv_quant
from mcuforge.operators.depthwise_conv_2d import dw_ring_rows
from mcuforge.targets.cortex_m import CortexMModel, toolchain_missing
from mcuforge.targets.host import SANITIZE, HostModel, build_executable, compiler, run_executable
from oracle import dev_models
from netbuilder import merge

Layer = Callable[[GraphBuilder, str], str]


def _graph(shape: Sequence[int], layers: Sequence[Layer], seed: int, zero_point: int = -9) -> Graph:
    b = GraphBuilder(seed=seed)
    y = b.input(tuple(shape), scale=0.05, zero_point=zero_point)
    for layer in layers:
        y = layer(b, y)
    return b.build([y])


def _inputs(graph: Graph, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(-128, 128, graph[n].shape).astype(np.int8) for n in graph.inputs]


def _assert_host_matches(graph: Graph, name: str, trials: int = 2, sanitize: bool = False) -> str:
    """Generated C (host) == reference on random inputs; returns the model's C source."""
    lib = compile_graph(graph, name)
    model = None if sanitize else HostModel.build(lib)
    exe = build_executable(lib, sanitize=True) if sanitize else None
    for trial in range(trials):
        xs = _inputs(graph, trial)
        got = model.run(xs) if model else run_executable(lib, exe, xs)
        for g, r in zip(got, reference.run(graph, xs)):
            assert np.array_equal(g, r), f"{name} trial {trial}: generated C != reference"
    return lib.files[f"{lib.name}.c"]


# ------------------------------------------------------------------ cases

def _conv(out_c: int, kernel=(3, 3), stride=(1, 1), padding="same", dilation=(1, 1), act="RELU6") -> Layer:
    return lambda b, x: b.conv2d(x, out_c, kernel=kernel, stride=stride, padding=padding, dilation=dilation,
                                 activation=act)


def _dw(kernel=(3, 3), stride=(1, 1), padding="same", dilation=(1, 1), multiplier=1, act="RELU") -> Layer:
    return lambda b, x: b.depthwise_conv2d(x, kernel=kernel, stride=stride, padding=padding, dilation=dilation,
                                           multiplier=multiplier, activation=act)


POINTWISE = [  # (input shape, out channels, stride)
    ((1, 6, 6, 8), 16, 1), ((1, 7, 5, 3), 5, 1), ((2, 5, 4, 7), 9, 1), ((1, 9, 9, 16), 8, 2),
    ((1, 1, 1, 33), 1, 1), ((1, 4, 6, 64), 3, 1), ((1, 3, 3, 5), 64, 1), ((1, 2, 2, 1), 2, 1),
    ((1, 10, 1, 17), 32, (2, 1)), ((1, 3, 3, 128), 256, 1), ((1, 5, 5, 40), 21, 1),
    ((1, 5, 7, 64), 33, 1),  # three pixels against two filters, an odd filter last, two pixels left over
    ((2, 7, 6, 16), 8, 2), ((1, 6, 5, 64), 10, 2),  # strided, by rows (and batches)
]

IM2COL = [  # (input shape, out channels, kernel, stride, padding, dilation)
    ((1, 9, 9, 3), 8, (3, 3), (2, 2), "same", (1, 1)), ((1, 8, 8, 16), 16, (3, 3), (1, 1), "same", (1, 1)),
    ((1, 7, 6, 5), 7, (3, 3), (1, 1), "same", (1, 1)), ((1, 10, 3, 1), 64, (5, 2), (2, 1), "same", (1, 1)),
    ((2, 6, 5, 4), 3, (2, 2), (1, 1), "valid", (1, 1)), ((1, 9, 8, 6), 5, (3, 3), (1, 2), "same", (2, 2)),
    ((1, 5, 7, 8), 9, (3, 2), (2, 1), (0, 2, 1, 0), (1, 1)), ((1, 1, 12, 6), 16, (1, 3), (1, 1), "valid", (1, 1)),
    ((1, 4, 4, 32), 64, (3, 3), (1, 1), "same", (1, 1)), ((1, 3, 3, 2), 1, (3, 3), (1, 1), "valid", (1, 1)),
    ((1, 6, 6, 12), 4, (1, 1), (1, 1), (1, 0, 0, 1), (1, 1)),  # a padded 1x1 goes through im2col
]

DEPTHWISE = [  # (input shape, kernel, stride, padding, dilation, multiplier)
    ((1, 12, 12, 8), (3, 3), (1, 1), "same", (1, 1), 1), ((1, 12, 12, 16), (3, 3), (2, 2), "same", (1, 1), 1),
    ((1, 9, 7, 5), (5, 5), (1, 1), "same", (1, 1), 1), ((1, 11, 10, 20), (7, 7), (2, 2), "same", (1, 1), 1),
    ((1, 9, 9, 12), (3, 3), (1, 1), "same", (2, 2), 1), ((1, 8, 6, 3), (3, 2), (2, 1), (0, 2, 1, 0), (1, 1), 1),
    ((1, 20, 8, 1), (10, 8), (2, 2), "same", (1, 1), 8), ((1, 6, 6, 3), (3, 3), (1, 1), "same", (1, 1), 3),
    ((2, 5, 6, 36), (3, 3), (2, 2), "same", (1, 1), 1), ((1, 1, 1, 24), (3, 3), (1, 1), "same", (1, 1), 1),
    ((1, 2, 3, 7), (3, 3), (1, 1), "same", (1, 1), 2), ((1, 3, 3, 256), (3, 3), (1, 1), "same", (1, 1), 1),
    ((1, 4, 3, 6), (1, 1), (1, 1), (2, 3, 1, 4), (1, 1), 1),  # output larger than the input
    ((1, 5, 17, 4), (3, 3), (1, 1), "same", (1, 1), 1),  # plane rows of 17 outputs: blocks of 6, 6 and 5
    ((1, 7, 20, 8), (5, 5), (2, 2), "same", (1, 1), 1), ((1, 11, 9, 8), (3, 3), (2, 2), "valid", (1, 1), 1),
]


def _pointwise_graph(i: int) -> Graph:
    shape, out_c, stride = POINTWISE[i]
    return _graph(shape, [_conv(out_c, kernel=1, stride=stride, padding="valid", act="NONE")], 500 + i)


def _im2col_graph(i: int, chained: bool) -> Graph:
    """chained: followed by a wide 1x1 conv, so the im2col op has slack and gets its column as scratch."""
    shape, out_c, kernel, stride, padding, dilation = IM2COL[i]
    layers = [_conv(out_c, kernel, stride, padding, dilation)]
    if chained:
        layers.append(_conv(out_c * 8, kernel=1, padding="valid", act="NONE"))
    return _graph(shape, layers, 600 + i, zero_point=-128 + 37 * i % 256)


def _depthwise_graph(i: int, chained: bool) -> Graph:
    """chained: the depthwise runs in place, followed by a wide 1x1 conv (slack for the ring of rows)."""
    shape, kernel, stride, padding, dilation, multiplier = DEPTHWISE[i]
    layers = [_dw(kernel, stride, padding, dilation, multiplier)]
    if chained:
        layers.append(_conv(shape[-1] * multiplier * 6, kernel=1, padding="valid", act="NONE"))
    return _graph(shape, layers, 700 + i, zero_point=(17 - 23 * i) % 256 - 128)


def _fc_graph(i: int) -> Graph:
    rng = np.random.default_rng(800 + i)
    batches, features, units = int(rng.integers(1, 4)), int(rng.integers(1, 70)), int(rng.integers(1, 18))
    return _graph((batches, features), [lambda b, x: b.fully_connected(x, units, activation="RELU")], 800 + i)


def _call_of(source: str, kernel: str) -> str:
    start = source.index(kernel + "(")
    return source[start:source.index(");", start)]


# ------------------------------------------------------------------ host

def _merged(graphs: Sequence[Graph], name: str) -> Graph:
    return merge([(g.ops[0].kind, g) for g in graphs], name)


def test_pointwise_gemm_matches_reference() -> None:
    source = _assert_host_matches(_merged([_pointwise_graph(i) for i in range(len(POINTWISE))], "pw"), "pointwise")
    assert source.count("mcu_conv_s8_1x1(") == len(POINTWISE)


def _reread_pointwise_graph() -> Graph:
    """A pointwise conv without scratch (too little slack) whose input a later op reads again: its input is
    not spent."""
    b = GraphBuilder(seed=531)
    x = b.input((1, 6, 6, 32), scale=0.05, zero_point=-9)
    y = b.conv2d(x, 64, kernel=1, padding="valid", activation="NONE")
    return b.build([b.mean(y), b.mean(x)])


def _chained_pointwise_graph() -> Graph:
    """A deep pointwise conv followed by a wide one: it has the slack for its column as scratch."""
    return _graph((1, 5, 5, 64), [_conv(24, kernel=1, padding="valid", act="RELU"),
                                  _conv(160, kernel=1, padding="valid", act="NONE")], 541)


def _spent_flag(source: str) -> str:
    return _call_of(source, "mcu_conv_s8_1x1").rstrip().rsplit(",", 1)[1].strip()


def test_pointwise_column_over_the_spent_input() -> None:
    """Without scratch, the column may move over the input pixels already read (flag 1) only where no later
    op reads the input and enough pixels would otherwise lose the column; the DSP path runs on Cortex-M."""
    spent = [i for i in range(len(POINTWISE)) if _spent_flag(
        compile_graph(_pointwise_graph(i), "pw").files["pw.c"]) == "1"]
    assert spent == [0, 3, 5, 9, 10, 11, 12, 13]  # the others' depths are not multiples of 4
    wide = _graph((1, 24, 24, 8), [_conv(16, kernel=1, padding="valid", act="NONE")], 555)
    assert _spent_flag(compile_graph(wide, "pw").files["pw.c"]) == "0"  # 5 pixels of 576 lack the column
    source = _assert_host_matches(_reread_pointwise_graph(), "pw_reread")
    assert "(int8_t *)0" in _call_of(source, "mcu_conv_s8_1x1") and _spent_flag(source) == "0"
    chained = _chained_pointwise_graph()
    assert kernel_scratch(chained.ops[0], chained, False).variant == "column"
    _assert_host_matches(chained, "pw_chained")


def test_im2col_order_puts_whole_groups_first() -> None:
    assert im2col_order(3, 3, 4).tolist() == list(range(36))  # whole groups: the filter's own order
    order = im2col_order(3, 3, 3)  # rows of 9 values: 2 groups each, then the 9th value of every row
    assert order.tolist() == [*range(0, 8), *range(9, 17), *range(18, 26), 8, 17, 26]
    assert sorted(im2col_order(2, 5, 3).tolist()) == list(range(30))


@pytest.mark.parametrize("i", range(len(IM2COL)))
def test_im2col_conv_without_scratch_matches_reference(i: int) -> None:
    """A lone conv is the peak: no scratch; the column borrows the output's tail, the last pixels go tap by
    tap (all of them where the output is smaller than the column)."""
    call = _call_of(_assert_host_matches(_im2col_graph(i, chained=False), "im2col"), "mcu_conv_s8_im2col")
    assert re.search(r"\(int8_t \*\)0,\s*0$", call.rstrip())  # no column scratch, so not four pixels at a time


def test_im2col_conv_with_scratch_matches_reference() -> None:
    graphs = [_im2col_graph(i, chained=True) for i in range(len(IM2COL))]
    assert sum(kernel_scratch(g.ops[0], g, False).variant in ("im2col4", "im2col") for g in graphs) >= len(graphs) - 2
    source = _assert_host_matches(_merged(graphs, "im2col_chained"), "im2col_scratch")
    calls = source.split("mcu_conv_s8_im2col(")[1:]
    assert len(calls) == len(IM2COL) and any("(int8_t *)0" not in c[:c.index(");")] for c in calls)


def test_im2col_uses_scratch_where_there_is_slack() -> None:
    graph = _im2col_graph(1, chained=True)
    plan = plan_memory(graph)
    assert plan.scratch.get(0, (0, 0))[1] in (9 * 3 * 3 * 16 + 4, 4 * (3 * 3 * 16 + 1) + 4)
    assert plan.arena_bytes == plan.lower_bound


def test_depthwise_rows_match_reference() -> None:
    graph = _merged([_depthwise_graph(i, chained=False) for i in range(len(DEPTHWISE))], "dw_rows")
    lib = compile_graph(graph, "dw_rows", inplace=False)
    assert lib.files["dw_rows.c"].count("mcu_dwconv_s8_fast(") == len(DEPTHWISE)
    model = HostModel.build(lib)
    for trial in range(2):
        xs = _inputs(graph, trial)
        for g, r in zip(model.run(xs), reference.run(graph, xs)):
            assert np.array_equal(g, r), f"trial {trial}: generated C != reference"


def test_depthwise_in_place_ring_matches_reference() -> None:
    graphs = [_depthwise_graph(i, chained=True) for i in range(len(DEPTHWISE)) if DEPTHWISE[i][-1] == 1]
    for g in graphs:
        assert kernel_scratch(g.ops[0], g, True).variant == "rows"
    source = _assert_host_matches(_merged(graphs, "dw_ring"), "dw_ring")
    assert source.count("mcu_dwconv_s8_fast(") == len(graphs)


@pytest.mark.parametrize("i", [0, 1, 3, 9, 11])
def test_depthwise_in_place_alone_matches_reference(i: int) -> None:
    """A lone in-place depthwise: the ring of rows where it is smaller than one channel, else the channel
    kernel."""
    graph = _depthwise_graph(i, chained=False)
    source = _assert_host_matches(graph, "dw_alone")
    assert plan_memory(graph).inplace_ops == frozenset({0})
    choice = kernel_scratch(graph.ops[0], graph, True)
    assert ("mcu_dwconv_s8_fast(" if choice.variant == "rows" else "mcu_dwconv_s8_inplace(") in source


def test_fully_connected_gemm_matches_reference() -> None:
    source = _assert_host_matches(_merged([_fc_graph(i) for i in range(12)], "fc"), "fc_gemm")
    assert source.count("mcu_fc_s8_gemm(") == 12


def test_fast_kernels_clean_under_sanitizers() -> None:
    graphs = [_pointwise_graph(1), _pointwise_graph(3), _im2col_graph(2, False), _im2col_graph(6, True),
              _im2col_graph(10, False), _depthwise_graph(3, True), _depthwise_graph(5, True),
              _depthwise_graph(6, False), _depthwise_graph(12, True), _fc_graph(3)]
    for k, graph in enumerate(graphs):
        _assert_host_matches(graph, f"sanitized_{k}", trials=1, sanitize=True)


def test_requantize_folded_equals_requantize(tmp_path: Path) -> None:
    """mcu_requantize_folded == mcu_requantize + output offset for every promised multiplier and shift and
    every output offset, on edge and random accumulators (built with sanitizers)."""
    for header in with_dependencies({"mcu_gemm_s8.h"}):
        (tmp_path / header).write_text(runtime_source(header))
    (tmp_path / "check.c").write_text(r"""
#include <stdio.h>
#include "mcu_gemm_s8.h"
static uint32_t state = 12345u;
static uint32_t next(void) { state = state * 1664525u + 1013904223u; return state; }
int main(void) {
    static const int32_t edges[] = {INT32_MIN, INT32_MIN + 1, -1073741825, -65536, -257, -256, -255, -129, -128,
                                    -127, -2, -1, 0, 1, 2, 127, 128, 255, 256, 65535, 1073741824, INT32_MAX};
    const int32_t n_edges = (int32_t)(sizeof edges / sizeof edges[0]);
    long bad = 0, checked = 0;
    int32_t right, i, j;
    for (right = 2; right <= 23; ++right) {
        for (i = 0; i < 5000; ++i) {
            const int32_t offset = (int32_t)(next() % 256u) - 128;
            const int32_t round_hi = (1 << (right - 2)) + offset * (1 << (right - 1));
            const int32_t m = i == 0 ? 0 : (i == 1 ? 1073741825 : (i == 2 ? INT32_MAX
                              : (int32_t)(1073741825u + next() % 1073741823u)));
            for (j = 0; j < n_edges + 16; ++j) {
                const uint32_t r = next();
                const int32_t x = j < n_edges ? edges[j] : (j % 2 ? (int32_t)(r >> (r % 31)) : (int32_t)r);
                bad += mcu_requantize(x, m, -right) + offset != mcu_requantize_folded(x, m, round_hi, right - 1);
                ++checked;
            }
        }
    }
    printf("%ld %ld\n", bad, checked);
    return bad != 0;
}
""")
    exe = tmp_path / "check"
    subprocess.run([compiler(), "-std=c99", "-Wall", "-Wextra", "-Werror", "-O1", *SANITIZE, "-I.",
                    "-o", str(exe), "check.c"], cwd=tmp_path, check=True, capture_output=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=False)
    bad, checked = (int(v) for v in out.stdout.split())
    assert out.returncode == 0 and bad == 0 and checked > 1_000_000, out.stdout + out.stderr


# ------------------------------------------------------------------ planner side

def _written_rows_overlap_later_reads(batches: int, in_h: int, in_w: int, out_h: int, out_w: int, k: int,
                                      stride: int, dil: int, pad: int, ring: int) -> bool:
    """Simulates mcu_dwconv_s8_inplace_rows' schedule: does a copied-back row cover input a later row reads?"""
    def reads(row: int) -> tuple[int, int] | None:
        b, oy = divmod(row, out_h)
        first, last = max(0, oy * stride - pad), min(in_h - 1, oy * stride - pad + (k - 1) * dil)
        return ((b * in_h + first) * in_w, (b * in_h + last + 1) * in_w) if first <= last else None

    rows = batches * out_h
    for done in range(rows):
        flushed_after = min(done + ring - 1, rows - 1)  # the last row computed before row `done` is copied
        lo, hi = done * out_w, (done + 1) * out_w
        for later in range(flushed_after + 1, rows):
            span = reads(later)
            if span and span[0] < hi and lo < span[1]:
                return True
    return False


def test_ring_rows_keep_every_input_row_until_read() -> None:
    rng = np.random.default_rng(5)
    for _ in range(400):
        batches, k, stride, dil = int(rng.integers(1, 3)), int(rng.integers(1, 8)), int(rng.integers(1, 4)), \
            int(rng.integers(1, 3))
        in_h, in_w, pad = int(rng.integers(1, 14)), int(rng.integers(1, 14)), int(rng.integers(0, k + 1))
        out_h = max(1, (in_h + 2 * pad - (k - 1) * dil - 1) // stride + 1)
        out_w = max(1, (in_w + 2 * pad - 1) // stride + 1)
        ring = dw_ring_rows(batches, in_h, in_w, out_h, out_w, k, stride, dil, pad)
        geometry = (batches, in_h, in_w, out_h, out_w, k, stride, dil, pad)
        assert not _written_rows_overlap_later_reads(*geometry, ring), geometry
        if ring > 1:  # and it is the smallest ring that does
            assert _written_rows_overlap_later_reads(*geometry, ring - 1), geometry


@pytest.mark.parametrize("path", dev_models(), ids=lambda p: p.stem)
def test_fast_scratch_never_raises_the_lower_bound(path, monkeypatch) -> None:
    from mcuforge.pipeline import load_model

    with_fast = plan_memory(load_model(path))
    for kind, rule in list(scratch_module.VARIANTS.items()):  # every kernel with its smallest scratch only
        monkeypatch.setitem(scratch_module.VARIANTS, kind, lambda op, graph, inplace, rule=rule: iter(
            [next(rule(op, graph, inplace))]))
    minimal = plan_memory(load_model(path))  # a new graph: the choices are memoized per graph
    assert with_fast.lower_bound == minimal.lower_bound
    assert with_fast.arena_bytes <= minimal.arena_bytes


# ------------------------------------------------------------------ Cortex-M4 / M7 (DSP paths)

def _cortex_m_graphs() -> list[tuple[Graph, bool]]:
    """(graph, in place allowed): every DSP path, the depthwise plane in place and not."""
    return ([(_pointwise_graph(i), True) for i in (0, 1, 2, 3, 5, 6, 9, 10, 11, 12, 13)]
            + [(_reread_pointwise_graph(), True), (_chained_pointwise_graph(), True)]
            + [(_im2col_graph(i, chained), True) for i in (0, 2, 3, 6, 7, 8) for chained in (False, True)]
            + [(_depthwise_graph(i, chained), True) for i in (0, 2, 3, 5, 6, 8, 10, 12, 13, 14, 15)
               for chained in (False, True)]
            + [(_depthwise_graph(i, True), False) for i in (0, 1, 3, 5, 8, 9, 11, 12, 13, 14, 15)]
            + [(_fc_graph(i), True) for i in (0, 5)])


def test_depthwise_plane_is_planned_in_place_and_not() -> None:
    planes = [kernel_scratch(g.ops[0], g, inplace).plane for g, inplace in _cortex_m_graphs()
              if g.ops[0].kind == "DEPTHWISE_CONV_2D"]
    assert sum(planes) >= 10 and not all(planes)


@pytest.mark.skipif(bool(toolchain_missing()), reason=f"needs the Arm toolchain and QEMU ({toolchain_missing()})")
@pytest.mark.parametrize("core", ["cortex-m4", "cortex-m7"])
def test_cortex_m_dsp_paths_match_reference(core: str) -> None:
    for k, (graph, inplace) in enumerate(_cortex_m_graphs()):
        lib = compile_graph(graph, f"fast_{k}", inplace=inplace)
        batch = [_inputs(graph, seed) for seed in range(2)]
        for xs, got in zip(batch, CortexMModel.build(lib, core=core).run_batch(batch)):
            for g, r in zip(got, reference.run(graph, xs)):
                assert np.array_equal(g, r), f"{core}: graph {k} ({graph.ops[0].kind}) != reference"


def _with_dead_channels(graph: Graph) -> Graph:
    """The first conv with the weight scales of channels 0-2 so small that their right shifts exceed what
    the folded requantization takes: channel 0's weights all zero and a huge bias (as in MLPerf VWW),
    channel 1 with a small bias (its output is the zero point), channel 2 with a huge negative bias (as in
    the dead ReLU channels of the Ambiq HAR model)."""
    op = graph.ops[0]
    w, bias = graph[op.inputs[1]], graph[op.inputs[2]]
    weights = np.array(w.data)
    weights[0] = 0
    scale = np.array(w.quant.scale)
    scale[:3] *= 1e-6
    b = np.array(bias.data)
    b[0], b[1], b[2] = 2**30, -1000, -(2**29)
    tensors = dict(graph.tensors)
    tensors[w.name] = replace(w, data=weights, quant=replace(w.quant, scale=scale.astype(np.float32)))
    bias_scale = (graph[op.inputs[0]].quant.s * scale).astype(np.float32)
    tensors[bias.name] = replace(bias, data=b, quant=replace(bias.quant, scale=bias_scale))
    return replace(graph, tensors=tensors)


@pytest.mark.parametrize("i", [0, 9])
def test_dead_channels_keep_the_folded_requantization(i: int) -> None:
    graph = _with_dead_channels(_pointwise_graph(i))
    q = conv_quant(graph.ops[0], graph)
    assert -int(np.min(q.shift)) > 23  # beyond the folded range before the dead-channel rewrite
    source = _assert_host_matches(graph, f"dead_{i}", trials=3)
    assert ".mode = MCU_REQUANT_FOLDED" in source
    x = _inputs(graph, 0)
    out = reference.run(graph, x)[0].reshape(-1, graph[graph.ops[0].outputs[0]].shape[-1])
    assert all(len(set(out[:, c].tolist())) == 1 for c in range(3))  # constant channels
