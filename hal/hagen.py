"""The canonical hagen-mode (analog matrix-vector multiply) program at register level.

:func:`hagen_config_words` configures the chip for hagen mode on one or both synrams (integrating
neurons, nominal CapMem values with optional per-neuron overrides, CADC, PADI buses, crossbar, synapse
drivers, signed weights); :func:`hagen_input_words` encodes batches of 5-bit input vectors; and
:func:`decode_hagen_responses` turns the response words back into ``y = sample - 128`` per synram.

Routing (see ``registers.yaml``): input row ``i`` of synram ``h`` is sent as label
``(h << 13) | ((i % 4) << 11) | ((i // 4) << 6) | x_i`` from FPGA channel 0 (crossbar input 8) to output
``h * 4 + i % 4`` (PADI bus ``i % 4`` of hemisphere ``h``), where synapse driver ``i`` (address ``i // 4``)
accepts it and drives row ``2i`` excitatory (weight ``max(W, 0)``) and row ``2i + 1`` inhibitory
(weight ``max(-W, 0)``). Everything is generated with whole-array operations, except the input events:
:func:`encode_vectors` packs them in one compiled pass (numba) where numba imports, with the numpy passes
as the fallback (``BSS2_HAGEN_ENCODER=numpy``); both give the same words.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Final

import numpy as np

from . import wire
from ._numba import load_numba
from .errors import EncodingError, HalValueError
from .regmap import REGISTER_MAP
from .wire import Opcode

ROWS: Final = 128  # signed input rows per synram
COLUMNS: Final = 256
MAX_ACTIVATION: Final = 31
MAX_WEIGHT: Final = 63
DEFAULT_WAIT_BETWEEN_EVENTS: Final = 5
DEFAULT_SETTLE_CYCLES: Final = 8  # after the last event, before the CADC conversion
CAPMEM_SETTLE_CYCLES: Final = 2_500_000  # 20 ms: CapMem writes settle before the first MAC
# timeline estimate used for the per-vector settle wait (the emulator's default issue and reset times)
_ISSUE_CYCLES = 1
_NEURON_RESET_CYCLES = 16

_U64 = np.uint64
_B = REGISTER_MAP
NEURON_CONFIG_INTEGRATOR: Final = 0b11 | (63 << 8)  # both synaptic inputs, no leak/threshold/fire, full capacitance
DRIVER_CONFIG_HAGEN: Final = 1 | (1 << 1) | (2 << 3) | (31 << 5) | (1 << 10) | (1 << 11) | (8 << 12)


def _synrams(synrams: object) -> tuple[int, ...]:
    result = tuple(sorted({int(s) for s in synrams}))  # type: ignore[union-attr]
    if not result or any(s not in (0, 1) for s in result):
        raise HalValueError(f"synrams = {synrams!r} must be a non-empty subset of {{0, 1}}")
    return result


def hagen_label(synram: int, row: int, activation: object) -> np.ndarray:
    """Event label(s) carrying ``activation`` (0..31) to input row ``row`` (0..127) of ``synram``."""
    a = np.asarray(activation, dtype=np.int64)
    return (synram << 13) | ((row % 4) << 11) | ((row // 4) << 6) | a


def capmem_nominal_words() -> tuple[np.ndarray, np.ndarray]:
    """Addresses and nominal values of every CapMem cell (4 blocks x 24 rows x 130 columns; unnamed cells 0)."""
    values = np.zeros((4, 24, 130), dtype=np.uint32)
    for row in _B.capmem_neuron_rows:
        values[:, row.row, :128] = row.nominal
    for row in _B.capmem_shared_rows:
        values[:, row.row, 128] = row.nominal
    return _B["capmem_cell"].base + np.arange(values.size), values.reshape(-1)


def hagen_config_words(
    weights: Mapping[int, np.ndarray],
    *,
    neuron_capmem: Mapping[str, np.ndarray] | None = None,
    settle_cycles: int = CAPMEM_SETTLE_CYCLES,
) -> np.ndarray:
    """Instruction words that configure hagen mode for the synrams given as keys of ``weights``.

    ``weights[h]`` is the signed weight matrix (128 inputs x 256 outputs, integers in [-63, 63]) of synram
    ``h`` (0 top, 1 bottom). ``neuron_capmem`` optionally overrides named per-neuron CapMem rows
    (``registers.yaml`` ``capmem_rows``) with 512 codes each (0..1022, index = AtomicNeuronOnDLS enum) -
    the knob a calibration turns. The words end with a wait of ``settle_cycles`` (default 20 ms) after a
    timer reset, so CapMem has settled before the first multiply.
    """
    synrams = _synrams(weights.keys())
    parts: list[np.ndarray] = [wire.encode_timer_reset()]
    # CapMem: nominal values everywhere, then per-neuron overrides
    addresses, values = capmem_nominal_words()
    cells = values.reshape(4, 24, 130)
    neuron = np.arange(512)
    quadrant, column = (neuron // 256) * 2 + (neuron % 256) // 128, neuron % 128
    for name, codes in (neuron_capmem or {}).items():
        codes = np.asarray(codes)
        if codes.shape != (512,) or not np.issubdtype(codes.dtype, np.integer):
            raise HalValueError(f"neuron_capmem[{name!r}] must be 512 integer codes, got shape {codes.shape} dtype {codes.dtype}")
        if codes.min() < 0 or codes.max() > 1022:
            raise HalValueError(f"neuron_capmem[{name!r}] has codes outside [0, 1022]: {codes.min()}..{codes.max()}")
        cells[quadrant, _B.capmem_row(name), column] = codes
    parts.append(wire.encode_write_block(int(addresses[0]), values))

    neurons = np.concatenate([np.arange(256) + 256 * h for h in synrams])
    parts.append(wire.encode_write(_B["neuron_config"].base + neurons, np.full(neurons.size, NEURON_CONFIG_INTEGRATOR)))
    for h in synrams:
        w = np.asarray(weights[h])
        if w.shape != (ROWS, COLUMNS) or not np.issubdtype(w.dtype, np.integer):
            raise HalValueError(f"weights[{h}] must be integers of shape ({ROWS}, {COLUMNS}), got shape {w.shape} dtype {w.dtype}")
        if w.size and (w.min() < -MAX_WEIGHT or w.max() > MAX_WEIGHT):
            raise HalValueError(f"weights[{h}] out of range [-{MAX_WEIGHT}, {MAX_WEIGHT}]: {w.min()}..{w.max()}")
        parts.append(hagen_synapse_words(h, w))
        buses = np.arange(4)
        nodes = 8 * 12 + h * 4 + buses  # crossbar input 8 (FPGA channel 0) -> output h * 4 + bus
        node_words = np.stack(
            [np.full(4, 0x3800) | (((h << 13) | (buses << 11)) << 16), np.ones(4, np.int64)], axis=1
        ).reshape(-1)
        parts.append(wire.encode_write((_B["crossbar_node"].base + 2 * nodes[:, None] + np.arange(2)).reshape(-1), node_words))
        parts.append(wire.encode_write(_B["padi_bus_config"].base + h * 4 + buses, np.ones(4, np.int64)))
        parts.append(wire.encode_write_block(_B["synapse_driver_config"].base + 128 * h, np.full(128, DRIVER_CONFIG_HAGEN)))
        parts.append(wire.encode_write([_B["cadc_config"].base + h], [1]))
    parts.append(wire.encode_wait_until(np.array([settle_cycles])))
    return np.concatenate(parts)


def hagen_synapse_words(synram: int, weights: np.ndarray) -> np.ndarray:
    """One WRITE_BLOCK of the weights plane of ``synram`` for a signed (128, 256) weight matrix."""
    w = np.asarray(weights, dtype=np.int64)
    rows = np.empty((2 * ROWS, COLUMNS), dtype=np.uint8)
    rows[0::2] = np.maximum(w, 0)
    rows[1::2] = np.maximum(-w, 0)
    words = rows.reshape(-1).view("<u4")  # four synapses (bytes) per quad word, column-ascending
    return wire.encode_write_block(_B["synapse_quad"].base + synram * (ROWS * 2 * 64), words.astype(np.int64))


def hagen_input_words(
    inputs: Mapping[int, np.ndarray],
    *,
    num_sends: int = 1,
    wait_between_events: int = DEFAULT_WAIT_BETWEEN_EVENTS,
    settle_cycles: int = DEFAULT_SETTLE_CYCLES,
    end_cookie: int | None = None,
) -> np.ndarray:
    """Instruction words computing one MAC per input vector.

    ``inputs[h]`` is a (batch, 128) integer array in [0, 31] for synram ``h``; all synrams share the batch.
    Per vector: TIMER_RESET, a neuron reset of the used quadrants, for each send the events of every
    non-zero entry (both synrams' events of a row next to each other, up to 3 per SPIKES word, each word
    waiting ``wait_between_events`` cycles, 0..63), a wait until ``settle_cycles`` after the last event,
    and one READ_BLOCK of the causal CADC row (64 words) per synram.
    """
    synrams = _synrams(inputs.keys())
    if not 1 <= int(num_sends) <= 1 << 16:
        raise HalValueError(f"num_sends = {num_sends} is out of range [1, 65536]")
    if not 0 <= int(wait_between_events) <= wire.MAX_SPIKE_DELAY:
        raise HalValueError(f"wait_between_events = {wait_between_events} is out of range [0, {wire.MAX_SPIKE_DELAY}]")
    if not 0 <= int(settle_cycles) <= 1 << 20:
        raise HalValueError(f"settle_cycles = {settle_cycles} is out of range [0, {1 << 20}]")
    arrays = []
    for h in synrams:
        x = np.asarray(inputs[h])
        if x.ndim != 2 or x.shape[1] != ROWS or not (np.issubdtype(x.dtype, np.integer) or x.dtype == bool):
            raise HalValueError(f"inputs[{h}] must be an integer array of shape (batch, {ROWS}), got shape {x.shape} dtype {x.dtype}")
        if x.size and (x.min() < 0 or x.max() > MAX_ACTIVATION):
            raise HalValueError(f"inputs[{h}] out of range [0, {MAX_ACTIVATION}]: {x.min()}..{x.max()}")
        arrays.append(x)
    batch = arrays[0].shape[0]
    if any(a.shape[0] != batch for a in arrays):
        raise HalValueError(f"all synrams need the same batch size, got {[a.shape[0] for a in arrays]}")
    x = np.stack(arrays, axis=2).astype(np.uint16, copy=False)  # (B, 128, S): both synrams' events of a row together
    out = encode_vectors(x, synrams, int(num_sends), int(wait_between_events), int(settle_cycles))
    if end_cookie is not None:
        out = np.concatenate((out, wire.encode_end(end_cookie)))
    return out


def encode_vectors(
    x: np.ndarray,
    synrams: tuple[int, ...],
    num_sends: int,
    wait_between_events: int,
    settle_cycles: int,
) -> np.ndarray:
    """The words of :func:`hagen_input_words` for already validated inputs.

    ``x``: (batch, 128, S) unsigned integers in [0, 31], the inputs of the ascending ``synrams`` side by
    side; ``num_sends`` 1..65536, ``wait_between_events`` 0..63 and ``settle_cycles`` 0..2**20 are not
    checked again (callers such as the executor validate once). An entry outside [0, 31] raises
    :class:`~bss2.hal.HalValueError` (the compiled pass finds it while it counts the events). The same words
    as :func:`hagen_input_words`, from a compiled pass over ``x`` (see :func:`encoder_mode`), or else from a
    few whole-array operations.
    """
    kernel = _compiled_encoder()
    if kernel is None:
        _check_range(x)
        return _encode_vectors_numpy(x, synrams, num_sends, wait_between_events, settle_cycles)
    return _encode_vectors_compiled(kernel, x, synrams, num_sends, wait_between_events, settle_cycles)


def encoder_mode() -> str:
    """``"numba"`` when :func:`encode_vectors` runs its compiled pass, else ``"numpy"``.

    The compiled pass (numba) is used where numba imports, unless ``BSS2_HAGEN_ENCODER=numpy`` is set
    (read once per process); both give the same words.
    """
    return "numpy" if _compiled_encoder() is None else "numba"


def encode_gathered(
    source: np.ndarray,
    columns: np.ndarray,
    synrams: tuple[int, ...],
    num_sends: int,
    wait_between_events: int,
    settle_cycles: int,
) -> np.ndarray:
    """The words of :func:`encode_vectors` for inputs gathered from the columns of ``source``.

    ``source``: (batch, C) integers; ``columns``: (P, 128 * S) int64, for each of P phases the source column
    of every (row, synram) entry in the order of :func:`encode_vectors`'s ``x`` (row-major, synrams side
    by side), or -1 for an entry without input. The vectors are those of ``x[p * batch + v, j] =
    source[v, columns[p, j]]`` (0 where ``columns[p, j] < 0``), phase after phase. An input entry outside
    [0, 31] raises :class:`~bss2.hal.HalValueError`. The compiled pass reads ``source`` in place (no
    gathered copy; with one send it sizes its output for every entry being an event, so the words may be a
    view of a larger buffer); the numpy twin gathers ``x`` first.
    """
    source = np.asarray(source)
    columns = _checked_columns(columns, len(synrams), source)
    kernel = _compiled_encoder()
    if kernel is None:
        x = _gather_numpy(source, columns)
        _check_range(x)
        return _encode_vectors_numpy(x.astype(np.uint16), synrams, num_sends, wait_between_events, settle_cycles)
    return _encode_gathered_compiled(kernel, source, columns, synrams, num_sends, wait_between_events, settle_cycles)


def _checked_columns(columns: np.ndarray, n_syn: int, source: np.ndarray) -> np.ndarray:
    """``columns`` as a C-contiguous int64 array, checked against ``source`` (bounds are remembered per
    read-only array, which callers such as the executor pass again and again)."""
    if source.ndim != 2 or not (np.issubdtype(source.dtype, np.integer) or source.dtype == bool):
        raise HalValueError(f"source must be a 2-D integer array, got shape {source.shape} dtype {source.dtype}")
    known = _COLUMN_BOUNDS.get(id(columns))
    if known is None or known[0] is not columns:
        checked = np.ascontiguousarray(columns, dtype=np.int64)
        if checked.ndim != 2 or checked.shape[1] != ROWS * n_syn:
            raise HalValueError(f"columns must have shape (phases, {ROWS * n_syn}), got {checked.shape}")
        low, high = (int(checked.min()), int(checked.max())) if checked.size else (-1, -1)
        if low < -1:
            raise HalValueError(f"columns hold {low}: source columns are >= 0, or -1 for no input")
        known = (columns, checked, high)
        if not columns.flags.writeable and checked is columns:
            if len(_COLUMN_BOUNDS) >= 64:
                _COLUMN_BOUNDS.clear()
            _COLUMN_BOUNDS[id(columns)] = known
    if known[2] >= source.shape[1]:
        raise HalValueError(f"columns reach source column {known[2]}, but source has {source.shape[1]} columns")
    return known[1]


#: Per read-only column map (by id): the map itself, its checked int64 form and its largest column.
_COLUMN_BOUNDS: dict[int, tuple[np.ndarray, np.ndarray, int]] = {}


def _check_range(x: np.ndarray) -> None:
    if x.size and (int(x.min()) < 0 or int(x.max()) > MAX_ACTIVATION):
        raise HalValueError(f"x holds activations outside [0, {MAX_ACTIVATION}] (range {int(x.min())}..{int(x.max())})")


def _gather_numpy(source: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """The (P * batch, 128, S) inputs that :func:`encode_gathered` encodes, as an int64 array."""
    batch = source.shape[0]
    phases, entries = columns.shape
    x = np.zeros((phases, batch, entries), np.int64)
    for p in range(phases):
        used = columns[p] >= 0
        x[p][:, used] = source[:, columns[p][used]]
    return x.reshape(phases * batch, ROWS, entries // ROWS)


def _encode_gathered_compiled(
    kernel: Callable[..., tuple[np.ndarray, int, int]],
    source: np.ndarray,
    columns: np.ndarray,
    synrams: tuple[int, ...],
    num_sends: int,
    wait_between_events: int,
    settle_cycles: int,
) -> np.ndarray:
    """:func:`encode_gathered` by the compiled kernel (``kernel`` from :func:`_compiled_encoder`)."""
    if source.dtype == bool:
        source = source.view(np.uint8)
    if source.dtype not in _KERNEL_DTYPES:  # one compiled variant per dtype: others are widened (exactly)
        source = source.astype(np.int64)
    if not source.flags.c_contiguous:
        source = np.ascontiguousarray(source)
    base, constants = _kernel_constants(synrams, num_sends, wait_between_events, settle_cycles)
    words, smallest, largest = kernel(source, columns, base, constants)
    if smallest < 0 or largest > MAX_ACTIVATION:  # the kernel stops early: there are no words to give
        raise HalValueError(f"x holds activations outside [0, {MAX_ACTIVATION}] (range {smallest}..{largest})")
    return words.view(_U64)


#: Input dtypes that the compiled encoder reads as they are.
_KERNEL_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.int64))


def _encode_vectors_compiled(
    kernel: Callable[..., tuple[np.ndarray, int, int]],
    x: np.ndarray,
    synrams: tuple[int, ...],
    num_sends: int,
    wait_between_events: int,
    settle_cycles: int,
) -> np.ndarray:
    """:func:`encode_vectors` by the compiled kernel: ``x`` read as one phase of every entry in order."""
    entries = ROWS * len(synrams)
    flat = x.reshape(x.shape[0], entries)
    return _encode_gathered_compiled(kernel, flat, _identity_columns(entries), synrams, num_sends, wait_between_events,
                                     settle_cycles)


@functools.lru_cache(maxsize=4)
def _identity_columns(entries: int) -> np.ndarray:
    columns = np.arange(entries, dtype=np.int64).reshape(1, entries)
    columns.flags.writeable = False
    return columns


@functools.lru_cache(maxsize=16)
def _kernel_constants(synrams: tuple[int, ...], num_sends: int, wait_between_events: int, settle_cycles: int) -> tuple[np.ndarray, np.ndarray]:
    """The label bases (flat, in entry order) and the kernel's int64 constants: sends, SPIKES head, fixed
    wait, wait per pack, TIMER_RESET, neuron reset, WAIT_UNTIL head, the fewest entries between two entries
    on one PADI bus, then the READ_BLOCK word of each synram."""
    base, timer_reset, neuron_reset, reads = _input_constants(synrams)
    spikes_head = (int(Opcode.SPIKES) << 56) | (int(wait_between_events) << 50)
    fixed_wait = 2 * _ISSUE_CYCLES + _NEURON_RESET_CYCLES + int(settle_cycles)
    buses = (base.reshape(-1) >> 11).tolist()
    seen: dict[int, int] = {}
    distance = len(buses)  # the fewest entries between two entries on one PADI bus
    for j, bus in enumerate(buses):
        if bus in seen:
            distance = min(distance, j - seen[bus])
        seen[bus] = j
    constants = np.array([int(num_sends), spikes_head, fixed_wait, _ISSUE_CYCLES + int(wait_between_events),
                          _as_signed(timer_reset), _as_signed(neuron_reset), _as_signed(_WAIT_UNTIL_HEAD), distance,
                          *(_as_signed(r) for r in reads)], np.int64)
    constants.flags.writeable = False
    flat = base.reshape(-1).astype(np.int64)
    flat.flags.writeable = False
    return flat, constants


def _as_signed(word: object) -> int:
    """A 64-bit word as the int64 of the same bits (the kernel works on int64)."""
    value = int(word)  # type: ignore[call-overload]
    return value - (1 << 64) if value >= 1 << 63 else value


@functools.lru_cache(maxsize=1)
def _compiled_encoder() -> Callable[..., tuple[np.ndarray, int, int]] | None:
    """The compiled encoding pass, or None (numba missing, or ``BSS2_HAGEN_ENCODER=numpy``)."""
    numba = load_numba("BSS2_HAGEN_ENCODER", "the hagen input encoder")
    return None if numba is None else _build_encoder(numba)


def _build_encoder(numba):  # noqa: ANN001, ANN202 - the numba module; returns the jitted kernel
    @numba.njit(nogil=True, cache=True, boundscheck=False)
    def encode_kernel(source, columns, base, constants):
        # the packing of _encode_vectors_numpy: per vector the labels of every send, row and synram in that
        # order; a label opens a new SPIKES word (pack) when it is the vector's first, when the open pack is
        # full, or when its PADI bus equals the bus of one of the vector's two labels before it. Entry j of
        # output vector p * batch + v is source[v, columns[p, j]] (none where the column is < 0). Words are
        # built as int64 (the same bits as the uint64 words); the smallest and largest input are returned
        # too (the kernel stops at the first vector with an input outside [0, 31]).
        num_sends, spikes_head, fixed_wait, pack_wait = constants[0], constants[1], constants[2], constants[3]
        timer_reset, neuron_reset, wait_head, distance = constants[4], constants[5], constants[6], constants[7]
        reads = constants[8:]
        batch = source.shape[0]
        phases, entries = columns.shape
        n_syn = reads.size
        full = spikes_head | (np.int64(3) << 48)
        smallest = 0
        largest = 0
        # room for the words: an upper bound (every entry an event) for one send, else counted exactly
        if num_sends == 1:
            used = 0
            for p in range(phases):
                for j in range(entries):
                    used += columns[p, j] >= 0
            size = phases * batch * (3 + n_syn) + used * batch
        else:
            nonzero = 0
            for p in range(phases):
                for v in range(batch):
                    for j in range(entries):
                        c = columns[p, j]
                        if c >= 0:
                            a = np.int64(source[v, c])
                            nonzero += a != 0
                            smallest = min(smallest, a)
                            largest = max(largest, a)
            if smallest < 0 or largest > 31:
                return np.empty(0, np.int64), smallest, largest
            size = phases * batch * (3 + n_syn) + nonzero * num_sends
        out = np.empty(size, np.int64)
        labels = np.empty(entries, np.int64)
        n = 0
        for p in range(phases):
            for v in range(batch):
                # the vector's labels in order, and the widest gap (in entries) before one of them
                m = 0
                low = 0
                high = 0
                gap = 0
                last = 0
                for j in range(entries):
                    c = columns[p, j]
                    a = np.int64(source[v, c]) if c >= 0 else np.int64(0)
                    low = min(low, a)
                    high = max(high, a)
                    labels[m] = base[j] | a
                    event = a != 0
                    gap = max(gap, (j - last) * event)
                    last = j if event else last
                    m += event
                smallest = min(smallest, low)
                largest = max(largest, high)
                if low < 0 or high > 31:
                    return out[:0], smallest, largest
                out[n] = timer_reset
                out[n + 1] = neuron_reset
                n += 2
                # two entries on one bus lie at least `distance` entries apart, so labels at most two apart
                # clash only after a gap of distance / 2; without a clash (and one send) the packs are simply
                # consecutive triples
                regular = num_sends == 1
                if regular and 2 * gap >= distance:
                    for i in range(1, m, 3):  # labels i and i + 1 of each triple against the two before each
                        bus = labels[i] >> 11
                        clash = bus == labels[i - 1] >> 11 or (i > 1 and bus == labels[i - 2] >> 11)
                        if i + 1 < m:
                            following = labels[i + 1] >> 11
                            clash = clash or following == bus or following == labels[i - 1] >> 11
                        if clash:
                            regular = False
                            break
                packs = 0
                if regular:
                    triples = m // 3
                    for t in range(triples):
                        i = 3 * t
                        out[n + t] = full | (labels[i] << 32) | (labels[i + 1] << 16) | labels[i + 2]
                    n += triples
                    packs = triples
                    rest = m - 3 * triples
                    if rest:
                        word = spikes_head | (np.int64(rest) << 48) | (labels[3 * triples] << 32)
                        if rest == 2:
                            word |= labels[3 * triples + 1] << 16
                        out[n] = word
                        n += 1
                        packs += 1
                else:
                    count = 3  # labels in the open pack (3: none open)
                    word = np.int64(0)
                    previous = -1  # buses of the vector's last two labels
                    before = -1
                    for _ in range(num_sends):
                        for i in range(m):
                            bus = labels[i] >> 11
                            if count == 3 or bus == previous or bus == before:
                                if packs:
                                    out[n] = word | (np.int64(count) << 48)
                                    n += 1
                                packs += 1
                                word = spikes_head
                                count = 0
                            word |= labels[i] << (32 - 16 * count)
                            count += 1
                            before = previous
                            previous = bus
                    if packs:
                        out[n] = word | (np.int64(count) << 48)
                        n += 1
                out[n] = wait_head | (fixed_wait + packs * pack_wait)
                n += 1
                for k in range(n_syn):
                    out[n] = reads[k]
                    n += 1
        return out[:n], smallest, largest

    return encode_kernel


def _encode_vectors_numpy(x: np.ndarray, synrams: tuple[int, ...], num_sends: int, wait_between_events: int, settle_cycles: int) -> np.ndarray:
    """:func:`encode_vectors` by whole-array operations (the fallback and the reference of the kernel)."""
    batch, n_syn = x.shape[0], len(synrams)
    base, timer_reset, neuron_reset, reads = _input_constants(synrams)
    flat = x.reshape(batch, ROWS * n_syn)
    base_flat = base.reshape(-1)
    if num_sends > 1:  # every send repeats the vector's events, all within its window
        flat = np.tile(flat, (1, num_sends))
        base_flat = np.tile(base_flat, num_sends)
    valid = flat != 0
    labels = (base_flat | flat)[valid].astype(np.uint16, copy=False)  # grouped by vector, send, row, synram
    counts = valid.sum(axis=1)
    n_labels = labels.size
    ends = counts.cumsum()
    # packs of up to 3 labels; a pack never holds two labels for the same PADI bus (the bus would lose
    # one of two events that close together), so a label whose bus equals one of the two before it opens
    # a new pack, as does the first label of a vector. Row-major order keeps dense inputs at 3 per pack.
    # (Method calls rather than numpy functions: this runs for every program, and small batches are
    # dominated by the per-call overhead.)
    bus = labels >> np.uint16(11)  # hemisphere * 4 + bus (labels have 14 bits)
    first = np.zeros(n_labels + 1, dtype=bool)
    first[ends - counts] = True
    opens = first[:n_labels].copy()
    opens[1:] |= bus[1:] == bus[:-1]
    if n_labels > 2:
        opens[2:] |= (bus[2:] == bus[:-2]) > first[1 : n_labels - 1]
    seg_start = opens.nonzero()[0]
    seg_len = np.empty_like(seg_start)
    seg_len[:-1] = seg_start[1:] - seg_start[:-1]
    seg_len[-1:] = n_labels - seg_start[-1:]
    seg_packs = (seg_len + 2) // 3
    pack_end = seg_packs.cumsum()
    total_packs = int(pack_end[-1]) if pack_end.size else 0
    # the labels of a segment fill its packs in order: slot index = label index + (3 * first pack - first label)
    packed = np.zeros(total_packs * 3, dtype=np.uint16)
    packed[np.arange(n_labels) + (3 * (pack_end - seg_packs) - seg_start).repeat(seg_len)] = labels
    slots = np.empty((total_packs, 4), dtype=np.uint16)  # little-endian 16-bit lanes of the SPIKES words
    slots[:, 2::-1] = packed.reshape(total_packs, 3)  # label 0 in bits 47..32, label 2 in bits 15..0
    count = np.full(total_packs, 3, dtype=np.uint16)
    count[pack_end - 1] = seg_len - 3 * (seg_packs - 1)
    slots[:, 3] = count | np.uint16((int(wire.Opcode.SPIKES) << 8) | (wait_between_events << 2))
    # packs per vector: the packs of the segments that start before each vector's end
    through = np.zeros(seg_start.size + 1, np.int64)
    through[1:] = pack_end
    through = through[seg_start.searchsorted(ends)]
    packs = through.copy()
    packs[1:] -= through[:-1]
    # per vector: TIMER_RESET, neuron reset, packs, WAIT_UNTIL, READ_BLOCK per synram; vector v starts at
    # (packs before v) + v * (3 + S), and pack g of vector v lies at g + 2 + v * (3 + S)
    fixed = 3 + n_syn
    spread = np.arange(0, fixed * batch, fixed)
    offset = (through - packs) + spread
    out = np.empty(total_packs + fixed * batch, dtype=_U64)
    out[offset] = timer_reset
    out[offset + 1] = neuron_reset
    out[np.arange(total_packs) + (spread + 2).repeat(packs)] = slots.view("<u8").reshape(-1)
    tail = offset + 2 + packs
    wait = (2 * _ISSUE_CYCLES + _NEURON_RESET_CYCLES + settle_cycles) + packs * (_ISSUE_CYCLES + wait_between_events)
    out[tail] = wait.astype(_U64) | _WAIT_UNTIL_HEAD
    if n_syn == 1:
        out[tail + 1] = reads[0]
    else:
        out[tail[:, None] + np.arange(1, n_syn + 1)] = reads
    return out


_WAIT_UNTIL_HEAD = _U64(int(Opcode.WAIT_UNTIL) << 56)


@functools.lru_cache(maxsize=4)
def _input_constants(synrams: tuple[int, ...]) -> tuple[np.ndarray, np.uint64, np.uint64, np.ndarray]:
    """Per synram set: the (128, S) label bases, and the TIMER_RESET, neuron-reset and CADC READ_BLOCK words."""
    rows = np.arange(ROWS)
    base = np.stack([(h << 13) | ((rows % 4) << 11) | ((rows // 4) << 6) for h in synrams], axis=1).astype(np.uint16)
    base.flags.writeable = False
    quadrants = sum(3 << (2 * h) for h in synrams)
    neuron_reset = wire.encode_write([_B["neuron_reset"].base], [quadrants])[0]
    reads = np.array([wire.encode_read_block(cadc_row_address(h), 64)[0] for h in synrams], dtype=_U64)
    reads.flags.writeable = False
    return base, wire.encode_timer_reset()[0], neuron_reset, reads


def cadc_row_address(synram: int, acausal: bool = False) -> int:
    """Address of the first word of the causal (or acausal) CADC sample row of ``synram``."""
    return _B["cadc_sample_quad"].base + 128 * synram + 64 * int(acausal)


def decode_hagen_responses(responses: np.ndarray, synrams: object, batch: int) -> dict[int, np.ndarray]:
    """``y = sample - 128`` (int16, shape (batch, 256)) per synram from the responses of
    :func:`hagen_input_words` (``synrams`` in the order they were given, i.e. ascending).

    Raises :class:`EncodingError` if the responses hold errors or not exactly the expected reads.
    """
    synrams = _synrams(synrams)
    responses = np.asarray(responses, dtype=_U64)
    per_vector = len(synrams) * 33
    expected = batch * per_vector
    body = responses[:expected]
    # fast path: exactly the expected BLOCK_DATA headers at the expected places
    if responses.size >= expected and batch:
        headers = body.reshape(batch, len(synrams), 33)[:, :, 0]
        kinds = (headers >> _U64(56)).astype(np.uint8)
        tail = (responses[expected:] >> _U64(56)).astype(np.uint8)
        if np.all(kinds == wire.ResponseType.BLOCK_DATA) and np.all(tail == wire.ResponseType.END):
            data = np.ascontiguousarray(body.reshape(batch, len(synrams), 33)[:, :, 1:])
            samples = data.view(np.uint8).reshape(batch, len(synrams), 256)
            return {h: samples[:, k].astype(np.int16) - 128 for k, h in enumerate(synrams)}
    decoded = wire.decode_responses(responses)
    if decoded.error_codes.size:
        raise EncodingError(f"hagen program answered {decoded.error_codes.size} errors (codes {sorted(set(decoded.error_codes.tolist()))})")
    if decoded.read_data.size != batch * len(synrams) * 64:
        raise EncodingError(f"expected {batch * len(synrams) * 64} CADC words, got {decoded.read_data.size}")
    samples = decoded.read_data.astype("<u4").view(np.uint8).reshape(batch, len(synrams), 256)
    return {h: samples[:, k].astype(np.int16) - 128 for k, h in enumerate(synrams)}
