"""Graph IR (numpy only): see graph.py for the data model and ops.py for the canonical operators."""
from .graph import DTYPE_BYTES, NUMPY_DTYPES, Graph, Op, QuantParams, Rewrite, Tensor, clone_tensor
from .ops import ACTIVATIONS, ALIAS_KINDS, INTERNAL_KINDS, SPECS, OpSpec, spec

__all__ = ["DTYPE_BYTES", "NUMPY_DTYPES", "Graph", "Op", "QuantParams", "Rewrite", "Tensor", "clone_tensor",
           "ACTIVATIONS", "ALIAS_KINDS", "INTERNAL_KINDS", "SPECS", "OpSpec", "spec"]
