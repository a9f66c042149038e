"""The inference engine: reference interpreter, memory planner, C code generator and runtime kernels."""
from ..operators import install
from .compiler import compile_graph

install()  # the operators that live in one module each (mcuforge.operators) enter the engine's tables

__all__ = ["compile_graph"]
