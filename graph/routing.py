"""Placement and routing of a :class:`~bss2.graph.network.Network` onto one chip, and its verification.

Scheme (see ``registers.yaml`` for the hardware rules it relies on):

* **Placement.** Populations with an explicit placement keep it; the others fill the free
  ``AtomicNeuronOnDLS`` in enum order (top row columns 0..255, then the bottom row).
* **Labels.** Every source gets a 16-bit label whose bits 7:6 name its PADI bus ``b`` (0..3) and bits
  5:0 its 6-bit synapse label ``l``. Neurons: ``(event_output << 8) | address_out`` with
  ``address_out = b << 6 | l`` and ``event_output = hemisphere * 4 + column // 64``; external sources are
  injected on FPGA channel ``b`` (label ``b << 14 | b << 6 | l``, crossbar input 8 + b); background
  source k (crossbar input 12 + k) emits ``b << 6 | l``.
* **Crossbar.** Node (input, PADI bus (h, b)) is enabled with ``mask = 0x20C0``, ``target = b << 6`` when a
  source of that input on bus b projects into hemisphere h. External and background sources that
  project nowhere get label ``1 << 13 | index`` (bit 13: "no route"), which no bus node passes. Event outputs of recorded neurons also get
  node (event output, 8 + event output % 4) with mask 0 (everything to the FPGA).
* **Synapse drivers** listen with ``row_select_mask = 0`` (every event of their bus); synapses tell
  sources apart by label. Hence a label carried by synapses of a bus is reached there by the events of
  one source only; the router keeps this invariant while it assigns buses and labels (greedy: the bus
  blocking fewest labels, then the lowest row demand).
* **Rows.** Bus b of hemisphere h owns the 64 rows of drivers b, b+4, ..., b+124. A connection of
  logical weight w uses max(1, ceil(w / 63)) synapses (63, 63, ..., remainder) on distinct rows. The
  synapses of one source, hemisphere, receptor and copy index form a *virtual row*; virtual rows with
  disjoint columns share a physical row (first fit, most columns first). Each row gets the row mode
  (excitatory or inhibitory) of its receptor.

:func:`verify` recomputes the realised connectivity from the result alone by following every source's
label through crossbar, bus, driver and synapse labels, and compares it with the network.
"""

from __future__ import annotations

import logging
from typing import Any

import attrs
import numpy as np

from bss2.hal.coordinates import AtomicNeuronOnDLS

from .errors import RoutingError, VerificationError
from .network import (
    SYNAPSE_WEIGHT_MAX,
    BackgroundSpikeSourcePopulation,
    ExternalSpikeSource,
    Network,
    Population,
    SpikeRecording,
)

logger = logging.getLogger("bss2.graph")

NUM_NEURONS = AtomicNeuronOnDLS.SIZE
BUS_SHIFT = 6  #: label bits 7:6 select the PADI bus
NO_ROUTE_BIT = 1 << 13  #: set in the labels of external/background sources that project nowhere
CROSSBAR_BUS_MASK = NO_ROUTE_BIT | (0x3 << BUS_SHIFT)
SOURCE_NEURON, SOURCE_EXTERNAL, SOURCE_BACKGROUND = 0, 1, 2
ROW_DISABLED, ROW_EXCITATORY, ROW_INHIBITORY = 0, 1, 2
ROWS_PER_BUS = 64
_ALL_LABELS = (1 << 64) - 1


