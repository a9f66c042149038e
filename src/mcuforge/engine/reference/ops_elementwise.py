"""Reference kernels: ops_elementwise."""
from __future__ import annotations
