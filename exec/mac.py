"""Hagen-mode programs: matrix-multiply tiles -> instruction words -> results.

A :class:`Tile` is one :class:`~bss2.graph.MACSynapseArrayView` chain of a graph with its input data. Up
to two tiles (one per synram) that share batch size, ``num_sends`` and ``wait_between_events`` run in one
program on one chip: their events share SPIKES words, and both CADC rows are read per vector.

The static configuration is computed as a :class:`~bss2.hal.ChipConfig` and written differentially
against what the chip already holds (:class:`ChipState`), so a repeated run with the same weights sends no
weight words, and CapMem changes add the settling wait.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import attrs
import numpy as np

from bss2.hal import ChipConfig, SynramOnDLS, hagen, wire

from .errors import UnsupportedGraphError

#: Register word that resets the whole chip (block ``chip_reset``), written before the first program.
_CHIP_RESET = wire.encode_write([0x000001], [1])


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
    signed = np.zeros((hagen.ROWS, hagen.COLUMNS), np.int16)
    signed[np.ix_(tile.rows, tile.columns)] = tile.weights
    physical = np.empty((2 * hagen.ROWS, hagen.COLUMNS), np.uint8)
    physical[0::2] = np.maximum(signed, 0)
    physical[1::2] = np.maximum(-signed, 0)
    return physical


class ChipState:
    """What the executor believes a chip holds: the configuration after the last program built for it.

    ``planned`` runs ahead of the chip while programs are queued; a failed program makes the state
    unknown, so the next program starts with a chip reset and a full write.
    """

    def __init__(self) -> None:
        self.planned: ChipConfig | None = None

    def invalidate(self) -> None:
        self.planned = None


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


def build_program(state: ChipState, tiles: Sequence[Tile], cookie: int, base: ChipConfig | None = None) -> BuiltProgram:
    """Instruction words running ``tiles`` (distinct synrams, equal keys) on the chip described by ``state``."""
    synrams = tuple(sorted(t.synram for t in tiles))
    if len(set(synrams)) != len(synrams):
        raise UnsupportedGraphError(f"tiles of one program must use distinct synrams, got {synrams}")
    keys = {t.key() for t in tiles}
    if len(keys) != 1:
        raise UnsupportedGraphError(f"tiles of one program must share batch, num_sends and wait, got {keys}")
    batch, num_sends, wait = keys.pop()
    if not 0 <= wait <= wire.MAX_SPIKE_DELAY:
        raise UnsupportedGraphError(
            f"wait_between_events = {wait} cycles is not supported by the hagen program (range [0, {wire.MAX_SPIKE_DELAY}])"
        )
    base = base if base is not None else hagen_base_config()
    previous = state.planned
    config = (previous if previous is not None else base).copy()
    for tile in tiles:
        config.set_synapse_weights(SynramOnDLS(tile.synram), physical_weights(tile))
    parts: list[np.ndarray] = []
    if previous is None:
        # unknown chip state: reset it and write everything that differs from the reset values
        parts.append(_CHIP_RESET)
        reference = ChipConfig()
    else:
        reference = previous
    capmem_changed = config.changes_capmem(reference)
    config_words = config.to_words(reference)
    parts.append(config_words)
    if capmem_changed:
        parts.append(wire.encode_timer_reset())
        parts.append(wire.encode_wait_until([hagen.CAPMEM_SETTLE_CYCLES]))
    inputs = {}
    for tile in tiles:
        x = np.zeros((batch, hagen.ROWS), np.int64)
        x[:, tile.rows] = tile.inputs
        inputs[tile.synram] = x
    parts.append(hagen.hagen_input_words(inputs, num_sends=num_sends, wait_between_events=wait, end_cookie=cookie))
    state.planned = config
    return BuiltProgram(
        words=np.concatenate(parts),
        tiles=list(tiles),
        synrams=synrams,
        batch=batch,
        cookie=cookie,
        config_words=int(config_words.size),
        capmem_changed=capmem_changed,
    )


def decode_program(program: BuiltProgram, responses: np.ndarray) -> dict[int, np.ndarray]:
    """Per tile output descriptor: the (batch, n_columns) int8 results of ``program``'s responses."""
    ends = responses[-1:] if responses.size else responses
    if ends.size == 0 or int(ends[0]) != int(wire.encode_end_response(program.cookie)[0]):
        decoded = wire.decode_responses(responses)
        if decoded.error_codes.size:
            codes = sorted({wire.ErrorCode(int(c)).name for c in decoded.error_codes if int(c) in wire.ErrorCode._value2member_map_})
            raise UnsupportedGraphError(f"the chip answered {decoded.error_codes.size} error(s): {codes}")
        raise UnsupportedGraphError(
            f"end-of-program marker {program.cookie} missing (got {decoded.end_cookies.tolist()}); responses incomplete"
        )
    per_synram = hagen.decode_hagen_responses(responses, program.synrams, program.batch)
    results: dict[int, np.ndarray] = {}
    for tile in program.tiles:
        y = per_synram[tile.synram][:, tile.columns].astype(np.int8)
        for descriptor in tile.output_descriptors:
            results[descriptor] = y
    return results


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
