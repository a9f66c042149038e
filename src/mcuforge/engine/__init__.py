"""The inference engine: reference interpreter, memory planner, C code generator and runtime kernels."""
from .compiler import compile_graph

__all__ = ["compile_graph"]
