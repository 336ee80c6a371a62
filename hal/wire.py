"""The wire format between host (FPGA playback executor) and chip: 64-bit instruction and response words.

Every word is a little-endian ``uint64``. Bits 63..56 hold the opcode (instructions) or the response type
(responses); bits 55..0 are the payload. Addresses are 24-bit word addresses of the register map
(:mod:`bss2.hal.regmap`), register data words are 32 bit. Time is counted in FPGA timer cycles of 8 ns
(125 MHz).

Instructions (host -> chip)
===========================

============== ====== ==========================================================================================
name           opcode payload
============== ====== ==========================================================================================
WRITE          0x01   [55:32] address, [31:0] data
READ           0x02   [55:32] address, [31:0] zero; answered by one READ_DATA response
WRITE_BLOCK    0x03   [55:32] first address, [15:0] count n (1..65535), [31:16] zero; followed by ceil(n/2)
                      raw data words, each carrying two register words (bits 31..0 first, then 63..32)
READ_BLOCK     0x04   [55:32] first address, [15:0] count n (1..65535), [31:16] zero; answered by one
                      BLOCK_DATA response followed by ceil(n/2) raw data words
TIMER_RESET    0x05   zero; sets the FPGA timer to 0
WAIT_UNTIL     0x06   [31:0] timer value in cycles; blocks the playback until the timer reaches it
SPIKES         0x07   [55:50] delay d (0..63 cycles, waited before sending), [49:48] count n (1..3),
                      [47:32] label 0, [31:16] label 1, [15:0] label 2; labels beyond n are zero
BARRIER        0x08   zero; waits until every earlier operation (reads, ADC conversions) completed
END            0x09   [31:0] cookie; echoed by an END response, marks the end of a program
============== ====== ==========================================================================================

Responses (chip -> host)
========================

============== ====== ==========================================================================================
name           type   payload
============== ====== ==========================================================================================
READ_DATA      0x81   [55:32] address, [31:0] data
BLOCK_DATA     0x82   [55:32] first address, [15:0] count n; followed by ceil(n/2) raw data words
SPIKE          0x83   [47:32] label, [31:0] timestamp (cycles)
MADC_SAMPLE    0x84   [48] channel, [41:32] 10-bit sample, [31:0] timestamp (cycles)
ERROR          0x85   [55:48] error code, [47:40] offending opcode, [31:0] index of the offending word
END            0x86   [31:0] cookie of the END instruction
============== ====== ==========================================================================================

Timing: the playback executor keeps a cycle counter t (the FPGA timer). Every instruction takes effect at t
and then advances t by one cycle, except WAIT_UNTIL T, which sets t = max(t, T); a SPIKES word first adds
its delay d to t, emits its events at t, then advances by one cycle. So a pack meant for absolute time T
after a pack sent at T0 carries d = T - T0 - 1 (``program.encode_timed_spikes`` does this).

Reads are answered in program order; spikes and MADC samples are interleaved by time. Block headers make
the stream not self-delimiting: the raw data words that follow a block header carry no opcode, so decoding
first walks the block headers (one Python step per *block*, never per word) and then decodes everything
else with whole-array operations.
"""

from __future__ import annotations

import enum
from typing import Final

import attrs
import numpy as np

from .errors import EncodingError, HalValueError

WORD_BYTES: Final = 8
ADDRESS_BITS: Final = 24
ADDRESS_LIMIT: Final = 1 << ADDRESS_BITS
MAX_BLOCK_COUNT: Final = 0xFFFF
MAX_SPIKE_DELAY: Final = 63
LABEL_LIMIT: Final = 1 << 16
TIMER_LIMIT: Final = 1 << 32
CYCLE_SECONDS: Final = 8e-9

_U64 = np.uint64
_OPCODE_SHIFT = _U64(56)
_ADDRESS_SHIFT = _U64(32)
_MASK32 = _U64(0xFFFF_FFFF)
_MASK24 = _U64(0xFF_FFFF)
_MASK16 = _U64(0xFFFF)


class Opcode(enum.IntEnum):
    """Instruction opcodes (bits 63..56 of an instruction word)."""

    WRITE = 0x01
    READ = 0x02
    WRITE_BLOCK = 0x03
    READ_BLOCK = 0x04
    TIMER_RESET = 0x05
    WAIT_UNTIL = 0x06
    SPIKES = 0x07
    BARRIER = 0x08
    END = 0x09


