"""Reference kernels: ops_shape."""
from __future__ import annotations
