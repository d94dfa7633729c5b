"""`python -m pipeline.cli`: the citepipe command."""

import sys

from pipeline.cli import main

sys.exit(main())
