"""Reference kernels: ops_conv."""
from __future__ import annotations
