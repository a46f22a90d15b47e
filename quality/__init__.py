"""Pure, Ray-free data-quality algorithms over Arrow/numpy batches."""

# This folder is the package synthmix.<folder> (synthmix/__init__.py says why it refuses its bare name).
if __name__.partition(".")[0] != "synthmix":
    raise ImportError(
        f"import synthmix.{__name__}, not {__name__}: the folder is the package synthmix.{__name__}, and one module under two names is two modules"
    )
