"""Persistent placement of a graph's MAC tiles with column packing.

A synram has 128 signed inputs (synapse drivers) and 256 neuron columns. Tiles whose columns are
disjoint can share a synram even where their drivers overlap: a tile's run sends events only to its own
drivers and reads only its own columns, so the charge its events put on the other tiles' columns is never
read. A graph whose tiles all fit side by side onto the synrams of the available chips therefore gets one
placement for all its levels, and the chips keep every weight of the graph: a repeated run sends no
weight words at all.

Tiles of one level that share a synram run in *phases*: one vector window after the other in the same
program (each window resets the neurons, sends only its tile's events and reads the CADC rows), so tiles
with different inputs never integrate at the same time.

:func:`place` returns ``None`` when the graph does not fit; the executor then places each level's tiles
round-robin (:func:`bss2.exec.mac.pair_tiles`) and rewrites weights as needed.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from bss2.hal import hagen

#: Synrams per chip.
SYNRAMS = 2


@attrs.frozen
class Slot:
    """Where a tile lives: ``chip``, ``synram``, its first neuron column ``start`` (its columns are
    ``start .. start + width - 1``) and its ``phase`` (vector window) within its level's program."""

    chip: int
    synram: int
    start: int
    phase: int


def place(levels: Sequence[Sequence[int]], n_chips: int) -> list[list[Slot]] | None:
    """Column-packed slots for tiles of the given widths (per level, in level order), or None.

    Each tile gets a contiguous range of columns that no other tile of the graph uses. Within a level the
    tiles are spread over all synrams of all chips first (least loaded in this level first, then the one
    with the fewest columns in use, then in the order chip 0 synram 0, chip 0 synram 1, chip 1 synram 0,
    ...), so that tiles of one level run on different synrams and chips where possible and the weights
    spread over the chips; a second tile of a level on the same synram gets the next phase. Returns None
    if some tile finds no synram with enough free columns.
    """
    if n_chips < 1:
        raise ValueError(f"n_chips = {n_chips} is out of range [1, inf)")
    order = [(chip, synram) for chip in range(n_chips) for synram in range(SYNRAMS)]
    used = dict.fromkeys(order, 0)  # next free column per synram
    placed: list[list[Slot]] = []
    for widths in levels:
        load = dict.fromkeys(order, 0)  # tiles of this level per synram
        slots = []
        for width in widths:
            if not 1 <= width <= hagen.COLUMNS:
                raise ValueError(f"tile width {width} is out of range [1, {hagen.COLUMNS}]")
            fitting = [s for s in order if used[s] + width <= hagen.COLUMNS]
            if not fitting:
                return None
            best = min(fitting, key=lambda s: (load[s], used[s]))  # min() keeps the first of equals
            slots.append(Slot(best[0], best[1], used[best], load[best]))
            used[best] += width
            load[best] += 1
        placed.append(slots)
    return placed
