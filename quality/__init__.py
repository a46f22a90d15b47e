"""Pure, Ray-free data-quality algorithms over Arrow/numpy batches."""
