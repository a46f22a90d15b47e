"""synthmix core: config, stage graph, run store, runner, engines, CLI."""

__version__ = "0.1.0"
