"""The chip emulator: executes wire-format instruction words against register memory and the analog core.

Execution is vectorised over the instruction stream: the words are decoded and checked at once, the
timeline (each instruction's start time in cycles) comes from cumulative sums with a running maximum for
WAIT_UNTIL, and the stream is cut into *runs*: maximal stretches of configuration writes (applied to
register memory at once, last write wins) and stretches of everything else (events, resets, reads,
waits), which the analog core (:mod:`.dynamics`) processes with array operations against the constant
configuration of that stretch. Python loops run per run, per timer reset and per block header, never per
word, event or batch entry.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Final

import attrs
import numpy as np

from .. import wire
from ..errors import HalValueError
from ..regmap import REGISTER_MAP
from ..wire import ErrorCode, Opcode, ResponseType
from . import kernels
from .config import EmulatorConfig
from .dynamics import AnalogCore, DynamicsInput, background_enabled
from .fastpath import execute_hagen

_log = logging.getLogger("bss2.hal")

_U64 = np.uint64
_ACCESS_CODE = {"rw": 1, "ro": 2, "wo": 3}
_BLOCKS = list(REGISTER_MAP)
ADDRESS_END: Final = max(b.last_address for b in _BLOCKS) + 1


def _build_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    block_of = np.full(ADDRESS_END, -1, dtype=np.int16)
    access = np.zeros(ADDRESS_END, dtype=np.uint8)
    defaults = np.zeros(ADDRESS_END, dtype=np.uint32)
    for index, block in enumerate(_BLOCKS):
        addresses = block.all_addresses
        block_of[addresses] = index
        access[addresses] = _ACCESS_CODE[block.access]
        defaults[addresses] = np.broadcast_to(block.default_words(), addresses.shape)
    return block_of, access, defaults


_BLOCK_OF, _ACCESS, _DEFAULTS = _build_tables()
_MAPPED_CUM = np.concatenate(([0], np.cumsum(_ACCESS > 0)))
_RO_CUM = np.concatenate(([0], np.cumsum(_ACCESS == 2)))


def _base(name: str) -> int:
    return REGISTER_MAP[name].base


CHIP_ID = _base("chip_id")
CHIP_RESET = _base("chip_reset")
TIMER = _base("timer")
NEURON_RESET = _base("neuron_reset")
SPIKE_INJECTION = _base("spike_injection")
MADC_CONTROL = _base("madc_control")
CADC_SAMPLES = _base("cadc_sample_quad")
CAPMEM = REGISTER_MAP["capmem_cell"]
SYNAPSES = REGISTER_MAP["synapse_quad"]
_SYNAPSES_BASE, _SYNAPSES_LAST = SYNAPSES.base, SYNAPSES.last_address
_SYNAPSE_WRITE_OPS = (int(Opcode.WRITE), int(Opcode.WRITE_BLOCK))
PPU_CONTROL = REGISTER_MAP["ppu_control"]
COUNTERS = REGISTER_MAP["crossbar_output_event_counter"]
# the first word of each CADC sample row (cadc * 2 + channel type): reading it converts the row
_ROW_FIRST = CADC_SAMPLES + 64 * np.arange(4)
_TRIGGERS = (CHIP_RESET, NEURON_RESET, SPIKE_INJECTION, MADC_CONTROL, TIMER)


@attrs.frozen
class Timing:
    """Hardware time of one program (seconds) and its parts.

    ``chip_s``: the chip timeline (issue cycles, waits, event delays, resets, ADC conversions);
    ``host_link_s``: the larger of instruction and response words over the host link;
    ``chip_io_s``: all words over the FPGA-chip I/O. ``total_s`` is the largest of the three.
    """

    chip_s: float
    host_link_s: float
    chip_io_s: float
    instruction_words: int
    response_words: int

    @property
    def total_s(self) -> float:
        """The program's hardware time: the slowest of chip timeline and links."""
        return max(self.chip_s, self.host_link_s, self.chip_io_s)


