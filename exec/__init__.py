"""``bss2.exec`` — the just-in-time executor over one or many chips.

:class:`JITExecutor` turns a :class:`bss2.graph.Graph` into playback programs, runs them on the
connections of :mod:`bss2.comm` and returns the results with an :class:`ExecutionInfo` (time per stage,
the emulator's estimated hardware time, words sent and received).
"""

from .errors import ExecError, ExecutionFailed, InputError, UnsupportedGraphError
from .executor import JITExecutor
from .info import STAGES, ExecutionInfo, InstanceRecord
from .spiking import SpikeInput, SpikeTrains, TimedSamples

__all__ = [
    "STAGES",
    "ExecError",
    "ExecutionFailed",
    "ExecutionInfo",
    "InputError",
    "InstanceRecord",
    "JITExecutor",
    "SpikeInput",
    "SpikeTrains",
    "TimedSamples",
    "UnsupportedGraphError",
]