class ResponseType(enum.IntEnum):
    """Response types (bits 63..56 of a response word)."""

    READ_DATA = 0x81
    BLOCK_DATA = 0x82
    SPIKE = 0x83
    MADC_SAMPLE = 0x84
    ERROR = 0x85
    END = 0x86


class ErrorCode(enum.IntEnum):
    """Error codes carried by ERROR responses."""

    UNKNOWN_OPCODE = 1
    MALFORMED = 2  # reserved bits set, count or delay out of range
    UNMAPPED_ADDRESS = 3
    READ_ONLY = 4
    TRUNCATED_BLOCK = 5
    INVALID_VALUE = 6  # a field value the chip rejects (e.g. CapMem 1023)
    NOT_EMULATED = 7  # a feature the emulator does not model (PPU program execution)
    RECORDING_OVERFLOW = 8  # the program recorded more spikes and MADC samples than the FPGA memory holds


def _check_range(name: str, values: np.ndarray, low: int, high: int) -> None:
    if values.size and (values.min() < low or values.max() > high):
        bad = values[(values < low) | (values > high)][0]
        raise HalValueError(f"{name} = {int(bad)} is out of range [{low}, {high}]")


def _check_bits(name: str, values: np.ndarray, bits: int) -> None:
    """Fast range check for [0, 2**bits - 1] (one pass; the slow path only builds the message)."""
    if values.size == 0:
        return
    if values.dtype.kind == "u" and values.dtype.itemsize * 8 <= bits:
        return
    combined = int(np.bitwise_or.reduce(values, axis=None))  # one pass: negative or too wide shows here
    if combined < 0 or combined >> bits:
        _check_range(name, values, 0, (1 << bits) - 1)


def _as_int_array(name: str, values: object) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype == bool or not np.issubdtype(array.dtype, np.integer):
        if array.size == 0:
            return array.astype(np.int64)
        raise HalValueError(f"{name} must be integers, got dtype {array.dtype}")
    return array.reshape(-1)


def _header(opcode: int, payload: np.ndarray | int) -> np.ndarray:
    return (_U64(opcode) << _OPCODE_SHIFT) | np.asarray(payload, dtype=_U64)


# --------------------------------------------------------------------------------------------- encode


def encode_write(addresses: object, data: object) -> np.ndarray:
    """WRITE words for parallel arrays of addresses (0..2^24-1) and 32-bit data words."""
    addresses = _as_int_array("addresses", addresses)
    data = _as_int_array("data", data)
    if addresses.shape != data.shape:
        raise HalValueError(f"addresses and data differ in length: {addresses.size} != {data.size}")
    _check_bits("address", addresses, ADDRESS_BITS)
    _check_bits("data", data, 32)
    lanes = np.empty((addresses.size, 2), dtype="<u4")
    lanes[:, 0] = data
    lanes[:, 1] = addresses
    lanes[:, 1] |= np.uint32(Opcode.WRITE << 24)
    return lanes.view("<u8").reshape(-1).astype(_U64, copy=False)


def encode_read(addresses: object) -> np.ndarray:
    """READ words for an array of addresses."""
    addresses = _as_int_array("addresses", addresses)
    _check_bits("address", addresses, ADDRESS_BITS)
    return _header(Opcode.READ, addresses.astype(_U64) << _ADDRESS_SHIFT)


def _pack_pairs(data: np.ndarray) -> np.ndarray:
    """Two 32-bit register words per 64-bit data word (first word in bits 31..0)."""
    data32 = np.asarray(data, dtype=np.uint32)
    if data32.size % 2:
        data32 = np.append(data32, np.uint32(0))
    return np.ascontiguousarray(data32).astype("<u4", copy=False).view("<u8").astype(_U64, copy=False)


