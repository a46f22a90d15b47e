"""`python -m pipeline.cli`: what a submitted job's driver runs."""

import sys

from pipeline.cli.main import main

sys.exit(main())
