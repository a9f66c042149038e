"""What one operator module defines: `Operator`, every fact the engine needs about the operator, in one place.

An operator module (mcuforge.operators.<op>) builds one `Operator` from plain functions: how it is read from
and written to .tflite, its operands and shape/type rule, its Prepare (the quantization constants, computed
once as TFLM computes them; the reference and the emitter both call it), its numpy reference, its MAC count,
its planner facts (the inputs it may overwrite in place, its kernel's scratch variants) and its C emitter.
`install` enters each fact in the table of the stage that uses it (ir.ops.SPECS, ir.shapes.RULES, the
reader's CONVERTERS, the writer's LOWERINGS, the reference's KERNELS, the code generator's EMITTERS,
opinfo's MACS, the planner's INPLACE and VARIANTS), so the stages look operators up, and a new
operator needs no edit in any of them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ..ir.graph import Graph, Op
from ..ir.ops import OpSpec
from .variants import Variants


def _no_macs(op: Op, graph: Graph) -> int:
    return 0


@dataclass(frozen=True)
class Operator:
    kind: str  # the TFLite builtin it is read from; the canonical kind (ir.ops) when it has a `spec`
    # read, arity and write are None for an internal operator (ir.ops.INTERNAL_KINDS: PASTE ...)
    read: Callable[[Any, dict], list[Op]] | None  # (frontends.tflite_ops.RawOp, tensors) -> canonical op(s)
    arity: tuple[int, int, tuple[int, ...]] | None  # .tflite inputs: fewest, most, optional positions
    write: Callable[[Any, Op], None] | None  # (the writer's _Lowering, op): emit the TFLite operator
    # A canonical operator of its own has the rest; an operator the reader lowers into existing canonical
    # ops (PACK into RESHAPE and CONCATENATION ...) has none of them.
    spec: OpSpec | None = None  # operands (in order), attributes, state and constant operands
    check: Callable[[Op, Graph, str], None] | None = None  # shapes and types: ModelError(where + what);
    # only an internal operator, which the engine's own rewrites make, may go without
    reference: Callable[[Op, Graph, Sequence["np.ndarray | None"]], Sequence[np.ndarray]] | None = None
    emit: Callable[[Op, Any], str] | None = None  # (op, codegen EmitContext) -> the layer's C statements
    macs: Callable[[Op, Graph], int] = _no_macs
    scratch: Callable[[Op, Graph], int] | None = None  # fixed bytes of kernel scratch (the planner packs it)
    version: int = 1  # the TFLite operator version the writer declares
    many_outputs: bool = False  # SPLIT, UNPACK: one or more outputs
    # The inputs the kernel may overwrite with its output (lifetimes not considered; engine.plan.inplace).
    # None: an elementwise spec's rule (inplace.elementwise_inputs), else never in place.
    inplace: Callable[[Op, Graph], list[str]] | None = None
    variants: Variants | None = None  # kernels whose scratch the planner chooses (engine.plan.scratch)
    also_reads: tuple[tuple[str, tuple[int, int, tuple[int, ...]]], ...] = ()  # other builtins `read` takes

    def install(self) -> None:
        from ..engine.codegen.context import EMITTERS
        from ..engine.opinfo import MACS
        from ..engine.plan.inplace import INPLACE, elementwise_inputs
        from ..engine.plan.scratch import VARIANTS, fixed_scratch
        from ..engine.reference.registry import KERNELS
        from ..frontends import tflite_ops, tflite_writer
        from ..ir.ops import SPECS
        from ..ir.shapes import RULES

        if self.read is not None:
            assert self.arity is not None
            for kind, arity in ((self.kind, self.arity), *self.also_reads):
                tflite_ops.CONVERTERS[kind] = self.read
                tflite_ops.ARITY[kind] = arity
                tflite_writer.VERSIONS[kind] = self.version
        if self.many_outputs:
            tflite_ops.MULTI_OUTPUT.add(self.kind)
        if self.write is not None:
            tflite_writer.LOWERINGS[self.kind] = self.write
            tflite_writer.VERSIONS[self.kind] = self.version
        if self.spec is None:
            return
        assert self.reference and self.emit and (self.check or self.read is None), self.kind
        SPECS[self.kind] = self.spec
        if self.check is not None:
            RULES[self.kind] = self.check
        KERNELS[self.kind] = self.reference
        EMITTERS[self.kind] = self.emit
        MACS[self.kind] = self.macs
        if self.scratch is not None or self.variants is not None:
            VARIANTS[self.kind] = self.variants or fixed_scratch(self.scratch)
        inplace = self.inplace or (elementwise_inputs if self.spec.elementwise else None)
        if inplace is not None:
            INPLACE[self.kind] = inplace
