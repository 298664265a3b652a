"""The two bases of the errors every command prints as one line at its edge
(`mmsearch.cli.main`), in a module that imports nothing: a command answered by the resident
process never imports numpy, the model code or the engine just to name what it catches."""

from __future__ import annotations


class IndexProblem(RuntimeError):
    """Base for index problems that deserve one clear line, not a traceback."""


class ModelLoadError(RuntimeError):
    """The model could not be loaded; the message says why and what to do."""