def encode_write_block(address: int, data: object) -> np.ndarray:
    """WRITE_BLOCK header plus packed data words for consecutive addresses starting at ``address``.

    Blocks longer than 65535 register words are split into several blocks.
    """
    data = _as_int_array("data", data)
    _check_range("data", data, 0, 0xFFFF_FFFF)
    count = data.size
    if count == 0:
        return np.empty(0, dtype=_U64)
    _check_range("address", np.array([address, address + count - 1]), 0, ADDRESS_LIMIT - 1)
    parts = []
    for start in range(0, count, MAX_BLOCK_COUNT - 1):  # even chunk length keeps the packing aligned
        chunk = data[start : start + MAX_BLOCK_COUNT - 1]
        header = _header(Opcode.WRITE_BLOCK, (_U64(address + start) << _ADDRESS_SHIFT) | _U64(chunk.size))
        parts.append(np.atleast_1d(header))
        parts.append(_pack_pairs(chunk))
    return np.concatenate(parts)


def encode_read_block(address: int, count: int) -> np.ndarray:
    """READ_BLOCK word(s) reading ``count`` consecutive register words from ``address``."""
    if not 1 <= count <= ADDRESS_LIMIT:
        raise HalValueError(f"count = {count} is out of range [1, {ADDRESS_LIMIT}]")
    _check_range("address", np.array([address, address + count - 1]), 0, ADDRESS_LIMIT - 1)
    starts = np.arange(0, count, MAX_BLOCK_COUNT - 1, dtype=np.int64)
    counts = np.minimum(count - starts, MAX_BLOCK_COUNT - 1)
    payload = ((starts + address).astype(_U64) << _ADDRESS_SHIFT) | counts.astype(_U64)
    return _header(Opcode.READ_BLOCK, payload)


def encode_timer_reset() -> np.ndarray:
    """A TIMER_RESET word."""
    return np.atleast_1d(_header(Opcode.TIMER_RESET, 0))


def encode_wait_until(cycles: object) -> np.ndarray:
    """WAIT_UNTIL words for absolute timer values (cycles since the last timer reset, 0..2^32-1)."""
    cycles = _as_int_array("cycles", cycles)
    _check_range("wait_until cycles", cycles, 0, TIMER_LIMIT - 1)
    return _header(Opcode.WAIT_UNTIL, cycles.astype(_U64))


def encode_barrier() -> np.ndarray:
    """A BARRIER word."""
    return np.atleast_1d(_header(Opcode.BARRIER, 0))


def encode_end(cookie: int = 0) -> np.ndarray:
    """An END word carrying a 32-bit cookie that the chip echoes."""
    if not 0 <= int(cookie) <= 0xFFFF_FFFF:
        raise HalValueError(f"cookie = {cookie} is out of range [0, {0xFFFF_FFFF}]")
    return np.atleast_1d(_header(Opcode.END, int(cookie)))


