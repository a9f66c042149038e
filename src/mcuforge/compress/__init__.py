"""Compression that deploys: weights re-quantized into the formats the engine stores compactly
(mcuforge.ir.formats). Uses ir and engine; the engine never imports it."""
