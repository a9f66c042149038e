"""The command line: `mcuforge` (main), its subcommands' arguments (args, argtypes) and the NAS commands (nas)."""
from .main import main, parse_bytes, parse_fraction

__all__ = ["main", "parse_bytes", "parse_fraction"]
