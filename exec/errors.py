"""Exceptions of the ``exec`` layer: every failure says which execution instance, chip and stage."""

from __future__ import annotations


class ExecError(Exception):
    """Base class of errors raised by :mod:`bss2.exec`."""


class ExecutionFailed(ExecError, RuntimeError):
    """Running one execution instance failed; the executor stays usable.

    ``instance`` (the execution instance id), ``chip`` (index into the executor's connections, or None
    for host instances) and ``stage`` (preprocess, build, execute, decode, postprocess) say where; the
    original exception is chained as ``__cause__``.
    """

    def __init__(self, message: str, *, instance: int | None, chip: int | None, stage: str) -> None:
        where = f"execution instance {instance}" + (f" on chip {chip}" if chip is not None else " (host)")
        super().__init__(f"{where}, stage {stage}: {message}")
        self.instance = instance
        self.chip = chip
        self.stage = stage


class InputError(ExecError, ValueError):
    """The inputs given to :meth:`JITExecutor.run` do not fit the graph (missing, wrong shape or range)."""


class UnsupportedGraphError(ExecError, ValueError):
    """The graph contains a combination of vertices this executor cannot turn into a program."""
