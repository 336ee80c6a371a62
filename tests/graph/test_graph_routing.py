"""Placement and routing: random networks route and verify, weight-only updates, resource errors."""

from __future__ import annotations

import attrs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bss2.graph import (
    BackgroundSpikeSourcePopulation,
    CADCRecording,
    ExternalSpikeSource,
    GraphValueError,
    MADCRecording,
    NetworkBuilder,
    Population,
    Projection,
    Router,
    RoutingError,
    SpikeRecording,
    VerificationError,
    network_to_graph,
    decode_neuron_labels,
    labels_of,
    route,
    to_containers,
    update_weights,
    verify,
)
from bss2.graph import (
    CrossbarNode,
    NeuronView,
    PADIBus,
    SynapseArrayView,
)
from bss2.graph.routing import realised_connectivity
from bss2.hal.coordinates import AtomicNeuronOnDLS


def random_projection(rng, pre, post, pre_size, post_size, n, max_weight=63, receptor="excitatory"):
    return Projection(pre, post, rng.integers(0, pre_size, n), rng.integers(0, post_size, n),
                      rng.integers(0, max_weight + 1, n), receptor)


def small_network(rng, recurrent=False, max_weight=63):
    """External input, three populations in a chain (plus recurrent projections); fan-in about 4 per
    neuron and projection, so that every generated network fits the chip."""
    b = NetworkBuilder()
    ext_size = int(rng.integers(1, 30))
    ext = b.add(ExternalSpikeSource(ext_size))
    sizes = [int(rng.integers(1, 60)) for _ in range(3)]
    pops = [b.add(Population(s)) for s in sizes]

    def project(pre, pre_size, post, receptor="excitatory"):
        post_size = sizes[pops.index(post)]
        n = int(rng.integers(0, 4 * post_size + 1))
        b.add(random_projection(rng, pre, post, pre_size, post_size, n, max_weight, receptor))

    project(ext, ext_size, pops[0])
    project(pops[0], sizes[0], pops[1])
    project(pops[1], sizes[1], pops[2], "inhibitory")
    if recurrent:
        project(pops[2], sizes[2], pops[0])
        project(pops[1], sizes[1], pops[1], "inhibitory")
    b.add(SpikeRecording(pops[2]))
    return b.done()


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.booleans(), st.sampled_from([63, 200]))
def test_random_networks_route_and_verify(seed, recurrent, max_weight):
    network = small_network(np.random.default_rng(seed), recurrent, max_weight)
    result = route(network)  # verifies
    verify(result, network)
    assert len(set(result.neuron_placement.tolist())) == network.num_neurons


def test_large_weights_use_several_synapses():
    b = NetworkBuilder()
    src = b.add(ExternalSpikeSource(1))
    pop = b.add(Population(1))
    b.add(Projection(src, pop, [0], [0], [140]))
    result = route(b.done())
    assert sorted(result.weights[result.weights > 0].tolist()) == [14, 63, 63]
    rows = result.synapse_row.tolist()
    assert len(set(rows)) == 3


def test_background_sources_and_explicit_placement():
    b = NetworkBuilder()
    bg = b.add(BackgroundSpikeSourcePopulation(2, period=500))
    placed = [AtomicNeuronOnDLS(1, 250), AtomicNeuronOnDLS(0, 3)]
    pop = b.add(Population(2, placement=placed))
    b.add(Projection(bg, pop, [0, 1, 1], [0, 1, 0], [10, 20, 30], "inhibitory"))
    network = b.done()
    result = route(network)
    assert result.neuron(0) == placed[0] and result.neuron(1) == placed[1]
    assert result.source_crossbar_inputs.tolist() == [12, 13] + result.source_crossbar_inputs.tolist()[2:]


