"""Neural architecture search support: the candidate space and a fast, shape-only cost model.

    from mcuforge.nas import NetworkSpec, Stage, estimate, random_spec, to_graph
"""
from .cost import Estimate, estimate
from .space import Block, NetworkSpec, Stage, make_divisible, random_spec, to_graph

__all__ = ["Block", "Estimate", "NetworkSpec", "Stage", "estimate", "make_divisible", "random_spec", "to_graph"]
