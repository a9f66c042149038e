"""Compression that deploys: weights re-quantized or pruned into the formats the engine stores compactly
(mcuforge.ir.formats), after training (weights, run) or while training (prune). Uses ir and engine; the
engine never imports it."""
