"""From PyTorch to int8: `mcuforge quantize` (pipeline) and the float model's outputs for `validate`
(float_reference)."""
