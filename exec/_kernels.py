"""Compiled host-side passes of the executor, each with a numpy twin that gives the same results.

The executor's per-program host work on small batches is a handful of whole-array numpy operations, each
of which walks memory that the chip (or the emulator) has just pushed out of the caches. The passes here
do such a sequence in one walk. numba compiles them (see :func:`bss2.hal._numba.load_numba`);
``BSS2_EXEC_KERNELS=numpy`` selects the numpy twins, which are also the fallback without numba.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from bss2.hal import wire
from bss2.hal._numba import load_numba


def mode() -> str:
    """``"numba"`` when the compiled passes are in use, else ``"numpy"``."""
    return "numpy" if _compiled() is None else "numba"


def saturated_sum(sources: Sequence[np.ndarray], dtype: Any) -> np.ndarray:
    """The sum of ``sources`` (int8 arrays of one shape) clipped to [-128, 127], as a new int8 array.

    ``dtype`` is the accumulator that cannot wrap for this many sources (int16 up to 256 of them, else
    int32); the result equals accumulating in it and clipping once, whatever the pass.
    """
    kernels = _compiled()
    if (kernels is not None and len(sources) == 2 and sources[0].shape == sources[1].shape
            and all(s.dtype == np.int8 and s.ndim == 2 for s in sources)):
        out = np.empty(sources[0].shape, np.int8)
        kernels[0](sources[0], sources[1], out)
        return out
    return saturated_sum_numpy(sources, dtype)


def saturated_sum_numpy(sources: Sequence[np.ndarray], dtype: Any) -> np.ndarray:
    """:func:`saturated_sum` by whole-array numpy operations (the reference and the fallback)."""
    if len(sources) > 1:
        total = np.add(sources[0], sources[1], dtype=dtype)
        for source in sources[2:]:
            np.add(total, source, out=total)
    else:
        total = np.asarray(sources[0]).astype(dtype)
    return saturate_int8(total)


def saturate_int8(total: np.ndarray) -> np.ndarray:
    """``total`` (an int16 or int32 accumulator, may be overwritten) clipped to [-128, 127] as int8."""
    kernels = _compiled()
    if kernels is not None and total.ndim == 2 and total.dtype in (np.int16, np.int32):
        out = np.empty(total.shape, np.int8)
        kernels[1](total, out)
        return out
    if total.size <= _CLIP_IN_PLACE:
        # small arrays: in place by maximum and minimum (the cheapest calls); large ones by one numpy.clip,
        # whose integer loop is several times faster per entry
        np.maximum(total, -128, out=total)
        np.minimum(total, 127, out=total)
        return total.astype(np.int8)
    return np.clip(total, -128, 127).astype(np.int8)


#: Entries up to which the numpy twin of :func:`saturate_int8` clips in place.
_CLIP_IN_PLACE = 2048


def cut_samples(body: np.ndarray, tiles: np.ndarray, vectors: int) -> np.ndarray | None:
    """The tiles' int8 outputs ``sample - 128`` from the CADC answers of a hagen program, or None when an
    answer is not a BLOCK_DATA one (the caller's full decoder then says what is wrong).

    ``body``: the (V, S, 33) uint64 answers, one BLOCK_DATA header and 32 words of 8 samples per vector and
    synram; ``tiles``: (T, 4) int64 rows ``(phase, synram index, first column, last column + 1)``, all of
    one width; the outputs are (T, vectors, width), tile ``t`` taking vectors ``phase * vectors ..``.
    """
    width = int(tiles[0, 3] - tiles[0, 2]) if tiles.size else 0
    out = np.empty((tiles.shape[0], vectors, width), np.int8)
    kernels = _compiled()
    if kernels is not None:
        return out if kernels[2](body.view(np.uint8).reshape(-1), body.shape[1], tiles, vectors, out.view(np.uint8)) else None
    bytes_ = body.view(np.uint8).reshape(body.shape[0], body.shape[1], 264)
    if not bool((bytes_[:, :, 7] == _BLOCK_DATA).all()):
        return None
    for t, (phase, k, low, high) in enumerate(tiles.tolist()):
        rows = bytes_[phase * vectors : (phase + 1) * vectors, k, 8 + low : 8 + high]
        np.bitwise_xor(rows, np.uint8(0x80), out=out[t].view(np.uint8))
    return out


_BLOCK_DATA = int(wire.ResponseType.BLOCK_DATA)  # the top byte of a BLOCK_DATA header


@functools.lru_cache(maxsize=1)
def _compiled() -> tuple[Callable[..., None], Callable[..., None]] | None:
    """The compiled passes, or None (numba missing, or ``BSS2_EXEC_KERNELS=numpy``)."""
    numba = load_numba("BSS2_EXEC_KERNELS", "the executor's host passes")
    return None if numba is None else _build(numba)


def _build(numba):  # noqa: ANN001, ANN202 - the numba module; returns the jitted passes
    jit = numba.njit(nogil=True, cache=True, boundscheck=False)

    @jit
    def add_saturated(a, b, out):
        # two int8 arrays (any strides) into a contiguous int8 one; int16 sums cannot wrap
        rows, columns = out.shape
        for i in range(rows):
            for j in range(columns):
                s = np.int16(a[i, j]) + np.int16(b[i, j])
                out[i, j] = min(max(s, -128), 127)

    @jit
    def clip_int8(total, out):
        rows, columns = out.shape
        for i in range(rows):
            for j in range(columns):
                out[i, j] = min(max(total[i, j], -128), 127)

    @jit
    def cut(body, n_syn, tiles, vectors, out):
        # body: the answers as bytes, 33 words (264 bytes) per (vector, synram): header (type in byte 7),
        # then the samples; out: the outputs' bytes (int8 sample - 128 is the sample with its top bit flipped)
        block_data = np.uint8(_BLOCK_DATA)
        other = np.uint8(0)
        for a in range(body.size // 264):
            other |= body[264 * a + 7] ^ block_data
        if other:
            return False
        flip = np.uint8(0x80)
        for t in range(tiles.shape[0]):
            phase, k, low, high = tiles[t, 0], tiles[t, 1], tiles[t, 2], tiles[t, 3]
            for v in range(vectors):
                start = 264 * ((phase * vectors + v) * n_syn + k) + 8 + low
                samples = body[start : start + high - low]
                target = out[t, v]
                for c in range(samples.size):
                    target[c] = samples[c] ^ flip
        return True

    return add_saturated, clip_int8, cut
