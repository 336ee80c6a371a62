"""Recogniser and dedicated fast path for canonical hagen-mode MAC programs.

A program of the form (per input vector, any number of vectors, optionally one END at the very end)::

    TIMER_RESET, WRITE neuron_reset q, SPIKES * n_v, WAIT_UNTIL t_v, READ_BLOCK <CADC row r_k> 64  (k = 1..R)

with the same ``q``, the same reads and one delay for every SPIKES word, on a chip whose state admits the
closed-form hagen run (see :meth:`AnalogCore.run`), is computed here without the general decoder,
timeline and run splitting. The physics are exactly those of :meth:`AnalogCore._hagen_run`; only the
bookkeeping is specialised: one window per vector (from its reset to its reads), the effective
activations accumulated per (vector, driver) straight from the 16-bit lanes of the SPIKES words in
cache-sized chunks of vectors, one matmul per read, and the response words written into one
preallocated array. Anything else (or any doubt) returns ``None`` and the general path runs.
"""

from __future__ import annotations

import math
import time

import numpy as np

from ..regmap import REGISTER_MAP
from ..wire import Opcode, ResponseType
from . import kernels
from .analog import _FLOOR_TOLERANCE, CYCLES_PER_US, saturate
from .dynamics import background_enabled

_B = REGISTER_MAP
_U64 = np.uint64
_SPIKES = int(Opcode.SPIKES)
_NEURON_RESET = _B["neuron_reset"].base
_CADC_SAMPLES = _B["cadc_sample_quad"].base
_CADC_CONFIG = _B["cadc_config"].base
_CADC_CHANNEL = _B["cadc_channel_config"].base
_BINS = kernels.BINS  # per vector: drivers 0..127, baseline (1 or 0), drivers 128..255, no driver, not hagen / unused lanes
_DRIVERS = (slice(0, 128), slice(129, 257))  # driver columns of each synram
_MATMUL = (slice(0, 129), slice(128, 257))  # matmul columns of each synram (with the baseline column)
_CHUNK = 256  # vectors per accumulation chunk (keeps the temporaries in L2)
_READ_CHUNK = 512  # vectors per readout chunk
_MASK56 = _U64(0x00FF_FFFF_FFFF_FFFF)
_CROSSBAR_OUTPUT = _B["crossbar_output_config"].base
_BLOCK_HEADER = int(ResponseType.BLOCK_DATA) << 56
_END_HEADER = int(ResponseType.END) << 56


# optional per-pass CPU-time breakdown (tests/benchmarks/emulator.py --breakdown): name -> seconds
timers: dict[str, float] | None = None
_last = [0.0]


def _mark(name: str | None) -> None:
    if timers is None:
        return
    now = time.thread_time()
    if name is not None:
        timers[name] = timers.get(name, 0.0) + now - _last[0]
    _last[0] = now


class _Shape:
    """The recognised structure of a program (arrays per vector)."""

    __slots__ = ("n_vectors", "reads", "rows", "read_payloads", "quadrants", "first_spike", "n_spikes", "vector_start",
                 "vector_end", "targets", "delay", "end_cookie", "other", "partial")


def _plain_words(words: np.ndarray) -> bool:
    """Whether ``words`` could be a hagen program for the passes here: 1-D C-contiguous uint64 (as stored on
    this little-endian host), at least five words."""
    return (words.size >= 5 and words.ndim == 1 and words.dtype == np.uint64 and words.flags.c_contiguous
            and np.little_endian)