class Emulator:
    """An emulated BrainScaleS-2 chip (see ``docs/emulator.rst`` for the physical model).

    ``seed`` is the chip serial: it seeds the fixed pattern (``chip_id = seed & 0xFFFFFFFF``, readable in the
    ``chip_id`` register) and the temporal noise. State (registers, membranes, CapMem, clock) persists
    across :meth:`execute` calls until :meth:`reset` or a write of ``chip_reset.reset = 1``.
    """

    def __init__(self, seed: int = 0, config: EmulatorConfig | None = None) -> None:
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
            raise HalValueError(f"seed = {seed!r} must be a non-negative integer")
        self.seed = int(seed)
        self.chip_id = self.seed & 0xFFFF_FFFF
        self.config = config if config is not None else EmulatorConfig.default()
        self.core = AnalogCore(self.chip_id, self.seed, self.config)
        self.last_timing = Timing(0.0, 0.0, 0.0, 0, 0)
        self.fast_path = True  # dedicated path for canonical hagen programs (same physics; off: general path)
        self.reset()

    # ------------------------------------------------------------------------------------------- state
    def reset(self) -> None:
        """Power-on state: registers at their defaults, CapMem at 0, membranes at rest, clock at 0."""
        self.memory = _DEFAULTS.copy()
        self.memory[CHIP_ID] = self.chip_id
        self.time = 0.0  # model clock, cycles since power-on
        self.timer_zero = 0.0  # model time at which the FPGA timer read 0
        self.core.power_on(self.memory)

    @property
    def hardware_time(self) -> float:
        """Hardware time of the last program in seconds (see :class:`Timing`)."""
        return self.last_timing.total_s

    # ----------------------------------------------------------------------------------------- execute
    def execute(self, words: np.ndarray) -> np.ndarray:
        """Run one program of instruction words; return the response words (uint64).

        Malformed words produce ERROR responses and execution continues; only an argument that is not a
        1-D integer array raises (:class:`bss2.hal.errors.EncodingError`).
        """
        t0 = self.time
        if self.fast_path and isinstance(words, np.ndarray):
            control = self._execute_control(words)
            if control is not None:  # timer, waits, barriers and END on a quiet chip
                self._set_timing(self.time - t0, int(words.size), int(control.size))
                return control
            canonical = words.ndim == 1 and words.size > 0 and words[0] == _TIMER_RESET_WORD  # a vector first
            fast = execute_hagen(self, words) if canonical else None
            if fast is not None:  # a canonical hagen MAC program (see .fastpath)
                self._set_timing(self.time - t0, int(words.size), int(fast.size))
                return fast
            synapse_prefix = self._synapse_prefix(words)
            if synapse_prefix is not None:  # weight update, then the vectors (one compiled pass each)
                tail = self._execute_vectors(words[synapse_prefix:])
                self._set_timing(self.time - t0, int(words.size), int(tail.size))
                return tail
            split = _hagen_suffix_start(words)
            if split is not None:
                # configuration (general path), then the canonical MAC vectors (fast path if they qualify)
                head = self._execute_synapse_writes(words[:split])
                if head is None:
                    head = self._execute_general(words[:split])
                tail = self._execute_vectors(words[split:])
                responses = np.concatenate((head, tail))
                self._set_timing(self.time - t0, int(words.size), int(responses.size))
                return responses
        responses = self._execute_general(words)
        self._set_timing(self.time - t0, int(np.asarray(words).size), int(responses.size))
        return responses

    def execute_parts(self, parts: Sequence[np.ndarray]) -> np.ndarray:
        """Run the concatenation of ``parts`` (1-D uint64 arrays): the same as
        ``execute(np.concatenate(parts))``, except that leading parts of nothing but complete synapse writes
        before a hagen program are stored straight from their arrays, with no joined copy (the executor sends
        cached weight blocks this way). A part that is not a 1-D integer array raises
        :class:`bss2.hal.errors.EncodingError` (nothing runs)."""
        parts = tuple(wire._as_word_array(f"parts[{i}]", part) for i, part in enumerate(parts))
        if len(parts) <= 1:
            return self.execute(parts[0] if parts else np.empty(0, np.uint64))
        if self.fast_path:
            responses = self._synapse_parts(parts)
            if responses is not None:
                return responses
        return self.execute(np.concatenate(parts))

    def _synapse_parts(self, parts: tuple[np.ndarray, ...]) -> np.ndarray | None:
        """With the compiled kernels: every part but the last nothing but complete WRITE/WRITE_BLOCK
        instructions into the synapse array, the last starting a hagen vector; stores the writes, runs the
        last part and returns its responses; else None and nothing changed."""
        tail = parts[-1]
        if (kernels.mode() != "numba" or not all(part.flags.c_contiguous and part.flags.aligned for part in parts)
                or not _starts_vector(tail, 0)):
            return None
        t0 = self.time
        stored = kernels.store_writes(parts[:-1], _SYNAPSE_WRITE_OPS, _SYNAPSES_BASE, _SYNAPSES_LAST, self.memory)
        if stored is None:
            return None
        self._synapses_stored(stored[0] + stored[1])
        responses = self._execute_vectors(tail)
        self._set_timing(self.time - t0, sum(int(part.size) for part in parts), int(responses.size))
        return responses

    def _execute_vectors(self, words: np.ndarray) -> np.ndarray:
        """MAC vectors after a configuration prefix: the hagen fast path where it applies, else the general
        interpreter."""
        responses = execute_hagen(self, words)
        return self._execute_general(words) if responses is None else responses

    def _execute_control(self, words: np.ndarray) -> np.ndarray | None:
        """A short program of nothing but TIMER_RESET, WAIT_UNTIL, BARRIER and END (well formed) on a chip
        where nothing can happen by itself (no background source, no MADC recording, CapMem settled, no
        neuron able to fire): only the clock advances and END answers; else None (nothing changed).

        Equivalent to the general path, whose dynamics return nothing for such a run (tested against it).
        """
        n = words.size
        if not 0 < n <= _CONTROL_LIMIT or words.dtype != np.uint64 or words.ndim != 1:
            return None
        ops = (words >> np.uint64(56)).tolist()
        payloads = (words & np.uint64(0x00FF_FFFF_FFFF_FFFF)).tolist()
        for op, payload in zip(ops, payloads):
            if op in _NO_PAYLOAD:
                if payload:
                    return None
            elif op not in _LOW_PAYLOAD or payload >> 32:
                return None
        core = self.core
        if core.madc_active or not core.capmem_settled or background_enabled(self.memory):
            return None
        if not core._quiet(core.params(self.memory, self.time)):
            return None
        t, zero, step = self.time, self.timer_zero, float(self.config.instruction_cycles)
        ends = []
        for op, payload in zip(ops, payloads):
            start = t
            t += step
            if op == _TIMER_RESET_OP:
                zero = start
            elif op == _WAIT_OP:
                t = max(t, zero + payload)
            elif op == _END_OP:
                ends.append(_END_RESPONSE | payload)
        self.time, self.timer_zero = t, zero
        core.settle_to(t)
        return np.array(ends, dtype=np.uint64)

    def _synapse_prefix(self, words: np.ndarray) -> int | None:
        """With the compiled kernels: a prefix of nothing but WRITE/WRITE_BLOCK into the synapse array,
        followed by the first vector of a hagen program, is stored (as :meth:`_execute_synapse_writes`
        would) and the index of the vectors returned; else None and nothing changed."""
        if kernels.mode() != "numba" or words.dtype != np.uint64 or words.ndim != 1 or not words.flags.c_contiguous:
            return None
        stop, _, _ = kernels.write_prefix(words, _SYNAPSE_WRITE_OPS, _SYNAPSES_BASE, _SYNAPSES_LAST)
        if stop <= 0 or not _starts_vector(words, stop):
            return None
        stop, instructions, data_words = kernels.write_prefix(words, _SYNAPSE_WRITE_OPS, _SYNAPSES_BASE, _SYNAPSES_LAST,
                                                              self.memory, checked=True)
        self._synapses_stored(instructions + data_words)
        return stop

    def _synapses_stored(self, words_issued: float) -> None:
        """After synapse writes of ``words_issued`` instruction and data words: only the weight caches depend
        on them; each word takes ``instruction_cycles``."""
        end_time = self.time + self.config.instruction_cycles * float(words_issued)
        self.core.synapses_written()
        self.time = end_time
        self.core.settle_to(end_time)

    def _execute_synapse_writes(self, words: np.ndarray) -> np.ndarray | None:
        """A prefix of nothing but complete WRITE/WRITE_BLOCK instructions into the synapse array (the
        executor's weight updates) stores its words and advances time without the general interpreter;
        anything else returns None (nothing changed) and takes the general path.

        Equivalent to the general path: synapse words accept every 32-bit value, respond nothing and only
        invalidate the weight caches; each instruction takes ``instruction_cycles``, a block also one per
        data word.
        """
        stream = wire.decode_instructions(words)
        opcode = stream.opcode
        single = opcode == Opcode.WRITE
        if not np.all(single | (opcode == Opcode.WRITE_BLOCK)):
            return None
        registers = np.bincount(stream.block_of, minlength=stream.block_headers.size)
        if stream.block_headers.size and not np.array_equal(registers, stream.block_counts):
            return None  # truncated block: the general path reports it
        addresses, data = stream.writes()
        if addresses.size == 0 or addresses.min() < _SYNAPSES_BASE or addresses.max() > _SYNAPSES_LAST:
            return None
        keep = _last_writes(addresses)
        if keep is not None:
            addresses, data = addresses[keep], data[keep]
        self.memory[addresses] = data
        self._synapses_stored(opcode.size + float(np.ceil(stream.block_counts / 2).sum()))
        return np.empty(0, np.uint64)

    def _execute_general(self, words: np.ndarray) -> np.ndarray:
        """The general interpreter: every instruction, in order, against the register map and the physics."""
        t0 = self.time
        stream = wire.decode_instructions(words)
        program = _Program(stream, self)
        starts = program.timeline(self)
        end_time = starts[-1]
        results = _Results(program)
        self.core.begin_recording()
        for begin, end, is_config in program.runs():
            if is_config:
                self._apply_config(program, begin, end, starts)
            else:
                self._run_dynamics(program, begin, end, starts, results, end_time)
        self.time = end_time
        self.core.settle_to(end_time)
        if self.core.recording_overflow and program.other.size and not program.error[program.other[-1]]:
            # the recording memory filled up: the last instruction that can answer (not SPIKES) reports it; the
            # records kept are the earliest
            program.error[program.other[-1]] = ErrorCode.RECORDING_OVERFLOW
        responses = results.assemble(starts[:-1])
        if _log.isEnabledFor(logging.DEBUG):
            n_errors = int(np.count_nonzero(program.error))
            _log.debug("executed %d words (%d runs, %d errors) in %.0f chip cycles", stream.words.size, len(program.runs()), n_errors, end_time - t0)
        return responses

    def _set_timing(self, cycles: float, n_in: int, n_out: int) -> None:
        self.last_timing = Timing(
            chip_s=float(cycles * wire.CYCLE_SECONDS),
            host_link_s=max(n_in, n_out) * 64 / self.config.host_link_bits_per_s,
            chip_io_s=(n_in + n_out) * 64 / self.config.chip_io_bits_per_s,
            instruction_words=n_in,
            response_words=n_out,
        )

    # ---------------------------------------------------------------------------------- config writes
    def _apply_config(self, program: _Program, begin: int, end: int, starts: np.ndarray) -> None:
        resets = np.flatnonzero(program.chip_reset[begin:end]) + begin
        if resets.size:
            begin = int(resets[-1]) + 1  # writes before the last reset are wiped by it
            self.memory = _DEFAULTS.copy()
            self.memory[CHIP_ID] = self.chip_id
            # the FPGA timer belongs to the FPGA and keeps running through a chip reset
            self.core.power_on(self.memory, time=float(starts[resets[-1]]))
        addresses, values, order_instr = program.config_writes(begin, end)
        if addresses.size == 0:
            return
        keep = _last_writes(addresses)
        if keep is not None:
            addresses, values, order_instr = addresses[keep], values[keep], order_instr[keep]
        self.memory[addresses] = values
        self.core.config_written(self.memory, addresses, values, starts[order_instr])

    # -------------------------------------------------------------------------------------- dynamics
    def _run_dynamics(self, program: _Program, begin: int, end: int, starts: np.ndarray, results: _Results, end_time: float) -> None:
        run_end = float(starts[end]) if end < starts.size - 1 else end_time

        s_lo, s_hi = np.searchsorted(program.spike_index, [begin, end])
        spike_ok = program.spike_ok[s_lo:s_hi]
        spike_instr = program.spike_index[s_lo:s_hi]
        lanes = program.spike_lanes[s_lo:s_hi]
        if not spike_ok.all():
            spike_instr, lanes = spike_instr[spike_ok], lanes[spike_ok]
        delays = (lanes[:, 3] >> np.uint16(2)) & np.uint16(63)
        counts = (lanes[:, 3] & np.uint16(3)).astype(np.int64)
        labels3 = lanes[:, 2::-1]  # a view: labels 0, 1, 2
        o_lo, o_hi = np.searchsorted(program.other, [begin, end])
        instr = program.other[o_lo:o_hi]  # the run's non-SPIKES instructions
        t = starts[instr]
        writes = (program.opcode[instr] == Opcode.WRITE) & program.ok[instr]
        address = program.address[instr]
        data = program.low32[instr]
        inject = np.flatnonzero(writes & (address == SPIKE_INJECTION))
        neuron_reset = np.flatnonzero(writes & (address == NEURON_RESET))
        madc = np.flatnonzero(writes & (address == MADC_CONTROL))
        conv_instr, conv_row = program.conversions_in(begin, end)

        dyn = DynamicsInput(
            t_begin=float(starts[begin]),
            t_end=run_end,
            spike_instr=spike_instr,
            spike_time=starts[spike_instr] + delays,
            spike_labels=labels3,
            spike_counts=counts,
            inject_instr=instr[inject],
            inject_time=t[inject],
            inject_label=(data[inject] & 0xFFFF).astype(np.uint16),
            reset_instr=instr[neuron_reset],
            reset_time=t[neuron_reset],
            reset_quadrants=(data[neuron_reset] & 0xF).astype(np.int64),
            conv_instr=conv_instr,
            conv_time=starts[conv_instr],
            conv_row=conv_row,
            madc_time=t[madc],
            madc_start=(data[madc] & 1).astype(bool),
            madc_stop=((data[madc] >> 1) & 1).astype(bool),
            read_counter_times=program.counter_read_times(begin, end, starts),
        )
        out = self.core.run(dyn, self.memory)
        results.add_dynamics(program, begin, end, starts, out, self)


