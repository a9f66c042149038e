"""Graphs made in code: the GraphBuilder and the built-in example network."""
from .builder import GraphBuilder
from .mobilenet import tiny_mobilenet

__all__ = ["GraphBuilder", "tiny_mobilenet"]
