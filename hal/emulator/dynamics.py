"""Analog dynamics of one run of a program: event routing, the hagen-mode fast path and the time-stepped
spiking simulation, CADC/MADC readout, CapMem settling and background sources.

A *run* is a stretch of a program without configuration writes (see :mod:`.emulator`). When no neuron of
the run can fire, no membrane that receives input leaks, no synaptic current flows and every event reaches
a hagen-mode driver, the membranes are linear in the inputs and the run is computed in closed form: events
are accumulated per (segment between resets/reads, driver) and multiplied by the effective weight matrix,
one matmul per synram. Otherwise the neurons are integrated with a fixed time step ``dt_us``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ..regmap import REGISTER_MAP
from .analog import (
    CYCLES_PER_US,
    N_NEURONS,
    _FLOOR_TOLERANCE,
    FixedPattern,
    NeuronParams,
    NoiseSource,
    hagen_coefficients,
    hagen_weights,
    driver_scale,
    neuron_params,
    saturate,
)
from .config import EmulatorConfig
from .routing import FPGA_INPUT, MANY_TARGETS, RoutingTables

_B = REGISTER_MAP


def _range(name: str) -> tuple[int, int]:
    block = _B[name]
    return block.base, block.last_address


_CAPMEM = _B["capmem_cell"]
_GROUPS = {
    "routing": ("crossbar_node", "padi_bus_config", "synapse_driver_config"),
    "neurons": ("neuron_config", "neuron_backend_config"),
    "synapses": ("synapse_quad", "synapse_driver_config", "padi_bus_config"),
    "background": ("background_spike_source",),
}


class DynamicsInput(NamedTuple):
    """What happens in one run (times in model cycles; ``*_instr`` are instruction indices)."""

    t_begin: float
    t_end: float
    spike_instr: np.ndarray
    spike_time: np.ndarray
    spike_labels: np.ndarray  # (n, 3) uint16
    spike_counts: np.ndarray
    inject_instr: np.ndarray
    inject_time: np.ndarray
    inject_label: np.ndarray
    reset_instr: np.ndarray
    reset_time: np.ndarray
    reset_quadrants: np.ndarray
    conv_instr: np.ndarray
    conv_time: np.ndarray
    conv_row: np.ndarray
    madc_time: np.ndarray
    madc_start: np.ndarray
    madc_stop: np.ndarray
    read_counter_times: np.ndarray


class DynamicsOutput(NamedTuple):
    """Measured results of one run."""

    samples: np.ndarray  # (n_conv, 256) uint8, one row per CADC conversion
    spike_labels: np.ndarray
    spike_times: np.ndarray
    madc_values: np.ndarray
    madc_times: np.ndarray
    madc_channels: np.ndarray
    counter_values: np.ndarray  # (n_counter_reads, 12) uint32


def _empty_output(n_conv: int = 0, n_counter: int = 0) -> DynamicsOutput:
    return DynamicsOutput(
        np.zeros((n_conv, 256), np.uint8), np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64), np.zeros(0),
        np.zeros(0, np.int64), np.zeros((n_counter, 12), np.uint32),
    )


class _Events(NamedTuple):
    """Events that reached synapse drivers (one entry per driver reached), sorted by instruction."""

    instr: np.ndarray
    time: np.ndarray
    driver: np.ndarray
    label: np.ndarray


#: MADC samples converted at a time (a multiple of 4, see :meth:`AnalogCore._madc_samples`)
_MADC_CHUNK = 1 << 18


class AnalogCore:
    """Analog state of the chip and the physics of a run."""

    def __init__(self, chip_id: int, seed: int, config: EmulatorConfig) -> None:
        self.config = config
        self.pattern = FixedPattern(chip_id, config)
        self.noise = NoiseSource(np.random.default_rng(np.random.SeedSequence([seed, 0x4E01])))
        self.rng = np.random.default_rng(np.random.SeedSequence([seed, 0x10C5]))
        self.dt_cycles = config.dt_us * CYCLES_PER_US
        self.parasitic_rate = 0.0 if math.isinf(config.parasitic_leak_tau_us) else 1.0 / (config.parasitic_leak_tau_us * CYCLES_PER_US)
        self.generation = 0  # counts register writes and chip resets: caches of register-derived values compare it
        self.begin_recording()

    def begin_recording(self) -> None:
        """A program starts: the FPGA's recording memory (``config.recording_words``) is empty again."""
        self.record_left = int(self.config.recording_words)
        #: whether the current program recorded more than the memory holds (its latest records were dropped)
        self.recording_overflow = False

    def _keep_records(self, labels: np.ndarray, times: np.ndarray, madc: tuple[np.ndarray, np.ndarray, np.ndarray]) -> tuple:
        """The earliest records (spikes and MADC samples together) that still fit into the recording memory;
        the rest are dropped and flagged."""
        total = labels.size + madc[0].size
        if total <= self.record_left:
            self.record_left -= total
            return labels, times, madc
        self.recording_overflow = True
        keep = self.record_left
        self.record_left = 0
        order = np.argsort(np.concatenate((times, madc[1])), kind="stable")[:keep]
        spikes = np.sort(order[order < labels.size])
        samples = np.sort(order[order >= labels.size]) - labels.size
        return labels[spikes], times[spikes], (madc[0][samples], madc[1][samples], madc[2][samples])

    # ---------------------------------------------------------------------------------------- state
    def power_on(self, memory: np.ndarray, time: float = 0.0) -> None:
        """Chip reset: CapMem at 0, membranes at 0 LSB, no activity."""
        n = _CAPMEM.count
        self.capmem_target = np.zeros(n)
        self.capmem_start = np.zeros(n)
        self.capmem_time = np.zeros(n)
        self.capmem_settled = True
        self._v_pending: tuple | None = None
        self.v = np.zeros(N_NEURONS)
        self.i_exc = np.zeros(N_NEURONS)
        self.i_inh = np.zeros(N_NEURONS)
        self._currents: bool | None = False  # whether a synaptic current flows (None: not known)
        self._adapting: bool | None = False  # whether some adaptation current is not zero (None: not known)
        self.w_adapt = np.zeros(N_NEURONS)
        self.refractory_until = np.full(N_NEURONS, -np.inf)
        self.t_state = time
        self.madc_active = False
        self.madc_next = 0.0
        self.madc_left = 0
        self.madc_index = 0
        self.counters = np.zeros(12, dtype=np.int64)
        self.background_origin = np.full(8, time)
        self.background_rng = [np.random.default_rng([1, s]) for s in range(8)]
        self.generation += 1
        self._routing: RoutingTables | None = None
        self._params: NeuronParams | None = None
        self._weights: np.ndarray | None = None
        self._coefficients: tuple[NeuronParams, np.ndarray] | None = None  # of the effective weights (per parameter set)
        self._derived_cache: tuple[NeuronParams, np.ndarray, tuple[np.ndarray, np.ndarray], bool, bool] | None = None
        self._background_words = memory[_B["background_spike_source"].base : _B["background_spike_source"].last_address + 1].copy()
        self._reseed_background(memory, time, np.arange(8))

    @property
    def v(self) -> np.ndarray:
        """Membrane potentials (LSB above 0), float64 per neuron; a deferred hagen result is computed first."""
        if self._v_pending is not None:
            effective, weights, tail, v_reset = self._v_pending
            self._v_pending = None
            charge = np.concatenate((effective[0:128] @ weights[0], effective[129:257] @ weights[1]))
            if tail is not None:
                charge *= np.float32(tail)
            self._v = v_reset + charge.astype(np.float64)
        return self._v

    @v.setter
    def v(self, value: np.ndarray) -> None:
        self._v_pending = None
        self._v = value

    def defer_membranes(self, effective: np.ndarray, weights: np.ndarray, tail: float | None, v_reset: np.ndarray) -> None:
        """Every membrane ends at ``v_reset`` plus the charge of the accumulator row ``effective`` (one vector's
        activation per column, see :data:`kernels.BINS`) through the effective hagen ``weights``, times the
        leak factor ``tail``: computed when the membranes are next looked at (most programs never do)."""
        self._v_pending = (effective, weights, tail, v_reset)

    def config_written(self, memory: np.ndarray, addresses: np.ndarray, values: np.ndarray, times: np.ndarray) -> None:
        """Invalidate caches touched by register writes; start CapMem settling of written cells."""
        self.generation += 1
        touched = set()
        for group, blocks in _GROUPS.items():
            for name in blocks:
                lo, hi = _range(name)
                if np.any((addresses >= lo) & (addresses <= hi)):
                    touched.add(group)
        if "routing" in touched:
            self._routing = None
        if "neurons" in touched:
            self._params = None
        if touched & {"neurons", "synapses"}:
            self._weights = None
            self._coefficients = None  # the drivers' modes and scales (parameter changes replace the params object)
        in_capmem = (addresses >= _CAPMEM.base) & (addresses <= _CAPMEM.last_address)
        if in_capmem.any():
            cells = addresses[in_capmem] - _CAPMEM.base
            t = times[in_capmem]
            self.capmem_start[cells] = self._capmem_at(t, cells)
            self.capmem_target[cells] = (values[in_capmem] & 0x3FF).astype(np.float64)
            self.capmem_time[cells] = t
            self.capmem_settled = False
            self._params = None
            self._weights = None
        if "background" in touched:
            lo, hi = _range("background_spike_source")
            sources = np.unique((addresses[(addresses >= lo) & (addresses <= hi)] - lo) // 3)
            self._reseed_background(memory, float(times.max()), sources)

    def synapses_written(self) -> None:
        """Invalidate what depends on the synapse array alone (the effective hagen weights); the caller has
        checked that every written address is a synapse word."""
        self._weights = None

    def _reseed_background(self, memory: np.ndarray, time: float, sources: np.ndarray) -> None:
        base = _B["background_spike_source"].base
        for s in sources:  # at most 8 sources
            seed = int(memory[base + 3 * s + 1])
            self.background_rng[s] = np.random.default_rng([seed, int(s)])
            self.background_origin[s] = time

    def _capmem_at(self, t: np.ndarray | float, cells: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Effective CapMem values at time ``t``: exponential approach, snapping within half a code."""
        target = self.capmem_target[cells]
        if self.capmem_settled:
            return target.copy()
        tau = self.config.capmem_settle_tau_us * CYCLES_PER_US
        age = np.maximum(np.asarray(t) - self.capmem_time[cells], 0.0)
        value = target + (self.capmem_start[cells] - target) * np.exp(-age / tau) if tau > 0 else target.copy()
        return np.where(np.abs(value - target) < 0.5, target, value)

    def settle_to(self, time: float) -> None:
        """Mark CapMem settled once every cell is within half a code of its target."""
        if not self.capmem_settled and np.array_equal(self._capmem_at(time), self.capmem_target):
            self.capmem_settled = True
            self._params = None
            self._weights = None

    # -------------------------------------------------------------------------------- derived tables
    def params(self, memory: np.ndarray, time: float) -> NeuronParams:
        if self._params is None or not self.capmem_settled:
            capmem = self._capmem_at(time).reshape(4, 24, 130)
            self._params = neuron_params(
                self.config, self.pattern, capmem,
                memory[_B["neuron_config"].base : _B["neuron_config"].base + 512].astype(np.int64),
                memory[_B["neuron_backend_config"].base : _B["neuron_backend_config"].base + 512].astype(np.int64),
            )
            self._weights = None
        return self._params

    def routing(self, memory: np.ndarray) -> RoutingTables:
        if self._routing is None:
            nodes = memory[_B["crossbar_node"].base : _B["crossbar_node"].base + 480].reshape(20, 12, 2).astype(np.int64)
            drivers = self._driver_words(memory)
            self._routing = RoutingTables(
                node_mask=nodes[:, :, 0] & 0xFFFF,
                node_target=(nodes[:, :, 0] >> 16) & 0xFFFF,
                node_enable=(nodes[:, :, 1] & 1).astype(bool),
                bus_enable=(memory[_B["padi_bus_config"].base : _B["padi_bus_config"].base + 8] & 1).astype(bool),
                receiver_enable=(drivers & 1).astype(bool),
                row_select_mask=(drivers >> 5) & 31,
                hagen_driver=((drivers >> 10) & 1).astype(bool) & ((drivers >> 11) & 1).astype(bool),
            )
        return self._routing

    @staticmethod
    def _driver_words(memory: np.ndarray) -> np.ndarray:
        return memory[_B["synapse_driver_config"].base : _B["synapse_driver_config"].base + 256].astype(np.int64)

    @staticmethod
    def _synapses(memory: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        base = _B["synapse_quad"].base
        weights = memory[base : base + 32768].view(np.uint8).reshape(2, 256, 256) & 63
        labels = memory[base + 32768 : base + 65536].view(np.uint8).reshape(2, 256, 256) & 63
        return weights, labels

    def hagen_weights(self, memory: np.ndarray, params: NeuronParams) -> np.ndarray:
        """Effective hagen weights (see :func:`.analog.hagen_weights`), cached until the synapses, the neuron
        parameters or the drivers change; their coefficients are kept while only the synapses change."""
        if self._weights is None:
            coefficients = self._coefficients
            if coefficients is None or coefficients[0] is not params:
                coefficients = self._coefficients = (params, hagen_coefficients(self.config, self.pattern, params, self._driver_words(memory)))
            base = _B["synapse_quad"].base
            raw = memory[base : base + 32768].view(np.uint8).reshape(2, 256, 256)  # weight bits 5..0 (masked inside)
            self._weights = hagen_weights(raw, coefficients[1])
        return self._weights

    # ---------------------------------------------------------------------------------------- routing
    def _route(self, run: DynamicsInput, tables: RoutingTables, counters_on: bool, extra: tuple[np.ndarray, ...] | None) -> tuple[_Events, np.ndarray, np.ndarray, list[np.ndarray]]:
        """Route FPGA, injected and background events to drivers; return recorded (label, time) and output times."""
        n_words = run.spike_labels.shape[0]
        slot_ok = np.arange(3)[None, :] < run.spike_counts[:, None]
        labels3 = run.spike_labels
        if n_words and extra is None and run.inject_label.size == 0 and not counters_on and not tables.any_multiple:
            # hot path: one table lookup per label, no per-output expansion
            drivers3 = tables.fpga_driver[labels3]
            hit = slot_ok & (drivers3 >= 0)
            flat = np.flatnonzero(hit.ravel())
            word = flat // 3
            events = _Events(run.spike_instr[word], run.spike_time[word] + (flat % 3) / 3.0, drivers3.ravel()[flat].astype(np.int64), labels3.ravel()[flat])
            recorded = tables.fpga_recorded[labels3] & slot_ok
            if recorded.any():
                rec = np.flatnonzero(recorded.ravel())
                return events, labels3.ravel()[rec].astype(np.int64), run.spike_time[rec // 3] + (rec % 3) / 3.0, []
            return events, np.zeros(0, np.int64), np.zeros(0), []
        flat = np.flatnonzero(slot_ok.ravel())
        instr = np.concatenate((run.spike_instr[flat // 3], run.inject_instr))
        time = np.concatenate((run.spike_time[flat // 3] + (flat % 3) / 3.0, run.inject_time))
        label = np.concatenate((labels3.ravel()[flat], run.inject_label)).astype(np.int64)
        inputs = FPGA_INPUT + (label >> 14)
        if extra is not None:
            instr = np.concatenate((instr, extra[0]))
            time = np.concatenate((time, extra[1]))
            label = np.concatenate((label, extra[2]))
            inputs = np.concatenate((inputs, extra[3]))
        order = np.lexsort((time, instr))
        instr, time, label, inputs = instr[order], time[order], label[order], inputs[order]
        src, drivers, per_output = tables.route(inputs, label)
        keep = np.argsort(src, kind="stable")
        src, drivers = src[keep], drivers[keep]
        events = _Events(instr[src], time[src], drivers, label[src])
        rec = np.concatenate(per_output[8:12])
        return events, label[rec], time[rec], [time[i] for i in per_output]

    # ------------------------------------------------------------------------------------------- run
    def run(self, run: DynamicsInput, memory: np.ndarray) -> DynamicsOutput:
        """Simulate one run; return CADC conversions, recorded spikes, MADC samples, counter values."""
        background_on = background_enabled(memory)
        madc_busy = self.madc_active or bool(run.madc_start.any())
        nothing = (
            run.spike_labels.shape[0] == 0 and run.inject_label.size == 0 and run.reset_instr.size == 0
            and run.conv_instr.size == 0 and not madc_busy and not background_on and run.read_counter_times.size == 0
        )
        # CapMem-derived parameters are sampled once per run, at its first activity: a run that starts
        # with a settling wait (after CapMem writes) must see the settled values
        activity = [t.min() for t in (run.spike_time, run.inject_time, run.reset_time, run.conv_time) if t.size]
        params = self.params(memory, min(activity) if activity else run.t_begin)
        quiet = self._quiet(params)
        if nothing and quiet:
            return _empty_output()
        tables = self.routing(memory)
        counter_cfg = int(memory[_B["crossbar_output_config"].base])
        counters_on = (counter_cfg & 0xFFF) != 0
        output_times: list[np.ndarray] = []
        if (
            run.spike_labels.shape[0] and run.inject_label.size == 0 and not counters_on and not background_on
            and not madc_busy and self._linear_neurons(params) and not tables.any_multiple
        ):
            # hot path of hagen programs: everything per SPIKES word, one table lookup per label
            drivers3 = np.take(tables.fpga_hagen, run.spike_labels)
            # unused slots hold label 0 (anything else is rejected as malformed): activation 0
            if drivers3.max() < tables.NOT_HAGEN or not ((drivers3 == tables.NOT_HAGEN) & _slot_ok(run)).any():
                samples = self._hagen_run(run, None, params, memory, drivers3)
                rec_labels, rec_times = np.zeros(0, np.int64), np.zeros(0)
                if tables.any_fpga_recorded:
                    recorded = tables.fpga_recorded[run.spike_labels] & _slot_ok(run)
                    rec = np.flatnonzero(recorded.ravel())
                    rec_labels = run.spike_labels.ravel()[rec].astype(np.int64)
                    rec_times = run.spike_time[rec // 3] + (rec % 3) / 3.0
                return self._finish(memory, run, samples, rec_labels, rec_times, output_times, counters_on, counter_cfg)
        extra = None
        if background_on:
            bg_words = memory[_B["background_spike_source"].base : _B["background_spike_source"].last_address + 1].reshape(8, 3).astype(np.int64)
            extra = self._background_events(bg_words, run.t_begin, run.t_end)
        events, rec_labels, rec_times, output_times = self._route(run, tables, counters_on, extra)

        drivers = self._driver_words(memory)
        hagen_driver = ((drivers >> 10) & 1).astype(bool) & ((drivers >> 11) & 1).astype(bool)
        hit_hemispheres = np.zeros(2, dtype=bool)
        if events.driver.size:
            hit_hemispheres[events.driver.min() // 128] = True
            hit_hemispheres[events.driver.max() // 128] = True
        fast = not madc_busy and not background_on and bool(hagen_driver[events.driver].all()) and self._linear_neurons(params, hit_hemispheres)
        if fast:
            samples = self._hagen_run(run, events, params, memory)
        else:
            samples, spikes_out, madc_out, neuron_outputs = self._stepped_run(run, events, params, memory, tables)
            if neuron_outputs:
                output_times = [np.concatenate((a, b)) for a, b in zip(output_times, neuron_outputs)] if output_times else neuron_outputs
            return self._finish(memory, run, samples, np.concatenate((rec_labels, spikes_out[0])), np.concatenate((rec_times, spikes_out[1])),
                                output_times, counters_on, counter_cfg, madc_out)
        return self._finish(memory, run, samples, rec_labels, rec_times, output_times, counters_on, counter_cfg)

    def _linear_neurons(self, params: NeuronParams, hemispheres: np.ndarray | None = None) -> bool:
        """Whether the membranes are linear in the inputs: nobody can fire, receiving membranes (of the given
        hemispheres, default both) do not leak, no synaptic current is flowing."""
        self._derived(params)
        _, nonlinear, _, _, nonlinear_any = self._derived_cache
        if hemispheres is None:
            receiving_linear = not nonlinear_any
        else:
            receiving_linear = not bool((hemispheres & nonlinear).any())
        return receiving_linear and self._quiet(params) and not self.currents_flowing()

    def adapting(self) -> bool:
        """Whether some neuron's adaptation current is not zero (decays keep a zero at zero)."""
        if self._adapting is None:  # known since the last stepped run (the only place it grows)
            self._adapting = bool(self.w_adapt.any())
        return self._adapting

    def currents_flowing(self) -> bool:
        """Whether a synaptic current is still flowing into some membrane."""
        if self._currents is None:  # known since the last stepped run (the only place they change)
            self._currents = bool(np.abs(self.i_exc).max() > 1e-9 or np.abs(self.i_inh).max() > 1e-9)
        return self._currents

    def _derived(self, params: NeuronParams) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """What depends on ``params`` alone, cached per parameter set: per hemisphere whether a receiving
        membrane leaks, fires, adapts or runs away; and the relaxation (rate, target) of every membrane."""
        cached = self._derived_cache
        if cached is None or cached[0] is not params:
            receiving = params.exc_input | params.inh_input
            nonlinear = (receiving & (params.leak | params.threshold | params.adaptation | params.exponential)).reshape(2, 256).any(axis=1)
            leak = np.isfinite(params.tau_mem_us)
            rate = np.where(leak, 1.0 / np.where(leak, params.tau_mem_us, 1.0), self.parasitic_rate * CYCLES_PER_US)
            target = np.where(leak, params.v_leak, params.v_reset)
            for array in (nonlinear, rate, target):
                array.flags.writeable = False
            # and, as plain flags for the per-program checks: can any neuron fire, is any hemisphere nonlinear
            cached = self._derived_cache = (params, nonlinear, (rate, target), bool(params.threshold.any()), bool(nonlinear.any()))
        return cached[1], cached[2]

    def _finish(self, memory, run, samples, labels, times, output_times, counters_on, counter_cfg, madc_out=None) -> DynamicsOutput:
        if madc_out is None:
            madc_out = (np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64))
        recording = bool(memory[_B["event_recording_config"].base] & 1)
        if not recording:
            labels, times = labels[:0], times[:0]
        labels, times, madc_out = self._keep_records(labels, times, madc_out)
        counter_values = np.zeros((run.read_counter_times.size, 12), dtype=np.uint32)
        if counters_on and output_times:
            enabled = [(counter_cfg >> o) & 1 for o in range(12)]
            for o in range(12):  # twelve outputs
                if not enabled[o] or output_times[o].size == 0:
                    counter_values[:, o] = self.counters[o] & 0xFFFF_FFFF
                    continue
                t = np.sort(output_times[o])
                counter_values[:, o] = (self.counters[o] + np.searchsorted(t, run.read_counter_times, side="right")) & 0xFFFF_FFFF
                self.counters[o] += t.size
        else:
            counter_values[:] = (self.counters & 0xFFFF_FFFF).astype(np.uint32)[None, :]
        return DynamicsOutput(samples, labels, times, madc_out[0], madc_out[1], madc_out[2], counter_values)

    def _quiet(self, params: NeuronParams) -> bool:
        self._derived(params)
        if not self._derived_cache[3]:  # nobody can fire
            return True
        return not bool((params.threshold & ~quiet_mask(self, params)).any())

    # ------------------------------------------------------------------------------ background sources
    def _background_events(self, words: np.ndarray, t0: float, t1: float) -> tuple[np.ndarray, ...]:
        instr, times, labels, inputs = [], [], [], []
        for s in np.flatnonzero(words[:, 0] & 1):  # at most 8 sources
            w0, label_word = int(words[s, 0]), int(words[s, 2])
            period = max((w0 >> 16) & 0xFFFF, 1)
            origin = self.background_origin[s]
            first = max(math.ceil((t0 - origin) / period), 1)
            last = math.floor((t1 - origin - 1e-9) / period)
            if last < first:
                continue
            ticks = origin + period * np.arange(first, last + 1, dtype=np.float64)
            rng = self.background_rng[s]
            if (w0 >> 1) & 1:
                probability = (((w0 >> 8) & 0xFF) + 1) / 256.0
                ticks = ticks[rng.random(ticks.size) < probability]
            label = label_word & 0xFFFF
            mask = (label_word >> 16) & 0xFF
            lab = np.full(ticks.size, label, dtype=np.int64)
            if mask:
                lab = (lab & ~mask) | (rng.integers(0, 256, ticks.size) & mask)
            times.append(ticks)
            labels.append(lab)
            inputs.append(np.full(ticks.size, 12 + s, dtype=np.int64))
            instr.append(np.full(ticks.size, -1, dtype=np.int64))
        if not times:
            empty = np.zeros(0, np.int64)
            return empty, np.zeros(0), empty, empty
        return np.concatenate(instr), np.concatenate(times), np.concatenate(labels), np.concatenate(inputs)

    # --------------------------------------------------------------------------------------- readout
    def _readout(self, memory: np.ndarray, rows: np.ndarray, v: np.ndarray, params: NeuronParams) -> np.ndarray:
        """CADC samples (uint8) of membranes ``v`` (n, 256) read through the CADC rows ``rows`` (n,).

        sample = clip(floor(128 + channel offset + V_reset + sat(V - V_reset) + noise), 0, 255).
        """
        if v.shape[0] == 0:
            return np.zeros((0, 256), np.uint8)
        hemisphere = rows // 2
        cfg = self.config
        v_reset = params.v_reset.reshape(2, 256).astype(np.float32)
        knee = self.pattern.knee.reshape(2, 256)
        swing = v.astype(np.float32, copy=False)
        for h in (0, 1):
            sel = hemisphere == h
            if sel.any():
                if sel.all():
                    swing = saturate(swing, knee[h], cfg.saturation_span_lsb)
                else:
                    swing[sel] = saturate(swing[sel], knee[h], cfg.saturation_span_lsb)
        offsets = memory[_B["cadc_channel_config"].base : _B["cadc_channel_config"].base + 1024].astype(np.uint8).view(np.int8)
        baseline = (offsets.reshape(4, 256).astype(np.float32) + np.float32(128.0 + _FLOOR_TOLERANCE))
        baseline[0:2] += v_reset[0]
        baseline[2:4] += v_reset[1]
        if cfg.noise_lsb > 0:
            swing += self.noise.normal(swing.shape, cfg.noise_lsb)
        uniform = bool((rows == rows[0]).all())
        swing += baseline[rows[0]] if uniform else baseline[rows]
        np.clip(swing, 0.0, 255.0, out=swing)
        samples = swing.astype(np.uint8)
        enabled = (memory[_B["cadc_config"].base + hemisphere] & 1).astype(bool)
        if not enabled.all():
            samples[~enabled] = 0
        return samples

    # ------------------------------------------------------------------------------ hagen fast path
    def _hagen_run(self, run: DynamicsInput, events: _Events | None, params: NeuronParams, memory: np.ndarray,
                   drivers3: np.ndarray | None = None) -> np.ndarray:
        """Closed-form run: linear membranes, every event a hagen pulse. Returns the CADC samples.

        The events are either routed (``events``) or the run's FPGA labels with their hagen driver per
        label slot (``drivers3``, (n_words, 3), 256 where none).
        """
        cfg = self.config
        n_conv = run.conv_instr.size
        weights = self.hagen_weights(memory, params)
        # boundaries (neuron resets and conversions) in program order; segment k lies before boundary k
        b_instr = np.concatenate((run.reset_instr, run.conv_instr))
        b_time = np.concatenate((run.reset_time, run.conv_time))
        b_quads = np.concatenate((run.reset_quadrants, np.zeros(n_conv, np.int64)))
        order = np.argsort(b_instr, kind="stable")
        b_instr, b_time, b_quads = b_instr[order], b_time[order], b_quads[order]
        n_b = b_instr.size
        conv_pos = np.argsort(order)[run.reset_instr.size :]  # position of each conversion among boundaries
        seg_end_time = np.concatenate((b_time, [run.t_end]))

        if events is None:
            assert drivers3 is not None
            charge_rows, ne_seg = self._accumulate_words(run, b_instr, seg_end_time, weights, drivers3)
        else:
            charge_rows, ne_seg = self._accumulate(events, b_instr, seg_end_time, weights)
        # windows: (conversions + one final state window) x quadrants
        w_pos = np.concatenate((conv_pos, [n_b]))
        w_time = np.concatenate((run.conv_time, [run.t_end]))
        n_w = w_pos.size
        start_pos = np.full((n_w, 4), -1, dtype=np.int64)
        for q in range(4):  # four quadrants
            reset_pos = np.flatnonzero((b_quads >> q) & 1)
            if reset_pos.size:
                k = np.searchsorted(reset_pos, w_pos, side="left") - 1
                start_pos[:, q] = np.where(k >= 0, reset_pos[np.maximum(k, 0)], -1)
        from_reset = start_pos >= 0
        start_time = np.where(from_reset, seg_end_time[np.maximum(start_pos, 0)] + cfg.neuron_reset_cycles, self.t_state)
        lo = np.searchsorted(ne_seg, start_pos + 1, side="left")
        hi = np.searchsorted(ne_seg, w_pos, side="right")[:, None] - 1 + np.zeros((1, 4), np.int64)

        rate, v_leak = self._relaxation(params)
        rate = rate / CYCLES_PER_US
        v_reset = params.v_reset
        conv_h = run.conv_row // 2
        samples = np.zeros((n_conv, 256), np.uint8)
        for h in (0, 1):  # two synrams
            sel = np.flatnonzero(np.concatenate((conv_h == h, [True])))
            quads = [2 * h, 2 * h + 1]
            cols = slice(256 * h, 256 * (h + 1))
            swing = self._window_charge(charge_rows[h], ne_seg, seg_end_time, lo[sel][:, quads], hi[sel][:, quads], w_time[sel])
            # relaxation of the starting membrane towards v_leak (uniform rate: one factor per window half)
            for half, q in enumerate(quads):
                c = slice(128 * half, 128 * (half + 1))
                j = np.arange(256 * h + 128 * half, 256 * h + 128 * (half + 1))
                dt = w_time[sel] - start_time[sel, q]
                r = rate[j]
                reset = from_reset[sel, q]
                if np.all(r == r[0]):
                    # one relaxation factor per window: drift = (target - v_reset) (1 - f)
                    loss = 1.0 - np.exp(-dt * r[0])
                    target = v_leak[j] - v_reset[j]
                    if np.any(loss[reset] != 0.0) and np.any(target != 0.0):
                        swing[reset, c] += np.outer(loss[reset], target).astype(np.float32)
                else:
                    f = np.exp(-dt[reset, None] * r[None, :])
                    swing[reset, c] += ((v_leak[j] - v_reset[j])[None, :] * (1.0 - f)).astype(np.float32)
                if not reset.all():  # windows that start from the stored membrane instead of a reset
                    keep = ~reset
                    f = np.exp(-dt[keep, None] * r[None, :])
                    v_start = self.v[j][None, :]
                    swing[keep, c] += (v_start - v_reset[j] + (v_leak[j] - v_start) * (1.0 - f)).astype(np.float32)
            # final state of this hemisphere, then the conversions
            self.v[cols] = v_reset[cols] + swing[-1].astype(np.float64)
            conv_sel = sel[:-1]
            if conv_sel.size:
                samples[conv_sel] = self._readout(memory, run.conv_row[conv_sel], swing[:-1], params)
        decay = run.t_end - self.t_state
        self.t_state = run.t_end
        self.w_adapt *= np.exp(-decay / (params.tau_adaptation_us * CYCLES_PER_US))
        return samples

    def _accumulate(self, events: _Events, b_instr: np.ndarray, seg_end_time: np.ndarray, weights: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        """Membrane charge per non-empty segment and column, per synram: [(n_ne, 256) float32] * 2, and the
        segment numbers of the non-empty segments."""
        cfg = self.config
        if events.driver.size == 0:
            return [np.zeros((0, 256), np.float32)] * 2, np.zeros(0, np.int64)
        seg = np.searchsorted(b_instr, events.instr, side="left")
        activation = (events.label & 31).astype(np.float32)
        if cfg.padi_dead_cycles > 0:
            activation *= self._padi_keep(events)
        if self.parasitic_rate > 0:
            activation *= np.exp(-(seg_end_time[seg] - events.time) * self.parasitic_rate).astype(np.float32)
        if np.any(seg[1:] < seg[:-1]):
            order = np.argsort(seg, kind="stable")
            seg, activation, driver = seg[order], activation[order], events.driver[order]
        else:
            driver = events.driver
        new = np.concatenate(([True], seg[1:] != seg[:-1]))
        ne_seg = seg[new]
        compressed = np.cumsum(new) - 1
        n_ne = ne_seg.size
        effective = np.bincount(compressed * 256 + driver, weights=activation, minlength=n_ne * 256).reshape(n_ne, 256)
        rows = []
        for h in (0, 1):  # one matmul per synram
            e = effective[:, 128 * h : 128 * (h + 1)]
            if not e.any():
                rows.append(np.zeros((n_ne, 256), np.float32))
                continue
            rows.append(np.ascontiguousarray(e, dtype=np.float32) @ weights[h])
        return rows, ne_seg

    def _accumulate_words(self, run: DynamicsInput, b_instr: np.ndarray, seg_end_time: np.ndarray, weights: np.ndarray,
                          drivers3: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        """:meth:`_accumulate` for FPGA events given per SPIKES word: ``drivers3`` (n, 3) holds the hagen
        driver of each label (256: none)."""
        cfg = self.config
        # boundaries strictly before each word: cumulative count over the run's instruction range
        first = int(min(run.spike_instr[0], b_instr[0])) if b_instr.size else int(run.spike_instr[0])
        last = int(max(run.spike_instr[-1], b_instr[-1])) if b_instr.size else int(run.spike_instr[-1])
        before = np.cumsum(np.bincount(b_instr - first, minlength=last - first + 1))
        seg = before[run.spike_instr - first] - 0
        activation = (run.spike_labels & np.uint16(31)).astype(np.float32)  # unused slots: label 0
        if cfg.padi_dead_cycles > 0 and self._padi_collisions(run, drivers3, self._routing):
            flat = np.flatnonzero(_slot_ok(run).ravel() & (drivers3.ravel() < 256))
            word = flat // 3
            events = _Events(run.spike_instr[word], run.spike_time[word] + (flat % 3) / 3.0, drivers3.ravel()[flat].astype(np.int64), run.spike_labels.ravel()[flat])
            activation.ravel()[flat] *= self._padi_keep(events)
        if self.parasitic_rate > 0:
            activation *= np.exp(-(seg_end_time[seg] - run.spike_time) * self.parasitic_rate).astype(np.float32)[:, None]
        if seg.size > 1 and np.any(seg[1:] < seg[:-1]):
            order = np.argsort(seg, kind="stable")
            seg, activation, drivers3 = seg[order], activation[order], drivers3[order]
        new = np.empty(seg.size, dtype=bool)
        new[:1] = True
        np.not_equal(seg[1:], seg[:-1], out=new[1:])
        ne_seg = seg[new]
        compressed = np.cumsum(new) - 1
        n_ne = ne_seg.size
        # effective activation per (segment, driver); column 256 collects labels that reach no driver
        effective = np.zeros((n_ne, 257), np.float32)
        np.add.at(effective.reshape(-1), ((compressed * 257)[:, None] + drivers3).reshape(-1), activation.reshape(-1))
        rows = []
        for h in (0, 1):  # one matmul per synram
            rows.append(effective[:, 128 * h : 128 * (h + 1)] @ weights[h])
        return rows, ne_seg

    def _padi_collisions(self, run: DynamicsInput, drivers3: np.ndarray, tables: RoutingTables) -> bool:
        """Cheap test whether any two events could share a PADI bus closer than ``padi_dead_cycles``:
        consecutive SPIKES words far enough apart, and no word with two labels for one bus."""
        if run.spike_time.size > 1 and np.diff(run.spike_time).min() < self.config.padi_dead_cycles:
            return True
        bus = np.take(tables.fpga_bus, run.spike_labels)
        same = (bus[:, 0] == bus[:, 1]) | (bus[:, 0] == bus[:, 2]) | (bus[:, 1] == bus[:, 2])
        same &= (bus[:, 0] < 8) | (bus[:, 1] < 8)  # 8: no driver reached
        partial = np.flatnonzero(same & (run.spike_counts < 3))
        if partial.size:  # unused slots (label 0) of partly filled words do not collide
            ok = (np.arange(3)[None, :] < run.spike_counts[partial][:, None]) & (bus[partial] < 8)
            b = np.where(ok, bus[partial], np.arange(8, 11))
            same[partial] = (b[:, 0] == b[:, 1]) | (b[:, 0] == b[:, 2]) | (b[:, 1] == b[:, 2])
        return bool(same.any())

    def _padi_keep(self, events: _Events) -> np.ndarray:
        """Keep factor (0/1) per event: a bus loses an event with probability 1 - gap/dead when the gap to
        the previous event on the same bus is shorter than ``padi_dead_cycles``."""
        dead = self.config.padi_dead_cycles
        keep = np.ones(events.driver.size, np.float32)
        bus = (events.driver // 128) * 4 + events.driver % 4
        gaps = np.diff(events.time)
        if gaps.size == 0 or gaps.min() * 1.0 >= dead and np.all(bus[1:] != bus[:-1]):
            # cheap exit: consecutive events at least `dead` apart cannot collide on any bus
            if gaps.size == 0 or gaps.min() >= dead:
                return keep
        for b in np.unique(bus):  # at most 8 buses
            index = np.flatnonzero(bus == b)
            if index.size < 2:
                continue
            gap = np.diff(events.time[index])
            p_loss = np.clip(1.0 - gap / dead, 0.0, 1.0)
            lost = self.rng.random(gap.size) < p_loss
            keep[index[1:][lost]] = 0.0
        return keep

    def _window_charge(self, rows: np.ndarray, ne_seg: np.ndarray, seg_end_time: np.ndarray, lo: np.ndarray, hi: np.ndarray, t_read: np.ndarray) -> np.ndarray:
        """Charge (LSB) collected by each window: the non-empty segments lo..hi (per column half), each
        decayed by the parasitic leak from its segment end to the read time. Returns (n_windows, 256) float32."""
        n_w = t_read.size
        n_ne = rows.shape[0]
        rate = self.parasitic_rate
        if n_ne == 0:
            return np.zeros((n_w, 256), np.float32)
        seg_time = seg_end_time[ne_seg]
        if np.all(hi - lo <= 0):
            # every window holds at most one non-empty segment: a plain row gather
            padded = np.concatenate((rows, np.zeros((1, 256), np.float32)))
            index = np.where(hi == lo, lo, n_ne)
            if np.array_equal(index[:, 0], index[:, 1]):
                out = padded[index[:, 0]]
                if rate > 0:
                    out *= _leak_factor(t_read, seg_time, index[:, 0], n_ne, rate)[:, None]
                return out
            out = np.empty((n_w, 256), np.float32)
            for half in (0, 1):
                cols = slice(128 * half, 128 * (half + 1))
                out[:, cols] = padded[index[:, half], cols]
                if rate > 0:
                    out[:, cols] *= _leak_factor(t_read, seg_time, index[:, half], n_ne, rate)[:, None]
            return out
        # general case: exponentially weighted cumulative sums in float64
        reference = seg_time[0]
        exponent = (seg_time - reference) * rate
        if exponent.max(initial=0.0) > 600.0:  # too long to weight in one go: sum each window on its own
            out = np.zeros((n_w, 256), np.float32)
            for w in range(n_w):  # only for programs spanning > 600 parasitic time constants
                for half in (0, 1):
                    cols = slice(128 * half, 128 * (half + 1))
                    k = np.arange(lo[w, half], hi[w, half] + 1)
                    if k.size:
                        f = np.exp(-(t_read[w] - seg_time[k]) * rate)
                        out[w, cols] = (rows[k, cols] * f[:, None]).sum(0)
            return out
        weighted = rows.astype(np.float64)
        if rate > 0:
            weighted *= np.exp(exponent)[:, None]
        total = np.concatenate((np.zeros((1, 256)), np.cumsum(weighted, axis=0)))
        out = np.empty((n_w, 256), np.float32)
        for half in (0, 1):
            cols = slice(128 * half, 128 * (half + 1))
            a, b = lo[:, half], hi[:, half]
            value = total[np.maximum(b + 1, 0), cols] - total[np.minimum(a, n_ne), cols]
            value[b < a] = 0.0
            if rate > 0:
                value *= np.exp(-(t_read - reference) * rate)[:, None]
            out[:, cols] = value
        return out

    # ------------------------------------------------------------------------------ stepped (spiking)
    def _relax(self, params: NeuronParams, t: float) -> None:
        """Advance the state without input from ``t_state`` to ``t`` (closed form)."""
        gap = t - self.t_state
        if gap <= 0:
            return
        gap_us = gap / CYCLES_PER_US
        rate, target = self._relaxation(params)
        self.v = target + (self.v - target) * np.exp(-gap_us * rate)
        self.i_exc *= np.exp(-gap_us / params.tau_exc_us)
        self.i_inh *= np.exp(-gap_us / params.tau_inh_us)
        self.w_adapt *= np.exp(-gap_us / params.tau_adaptation_us)
        self.t_state = t

    def _relaxation(self, params: NeuronParams) -> tuple[np.ndarray, np.ndarray]:
        """Per neuron the membrane's relaxation rate (1/us) and target: the leak towards v_leak with tau_mem,
        or, with the leak disabled, the slow parasitic loss of integrated charge towards v_reset (cached per
        parameter set; read-only use)."""
        return self._derived(params)[1]

    def _input_matrix(self, keys: np.ndarray, params: NeuronParams, memory: np.ndarray) -> np.ndarray:
        """Effect of one event per key ``driver * 64 + label[5:0]``: (K, 3, 256) float32 over the columns of the
        driver's synram: excitatory and inhibitory current jumps (LSB/us) and direct membrane charge (LSB)."""
        cfg = self.config
        driver = keys // 64
        label = keys % 64
        h, d = driver // 128, driver % 128
        weights, labels = self._synapses(memory)
        words = self._driver_words(memory)[driver]
        hagen = ((words >> 10) & 1).astype(bool) & ((words >> 11) & 1).astype(bool)
        rows = np.stack((2 * d, 2 * d + 1), axis=1)  # (K, 2)
        w = weights[h[:, None], rows].astype(np.float32) * self.pattern.synapse[h[:, None], rows]  # (K, 2, 256)
        match = labels[h[:, None], rows] == label[:, None, None]
        modes = np.stack(((words >> 1) & 3, (words >> 3) & 3), axis=1)  # (K, 2)
        bus = h * 4 + d % 4
        extension = (memory[_B["padi_bus_config"].base + bus] >> 1) & 15
        scale = (driver_scale(cfg, self.pattern, self._driver_words(memory))[driver] * (1.0 + cfg.pulse_extension_step * extension)).astype(np.float32)
        spiking = np.where(match, w, 0.0) * scale[:, None, None]
        exc = (spiking * (modes & 1)[:, :, None]).sum(1)
        inh = (spiking * ((modes >> 1) & 1)[:, :, None]).sum(1)
        columns = h[:, None] * 256 + np.arange(256)[None, :]
        dt_us = cfg.dt_us
        exc_jump = params.spike_exc[columns] * (1.0 - np.exp(-dt_us / params.tau_exc_us[columns])) / dt_us
        inh_jump = params.spike_inh[columns] * (1.0 - np.exp(-dt_us / params.tau_inh_us[columns])) / dt_us
        out = np.zeros((keys.size, 3, 256), np.float32)
        out[:, 0] = np.where(hagen[:, None], 0.0, exc * exc_jump)
        out[:, 1] = np.where(hagen[:, None], 0.0, inh * inh_jump)
        if hagen.any():
            hw = self.hagen_weights(memory, params)
            out[hagen, 2] = (label[hagen] & 31)[:, None].astype(np.float32) * hw[h[hagen], d[hagen]]
        return out

    def _neuron_labels(self, params: NeuronParams) -> tuple[np.ndarray, np.ndarray]:
        neuron = np.arange(N_NEURONS)
        output = (neuron // 256) * 4 + (neuron % 256) // 64
        return output, (output << 8) | params.address_out

    def _stepped_run(self, run: DynamicsInput, events: _Events, params: NeuronParams, memory: np.ndarray, tables: RoutingTables):
        """Time-stepped simulation of all 512 neurons over the run (step ``dt_us``)."""
        cfg = self.config
        dt = self.dt_cycles
        dt_us = cfg.dt_us
        t0 = run.t_begin
        self._relax(params, t0)
        n_steps = max(1, int(math.ceil((run.t_end - t0) / dt)))

        def step_of(t: np.ndarray) -> np.ndarray:
            return np.clip(np.floor((np.asarray(t, dtype=np.float64) - t0) / dt).astype(np.int64), 0, n_steps - 1)

        # feed-forward input: events sorted by step, one effect row per (driver, label) key
        ev_step = step_of(events.time)
        order = np.argsort(ev_step, kind="stable")
        ev_step = ev_step[order]
        keys = (events.driver * 64 + (events.label & 63))[order]
        ev_h = (events.driver // 128)[order]
        ukeys, inverse = np.unique(keys, return_inverse=True)
        effect = self._input_matrix(ukeys, params, memory) if ukeys.size else np.zeros((0, 3, 256), np.float32)
        key_h = (ukeys // 64) // 128

        # recurrence: what one spike of each neuron does (through crossbar inputs 0..7)
        output, label = self._neuron_labels(params)
        emits = params.fire & params.spike_out
        masks = tables.crossbar[output, label]
        recurrent = None
        latency = max(1, int(round(cfg.recurrent_latency_cycles / dt)))
        if emits.any():
            src, drv, _ = tables.route(output[emits], label[emits])
            if src.size:
                neurons = np.flatnonzero(emits)[src]
                rkeys = drv * 64 + (label[neurons] & 63)
                rk, rinv = np.unique(rkeys, return_inverse=True)
                reffect = self._input_matrix(rk, params, memory)
                recurrent = np.zeros((N_NEURONS, 3, 2, 256), np.float32)
                np.add.at(recurrent, (neurons, slice(None), drv // 128), reffect[rinv])
                recurrent = recurrent.reshape(N_NEURONS, 3, 512)
        ring = np.zeros((latency + 1, 3, 512))
        ring_pending = np.zeros(latency + 1, dtype=bool)

        # per-neuron constants of the exponential-Euler step
        rate, v_rest = self._relaxation(params)
        em = np.exp(-dt_us * rate)
        gin = np.where(rate > 0, (1.0 - em) / np.where(rate > 0, rate, 1.0), dt_us)
        e_exc = np.exp(-dt_us / params.tau_exc_us)
        e_inh = np.exp(-dt_us / params.tau_inh_us)
        v_leak, v_reset, v_th = v_rest, params.v_reset, np.where(params.threshold, params.v_threshold, np.inf)
        refractory_steps = np.ceil(params.refractory_cycles / dt).astype(np.int64)
        any_adapt = bool(params.adaptation.any())
        any_exp = bool(params.exponential.any())
        i_off = params.offset_current.copy()

        # scheduled actions
        reset_step = step_of(run.reset_time)
        reset_at: dict[int, int] = {}
        for s, q in zip(reset_step.tolist(), run.reset_quadrants.tolist()):  # one entry per reset instruction
            reset_at[s] = reset_at.get(s, 0) | q
        quadrant_of = (np.arange(N_NEURONS) // 256) * 2 + (np.arange(N_NEURONS) % 256) // 128
        conv_step = step_of(run.conv_time)
        conv_at: dict[int, list[int]] = {}
        for i, s in enumerate(conv_step.tolist()):  # one entry per conversion
            conv_at.setdefault(s, []).append(i)
        conv_v = np.zeros((run.conv_instr.size, 256))
        madc_times, madc_channels, madc_neuron, madc_signal = self._madc_schedule(run, memory)
        # the membrane trace only at the steps that the MADC samples (kept within the recording memory), so a
        # long run costs no memory per step
        traced, trace_row = np.unique(np.clip(np.floor((madc_times - t0) / dt).astype(np.int64), 0, n_steps - 1),
                                      return_inverse=True) if madc_times.size else (None, None)
        trace = np.zeros((traced.size, 2)) if traced is not None else None
        traced_steps = traced.tolist() + [n_steps] if traced is not None else [n_steps]
        next_traced, traced_index = traced_steps[0], 0
        spike_steps: list[int] = []
        spike_neurons: list[np.ndarray] = []

        v, i_exc, i_inh, w = self.v, self.i_exc, self.i_inh, self.w_adapt
        self._currents = self._adapting = None  # the synaptic currents and the adaptation change here
        refractory = np.maximum(np.ceil((self.refractory_until - t0) / dt), 0).astype(np.int64)
        any_refractory = bool(refractory.any())
        check_threshold = bool(np.isfinite(v_th).any())
        tmp = np.empty(N_NEURONS)

        # input jumps in blocks of steps (dense per block, built from per-event rows with reduceat)
        block = 1024
        for b0 in range(0, n_steps, block):  # one pass per block of steps
            b1 = min(n_steps, b0 + block)
            lo, hi = np.searchsorted(ev_step, [b0, b1]).tolist()
            jumps = None
            has_input = None
            if hi > lo:
                jumps = np.zeros((b1 - b0, 3, 2, 256), np.float32)
                rel = ev_step[lo:hi] - b0
                if ukeys.size <= 4096:
                    # few distinct (driver, label) keys: event counts per (step, key) times the effect rows
                    counts = np.bincount(rel * ukeys.size + inverse[lo:hi], minlength=(b1 - b0) * ukeys.size)
                    counts = counts.reshape(b1 - b0, ukeys.size).astype(np.float32)
                    for h in (0, 1):
                        kh = key_h == h
                        if kh.any():
                            jumps[:, :, h, :] = (counts[:, kh] @ effect[kh].reshape(-1, 768)).reshape(b1 - b0, 3, 256)
                    has_input = np.zeros(b1 - b0, dtype=bool)
                    has_input[rel] = True
                else:
                    group = rel * 2 + ev_h[lo:hi]
                    g_order = np.argsort(group, kind="stable")
                    group_sorted = group[g_order]
                    starts = np.flatnonzero(np.concatenate(([True], group_sorted[1:] != group_sorted[:-1])))
                    sums = np.add.reduceat(effect[inverse[lo:hi][g_order]], starts, axis=0)
                    g = group_sorted[starts]
                    jumps[g // 2, :, g % 2, :] = sums
                    has_input = np.zeros(b1 - b0, dtype=bool)
                    has_input[g // 2] = True
                jumps = jumps.reshape(b1 - b0, 3, 512)
            for k in range(b0, b1):  # the time step loop
                if k in reset_at:
                    sel = ((reset_at[k] >> quadrant_of) & 1).astype(bool)
                    v[sel] = v_reset[sel]
                    i_exc[sel] = 0.0
                    i_inh[sel] = 0.0
                if has_input is not None and has_input[k - b0]:
                    j = jumps[k - b0]
                    i_exc += j[0]
                    i_inh += j[1]
                    v += j[2]
                slot = k % (latency + 1)
                if ring_pending[slot]:
                    i_exc += ring[slot, 0]
                    i_inh += ring[slot, 1]
                    v += ring[slot, 2]
                    ring[slot] = 0.0
                    ring_pending[slot] = False
                np.subtract(i_exc, i_inh, out=tmp)
                tmp += i_off
                if any_adapt:
                    tmp -= w * params.adaptation
                    w += dt_us / params.tau_adaptation_us * (params.adaptation_a * (v - v_leak) - w) * params.adaptation
                if any_exp:
                    tmp += params.exponential * params.exponential_strength * cfg.exponential_slope_lsb * np.exp(
                        np.minimum((v - params.v_exponential) / cfg.exponential_slope_lsb, 20.0))
                tmp *= gin
                v -= v_leak
                v *= em
                v += v_leak
                v += tmp
                i_exc *= e_exc
                i_inh *= e_inh
                if any_refractory:
                    held = refractory > 0
                    v[held] = v_reset[held]
                    refractory[held] -= 1
                    any_refractory = bool(held.any())
                if check_threshold:
                    spiking = v >= v_th
                    if any_refractory:
                        spiking &= refractory <= 0
                    if spiking.any():
                        fired = np.flatnonzero(spiking)
                        v[fired] = v_reset[fired]
                        refractory[fired] = refractory_steps[fired]
                        any_refractory = True
                        if any_adapt:
                            w[fired] += params.adaptation_b[fired] * params.adaptation[fired]
                        out = fired[params.fire[fired]]
                        if out.size:
                            spike_steps.append(k)
                            spike_neurons.append(out)
                            if recurrent is not None:
                                target = (k + latency) % (latency + 1)
                                ring[target] += recurrent[out].sum(0)
                                ring_pending[target] = True
                if k in conv_at:
                    for i in conv_at[k]:
                        h = int(run.conv_row[i]) // 2
                        conv_v[i] = v[256 * h : 256 * (h + 1)]
                if k == next_traced:
                    trace[traced_index, 0] = self._signal(madc_neuron[0], madc_signal[0], v, i_exc, i_inh, w)
                    trace[traced_index, 1] = self._signal(madc_neuron[1], madc_signal[1], v, i_exc, i_inh, w)
                    traced_index += 1
                    next_traced = traced_steps[traced_index]
        self.t_state = t0 + n_steps * dt
        self.refractory_until = np.where(refractory > 0, self.t_state + refractory * dt, -np.inf)

        # outputs: CADC samples, recorded spikes, MADC samples
        swing = conv_v - v_reset.reshape(2, 256)[run.conv_row // 2]
        samples = self._readout(memory, run.conv_row, swing.astype(np.float32), params)
        if spike_neurons:
            counts = np.array([n.size for n in spike_neurons])
            neurons = np.concatenate(spike_neurons)
            times = t0 + np.repeat(np.array(spike_steps, dtype=np.float64), counts) * dt
        else:
            neurons = np.zeros(0, np.int64)
            times = np.zeros(0)
        emitted = params.spike_out[neurons]
        neurons, times = neurons[emitted], times[emitted]
        outputs_reached = masks[neurons]
        per_output = [times[((outputs_reached >> o) & 1).astype(bool)] for o in range(12)]
        rec_labels, rec_times = [], []
        for o in range(8, 12):  # the four FPGA outputs
            sel = ((outputs_reached >> o) & 1).astype(bool)
            rec_labels.append(label[neurons[sel]])
            rec_times.append(times[sel])
        spikes = (np.concatenate(rec_labels), np.concatenate(rec_times))
        madc = self._madc_samples(madc_times, madc_channels, madc_neuron, madc_signal, trace, trace_row, params)
        return samples, spikes, madc, per_output

    @staticmethod
    def _signal(neuron: int, signal: int, v: np.ndarray, i_exc: np.ndarray, i_inh: np.ndarray, w: np.ndarray) -> float:
        if neuron < 0:
            return 0.0
        if signal == 0:
            return float(v[neuron])
        if signal == 1:
            return float(i_exc[neuron])
        if signal == 2:
            return float(i_inh[neuron])
        return float(w[neuron])

    def _madc_schedule(self, run: DynamicsInput, memory: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[int], list[int]]:
        """Sample times and channels of the MADC within the run; updates the MADC state."""
        base = _B["madc_config"].base
        word0, word1 = int(memory[base]), int(memory[base + 1])
        enabled = bool(word0 & 1)
        dual = bool((word0 >> 1) & 1)
        period = float(max((word0 >> 8) & 0xFFFF, 1))
        number = int(word1)
        selection = memory[_B["readout_source_selection"].base : _B["readout_source_selection"].base + 2].astype(np.int64)
        neuron = [int(s & 511) if (s >> 11) & 1 else -1 for s in selection]
        signal = [int((s >> 9) & 3) for s in selection]
        times: list[np.ndarray] = []
        indices: list[np.ndarray] = []
        budget = self.record_left
        # walk the start/stop commands (one step per command)
        cursor = run.t_begin
        commands = list(zip(run.madc_time.tolist(), run.madc_start.tolist(), run.madc_stop.tolist())) + [(run.t_end, False, False)]
        for t_cmd, start, stop in commands:
            if self.madc_active:
                last = min(t_cmd, run.t_end)
                if self.madc_next < last:
                    n = int(math.ceil((last - self.madc_next) / period))
                    if self.madc_left >= 0:
                        n = min(n, self.madc_left)
                    # only what the recording memory can still hold is materialised (the chip samples on)
                    k = np.arange(min(n, budget))
                    if k.size < n:
                        self.recording_overflow = True
                    budget -= k.size
                    times.append(self.madc_next + k * period)
                    indices.append(self.madc_index + k)
                    self.madc_index += n
                    self.madc_next = self.madc_next + n * period
                    if self.madc_left >= 0:
                        self.madc_left -= n
                        if self.madc_left == 0:
                            self.madc_active = False
            if stop:
                self.madc_active = False
            if start and enabled:
                self.madc_active = True
                self.madc_next = t_cmd
                self.madc_left = number if number > 0 else -1
                self.madc_index = 0
            cursor = t_cmd
        del cursor
        if not times:
            return np.zeros(0), np.zeros(0, np.int64), neuron, signal
        t = np.concatenate(times)
        index = np.concatenate(indices)
        channel = (index % 2) if dual else np.zeros(index.size, np.int64)
        return t, channel.astype(np.int64), neuron, signal

    def _madc_samples(self, times, channels, neuron, signal, trace, trace_row, params):
        """MADC readings at ``times``: sample ``i`` reads row ``trace_row[i]`` of ``trace`` (its time step).

        Converted :data:`_MADC_CHUNK` samples at a time, so a full recording memory needs no temporaries
        per sample beyond the readings (the noise words stay those of one pass: the chunk is a multiple of 4).
        """
        if times.size == 0 or trace is None:
            return np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64)
        cfg = self.config
        observed = np.array([max(n, 0) for n in neuron])  # per channel
        connected = np.array([n >= 0 for n in neuron]) & params.readout[observed]
        is_membrane = np.array([s == 0 for s in signal])
        v_reset_of, knee_of = params.v_reset[observed], self.pattern.knee[observed]
        readings = np.empty(times.size, np.int64)
        for start in range(0, times.size, _MADC_CHUNK):
            part = slice(start, start + _MADC_CHUNK)
            channel = channels[part]
            values = trace[trace_row[part], channel]
            v_reset = v_reset_of[channel]
            knee = knee_of[channel]
            swing = values - v_reset
            excess = np.maximum(np.abs(swing) - knee, 0.0)
            swing = swing - np.copysign(excess * excess / (cfg.saturation_span_lsb + excess), swing)
            reading = np.where(is_membrane[channel], v_reset + swing, values * 10.0)
            madc = 512.0 + cfg.madc_lsb_per_cadc_lsb * np.where(connected[channel], reading, 0.0)
            if cfg.madc_noise_lsb > 0:
                madc += self.noise.normal((madc.size,), cfg.madc_noise_lsb)
            readings[part] = np.clip(np.floor(madc), 0, 1023)
        return readings, times, channels


def _slot_ok(run: DynamicsInput) -> np.ndarray:
    """(n, 3) mask of the used label slots of the run's SPIKES words."""
    return np.arange(3)[None, :] < run.spike_counts[:, None]


_BACKGROUND_ENABLE = slice(_B["background_spike_source"].base, _B["background_spike_source"].last_address + 1, 3)


def background_enabled(memory: np.ndarray) -> bool:
    """Whether any of the 8 background spike sources is enabled (bit 0 of its first word)."""
    return bool((memory[_BACKGROUND_ENABLE] & 1).any())


def quiet_mask(core: AnalogCore, params: NeuronParams) -> np.ndarray:
    """Neurons that cannot reach their threshold without input: below it now and at rest."""
    tau = np.where(np.isfinite(params.tau_mem_us), params.tau_mem_us, 0.0)
    pushing = params.offset_current > 0
    # a neuron pushed by an offset current without a leak to hold it integrates up to the threshold
    rest = np.where(pushing, np.where(tau > 0, params.v_leak + params.offset_current * tau, np.inf), params.v_leak)
    return (core.v < params.v_threshold) & (rest < params.v_threshold)


def _leak_factor(t_read: np.ndarray, seg_time: np.ndarray, index: np.ndarray, n_ne: int, rate: float) -> np.ndarray:
    """Parasitic-leak decay from each window's segment end to its read; 1 for windows without events
    (index n_ne: the zero row), whose segment time would otherwise come from another window."""
    elapsed = np.where(index < n_ne, t_read - seg_time[np.minimum(index, n_ne - 1)], 0.0)
    return np.exp(-np.maximum(elapsed, 0.0) * rate).astype(np.float32)
