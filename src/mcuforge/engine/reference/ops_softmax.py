"""Reference kernels: softmax family and fixed-point nonlinearities."""
from __future__ import annotations
