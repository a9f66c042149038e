"""mcuforge: int8 neural networks to dependency-free C for microcontrollers."""
from .errors import BudgetError, BuildError, McuforgeError, ModelError, UsageError

__version__ = "0.1.0"
__all__ = ["BudgetError", "BuildError", "McuforgeError", "ModelError", "UsageError", "__version__"]
