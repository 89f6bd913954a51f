"""`python -m resilience.cli`: the `resilience` command without its console script."""

import sys

from resilience.cli.main import main

sys.exit(main())