class TestVerification:
    def test_tampered_weight_is_detected(self):
        network = small_network(np.random.default_rng(1))
        result = route(network)
        weights = result.weights.copy()
        h, r, c = result.synapse_hemisphere[0], result.synapse_row[0], result.synapse_column[0]
        weights[h, r, c] = (weights[h, r, c] + 1) % 64
        with pytest.raises(VerificationError, match="requested"):
            verify(attrs.evolve(result, weights=weights), network)

    def test_tampered_label_is_detected(self):
        network = small_network(np.random.default_rng(2))
        result = route(network)
        labels = result.labels.copy()
        h, r, c = result.synapse_hemisphere[0], result.synapse_row[0], result.synapse_column[0]
        labels[h, r, c] ^= 1
        with pytest.raises(VerificationError):
            verify(attrs.evolve(result, labels=labels), network)

    def test_disabled_crossbar_node_is_detected(self):
        network = small_network(np.random.default_rng(3))
        result = route(network)
        broken = attrs.evolve(result, crossbar_targets=result.crossbar_targets ^ 0x40)
        with pytest.raises(VerificationError):
            verify(broken, network)

    def test_realised_connectivity_has_one_entry_per_source(self):
        network = small_network(np.random.default_rng(4))
        assert realised_connectivity(route(network)).shape == (network.num_sources, 512, 2)


class TestWeightUpdates:
    def network_and_new_weights(self, seed=0):
        """A recurrent network without repeated pairs, and the same with new weights 0..63 (so every
        connection keeps one hardware synapse)."""
        rng = np.random.default_rng(seed)
        b = NetworkBuilder()
        ext, a, c = b.add(ExternalSpikeSource(20)), b.add(Population(70)), b.add(Population(50))
        for pre, post, shape, receptor in ((ext, a, (20, 70), "excitatory"), (a, c, (70, 50), "excitatory"),
                                           (c, a, (50, 70), "inhibitory"), (c, c, (50, 50), "excitatory")):
            mask = rng.random(shape) < 0.3
            b.add(Projection.from_matrix(pre, post, rng.integers(1, 64, shape) * mask, receptor))
        network = b.done()
        new = {d: rng.integers(0, 64, network.items[d].weights.size) for d in network.descriptors(Projection)}
        return network, network.with_projection_weights(new)

    def test_update_path_is_taken_exactly_when_only_weights_changed(self):
        network, reweighted = self.network_and_new_weights()
        router = Router()
        first = router.route(network)
        assert (router.full_routes, router.weight_updates) == (1, 0)
        assert not first.updated_from_weights
        second = router.route(reweighted)
        assert (router.full_routes, router.weight_updates) == (1, 1)
        assert second.updated_from_weights
        verify(second, reweighted)
        assert router.route(reweighted) is second  # nothing changed at all
        other = small_network(np.random.default_rng(99), recurrent=True)
        router.route(other)
        assert (router.full_routes, router.weight_updates) == (2, 1)

    def test_update_keeps_everything_but_the_weights(self):
        network, reweighted = self.network_and_new_weights(1)
        result = route(network)
        updated = update_weights(result, reweighted)
        for field in attrs.fields(type(result)):
            if field.name not in ("weights", "weights_hash", "updated_from_weights"):
                assert np.array_equal(getattr(updated, field.name), getattr(result, field.name)), field.name
        verify(updated, reweighted)

    def test_topology_hash_ignores_weights_within_the_synapse_count(self):
        network, reweighted = self.network_and_new_weights(2)
        assert network.topology_hash == reweighted.topology_hash
        assert network.weights_hash != reweighted.weights_hash

    def test_more_synapses_needed_is_a_topology_change(self):
        b = NetworkBuilder()
        src, pop = b.add(ExternalSpikeSource(1)), b.add(Population(1))
        b.add(Projection(src, pop, [0], [0], [60]))
        network = b.done()
        heavier = network.with_projection_weights({2: [100]})
        assert heavier.topology_hash != network.topology_hash
        with pytest.raises(RoutingError):
            update_weights(route(network), heavier)


