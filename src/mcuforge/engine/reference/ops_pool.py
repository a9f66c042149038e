"""Reference kernels: ops_pool."""
from __future__ import annotations
