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


def _check_range(name: str, values: np.ndarray, low: int, high: int) -> None:
    if values.size and (values.min() < low or values.max() > high):
        bad = values[(values < low) | (values > high)][0]
        raise HalValueError(f"{name} = {int(bad)} is out of range [{low}, {high}]")


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
    _check_range("address", addresses, 0, ADDRESS_LIMIT - 1)
    _check_range("data", data, 0, 0xFFFF_FFFF)
    return _header(Opcode.WRITE, (addresses.astype(_U64) << _ADDRESS_SHIFT) | data.astype(_U64))


def encode_read(addresses: object) -> np.ndarray:
    """READ words for an array of addresses."""
    addresses = _as_int_array("addresses", addresses)
    _check_range("address", addresses, 0, ADDRESS_LIMIT - 1)
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
    _check_range("label", labels, 0, LABEL_LIMIT - 1)
    n_packs = -(-labels.size // group)
    delays_arr = np.broadcast_to(np.asarray(delays), (n_packs,)) if n_packs else np.empty(0, np.int64)
    delays_arr = _as_int_array("delays", delays_arr)
    _check_range("delay", delays_arr, 0, MAX_SPIKE_DELAY)
    flat = np.zeros(n_packs * group, dtype=_U64)
    flat[: labels.size] = labels.astype(_U64)
    padded = np.zeros((n_packs, 3), dtype=_U64)
    padded[:, :group] = flat.reshape(n_packs, group)
    counts = np.full(n_packs, group, dtype=_U64)
    if n_packs and labels.size % group:
        counts[-1] = labels.size % group
    payload = (
        (delays_arr.astype(_U64) << _U64(50))
        | (counts << _U64(48))
        | (padded[:, 0] << _U64(32))
        | (padded[:, 1] << _U64(16))
        | padded[:, 2]
    )
    return _header(Opcode.SPIKES, payload)


# ------------------------------------------------------------------------------------- block walking


def block_payload_mask(words: np.ndarray, header_code: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Find the block headers of a stream and the raw data words they own.

    Returns ``(is_data, header_index, header_count)``: a boolean mask marking raw data words, and the
    positions and register-word counts of the real block headers (data words that happen to look like
    headers are skipped). A header whose data runs past the end of the stream is reported with the count
    of register words it actually has room for; callers compare against the declared count.
    """
    words = np.asarray(words, dtype=_U64)
    opcodes = (words >> _OPCODE_SHIFT).astype(np.uint8)
    candidates = np.flatnonzero(opcodes == header_code)
    is_data = np.zeros(words.size, dtype=bool)
    if candidates.size == 0:
        return is_data, candidates.astype(np.int64), candidates.astype(np.int64)
    counts_all = (words[candidates] & _MASK16).astype(np.int64)
    headers: list[int] = []
    counts: list[int] = []
    position = 0
    while True:
        index = int(np.searchsorted(candidates, position))  # first real header at or after `position`
        if index >= candidates.size:
            break
        header = int(candidates[index])
        count = int(counts_all[index])
        headers.append(header)
        counts.append(count)
        position = header + 1 + (count + 1) // 2
        is_data[header + 1 : min(position, words.size)] = True
    return is_data, np.asarray(headers, dtype=np.int64), np.asarray(counts, dtype=np.int64)


def _unpack_block_data(words: np.ndarray, headers: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Register words of each block (concatenated) and the block each belongs to."""
    if headers.size == 0:
        return np.empty(0, np.uint32), np.empty(0, np.int64)
    n_data = (counts + 1) // 2
    starts = headers + 1
    available = np.minimum(n_data, np.maximum(words.size - starts, 0))
    if available.sum() == 0:
        return np.empty(0, np.uint32), np.empty(0, np.int64)
    # gather all data words of all blocks in one go
    offsets = np.repeat(starts - np.concatenate(([0], np.cumsum(available)[:-1])), available)
    data_index = np.arange(int(available.sum()), dtype=np.int64) + offsets
    pairs = np.ascontiguousarray(words[data_index]).astype("<u8", copy=False).view("<u4")
    # drop the padding half-word of odd-length blocks and register words that were truncated away
    registers_per_block = np.minimum(counts, 2 * available)
    keep_per_block = np.repeat(registers_per_block, 2 * available)
    position_in_block = np.arange(pairs.size) - np.repeat(np.concatenate(([0], np.cumsum(2 * available)[:-1])), 2 * available)
    keep = position_in_block < keep_per_block
    block_of = np.repeat(np.arange(headers.size), 2 * available)[keep]
    return pairs[keep].astype(np.uint32), block_of


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


def decode_instructions(words: object) -> InstructionStream:
    """Split an instruction stream into instructions and block data (vectorised; never raises on content).

    Malformed content (unknown opcodes, truncated blocks) is kept for the executor to answer with ERROR
    responses; only a stream that is not a 1-D integer array raises :class:`EncodingError`.
    """
    words = _as_word_array("words", words)
    is_data, headers, counts = block_payload_mask(words, Opcode.WRITE_BLOCK)
    index = np.flatnonzero(~is_data)
    kept = words[index]
    block_data, block_of = _unpack_block_data(words, headers, counts)
    return InstructionStream(
        words=words,
        index=index,
        opcode=(kept >> _OPCODE_SHIFT).astype(np.uint8),
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
    values = _as_int_array("values", values).astype(_U64) & _U64(0x3FF)
    times = _as_int_array("times", times).astype(_U64) & _MASK32
    channel_arr = np.broadcast_to(np.asarray(channel, dtype=_U64), values.shape) & _U64(1)
    return _header(ResponseType.MADC_SAMPLE, (channel_arr << _U64(48)) | (values << _ADDRESS_SHIFT) | times)


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


def decode_responses(words: object) -> Responses:
    """Decode a response stream with whole-array operations (one Python step per block header)."""
    words = _as_word_array("words", words)
    is_data, headers, counts = block_payload_mask(words, ResponseType.BLOCK_DATA)
    if headers.size:
        plain_index = np.flatnonzero(~is_data)
        plain = words[plain_index]
    else:
        plain_index = None
        plain = words
    kind = (plain >> _OPCODE_SHIFT).astype(np.uint8)
    is_read = kind == ResponseType.READ_DATA

    if headers.size == 0:
        read_words = plain[is_read]
        read_addresses = ((read_words >> _ADDRESS_SHIFT) & _MASK24).astype(np.uint32)
        read_data = (read_words & _MASK32).astype(np.uint32)
        truncated = 0
    else:
        # merge single reads and block reads in stream order
        block_data, block_of = _unpack_block_data(words, headers, counts)
        block_start = ((words[headers] >> _ADDRESS_SHIFT) & _MASK24).astype(np.int64)
        first_of_block = np.concatenate(([0], np.cumsum(np.bincount(block_of, minlength=headers.size))[:-1]))
        block_addresses = block_start[block_of] + (np.arange(block_of.size) - first_of_block[block_of])
        single_positions = plain_index[is_read]  # type: ignore[index]
        single_words = plain[is_read]
        positions = np.concatenate((single_positions, headers[block_of]))
        subpositions = np.concatenate((np.zeros(single_positions.size, np.int64), np.arange(block_of.size)))
        order = np.lexsort((subpositions, positions))
        read_addresses = np.concatenate(
            (((single_words >> _ADDRESS_SHIFT) & _MASK24).astype(np.int64), block_addresses)
        )[order].astype(np.uint32)
        read_data = np.concatenate(((single_words & _MASK32).astype(np.uint32), block_data))[order]
        truncated = int(np.count_nonzero(headers + 1 + (counts + 1) // 2 > words.size))

    spikes = plain[kind == ResponseType.SPIKE]
    madc = plain[kind == ResponseType.MADC_SAMPLE]
    errors = plain[kind == ResponseType.ERROR]
    ends = plain[kind == ResponseType.END]
    known = np.isin(kind, np.array([int(t) for t in ResponseType], dtype=np.uint8))
    return Responses(
        read_addresses=read_addresses,
        read_data=read_data,
        spike_labels=((spikes >> _ADDRESS_SHIFT) & _MASK16).astype(np.uint16),
        spike_times=(spikes & _MASK32).astype(np.uint32),
        madc_channels=((madc >> _U64(48)) & _U64(1)).astype(np.uint8),
        madc_values=((madc >> _ADDRESS_SHIFT) & _U64(0x3FF)).astype(np.uint16),
        madc_times=(madc & _MASK32).astype(np.uint32),
        error_codes=((errors >> _U64(48)) & _U64(0xFF)).astype(np.uint8),
        error_opcodes=((errors >> _U64(40)) & _U64(0xFF)).astype(np.uint8),
        error_indices=(errors & _MASK32).astype(np.uint32),
        end_cookies=(ends & _MASK32).astype(np.uint32),
        malformed=int(np.count_nonzero(~known)) + truncated,
    )
