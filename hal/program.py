"""Playback programs: what the FPGA executes, built from containers and coordinates.

A :class:`PlaybackProgramBuilder` appends register writes and reads, waits and events in program order;
:meth:`~PlaybackProgramBuilder.done` seals them into an immutable :class:`PlaybackProgram` whose
instruction words are one numpy ``uint64`` array. Every read returns a :class:`Ticket`; after a connection
executed the program (``bss2.comm.run``) the ticket decodes its container, before that ``get()`` raises
:class:`~bss2.hal.errors.TicketNotReadyError`.

Consecutive register words (a bulk container, a run of neighbouring registers) travel as one WRITE_BLOCK
or READ_BLOCK instruction: a whole synram costs 16,385 words per plane pair, not 32,768.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from . import coordinates as co
from . import wire
from .containers import Container, default_container_for
from .errors import HalError, HalTypeError, HalValueError, TicketNotReadyError

#: Runs of at least this many consecutive addresses are sent as one block instruction.
MIN_BLOCK_RUN = 3

_cookies = itertools.count(1)


class ProgramError(HalError, RuntimeError):
    """A program's responses do not match the program (missing end marker, wrong read count, chip errors)."""


def _runs(addresses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``[start, stop)`` index ranges of the runs of consecutive addresses."""
    breaks = np.flatnonzero(np.diff(addresses) != 1) + 1
    return np.concatenate(([0], breaks)), np.concatenate((breaks, [addresses.size]))


def encode_register_writes(addresses: np.ndarray, data: np.ndarray, min_block: int = MIN_BLOCK_RUN) -> np.ndarray:
    """Instruction words writing ``data[i]`` to ``addresses[i]``, in order, with blocks for contiguous runs.

    Runs of ``min_block`` or more consecutive addresses become WRITE_BLOCK instructions; the rest single
    WRITEs. Vectorised: Python work is per run, not per word.
    """
    addresses = np.asarray(addresses, dtype=np.int64).reshape(-1)
    data = np.asarray(data).reshape(-1)
    if addresses.size != data.size:
        raise HalValueError(f"addresses and data differ in length: {addresses.size} != {data.size}")
    if addresses.size == 0:
        return np.empty(0, np.uint64)
    starts, stops = _runs(addresses)
    long_runs = (stops - starts) >= min_block
    if not long_runs.any():
        return wire.encode_write(addresses, data)
    parts: list[np.ndarray] = []
    singles_from = 0
    for start, stop in zip(starts[long_runs], stops[long_runs]):
        if start > singles_from:
            parts.append(wire.encode_write(addresses[singles_from:start], data[singles_from:start]))
        parts.append(wire.encode_write_block(int(addresses[start]), data[start:stop]))
        singles_from = stop
    if singles_from < addresses.size:
        parts.append(wire.encode_write(addresses[singles_from:], data[singles_from:]))
    return np.concatenate(parts)


def encode_register_reads(addresses: np.ndarray, min_block: int = MIN_BLOCK_RUN) -> np.ndarray:
    """Instruction words reading ``addresses`` in order, with READ_BLOCK for contiguous runs."""
    addresses = np.asarray(addresses, dtype=np.int64).reshape(-1)
    if addresses.size == 0:
        return np.empty(0, np.uint64)
    starts, stops = _runs(addresses)
    if not ((stops - starts) >= min_block).any():
        return wire.encode_read(addresses)
    parts = []
    for start, stop in zip(starts, stops):
        if stop - start >= min_block:
            parts.append(wire.encode_read_block(int(addresses[start]), int(stop - start)))
        else:
            parts.append(wire.encode_read(addresses[start:stop]))
    return np.concatenate(parts)


class Ticket:
    """A pending read: decodes its container once the program has run."""

    __slots__ = ("_program", "container_type", "coordinate", "addresses", "offset")

    def __init__(self, container_type: type[Container], coordinate: co.Coordinate, addresses: np.ndarray, offset: int):
        self._program: PlaybackProgram | None = None
        self.container_type = container_type
        self.coordinate = coordinate
        self.addresses = addresses
        self.offset = offset  #: index of this ticket's first word among all register words the program reads

    @property
    def ready(self) -> bool:
        """Whether the program holding this ticket has run and delivered its responses."""
        return self._program is not None and self._program.executed

    def get(self) -> Container:
        """The container read from the chip.

        Raises :class:`~bss2.hal.errors.TicketNotReadyError` before the program has been executed.
        """
        if self._program is None or not self._program.executed:
            raise TicketNotReadyError(
                f"ticket for {self.container_type.__name__} at {self.coordinate!r} is not ready: "
                "run the program on a connection first (bss2.comm.run)"
            )
        data = self._program.read_data[self.offset : self.offset + self.addresses.size]
        return self.container_type.decode(data)

    def __repr__(self) -> str:
        return f"Ticket({self.container_type.__name__}, {self.coordinate!r}, ready={self.ready})"


class PlaybackProgram:
    """An immutable instruction stream with its tickets.

    ``words``: the instruction words (read-only uint64 array, ending in END). ``tickets``: the reads.
    ``expected_reads``: register words the chip must return. ``expected_response_words``: the minimum
    response length (reads + block headers + END marker; spikes and ADC samples come on top).
    """

    def __init__(self, words: np.ndarray, tickets: Sequence[Ticket], read_addresses: np.ndarray, cookie: int):
        self.words = words
        self.words.setflags(write=False)
        self.tickets = tuple(tickets)
        self.read_addresses = read_addresses
        self.cookie = cookie
        self.executed = False
        self.read_data = np.empty(0, np.uint32)
        self.spike_labels = np.empty(0, np.uint16)
        self.spike_times = np.empty(0, np.uint32)
        self.madc_values = np.empty(0, np.uint16)
        self.madc_times = np.empty(0, np.uint32)
        self.madc_channels = np.empty(0, np.uint8)
        for ticket in self.tickets:
            ticket._program = self

    @property
    def expected_reads(self) -> int:
        """Number of register words this program reads."""
        return int(self.read_addresses.size)

    @property
    def expected_response_words(self) -> int:
        """Minimum number of response words (read data, block headers and data, END)."""
        opcodes = (self.words >> np.uint64(56)).astype(np.uint8)
        is_data, headers, counts = wire.block_payload_mask(self.words, wire.Opcode.WRITE_BLOCK)
        real = ~is_data
        single = int(np.count_nonzero((opcodes == wire.Opcode.READ) & real))
        blocks = (self.words[real & (opcodes == wire.Opcode.READ_BLOCK)] & np.uint64(0xFFFF)).astype(np.int64)
        return single + int(blocks.size + ((blocks + 1) // 2).sum()) + 1

    @property
    def size_bytes(self) -> int:
        """Size of the instruction stream in bytes."""
        return int(self.words.nbytes)

    def deliver(self, responses: wire.Responses | np.ndarray) -> None:
        """Attach the chip's responses: checks them against the program, then makes the tickets ready.

        Raises :class:`ProgramError` (and changes nothing) if the end marker is missing or wrong, the
        number or addresses of read words differ, or the chip reported errors.
        """
        if isinstance(responses, np.ndarray):
            responses = wire.decode_responses(responses)
        if responses.end_cookies.size == 0 or int(responses.end_cookies[-1]) != self.cookie:
            raise ProgramError(
                f"program {self.cookie}: end-of-program marker missing or wrong "
                f"(got {responses.end_cookies.tolist()}); the responses are incomplete"
            )
        if responses.error_codes.size:
            details = ", ".join(
                f"{wire.ErrorCode(int(c)).name if int(c) in wire.ErrorCode._value2member_map_ else int(c)} "
                f"at word {int(i)} (opcode {int(o):#04x})"
                for c, o, i in zip(responses.error_codes[:5], responses.error_opcodes[:5], responses.error_indices[:5])
            )
            raise ProgramError(f"program {self.cookie}: the chip reported {responses.error_codes.size} error(s): {details}")
        if responses.read_data.size != self.read_addresses.size:
            raise ProgramError(
                f"program {self.cookie}: expected {self.read_addresses.size} read words, got {responses.read_data.size}"
            )
        if not np.array_equal(responses.read_addresses.astype(np.int64), self.read_addresses):
            raise ProgramError(f"program {self.cookie}: read responses answer other addresses than were read")
        self.read_data = responses.read_data
        self.spike_labels = responses.spike_labels
        self.spike_times = responses.spike_times
        self.madc_values = responses.madc_values
        self.madc_times = responses.madc_times
        self.madc_channels = responses.madc_channels
        self.executed = True

    def __repr__(self) -> str:
        return (
            f"PlaybackProgram(words={self.words.size}, tickets={len(self.tickets)}, reads={self.expected_reads}, "
            f"executed={self.executed})"
        )


class PlaybackProgramBuilder:
    """Append-only builder of a playback program (writes, reads, waits, events).

    Methods return ``self`` (except :meth:`read`, which returns a :class:`Ticket`), so calls chain.
    """

    def __init__(self) -> None:
        self._parts: list[np.ndarray] = []
        self._tickets: list[Ticket] = []
        self._read_addresses: list[np.ndarray] = []
        self._n_reads = 0
        self._n_words = 0

    def __len__(self) -> int:
        """Number of instruction words so far (without the END marker)."""
        return self._n_words

    def _append(self, words: np.ndarray) -> None:
        if words.size:
            self._parts.append(words)
            self._n_words += int(words.size)

    # -- register access
    def write(self, coordinate: co.Coordinate, container: Container) -> PlaybackProgramBuilder:
        """Write ``container`` to ``coordinate`` (checked: right coordinate type, writable block)."""
        if not isinstance(container, Container):
            raise HalTypeError(f"write() needs a register container, got {type(container).__name__}")
        addresses, words = container.encode(coordinate)
        self._append(encode_register_writes(addresses, words))
        return self

    def write_words(self, addresses: np.ndarray, data: np.ndarray) -> PlaybackProgramBuilder:
        """Write raw register words (for differential configuration; addresses must be mapped)."""
        self._append(encode_register_writes(addresses, data))
        return self

    def read(self, coordinate: co.Coordinate, container_type: type[Container] | None = None) -> Ticket:
        """Read the container at ``coordinate``; the type may be omitted where the coordinate is unambiguous."""
        if container_type is None:
            container_type = default_container_for(coordinate)
        addresses = container_type.addresses(coordinate)
        if not container_type.BLOCK.readable:
            raise HalValueError(f"{container_type.__name__} ({container_type.BLOCK.name}) is write-only and cannot be read")
        ticket = Ticket(container_type, coordinate, addresses, self._n_reads)
        self._append(encode_register_reads(addresses))
        self._tickets.append(ticket)
        self._read_addresses.append(addresses)
        self._n_reads += int(addresses.size)
        return ticket

    # -- time and events
    def timer_reset(self) -> PlaybackProgramBuilder:
        """Reset the FPGA timer to 0."""
        self._append(wire.encode_timer_reset())
        return self

    def wait_until(self, cycles: int) -> PlaybackProgramBuilder:
        """Block the playback until the timer reaches ``cycles`` (8 ns each, since the last timer reset)."""
        self._append(wire.encode_wait_until([int(cycles)]))
        return self

    def barrier(self) -> PlaybackProgramBuilder:
        """Wait until all earlier operations (reads, conversions) have completed."""
        self._append(wire.encode_barrier())
        return self

    def spikes(self, labels: Iterable[int] | np.ndarray, times: Iterable[int] | np.ndarray | None = None) -> PlaybackProgramBuilder:
        """Send events. Without ``times`` they go out now, in packs of three.

        With ``times`` (absolute timer cycles, one per label) the events are sorted by time; events at the
        same time share packs, and gaps are bridged by the packs' delay field (up to 63 cycles) or by
        WAIT_UNTIL words, vectorised.
        """
        labels_arr = np.asarray(list(labels) if not isinstance(labels, np.ndarray) else labels).reshape(-1)
        if times is None:
            self._append(wire.encode_spikes(labels_arr))
            return self
        times_arr = np.asarray(list(times) if not isinstance(times, np.ndarray) else times).reshape(-1)
        if times_arr.shape != labels_arr.shape:
            raise HalValueError(f"spikes: {labels_arr.size} labels but {times_arr.size} times")
        self._append(encode_timed_spikes(labels_arr, times_arr))
        return self

    def words(self, words: np.ndarray) -> PlaybackProgramBuilder:
        """Append raw instruction words (expert use; reads appended this way get no ticket)."""
        self._append(np.asarray(words, dtype=np.uint64).reshape(-1))
        return self

    # -- composition
    def merge(self, other: PlaybackProgramBuilder) -> PlaybackProgramBuilder:
        """Append everything of ``other`` (its tickets keep working); ``other`` is emptied."""
        if other is self:
            raise HalValueError("cannot merge a builder into itself")
        for ticket in other._tickets:
            ticket.offset += self._n_reads
            self._tickets.append(ticket)
        for part in other._parts:
            self._append(part)
        self._read_addresses.extend(other._read_addresses)
        self._n_reads += other._n_reads
        other.__init__()  # type: ignore[misc]
        return self

    def done(self) -> PlaybackProgram:
        """Seal the program (appends the END marker) and reset this builder to empty."""
        cookie = next(_cookies) & 0xFFFF_FFFF
        words = np.concatenate((*self._parts, wire.encode_end(cookie))) if self._parts else wire.encode_end(cookie)
        read_addresses = np.concatenate(self._read_addresses) if self._read_addresses else np.empty(0, np.int64)
        program = PlaybackProgram(words.astype(np.uint64, copy=False), self._tickets, read_addresses.astype(np.int64), cookie)
        self.__init__()  # type: ignore[misc]
        return program


def encode_timed_spikes(labels: np.ndarray, times: np.ndarray) -> np.ndarray:
    """SPIKES (and WAIT_UNTIL) words sending ``labels[i]`` at absolute timer ``times[i]`` (cycles).

    Events are sorted by time; up to three events of the same cycle share a pack; a gap of 1..63 cycles
    to the previous pack uses the pack's delay field, a longer gap a WAIT_UNTIL word before the pack.
    Assumes the timer has been reset at or before the first event (the program's timeline).
    """
    labels = np.asarray(labels)
    times = np.asarray(times)
    if times.size and (not np.issubdtype(times.dtype, np.integer) or times.min() < 0 or times.max() >= wire.TIMER_LIMIT):
        raise HalValueError(f"spike times must be integer cycles in [0, {wire.TIMER_LIMIT - 1}]")
    if labels.size == 0:
        return np.empty(0, np.uint64)
    order = np.argsort(times, kind="stable")
    labels = labels[order].astype(np.int64)
    times = times[order].astype(np.int64)
    # rank of each event among the events of its cycle -> pack index within the cycle
    new_time = np.concatenate(([True], np.diff(times) != 0))
    group_start = np.maximum.accumulate(np.where(new_time, np.arange(times.size), 0))
    rank = np.arange(times.size) - group_start
    pack_key = new_time | (rank % 3 == 0)
    pack_id = np.cumsum(pack_key) - 1
    n_packs = int(pack_id[-1]) + 1
    slot = rank % 3
    pack_labels = np.zeros((n_packs, 3), np.int64)
    pack_labels[pack_id, slot] = labels
    pack_counts = np.bincount(pack_id, minlength=n_packs)
    requested = times[pack_key]
    # packs issue one cycle each, so a pack can go out no earlier than one cycle after its predecessor
    index = np.arange(n_packs)
    pack_times = np.maximum.accumulate(requested - index) + index
    gap = np.diff(pack_times) - 1
    # the first pack is anchored with an absolute wait (earlier instructions of the program take cycles)
    needs_wait = np.concatenate(([True], gap > wire.MAX_SPIKE_DELAY))
    delays = np.concatenate(([0], np.where(gap > wire.MAX_SPIKE_DELAY, 0, gap)))
    payload = (
        (delays.astype(np.uint64) << np.uint64(50))
        | (pack_counts.astype(np.uint64) << np.uint64(48))
        | (pack_labels[:, 0].astype(np.uint64) << np.uint64(32))
        | (pack_labels[:, 1].astype(np.uint64) << np.uint64(16))
        | pack_labels[:, 2].astype(np.uint64)
    )
    spikes = (np.uint64(wire.Opcode.SPIKES) << np.uint64(56)) | payload
    waits = wire.encode_wait_until(pack_times[needs_wait])
    out = np.empty(spikes.size + waits.size, np.uint64)
    wait_positions = np.flatnonzero(needs_wait) + np.arange(waits.size)
    mask = np.zeros(out.size, bool)
    mask[wait_positions] = True
    out[mask] = waits
    out[~mask] = spikes
    return out


def program_from_words(words: np.ndarray) -> PlaybackProgram:
    """Wrap raw instruction words (ending in END) as a program without tickets (for replay and tests)."""
    words = np.asarray(words, dtype=np.uint64).reshape(-1)
    stream = wire.decode_instructions(words)
    ends = np.flatnonzero(stream.opcode == wire.Opcode.END)
    if ends.size == 0:
        raise HalValueError("program words must end with an END instruction")
    cookie = int(stream.low32[ends[-1]])
    reads = stream.opcode == wire.Opcode.READ
    blocks = stream.opcode == wire.Opcode.READ_BLOCK
    addresses: list[Any] = []
    read_idx = np.flatnonzero(reads | blocks)
    for i in read_idx:
        start = int(stream.addresses[i])
        if reads[i]:
            addresses.append(np.array([start]))
        else:
            addresses.append(start + np.arange(int(stream.payload[i] & np.uint64(0xFFFF))))
    read_addresses = np.concatenate(addresses).astype(np.int64) if addresses else np.empty(0, np.int64)
    return PlaybackProgram(words.copy(), [], read_addresses, cookie)
