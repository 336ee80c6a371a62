"""Spiking programs: a routed network's graph -> configuration, timed events, recordings.

An execution instance made by :func:`bss2.graph.network_to_graph` is configured from its vertices
(crossbar nodes, PADI buses, synapse drivers, synapse views, neuron views with CapMem values, background
sources, readouts) into a :class:`~bss2.hal.ChipConfig`, written differentially through the executor's
per-chip cache. The batch entries then run one after another on a single timeline: entry ``b`` starts at
``b * (runtime + gap)`` cycles with a neuron reset, receives its input events at their times, is sampled
by the CADC every ``period`` cycles and by the MADC if requested, and ends after ``runtime`` cycles.
Recorded events and samples are sliced back per entry (times relative to the entry's start, in FPGA
cycles of 8 ns).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from bss2.graph import (
    BackgroundSpikeSource,
    CADCMembraneReadoutView,
    CrossbarNode,
    DataOutput,
    Graph,
    MADCReadoutView,
    NeuronView,
    PADIBus,
    SynapseArrayView,
    SynapseDriver,
)
from bss2.hal import (
    AtomicNeuronOnDLS,
    BackgroundSpikeSourceConfig,
    CADCConfig,
    CADCOnDLS,
    CapMemBlock,
    CapMemBlockOnDLS,
    ChipConfig,
    MADCConfig,
    MADCOnDLS,
    NeuronBackendConfig,
    NeuronConfig,
    PADIBusConfig,
    ReadoutChannelOnDLS,
    ReadoutSourceSelection,
    SynapseDriverConfig,
    SynapseMatrix,
    SynramOnDLS,
    hagen,
    wire,
)
from bss2.hal import CrossbarNode as CrossbarNodeConfig
from bss2.hal.program import encode_timed_spikes
from bss2.hal.regmap import REGISTER_MAP

from .errors import ExecutionFailed, InputError, UnsupportedGraphError
from .info import ExecutionInfo, InstanceRecord, timed

if TYPE_CHECKING:
    from .executor import JITExecutor

#: Pause between batch entries (cycles) so that activity of one entry has decayed before the next.
ENTRY_GAP_CYCLES = 2500  # 20 µs
_CHIP_RESET = wire.encode_write([REGISTER_MAP["chip_reset"].base], [1])
_NEURON_RESET = REGISTER_MAP["neuron_reset"].base
_MADC_CONTROL = REGISTER_MAP["madc_control"].base


def _integral_times(value: Any) -> np.ndarray:
    """``value`` as a 1-D int64 array of whole cycles; anything else raises :class:`InputError`."""
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as error:
        raise InputError(f"SpikeInput times must be a 1-D sequence of integer cycles: {error}") from None
    array = array.reshape(-1)
    if array.dtype.kind in "iu":
        if array.size and array.dtype.kind == "u" and array.max() > np.iinfo(np.int64).max:
            raise InputError(f"SpikeInput times must be below 2**63 cycles, got {int(array.max())}")
        return array.astype(np.int64)
    if array.dtype.kind == "f" and np.all(np.isfinite(array)) and np.all(array == np.round(array)) \
            and (not array.size or np.abs(array).max() < 2.0**63):
        return array.astype(np.int64)
    bad = array[:3].tolist()
    raise InputError(f"SpikeInput times must be whole numbers of cycles in [0, 2**63), got {array.dtype} values such as {bad}")


@attrs.frozen
class SpikeInput:
    """Events for one batch entry: ``times`` (cycles since the entry's start, >= 0) and 16-bit ``labels``."""

    times: np.ndarray = attrs.field(converter=lambda v: _integral_times(v))
    labels: np.ndarray = attrs.field(converter=lambda v: np.asarray(v).reshape(-1))

    def __attrs_post_init__(self) -> None:
        if self.times.shape != self.labels.shape:
            raise InputError(f"SpikeInput: {self.times.size} times but {self.labels.size} labels")
        if self.labels.size and (self.labels.dtype.kind not in "iu" or self.labels.min() < 0 or self.labels.max() > 0xFFFF):
            raise InputError("SpikeInput labels must be integers in [0, 65535]")
        if self.times.size and self.times.min() < 0:
            raise InputError(f"SpikeInput times must be >= 0 cycles, got {int(self.times.min())}")


@attrs.frozen
class SpikeTrains:
    """Events recorded during one batch entry: ``times`` (cycles since the entry's start) and ``labels``."""

    times: np.ndarray
    labels: np.ndarray


@attrs.frozen
class TimedSamples:
    """ADC samples of one batch entry: ``times`` (cycles since the entry's start, shape (n,)) and
    ``values`` (shape (n, channels); CADC: raw 8-bit samples of the view's columns, MADC: 10-bit)."""

    times: np.ndarray
    values: np.ndarray


def spike_inputs(given: Any, name: str) -> list[SpikeInput]:
    """Normalise the timed-spike input of a graph: one SpikeInput, or a sequence (the batch) of SpikeInput or
    ``(times, labels)`` pairs of 1-D sequences.

    A pair whose two items are themselves 1-D sequences of numbers is refused at the top level: it could be
    one entry's ``(times, labels)`` or a batch of two entries, and reading it either way would silently
    run the wrong experiment.
    """
    if isinstance(given, SpikeInput):
        return [given]
    if not isinstance(given, Sequence) or isinstance(given, (str, bytes)):
        raise InputError(f"{name}: timed spikes must be a SpikeInput or a sequence (batch) of SpikeInput or (times, labels) "
                         f"pairs, got {type(given).__name__}")
    if len(given) == 2 and not any(isinstance(entry, SpikeInput) for entry in given) and all(_flat(entry) for entry in given):
        raise InputError(f"{name}: a pair of 1-D sequences is ambiguous (one entry's (times, labels), or two entries?): "
                         "pass [SpikeInput(times, labels)] for one entry, or a list of SpikeInput for a batch")
    result = []
    for index, entry in enumerate(given):
        if isinstance(entry, SpikeInput):
            result.append(entry)
        elif isinstance(entry, (tuple, list)) and len(entry) == 2 and all(np.ndim(part) == 1 for part in entry):
            try:
                result.append(SpikeInput(entry[0], entry[1]))
            except InputError as error:
                raise InputError(f"{name}: batch entry {index}: {error}") from None
        else:
            raise InputError(f"{name}: batch entry {index} must be a SpikeInput or a (times, labels) pair of 1-D sequences, "
                             f"got {entry!r}")
    return result


def _flat(entry: Any) -> bool:
    """Whether ``entry`` is a 1-D sequence of numbers (not of pairs): a candidate ``times`` or ``labels``."""
    if isinstance(entry, (str, bytes)) or not isinstance(entry, (Sequence, np.ndarray)):
        return False
    try:
        array = np.asarray(entry)
    except ValueError:  # ragged
        return False
    return array.ndim == 1 and array.dtype.kind in "iuf"


# ------------------------------------------------------------------------------------- configuration


@attrs.frozen
class SpikingPlan:
    """What a spiking instance needs besides its configuration."""

    cadc_synrams: tuple[int, ...]
    cadc_period: int
    cadc_outputs: dict[int, tuple[int, np.ndarray]]  # hemisphere -> (DataOutput descriptor, columns)
    madc_output: int | None
    spike_output: int | None
    quadrants: int


def spiking_config(graph: Graph, descriptors: Sequence[int]) -> tuple[ChipConfig, SpikingPlan]:
    """The static configuration of a spiking instance, from its vertices."""
    config = ChipConfig()
    nominal = CapMemBlock.nominal()
    capmem = np.stack([nominal.values.astype(np.int64) for _ in range(4)])  # (block, row, column)
    matrices = {h: [np.zeros((256, 256), np.uint8), np.zeros((256, 256), np.uint8)] for h in (0, 1)}
    cadc_outputs: dict[int, tuple[int, np.ndarray]] = {}
    cadc_period = 0
    madc_output = None
    spike_output = None
    quadrants = 0
    readout_neuron: AtomicNeuronOnDLS | None = None
    for d in descriptors:
        vertex = graph.vertex(d)
        if isinstance(vertex, CrossbarNode):
            config.set(vertex.coordinate, CrossbarNodeConfig(mask=vertex.mask, target=vertex.target, enable=vertex.enable))
        elif isinstance(vertex, PADIBus):
            config.set(vertex.coordinate, PADIBusConfig(enable=True))
        elif isinstance(vertex, SynapseDriver):
            config.set(vertex.coordinate, SynapseDriverConfig(
                enable_receiver=True, row_mode_top=vertex.row_modes[0], row_mode_bottom=vertex.row_modes[1],
                row_select_mask=vertex.row_select_mask))
        elif isinstance(vertex, SynapseArrayView):
            weights, labels = matrices[vertex.synram]
            weights[np.ix_(vertex.rows, vertex.columns)] = vertex.weights
            labels[np.ix_(vertex.rows, vertex.columns)] = vertex.labels
        elif isinstance(vertex, NeuronView):
            h = vertex.row
            columns = vertex.columns
            blocks = 2 * h + columns // 128
            quadrants |= int(np.bitwise_or.reduce(1 << np.unique(blocks)))
            for name, row_values in zip(vertex.capmem_names, vertex.capmem_values if vertex.capmem_values is not None else []):
                capmem[blocks, REGISTER_MAP.capmem_row(name), columns % 128] = row_values
            for k, column in enumerate(columns.tolist()):
                neuron = AtomicNeuronOnDLS(h, column)
                config.set(neuron, NeuronConfig(
                    enable_synaptic_input_excitatory=True, enable_synaptic_input_inhibitory=True, enable_leak=True,
                    enable_threshold=True, enable_fire=True))
                config.set(neuron, NeuronBackendConfig(
                    address_out=int(vertex.address_out[k]) if vertex.address_out is not None else 0,
                    enable_spike_out=bool(vertex.enable_spike_out[k]) if vertex.enable_spike_out is not None else False,
                    refractory_time=int(vertex.refractory_time[k]) if vertex.refractory_time is not None else 125))
        elif isinstance(vertex, BackgroundSpikeSource):
            config.set(vertex.coordinate, BackgroundSpikeSourceConfig(
                enable=True, enable_random=vertex.enable_random, rate=vertex.rate, period=vertex.period,
                seed=vertex.seed, label=vertex.label, mask=vertex.mask))
        elif isinstance(vertex, CADCMembraneReadoutView):
            if vertex.mode != "periodic":
                raise UnsupportedGraphError(f"CADC readout v{int(d)} in mode {vertex.mode!r} inside a spiking instance")
            outputs = [e.target for e in graph.users(d) if isinstance(graph.vertex(e.target), DataOutput)]
            if outputs:
                cadc_outputs[vertex.synram] = (int(outputs[0]), vertex.columns)
            if cadc_period and vertex.period != cadc_period:
                raise UnsupportedGraphError("all CADC recordings of an instance must share one period")
            cadc_period = int(vertex.period)
            config.set(CADCOnDLS(vertex.synram), CADCConfig(enable=True))
        elif isinstance(vertex, MADCReadoutView):
            outputs = [e.target for e in graph.users(d) if isinstance(graph.vertex(e.target), DataOutput)]
            madc_output = int(outputs[0]) if outputs else None
            readout_neuron = vertex.neuron
            config.set(MADCOnDLS(), MADCConfig(enable=True, sample_period=int(vertex.sample_period), number_of_samples=0))
            config.set(ReadoutChannelOnDLS(0), ReadoutSourceSelection(neuron=int(vertex.neuron), signal=vertex.signal, enable=True))
        elif isinstance(vertex, DataOutput) and graph.vertex(graph.inputs(d)[0].source).__class__.__name__ == "ExternalSpikeOutput":
            spike_output = int(d)
    for h, (weights, labels) in matrices.items():
        config.set(SynramOnDLS(h), SynapseMatrix(weights=weights, labels=labels))
    for block in range(4):
        config.set(CapMemBlockOnDLS(block), CapMemBlock(values=capmem[block]))
    if readout_neuron is not None:
        neuron_config = config.get(readout_neuron, NeuronConfig)
        config.set(readout_neuron, neuron_config.evolve(enable_readout=True))
    plan = SpikingPlan(
        cadc_synrams=tuple(sorted(cadc_outputs)),
        cadc_period=cadc_period,
        cadc_outputs=cadc_outputs,
        madc_output=madc_output,
        spike_output=spike_output,
        quadrants=quadrants or 0xF,
    )
    return config, plan


# --------------------------------------------------------------------------------------------- program


def _entry_words(start: int, runtime: int, entry: SpikeInput | None, plan: SpikingPlan) -> np.ndarray:
    """Instruction words of one batch entry beginning at absolute timer value ``start``."""
    parts = [wire.encode_wait_until([start]), wire.encode_write([_NEURON_RESET], [plan.quadrants])]
    if plan.madc_output is not None:
        parts.append(wire.encode_write([_MADC_CONTROL], [1]))
    times = entry.times + start if entry is not None and entry.times.size else np.empty(0, np.int64)
    labels = entry.labels if entry is not None else np.empty(0, np.int64)
    if times.size and times.max() >= start + runtime:
        raise InputError(f"input events at {int(times.max() - start)} cycles lie beyond the runtime of {runtime} cycles")
    reads = np.arange(start + plan.cadc_period, start + runtime + 1, plan.cadc_period) if plan.cadc_synrams else np.empty(0, np.int64)
    cursor = 0
    for read_time in reads.tolist():
        stop = int(np.searchsorted(times, read_time, side="left"))
        if stop > cursor:
            parts.append(encode_timed_spikes(labels[cursor:stop], times[cursor:stop]))
            cursor = stop
        parts.append(wire.encode_wait_until([read_time]))
        for h in plan.cadc_synrams:
            parts.append(wire.encode_read_block(hagen.cadc_row_address(h), 64))
    if cursor < times.size:
        parts.append(encode_timed_spikes(labels[cursor:], times[cursor:]))
    parts.append(wire.encode_wait_until([start + runtime]))
    if plan.madc_output is not None:
        parts.append(wire.encode_write([_MADC_CONTROL], [2]))
    return np.concatenate(parts)


def run_spiking_instance(executor: JITExecutor, graph: Graph, instance: Any, values: dict[int, Any], info: ExecutionInfo) -> None:
    """Configure, run and record one spiking execution instance (called by the executor)."""
    chip = int(instance.chip) % executor.n_chips
    record = InstanceRecord(instance=instance.id, chip=chip)
    runtime = executor._runtime
    if runtime is None:  # its type and range are checked by run()
        raise InputError(f"execution instance {instance.id} is spiking: run() needs runtime= (cycles, > 0)")
    descriptors = graph.instance_vertices(instance)
    state = executor._states[chip]
    try:
        with timed(record, "preprocess"):
            spike_vertex = next((int(d) for d in graph.inputs_of_graph()
                                 if graph.vertex(d).output_port().type.name == "DataTimedSpikes"), None)
            entries: list[SpikeInput | None] = list(values.get(spike_vertex, [])) if spike_vertex is not None else []
            batch = max(len(entries), 1)
            entries += [None] * (batch - len(entries))
            for b, entry in enumerate(entries):  # time order, in copies (the caller's SpikeInput stays as it is)
                if entry is not None and entry.times.size:
                    order = np.argsort(entry.times, kind="stable")
                    entries[b] = SpikeInput(entry.times[order], entry.labels[order])
        with timed(record, "build"):
            config, plan = spiking_config(graph, descriptors)
            previous = state.planned
            parts = []
            if previous is None:
                parts.append(_CHIP_RESET)
                reference = ChipConfig()
            else:
                reference = previous
            addresses, data = config.encode_diff(reference)
            config_words = config.to_words(reference)
            parts.append(config_words)
            capmem = REGISTER_MAP["capmem_cell"]
            settle = bool(np.any((addresses >= capmem.base) & (addresses <= capmem.last_address)))
            origin = hagen.CAPMEM_SETTLE_CYCLES if settle else 0
            parts.append(wire.encode_timer_reset())
            stride = runtime + ENTRY_GAP_CYCLES
            starts = origin + ENTRY_GAP_CYCLES + stride * np.arange(batch)
            if int(starts[-1]) + runtime >= wire.TIMER_LIMIT:
                raise InputError(f"batch {batch} x runtime {runtime} cycles exceeds the 32-bit timer")
            for b in range(batch):
                parts.append(_entry_words(int(starts[b]), runtime, entries[b], plan))
            cookie = int(time.perf_counter_ns() & 0xFFFF_FFFF)
            parts.append(wire.encode_end(cookie))
            words = np.concatenate(parts)
            state.planned = config
        record.config_words = int(config_words.size)
    except (InputError, UnsupportedGraphError):
        raise
    except Exception as error:
        state.invalidate()
        raise ExecutionFailed(str(error), instance=instance.id, chip=chip, stage="build") from error
    try:
        result = executor._execute_words(chip, words)
    except Exception as error:
        state.invalidate()
        raise ExecutionFailed(f"{type(error).__name__}: {error}", instance=instance.id, chip=chip, stage="execute") from error
    record.stages["transfer"] = result.timing.transfer + result.timing.encode
    record.stages["execute"] = result.timing.execute
    record.hardware_time = result.timing.hardware_time
    record.words_sent = int(words.size)
    record.words_received = int(result.responses.size)
    try:
        with timed(record, "decode"):
            responses = wire.decode_responses(result.responses)
            if (responses.error_codes == wire.ErrorCode.RECORDING_OVERFLOW).any():
                raise ExecutionFailed(
                    f"the run recorded more spikes and MADC samples than the recording memory holds ({batch} entries of "
                    f"{runtime} cycles): shorten the runtime or the batch, raise the MADC sample period or record fewer neurons",
                    instance=instance.id, chip=chip, stage="decode")
            if responses.error_codes.size or responses.end_cookies.size == 0 or int(responses.end_cookies[-1]) != cookie:
                raise ExecutionFailed(
                    f"program incomplete or rejected (errors {responses.error_codes.tolist()[:5]}, end markers {responses.end_cookies.tolist()})",
                    instance=instance.id, chip=chip, stage="decode")
            _slice_results(responses, plan, starts, runtime, values)
    except ExecutionFailed:
        state.invalidate()
        raise
    except Exception as error:
        state.invalidate()
        raise ExecutionFailed(str(error), instance=instance.id, chip=chip, stage="decode") from error
    info.add(record)


def _entry_of(times: np.ndarray, starts: np.ndarray, runtime: int) -> np.ndarray:
    """Batch entry of each timestamp, or -1 outside every entry's ``[start, start + runtime)``."""
    entry = np.searchsorted(starts, times, side="right") - 1
    inside = (entry >= 0) & (times < starts[np.maximum(entry, 0)] + runtime)
    return np.where(inside, entry, -1)


def _slice_results(responses: wire.Responses, plan: SpikingPlan, starts: np.ndarray, runtime: int, values: dict[int, Any]) -> None:
    batch = starts.size
    if plan.spike_output is not None:
        times = responses.spike_times.astype(np.int64)
        entry = _entry_of(times, starts, runtime)
        labels = responses.spike_labels.astype(np.int64)
        values[plan.spike_output] = [
            SpikeTrains(times=times[entry == b] - starts[b], labels=labels[entry == b]) for b in range(batch)
        ]
    if plan.cadc_synrams:
        n_reads = len(range(plan.cadc_period, runtime + 1, plan.cadc_period))
        samples = responses.read_data.astype("<u4").view(np.uint8).reshape(batch, n_reads, len(plan.cadc_synrams), 256)
        sample_times = plan.cadc_period * np.arange(1, n_reads + 1, dtype=np.int64)
        for k, h in enumerate(plan.cadc_synrams):
            descriptor, columns = plan.cadc_outputs[h]
            values[descriptor] = [TimedSamples(times=sample_times, values=samples[b, :, k][:, columns]) for b in range(batch)]
    if plan.madc_output is not None:
        times = responses.madc_times.astype(np.int64)
        entry = _entry_of(times, starts, runtime)
        samples_madc = responses.madc_values.astype(np.int64)[:, None]
        values[plan.madc_output] = [
            TimedSamples(times=times[entry == b] - starts[b], values=samples_madc[entry == b]) for b in range(batch)
        ]
