"""Hagen-mode programs: matrix-multiply tiles -> instruction words -> results.

A :class:`Tile` is one :class:`~bss2.graph.MACSynapseArrayView` chain of a graph with its input data.
Tiles that share batch size, ``num_sends`` and ``wait_between_events`` run in one program on one chip: up
to two per phase (one per synram), whose events share SPIKES words; every vector reads the CADC rows of all
synrams of the program. Column-packed tiles that share a synram (:mod:`bss2.exec.placement`) run in
successive phases, and the synram holds the :func:`synram_image` of all its tiles.

The static configuration is computed as a :class:`~bss2.hal.ChipConfig` and written differentially
against what the chip already holds (:class:`ChipState`), so a repeated run with the same weights sends no
weight words, and CapMem changes add the settling wait.
"""

from __future__ import annotations

import collections
import functools
from collections.abc import Mapping, Sequence

import attrs
import numpy as np

from bss2.hal import ChipConfig, HalValueError, SynramOnDLS, hagen, wire
from bss2.hal.containers import SynapseMatrix
from bss2.hal.program import encode_register_writes
from bss2.hal.regmap import REGISTER_MAP

from bss2.graph.vertices import frozen

from .errors import InputError, UnsupportedGraphError

#: Register word that resets the whole chip (block ``chip_reset``), written before the first program.
_CHIP_RESET = wire.encode_write([0x000001], [1])
_CAPMEM_BLOCK = REGISTER_MAP["capmem_cell"]


@attrs.define(eq=False)
class Tile:
    """One MAC tile: input data (batch, rows) in 0..31 and the view's weights and parameters."""

    instance: int
    inputs: np.ndarray  #: (batch, n_rows) int, 0..31
    rows: np.ndarray  #: driver indices (0..127) of the logical rows
    columns: np.ndarray  #: neuron columns (0..255)
    weights: np.ndarray  #: (n_rows, n_columns) int8, -63..63
    num_sends: int
    wait_between_events: int
    output_descriptors: tuple[int, ...]  #: DataOutput vertices receiving (batch, n_columns)
    synram: int = 0  #: assigned by placement
    chip: int = 0  #: assigned by placement
    phase: int = 0  #: vector window of its program (tiles sharing a synram run one after the other)

    @property
    def batch(self) -> int:
        return int(self.inputs.shape[0])

    def key(self) -> tuple[int, int, int]:
        """Tiles with equal keys can share a program."""
        return (self.batch, self.num_sends, self.wait_between_events)


@functools.lru_cache(maxsize=1)
def hagen_base_config() -> ChipConfig:
    """Static configuration of hagen mode on both synrams with zero weights (nominal CapMem)."""
    zeros = np.zeros((hagen.ROWS, hagen.COLUMNS), np.int64)
    return ChipConfig.from_program_writes(hagen.hagen_config_words({0: zeros, 1: zeros}))


def physical_weights(tile: Tile) -> np.ndarray:
    """The (256, 256) synapse weights of a tile's synram: row 2d excitatory, 2d+1 inhibitory."""
    weights = np.asarray(tile.weights)
    n_rows, n_columns = weights.shape
    if _is_prefix(tile.rows, n_rows) and _is_prefix(tile.columns, n_columns):
        if (n_rows, n_columns) == (hagen.ROWS, hagen.COLUMNS):
            signed = weights  # a full tile: no scatter needed
        else:
            signed = np.zeros((hagen.ROWS, hagen.COLUMNS), weights.dtype)
            signed[:n_rows, :n_columns] = weights
    else:
        signed = np.zeros((hagen.ROWS, hagen.COLUMNS), np.int16)
        signed[np.ix_(tile.rows, tile.columns)] = weights
    return _physical_of_signed(signed)


