"""C emitters: softmax family and fixed-point nonlinearities."""
from __future__ import annotations

from .context import EmitContext, emitter  # noqa: F401