class TestResourceErrors:
    def test_too_many_neurons(self):
        b = NetworkBuilder()
        b.add(Population(300))
        b.add(Population(300))
        with pytest.raises(RoutingError, match="neurons") as info:
            route(b.done())
        assert info.value.resource == "neurons"

    def test_neuron_placed_twice(self):
        b = NetworkBuilder()
        b.add(Population(1, placement=[AtomicNeuronOnDLS(0, 5)]))
        b.add(Population(1, placement=[AtomicNeuronOnDLS(0, 5)]))
        with pytest.raises(RoutingError, match="placed twice"):
            route(b.done())

    def test_too_many_background_sources(self):
        b = NetworkBuilder()
        b.add(BackgroundSpikeSourcePopulation(5))
        b.add(BackgroundSpikeSourcePopulation(5))
        with pytest.raises(RoutingError) as info:
            route(b.done())
        assert info.value.resource == "background spike sources"

    def test_too_many_sources_into_one_hemisphere(self):
        b = NetworkBuilder()
        src, pop = b.add(ExternalSpikeSource(300)), b.add(Population(10))
        b.add(Projection(src, pop, np.arange(300), np.arange(300) % 10, np.ones(300, int)))
        with pytest.raises(RoutingError) as info:
            route(b.done())
        assert info.value.resource == "labels"

    def test_too_much_fan_in_for_the_rows(self):
        b = NetworkBuilder()
        # 130 sources x 2 synapses each (weight 126) onto one neuron: 260 synapses > 256 rows
        src, pop = b.add(ExternalSpikeSource(130)), b.add(Population(1))
        b.add(Projection(src, pop, np.arange(130), np.zeros(130, int), np.full(130, 126)))
        with pytest.raises(RoutingError) as info:
            route(b.done())
        assert info.value.resource == "synapse rows"


class TestNetworkBuilder:
    def test_rejects_unknown_populations_and_indices(self):
        b = NetworkBuilder()
        src = b.add(ExternalSpikeSource(2))
        pop = b.add(Population(3))
        with pytest.raises(GraphValueError, match="Projection.post"):
            b.add(Projection(pop, src, [0], [0], [1]))
        with pytest.raises(GraphValueError, match=r"post_indices contains 3, out of range \[0, 2\]"):
            b.add(Projection(src, pop, [0], [3], [1]))
        with pytest.raises(GraphValueError, match="weights"):
            Projection(src, pop, [0], [0], [-1])
        with pytest.raises(GraphValueError):
            b.add(MADCRecording(pop, 3))
        assert len(b.done().items) == 2

    def test_network_is_immutable(self):
        network = small_network(np.random.default_rng(0))
        with pytest.raises(AttributeError):
            network.items = ()  # type: ignore[misc]


def test_network_graph_has_one_instance_and_mirrors_the_routing():
    b = NetworkBuilder()
    ext = b.add(ExternalSpikeSource(10))
    pop = b.add(Population(80))
    b.add(Projection.from_matrix(ext, pop, np.random.default_rng(0).integers(0, 3, (10, 80))))
    b.add(Projection.from_matrix(pop, pop, np.eye(80, dtype=int)[::-1] * 5, "inhibitory"))
    b.add(CADCRecording(pop, [0, 1]))
    b.add(MADCRecording(pop, 79))
    b.add(SpikeRecording(pop))
    network = b.done()
    result = route(network)
    ng = network_to_graph(network, result)
    graph = ng.graph
    assert len(graph.execution_instances()) == 1
    assert ng.spike_input is not None and ng.spike_output is not None and ng.madc_output is not None
    assert set(ng.cadc_outputs) == {0}
    assert len(graph.find(CrossbarNode)) == len(result.crossbar_nodes)
    assert len(graph.find(PADIBus)) == int(result.padi_buses.sum())
    (view,) = graph.find(SynapseArrayView)
    (neurons,) = graph.find(NeuronView)
    vertex = graph.vertex(view)
    np.testing.assert_array_equal(vertex.weights, result.weights[0][np.ix_(vertex.rows, vertex.columns)])
    assert graph.vertex(neurons).address_out.tolist() == result.address_out.tolist()
    assert any(e.recurrent for e in graph.edges())