def encode_spikes(labels: object, delays: object = 0, group: int = 3) -> np.ndarray:
    """SPIKES words sending ``labels`` in packs of up to ``group`` (1..3) labels.

    ``delays`` (0..63 cycles, scalar or one value per pack) is waited before each pack is sent, so a
    regularly spaced event train needs no extra WAIT_UNTIL words.
    """
    labels = _as_int_array("labels", labels)
    if not 1 <= group <= 3:
        raise HalValueError(f"group = {group} is out of range [1, 3]")
    _check_bits("label", labels, 16)
    n_packs = -(-labels.size // group)
    delays_arr = np.asarray(delays)
    scalar_delay = delays_arr.ndim == 0
    if scalar_delay:
        _check_range("delay", delays_arr.reshape(1), 0, MAX_SPIKE_DELAY)
    else:
        delays_arr = _as_int_array("delays", delays_arr)
        if delays_arr.size != n_packs:
            raise HalValueError(f"delays has {delays_arr.size} values but there are {n_packs} packs")
        _check_range("delay", delays_arr, 0, MAX_SPIKE_DELAY)
    # little-endian uint16 lanes of a word: label 2, label 1, label 0, (opcode << 8 | delay << 2 | count)
    lanes = np.zeros((n_packs, 4), dtype="<u2")
    padded = np.zeros(n_packs * group, dtype="<u2")
    padded[: labels.size] = labels
    slots = padded.reshape(n_packs, group)
    for slot in range(group):
        lanes[:, 2 - slot] = slots[:, slot]
    top = (int(Opcode.SPIKES) << 8) | group
    if scalar_delay:
        lanes[:, 3] = top | (int(delays_arr) << 2)
    else:
        lanes[:, 3] = delays_arr.astype("<u2") << 2
        lanes[:, 3] |= top
    if n_packs and labels.size % group:
        lanes[-1, 3] = (int(lanes[-1, 3]) & ~3) | (labels.size % group)  # the last pack is partial
    return lanes.view("<u8").reshape(-1).astype(_U64, copy=False)


# ------------------------------------------------------------------------------------- block walking


def opcodes_of(words: np.ndarray) -> np.ndarray:
    """Bits 63..56 of every word as uint8 (a strided byte view, cheaper than shifting)."""
    if words.dtype.byteorder == ">" or (words.dtype.byteorder == "=" and np.little_endian is False):
        return (words >> _OPCODE_SHIFT).astype(np.uint8)
    return np.ascontiguousarray(words).view(np.uint8)[7::8].copy()


def real_block_headers(words: np.ndarray, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The real block headers among ``candidates`` (sorted positions of words with a block opcode).

    A candidate inside the data of an earlier real header is data itself. Returns the real headers, their
    register-word counts and the position after each block's data (may exceed the stream). The walk is
    vectorised over runs of consistent headers; Python steps only happen where a data word looks like a header.
    """
    counts_all = (words[candidates] & _MASK16).astype(np.int64)
    ends_all = candidates + 1 + (counts_all + 1) // 2
    real = np.zeros(candidates.size, dtype=bool)
    index = 0
    while index < candidates.size:
        # candidates index.. are real as long as each starts at or after the previous one's end
        bad = np.flatnonzero(candidates[index + 1 :] < ends_all[index:-1])
        stop = index + 1 + int(bad[0]) if bad.size else candidates.size
        real[index:stop] = True
        # skip the candidates swallowed by the data of the last real header
        index = int(np.searchsorted(candidates, ends_all[stop - 1], side="left"))
    return candidates[real], counts_all[real], ends_all[real]


def block_payload_mask(
    words: np.ndarray, header_code: int, opcodes: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Find the block headers of a stream and the raw data words they own.

    Returns ``(is_data, header_index, header_count)``: a boolean mask marking raw data words, and the
    positions and register-word counts of the real block headers (data words that happen to look like
    headers are skipped). A header whose data runs past the end of the stream is still reported; callers
    compare its declared count with the words present.

    The walk is vectorised over runs of consistent headers; Python steps only happen where a data word
    looks like a header.
    """
    words = np.asarray(words, dtype=_U64)
    if opcodes is None:
        opcodes = opcodes_of(words)
    candidates = np.flatnonzero(opcodes == header_code)
    is_data = np.zeros(words.size, dtype=bool)
    if candidates.size == 0:
        return is_data, candidates.astype(np.int64), candidates.astype(np.int64)
    headers, counts, ends = real_block_headers(words, candidates)
    ends = np.minimum(ends, words.size)
    # mark data words: +1 at each data start, -1 at its end, cumulative sum
    marks = np.bincount(headers + 1, minlength=words.size + 1) - np.bincount(ends, minlength=words.size + 1)
    is_data = np.cumsum(marks[:-1]) > 0
    return is_data, headers.astype(np.int64), counts


def _unpack_block_data(
    words: np.ndarray, headers: np.ndarray, counts: np.ndarray, is_data: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Register words of each block (concatenated, truncated blocks cut short) and the block of each."""
    if headers.size == 0:
        return np.empty(0, np.uint32), np.empty(0, np.int64)
    if words.dtype.byteorder == ">":
        words = words.astype("<u8")
    n_data = (counts + 1) // 2
    available = np.minimum(n_data, np.maximum(words.size - (headers + 1), 0))
    halves = np.ascontiguousarray(words[is_data]).astype("<u8", copy=False).view("<u4")
    registers = np.minimum(counts, 2 * available)
    padding = 2 * available - registers
    if padding.any():
        # drop the unused half-words at the end of odd (or truncated) blocks
        block_end = np.cumsum(2 * available)
        drop = np.repeat(block_end - padding, padding) + _ragged_arange(padding)
        halves = np.delete(halves, drop)
    return halves.astype(np.uint32, copy=False), registers


def _ragged_arange(lengths: np.ndarray) -> np.ndarray:
    """Concatenation of arange(n) for every n in lengths."""
    if lengths.size and (lengths == lengths[0]).all():
        return np.tile(np.arange(int(lengths[0]), dtype=np.int64), lengths.size)
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, np.int64)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.arange(total, dtype=np.int64) - starts


# ------------------------------------------------------------------------------------- decode (chip)


@attrs.frozen
class InstructionStream:
    """An instruction stream split into its instructions (block data words removed).

    ``index`` gives each instruction's position in the original word stream; ``opcode`` and ``payload``
    its fields. ``block_data``/``block_of`` hold the register words of WRITE_BLOCK instructions in order,
    and ``block_headers``/``block_counts`` which instruction owns them.
    """

    words: np.ndarray
    index: np.ndarray
    opcode: np.ndarray
    payload: np.ndarray
    block_headers: np.ndarray
    block_counts: np.ndarray
    block_data: np.ndarray
    block_of: np.ndarray

    @property
    def addresses(self) -> np.ndarray:
        """Bits 55..32 of every instruction (the address field of register accesses)."""
        return ((self.payload >> _ADDRESS_SHIFT) & _MASK24).astype(np.int64)

    @property
    def low32(self) -> np.ndarray:
        """Bits 31..0 of every instruction."""
        return (self.payload & _MASK32).astype(np.int64)

    def writes(self) -> tuple[np.ndarray, np.ndarray]:
        """``(addresses, data)`` of every register word written by WRITE and WRITE_BLOCK, in program order
        (a truncated block contributes the words it has)."""
        single = self.opcode == Opcode.WRITE
        addresses, data = self.addresses[single], self.low32[single]
        if not self.block_headers.size:
            return addresses, data
        starts = ((self.words[self.block_headers] >> _ADDRESS_SHIFT) & _MASK24).astype(np.int64)
        registers = np.bincount(self.block_of, minlength=self.block_headers.size)
        within = np.arange(self.block_of.size) - np.repeat(np.cumsum(registers) - registers, registers)
        all_addresses = np.concatenate((addresses, starts[self.block_of] + within))
        all_data = np.concatenate((data, self.block_data.astype(np.int64)))
        if not single.any():
            return all_addresses, all_data
        order = np.argsort(np.concatenate((self.index[single], self.block_headers[self.block_of])), kind="stable")
        return all_addresses[order], all_data[order]


def _split_blocks(words: object, header_code: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """``(words, is_data, headers, counts, plain_index, plain, plain_opcodes)`` of a stream: the block walk
    and the words that are not block data (``plain_index`` is None when there are no blocks)."""
    words = _as_word_array("words", words)
    opcodes = opcodes_of(words)
    is_data, headers, counts = block_payload_mask(words, header_code, opcodes)
    if not headers.size:
        return words, is_data, headers, counts, None, words, opcodes
    plain_index = np.flatnonzero(~is_data)
    return words, is_data, headers, counts, plain_index, words[plain_index], opcodes[plain_index]


def decode_instructions(words: object) -> InstructionStream:
    """Split an instruction stream into instructions and block data (vectorised; never raises on content).

    Malformed content (unknown opcodes, truncated blocks) is kept for the executor to answer with ERROR
    responses; only a stream that is not a 1-D integer array raises :class:`EncodingError`.
    """
    words, is_data, headers, counts, index, kept, kept_opcodes = _split_blocks(words, Opcode.WRITE_BLOCK)
    if index is None:
        index = np.arange(words.size, dtype=np.int64)
    block_data, registers = _unpack_block_data(words, headers, counts, is_data)
    block_of = np.repeat(np.arange(headers.size, dtype=np.int64), registers)
    return InstructionStream(
        words=words,
        index=index,
        opcode=kept_opcodes,
        payload=kept & _U64(0x00FF_FFFF_FFFF_FFFF),
        block_headers=headers,
        block_counts=counts,
        block_data=block_data,
        block_of=block_of,
    )


def _as_word_array(name: str, words: object) -> np.ndarray:
    array = np.asarray(words)
    if array.ndim != 1:
        raise EncodingError(f"{name} must be a 1-D array of 64-bit words, got shape {array.shape}")
    if array.dtype != np.uint64:
        if array.size and not np.issubdtype(array.dtype, np.integer):
            raise EncodingError(f"{name} must have an integer dtype (uint64), got {array.dtype}")
        array = array.astype(_U64)
    return array


# ------------------------------------------------------------------------------------ encode (chip)


def encode_read_data(addresses: object, data: object) -> np.ndarray:
    """READ_DATA response words."""
    addresses = _as_int_array("addresses", addresses).astype(_U64)
    data = _as_int_array("data", data).astype(_U64)
    return _header(ResponseType.READ_DATA, (addresses << _ADDRESS_SHIFT) | (data & _MASK32))


def encode_block_data(address: int, data: object) -> np.ndarray:
    """BLOCK_DATA response: header plus packed data words."""
    data = np.asarray(data, dtype=np.uint32).reshape(-1)
    header = _header(ResponseType.BLOCK_DATA, (_U64(address) << _ADDRESS_SHIFT) | _U64(data.size))
    return np.concatenate((np.atleast_1d(header), _pack_pairs(data)))


def encode_spike_responses(labels: object, times: object) -> np.ndarray:
    """SPIKE response words (label 0..65535, timestamp in cycles, taken modulo 2^32)."""
    labels = _as_int_array("labels", labels).astype(_U64)
    times = _as_int_array("times", times).astype(_U64) & _MASK32
    return _header(ResponseType.SPIKE, ((labels & _MASK16) << _ADDRESS_SHIFT) | times)


def encode_madc_samples(values: object, times: object, channel: object = 0) -> np.ndarray:
    """MADC_SAMPLE response words (10-bit values, timestamps in cycles, channel 0 or 1)."""
    values = _as_int_array("values", values)
    times = _as_int_array("times", times)
    channels = _as_int_array("channel", channel)
    if times.size != values.size or channels.size not in (1, values.size):
        raise HalValueError(f"values, times and channel differ in length: {values.size}, {times.size}, {channels.size} "
                            "(channel may also be one value for all)")
    # in place: a full recording memory (millions of samples) needs one temporary beside the words
    words = values.astype(_U64)
    words &= _U64(0x3FF)
    words <<= _ADDRESS_SHIFT
    for field, mask, shift in ((times, _MASK32, 0), (channels, 1, 48)):
        part = field.astype(_U64)
        part &= _U64(mask)
        part <<= _U64(shift)
        words |= part  # a single channel broadcasts
        del part
    words |= _U64(ResponseType.MADC_SAMPLE) << _OPCODE_SHIFT
    return words


def encode_errors(codes: object, opcodes: object, indices: object) -> np.ndarray:
    """ERROR response words."""
    codes = _as_int_array("codes", codes).astype(_U64) & _U64(0xFF)
    opcodes = _as_int_array("opcodes", opcodes).astype(_U64) & _U64(0xFF)
    indices = _as_int_array("indices", indices).astype(_U64) & _MASK32
    return _header(ResponseType.ERROR, (codes << _U64(48)) | (opcodes << _U64(40)) | indices)


def encode_end_response(cookie: int) -> np.ndarray:
    """END response word."""
    return np.atleast_1d(_header(ResponseType.END, int(cookie) & 0xFFFF_FFFF))


# ------------------------------------------------------------------------------------- decode (host)


@attrs.frozen
class Responses:
    """A decoded response stream.

    ``read_addresses``/``read_data``: every register word read, in program order (single reads and
    blocks alike). ``spike_labels``/``spike_times``: recorded events. ``madc_*``: MADC samples.
    ``error_*``: ERROR responses. ``end_cookies``: echoed END markers. ``malformed``: count of words that
    are not valid responses (unknown type, truncated block).
    """

    read_addresses: np.ndarray
    read_data: np.ndarray
    spike_labels: np.ndarray
    spike_times: np.ndarray
    madc_channels: np.ndarray
    madc_values: np.ndarray
    madc_times: np.ndarray
    error_codes: np.ndarray
    error_opcodes: np.ndarray
    error_indices: np.ndarray
    end_cookies: np.ndarray
    malformed: int

    @property
    def n_reads(self) -> int:
        """Number of register words read."""
        return int(self.read_data.size)


_KNOWN_RESPONSE = np.zeros(256, dtype=bool)
_KNOWN_RESPONSE[[int(t) for t in ResponseType]] = True


def _halves(words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Low and high 32-bit halves of 64-bit words (strided views of a little-endian copy)."""
    pairs = np.ascontiguousarray(words).astype("<u8", copy=False).view("<u4")
    return pairs[0::2], pairs[1::2]


def _empty(dtype: object) -> np.ndarray:
    array = np.empty(0, dtype)
    array.flags.writeable = False
    return array


_NO_RESPONSES = {name: _empty(dtype) for name, dtype in (
    ("read_addresses", np.uint32), ("read_data", np.uint32), ("spike_labels", np.uint16), ("spike_times", np.uint32),
    ("madc_channels", np.uint8), ("madc_values", np.uint16), ("madc_times", np.uint32), ("error_codes", np.uint8),
    ("error_opcodes", np.uint8), ("error_indices", np.uint32))}
_END_ONLY_LIMIT = 64


def decode_responses(words: object) -> Responses:
    """Decode a response stream with whole-array operations (Python steps only per run of block headers)."""
    if isinstance(words, np.ndarray) and words.dtype == _U64 and words.ndim == 1 and 0 < words.size <= _END_ONLY_LIMIT:
        # the answer of a program without reads or recordings: its END words only (read-only empty fields)
        if ((words >> _OPCODE_SHIFT) == _U64(ResponseType.END)).all():
            return Responses(**_NO_RESPONSES, end_cookies=(words & _MASK32).astype(np.uint32), malformed=0)
    words, is_data, headers, counts, plain_index, plain, kind = _split_blocks(words, ResponseType.BLOCK_DATA)
    histogram = np.bincount(kind, minlength=256)

    def select(code: int) -> np.ndarray:
        n = int(histogram[code])
        if n == 0:
            return np.empty(0, _U64)
        if n == plain.size:
            return plain
        return plain[kind == code]

    read_words = select(ResponseType.READ_DATA)
    low, high = _halves(read_words)
    single_data = low.astype(np.uint32)
    single_addresses = (high & np.uint32(0xFF_FFFF)).astype(np.uint32)
    truncated = 0
    if headers.size == 0:
        read_addresses, read_data = single_addresses, single_data
    else:
        block_data, registers = _unpack_block_data(words, headers, counts, is_data)
        header_low, header_high = _halves(words[headers])
        block_start = (header_high & np.uint32(0xFF_FFFF)).astype(np.int64)
        if registers.size and (registers == registers[0]).all():
            block_addresses = (block_start[:, None] + np.arange(int(registers[0]))[None, :]).reshape(-1)
        else:
            block_addresses = np.repeat(block_start, registers) + _ragged_arange(registers)
        if single_data.size == 0:
            read_addresses, read_data = block_addresses.astype(np.uint32), block_data
        else:
            single_positions = plain_index[kind == ResponseType.READ_DATA]  # type: ignore[index]
            positions = np.concatenate((single_positions, np.repeat(headers, registers)))
            order = np.argsort(positions, kind="stable")
            read_addresses = np.concatenate((single_addresses.astype(np.int64), block_addresses))[order].astype(np.uint32)
            read_data = np.concatenate((single_data, block_data))[order]
        truncated = int(np.count_nonzero(headers + 1 + (counts + 1) // 2 > words.size))

    spikes = select(ResponseType.SPIKE)
    madc = select(ResponseType.MADC_SAMPLE)
    errors = select(ResponseType.ERROR)
    ends = select(ResponseType.END)
    spike_low, spike_high = _halves(spikes)
    madc_low, madc_high = _halves(madc)
    malformed = int(plain.size - histogram[_KNOWN_RESPONSE].sum()) + truncated
    return Responses(
        read_addresses=read_addresses,
        read_data=read_data,
        spike_labels=(spike_high & np.uint32(0xFFFF)).astype(np.uint16),
        spike_times=spike_low.astype(np.uint32),
        madc_channels=((madc_high >> np.uint32(16)) & np.uint32(1)).astype(np.uint8),
        madc_values=(madc_high & np.uint32(0x3FF)).astype(np.uint16),
        madc_times=madc_low.astype(np.uint32),
        error_codes=((errors >> _U64(48)) & _U64(0xFF)).astype(np.uint8),
        error_opcodes=((errors >> _U64(40)) & _U64(0xFF)).astype(np.uint8),
        error_indices=(errors & _MASK32).astype(np.uint32),
        end_cookies=(ends & _MASK32).astype(np.uint32),
        malformed=malformed,
    )
