"""Timing and traffic report of one :meth:`JITExecutor.run`."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import attrs

STAGES = ("preprocess", "build", "transfer", "execute", "decode", "postprocess")


@attrs.define
class InstanceRecord:
    """What happened to one execution instance (or one program, for merged chip programs)."""

    instance: int
    chip: int | None
    stages: dict[str, float] = attrs.field(factory=dict)
    hardware_time: float = 0.0
    words_sent: int = 0
    words_received: int = 0
    config_words: int = 0


@attrs.define
class ExecutionInfo:
    """Report of one run.

    ``stages``: seconds per stage summed over all programs (preprocess, build, transfer, execute, decode,
    postprocess); stages of concurrent programs overlap in wall time, so their sum can exceed ``wall_time``.
    ``hardware_time``: the chips' own estimate (seconds; the emulator's timing model), summed over programs,
    and ``hardware_time_critical``: the longest per-chip sum (chips run concurrently).
    ``words_sent`` / ``words_received`` / ``config_words``: 64-bit words over the links, and how many of the
    sent words were configuration writes.
    """

    stages: dict[str, float] = attrs.field(factory=lambda: dict.fromkeys(STAGES, 0.0))
    wall_time: float = 0.0
    hardware_time: float = 0.0
    hardware_time_critical: float = 0.0
    words_sent: int = 0
    words_received: int = 0
    config_words: int = 0
    records: list[InstanceRecord] = attrs.field(factory=list)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, repr=False, eq=False)
    _per_chip: dict[int | None, float] = attrs.field(factory=dict, repr=False, eq=False)  # hardware time per chip

    def add(self, record: InstanceRecord) -> None:
        """Fold one instance's record into the totals (thread-safe)."""
        self.add_all((record,))

    def add_all(self, records: Iterable[InstanceRecord]) -> None:
        """Fold several records into the totals at once (thread-safe)."""
        with self._lock:
            stages, per_chip = self.stages, self._per_chip
            for record in records:
                self.records.append(record)
                for stage, seconds in record.stages.items():
                    stages[stage] = stages.get(stage, 0.0) + seconds
                self.hardware_time += record.hardware_time
                self.words_sent += record.words_sent
                self.words_received += record.words_received
                self.config_words += record.config_words
                per_chip[record.chip] = per_chip.get(record.chip, 0.0) + record.hardware_time
            self.hardware_time_critical = max(per_chip.values(), default=0.0)


@contextmanager
def timed(record: InstanceRecord, stage: str) -> Iterator[None]:
    """Add the wall time of the block to ``record.stages[stage]``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        record.stages[stage] = record.stages.get(stage, 0.0) + time.perf_counter() - start
