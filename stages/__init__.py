"""Stage implementations: one module per stage, each a thin wiring of `quality/` and `pipeline/`."""
