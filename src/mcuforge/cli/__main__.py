"""`python -m mcuforge.cli`: the same as the `mcuforge` command."""
import sys

from .main import main

sys.exit(main())
