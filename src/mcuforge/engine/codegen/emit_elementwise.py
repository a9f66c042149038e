"""C emitters: emit_elementwise."""
from __future__ import annotations

from .context import EmitContext, emitter  # noqa: F401
