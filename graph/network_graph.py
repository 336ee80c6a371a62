"""Turn a routed spiking network into the signal-flow graph the executor runs (one execution instance)."""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import numpy as np

from bss2.hal.coordinates import AtomicNeuronOnDLS, SynapseDriverOnDLS

from .errors import GraphValueError
from .graph import ExecutionInstance, Graph, GraphBuilder, InputLike, VertexDescriptor
from .network import (
    BackgroundSpikeSourcePopulation,
    CADCRecording,
    LIFParameters,
    MADCRecording,
    Network,
    Population,
)
from .ports import ConnectionType
from .routing import ROW_EXCITATORY, ROW_INHIBITORY, SOURCE_BACKGROUND, RoutingResult
from .vertices import (
    BackgroundSpikeSource,
    CADCMembraneReadoutView,
    CrossbarNode,
    DataInput,
    DataOutput,
    ExternalInput,
    ExternalSpikeInput,
    ExternalSpikeOutput,
    MADCReadoutView,
    NeuronEventOutputView,
    NeuronView,
    PADIBus,
    SynapseArrayView,
    SynapseDriver,
    Vertex,
)

CT = ConnectionType
_MODE_NAMES = {0: "disabled", ROW_EXCITATORY: "excitatory", ROW_INHIBITORY: "inhibitory"}


@attrs.frozen
class NetworkGraph:
    """The graph of a network and where its data enters and leaves.

    ``spike_input``: ExternalInput (DataTimedSpikes) taking the host's timed spikes (labels from
    ``RoutingResult.source_labels``), None without external sources. ``spike_output``: DataOutput of all
    recorded spikes (labels identify neurons via ``address_out`` and the event output). ``cadc_outputs``:
    hemisphere -> DataOutput of periodic CADC samples of that hemisphere's whole NeuronView (columns in
    the view's order). ``madc_output``: DataOutput of the MADC samples, if recorded.
    """

    graph: Graph
    spike_input: VertexDescriptor | None
    spike_output: VertexDescriptor | None
    cadc_outputs: dict[int, VertexDescriptor]
    madc_output: VertexDescriptor | None


def _neuron_parameters(network: Network, routing: RoutingResult, enums: np.ndarray) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """CapMem names, values (k, n) and refractory times (n,) of the neurons on hardware ``enums``."""
    names = tuple(LIFParameters().capmem())
    values = np.zeros((len(names), enums.size), np.int64)
    refractory = np.zeros(enums.size, np.int64)
    position = {int(e): i for i, e in enumerate(enums.tolist())}
    for descriptor, offset in network.neuron_offsets.items():
        population: Population = network.items[descriptor]  # type: ignore[assignment]
        hw = routing.neuron_placement[offset:offset + population.size]
        where = np.array([position.get(int(e), -1) for e in hw.tolist()])
        where = where[where >= 0]
        values[:, where] = np.array(list(population.parameters.capmem().values()))[:, None]
        refractory[where] = population.parameters.refractory_time
    return names, values, refractory