def recognise(words: np.ndarray) -> _Shape | None:
    """The per-vector structure of a canonical hagen program, or None."""
    if not _plain_words(words):
        return None
    n = words.size
    if kernels.mode() == "numba":  # one compiled pass instead of the numpy passes below
        return _recognise_compiled(words)
    lanes = words.view("<u2").reshape(-1, 4)
    top = np.ascontiguousarray(lanes[:, 3])  # opcode, and of SPIKES words delay and count
    other = np.flatnonzero((top >> np.uint16(8)) != _SPIKES)
    o_op = (top[other] >> np.uint16(8)).astype(np.uint8)
    if other.size == 0:
        return None
    has_end = bool(o_op[-1] == Opcode.END)
    body = other.size - int(has_end)
    if body < 4 or o_op[0] != Opcode.TIMER_RESET:
        return None
    resets = np.flatnonzero(o_op[:body] == Opcode.TIMER_RESET)
    period = int(resets[1]) if resets.size > 1 else body
    reads = period - 3
    if reads < 1 or body % period:
        return None
    n_vectors = body // period
    pattern = np.array([Opcode.TIMER_RESET, Opcode.WRITE, Opcode.WAIT_UNTIL] + [Opcode.READ_BLOCK] * reads, np.uint8)
    o_op_v = o_op[:body].reshape(n_vectors, period)
    if not (o_op_v == pattern).all():
        return None
    pos = other[:body].reshape(n_vectors, period)
    # contiguity: TIMER_RESET, WRITE adjacent; WAIT and the reads adjacent; vectors back to back from word 0
    if pos[0, 0] != 0 or not (pos[:, 1] == pos[:, 0] + 1).all():
        return None
    if not (np.diff(pos[:, 2:], axis=1) == 1).all() or not (pos[1:, 0] == pos[:-1, -1] + 1).all():
        return None
    last = int(pos[-1, -1])
    if has_end:
        if other[-1] != n - 1 or last != n - 2:
            return None
    elif last != n - 1:
        return None
    payload = words[other] & _MASK56
    p = payload[:body].reshape(n_vectors, period)
    if (p[:, 0] != 0).any():
        return None
    write = p[:, 1]
    if ((write >> _U64(32)) != _NEURON_RESET).any() or not (write == write[0]).all():
        return None
    if ((p[:, 2] >> _U64(32)) != 0).any():
        return None
    read_payloads = p[0, 3:]
    if not (p[:, 3:] == read_payloads[None, :]).all():
        return None
    addresses = (read_payloads >> _U64(32)).astype(np.int64)
    if ((read_payloads & _U64(0xFFFF_FFFF)) != 64).any():
        return None
    rows = (addresses - _CADC_SAMPLES) // 64
    if ((addresses - _CADC_SAMPLES) % 64 != 0).any() or (rows < 0).any() or (rows > 3).any():
        return None
    end_cookie = None
    if has_end:
        if int(payload[-1] >> _U64(32)) != 0:
            return None
        end_cookie = int(payload[-1] & _U64(0xFFFF_FFFF))
    # SPIKES words: one delay throughout; partly filled words must leave their unused labels zero
    n_spikes = pos[:, 2] - pos[:, 1] - 1
    delay = 0
    partial = np.zeros(0, np.intp)
    if n_spikes.any():
        first_spike = int(pos[np.flatnonzero(n_spikes)[0], 1] + 1)
        reference = int(top[first_spike]) | 3
        probe = top | np.uint16(3)
        # every other word differs from the reference in its opcode
        if np.count_nonzero(probe != reference) != other.size:
            return None
        delay = (reference >> 2) & 63
        partial = np.flatnonzero(probe != top)
        if partial.size:
            partial = partial[(top[partial] >> np.uint16(8)) == _SPIKES]
            count = top[partial] & np.uint16(3)
            bad = (count == 0) | ((count < 2) & (lanes[partial, 1] != 0)) | ((count < 3) & (lanes[partial, 0] != 0))
            if bad.any():
                return None
    shape = _Shape()
    shape.n_vectors = n_vectors
    shape.reads = reads
    shape.rows = rows
    shape.read_payloads = read_payloads
    shape.quadrants = int(write[0]) & 0xF
    shape.first_spike = pos[:, 1] + 1
    shape.n_spikes = n_spikes
    shape.vector_start = pos[:, 0]
    shape.vector_end = pos[:, -1] + 1
    shape.targets = (p[:, 2] & _U64(0xFFFF_FFFF)).astype(np.float64)
    shape.delay = delay
    shape.end_cookie = end_cookie
    shape.other = other
    shape.partial = partial  # SPIKES words with fewer than three labels
    return shape


