"""The analog core: fixed pattern, parameters from CapMem, hagen-mode MAC and time-stepped spiking neurons.

Units: membrane voltages in CADC LSB relative to CADC mid-scale (a sample reads ``128 + V``), currents in
LSB/us, times in FPGA cycles (8 ns) unless the name ends in ``_us``. Neuron ``j = row * 256 + column``
(``AtomicNeuronOnDLS`` enum); synapse driver ``g = hemisphere * 128 + d``. See ``docs/emulator.rst``.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np

from ..regmap import REGISTER_MAP
from .config import EmulatorConfig
from . import kernels
from .kernels import splitmix64

N_NEURONS = 512
CYCLES_PER_US = 125.0
_NEURON = np.arange(N_NEURONS)
_QUADRANT = (_NEURON // 256) * 2 + (_NEURON % 256) // 128
_CAPMEM_COLUMN = _NEURON % 128
_ROW = {row.name: row.row for row in REGISTER_MAP.capmem_neuron_rows}
_SHARED = {row.name: row.row for row in REGISTER_MAP.capmem_shared_rows}
_NOMINAL = {row.name: row.nominal for row in REGISTER_MAP.capmem_neuron_rows}
_NOMINAL_SHARED = {row.name: row.nominal for row in REGISTER_MAP.capmem_shared_rows}
# the quantisation threshold sits this far below each code boundary, so that an exact ideal response
# (a multiple of the gain) is not floored one LSB too low by float32 rounding
_FLOOR_TOLERANCE = 1e-3


class FixedPattern:
    """Per-chip deviations, drawn once from the chip serial (same seed, same pattern)."""

    def __init__(self, chip_id: int, config: EmulatorConfig) -> None:
        streams = [np.random.default_rng(s) for s in np.random.SeedSequence([chip_id & 0xFFFF_FFFF, 0xB552]).spawn(16)]
        n = N_NEURONS

        def rel(index: int, spread: float, shape: int | tuple[int, ...] = n, low: float = 0.2) -> np.ndarray:
            return np.maximum(1.0 + spread * streams[index].standard_normal(shape), low)

        # one gain per neuron (the membrane, its capacitance and readout) times a smaller mismatch between the
        # excitatory and the inhibitory input circuits
        common = rel(0, config.gain_spread)
        self.gain_exc = common * rel(1, config.exc_inh_mismatch)
        self.gain_inh = common * rel(13, config.exc_inh_mismatch)
        self.zero_exc = config.gain_curve_zero_code + config.gain_curve_zero_spread_code * streams[2].standard_normal(n)
        self.zero_inh = config.gain_curve_zero_code + config.gain_curve_zero_spread_code * streams[3].standard_normal(n)
        self.synapse = rel(4, config.synapse_spread, (2, 256, 256), 0.0).astype(np.float32)
        self.driver = rel(5, config.driver_spread, 256, 0.0)
        self.voltage_slope = rel(6, config.voltage_slope_spread)
        self.offset = config.offset_spread_lsb * streams[7].standard_normal(n)
        self.threshold_offset = config.threshold_spread_lsb * streams[8].standard_normal(n)
        self.tau_mem = rel(9, config.tau_spread, low=0.3)
        self.tau_exc = rel(10, config.tau_spread, low=0.3)
        self.tau_inh = rel(11, config.tau_spread, low=0.3)
        if math.isinf(config.saturation_knee_lsb):
            self.knee = np.full(n, np.inf)
        else:
            self.knee = np.maximum(config.saturation_knee_lsb + config.saturation_knee_spread_lsb * streams[12].standard_normal(n), 80.0)


class NeuronParams(NamedTuple):
    """Per-neuron parameters (arrays of 512) derived from CapMem, neuron configs and the fixed pattern."""

    v_leak: np.ndarray
    v_reset: np.ndarray
    v_threshold: np.ndarray
    v_exponential: np.ndarray
    tau_mem_us: np.ndarray  # inf where the leak is disabled (parasitic leakage is added separately)
    tau_exc_us: np.ndarray
    tau_inh_us: np.ndarray
    hagen_exc: np.ndarray  # LSB per (activation x weight) of a hagen pulse
    hagen_inh: np.ndarray
    spike_exc: np.ndarray  # membrane charge (LSB) per unit weight of a spiking-mode event
    spike_inh: np.ndarray
    offset_current: np.ndarray  # LSB/us
    adaptation_a: np.ndarray  # 1/us
    adaptation_b: np.ndarray  # LSB/us per spike
    tau_adaptation_us: np.ndarray
    exponential_strength: np.ndarray  # 1/us
    leak: np.ndarray  # bool flags from neuron_config
    threshold: np.ndarray
    fire: np.ndarray
    adaptation: np.ndarray
    exponential: np.ndarray
    readout: np.ndarray
    exc_input: np.ndarray
    inh_input: np.ndarray
    refractory_cycles: np.ndarray
    address_out: np.ndarray
    spike_out: np.ndarray


def neuron_params(config: EmulatorConfig, pattern: FixedPattern, capmem: np.ndarray, neuron_words: np.ndarray, backend_words: np.ndarray) -> NeuronParams:
    """Derive the neuron parameters from effective CapMem values ``capmem`` (4, 24, 130) and config words."""
    cells = capmem[_QUADRANT, :, _CAPMEM_COLUMN]  # (512, 24)
    shared = capmem[_QUADRANT, :, 128]

    def voltage(name: str) -> np.ndarray:
        return config.voltage_lsb_per_code * pattern.voltage_slope * (cells[:, _ROW[name]] - config.voltage_zero_code) + pattern.offset

    def flag(bit: int) -> np.ndarray:
        return ((neuron_words >> bit) & 1).astype(bool)

    capacitance = np.maximum((neuron_words >> 8) & 63, 1) / 63.0
    exc_on, inh_on = flag(0), flag(1)
    nominal_span = _NOMINAL["i_bias_syn_exc_gm"] - config.gain_curve_zero_code
    dac = shared[:, _SHARED["i_bias_synapse_dac"]] / _NOMINAL_SHARED["i_bias_synapse_dac"]
    pulse = shared[:, _SHARED["i_bias_synapse_driver"]] / _NOMINAL_SHARED["i_bias_synapse_driver"]
    # gm transfer curve: zero below a per-neuron code, then proportional (a calibration can equalise it)
    g_exc = pattern.gain_exc * np.maximum(cells[:, _ROW["i_bias_syn_exc_gm"]] - pattern.zero_exc, 0.0) / nominal_span * dac / capacitance * exc_on
    g_inh = pattern.gain_inh * np.maximum(cells[:, _ROW["i_bias_syn_inh_gm"]] - pattern.zero_inh, 0.0) / nominal_span * dac / capacitance * inh_on

    def time_constant(base_us: float, nominal: float, code: np.ndarray, deviation: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.where(code > 0.5, base_us * nominal / np.maximum(code, 1e-9) * deviation, np.inf)

    leak = flag(2)
    tau_mem = time_constant(config.tau_mem_us, _NOMINAL["i_bias_leak"], cells[:, _ROW["i_bias_leak"]], pattern.tau_mem * capacitance)
    tau_mem = np.where(leak, tau_mem, np.inf)
    return NeuronParams(
        v_leak=voltage("v_leak"),
        v_reset=voltage("v_reset"),
        v_threshold=voltage("v_threshold") + pattern.threshold_offset,
        v_exponential=voltage("v_exponential"),
        tau_mem_us=tau_mem,
        tau_exc_us=time_constant(config.tau_syn_us, _NOMINAL["i_bias_syn_exc_tau"], cells[:, _ROW["i_bias_syn_exc_tau"]], pattern.tau_exc),
        tau_inh_us=time_constant(config.tau_syn_us, _NOMINAL["i_bias_syn_inh_tau"], cells[:, _ROW["i_bias_syn_inh_tau"]], pattern.tau_inh),
        hagen_exc=config.hagen_gain * g_exc * pulse,
        hagen_inh=config.hagen_gain * g_inh * pulse,
        spike_exc=config.spike_charge_lsb * g_exc,
        spike_inh=config.spike_charge_lsb * g_inh,
        offset_current=config.offset_current_lsb_per_us_per_code * cells[:, _ROW["i_mem_offset"]] / capacitance,
        adaptation_a=config.adaptation_a_per_code * cells[:, _ROW["i_bias_adaptation_a"]],
        adaptation_b=config.adaptation_b_lsb_per_code * cells[:, _ROW["i_bias_adaptation_b"]],
        tau_adaptation_us=time_constant(config.adaptation_tau_us, _NOMINAL["i_bias_adaptation_tau"], cells[:, _ROW["i_bias_adaptation_tau"]], 1.0),
        exponential_strength=config.exponential_strength_per_code * cells[:, _ROW["i_bias_exponential"]],
        leak=leak,
        threshold=flag(3),
        fire=flag(4),
        adaptation=flag(5),
        exponential=flag(6),
        readout=flag(7),
        exc_input=exc_on,
        inh_input=inh_on,
        refractory_cycles=((backend_words >> 8) & 0xFF).astype(np.float64),
        address_out=(backend_words & 0xFF).astype(np.int64),
        spike_out=((backend_words >> 20) & 1).astype(bool),
    )


def hagen_coefficients(config: EmulatorConfig, pattern: FixedPattern, params: NeuronParams, driver_words: np.ndarray) -> np.ndarray:
    """Effective hagen-mode weight per unit synapse weight, (2, 2, 128, 256) float32: per synram, per row of
    a driver (0: top, 1: bottom), per driver and column.

    It is the synapse's fixed-pattern factor, times the row mode's sign through the column neuron's gain
    (excitatory gain if the mode's bit 0 is set, minus the inhibitory gain if its bit 1 is set), times the
    driver's relative pulse length (:func:`driver_scale`); computed in float64 and rounded once. It depends
    on the neuron parameters and the driver configuration only, not on the weights.
    """
    modes = (((driver_words >> 1) & 3).reshape(2, 128), ((driver_words >> 3) & 3).reshape(2, 128))  # top, bottom
    scale = driver_scale(config, pattern, driver_words).reshape(2, 128, 1)
    gain_exc = params.hagen_exc.reshape(2, 1, 256).astype(np.float64)
    gain_inh = params.hagen_inh.reshape(2, 1, 256).astype(np.float64)
    out = np.empty((2, 2, 128, 256), dtype=np.float32)
    for half, mode in enumerate(modes):
        signed = (mode & 1)[:, :, None] * gain_exc - ((mode >> 1) & 1)[:, :, None] * gain_inh
        out[:, half] = pattern.synapse[:, half::2, :] * signed * scale
    return out


def hagen_weights(weights: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
    """Effective hagen-mode weight of every (driver, column): LSB per unit activation, (2, 128, 256) float32.

    ``weights`` (2, 256, 256) uint8 hold the 6-bit synapse weights in bits 5..0 (higher bits are ignored);
    a driver's effective weight is ``w_top * c_top + w_bottom * c_bottom`` in float32 with the
    :func:`hagen_coefficients` ``c`` of its two rows.
    """
    if kernels.mode() == "numba":  # the same operations in one compiled pass
        return kernels.hagen_weights(weights, coefficients)
    w = (weights & np.uint8(63)).astype(np.float32)
    return w[:, 0::2] * coefficients[:, 0] + w[:, 1::2] * coefficients[:, 1]


def driver_scale(config: EmulatorConfig, pattern: FixedPattern, driver_words: np.ndarray) -> np.ndarray:
    """Relative pulse length of each of the 256 drivers (fixed pattern times the offset calibration)."""
    offset = (driver_words >> 12) & 15
    return np.maximum(pattern.driver * (1.0 + config.driver_offset_step * (offset - 8.0)), 0.0)


class NoiseSource:
    """Gaussian temporal noise: a counter-based stream of 16-bit quantile indices (see :mod:`.kernels`).

    Word ``i`` of the stream (SplitMix64 with this source's key) gives samples ``4i .. 4i + 3``, each an
    index into :func:`normal_table`, 65,536 equiprobable quantiles of the standard normal (its tails end at
    4.3 sigma). :meth:`reserve` hands out fresh words; a sample depends only on its position, so the fast
    path draws reserved words in any order (by numpy or by the compiled kernels) with the same result.
    """

    def __init__(self, rng: np.random.Generator) -> None:
        self.key = int(rng.integers(0, 1 << 64, dtype=np.uint64))
        self.position = 0  # next unused word of the stream
        self._scaled: dict[float, np.ndarray] = {}

    def table(self, std: float) -> np.ndarray:
        """The quantile table scaled to standard deviation ``std`` (float32, read-only)."""
        table = self._scaled.get(std)
        if table is None:
            table = self._scaled[std] = (normal_table() * np.float32(std)).astype(np.float32)
            table.flags.writeable = False
        return table

    def reserve(self, words: int) -> int:
        """Reserve the next ``words`` words of the stream (4 samples each); returns the first one's index."""
        start = self.position
        self.position += int(words)
        return start

    def indices(self, start: int, count: int) -> np.ndarray:
        """The 16-bit table indices of words ``start .. start + count - 1`` (uint16, 4 per word)."""
        return splitmix64(self.key, start, count).view(np.uint16)

    def normal(self, shape: tuple[int, ...], std: float) -> np.ndarray:
        """Fresh float32 samples with standard deviation ``std``."""
        n = math.prod(shape)
        words = -(-n // 4)
        index = self.indices(self.reserve(words), words)[:n].reshape(shape)
        return np.take(self.table(std), index)


@functools.lru_cache(maxsize=1)
def normal_table() -> np.ndarray:
    """Midpoints of 65536 equiprobable bins of the standard normal (inverse CDF; no scipy)."""
    p = (np.arange(65536, dtype=np.float64) + 0.5) / 65536.0
    table = (np.sqrt(2.0) * _erfinv(2.0 * p - 1.0)).astype(np.float32)
    table.flags.writeable = False
    return table


def _erfinv(y: np.ndarray) -> np.ndarray:
    """Inverse error function (Giles' approximation refined by two Newton steps)."""
    w = -np.log((1.0 - y) * (1.0 + y))
    small = w < 5.0
    ws = w - 2.5
    wl = np.sqrt(np.maximum(w, 5.0)) - 3.0
    ps = np.polyval([2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087, -0.00125372503,
                     -0.00417768164, 0.246640727, 1.50140941], ws)
    pl = np.polyval([-0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773, -0.0076224613,
                     0.00943887047, 1.00167406, 2.83297682], wl)
    x = np.where(small, ps, pl) * y
    erf = np.vectorize(math.erf, otypes=[np.float64])
    for _ in range(2):
        x = x - (erf(x) - y) / (2.0 / math.sqrt(math.pi) * np.exp(-x * x))
    return x


def saturate(swing: np.ndarray, knee: np.ndarray, span: float) -> np.ndarray:
    """Soft saturation of the membrane swing (LSB) beyond a per-column knee; linear inside ``±knee`` (in place).

    Beyond the knee the excess e is compressed to ``e / (1 + e / span)``, approaching ``knee + span``.
    """
    finite = np.isfinite(knee)
    if not finite.any():
        return swing
    lowest_knee = knee[finite].min()
    if swing.size == 0:
        return swing
    high, low = swing.max() > lowest_knee, -swing.min() > lowest_knee
    if not (high or low):
        return swing
    if not swing.flags.c_contiguous:
        swing = np.ascontiguousarray(swing)
    # only the (few) samples beyond the lowest knee need the bend (one comparison when one side exceeds)
    flat = swing.reshape(-1)
    if high and low:
        beyond = np.flatnonzero(np.abs(flat) > lowest_knee)
    else:
        beyond = np.flatnonzero(flat > lowest_knee) if high else np.flatnonzero(flat < -lowest_knee)
    values = flat[beyond]
    column_knee = knee[beyond % knee.size] if knee.ndim == 1 and swing.shape[-1] == knee.size else np.broadcast_to(knee, swing.shape).reshape(-1)[beyond]
    excess = np.maximum(np.abs(values) - column_knee, 0.0)
    flat[beyond] = values - np.copysign(excess * excess / (span + excess), values)
    return swing