def synram_image(tiles: Sequence[Tile]) -> np.ndarray:
    """The read-only (256, 256) physical weights of one synram holding several ``tiles`` side by side.

    The tiles' columns must be disjoint (their drivers may overlap): a tile's run sends events to its
    own drivers only and reads its own columns only, so what the others' columns integrate is ignored.
    Raises :class:`UnsupportedGraphError` if two tiles claim a column.
    """
    signed = np.zeros((hagen.ROWS, hagen.COLUMNS), np.int8)
    claimed = np.zeros(hagen.COLUMNS, np.int64)
    for tile in tiles:
        np.add.at(claimed, np.asarray(tile.columns), 1)
        signed[np.ix_(tile.rows, tile.columns)] = tile.weights
    if claimed.max(initial=0) > 1:
        raise UnsupportedGraphError(f"tiles placed on one synram share columns {np.flatnonzero(claimed > 1)[:8].tolist()}")
    image = _physical_of_signed(signed)
    image.flags.writeable = False
    return image


def _physical_of_signed(signed: np.ndarray) -> np.ndarray:
    """Physical weights (row 2d excitatory, 2d+1 inhibitory) of a (128, 256) signed matrix."""
    physical = np.empty((hagen.ROWS, 2, hagen.COLUMNS), np.uint8)
    if signed.dtype == np.int8:  # |W| <= 63: int8 arithmetic cannot overflow
        excitatory, inhibitory = physical[:, 0].view(np.int8), physical[:, 1].view(np.int8)
        np.maximum(signed, 0, out=excitatory)
        np.negative(signed, out=inhibitory)
        np.maximum(inhibitory, 0, out=inhibitory)
    else:
        np.maximum(signed, 0, out=physical[:, 0], casting="unsafe")
        np.maximum(np.negative(signed, dtype=np.int16), 0, out=physical[:, 1], casting="unsafe")
    return physical.reshape(2 * hagen.ROWS, hagen.COLUMNS)


def _is_prefix(indices: np.ndarray, n: int) -> bool:
    """Whether ``indices`` is ``arange(n)`` (the common case of a partitioned matmul).

    Answers for read-only arrays (the rows and columns of graph vertices) are remembered."""
    entry = _PREFIX_MEMO.get(id(indices))
    if entry is not None and entry[0] is indices:
        return entry[1] == n
    indices = np.asarray(indices)
    m = indices.size
    prefix = indices.ndim == 1 and (m == 0 or (int(indices[0]) == 0 and int(indices[-1]) == m - 1 and bool((np.diff(indices) == 1).all())))
    if isinstance(indices, np.ndarray) and frozen(indices):
        if len(_PREFIX_MEMO) >= 256:
            _PREFIX_MEMO.clear()
        _PREFIX_MEMO[id(indices)] = (indices, m if prefix else -1)
    return prefix and m == n


#: id -> (array, n if it is arange(n) else -1), for read-only index arrays (kept alive, so ids stay theirs).
_PREFIX_MEMO: dict[int, tuple[np.ndarray, int]] = {}


