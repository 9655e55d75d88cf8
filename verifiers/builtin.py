"""Registers the built-in verifiers by task kind (imported lazily by verifiers.base)."""

from verifiers import code, math, puzzles, steps  # noqa: F401  (each registers its tasks)
