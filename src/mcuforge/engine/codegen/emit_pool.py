"""C emitters: emit_pool."""
from __future__ import annotations

from .context import EmitContext, emitter  # noqa: F401
