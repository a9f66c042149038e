"""Compression that deploys: weights re-quantized or pruned into the formats the engine stores compactly
(mcuforge.ir.formats), after training (weights, run: `mcuforge compress`) or while training (prune:
magnitude masks; channels and channel_selection: structured pruning; mixed: a format per layer), and the
sweep that trains, deploys and ranks the combinations (sweep, baseline, quality, plots: `mcuforge compress
sweep`). Uses ir, quant and engine; the engine never imports it."""
