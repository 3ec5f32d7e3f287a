"""`python -m medim.cli`, the same as the `medim` console script."""

import sys

from medim.cli.entry import main

sys.exit(main())
