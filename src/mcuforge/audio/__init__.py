"""Audio front-end for keyword spotting: raw 16 kHz int16 audio -> log-mel features, in fixed point.

    from mcuforge.audio import FrontendConfig, features, to_float, emit_frontend_c, write_frontend
    cfg = FrontendConfig()                      # 30 ms Hann window, 20 ms hop, 512-point FFT, 40 mels, 20..4000 Hz
    f = features(clips_int16, cfg)              # (clips, 49, 40) int16: log2(mel + 2^-20) in Q10
    x = to_float(f)                             # ln(mel + 2^-20), float32
    write_frontend("out/", cfg, "kws")          # kws_frontend.h/.c beside a compiled library: the same bits in C

docs/audio.md: the definition, the C's instructions on Cortex-M, its scratch and table bytes.
"""
from .config import FrontendConfig
from .emit import emit_frontend_c
from .fixed import features, to_float
from .library import frontend_library
from .reference import log_mel_float
from .write import write_frontend

__all__ = ["FrontendConfig", "emit_frontend_c", "features", "frontend_library", "log_mel_float", "to_float",
           "write_frontend"]
