"""`python -m shared.seed`: the same as the `seed_data` command."""

import sys

from shared.seed.cli import main

sys.exit(main())
