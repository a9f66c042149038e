"""Registry of reference kernels: one numpy function per canonical operator kind (Operator.reference,
entered by mcuforge.operators.install()).

A kernel takes (op, graph, args) where args[i] is the value of op.inputs[i] (None for an absent optional
operand) and returns one numpy array per op output, with the output tensor's dtype and shape.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ...ir import Graph, Op

Kernel = Callable[[Op, Graph, Sequence["np.ndarray | None"]], Sequence[np.ndarray]]
KERNELS: dict[str, Kernel] = {}