def network_to_graph(network: Network, routing: RoutingResult,
                     execution_instance: ExecutionInstance | None = None) -> NetworkGraph:
    """The signal-flow graph (one execution instance) of ``network`` routed as ``routing``."""
    if routing.topology_hash != network.topology_hash:
        raise GraphValueError("network_to_graph: the routing result belongs to another network topology")
    instance = execution_instance or ExecutionInstance()
    builder = GraphBuilder()

    def add(vertex: Vertex, inputs: Sequence[InputLike] = ()) -> VertexDescriptor:
        return builder.add(vertex, inputs, instance)

    node_enums = routing.crossbar_nodes.tolist()
    node_masks = dict(zip(node_enums, routing.crossbar_masks.tolist()))
    node_targets = dict(zip(node_enums, routing.crossbar_targets.tolist()))
    sources_of_input: dict[int, VertexDescriptor] = {}

    # host and background sources
    spike_input = None
    external_channels = sorted({e // 12 - 8 for e in node_enums if 8 <= e // 12 < 12})
    if external_channels:
        spike_input = add(ExternalInput(CT.DataTimedSpikes, 1, "spikes"))
        timed = add(DataInput(CT.TimedSpikes, 1), [spike_input])
        for channel in external_channels:
            sources_of_input[8 + channel] = add(ExternalSpikeInput(channel), [timed])
    background_items = [network.items[d] for d in network.descriptors(BackgroundSpikeSourcePopulation)]
    background_labels = routing.source_labels[routing.source_kinds == SOURCE_BACKGROUND].tolist()
    k = 0
    for item in background_items:
        for j in range(item.size):  # type: ignore[union-attr]
            coordinate = int(routing.background_coordinates[k])
            sources_of_input[12 + coordinate] = add(BackgroundSpikeSource(
                coordinate, period=item.period, rate=item.rate, seed=item.seed + j,  # type: ignore[union-attr]
                enable_random=item.enable_random, label=background_labels[k]))  # type: ignore[union-attr]
            k += 1

    # buses, fed first by host and background sources (neurons join later, recurrently)
    buses: dict[int, VertexDescriptor] = {}
    for bus in np.flatnonzero(routing.padi_buses).tolist():
        feeding = [add(CrossbarNode(e, node_masks[e], node_targets[e]), [sources_of_input[e // 12]])
                   for e in node_enums if e % 12 == bus and e // 12 >= 8]
        buses[bus] = add(PADIBus(bus), feeding)

    # synapses and neurons per hemisphere
    neurons: dict[int, VertexDescriptor] = {}
    columns_of: dict[int, np.ndarray] = {}
    placement = routing.neuron_placement
    for h in (0, 1):
        enums = np.sort(placement[placement // 256 == h])
        if not enums.size:
            continue
        columns = enums % 256
        columns_of[h] = columns
        drivers = np.flatnonzero(routing.driver_enable[h])
        view_inputs = []
        if drivers.size:
            for d in drivers.tolist():
                modes = tuple(_MODE_NAMES[int(m)] for m in routing.row_modes[h, 2 * d:2 * d + 2])
                view_inputs.append(add(SynapseDriver(SynapseDriverOnDLS(h, d), modes,
                                                     int(routing.row_select_masks[h, d])),
                                       [buses[4 * h + d % 4]]))
            rows = np.stack([2 * drivers, 2 * drivers + 1], axis=1).reshape(-1)
            synapses = [add(SynapseArrayView(h, rows, columns, routing.weights[h][np.ix_(rows, columns)],
                                             routing.labels[h][np.ix_(rows, columns)]), view_inputs)]
        else:
            synapses = []
        neuron_ids = np.empty(512, np.int64)
        neuron_ids[placement] = np.arange(placement.size)
        ids = neuron_ids[enums]
        names, values, refractory = _neuron_parameters(network, routing, enums)
        neurons[h] = add(NeuronView(h, columns, names, values, routing.address_out[ids],
                                    routing.enable_spike_out[ids], refractory), synapses)

    # neuron spikes: event outputs -> crossbar -> buses (recurrent) and the FPGA
    recorded_nodes = []
    for eo in sorted({e // 12 for e in node_enums if e // 12 < 8}):
        h, block = divmod(eo, 4)
        columns = columns_of[h]
        start, stop = np.searchsorted(columns, [64 * block, 64 * block + 64])
        output = add(NeuronEventOutputView(eo), [neurons[h][int(start):int(stop)]])
        for e in (e for e in node_enums if e // 12 == eo):
            node = add(CrossbarNode(e, node_masks[e], node_targets[e]), [output])
            if e % 12 < 8:
                builder.add(buses[e % 12], [node])
            else:
                recorded_nodes.append(node)
    spike_output = None
    if recorded_nodes:
        spike_output = add(DataOutput(CT.TimedSpikesFromChip, 1), [add(ExternalSpikeOutput(), recorded_nodes)])

    # membrane recordings
    cadc_outputs: dict[int, VertexDescriptor] = {}
    for descriptor in network.descriptors(CADCRecording):
        recording: CADCRecording = network.items[descriptor]  # type: ignore[assignment]
        offset = network.neuron_offsets[recording.population]
        for h in sorted({int(placement[offset + i]) // 256 for i in recording.neurons}):
            if h not in cadc_outputs:
                readout = add(CADCMembraneReadoutView(h, columns_of[h], "periodic", recording.period), [neurons[h]])
                cadc_outputs[h] = add(DataOutput(CT.TimedCADCSamples, int(columns_of[h].size)), [readout])
    madc_output = None
    for descriptor in network.descriptors(MADCRecording):
        recording_: MADCRecording = network.items[descriptor]  # type: ignore[assignment]
        neuron = AtomicNeuronOnDLS.from_enum(int(placement[network.neuron_offsets[recording_.population]
                                                           + recording_.neuron]))
        h, column = int(neuron.row), int(neuron.column)
        index = int(np.searchsorted(columns_of[h], column))
        readout = add(MADCReadoutView(neuron, recording_.signal, recording_.sample_period),
                      [neurons[h][index:index + 1]])
        madc_output = add(DataOutput(CT.TimedMADCSamples, 1), [readout])
    return NetworkGraph(builder.build(), spike_input, spike_output, cadc_outputs, madc_output)
