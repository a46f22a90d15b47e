"""`python -m synthmix`: the CLI, as the `synthmix` command (and a submitted job's driver) runs it."""

import sys

from synthmix.pipeline.cli.main import main

sys.exit(main())
