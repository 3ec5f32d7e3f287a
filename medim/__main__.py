"""`python -m medim`: the `medim` command line, for when the console script is not on PATH."""

import sys

from medim.cli import main

if __name__ == "__main__":
    sys.exit(main())