class _Program:
    """The decoded, checked instruction stream of one ``execute`` call (all arrays per instruction)."""

    def __init__(self, stream: wire.InstructionStream, emulator: Emulator) -> None:
        self.stream = stream
        op = stream.opcode
        payload = stream.payload
        n = op.size
        self.n = n
        self.opcode = op
        self.payload = payload
        error = np.zeros(n, dtype=np.uint8)
        # SPIKES dominate hagen programs: check them apart from the (few) other instructions, on the
        # 16-bit lanes of the payload (lane 3: delay and count, lanes 2, 1, 0: labels 0, 1, 2)
        is_spikes = op == Opcode.SPIKES
        spike_index = np.flatnonzero(is_spikes)
        other = np.flatnonzero(~is_spikes)
        lanes = payload[spike_index].astype("<u8", copy=False).view("<u2").reshape(-1, 4)
        spike_count = lanes[:, 3] & np.uint16(3)
        bad_spikes = (spike_count == 0) | ((spike_count < 2) & (lanes[:, 1] != 0)) | ((spike_count < 3) & (lanes[:, 0] != 0))
        error[spike_index[bad_spikes]] = ErrorCode.MALFORMED
        self.spike_index = spike_index
        self.spike_lanes = lanes
        self.spike_ok = ~bad_spikes
        self.other = other
        o_payload = payload[other]
        o_addr = ((o_payload >> _U64(32)) & _U64(0xFF_FFFF)).astype(np.int64)
        o_low = (o_payload & _U64(0xFFFF_FFFF)).astype(np.int64)
        address = np.zeros(n, dtype=np.int64)
        address[other] = o_addr
        low = np.zeros(n, dtype=np.int64)
        low[other] = o_low
        self.address, self.low32 = address, low
        o_op = op[other]
        o_err = np.zeros(other.size, dtype=np.uint8)

        def flag(condition: np.ndarray, code: int) -> None:
            np.copyto(o_err, np.uint8(code), where=condition & (o_err == 0))

        count = (o_payload & _U64(0xFFFF)).astype(np.int64)
        is_write, is_read = o_op == Opcode.WRITE, o_op == Opcode.READ
        is_wblock, is_rblock = o_op == Opcode.WRITE_BLOCK, o_op == Opcode.READ_BLOCK
        flag((o_op < Opcode.WRITE) | (o_op > Opcode.END), ErrorCode.UNKNOWN_OPCODE)
        malformed = (
            (is_read & (o_low != 0))
            | ((is_wblock | is_rblock) & (((o_low >> 16) != 0) | (count == 0)))
            | (((o_op == Opcode.TIMER_RESET) | (o_op == Opcode.BARRIER)) & (o_payload != 0))
            | (((o_op == Opcode.WAIT_UNTIL) | (o_op == Opcode.END)) & ((o_payload >> _U64(32)) != 0))
        )
        flag(malformed, ErrorCode.MALFORMED)

        # WRITE_BLOCK data: which instruction owns each block, whether it is complete
        header_instr = np.searchsorted(stream.index, stream.block_headers)
        available = np.bincount(stream.block_of, minlength=header_instr.size)[: header_instr.size]
        header_other = np.searchsorted(other, header_instr)
        truncated = np.zeros(other.size, dtype=bool)
        truncated[header_other[available < stream.block_counts]] = True
        flag(truncated, ErrorCode.TRUNCATED_BLOCK)

        single = is_write | is_read
        span = np.where(is_wblock | is_rblock, count, np.where(single, 1, 0))
        first = np.minimum(o_addr, ADDRESS_END)
        last = np.minimum(o_addr + span, ADDRESS_END)
        mapped = (_MAPPED_CUM[last] - _MAPPED_CUM[first]) == span
        flag((single | is_wblock | is_rblock) & ~mapped, ErrorCode.UNMAPPED_ADDRESS)
        read_only = (_RO_CUM[last] - _RO_CUM[first]) > 0
        flag((is_write | is_wblock) & read_only, ErrorCode.READ_ONLY)

        # field values the chip rejects: CapMem code 1023; PPU start (not emulated)
        in_capmem = (o_addr >= CAPMEM.base) & (o_addr <= CAPMEM.last_address)
        flag(is_write & in_capmem & ((o_low & 0x3FF) == 0x3FF), ErrorCode.INVALID_VALUE)
        in_ppu = (o_addr >= PPU_CONTROL.base) & (o_addr <= PPU_CONTROL.last_address)
        flag(is_write & in_ppu & ((o_low & 1) == 1), ErrorCode.NOT_EMULATED)
        block_data_address = np.zeros(0, np.int64)
        if stream.block_of.size:
            first_of_block = np.concatenate(([0], np.cumsum(available)[:-1]))
            block_data_address = address[header_instr][stream.block_of] + (np.arange(stream.block_of.size) - first_of_block[stream.block_of])
            data = stream.block_data.astype(np.int64)
            bad_capmem = (block_data_address >= CAPMEM.base) & (block_data_address <= CAPMEM.last_address) & ((data & 0x3FF) == 0x3FF)
            bad_ppu = (block_data_address >= PPU_CONTROL.base) & (block_data_address <= PPU_CONTROL.last_address) & ((data & 1) == 1)
            for mask, code in ((bad_capmem, ErrorCode.INVALID_VALUE), (bad_ppu, ErrorCode.NOT_EMULATED)):
                if mask.any():
                    bad_headers = np.zeros(other.size, dtype=bool)
                    bad_headers[header_other[np.unique(stream.block_of[mask])]] = True
                    flag(bad_headers & is_wblock, code)
        error[other] = o_err
        self.block_data_address = block_data_address
        self.header_instr = header_instr
        self.error = error
        self.ok = error == 0
        o_ok = o_err == 0

        # what each valid instruction is (flags over all instructions, computed on the non-SPIKES subset)
        def full(mask: np.ndarray) -> np.ndarray:
            out = np.zeros(n, dtype=bool)
            out[other[mask]] = True
            return out

        o_reset = is_write & o_ok & (o_addr == CHIP_RESET) & ((o_low & 1) == 1)
        trigger = np.isin(o_addr, _TRIGGERS)
        rw = _ACCESS[np.minimum(o_addr, ADDRESS_END - 1)] == 1
        self.chip_reset = full(o_reset)
        self.config = full(o_ok & ((is_write & rw & ~trigger) | is_wblock | o_reset))
        self.timer_set = full(o_ok & ((o_op == Opcode.TIMER_RESET) | (is_write & (o_addr == TIMER))))
        o_read = o_ok & (is_read | is_rblock)
        self.is_read = full(o_read)
        self.read_count = np.zeros(n, dtype=np.int64)
        self.read_count[other[o_read]] = span[o_read]
        self.is_end = full(o_ok & (o_op == Opcode.END))
        self.neuron_reset_instr = other[o_ok & is_write & (o_addr == NEURON_RESET)]
        self.wblock_instr = other[o_ok & is_wblock]
        self.wblock_count = count[o_ok & is_wblock]
        waits = o_ok & (o_op == Opcode.WAIT_UNTIL)
        self.wait_instr, self.wait_target = other[waits], o_low[waits].astype(np.float64)
        sets = o_ok & ((o_op == Opcode.TIMER_RESET) | (is_write & (o_addr == TIMER)))
        self.set_instr = other[sets]
        self.set_value = np.where(o_op[sets] == Opcode.TIMER_RESET, 0, o_low[sets]).astype(np.float64)

        # CADC conversions: a valid read covering the first word of a sample row converts that row
        read_instr = other[o_read]
        r_addr, r_span = o_addr[o_read], span[o_read]
        covers = (r_addr[:, None] <= _ROW_FIRST[None, :]) & (_ROW_FIRST[None, :] < (r_addr + r_span)[:, None])
        conv_read, conv_row = np.nonzero(covers)
        self.conv_instr, self.conv_row = read_instr[conv_read].astype(np.int64), conv_row.astype(np.int64)

        # read words (program order)
        counts = r_span
        self.read_instr = read_instr
        self.read_word_instr = np.repeat(read_instr, counts)
        offsets = np.arange(self.read_word_instr.size) - np.repeat(np.cumsum(counts) - counts, counts)
        self.read_word_address = np.repeat(r_addr, counts) + offsets
        self.read_values = np.zeros(self.read_word_instr.size, dtype=np.uint32)
        self._cadc_cfg = emulator.memory[REGISTER_MAP["cadc_config"].base + np.arange(2)].astype(np.int64)

    # ------------------------------------------------------------------------------------- timeline
    def timeline(self, emulator: Emulator) -> np.ndarray:
        """Start time (model cycles) of every instruction, plus the program's end time as a last element.

        Between timer sets (segment k starting at instruction a_k, where the timer reads v_k) the start
        time is t_i = c_i + D_k + R_i: c the cumulative durations, D_k = t_{a_k} - c_{a_k}, and R_i the
        largest lag that a WAIT_UNTIL j before i in the segment imposes, max(0, c_{a_k} - v_k + target_j
        - c_{j+1}), which does not depend on D_k. R is a segmented running maximum over the waits, piecewise
        constant between them; D_{k+1} = D_k + R at the end of segment k.
        """
        cfg = emulator.config
        n = self.n
        t0, zero0 = emulator.time, emulator.timer_zero
        if n == 0:
            self._zero_starts, self._zero_values = np.zeros(1, np.int64), np.array([zero0])
            return np.array([t0])
        duration = np.full(n, cfg.instruction_cycles, dtype=np.float64)
        ok_spikes = self.spike_index[self.spike_ok]
        duration[ok_spikes] += (self.spike_lanes[self.spike_ok, 3] >> np.uint16(2)) & np.uint16(63)
        duration[self.neuron_reset_instr] += cfg.neuron_reset_cycles
        duration[self.wblock_instr] += np.ceil(self.wblock_count / 2) * cfg.instruction_cycles
        if self.conv_instr.size:
            cadc = self.conv_row // 2
            extra = cfg.cadc_conversion_cycles + ((self._cadc_cfg[cadc] >> 8) & 0xFF) + ((self._cadc_cfg[cadc] >> 16) & 0xFF)
            np.add.at(duration, self.conv_instr, extra)
        c = np.zeros(n + 1)
        np.cumsum(duration, out=c[1:])

        sets, set_value = self.set_instr, self.set_value
        if sets.size and sets[0] == 0:
            seg_start, seg_origin, seg_value = sets, c[sets], set_value
        else:  # segment 0 runs on the timer of the previous program
            seg_start = np.concatenate(([0], sets))
            seg_origin = np.concatenate(([zero0 - t0], c[sets]))
            seg_value = np.concatenate(([0.0], set_value))
        n_seg = seg_start.size
        wi = self.wait_instr
        seg_of_wait = np.searchsorted(seg_start, wi, side="right") - 1
        lag = np.maximum(seg_origin[seg_of_wait] - seg_value[seg_of_wait] + self.wait_target - c[wi + 1], 0.0)
        big = float(2.0 ** np.ceil(np.log2(lag.max(initial=0.0) + 2.0)))
        if n_seg * big < 2.0**52:
            inclusive = np.maximum.accumulate(lag + seg_of_wait * big) - seg_of_wait * big if wi.size else lag
        else:  # too many segments for one shifted maximum: one pass per segment
            inclusive = lag.copy()
            for k in np.unique(seg_of_wait):
                sel = seg_of_wait == k
                inclusive[sel] = np.maximum.accumulate(lag[sel])
        last_wait = np.full(n_seg, -1, dtype=np.int64)
        last_wait[seg_of_wait] = np.arange(wi.size)
        r_end = np.where(last_wait >= 0, inclusive[np.maximum(last_wait, 0)] if wi.size else 0.0, 0.0)
        d = t0 + np.concatenate(([0.0], np.cumsum(r_end)[:-1]))
        # piecewise-constant offset D + R: breakpoints after each wait and at each segment start (which wins)
        points = np.concatenate((wi + 1, seg_start))
        values = np.concatenate((d[seg_of_wait] + inclusive, d))
        kind = np.concatenate((np.zeros(wi.size, np.int8), np.ones(n_seg, np.int8)))
        order = np.lexsort((kind, points))
        points, values = points[order], values[order]
        last = np.concatenate((points[1:] != points[:-1], [True]))
        points, values = points[last], values[last]
        inside = points < n
        points, values = points[inside], values[inside]
        starts = np.empty(n + 1)
        starts[:n] = c[:n] + np.repeat(values, np.diff(np.append(points, n)))
        starts[n] = c[n] + d[-1] + r_end[-1]
        zero = d + seg_origin - seg_value
        if not (sets.size and sets[0] == 0):
            zero[0] = zero0
        self._zero_starts, self._zero_values = seg_start, zero
        emulator.timer_zero = float(zero[-1])
        return starts

    def timer_zero_of(self, instr: np.ndarray) -> np.ndarray:
        """Model time at which the timer read 0, for instructions ``instr``."""
        return self._zero_values[np.searchsorted(self._zero_starts, instr, side="right") - 1]

    def runs(self) -> list[tuple[int, int, bool]]:
        """Maximal stretches of configuration writes and of everything else, in program order."""
        if self.n == 0:
            return []
        change = np.flatnonzero(self.config[1:] != self.config[:-1]) + 1
        bounds = np.concatenate(([0], change, [self.n]))
        return [(int(a), int(b), bool(self.config[a])) for a, b in zip(bounds[:-1], bounds[1:])]

    def config_writes(self, begin: int, end: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Addresses, values and owning instruction of every register write in [begin, end), program order."""
        sel = np.arange(begin, end)
        singles = sel[self.config[begin:end] & (self.opcode[begin:end] == Opcode.WRITE) & ~self.chip_reset[begin:end]]
        blocks = np.flatnonzero((self.header_instr >= begin) & (self.header_instr < end) & self.config[np.minimum(self.header_instr, max(self.n - 1, 0))])
        if blocks.size == 0:
            return self.address[singles], self.low32[singles].astype(np.uint32), singles
        in_block = np.isin(self.stream.block_of, blocks)
        block_addr = self.block_data_address[in_block]
        block_instr = self.header_instr[self.stream.block_of[in_block]]
        block_vals = self.stream.block_data[in_block]
        # writes of a block into trigger registers (timer, resets, injections) are not performed
        store = (_ACCESS[block_addr] == 1) & ~np.isin(block_addr, _TRIGGERS)
        addresses = np.concatenate((self.address[singles], block_addr[store]))
        values = np.concatenate((self.low32[singles].astype(np.uint32), block_vals[store]))
        owners = np.concatenate((singles, block_instr[store]))
        order = np.argsort(owners, kind="stable")
        return addresses[order], values[order], owners[order]

    def conversions_in(self, begin: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        """CADC conversions (instruction, row 0..3) in [begin, end)."""
        sel = (self.conv_instr >= begin) & (self.conv_instr < end)
        return self.conv_instr[sel], self.conv_row[sel]

    def counter_read_times(self, begin: int, end: int, starts: np.ndarray) -> np.ndarray:
        """Times of the counter-register reads in [begin, end) (for event counting up to each read)."""
        lo, hi = np.searchsorted(self.read_word_instr, [begin, end])
        addresses = self.read_word_address[lo:hi]
        counter = (addresses >= COUNTERS.base) & (addresses <= COUNTERS.last_address)
        return starts[self.read_word_instr[lo:hi][counter]]


class _Results:
    """Response pieces collected while the runs execute, assembled in program order at the end."""

    def __init__(self, program: _Program) -> None:
        self.program = program
        self.timed_time: list[np.ndarray] = []
        self.timed_words: list[np.ndarray] = []

    def add_dynamics(self, program: _Program, begin: int, end: int, starts: np.ndarray, out, emulator: Emulator) -> None:
        lo, hi = np.searchsorted(program.read_word_instr, [begin, end])
        r_lo, r_hi = np.searchsorted(program.read_instr, [begin, end])
        read_instr = program.read_instr[r_lo:r_hi]
        if hi > lo and out.samples.shape[0] == read_instr.size and np.all(program.read_count[read_instr] == 64) and np.all(
            np.isin(program.address[read_instr], _ROW_FIRST)
        ):
            # every read is one whole CADC row, converted by that very read (the hagen program)
            program.read_values[lo:hi] = out.samples.view(np.uint32).reshape(-1)
        elif hi > lo:
            addresses = program.read_word_address[lo:hi]
            word_instr = program.read_word_instr[lo:hi]
            values = emulator.memory[addresses]
            access = _ACCESS[addresses]
            values = np.where(access == 3, np.uint32(0), values)
            timer = addresses == TIMER
            if timer.any():
                t = starts[word_instr[timer]] - program.timer_zero_of(word_instr[timer])
                values[timer] = (np.floor(t).astype(np.int64) & 0xFFFF_FFFF).astype(np.uint32)
            counter = (addresses >= COUNTERS.base) & (addresses <= COUNTERS.last_address)
            if counter.any():
                values[counter] = out.counter_values[np.arange(np.count_nonzero(counter)), addresses[counter] - COUNTERS.base]
            sample = (addresses >= CADC_SAMPLES) & (addresses < CADC_SAMPLES + 256)
            if sample.any() and out.samples.shape[0]:
                values[sample] = self._sample_values(program, addresses[sample], word_instr[sample], begin, end, out, values[sample])
            program.read_values[lo:hi] = values
        # the latest conversion of each row stays readable from register memory
        if out.samples.shape[0]:
            conv_instr, conv_row = program.conversions_in(begin, end)
            for row in range(4):  # four sample rows
                last = np.flatnonzero(conv_row == row)
                if last.size:
                    quads = out.samples[last[-1]].view(np.uint32)
                    emulator.memory[CADC_SAMPLES + 64 * row : CADC_SAMPLES + 64 * (row + 1)] = quads
        if out.spike_labels.size:
            self.timed_time.append(out.spike_times)
            self.timed_words.append(wire.encode_spike_responses(out.spike_labels, np.floor(out.spike_times - program.timer_zero_of(np.clip(np.searchsorted(starts[:-1], out.spike_times, "right") - 1, 0, max(program.n - 1, 0)))).astype(np.int64)))
        if out.madc_values.size:
            zero = program.timer_zero_of(np.clip(np.searchsorted(starts[:-1], out.madc_times, "right") - 1, 0, max(program.n - 1, 0)))
            self.timed_time.append(out.madc_times)
            self.timed_words.append(wire.encode_madc_samples(out.madc_values, np.floor(out.madc_times - zero).astype(np.int64), out.madc_channels))

    @staticmethod
    def _sample_values(program: _Program, addresses: np.ndarray, word_instr: np.ndarray, begin: int, end: int, out, stored: np.ndarray) -> np.ndarray:
        conv_instr, conv_row = program.conversions_in(begin, end)
        row = (addresses - CADC_SAMPLES) // 64
        # the latest conversion of the same row at or before the reading instruction
        conv_key = conv_row * (program.n + 1) + conv_instr
        order = np.argsort(conv_key, kind="stable")
        keys = conv_key[order]
        position = np.searchsorted(keys, row * (program.n + 1) + word_instr, side="right") - 1
        found = position >= 0
        found[found] = conv_row[order[position[found]]] == row[found]
        quads = out.samples.view(np.uint32)  # (n_conv, 64)
        conv_index = order[np.maximum(position, 0)]
        values = quads[conv_index, (addresses - CADC_SAMPLES) % 64]
        return np.where(found, values, stored)

    def assemble(self, starts: np.ndarray) -> np.ndarray:
        """All response words in program order: per instruction first the spikes and MADC samples that
        occurred before it started, then its own responses (error, read data, END)."""
        p = self.program
        n = p.n
        other = p.other  # SPIKES answer nothing but errors; everything else is among `other`
        o_op = p.opcode[other]
        o_error = p.error[other]
        o_read = p.is_read[other]
        o_count = p.read_count[other]
        block_words = (o_count + 1) // 2
        own = (o_error != 0).astype(np.int64) + p.is_end[other]
        own += np.where(o_read, np.where(o_op == Opcode.READ_BLOCK, 1 + block_words, 1), 0)
        bad_spikes = p.spike_index[~p.spike_ok]
        keys = np.concatenate((other, bad_spikes))
        own = np.concatenate((own, np.ones(bad_spikes.size, np.int64)))
        if self.timed_time:
            timed_time = np.concatenate(self.timed_time)
            timed_words = np.concatenate(self.timed_words)
            order = np.argsort(timed_time, kind="stable")
            timed_time, timed_words = timed_time[order], timed_words[order]
            timed_at = np.minimum(np.searchsorted(starts, timed_time, side="right"), max(n - 1, 0))
            keys = np.concatenate((keys, timed_at))
            own = np.concatenate((own, np.zeros(timed_at.size, np.int64)))
        else:
            timed_words = np.zeros(0, dtype=_U64)
            timed_at = np.zeros(0, dtype=np.int64)
        if bad_spikes.size or timed_at.size:
            slots, inverse = np.unique(keys, return_inverse=True)
            own_per_slot = np.bincount(inverse, weights=own, minlength=slots.size).astype(np.int64)
        else:
            slots, own_per_slot = keys, own
        pre = np.bincount(np.searchsorted(slots, timed_at), minlength=slots.size) if timed_at.size else np.zeros(slots.size, np.int64)
        per_slot = pre + own_per_slot
        offset = np.cumsum(per_slot) - per_slot
        out = np.zeros(int(per_slot.sum()), dtype=_U64)
        if timed_words.size:
            slot_of_timed = np.searchsorted(slots, timed_at)
            within = np.arange(timed_at.size) - (np.cumsum(pre) - pre)[slot_of_timed]
            out[offset[slot_of_timed] + within] = timed_words

        def own_start(instr: np.ndarray) -> np.ndarray:
            slot = np.searchsorted(slots, instr)
            return offset[slot] + pre[slot]

        err_index = np.flatnonzero(p.error)
        if err_index.size:
            out[own_start(err_index)] = wire.encode_errors(p.error[err_index], p.opcode[err_index], p.stream.index[err_index])
        ends = other[p.is_end[other]]
        if ends.size:
            # after the instruction's error, if it has one (END answers in any case)
            out[own_start(ends) + (p.error[ends] != 0)] = (_U64(ResponseType.END) << _U64(56)) | (p.payload[ends] & _U64(0xFFFF_FFFF))
        # reads: one value per word, in program order
        word_is_block = p.opcode[p.read_word_instr] == Opcode.READ_BLOCK
        singles = other[o_read & (o_op == Opcode.READ)]
        if singles.size:
            values = p.read_values[~word_is_block]
            out[own_start(singles)] = wire.encode_read_data(p.address[singles], values)
        blocks = other[o_read & (o_op == Opcode.READ_BLOCK)]
        if blocks.size:
            start = own_start(blocks)
            counts = p.read_count[blocks]
            out[start] = (_U64(ResponseType.BLOCK_DATA) << _U64(56)) | (p.address[blocks].astype(_U64) << _U64(32)) | counts.astype(_U64)
            values = p.read_values[word_is_block]
            pair_counts = (counts + 1) // 2
            if np.all(counts % 2 == 0):
                data_words = values.view("<u8").astype(_U64, copy=False)
            else:
                padded = 2 * pair_counts
                packed = np.zeros(int(padded.sum()), dtype=np.uint32)
                packed[np.arange(values.size) + np.repeat(np.cumsum(padded) - padded - (np.cumsum(counts) - counts), counts)] = values
                data_words = packed.view("<u8").astype(_U64, copy=False)
            destination = np.repeat(start + 1 - (np.cumsum(pair_counts) - pair_counts), pair_counts) + np.arange(data_words.size)
            out[destination] = data_words
        return out


_CONTROL_LIMIT = 64  # instructions of a program that the control-only path takes (a Python loop)
_TIMER_RESET_OP, _WAIT_OP, _END_OP = int(wire.Opcode.TIMER_RESET), int(wire.Opcode.WAIT_UNTIL), int(wire.Opcode.END)
_NO_PAYLOAD = frozenset((_TIMER_RESET_OP, int(wire.Opcode.BARRIER)))  # payload must be zero
_LOW_PAYLOAD = frozenset((_WAIT_OP, _END_OP))  # payload bits 55..32 must be zero
_END_RESPONSE = int(ResponseType.END) << 56
_NEURON_RESET_WRITE_HEAD = (np.uint64(wire.Opcode.WRITE) << np.uint64(56)) | (np.uint64(REGISTER_MAP["neuron_reset"].base) << np.uint64(32))
_TIMER_RESET_WORD = wire.encode_timer_reset()[0]


def _starts_vector(words: np.ndarray, at: int) -> bool:
    """Whether a hagen vector (TIMER_RESET, then a neuron reset write) starts at word ``at``."""
    return (at + 1 < words.size and words[at] == _TIMER_RESET_WORD
            and (words[at + 1] & np.uint64(0xFFFF_FFFF_0000_0000)) == _NEURON_RESET_WRITE_HEAD)


def _hagen_suffix_start(words: np.ndarray) -> int | None:
    """Index where the per-vector part of a hagen program begins after a configuration prefix, or None.

    The vectors start with TIMER_RESET followed by a WRITE to ``neuron_reset``; the candidate must be an
    instruction, not the data of a WRITE_BLOCK in the prefix (checked by walking the prefix's blocks).
    """
    if words.dtype != np.uint64 or words.ndim != 1 or words.size < 4:
        return None
    head_mask = np.uint64(0xFFFF_FFFF_0000_0000)
    candidates = np.flatnonzero((words[:-1] == _TIMER_RESET_WORD) & ((words[1:] & head_mask) == _NEURON_RESET_WRITE_HEAD))
    for candidate in candidates[:4].tolist():  # the first real one is almost always the first candidate
        if candidate == 0:
            return None  # the whole program has the canonical shape but did not qualify: general path
        is_data, _, _ = wire.block_payload_mask(words[: candidate + 1], wire.Opcode.WRITE_BLOCK)
        if not is_data[candidate]:
            return int(candidate)
    return None


def _last_writes(addresses: np.ndarray) -> np.ndarray | None:
    """Indices keeping the last write of every address (last write wins), or None when no address repeats.

    The sort is skipped when the addresses are strictly increasing, as in block writes of a whole plane.
    """
    if addresses.size < 2 or bool(np.all(addresses[1:] > addresses[:-1])):
        return None
    _, first_in_reversed = np.unique(addresses[::-1], return_index=True)
    return addresses.size - 1 - first_in_reversed
