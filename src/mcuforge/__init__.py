"""mcuforge: int8 neural networks to dependency-free C for microcontrollers.

    import mcuforge
    m = mcuforge.compile("model.tflite", board="stm32f746")
    m.write("out/"); y = m.run(x); print(m.report)

(mcuforge.api; imported on first use, so that `import mcuforge` stays light.)"""
from .errors import BudgetError, BuildError, McuforgeError, ModelError, UsageError

__version__ = "0.1.0"
__all__ = ["BudgetError", "BuildError", "McuforgeError", "Model", "ModelError", "UsageError", "__version__", "compile"]


def __getattr__(name: str):
    if name in ("compile", "Model"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'mcuforge' has no attribute {name!r}")