def _readonly(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


def _arrays_equal(a: Any, b: Any) -> bool:
    return bool(np.array_equal(a, b))


_array = attrs.field(eq=attrs.cmp_using(eq=_arrays_equal))


@attrs.frozen
class RoutingResult:
    """Everything the executor writes to route a network (arrays are read-only).

    Per source (``num_sources``, by source id): ``source_kinds`` (0 neuron, 1 external, 2 background),
    ``source_labels`` (16-bit label), ``source_crossbar_inputs`` (0..19), ``source_buses`` (0..3),
    ``source_emits`` (False for neurons whose spike output stays off: they neither project nor are recorded).
    Per neuron (by neuron id): ``neuron_placement`` (AtomicNeuronOnDLS enum), ``address_out`` (0..255),
    ``enable_spike_out``. External source k is injected on FPGA channel ``label >> 14`` with its label;
    background source k of the network's background sources runs on ``background_coordinates[k]``.
    Crossbar: enabled nodes ``crossbar_nodes`` (CrossbarNodeOnDLS enums) with ``crossbar_masks`` and
    ``crossbar_targets``. ``padi_buses`` (8 flags, PADIBusOnDLS enum order); ``driver_enable`` (2, 128);
    ``row_select_masks`` (2, 128); ``row_modes`` (2, 256: 0 disabled, 1 excitatory, 2 inhibitory);
    ``weights``/``labels`` (2, 256, 256) per synram. ``synapse_*`` list every hardware synapse of every
    connection (index into ``Network.connections()``) for in-place weight updates.
    """

    topology_hash: str
    weights_hash: str
    neuron_placement: np.ndarray = _array
    address_out: np.ndarray = _array
    enable_spike_out: np.ndarray = _array
    source_kinds: np.ndarray = _array
    source_labels: np.ndarray = _array
    source_crossbar_inputs: np.ndarray = _array
    source_buses: np.ndarray = _array
    source_emits: np.ndarray = _array
    background_coordinates: np.ndarray = _array
    crossbar_nodes: np.ndarray = _array
    crossbar_masks: np.ndarray = _array
    crossbar_targets: np.ndarray = _array
    padi_buses: np.ndarray = _array
    driver_enable: np.ndarray = _array
    row_select_masks: np.ndarray = _array
    row_modes: np.ndarray = _array
    weights: np.ndarray = _array
    labels: np.ndarray = _array
    synapse_connection: np.ndarray = _array
    synapse_copy: np.ndarray = _array
    synapse_hemisphere: np.ndarray = _array
    synapse_row: np.ndarray = _array
    synapse_column: np.ndarray = _array
    #: True when this result came from :func:`update_weights` (no re-routing)
    updated_from_weights: bool = attrs.field(default=False, eq=False)

    def neuron(self, neuron_id: int) -> AtomicNeuronOnDLS:
        """The hardware neuron of neuron id ``neuron_id``."""
        return AtomicNeuronOnDLS.from_enum(int(self.neuron_placement[neuron_id]))


# ------------------------------------------------------------------------------------------ placement


def _place(network: Network) -> np.ndarray:
    placement = np.full(network.num_neurons, -1, dtype=np.int64)
    used = np.zeros(NUM_NEURONS, dtype=bool)
    offsets = network.neuron_offsets
    for descriptor, offset in offsets.items():
        population: Population = network.items[descriptor]  # type: ignore[assignment]
        if population.placement is not None:
            enums = np.array([int(n) for n in population.placement], dtype=np.int64)
            if used[enums].any():
                clash = AtomicNeuronOnDLS.from_enum(int(enums[used[enums]][0]))
                raise RoutingError(f"neurons: {clash!r} is placed twice (population {descriptor})", "neurons")
            used[enums] = True
            placement[offset:offset + population.size] = enums
    missing = np.flatnonzero(placement < 0)
    free = np.flatnonzero(~used)
    if missing.size > free.size:
        raise RoutingError(f"neurons: the network needs {network.num_neurons} neurons, the chip has {NUM_NEURONS} "
                           f"({NUM_NEURONS - free.size} placed explicitly)", "neurons")
    placement[missing] = free[:missing.size]
    return placement


# --------------------------------------------------------------------------------------------- route


def _sources(network: Network, placement: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per source: kind, index within kind (neuron id / external index / background index), base crossbar
    input (neurons: event output; background: 12 + k; external: -1, decided with the bus), recorded flag."""
    kinds, index, inputs, recorded = [], [], [], []
    neuron_offsets = network.neuron_offsets
    recorded_populations = {item.population for item in network.items if isinstance(item, SpikeRecording)}
    n_external = n_background = 0
    for descriptor in network.source_offsets:
        item = network.items[descriptor]
        size = item.size  # type: ignore[union-attr]
        if isinstance(item, Population):
            ids = neuron_offsets[descriptor] + np.arange(size)
            kinds.append(np.full(size, SOURCE_NEURON))
            index.append(ids)
            enums = placement[ids]
            inputs.append(4 * (enums // 256) + (enums % 256) // 64)
            recorded.append(np.full(size, item.record_spikes or descriptor in recorded_populations))
        elif isinstance(item, ExternalSpikeSource):
            kinds.append(np.full(size, SOURCE_EXTERNAL))
            index.append(n_external + np.arange(size))
            inputs.append(np.full(size, -1))
            recorded.append(np.zeros(size, bool))
            n_external += size
        else:
            assert isinstance(item, BackgroundSpikeSourcePopulation)
            if n_background + size > 8:
                raise RoutingError(f"background spike sources: the network needs {n_background + size}, "
                                   "the chip has 8", "background spike sources")
            kinds.append(np.full(size, SOURCE_BACKGROUND))
            index.append(n_background + np.arange(size))
            inputs.append(12 + n_background + np.arange(size))
            recorded.append(np.zeros(size, bool))
            n_background += size
    if not kinds:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty, np.zeros(0, bool)
    return (np.concatenate(kinds).astype(np.int64), np.concatenate(index).astype(np.int64),
            np.concatenate(inputs).astype(np.int64), np.concatenate(recorded).astype(bool))


def _synapses(network: Network, placement: np.ndarray) -> dict[str, np.ndarray]:
    """One entry per hardware synapse (vectorised): connection, copy, source, hemisphere, column, receptor,
    weight, virtual row."""
    c = network.connections()
    total = int(c.synapses.sum())
    connection = np.repeat(np.arange(c.weights.size), c.synapses)
    starts = np.repeat(np.cumsum(c.synapses) - c.synapses, c.synapses)
    copy = np.arange(total) - starts
    # 140 -> 63, 63, 14: full synapses first, the remainder last
    weight = np.clip(c.weights[connection] - SYNAPSE_WEIGHT_MAX * copy, 0, SYNAPSE_WEIGHT_MAX)
    enums = placement[c.neurons[connection]]
    return {
        "connection": connection, "copy": copy, "source": c.sources[connection], "hemisphere": enums // 256,
        "column": enums % 256, "receptor": c.receptors[connection], "weight": weight,
    }


def _assign_labels(num_sources: int, kinds: np.ndarray, base_inputs: np.ndarray, emitting: np.ndarray,
                   demand: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Greedy bus and synapse-label choice per source, keeping the labels reaching each bus distinct.

    ``demand`` (sources, 2): virtual rows per hemisphere. Returns bus, synapse label and crossbar input
    per source, the enabled bus nodes (20 inputs, 2 hemispheres, 4 buses) and the *unrouted* sources
    (external or background sources that project nowhere: they get the no-route label bit).

    The hardware rule kept here: in bus (h, b), a label that some synapse of that bus's rows carries is
    *owned* by one source (the one projecting there) and no other event reaching the bus carries it.
    Events that reach a bus without projecting there (neurons of the same event output, recorded-only
    neurons) only have to avoid owned labels. Each source takes the bus where it blocks fewest labels;
    ties go to the bus with the lower row demand; a bus whose rows would overflow is the last resort.
    """
    bus = np.zeros(num_sources, np.int64)
    label = np.zeros(num_sources, np.int64)
    inputs = base_inputs.copy()
    node_on = np.zeros((20, 2, 4), dtype=bool)
    namespace = [[0] * 4 for _ in range(20)]  # labels used by an input on a bus (bitsets)
    arriving = [[0] * 4 for _ in range(2)]  # labels of all events reaching bus (h, b)
    owned = [[0] * 4 for _ in range(2)]  # labels of the sources with synapses on bus (h, b)
    load = np.zeros((2, 4))
    total_demand = demand.sum(axis=1)
    projecting = total_demand > 0
    unrouted = ~projecting & (kinds != SOURCE_NEURON)
    order = np.concatenate([np.flatnonzero(projecting)[np.argsort(-total_demand[projecting], kind="stable")],
                            np.flatnonzero(~projecting & ~unrouted)])
    for s in order.tolist():
        hemispheres = [h for h in (0, 1) if demand[s, h] > 0]
        best: tuple[Any, ...] | None = None
        for b in range(4):
            i = int(inputs[s]) if kinds[s] != SOURCE_EXTERNAL else 8 + b
            if not emitting[s]:
                # a silent neuron reaches no bus: its address only has to be unique within its input
                free = ~namespace[i][b] & _ALL_LABELS
                key: tuple[Any, ...] = (0, 0, 0.0, b)
            else:
                new_nodes = [h for h in hemispheres if not node_on[i, h, b]]
                # enabling a node brings every label of this input on bus b to that hemisphere's bus
                if any(namespace[i][b] & owned[h][b] for h in new_nodes):
                    continue
                forbidden = namespace[i][b]
                for h in (0, 1):
                    if h in hemispheres:
                        forbidden |= arriving[h][b]
                    elif node_on[i, h, b]:
                        forbidden |= owned[h][b]
                free = ~forbidden & _ALL_LABELS
                blocked = len(hemispheres) + sum(bin(namespace[i][b] & ~arriving[h][b]).count("1")
                                                 for h in new_nodes)
                loads = [load[h, b] + demand[s, h] for h in hemispheres]
                key = (any(x > ROWS_PER_BUS for x in loads), blocked, max(loads, default=0.0), b)
            if free and (best is None or key < best[0]):
                best = (key, b, i, (free & -free).bit_length() - 1)
        if best is None:
            kind = ("neuron", "external source", "background source")[int(kinds[s])]
            raise RoutingError(
                f"labels: no PADI bus has a free 6-bit synapse label for source {s} ({kind}, projecting into "
                f"hemispheres {hemispheres}); at most 64 distinct sources can project into one PADI bus, so at "
                "most 256 into one hemisphere", "labels")
        _, b, i, l_ = best
        bit = 1 << l_
        namespace[i][b] |= bit
        if emitting[s]:
            for h in (0, 1):
                if h in hemispheres:
                    if not node_on[i, h, b]:
                        node_on[i, h, b] = True
                        arriving[h][b] |= namespace[i][b]
                    owned[h][b] |= bit
                    load[h, b] += demand[s, h]
                if node_on[i, h, b]:
                    arriving[h][b] |= bit
        bus[s], label[s], inputs[s] = b, l_, i
    external = np.flatnonzero(unrouted & (kinds == SOURCE_EXTERNAL))
    inputs[external] = 8
    return bus, label, inputs, node_on, unrouted


def _pack_rows(vrow_h: np.ndarray, vrow_bus: np.ndarray, vrow_receptor: np.ndarray,
               vrow_masks: list[int], vrow_counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First-fit packing of virtual rows into the 64 rows of each bus. Returns the physical row of each
    virtual row and the row modes (2, 256)."""
    row_of = np.full(vrow_h.size, -1, np.int64)
    row_modes = np.zeros((2, 256), np.uint8)
    for h in (0, 1):
        for b in range(4):
            members = np.flatnonzero((vrow_h == h) & (vrow_bus == b))
            if not members.size:
                continue
            drivers = np.arange(b, 128, 4)
            rows = np.stack([2 * drivers, 2 * drivers + 1], axis=1).reshape(-1).tolist()
            occupancy: list[int] = []
            modes: list[int] = []
            for v in members[np.argsort(-vrow_counts[members], kind="stable")].tolist():
                mode = ROW_EXCITATORY if vrow_receptor[v] == 0 else ROW_INHIBITORY
                mask = vrow_masks[v]
                for r, occupied in enumerate(occupancy):
                    if modes[r] == mode and not occupied & mask:
                        occupancy[r] |= mask
                        row_of[v] = rows[r]
                        break
                else:
                    if len(occupancy) == ROWS_PER_BUS:
                        raise RoutingError(
                            f"synapse rows: PADI bus {b} of hemisphere {h} needs more than {ROWS_PER_BUS} synapse "
                            f"rows (drivers {b}, {b + 4}, ..., {b + 124}); reduce fan-in or weights above 63",
                            "synapse rows")
                    occupancy.append(mask)
                    modes.append(mode)
                    row_of[v] = rows[len(occupancy) - 1]
                    row_modes[h, rows[len(occupancy) - 1]] = mode
    return row_of, row_modes


def route(network: Network, verify_result: bool = True) -> RoutingResult:
    """Place and route ``network`` on one chip; raises :class:`RoutingError` naming the exhausted resource.

    With ``verify_result`` the result is checked by :func:`verify` before it is returned.
    """
    placement = _place(network)
    kinds, kind_index, base_inputs, recorded = _sources(network, placement)
    num_sources = kinds.size
    syn = _synapses(network, placement)
    # virtual rows: synapses of one (source, hemisphere, receptor, copy)
    n_copies = int(syn["copy"].max()) + 1 if syn["copy"].size else 1
    key = ((syn["source"] * 2 + syn["hemisphere"]) * 2 + syn["receptor"]) * n_copies + syn["copy"]
    vkeys, vrow = np.unique(key, return_inverse=True)
    rest = vkeys // n_copies
    vrow_receptor, vrow_h, vrow_source = rest % 2, rest // 2 % 2, rest // 4
    demand = np.zeros((num_sources, 2))
    np.add.at(demand, (vrow_source, vrow_h), 1.0)
    emitting = (kinds != SOURCE_NEURON) | recorded | (demand.sum(axis=1) > 0)
    bus, syn_label, inputs, node_on, unrouted = _assign_labels(num_sources, kinds, base_inputs, emitting, demand)

    columns = np.zeros((vkeys.size, 256), dtype=bool)
    columns[vrow, syn["column"]] = True
    vrow_counts = columns.sum(axis=1)
    vrow_masks = [int.from_bytes(row, "little") for row in np.packbits(columns, axis=1, bitorder="little")]
    row_of, row_modes = _pack_rows(vrow_h, bus[vrow_source], vrow_receptor, vrow_masks, vrow_counts)

    weights = np.zeros((2, 256, 256), np.uint8)
    labels = np.zeros((2, 256, 256), np.uint8)
    syn_row = row_of[vrow]
    weights[syn["hemisphere"], syn_row, syn["column"]] = syn["weight"]
    labels[syn["hemisphere"], syn_row, syn["column"]] = syn_label[syn["source"]]

    # labels: bits 7:6 bus, 5:0 synapse label; neurons add their event output, externals their channel
    address = (bus << BUS_SHIFT) | syn_label
    source_labels = address.copy()
    neuron_mask = kinds == SOURCE_NEURON
    source_labels[neuron_mask] |= inputs[neuron_mask] << 8
    external_mask = kinds == SOURCE_EXTERNAL
    source_labels[external_mask] |= bus[external_mask] << 14
    # sources that project nowhere get the no-route bit, which every bus node rejects; the low bits
    # keep them distinct (index within their kind)
    if unrouted.any() and kind_index[unrouted].max() >= NO_ROUTE_BIT:
        raise RoutingError(f"labels: more than {NO_ROUTE_BIT} external sources that project nowhere", "labels")
    source_labels[unrouted] = NO_ROUTE_BIT | kind_index[unrouted]
    num_neurons = network.num_neurons
    address_out = np.zeros(num_neurons, np.int64)
    enable_spike_out = np.zeros(num_neurons, bool)
    address_out[kind_index[neuron_mask]] = address[neuron_mask]
    enable_spike_out[kind_index[neuron_mask]] = emitting[neuron_mask]

    node_inputs, node_h, node_b = np.nonzero(node_on)
    nodes = [(int(i) * 12 + 4 * int(h) + int(b), CROSSBAR_BUS_MASK, int(b) << BUS_SHIFT)
             for i, h, b in zip(node_inputs, node_h, node_b)]
    for eo in sorted(set(inputs[neuron_mask & recorded].tolist())):
        nodes.append((eo * 12 + 8 + eo % 4, 0, 0))
    nodes.sort()
    padi = np.zeros(8, bool)
    padi[4 * node_h + node_b] = True
    driver_enable = (row_modes.reshape(2, 128, 2) != ROW_DISABLED).any(axis=2)

    result = RoutingResult(
        topology_hash=network.topology_hash,
        weights_hash=network.weights_hash,
        neuron_placement=_readonly(placement),
        address_out=_readonly(address_out),
        enable_spike_out=_readonly(enable_spike_out),
        source_kinds=_readonly(kinds),
        source_labels=_readonly(source_labels),
        source_crossbar_inputs=_readonly(inputs),
        source_buses=_readonly(bus),
        source_emits=_readonly(emitting),
        background_coordinates=_readonly(kind_index[kinds == SOURCE_BACKGROUND]),
        crossbar_nodes=_readonly(np.array([n[0] for n in nodes], np.int64)),
        crossbar_masks=_readonly(np.array([n[1] for n in nodes], np.int64)),
        crossbar_targets=_readonly(np.array([n[2] for n in nodes], np.int64)),
        padi_buses=_readonly(padi),
        driver_enable=_readonly(driver_enable),
        row_select_masks=_readonly(np.zeros((2, 128), np.uint8)),
        row_modes=_readonly(row_modes),
        weights=_readonly(weights),
        labels=_readonly(labels),
        synapse_connection=_readonly(syn["connection"]),
        synapse_copy=_readonly(syn["copy"]),
        synapse_hemisphere=_readonly(syn["hemisphere"]),
        synapse_row=_readonly(syn_row),
        synapse_column=_readonly(syn["column"]),
    )
    logger.debug("routed %d neurons, %d sources, %d hardware synapses, %d rows", num_neurons, num_sources,
                 syn_row.size, int((row_modes != 0).sum()))
    if verify_result:
        verify(result, network)
    return result


# -------------------------------------------------------------------------------------------- update


def update_weights(result: RoutingResult, network: Network, verify_result: bool = False) -> RoutingResult:
    """``result`` with the synapse weights of ``network``, without re-routing.

    ``network`` must have ``result``'s topology (same :attr:`Network.topology_hash`), i.e. only weights
    changed and every connection still needs the same number of hardware synapses.
    """
    if network.topology_hash != result.topology_hash:
        raise RoutingError("update_weights: the network's topology differs from the routed one; route it again",
                           "topology")
    c = network.connections()
    w = np.clip(c.weights[result.synapse_connection] - SYNAPSE_WEIGHT_MAX * result.synapse_copy,
                0, SYNAPSE_WEIGHT_MAX)
    weights = result.weights.copy()
    weights[result.synapse_hemisphere, result.synapse_row, result.synapse_column] = w
    updated = attrs.evolve(result, weights_hash=network.weights_hash, weights=_readonly(weights),
                           updated_from_weights=True)
    if verify_result:
        verify(updated, network)
    return updated


class Router:
    """Routes networks, re-using the last result when only weights changed.

    ``full_routes`` and ``weight_updates`` count which path :meth:`route` took.
    """

    def __init__(self, verify_result: bool = True) -> None:
        self.verify_result = verify_result
        self.full_routes = 0
        self.weight_updates = 0
        self._last: RoutingResult | None = None

    def route(self, network: Network) -> RoutingResult:
        """The routing of ``network``: an in-place weight update of the last result when possible."""
        last = self._last
        if last is not None and last.topology_hash == network.topology_hash:
            if last.weights_hash == network.weights_hash:
                return last
            result = update_weights(last, network, self.verify_result)
            self.weight_updates += 1
        else:
            result = route(network, self.verify_result)
            self.full_routes += 1
        self._last = result
        return result


# -------------------------------------------------------------------------------------------- verify


def realised_connectivity(result: RoutingResult) -> np.ndarray:
    """(num_sources, 512, 2) weight sums per (source, AtomicNeuronOnDLS enum, receptor) that the routed
    configuration realises, found by following each source's label through the chip."""
    num_sources = result.source_labels.size
    realised = np.zeros((num_sources, NUM_NEURONS, 2), np.int64)
    node_inputs = result.crossbar_nodes // 12
    node_outputs = result.crossbar_nodes % 12
    drivers = np.arange(128)
    row_is_exc = result.row_modes == ROW_EXCITATORY
    row_is_inh = result.row_modes == ROW_INHIBITORY
    for s in np.flatnonzero(result.source_emits).tolist():
        label = int(result.source_labels[s])
        crossbar_input = int(result.source_crossbar_inputs[s])
        selected = (node_inputs == crossbar_input) & (node_outputs < 8) & \
            ((label & result.crossbar_masks) == result.crossbar_targets)
        for output in node_outputs[selected].tolist():
            h, b = divmod(output, 4)
            if not result.padi_buses[output]:
                continue
            masks = result.row_select_masks[h]
            listening = (drivers % 4 == b) & result.driver_enable[h] & \
                ((((label >> 6) & 31) & masks) == ((drivers // 4) & masks))
            rows = np.stack([2 * drivers[listening], 2 * drivers[listening] + 1], axis=1).reshape(-1)
            match = result.labels[h, rows] == (label & 63)
            contribution = np.where(match, result.weights[h, rows], 0).astype(np.int64)
            realised[s, 256 * h:256 * h + 256, 0] += contribution[row_is_exc[h, rows]].sum(axis=0)
            realised[s, 256 * h:256 * h + 256, 1] += contribution[row_is_inh[h, rows]].sum(axis=0)
    return realised


def verify(result: RoutingResult, network: Network) -> None:
    """Raise :class:`VerificationError` unless ``result`` realises exactly the weights of ``network``."""
    c = network.connections()
    expected = np.zeros((network.num_sources, NUM_NEURONS, 2), np.int64)
    np.add.at(expected, (c.sources, result.neuron_placement[c.neurons], c.receptors), c.weights)
    realised = realised_connectivity(result)
    if realised.shape != expected.shape:
        raise VerificationError(f"routing result has {realised.shape[0]} sources, network {expected.shape[0]}")
    wrong = np.argwhere(realised != expected)
    if wrong.size:
        s, n, r = wrong[0]
        raise VerificationError(
            f"{len(wrong)} (source, neuron, receptor) weights differ; first: source {s} -> "
            f"{AtomicNeuronOnDLS.from_enum(int(n))!r} {('excitatory', 'inhibitory')[r]}: requested "
            f"{expected[s, n, r]}, realised {realised[s, n, r]}")


# ------------------------------------------------------------------------------------ containers


def to_containers(result: RoutingResult, network: Network | None = None) -> list[tuple[Any, Any]]:
    """The routing as ``(coordinate, container)`` pairs of :mod:`bss2.hal.containers`, ready to write.

    Covers the synapse matrices of both synrams, every synapse driver, crossbar node and PADI bus that
    routing enables (everything else keeps its reset state: disabled), the neuron backends of placed
    neurons (label, spike output) and, given ``network``, the background sources' configuration.
    Neuron analog parameters (CapMem, NeuronConfig) are not routing; see the NeuronView of
    :func:`~bss2.graph.network_graph.network_to_graph`.
    """
    from bss2.hal import containers as hc
    from bss2.hal import coordinates as co

    pairs: list[tuple[Any, Any]] = []
    for h in (0, 1):
        pairs.append((co.SynramOnDLS(h), hc.SynapseMatrix(weights=result.weights[h], labels=result.labels[h])))
    modes = ("disabled", "excitatory", "inhibitory", "both")
    for h, d in zip(*np.nonzero(result.driver_enable)):
        pairs.append((co.SynapseDriverOnDLS(int(h), int(d)), hc.CONTAINERS["SynapseDriverConfig"](
            enable_receiver=True, row_mode_top=modes[int(result.row_modes[h, 2 * d])],
            row_mode_bottom=modes[int(result.row_modes[h, 2 * d + 1])],
            row_select_mask=int(result.row_select_masks[h, d]))))
    for node, mask, target in zip(result.crossbar_nodes.tolist(), result.crossbar_masks.tolist(),
                                  result.crossbar_targets.tolist()):
        pairs.append((co.CrossbarNodeOnDLS.from_enum(node),
                      hc.CONTAINERS["CrossbarNode"](mask=mask, target=target, enable=True)))
    for bus in np.flatnonzero(result.padi_buses).tolist():
        pairs.append((co.PADIBusOnDLS.from_enum(bus), hc.CONTAINERS["PADIBusConfig"](enable=True)))
    refractory = np.full(result.neuron_placement.size, 125)
    if network is not None:
        for descriptor, offset in network.neuron_offsets.items():
            population: Population = network.items[descriptor]  # type: ignore[assignment]
            refractory[offset:offset + population.size] = population.parameters.refractory_time
    for n, enum in enumerate(result.neuron_placement.tolist()):
        pairs.append((co.AtomicNeuronOnDLS.from_enum(enum), hc.CONTAINERS["NeuronBackendConfig"](
            address_out=int(result.address_out[n]), enable_spike_out=bool(result.enable_spike_out[n]),
            refractory_time=int(refractory[n]))))
    if network is not None:
        labels = result.source_labels[result.source_kinds == SOURCE_BACKGROUND].tolist()
        k = 0
        for descriptor in network.descriptors(BackgroundSpikeSourcePopulation):
            item: BackgroundSpikeSourcePopulation = network.items[descriptor]  # type: ignore[assignment]
            for j in range(item.size):
                pairs.append((co.BackgroundSpikeSourceOnDLS(int(result.background_coordinates[k])),
                              hc.CONTAINERS["BackgroundSpikeSourceConfig"](
                                  enable=True, enable_random=item.enable_random, rate=item.rate,
                                  period=item.period, seed=item.seed + j, label=labels[k], mask=0)))
                k += 1
    return pairs


# --------------------------------------------------------------------------------- label look-ups


def labels_of(network: Network, result: RoutingResult, descriptor: int) -> np.ndarray:
    """The 16-bit labels of the sources of item ``descriptor`` (a population, external or background
    source), indexed like the item. For an :class:`ExternalSpikeSource` these are the labels the host
    injects (bits 15:14 select the FPGA channel)."""
    offsets = network.source_offsets
    if descriptor not in offsets:
        raise RoutingError(f"labels_of: item {descriptor} is not a source of the network", "labels")
    size = network.items[descriptor].size  # type: ignore[union-attr]
    return result.source_labels[offsets[descriptor]:offsets[descriptor] + size]


def decode_neuron_labels(network: Network, result: RoutingResult, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(population descriptor, neuron index) per recorded spike label; (-1, -1) for labels of no neuron.

    Only label bits 10:0 (event output and ``address_out``) identify a neuron.
    """
    neuron_sources = np.flatnonzero(result.source_kinds == SOURCE_NEURON)
    table_population = np.full(2048, -1, np.int64)
    table_index = np.full(2048, -1, np.int64)
    keys = result.source_labels[neuron_sources] & 0x7FF
    population = np.empty(network.num_neurons, np.int64)
    index = np.empty(network.num_neurons, np.int64)
    for descriptor, offset in network.neuron_offsets.items():
        size = network.items[descriptor].size  # type: ignore[union-attr]
        population[offset:offset + size] = descriptor
        index[offset:offset + size] = np.arange(size)
    emits = result.enable_spike_out
    table_population[keys[emits]] = population[emits]
    table_index[keys[emits]] = index[emits]
    wanted = np.asarray(labels, np.int64) & 0x7FF
    return table_population[wanted], table_index[wanted]
