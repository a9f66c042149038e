"""C emitters: emit_conv."""
from __future__ import annotations

from .context import EmitContext, emitter  # noqa: F401
