"""`python -m synthmix`: what a submitted job's driver runs."""

import sys

from synthmix.pipeline.cli.main import main

sys.exit(main())