class ChipState:
    """What the executor believes a chip holds: the configuration after the last program built for it.

    ``planned`` runs ahead of the chip while programs are queued; a failed program makes the state
    unknown, so the next program starts with a chip reset and a full write; so does a program that someone
    else ran on the chip (see :meth:`claim`). Hagen programs keep the
    newest weight planes aside (``planned`` folds them into the configuration when read), so a tile
    costs one comparison of its plane, not a configuration copy and diff. A configuration set from
    elsewhere (for example a spiking program) makes the next hagen program diff the whole configuration.
    """

    def __init__(self) -> None:
        self._config: ChipConfig | None = None
        self._hagen = False  # _config is hagen_base_config() with weights (only weight planes can differ)
        self._planes: dict[int, np.ndarray] = {}  # synram -> physical weights newer than _config's plane
        self._physical: collections.OrderedDict[tuple[int, int, int], tuple[np.ndarray, ...]] = collections.OrderedDict()
        # whole-plane blocks of remembered physical weights; valid while the bits above the weights stay
        self._blocks: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        # (id, id) of two remembered physical weights -> (both, the number of quads in which they differ)
        self._changed: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, int]] = {}
        self._upper_fixed = False
        #: the connection's :attr:`~bss2.comm.Connection.programs_executed` after this state's last program
        self.seen = 0

    def claim(self, executed: int) -> None:
        """Before a run on the chip: ``executed`` is its connection's program count now. When it is not the
        count after this state's own last program, someone else (another executor, a register-level user)
        ran programs on the chip in between, so what it holds is unknown: the state is forgotten and the next
        program resets the chip and writes everything."""
        if executed != self.seen:
            self.invalidate()
            self.seen = executed

    @property
    def planned(self) -> ChipConfig | None:
        if self._planes and self._config is not None:
            for synram, physical in self._planes.items():
                self._config.set_synapse_weights(SynramOnDLS(synram), physical)
        self._planes = {}
        return self._config

    @planned.setter
    def planned(self, config: ChipConfig | None) -> None:
        self._config = config
        self._planes = {}
        self._hagen = False
        self._blocks = {}
        self._upper_fixed = False

    def invalidate(self) -> None:
        self.planned = None

    def physical_weights(self, tile: Tile) -> np.ndarray:
        """:func:`physical_weights` of the tile, remembered for the last few tiles whose weights, rows and
        columns are immutable arrays (those of a graph: a model's layers run again and again)."""
        key = (id(tile.weights), id(tile.rows), id(tile.columns))
        entry = self._physical.get(key)
        if entry is not None and entry[0] is tile.weights and entry[1] is tile.rows and entry[2] is tile.columns:
            self._physical.move_to_end(key)
            return entry[3]
        physical = physical_weights(tile)
        if frozen(tile.weights) and frozen(tile.rows) and frozen(tile.columns):
            physical.flags.writeable = False
            self._physical[key] = (tile.weights, tile.rows, tile.columns, physical)
            if len(self._physical) > _PHYSICAL_CACHE:
                self._physical.popitem(last=False)
        return physical


#: Tiles whose physical weights a :class:`ChipState` remembers (64 KiB each).
_PHYSICAL_CACHE = 16


@attrs.define
class BuiltProgram:
    """Words of one chip program and how to read its results back."""

    words: np.ndarray
    tiles: list[Tile]
    synrams: tuple[int, ...]
    batch: int
    cookie: int
    config_words: int
    capmem_changed: bool
    phases: int = 1  #: vector windows of ``batch`` vectors each, one after the other


#: First address and size of each synram's weight plane (the synapse quads holding 6-bit weights).
_PLANE_WORDS = 2 * hagen.ROWS * hagen.COLUMNS // 4


@functools.lru_cache(maxsize=2)
def _plane_start(synram: int) -> int:
    addresses = SynapseMatrix.addresses(SynramOnDLS(synram))[:_PLANE_WORDS]
    start = int(addresses[0])
    if not np.array_equal(addresses, start + np.arange(_PLANE_WORDS)):  # pragma: no cover - register map invariant
        raise AssertionError("the weight plane of a synram is expected at consecutive addresses")
    return start


_END_HEAD = int(wire.Opcode.END) << 56

_PLANE_HEADERS = {h: wire.encode_write_block(_plane_start(h), np.zeros(_PLANE_WORDS, np.uint32))[0] for h in (0, 1)}

#: Events encoded at once by :func:`input_words` (512 vectors on both synrams with one send).
_ENCODE_CHUNK_EVENTS = 512 * 2 * 128

#: Input words of one level, keyed by the identity of the input data (see :func:`input_words`).
InputCache = dict


def _input_key(tile: Tile) -> tuple[object, ...]:
    x = tile.inputs
    interface = x.__array_interface__
    return (tile.synram, interface["data"][0], x.shape, x.strides, x.dtype.str, tile.rows.tobytes())