def _extended_weights(core, weights: np.ndarray, h: int, scale: float | None, baseline: np.ndarray) -> np.ndarray:
    """Synram ``h``'s effective weights (times the leak ``scale`` between reads) extended by ``baseline`` as the
    row at the accumulator's column 128, so that the baseline rides in the matmul; read-only, cached per
    weights."""
    cached = getattr(core, "_hagen_extended", None)
    if cached is None or cached[0] is not weights:
        cached = core._hagen_extended = (weights, {})
    key = (h, scale, baseline.tobytes())
    w = cached[1].get(key)
    if w is None:
        w = weights[h] if scale is None else weights[h] * np.float32(scale)
        w = np.concatenate((w, baseline[None, :]) if h == 0 else (baseline[None, :], w))
        w.flags.writeable = False
        if len(cached[1]) >= 16:
            cached[1].clear()
        cached[1][key] = w
    return w


_OPS = np.array([Opcode.SPIKES, Opcode.TIMER_RESET, Opcode.WRITE, Opcode.WAIT_UNTIL, Opcode.READ_BLOCK, Opcode.END], np.uint64)


def _recognise_compiled(words: np.ndarray) -> _Shape | None:
    """:func:`recognise` by the compiled kernel (the per-read checks here); ``other`` is left None."""
    found = kernels.recognise(words, _OPS, _NEURON_RESET)
    if found is None:
        return None
    reads, quadrants, first, n_spikes, start, stop, targets, reference, cookie, partial = found
    rows = []
    for payload in reads.tolist():
        offset = (payload >> 32) - _CADC_SAMPLES
        if payload & 0xFFFF_FFFF != 64 or offset % 64 or not 0 <= offset // 64 <= 3:
            return None
        rows.append(offset // 64)
    shape = _Shape()
    shape.n_vectors = first.size
    shape.reads = reads.size
    shape.rows = np.array(rows, np.int64)
    shape.read_payloads = reads
    shape.quadrants = quadrants & 0xF
    shape.first_spike = first
    shape.n_spikes = n_spikes
    shape.vector_start = start
    shape.vector_end = stop
    shape.targets = targets
    shape.delay = (int(reference) >> 2) & 63 if reference >= 0 else 0
    shape.end_cookie = None if cookie < 0 else int(cookie)
    shape.other = None  # used by the numpy accumulation only
    shape.partial = partial
    return shape


def _program_numpy(core, words: np.ndarray, context: _Context, ic: float, pre: float, dead: float, rate: float,
                   t0: float) -> tuple[_Shape, tuple] | None:
    """The program's :class:`_Shape` and timeline (see :func:`_timeline_numpy`), or None when it is not a
    canonical hagen program, reads a hemisphere that a vector does not reset, or puts events of a vector
    closer than the PADI dead time."""
    shape = recognise(words)
    if shape is None:
        return None
    read_h = [int(r) // 2 for r in shape.rows.tolist()]
    for h in set(read_h):  # every read hemisphere is reset (both quadrants) before each vector
        if (shape.quadrants >> (2 * h)) & 3 != 3:
            return None
    step = ic + shape.delay
    if dead > 0 and step < dead and shape.n_spikes.max() > 1:
        return None
    conv_sum = float(sum(context.conv[h] for h in read_h))
    return shape, _timeline_numpy(shape.n_spikes, shape.targets, shape.first_spike, shape.vector_start, shape.vector_end,
                                  step, pre, ic, conv_sum, t0, float(shape.delay), rate, _CHUNK)


def _program_compiled(core, words: np.ndarray, context: _Context, ic: float, pre: float, dead: float, rate: float,
                      t0: float) -> tuple[_Shape, tuple] | None:
    """:func:`_program_numpy` in one compiled call (:func:`kernels.program`); the arrays are views of
    per-core scratch, valid until the next program."""
    found = kernels.program(words, _OPS, _NEURON_RESET, _CADC_SAMPLES, context.conv_array, ic, pre, dead, rate, _CHUNK, t0,
                            _program_scratch(core, words.size))
    if found is None:
        return None
    n_v, reads, rows, quadrants, delay, cookie, partial, ints, floats, end, longest, span = found
    shape = _Shape()
    shape.n_vectors = n_v
    shape.reads = reads.size
    shape.rows = rows
    shape.read_payloads = reads
    shape.quadrants = quadrants & 0xF
    shape.first_spike, shape.n_spikes, shape.vector_start, shape.vector_end, chunk_start = ints
    shape.targets, vector_time, t_read0, exponent = floats
    shape.delay = delay
    shape.end_cookie = None if cookie < 0 else cookie
    shape.other = None  # used by the numpy accumulation only
    shape.partial = partial
    return shape, (vector_time, t_read0, exponent if rate > 0 else None, chunk_start, end, longest, span)


_PROGRAM_SCRATCH_LIMIT = 1 << 20  # words of a program whose scratch is kept per core between programs


def _program_scratch(core, n_words: int) -> tuple[np.ndarray, ...]:
    """Arrays for :func:`kernels.program` with room for a program of ``n_words`` words, reused between
    programs up to a size."""
    scratch = getattr(core, "_hagen_program_scratch", None)
    if scratch is None or scratch[2].size < n_words:
        size = max(n_words, 4096)
        m = size // 4 + 1
        scratch = (np.empty((5, m), np.int64), np.empty((4, m)), np.empty(size, np.uint64), np.empty(size, np.int64),
                   np.empty(size, np.int64))
        if n_words > _PROGRAM_SCRATCH_LIMIT:
            return scratch
        core._hagen_program_scratch = scratch
    return scratch


class _ReadPlan:
    """What a program's reads (CADC rows, in order) need from a :class:`_Context`, kept per context: per read
    its row, hemisphere and enable bit; the parasitic leak during the reads before it (``scales``, None for
    none; as float32 ``gains``, and all ones for ``fold_gains``), and the block header of its response."""

    __slots__ = ("rows", "hemispheres", "enabled", "enabled_array", "scales", "gains", "fold_gains", "headers")


def _read_plan(context: _Context, rows: tuple[int, ...], rate: float) -> _ReadPlan:
    plans = context.read_plans
    plan = plans.get((rows, rate))
    if plan is not None:
        return plan
    plan = _ReadPlan()
    plan.rows = rows
    plan.hemispheres = [row // 2 for row in rows]
    conv = [context.conv[h] for h in plan.hemispheres]
    # the parasitic leak during the reads before each one: with the baseline folded into the matmul it
    # scales the weights (the baseline does not decay), else the swing as it is read out
    offsets = [sum(conv[:k]) for k in range(len(conv))]
    plan.scales = [math.exp(-offset * rate) if rate > 0 and offset > 0 else None for offset in offsets]
    plan.gains = np.array([1.0 if scale is None else scale for scale in plan.scales], np.float32)
    plan.fold_gains = np.ones(len(rows), np.float32)
    plan.enabled = [context.enabled[h] for h in plan.hemispheres]
    plan.enabled_array = np.array(plan.enabled)
    payloads = (np.array(rows, np.uint64) * _U64(64) + _U64(_CADC_SAMPLES)) << _U64(32) | _U64(64)
    plan.headers = _U64(_BLOCK_HEADER) | payloads
    for array in (plan.gains, plan.fold_gains, plan.enabled_array, plan.headers):
        array.flags.writeable = False
    if len(plans) >= 16:
        plans.clear()
    plans[(rows, rate)] = plan
    return plan


class _Context:
    """What the closed form needs from the registers and the neuron parameters alone, computed once per
    register generation (:attr:`AnalogCore.generation`), parameter set and routing table (see :func:`_context`).

    ``usable``: no background source, no crossbar output, one hagen driver per label and none recorded by the
    FPGA, every membrane relaxing towards its reset (whether the neurons are linear depends on the membranes
    too: :meth:`AnalogCore._linear_neurons` checks it per program); per hemisphere the CADC conversion cycles
    and enable bit; per CADC row the baseline (128 + channel offset + reset level); per synram the saturation
    knees and whether any column bends.
    """

    __slots__ = ("usable", "tables", "conv", "conv_array", "read_plans", "enabled", "baseline", "knee", "bends", "fold", "rate_all", "target_all",
                 "read_baselines", "read_bends")


def _context(emulator, params, tables) -> _Context:
    core = emulator.core
    cached = getattr(core, "_hagen_context", None)
    if cached is not None and cached[0] == core.generation and cached[1] is params and cached[2] is tables:
        return cached[3]
    memory = emulator.memory
    cfg = emulator.config
    context = _Context()
    context.rate_all, context.target_all = core._relaxation(params)
    context.usable = not (
        background_enabled(memory) or int(memory[_CROSSBAR_OUTPUT]) & 0xFFF or tables.any_multiple or tables.any_fpga_recorded
        or bool(np.any(context.target_all != params.v_reset))
    )
    context.tables = tables
    ic = float(cfg.instruction_cycles)
    cadc = [int(memory[_CADC_CONFIG + h]) for h in (0, 1)]
    context.conv = [ic + cfg.cadc_conversion_cycles + ((c >> 8) & 0xFF) + ((c >> 16) & 0xFF) for c in cadc]
    context.conv_array = np.array(context.conv, np.float64)
    context.read_plans = {}
    context.enabled = [bool(c & 1) for c in cadc]
    v_reset = params.v_reset.reshape(2, 256).astype(np.float32)
    offsets = memory[_CADC_CHANNEL : _CADC_CHANNEL + 1024].astype(np.uint8).view(np.int8).reshape(4, 256).astype(np.float32)
    context.baseline = [offsets[row] + np.float32(128.0 + _FLOOR_TOLERANCE) + v_reset[row // 2] for row in range(4)]
    for baseline in context.baseline:
        baseline.flags.writeable = False
    context.knee = core.pattern.knee.reshape(2, 256)
    context.bends = [bool(np.isfinite(context.knee[h]).any()) for h in (0, 1)]  # per synram: does any column bend
    # without saturation and noise the baseline (128 + channel offset + v_reset) rides in the matmul: a
    # column of ones in the accumulator times a baseline row appended to the weights
    context.fold = cfg.noise_lsb <= 0 and not any(context.bends)
    # what the compiled readout takes: per CADC row its baseline and per synram whether it bends (with the
    # baseline folded into the matmul: none, and no bend)
    context.read_baselines = np.zeros((4, 256), np.float32) if context.fold else np.stack(context.baseline)
    context.read_bends = np.array([not context.fold and b for b in context.bends])
    core._hagen_context = (core.generation, params, tables, context)
    return context


def execute_hagen(emulator, words: np.ndarray) -> np.ndarray | None:
    """Responses of a canonical hagen program, or None when the general path must run."""
    _mark(None)
    if not _plain_words(words):
        return None
    core = emulator.core
    memory = emulator.memory
    cfg = emulator.config
    t0 = emulator.time
    ic = float(cfg.instruction_cycles)
    params = core.params(memory, t0 + ic)  # first activity: the first neuron reset
    context = _context(emulator, params, core.routing(memory))
    # chip state that the closed form needs (as in AnalogCore.run's hot path)
    if not context.usable or core.madc_active or not core._linear_neurons(params):
        return None
    _mark("state")
    # the program's structure and timeline (model cycles, integers: exact in float64), per read and per vector
    pre = 2 * ic + float(cfg.neuron_reset_cycles)
    rate = core.parasitic_rate
    dead = cfg.padi_dead_cycles
    compiled = kernels.mode() == "numba"
    found = (_program_compiled if compiled else _program_numpy)(core, words, context, ic, pre, float(dead), rate, t0)
    _mark("recognise, timeline")
    if found is None:
        return None
    shape, (vector_time, t_read0, exponent, chunk_start, last_end, longest, span) = found
    rows = shape.rows
    plan = _read_plan(context, tuple(rows.tolist()), rate)
    step = ic + shape.delay
    end_time = t0 + last_end + (ic if shape.end_cookie is not None else 0.0)
    # effective activation per (vector, driver), decayed by the parasitic leak to the vector's first read
    if rate > 0 and step * rate * float(longest) * _CHUNK > 60.0:
        return None  # chunk-relative leak factors would leave float32 range
    # event i of vector v happens at t_first_v + (i - first_v) * step; the chunk-relative factor
    # exp((i - a) * step * rate) is applied per word (a: first word of the chunk), the rest per vector
    factor = np.exp(exponent).astype(np.float32) if exponent is not None else None
    if compiled:
        effective = _accumulate_compiled(core, words, shape, context.tables, step, dead > 0, factor, chunk_start, span)
    else:
        effective = _accumulate(core, words, shape, context.tables, step, dead > 0, factor)
    if effective is None:
        return None
    # quadrants that are never reset: they may only relax (no input), else the general path integrates them
    for h in (0, 1):
        if (shape.quadrants >> (2 * h)) & 3 != 3 and effective[:, _DRIVERS[h]].any():
            return None
    weights = core.hagen_weights(memory, params)
    _mark("effective weights")
    n_v, n_r = shape.n_vectors, shape.reads
    has_end = shape.end_cookie is not None
    out = np.empty(n_v * n_r * 33 + int(has_end), dtype=_U64)
    body = out[: n_v * n_r * 33].reshape(n_v, n_r, 33)
    samples_u8 = body.view(np.uint8).reshape(n_v, n_r, 264)
    body[:, :, 0] = plan.headers
    knee = context.knee
    fold = context.fold
    effective[:, 128] = 1.0 if fold else 0.0
    reads = []
    enabled = plan.enabled
    for k, (row, h, scale) in enumerate(zip(plan.rows, plan.hemispheres, plan.scales)):  # per read: weights, gain, baseline
        baseline = context.baseline[row]
        if fold:
            reads.append((k, h, _extended_weights(core, weights, h, scale, baseline), None, 1.0))
        else:
            reads.append((k, h, weights[h], baseline, 1.0 if scale is None else scale))
        if not enabled[k]:
            samples_u8[:, k, 8:] = 0
    # one matmul per read (whole: a multi-threaded BLAS would synchronise per call), then the readout
    _mark(None)
    products = np.empty((n_r, n_v, 256), np.float32)
    for k, h, w, _, _ in reads:
        if enabled[k]:
            np.matmul(effective[:, _MATMUL[h] if fold else _DRIVERS[h]], w, out=products[k])
    _mark("matmul")
    # noise sample (v, k, c) is sample (v * n_r + k) * 256 + c of the words reserved here (64 per read)
    noisy = not fold and cfg.noise_lsb > 0
    noise_base = core.noise.reserve(n_v * n_r * 64) if noisy else 0
    table = core.noise.table(cfg.noise_lsb) if noisy else None
    if compiled:
        kernels.readout(products, plan.fold_gains if fold else plan.gains, knee, cfg.saturation_span_lsb,
                        context.read_bends, table, core.noise.key, noise_base, context.read_baselines, rows,
                        plan.enabled_array, samples_u8)
        _mark("readout (compiled)")
    for c0 in range(0, 0 if compiled else n_v, _READ_CHUNK):  # numpy passes per cache-sized chunk of vectors
        c1 = min(n_v, c0 + _READ_CHUNK)
        noise = None
        if noisy:
            index = core.noise.indices(noise_base + c0 * n_r * 64, (c1 - c0) * n_r * 64)
            noise = index.reshape(c1 - c0, n_r, 256)
        for k, h, _, baseline, gain in reads:
            if not enabled[k]:
                continue
            _mark(None)
            swing = products[k][c0:c1]
            if gain != 1.0:
                swing = swing * np.float32(gain)
            if not fold:
                swing = saturate(swing, knee[h], cfg.saturation_span_lsb)
                _mark("saturation")
                if noise is not None:
                    swing += np.take(table, noise[:, k])
                    _mark("noise")
                swing += baseline
            np.clip(swing, 0.0, 255.0, out=swing)
            samples_u8[c0:c1, k, 8:] = swing
            _mark("offsets, clip, quantise")
    for k, row in enumerate(plan.rows):  # the latest conversion of each row stays readable
        memory[_CADC_SAMPLES + 64 * row : _CADC_SAMPLES + 64 * (row + 1)] = samples_u8[-1, k, 8:].copy().view("<u4")
    if has_end:
        out[-1] = _U64(_END_HEADER | shape.end_cookie)

    _mark(None)
    # final membranes (the window after the last reads), then the clock
    tail = math.exp(-(end_time - t_read0[-1]) * rate) if rate > 0 else None
    if shape.quadrants == 0xF:  # every quadrant reset (the common case): the last vector's charge on all neurons
        core.defer_membranes(effective[-1].copy(), weights, tail, params.v_reset)
    for h in (0, 1) if shape.quadrants != 0xF else ():
        reset = [(shape.quadrants >> (2 * h + half)) & 1 for half in (0, 1)]
        if any(reset):
            charge = effective[-1, _DRIVERS[h]] @ weights[h]  # (256,): both quadrants of the synram
            if tail is not None:
                charge *= np.float32(tail)
        for half in (0, 1):
            j = slice(256 * h + 128 * half, 256 * h + 128 * (half + 1))
            if reset[half]:
                core.v[j] = params.v_reset[j] + charge[128 * half : 128 * (half + 1)].astype(np.float64)
            else:  # relaxation of the stored membrane
                f = np.exp(-(end_time - core.t_state) / CYCLES_PER_US * context.rate_all[j])
                v_start = core.v[j]
                core.v[j] = v_start + (context.target_all[j] - v_start) * (1.0 - f)
    if core.adapting():
        core.w_adapt *= np.exp(-(end_time - core.t_state) / (params.tau_adaptation_us * CYCLES_PER_US))
    core.t_state = end_time
    emulator.timer_zero = float(vector_time[-1])
    emulator.time = end_time
    core.settle_to(end_time)
    _mark("final state, clock")
    return out


def _accumulate(core, words: np.ndarray, shape: _Shape, tables, step: float, check_buses: bool,
                factor: np.ndarray | None) -> np.ndarray | None:
    """(n_vectors, 259) float32: activation per (vector, column) (see _BINS), each event weighted by the chunk-relative
    leak factor exp((i - a) * step * rate) of its word i (a: the chunk's first word), each row then by ``factor``."""
    n_v = shape.n_vectors
    lanes = words.view("<u2").reshape(-1, 4)
    table = tables.hagen_column
    effective = np.zeros((n_v, _BINS), np.float32)
    rate = core.parasitic_rate
    period = shape.reads + 3
    other_pos = shape.other[: n_v * period].reshape(n_v, period)
    lengths = shape.vector_end - shape.vector_start
    bus_bit = tables.hagen_bus_bit if check_buses else None
    for c0 in range(0, n_v, _CHUNK):  # one pass per chunk of vectors
        c1 = min(n_v, c0 + _CHUNK)
        a, b = int(shape.vector_start[c0]), int(shape.vector_end[c1 - 1])
        _mark(None)
        base = np.repeat(np.arange(c1 - c0, dtype=np.intp) * _BINS, lengths[c0:c1])
        rel_other = other_pos[c0:c1].reshape(-1) - a
        flat = effective[c0:c1].reshape(-1)
        leak = _leak_table(step * rate, b - a) if rate > 0 else None
        _mark("window index, leak table")
        masks = []
        for j in range(3):  # the three label lanes of a SPIKES word
            labels = lanes[a:b, j]
            driver = np.take(table, labels)
            _mark("driver lookup")
            if driver.max() >= 258 and not _lane_ok(driver, lanes[a:b, 3], j, rel_other):
                return None
            if bus_bit is not None:
                masks.append(np.take(bus_bit, driver))
            _mark("bus check")
            driver += base
            act = np.bitwise_and(labels, np.uint16(31)).astype(np.float32)
            act[rel_other] = 0.0
            _mark("activation")
            if leak is not None:
                act *= leak
                _mark("leak per event")
            np.add.at(flat, driver, act)
            _mark("add.at")
        if masks:
            # two labels of one word on one PADI bus may collide: the general path draws the losses
            m0, m1, m2 = masks  # lanes 0, 1, 2 hold labels 2, 1, 0
            shared = m0 & m1
            both = m0 & m2
            shared |= both
            np.bitwise_and(m1, m2, out=both)
            shared |= both
            shared[rel_other] = 0
            lo, hi = np.searchsorted(shape.partial, [a, b])
            if hi > lo:  # partly filled words: label 2 unused, label 1 used with two labels
                p = shape.partial[lo:hi] - a
                shared[p] = np.where((lanes[a + p, 3] & np.uint16(3)) == 2, m1[p] & m2[p], 0)
            if shared.any():
                return None
            _mark("bus check")
    _mark("bus check")
    if factor is not None:
        effective *= factor[:, None]
        _mark("leak per vector")
    return effective


def _timeline_numpy(n_spikes: np.ndarray, targets: np.ndarray, first_spike: np.ndarray, vector_start: np.ndarray,
                    vector_end: np.ndarray, step: float, pre: float, ic: float, conv_sum: float, t0: float, delay: float,
                    rate: float, chunk: int) -> tuple:
    """Per vector: its start time, the time of its first read and (with a parasitic ``rate``) the exponent of
    its leak factor; the first word of its chunk; then the end of the last vector (relative to ``t0``), the
    longest vector and the longest chunk (in words). :func:`kernels.timeline` computes the same."""
    first_read = np.maximum(n_spikes * step + (pre + ic), targets)  # relative to the vector's start
    length = first_read + conv_sum
    vector_end_time = np.cumsum(length)
    vector_time = (vector_end_time - length) + t0
    t_read0 = vector_time + first_read
    n = n_spikes.size
    chunk_start = vector_start[(np.arange(n) // chunk) * chunk]
    exponent = None
    if rate > 0:
        t_first = vector_time + pre + delay
        exponent = -(t_read0 - t_first + (first_spike - chunk_start) * step) * rate
    span = int((vector_end[np.minimum(np.arange(0, n, chunk) + chunk, n) - 1] - vector_start[np.arange(0, n, chunk)]).max())
    return (vector_time, t_read0, exponent, chunk_start, float(vector_end_time[-1]), int((vector_end - vector_start).max()),
            span)


def _accumulate_compiled(core, words: np.ndarray, shape: _Shape, tables, step: float, check_buses: bool,
                         factor: np.ndarray | None, chunk_start: np.ndarray, span: int) -> np.ndarray | None:
    """:func:`_accumulate` by the compiled kernel (same values, same summation order), or None; ``chunk_start``
    is every vector's first word of its chunk and ``span`` the longest chunk in words (see :func:`_timeline_numpy`)."""
    n_v = shape.n_vectors
    lanes = words.view("<u2").reshape(-1, 4)
    effective = _scratch(core, n_v)  # every row is overwritten by the kernel
    rate = core.parasitic_rate
    leak = None
    if rate > 0:
        leak = _leak_table(step * rate, span)
    _mark("window index, leak table")
    status = kernels.accumulate(lanes, shape.first_spike, shape.n_spikes, tables.hagen_column_bus, check_buses, leak,
                                chunk_start, factor, effective)
    _mark("accumulate (compiled)")
    return effective if status == kernels.OK else None


_SCRATCH_LIMIT = 1 << 23  # bytes of accumulator kept per emulator between programs


def _scratch(core, n_vectors: int) -> np.ndarray:
    """An uninitialised (n_vectors, 259) float32 accumulator, reused between programs up to a size (fresh
    pages would cost a page fault each on first touch)."""
    size = n_vectors * _BINS
    if size * 4 > _SCRATCH_LIMIT:
        return np.empty((n_vectors, _BINS), np.float32)
    buffer = getattr(core, "_hagen_scratch", None)
    if buffer is None or buffer.size < size:
        buffer = core._hagen_scratch = np.empty(max(size, 64 * _BINS), np.float32)
    return buffer[:size].reshape(n_vectors, _BINS)


_LEAK_TABLES: dict[float, np.ndarray] = {}


def _leak_table(exponent: float, n: int) -> np.ndarray:
    """exp(k * exponent) for k = 0..n-1 (float32), cached per exponent."""
    table = _LEAK_TABLES.get(exponent)
    if table is None or table.size < n:
        if len(_LEAK_TABLES) > 16:
            _LEAK_TABLES.clear()
        table = _LEAK_TABLES[exponent] = np.exp(np.arange(max(n, 32768)) * exponent).astype(np.float32)
    return table[:n]


def _lane_ok(driver: np.ndarray, top: np.ndarray, lane: int, rel_other: np.ndarray) -> bool:
    """Whether no used label of this lane reaches a driver that is not in hagen mode (or several)."""
    bad = np.flatnonzero(driver >= 258)
    if bad.size == 0:
        return True
    is_other = np.zeros(driver.size, bool)
    is_other[rel_other] = True
    used = (top[bad] & np.uint16(3)) > 2 - lane
    return not (used & ~is_other[bad]).any()
