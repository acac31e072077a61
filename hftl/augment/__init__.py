"""Data augmentation as small numpy functions: deterministic given a ``numpy.random.Generator``."""