def input_words(tiles: Sequence[Tile], cache: InputCache | None = None) -> np.ndarray:
    """The hagen input words (without END) of ``tiles`` (equal keys; distinct synrams within a phase).

    The vectors of phase 0 come first, then those of phase 1, ...; every vector resets and reads all
    synrams of the program (a synram without a tile in a phase gets no events), so the program keeps the
    canonical per-vector shape. With a ``cache`` (a dict that must live no longer than the tiles' input
    arrays, e.g. one executor level), tiles reading the same input data (all column tiles of a row
    block) reuse the words.
    """
    batch, num_sends, wait = tiles[0].key()
    key = None
    if cache is not None:
        key = (num_sends, wait, *sorted(_input_key(t) for t in tiles))
        words = cache.get(key)
        if words is not None:
            return words
    synrams = tuple(sorted({t.synram for t in tiles}))
    n_phases = 1 + max(t.phase for t in tiles)
    x = np.zeros((n_phases * batch, hagen.ROWS, len(synrams)), np.uint16)
    for tile in tiles:
        target = x[tile.phase * batch : (tile.phase + 1) * batch, :, synrams.index(tile.synram)]
        if _is_prefix(tile.rows, tile.rows.size):
            target[:, : tile.rows.size] = tile.inputs
        else:
            target[:, tile.rows] = tile.inputs
    # every vector's words are independent of the others: the numpy passes encode in chunks whose
    # temporaries stay in cache (the compiled pass needs none); entries above 31 (negative inputs wrapped
    # around to large values) raise before anything is sent
    vectors = n_phases * batch
    chunk = max(1, _ENCODE_CHUNK_EVENTS // (hagen.ROWS * len(synrams) * num_sends))
    settle = hagen.DEFAULT_SETTLE_CYCLES
    try:
        if vectors <= chunk + chunk // 2 or hagen.encoder_mode() == "numba":
            words = hagen.encode_vectors(x, synrams, num_sends, wait, settle)
        else:
            words = np.concatenate([hagen.encode_vectors(x[start : start + chunk], synrams, num_sends, wait, settle)
                                    for start in range(0, vectors, chunk)])
    except HalValueError:
        raise _range_error(tiles) from None
    if cache is not None:
        cache[key] = words
    return words


def _range_error(tiles: Sequence[Tile]) -> InputError:
    """The error for tiles of which one holds inputs outside 0..31."""
    bad = next(t for t in tiles if t.inputs.size and (int(t.inputs.min()) < 0 or int(t.inputs.max()) > hagen.MAX_ACTIVATION))
    return InputError(f"inputs of the tile of instance {bad.instance} must lie in [0, {hagen.MAX_ACTIVATION}], "
                      f"got [{int(bad.inputs.min())}, {int(bad.inputs.max())}]")


def build_program(
    state: ChipState,
    tiles: Sequence[Tile],
    cookie: int,
    base: ChipConfig | None = None,
    cache: InputCache | None = None,
    images: Mapping[int, np.ndarray] | None = None,
) -> BuiltProgram:
    """Instruction words running ``tiles`` (equal keys) on the chip described by ``state``.

    Tiles of one phase (:attr:`Tile.phase`) use distinct synrams. ``images``: the physical weights
    (:func:`synram_image`) to hold on each synram of the tiles, for tiles that share a synram with
    others (column packing); without it each synram holds its tile's :func:`physical_weights`.
    ``cache``: optional input-word cache shared by the programs of one level (see :func:`input_words`).
    """
    slots = [(t.phase, t.synram) for t in tiles]
    if len(set(slots)) != len(slots):
        raise UnsupportedGraphError(f"tiles of one program phase must use distinct synrams, got (phase, synram) {sorted(slots)}")
    synrams = tuple(sorted({t.synram for t in tiles}))
    if images is None and len(synrams) != len(tiles):
        raise UnsupportedGraphError(f"tiles sharing a synram need its packed weight image, got synrams {sorted(t.synram for t in tiles)}")
    if images is not None and any(h not in images for h in synrams):
        raise UnsupportedGraphError(f"no weight image for synrams {[h for h in synrams if h not in images]}")
    keys = {(int(t.inputs.shape[0]), t.num_sends, t.wait_between_events) for t in tiles}
    if len(keys) != 1:
        raise UnsupportedGraphError(f"tiles of one program must share batch, num_sends and wait, got {keys}")
    batch, num_sends, wait = keys.pop()
    if not 0 <= wait <= wire.MAX_SPIKE_DELAY:
        raise UnsupportedGraphError(
            f"wait_between_events = {wait} cycles is not supported by the hagen program (range [0, {wire.MAX_SPIKE_DELAY}])"
        )
    if not 0 <= cookie <= 0xFFFF_FFFF:
        raise UnsupportedGraphError(f"cookie = {cookie} is out of range [0, {0xFFFF_FFFF}]")
    vectors = input_words(tiles, cache)  # first: bad inputs raise before the state changes
    parts, capmem_changed, config_words = configuration_words(state, synrams, images, tiles, base)
    parts.append(vectors)
    parts.append(np.array([_END_HEAD | cookie], np.uint64))
    return BuiltProgram(
        words=np.concatenate(parts) if len(parts) > 1 else parts[0],
        tiles=list(tiles),
        synrams=synrams,
        batch=batch,
        cookie=cookie,
        config_words=config_words,
        capmem_changed=capmem_changed,
        phases=1 + max(t.phase for t in tiles),
    )


def configuration_words(
    state: ChipState,
    synrams: tuple[int, ...],
    images: Mapping[int, np.ndarray] | None = None,
    tiles: Sequence[Tile] = (),
    base: ChipConfig | None = None,
) -> tuple[list[np.ndarray], bool, int]:
    """The configuration part of a hagen program on ``synrams``, recorded in ``state`` as sent.

    The synrams hold ``images[h]`` (:func:`synram_image`) or, without ``images``, the
    :func:`physical_weights` of ``tiles``. Returns the word arrays (a chip reset when the state is
    unknown, the register writes that differ from what the chip holds, and the CapMem settling wait when
    CapMem changed), whether CapMem changed, and the number of configuration words. Call it only once the
    program's inputs are known to be valid: it changes ``state``.
    """
    parts: list[np.ndarray] = []
    fresh = state._config is None
    if fresh or not state._hagen:
        # unknown chip state: reset it and write everything that differs from the reset values; or a
        # configuration that is not hagen mode: write everything that differs from it
        reference = ChipConfig() if fresh else state.planned
        config = (base if base is not None else hagen_base_config()).copy()
        if images is not None:
            for h in synrams:
                config.set_synapse_weights(SynramOnDLS(h), images[h])
        else:
            for tile in tiles:
                config.set_synapse_weights(SynramOnDLS(tile.synram), physical_weights(tile))
        addresses, data = config.encode_diff(reference)
        capmem = _CAPMEM_BLOCK
        capmem_changed = bool(np.any((addresses >= capmem.base) & (addresses <= capmem.last_address)))
        if fresh:
            parts.append(_CHIP_RESET)
        parts.append(encode_register_writes(addresses, data))
        state.planned = config
        state._hagen = True
        state._upper_fixed = True  # from now on only the 6-bit weights of the planes change
    else:
        # the chip is in hagen mode: only the weight planes of the tiles' synrams can change
        capmem_changed = False
        if images is not None:
            for h in synrams:
                words = _plane_update(state, h, images[h])
                if words.size:
                    parts.append(words)
        else:
            for tile in tiles:
                words = _weight_plane_words(state, tile)
                if words.size:
                    parts.append(words)
    config_words = int(sum(p.size for p in parts)) - (1 if fresh else 0)
    if capmem_changed:
        parts.append(wire.encode_timer_reset())
        parts.append(wire.encode_wait_until([hagen.CAPMEM_SETTLE_CYCLES]))
    return parts, capmem_changed, config_words


def _weight_plane_words(state: ChipState, tile: Tile) -> np.ndarray:
    """Record the tile's weights in ``state`` and return the words writing the quads that changed."""
    return _plane_update(state, tile.synram, state.physical_weights(tile))


_NO_WORDS = np.empty(0, np.uint64)
_NO_WORDS.flags.writeable = False


def _plane_image(state: ChipState, start: int) -> np.ndarray:
    """The (256, 256) bytes of the synapse plane starting at register ``start`` in the state's image."""
    assert state._config is not None
    return state._config.image[start : start + _PLANE_WORDS].view(np.uint8).reshape(2 * hagen.ROWS, hagen.COLUMNS)


def _plane_update(state: ChipState, synram: int, physical: np.ndarray) -> np.ndarray:
    """Record ``physical`` (a synram's (256, 256) physical weights) in ``state`` and return the words
    writing the quads that changed.

    When more than half of the plane changed, it is written as one block, which is shorter than the runs
    of the diff.
    """
    assert state._config is not None
    old = state._planes.get(synram)
    if old is physical:  # the same immutable weights again
        return _NO_WORDS
    start = _plane_start(synram)
    plane = None  # the image's plane (the bits above the weights), looked at only where words are made
    if old is None:
        plane = _plane_image(state, start)
        old = plane & np.uint8(0x3F)
    state._planes[synram] = physical
    differs = None
    pair = (id(old), id(physical))
    known = state._changed.get(pair)  # two immutable planes differ in a fixed number of quads
    if known is not None and known[0] is old and known[1] is physical:
        n_changed = known[2]
    else:
        differs = physical.view("<u4").reshape(-1) != old.view("<u4").reshape(-1)  # per quad
        n_changed = int(np.count_nonzero(differs))  # counted first: positions are needed only for a diff
        if not (old.flags.writeable or physical.flags.writeable):
            if len(state._changed) >= 2 * _PHYSICAL_CACHE:
                state._changed.pop(next(iter(state._changed)))
            state._changed[pair] = (old, physical, n_changed)
    if n_changed == 0:
        return _NO_WORDS
    if 2 * n_changed > _PLANE_WORDS:
        block = state._blocks.get((id(physical), synram))
        if block is not None and block[0] is physical:
            return block[1]
        words = _plane_words(_plane_image(state, start) if plane is None else plane, physical)
        # one WRITE_BLOCK of the whole plane: header, then two register words per data word
        block = np.empty(1 + _PLANE_WORDS // 2, np.uint64)
        block[0] = _PLANE_HEADERS[synram]
        block[1:] = words.view("<u8")
        if not physical.flags.writeable and state._upper_fixed:
            # remembered with the physical weights: the bits above the weights stay while in hagen mode
            if len(state._blocks) >= 2 * _PHYSICAL_CACHE:
                state._blocks.pop(next(iter(state._blocks)))
            state._blocks[(id(physical), synram)] = (physical, block)
        return block
    if differs is None:
        differs = physical.view("<u4").reshape(-1) != old.view("<u4").reshape(-1)
    changed = np.flatnonzero(differs)
    words = _plane_words(_plane_image(state, start) if plane is None else plane, physical)
    return encode_runs(start + changed, words[changed])


def _plane_words(plane: np.ndarray, physical: np.ndarray) -> np.ndarray:
    """Register words of a weight plane: new 6-bit weights, labels and calibration bits kept."""
    return ((plane & np.uint8(0xC0)) | physical).view("<u4").reshape(-1)


def encode_runs(addresses: np.ndarray, data: np.ndarray, min_block: int = 3) -> np.ndarray:
    """Words writing ``data`` to ascending, distinct ``addresses``: a WRITE_BLOCK per run of at least
    ``min_block`` consecutive addresses (at most 65534 words), single WRITEs for the rest.

    The same writes as :func:`bss2.hal.program.encode_register_writes` (blocks first, then singles), without
    a Python step per run.
    """
    addresses = np.asarray(addresses, dtype=np.int64)
    data = np.asarray(data, dtype=np.uint32)
    if addresses.size == 0:
        return np.empty(0, np.uint64)
    starts = np.flatnonzero(np.diff(addresses, prepend=addresses[0] - 2) != 1)
    lengths = np.diff(starts, append=addresses.size)
    if lengths.max() > 65534:
        return encode_register_writes(addresses, data, min_block)
    block = lengths >= min_block
    in_block = np.repeat(block, lengths)
    singles = wire.encode_write(addresses[~in_block], data[~in_block]) if not in_block.all() else np.empty(0, np.uint64)
    if not block.any():
        return singles
    lengths, starts = lengths[block], starts[block]
    data_words = (lengths + 1) // 2
    halves = np.zeros(2 * int(data_words.sum()), np.uint32)
    first_half = 2 * (np.cumsum(data_words) - data_words)
    halves[np.repeat(first_half - (np.cumsum(lengths) - lengths), lengths) + np.arange(int(lengths.sum()))] = data[in_block]
    out = np.empty(int(data_words.sum()) + lengths.size, np.uint64)
    header_at = np.cumsum(data_words + 1) - (data_words + 1)
    is_header = np.zeros(out.size, bool)
    is_header[header_at] = True
    out[header_at] = (
        (np.uint64(wire.Opcode.WRITE_BLOCK) << np.uint64(56))
        | (addresses[starts].astype(np.uint64) << np.uint64(32))
        | lengths.astype(np.uint64)
    )
    out[~is_header] = halves.astype("<u4").view("<u8")
    return np.concatenate((out, singles))


_BLOCK_DATA = np.uint8(wire.ResponseType.BLOCK_DATA)


def decode_program(program: BuiltProgram, responses: np.ndarray) -> dict[int, np.ndarray]:
    """Per tile output descriptor: the (batch, n_columns) int8 results of ``program``'s responses."""
    results = _decode_fast(program, responses)
    if results is not None:
        return results
    _check_end(responses, program.cookie)
    per_synram = hagen.decode_hagen_responses(responses, program.synrams, program.batch * program.phases)
    results = {}
    for tile in program.tiles:
        vectors = slice(tile.phase * program.batch, (tile.phase + 1) * program.batch)
        y = per_synram[tile.synram][vectors, tile.columns].astype(np.int8)
        for descriptor in tile.output_descriptors:
            results[descriptor] = y
    return results


def response_samples(responses: np.ndarray, cookie: int, synrams: tuple[int, ...], vectors: int) -> np.ndarray:
    """The (vectors, len(synrams), 256) uint8 CADC samples in the responses of a hagen program of
    ``vectors`` vectors on ``synrams`` ending with END ``cookie`` (``y = sample - 128``).

    The common case (exactly one BLOCK_DATA answer of 64 words per vector and synram, then the END echo)
    is a view of ``responses``; otherwise the responses are decoded in full, raising
    :class:`UnsupportedGraphError` as :func:`decode_program` does when they hold errors or are incomplete.
    """
    n_syn = len(synrams)
    if (responses.ndim == 1 and responses.dtype == np.uint64 and responses.size == vectors * 33 * n_syn + 1 and vectors
            and np.little_endian and int(responses[-1]) == _end_response(cookie)):
        body = responses[:-1].reshape(vectors, n_syn, 33)
        if bool((body.view(np.uint8)[:, :, 7] == _BLOCK_DATA).all()):
            return body[:, :, 1:].view(np.uint8).reshape(vectors, n_syn, 256)
    _check_end(responses, cookie)
    per_synram = hagen.decode_hagen_responses(responses, synrams, vectors)
    samples = np.empty((vectors, n_syn, 256), np.uint8)
    for k, h in enumerate(synrams):
        samples[:, k] = (per_synram[h] + 128).astype(np.uint8)
    return samples


def _check_end(responses: np.ndarray, cookie: int) -> None:
    """Raise :class:`UnsupportedGraphError` unless the responses end with the END echo of ``cookie``."""
    ends = responses[-1:] if responses.size else responses
    if ends.size == 0 or int(ends[0]) != int(wire.encode_end_response(cookie)[0]):
        decoded = wire.decode_responses(responses)
        if decoded.error_codes.size:
            codes = sorted({wire.ErrorCode(int(c)).name for c in decoded.error_codes if int(c) in wire.ErrorCode._value2member_map_})
            raise UnsupportedGraphError(f"the chip answered {decoded.error_codes.size} error(s): {codes}")
        raise UnsupportedGraphError(
            f"end-of-program marker {cookie} missing (got {decoded.end_cookies.tolist()}); responses incomplete"
        )


def _decode_fast(program: BuiltProgram, responses: np.ndarray) -> dict[int, np.ndarray] | None:
    """The common case: exactly one BLOCK_DATA answer of 64 words per vector and synram, then the END
    echo. ``y = sample - 128`` in int8 is the sample with its top bit flipped. None if the responses
    look different (the general decoder then reports what is wrong)."""
    n_syn = len(program.synrams)
    batch = program.batch
    vectors = batch * program.phases
    if responses.ndim != 1 or responses.size != vectors * 33 * n_syn + 1 or responses.dtype != np.uint64 or batch == 0:
        return None
    if int(responses[-1]) != _end_response(program.cookie) or not np.little_endian:
        return None
    body = responses[:-1].reshape(vectors, n_syn, 33)
    kinds = body.view(np.uint8)[:, :, 7]  # the top byte of each header word
    if not bool((kinds == _BLOCK_DATA).all()):
        return None
    samples = body[:, :, 1:].view(np.uint8).reshape(vectors, n_syn, 256)
    results: dict[int, np.ndarray] = {}
    for tile in program.tiles:
        k = program.synrams.index(tile.synram)
        rows = samples[tile.phase * batch : (tile.phase + 1) * batch, k] if program.phases > 1 else samples[:, k]
        span = _column_span(tile.columns)
        raw = rows[:, span[0] : span[1]] if span is not None else rows[:, tile.columns]
        y = np.bitwise_xor(raw, np.uint8(0x80)).view(np.int8)
        for descriptor in tile.output_descriptors:
            results[descriptor] = y
    return results


def _end_response(cookie: int) -> int:
    return (int(wire.ResponseType.END) << 56) | (cookie & 0xFFFF_FFFF)


def _column_span(columns: np.ndarray) -> tuple[int, int] | None:
    """``(start, stop)`` if ``columns`` is ``arange(start, stop)`` (remembered for read-only arrays), else None."""
    entry = _SPAN_MEMO.get(id(columns))
    if entry is not None and entry[0] is columns:
        return entry[1]
    columns = np.asarray(columns)
    m = columns.size
    span = None
    if columns.ndim == 1 and m and int(columns[-1]) - int(columns[0]) == m - 1 and bool((np.diff(columns) == 1).all()):
        span = (int(columns[0]), int(columns[-1]) + 1)
    if frozen(columns):
        if len(_SPAN_MEMO) >= 256:
            _SPAN_MEMO.clear()
        _SPAN_MEMO[id(columns)] = (columns, span)
    return span


#: id -> (array, (start, stop) if it is a contiguous range else None), for read-only column arrays.
_SPAN_MEMO: dict[int, tuple[np.ndarray, tuple[int, int] | None]] = {}


def pair_tiles(tiles: Sequence[Tile], n_chips: int) -> list[tuple[int, list[Tile]]]:
    """Place tiles round-robin over (chip, synram) slots and group them into programs.

    Tile k (in the given, deterministic order) goes to synram ``k % 2`` of chip ``(k // 2) % n_chips``;
    consecutive tiles on the same chip with equal keys share a program. The same graph always gets the
    same placement, so fixed-pattern deviations stay attached to the same weights across runs (which
    hardware-in-the-loop training relies on).
    """
    programs: list[tuple[int, list[Tile]]] = []
    for k, tile in enumerate(tiles):
        tile.synram = k % 2
        tile.chip = (k // 2) % n_chips
    for k in range(0, len(tiles), 2):
        pair = list(tiles[k : k + 2])
        if len(pair) == 2 and pair[0].key() != pair[1].key():
            programs.append((pair[0].chip, [pair[0]]))
            programs.append((pair[1].chip, [pair[1]]))
        else:
            programs.append((pair[0].chip, pair))
    return programs