def test_routing_as_hal_containers():
    b = NetworkBuilder()
    bg = b.add(BackgroundSpikeSourcePopulation(1, period=300))
    ext = b.add(ExternalSpikeSource(4))
    pop = b.add(Population(10))
    b.add(Projection.from_matrix(ext, pop, np.ones((4, 10), int) * 7))
    b.add(Projection(bg, pop, [0], [3], [5], "inhibitory"))
    network = b.done()
    result = route(network)
    pairs = to_containers(result, network)
    kinds = {type(c).__name__ for _, c in pairs}
    assert {"SynapseMatrix", "SynapseDriverConfig", "CrossbarNode", "PADIBusConfig", "NeuronBackendConfig",
            "BackgroundSpikeSourceConfig"} <= kinds
    matrices = [c for _, c in pairs if type(c).__name__ == "SynapseMatrix"]
    np.testing.assert_array_equal(matrices[0].weights, result.weights[0])
    drivers = [c for _, c in pairs if type(c).__name__ == "SynapseDriverConfig"]
    assert all(d.row_select_mask == 0 and d.enable_receiver for d in drivers)


def test_label_lookups_round_trip():
    network = small_network(np.random.default_rng(11), recurrent=True)
    result = route(network)
    for descriptor in network.descriptors(Population):
        labels = labels_of(network, result, descriptor)
        emits = result.enable_spike_out[network.neuron_offsets[descriptor]:][:labels.size]
        populations, indices = decode_neuron_labels(network, result, labels[emits])
        assert (populations == descriptor).all()
        np.testing.assert_array_equal(indices, np.flatnonzero(emits))
    external = network.descriptors(ExternalSpikeSource)[0]
    assert (labels_of(network, result, external) >> 14 == result.source_buses[:network.items[external].size]).all()


def test_sources_that_project_nowhere_do_not_use_bus_labels():
    """300 external sources of which 50 project: the other 250 get no-route labels and fit."""
    b = NetworkBuilder()
    src, pop = b.add(ExternalSpikeSource(300)), b.add(Population(20, record_spikes=True))
    b.add(Projection(src, pop, np.arange(50), np.arange(50) % 20, np.full(50, 9)))
    network = b.done()
    result = route(network)
    labels = labels_of(network, result, src)
    assert (labels[50:] & (1 << 13)).all() and not (labels[:50] & (1 << 13)).any()
    assert len(set(labels.tolist())) == 300
    assert not (realised_connectivity(result)[50:300] != 0).any()


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_routing_either_verifies_or_names_the_missing_resource(seed):
    """Dense random networks (often too big): route() never returns a wrong result."""
    rng = np.random.default_rng(seed)
    b = NetworkBuilder()
    sources = [b.add(ExternalSpikeSource(int(rng.integers(1, 200)))),
               b.add(BackgroundSpikeSourcePopulation(int(rng.integers(1, 9))))]
    pops = [b.add(Population(int(rng.integers(1, 150)), record_spikes=bool(rng.integers(0, 2))))
            for _ in range(int(rng.integers(1, 4)))]
    sizes = {d: b._items[d].size for d in sources + pops}
    for _ in range(int(rng.integers(1, 6))):
        pre, post = (sources + pops)[rng.integers(len(sources) + len(pops))], pops[rng.integers(len(pops))]
        n = int(rng.integers(0, 3 * sizes[post] + 1))
        b.add(random_projection(rng, pre, post, sizes[pre], sizes[post], n, int(rng.choice([10, 63, 300])),
                                str(rng.choice(["excitatory", "inhibitory"]))))
    network = b.done()
    try:
        result = route(network, verify_result=False)
    except RoutingError as error:
        assert error.resource in ("labels", "synapse rows", "neurons")
    else:
        verify(result, network)
