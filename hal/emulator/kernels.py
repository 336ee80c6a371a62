"""Compiled inner loops of the hagen fast path, and the counter-based noise generator they share with numpy.

The hagen fast path (:mod:`bss2.hal.emulator.fastpath`) spends its time in places that numpy can only
express as many passes over large temporaries (or, for small programs, as many small calls): recognising
the program's structure, accumulating every event of every SPIKES word into a (vector, driver) activation
matrix, and turning every membrane swing into a CADC sample (saturation bend, temporal noise, baseline,
clipping, 8-bit quantisation). This module holds single-pass versions of the three (and of the effective
weights and the weight-update prefix), compiled with `numba <https://numba.pydata.org>`_; they release the
GIL and, for large batches, run on slices of the batch in a small thread pool. They compute exactly what the numpy passes in ``fastpath`` compute, in the
same floating-point order, so the two implementations give identical responses; the numpy passes remain
the fallback where numba cannot be imported, or when ``BSS2_EMULATOR_KERNELS=numpy`` is set.

Temporal noise comes from a counter-based generator (SplitMix64 over ``key + (i + 1) * golden gamma``):
64-bit word ``i`` of a stream gives the four 16-bit indices ``4i .. 4i + 3`` into a table of 65,536
equiprobable standard-normal quantiles (:func:`bss2.hal.emulator.analog.normal_table`). Because a sample
depends only on its position in the stream, any slice of it can be drawn independently, by numpy or by a
kernel thread, and gives the same values.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .._numba import load_numba

GAMMA = np.uint64(0x9E37_79B9_7F4A_7C15)  # SplitMix64 increment (2^64 / golden ratio, odd)
_M1 = np.uint64(0xBF58_476D_1CE4_E5B9)
_M2 = np.uint64(0x94D0_49BB_1331_11EB)
#: accumulator columns of one vector: drivers 0..127, baseline, drivers 128..255, no driver, not hagen
BINS = 259
#: status codes of :func:`accumulate`
OK, BAD_DRIVER, BUS_COLLISION = 0, 1, 2
#: below this many vectors a call runs in the calling thread: smaller programs measured faster (and steadier)
#: in one thread. On a small VM a pool thread wakes within microseconds, but its share of a short call runs
#: late (a compiled loop of 60 us split over two threads took 101 us; 96 vectors ran 1.5x slower in the pool
#: even with one BLAS thread; see docs/performance.rst), and the BLAS threads keep spinning after a matmul
_MIN_PARALLEL = 1536


def splitmix64(key: int, start: int, count: int) -> np.ndarray:
    """Words ``start .. start + count - 1`` of the SplitMix64 stream with ``key`` (uint64, vectorised)."""
    with np.errstate(over="ignore"):
        z = (np.arange(start + 1, start + count + 1, dtype=np.uint64) * GAMMA) + np.uint64(key)
        x = z ^ (z >> np.uint64(30))
        x *= _M1
        x ^= x >> np.uint64(27)
        x *= _M2
        x ^= x >> np.uint64(31)
    return x


_forced: list[str] = []  # innermost use() on top


def mode() -> str:
    """``"numba"`` when the compiled kernels are in use, else ``"numpy"``."""
    if _forced and _forced[-1] == "numpy":
        return "numpy"
    return "numba" if _compiled() is not None else "numpy"


@contextlib.contextmanager
def use(which: str) -> Iterator[None]:
    """Within the block, run the fast path with the numpy passes (``"numpy"``) or, where numba is
    importable, the compiled kernels (``"numba"``); for tests and comparisons (not thread-safe)."""
    if which not in ("numba", "numpy"):
        raise ValueError(f"which = {which!r}: expected 'numba' or 'numpy'")
    _forced.append(which)
    try:
        yield
    finally:
        _forced.pop()


@functools.lru_cache(maxsize=1)
def _compiled() -> tuple[Callable[..., object], Callable[..., int], Callable[..., None]] | None:
    """The compiled kernels, or None (numba missing, or the numpy passes requested)."""
    numba = load_numba("BSS2_EMULATOR_KERNELS", "the emulator's hagen fast path")
    return None if numba is None else _build(numba)


def _build(numba):  # noqa: ANN001, ANN202 - the numba module; returns the jitted kernels
    jit = numba.njit(nogil=True, cache=True, error_model="numpy", boundscheck=False)

    @jit
    def scan_kernel(words, ops, neuron_reset, first, n_spikes, start, stop, targets, reads, partial):
        # the structure of a canonical hagen program in one pass over its words (see fastpath.recognise):
        # per vector TIMER_RESET 0, WRITE neuron_reset q (one q), SPIKES* (one delay; a partly filled word
        # leaves its unused labels zero), WAIT_UNTIL t, READ_BLOCK* (the same reads for every vector);
        # optionally END as the last word. Per vector into first .. targets (room for n // 4 + 1 vectors),
        # the reads and the partly filled SPIKES words into reads and partial (room for n each); returns
        # (ok, vectors, reads, neuron-reset value, reference top lane, END cookie, partly filled words)
        spikes, timer_reset, write, wait, read, end = ops[0], ops[1], ops[2], ops[3], ops[4], ops[5]
        mask56 = np.uint64(0x00FFFFFFFFFFFFFF)
        low32 = np.uint64(0xFFFFFFFF)
        n = words.size
        n_partial = 0
        n_reads = -1
        quadrants = np.uint64(0)
        reference = -1
        cookie = -1
        v = 0
        i = 0
        ok = False
        while True:
            if i == n:
                ok = v > 0
                break
            op = words[i] >> np.uint64(56)
            if op == end:
                if i == n - 1 and v > 0 and ((words[i] & mask56) >> np.uint64(32)) == 0:
                    cookie = np.int64(words[i] & low32)
                    ok = True
                break
            if op != timer_reset or (words[i] & mask56) != 0 or i + 1 == n:
                break
            start[v] = i
            i += 1
            payload = words[i] & mask56
            if (words[i] >> np.uint64(56)) != write or (payload >> np.uint64(32)) != neuron_reset:
                break
            if v == 0:
                quadrants = payload
            elif payload != quadrants:
                break
            i += 1
            first[v] = i
            good = True
            while i < n:
                top = np.int64(words[i] >> np.uint64(48))  # opcode, delay and label count
                if top == reference:  # the common case: a full SPIKES word with the program's delay
                    i += 1
                    continue
                if (top >> 8) != spikes:
                    break
                if reference < 0:
                    reference = top | 3
                used = top & 3
                lane0 = words[i] & np.uint64(0xFFFF)
                lane1 = (words[i] >> np.uint64(16)) & np.uint64(0xFFFF)
                if (top | 3) != reference or used == 0 or (used < 2 and lane1 != 0) or (used < 3 and lane0 != 0):
                    good = False
                    break
                if used != 3:
                    partial[n_partial] = i
                    n_partial += 1
                i += 1
            if not good:
                break
            n_spikes[v] = i - first[v]
            if i == n or (words[i] >> np.uint64(56)) != wait or ((words[i] & mask56) >> np.uint64(32)) != 0:
                break
            targets[v] = np.float64(words[i] & low32)
            i += 1
            r = 0
            while i < n and (words[i] >> np.uint64(56)) == read:
                payload = words[i] & mask56
                if v == 0:
                    reads[r] = payload
                elif r >= n_reads or payload != reads[r]:
                    good = False
                    break
                r += 1
                i += 1
            if not good or r == 0 or (v > 0 and r != n_reads):
                break
            n_reads = r
            stop[v] = i
            v += 1
        if not ok:
            v = 0
            n_reads = 0
            n_partial = 0
        return ok, v, max(n_reads, 0), np.int64(quadrants & np.uint64(0xFFFFFFFF)), reference, cookie, n_partial

    @jit
    def recognise_kernel(words, ops, neuron_reset):
        # scan_kernel into fresh arrays, returned trimmed (see kernels.recognise)
        n = words.size
        m = n // 4 + 1
        first = np.empty(m, np.int64)
        n_spikes = np.empty(m, np.int64)
        start = np.empty(m, np.int64)
        stop = np.empty(m, np.int64)
        targets = np.empty(m, np.float64)
        reads = np.empty(n, np.uint64)
        partial = np.empty(n, np.int64)
        ok, v, n_reads, quadrants, reference, cookie, n_partial = scan_kernel(words, ops, neuron_reset, first, n_spikes,
                                                                              start, stop, targets, reads, partial)
        return (ok, reads[:n_reads].copy(), quadrants, first[:v].copy(), n_spikes[:v].copy(), start[:v].copy(),
                stop[:v].copy(), targets[:v].copy(), reference, cookie, partial[:n_partial].copy())

    @jit
    def accumulate_kernel(lanes, first, count, table, check_buses, leak, chunk_start, factor, out, v0, v1):
        # lanes: (n_words, 4) uint16, the little-endian lanes of the words (lane 3: opcode, delay, label
        # count); label k of a SPIKES word sits in lane 2 - k. table[label]: accumulator column in bits 15..0,
        # PADI bus bit in bits 23..16. Per vector: look every label up once (unused lanes hold label 0 and go
        # to the idle column 257), then add them lane by lane, each lane in word order (the summation order
        # of the numpy passes), then scale the row by the vector's leak factor.
        n_max = 0
        for v in range(v0, v1):
            n_max = max(n_max, count[v])
        columns = np.empty((3, n_max), np.int16)
        acts = np.empty((3, n_max), np.float32)
        use_leak = leak.size > 0
        for v in range(v0, v1):
            i0, n, a = first[v], count[v], chunk_start[v]
            out[v, :] = 0.0
            flags = 0  # bit 0: a label reaches no hagen driver; bit 1: two labels of a word share a bus
            for j in range(n):
                i = i0 + j
                used = lanes[i, 3] & 3
                weight = leak[i - a] if use_leak else np.float32(1.0)
                if used == 3:  # a full word, unrolled
                    l0, l1, l2 = lanes[i, 0], lanes[i, 1], lanes[i, 2]
                    e0, e1, e2 = table[l0], table[l1], table[l2]
                    c0, c1, c2 = e0 & 0xFFFF, e1 & 0xFFFF, e2 & 0xFFFF
                    b0, b1, b2 = e0 >> 16, e1 >> 16, e2 >> 16
                    flags |= ((c0 >= 258) | (c1 >= 258) | (c2 >= 258)) | (((b0 & b1) | (b0 & b2) | (b1 & b2)) != 0) * 2
                    columns[0, j], columns[1, j], columns[2, j] = c0, c1, c2
                    acts[0, j] = np.float32(l0 & 31) * weight
                    acts[1, j] = np.float32(l1 & 31) * weight
                    acts[2, j] = np.float32(l2 & 31) * weight
                else:
                    buses = 0
                    for lane in range(3):
                        label = lanes[i, lane]
                        entry = table[label] if lane + used >= 3 else 257
                        column = entry & 0xFFFF
                        bit = entry >> 16
                        flags |= (column >= 258) | ((buses & bit) != 0) * 2
                        buses |= bit
                        columns[lane, j] = column
                        acts[lane, j] = np.float32(label & 31) * weight
            if flags & 1:
                return 1
            if check_buses and flags & 2:
                return 2
            for lane in range(3):
                for j in range(n):
                    out[v, columns[lane, j]] += acts[lane, j]
            if factor.size:
                f = factor[v]
                for c in range(out.shape[1]):
                    out[v, c] *= f
        return 0

    @jit
    def readout_kernel(products, gains, knees, span, bends, table, key, base, baselines, rows, enabled, out, v0, v1):
        # products: (n_reads, n_vectors, 256) float32 swings; read k of a vector: times gains[k] (the leak
        # between reads), bent beyond knees[rows[k] // 2] when bends[rows[k] // 2], noise, plus
        # baselines[rows[k]]; reads with enabled[k] False are skipped; out: (n_vectors, n_reads, 264) uint8
        gamma, m1, m2 = GAMMA, _M1, _M2  # the generator of splitmix64 (globals are compile-time constants)
        noisy = table.size > 0
        n_reads = out.shape[1]
        swing = np.empty(256, np.float32)
        for v in range(v0, v1):
            for read in range(n_reads):
                if not enabled[read]:
                    continue
                h = rows[read] // 2
                gain = gains[read]
                knee = knees[h]
                baseline = baselines[rows[read]]
                # simple loops per sample (all but the noise vectorise): gain, bend, noise, then baseline and clip
                beyond = False
                for c in range(256):
                    swing[c] = products[read, v, c] * gain
                if bends[h]:  # does any column pass its knee? (one vectorised pass; most vectors stay below)
                    for c in range(256):
                        beyond |= abs(np.float64(swing[c])) > knee[c]
                if beyond:  # branch-free (data-dependent branches mispredict): zero excess changes nothing
                    for c in range(256):
                        x = np.float64(swing[c])
                        excess = max(abs(x) - knee[c], 0.0)
                        swing[c] = np.float32(x - math.copysign(excess * excess / (span + excess), x))
                if noisy:
                    word0 = base + np.uint64((v * n_reads + read) * 64)  # 256 samples = 64 words per (vector, read)
                    for q in range(64):
                        z = key + (word0 + np.uint64(q) + np.uint64(1)) * gamma
                        r = (z ^ (z >> np.uint64(30))) * m1
                        r = (r ^ (r >> np.uint64(27))) * m2
                        r = r ^ (r >> np.uint64(31))
                        for lane in range(4):
                            swing[4 * q + lane] += table[(r >> np.uint64(16 * lane)) & np.uint64(0xFFFF)]
                for c in range(256):
                    out[v, read, 8 + c] = np.uint8(min(max(swing[c] + baseline[c], np.float32(0.0)), np.float32(255.0)))

    @jit
    def hagen_weights_kernel(weights, coefficients, out):
        # analog.hagen_weights: w_top * c_top + w_bottom * c_bottom in float32 (no contraction: identical values)
        for h in range(2):
            for r in range(128):
                for c in range(256):
                    top = np.float32(weights[h, 2 * r, c] & 63) * coefficients[h, 0, r, c]
                    bottom = np.float32(weights[h, 2 * r + 1, c] & 63) * coefficients[h, 1, r, c]
                    out[h, r, c] = top + bottom

    @jit
    def write_prefix_kernel(words, write, block, lo, hi, apply, memory):
        # the leading WRITE / WRITE_BLOCK instructions of a program, all within addresses lo..hi: returns the
        # index of the first other instruction (-1 when a write leaves the range or a block is malformed or
        # truncated), the number of write instructions and of block data words; stores the writes in
        # program order (the last write wins) when `apply`
        n = words.size
        i = 0
        instructions = 0
        data_words = 0
        while i < n:
            op = words[i] >> np.uint64(56)
            address = np.int64((words[i] >> np.uint64(32)) & np.uint64(0xFFFFFF))
            if op == write:
                if address < lo or address > hi:
                    return -1, 0, 0
                if apply:
                    memory[address] = np.uint32(words[i] & np.uint64(0xFFFFFFFF))
                i += 1
            elif op == block:
                count = np.int64(words[i] & np.uint64(0xFFFFFFFF))
                pairs = (count + 1) // 2
                if count == 0 or count > 0xFFFF or address < lo or address + count - 1 > hi or i + 1 + pairs > n:
                    return -1, 0, 0
                if apply:  # two registers per data word, the lower half first
                    for p in range(count // 2):
                        word = words[i + 1 + p]
                        memory[address + 2 * p] = np.uint32(word & np.uint64(0xFFFFFFFF))
                        memory[address + 2 * p + 1] = np.uint32(word >> np.uint64(32))
                    if count & 1:
                        memory[address + count - 1] = np.uint32(words[i + pairs] & np.uint64(0xFFFFFFFF))
                data_words += pairs
                i += 1 + pairs
            else:
                break
            instructions += 1
        return i, instructions, data_words

    @jit
    def store_writes_kernel(parts, write, block, lo, hi, memory):
        # every part nothing but WRITE / WRITE_BLOCK within lo..hi, else (-1, 0, 0) and nothing stored; then
        # all of them stored, part by part (program order); returns (0, instructions, block data words)
        instructions = 0
        data_words = 0
        for k in range(len(parts)):
            stop, count, pairs = write_prefix_kernel(parts[k], write, block, lo, hi, False, memory)
            if stop != parts[k].size:
                return -1, 0, 0
            instructions += count
            data_words += pairs
        for k in range(len(parts)):
            write_prefix_kernel(parts[k], write, block, lo, hi, True, memory)
        return 0, instructions, data_words

    @jit
    def timeline_kernel(n_spikes, targets, first_spike, vector_start, vector_end, step, pre, ic, conv_sum, t0, delay, rate,
                        chunk, vector_time, t_read0, exponent, chunk_start):
        # fastpath._timeline_numpy's float64 operations, in the same order (identical values), in one pass
        end = 0.0
        longest = 0
        span = 0
        for v in range(n_spikes.size):
            first_read = max(n_spikes[v] * step + (pre + ic), targets[v])
            length = first_read + conv_sum
            end = end + length
            vector_time[v] = (end - length) + t0
            t_read0[v] = vector_time[v] + first_read
            longest = max(longest, vector_end[v] - vector_start[v])
            a = vector_start[(v // chunk) * chunk]
            chunk_start[v] = a
            if v % chunk == chunk - 1 or v == n_spikes.size - 1:
                span = max(span, vector_end[v] - a)
            if exponent.size:
                t_first = vector_time[v] + pre + delay
                exponent[v] = -(t_read0[v] - t_first + (first_spike[v] - a) * step) * rate
        return end, longest, span

    @jit
    def program_kernel(words, ops, neuron_reset, samples_base, conv, ic, pre, dead, rate, chunk, t0, ints, floats, reads,
                       rows, partial):
        # fastpath.recognise, the checks of its reads, and the timeline, in one call (see kernels.program)
        ok, v, n_reads, quadrants, reference, cookie, n_partial = scan_kernel(
            words, ops, neuron_reset, ints[0], ints[1], ints[2], ints[3], floats[0], reads, partial)
        declined = (1, 0, 0, np.int64(0), np.int64(0), np.int64(-1), 0, 0.0, np.int64(0), np.int64(0))
        if not ok:
            return declined
        conv_sum = 0.0
        for k in range(n_reads):  # CADC sample rows 0..3, 64 registers each; the read hemisphere reset
            payload = reads[k]
            offset = np.int64(payload >> np.uint64(32)) - samples_base
            if (payload & np.uint64(0xFFFFFFFF)) != 64 or offset < 0 or offset % 64 != 0 or offset // 64 > 3:
                return declined
            rows[k] = offset // 64
            h = rows[k] // 2
            if (quadrants >> (2 * h)) & 3 != 3:
                return declined
            conv_sum += conv[h]
        delay = (reference >> 2) & 63 if reference >= 0 else np.int64(0)
        step = ic + delay
        if dead > 0 and step < dead:  # events closer than the PADI dead time: the general path draws losses
            for i in range(v):
                if ints[1, i] > 1:
                    return declined
        exponent = floats[3, :v] if rate > 0 else floats[3, :0]
        end, longest, span = timeline_kernel(ints[1, :v], floats[0, :v], ints[0, :v], ints[2, :v], ints[3, :v], step, pre,
                                             ic, conv_sum, t0, np.float64(delay), rate, chunk, floats[1, :v], floats[2, :v],
                                             exponent, ints[4, :v])
        return 0, v, n_reads, quadrants, delay, cookie, n_partial, end, longest, span

    return (recognise_kernel, accumulate_kernel, readout_kernel, hagen_weights_kernel, write_prefix_kernel, timeline_kernel,
            store_writes_kernel, program_kernel)


_WORKERS = max(1, min(os.cpu_count() or 1, 8))
_POOL_LOCK = threading.Lock()
_POOL: list[ThreadPoolExecutor] = []


def _pool() -> ThreadPoolExecutor:
    with _POOL_LOCK:
        if not _POOL:
            _POOL.append(ThreadPoolExecutor(_WORKERS, thread_name_prefix="bss2-emulator"))
        return _POOL[0]


def _run(kernel: Callable[..., object], n: int, *args: object) -> list[object]:
    """``kernel(*args, v0, v1)`` over ``[0, n)``: in the calling thread when small, else in slices that the
    calling thread and the pool's threads take in turn (results in slice order).

    The calling thread works too and waits only for slices that a pool thread has already started: on a
    busy machine, where a pool thread may not be scheduled for a while, it simply does more of the work.
    """
    if n < _MIN_PARALLEL or _WORKERS < 2:
        return [kernel(*args, 0, n)]
    parts = _WORKERS
    edges = [n * p // parts for p in range(parts + 1)]
    results: list[object] = [None] * parts
    done = [threading.Event() for _ in range(parts)]
    turns = itertools.count()  # next() is atomic under the GIL

    def work() -> None:
        for k in iter(lambda: next(turns), None):
            if k >= parts:
                return
            try:
                results[k] = kernel(*args, edges[k], edges[k + 1])
            finally:
                done[k].set()

    pool = _pool()
    for _ in range(_WORKERS - 1):
        pool.submit(work)
    work()
    for event in done:
        event.wait()
    return results


def recognise(words: np.ndarray, ops: np.ndarray, neuron_reset: int) -> tuple | None:
    """The structure of a canonical hagen program (see :func:`bss2.hal.emulator.fastpath.recognise`), or None.

    ``ops`` are the opcodes SPIKES, TIMER_RESET, WRITE, WAIT_UNTIL, READ_BLOCK, END (uint64) and
    ``neuron_reset`` the register address of the neuron reset. Returns the read payloads (of the first
    vector; every vector has the same), the neuron-reset value, per vector the first SPIKES word, their
    number, the first and one-past-last word and the WAIT_UNTIL target, the first SPIKES word's top lane
    with its label count set to 3 (-1 when there is none), the END cookie (-1 without END), and the
    positions of the SPIKES words with fewer than three labels.
    """
    result = _compiled()[0](words, ops, np.uint64(neuron_reset))
    return result[1:] if result[0] else None


_NO_FLOATS = np.zeros(0, np.float32)


def accumulate(lanes: np.ndarray, first: np.ndarray, count: np.ndarray, table: np.ndarray, check_buses: bool,
               leak: np.ndarray | None, chunk_start: np.ndarray, factor: np.ndarray | None, out: np.ndarray) -> int:
    """Set ``out[v]`` to the sum of every used label of the SPIKES words ``first[v] .. first[v] + count[v] - 1``.

    ``table`` (int32, per label) holds the label's accumulator column (:data:`BINS` columns; 257 is idle) in
    bits 15..0 and the PADI bus bit of its driver in bits 23..16. A column >= 258 returns
    :data:`BAD_DRIVER`; with ``check_buses``, two labels of one word on one bus return
    :data:`BUS_COLLISION` (the caller then leaves the program to the general path). ``leak`` (float32,
    optional) weights word ``i`` by ``leak[i - chunk_start[v]]``; ``factor`` (float32, optional) then scales
    row ``v``. Unused labels of partly filled words must be zero (as :func:`recognise` checks).
    """
    kernel = _compiled()[1]
    status = _run(kernel, first.size, lanes, first, count, table, bool(check_buses),
                  _NO_FLOATS if leak is None else leak, chunk_start, _NO_FLOATS if factor is None else factor, out)
    return int(status[0]) if len(status) == 1 else max(int(s) for s in status)


def write_prefix(words: np.ndarray, ops: tuple[int, int], lo: int, hi: int, memory: np.ndarray | None = None,
                 checked: bool = False) -> tuple[int, int, int]:
    """The leading WRITE/WRITE_BLOCK instructions of ``words`` (opcodes ``ops``), all into addresses
    ``lo..hi``: (index of the first other instruction, number of write instructions, number of block data
    words), or ``(-1, 0, 0)`` when a write leaves the range or a block is malformed or truncated (nothing
    stored). With ``memory`` (uint32 register image), the writes are stored in program order; ``checked``
    says that a call without ``memory`` has just validated these very words (the pass is not repeated)."""
    kernel = _compiled()[4]
    apply = memory is not None
    image = memory if apply else _NO_REGISTERS
    write, block = np.uint64(ops[0]), np.uint64(ops[1])
    if apply and not checked:  # validate before anything changes
        stop = kernel(words, write, block, lo, hi, False, image)
        if stop[0] < 0:
            return -1, 0, 0
    stop, instructions, data_words = kernel(words, write, block, lo, hi, apply, image)
    return int(stop), int(instructions), int(data_words)


_NO_REGISTERS = np.zeros(0, np.uint32)


def _read_only(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view


def store_writes(parts: tuple[np.ndarray, ...], ops: tuple[int, int], lo: int, hi: int,
                 memory: np.ndarray) -> tuple[int, int] | None:
    """Store every part (1-D C-contiguous uint64 words), each nothing but WRITE/WRITE_BLOCK instructions
    (opcodes ``ops``) into addresses ``lo..hi``, in order into ``memory`` (uint32 register image) in one
    compiled call: (write instructions, block data words), or None when some part is anything else (nothing
    stored)."""
    if len({part.flags.writeable for part in parts}) > 1:  # one array type for the compiled tuple
        parts = tuple(_read_only(part) for part in parts)
    stop, instructions, data_words = _compiled()[6](parts, np.uint64(ops[0]), np.uint64(ops[1]), lo, hi, memory)
    return None if stop < 0 else (int(instructions), int(data_words))


def program(words: np.ndarray, ops: np.ndarray, neuron_reset: int, samples_base: int, conv: np.ndarray, ic: float,
            pre: float, dead: float, rate: float, chunk: int, t0: float, scratch: tuple[np.ndarray, ...]) -> tuple | None:
    """:func:`recognise`, the checks of the program's reads and :func:`timeline` in one compiled call.

    The reads must be whole CADC sample rows (64 registers from ``samples_base + 64 * row``, rows 0..3) of
    hemispheres that every vector resets (both quadrants); ``conv`` (float64, per hemisphere) holds the
    cycles of one conversion. With ``dead`` > 0, events of one vector closer than ``dead`` cycles decline
    the program (the general path draws their losses). ``scratch`` is ``(ints, floats, reads, rows, partial)``:
    (5, m) int64 and (4, m) float64 with ``m >= words.size // 4 + 1``, then uint64, int64, int64 of at
    least ``words.size`` entries; the results are views of it. Returns None (declined) or ``(vectors,
    reads, rows, quadrants, delay, cookie, partial, ints, floats, end, longest, span)`` where, per vector,
    ``ints`` rows are the first SPIKES word, their number, the first and one-past-last word and the first
    word of its chunk, and ``floats`` rows the WAIT_UNTIL target, the start time, the time of the first
    read and (with a ``rate``) the exponent of the leak factor (see :func:`timeline`).
    """
    ints, floats, reads, rows, partial = scratch
    found = _compiled()[7](words, ops, np.uint64(neuron_reset), samples_base, conv, float(ic), float(pre), float(dead),
                           float(rate), int(chunk), float(t0), ints, floats, reads, rows, partial)
    status, v, n_reads, quadrants, delay, cookie, n_partial, end, longest, span = found
    if status:
        return None
    return (v, reads[:n_reads], rows[:n_reads], quadrants, delay, cookie, partial[:n_partial], ints[:, :v], floats[:, :v],
            end, longest, span)


def hagen_weights(weights: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
    """:func:`bss2.hal.emulator.analog.hagen_weights` in one compiled pass (identical values).

    ``weights``: (2, 256, 256) synapse weights (uint8, bits 5..0); ``coefficients``: (2, 2, 128, 256) float32
    from :func:`~bss2.hal.emulator.analog.hagen_coefficients`. Returns (2, 128, 256) float32.
    """
    out = np.empty((2, 128, 256), np.float32)
    _compiled()[3](weights, coefficients, out)
    return out


def timeline(n_spikes: np.ndarray, targets: np.ndarray, first_spike: np.ndarray, vector_start: np.ndarray,
             vector_end: np.ndarray, step: float, pre: float, ic: float, conv_sum: float, t0: float, delay: float,
             rate: float, chunk: int) -> tuple:
    """The per-vector timeline of a hagen program (see ``fastpath._timeline_numpy``, identical values):
    ``(vector_time, t_read0, exponent or None, chunk_start, end, longest, span)``."""
    n = n_spikes.size
    vector_time, t_read0 = np.empty(n), np.empty(n)
    exponent = np.empty(n if rate > 0 else 0)
    chunk_start = np.empty(n, np.int64)
    end, longest, span = _compiled()[5](n_spikes, targets, first_spike, vector_start, vector_end, float(step), float(pre),
                                        float(ic), float(conv_sum), float(t0), float(delay), float(rate), int(chunk),
                                        vector_time, t_read0, exponent, chunk_start)
    return vector_time, t_read0, exponent if rate > 0 else None, chunk_start, float(end), int(longest), int(span)


def readout(products: np.ndarray, gains: np.ndarray, knees: np.ndarray, span: float, bends: np.ndarray,
            table: np.ndarray | None, key: int, base: int, baselines: np.ndarray, rows: np.ndarray, enabled: np.ndarray,
            out: np.ndarray) -> None:
    """CADC samples of every enabled read of every vector, written to ``out[:, k, 8:]`` (uint8).

    ``products`` (n_reads, n_vectors, 256) float32 are the swings of each read. Per sample of read ``k``
    (CADC row ``rows[k]``, synram ``rows[k] // 2``): the swing times ``gains[k]`` (float32; the parasitic
    leak during the reads before this one, 1 for none), bent beyond the column's knee ``knees[synram]``
    (when ``bends[synram]``), plus noise sample ``(v * n_reads + k) * 256 + c`` of the stream whose 64-bit
    words start at ``base`` (when ``table``, the scaled quantile table, is given), plus
    ``baselines[rows[k]]``, clipped to 0..255 and truncated. Reads with ``enabled[k]`` False are left
    alone. All reads in one call: a vector's reads are converted together.
    """
    kernel = _compiled()[2]
    noise = _NO_FLOATS if table is None else table
    _run(kernel, products.shape[1], products, gains, knees, float(span), bends, noise, np.uint64(key), np.uint64(base),
         baselines, rows, enabled, out)
