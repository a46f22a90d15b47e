"""The command line and cluster submission; the only layer that imports the stage registry."""

from synthmix.pipeline.cli.main import main

__all__ = ["main"]
