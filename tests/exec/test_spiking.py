"""Spiking programs through the graph API reproduce the emulator's documented spiking behaviour."""

from __future__ import annotations

import numpy as np
import pytest

from bss2.comm import EmulatorConnection
from bss2.exec import ExecutionFailed, InputError, JITExecutor, SpikeInput
from bss2.graph import (
    BackgroundSpikeSourcePopulation,
    CADCRecording,
    ExternalSpikeSource,
    NetworkBuilder,
    Population,
    Projection,
    SpikeRecording,
    network_to_graph,
    route,
)
from bss2.graph.routing import decode_neuron_labels, labels_of
from bss2.hal.emulator import EmulatorConfig

RUNTIME = 12_500  # 100 µs


def _network(weight: int, n_post: int = 4, record_cadc: bool = False):
    builder = NetworkBuilder()
    source = builder.add(ExternalSpikeSource(2))
    population = builder.add(Population(n_post, record_spikes=True))
    builder.add(Projection(source, population, [0] * n_post, list(range(n_post)), [weight] * n_post))
    builder.add(SpikeRecording(population))
    if record_cadc:
        builder.add(CADCRecording(population, list(range(n_post)), period=250))
    network = builder.done()
    routing = route(network)
    return network, routing, source, population


def _run(executor, network, routing, source, entries):
    graph = network_to_graph(network, routing)
    labels = labels_of(network, routing, source)
    inputs = [SpikeInput(times, labels[np.asarray(which, int)]) for times, which in entries]
    outputs, info = executor.run(graph.graph, {graph.spike_input: inputs}, runtime=RUNTIME)
    return graph, outputs, info


@pytest.fixture
def executor():
    with JITExecutor(EmulatorConnection(seed=4, config=EmulatorConfig.ideal())) as executor:
        yield executor


def test_strong_input_makes_every_target_spike_and_none_fire_without_input(executor):
    network, routing, source, _ = _network(weight=63 * 4)
    times = np.arange(10) * 250 + 1000  # 10 input events, 2 µs apart, from source neuron 0
    graph, outputs, info = _run(executor, network, routing, source, [(times, [0] * 10), ([], [])])
    driven, silent = outputs[graph.spike_output]
    assert driven.times.size > 0 and silent.times.size == 0
    assert driven.times.min() >= 1000  # nothing before the first input
    assert info.hardware_time > 0


def test_events_from_an_unconnected_source_have_no_effect(executor):
    network, routing, source, _ = _network(weight=63 * 4)
    times = np.arange(10) * 250 + 1000
    graph, outputs, _ = _run(executor, network, routing, source, [(times, [1] * 10)])  # source 1 projects nowhere
    assert outputs[graph.spike_output][0].times.size == 0


def test_batch_entries_are_independent_and_sliced_in_time(executor):
    network, routing, source, _ = _network(weight=63 * 4)
    times = np.arange(10) * 250 + 1000
    graph, outputs, _ = _run(executor, network, routing, source, [(times, [0] * 10)] * 3)
    trains = outputs[graph.spike_output]
    assert len(trains) == 3
    counts = [t.times.size for t in trains]
    assert counts[0] > 0 and counts == [counts[0]] * 3  # the ideal chip is deterministic
    for train in trains:
        assert (train.times >= 0).all() and (train.times < RUNTIME).all()


def test_spike_labels_name_the_population_neurons(executor):
    network, routing, source, population = _network(weight=63 * 4, n_post=3)
    graph, outputs, _ = _run(executor, network, routing, source, [(np.arange(5) * 250 + 500, [0] * 5)])
    populations, neurons = decode_neuron_labels(network, routing, outputs[graph.spike_output][0].labels)
    assert set(populations.tolist()) == {population}
    assert set(neurons.tolist()) == {0, 1, 2}


def test_cadc_samples_follow_the_membrane(executor):
    network, routing, source, _ = _network(weight=20, record_cadc=True)
    graph, outputs, _ = _run(executor, network, routing, source, [(np.array([2500]), [0]), ([], [])])
    (hemisphere, descriptor), = graph.cadc_outputs.items()
    driven, resting = outputs[descriptor]
    assert driven.values.shape == (RUNTIME // 250, 4) and driven.times[0] == 250
    before = driven.values[driven.times < 2500].astype(int)
    after = driven.values[(driven.times > 2500) & (driven.times < 3500)].astype(int)
    assert after.max() > before.max()  # an excitatory input lifts the membrane
    # without input the membrane relaxes monotonically from the reset potential to the leak potential
    trace = resting.values.astype(int)
    assert (np.diff(trace, axis=0) >= 0).all() and trace[0].max() < trace[-1].min()
    assert (trace[-10:] == trace[-1]).all()


def test_background_source_drives_neurons_without_host_input(executor):
    builder = NetworkBuilder()
    background = builder.add(BackgroundSpikeSourcePopulation(1, period=250))
    population = builder.add(Population(2, record_spikes=True))
    builder.add(Projection(background, population, [0, 0], [0, 1], [200, 200]))
    builder.add(SpikeRecording(population))
    network = builder.done()
    graph = network_to_graph(network, route(network))
    outputs, _ = executor.run(graph.graph, {}, runtime=RUNTIME)
    assert outputs[graph.spike_output][0].times.size > 0


def test_spiking_needs_a_runtime_and_valid_events(executor):
    network, routing, source, _ = _network(weight=63)
    graph = network_to_graph(network, routing)
    with pytest.raises(InputError, match="runtime"):
        executor.run(graph.graph, {graph.spike_input: []})
    with pytest.raises(InputError, match="beyond the runtime"):
        executor.run(graph.graph, {graph.spike_input: [SpikeInput([RUNTIME + 5], [0])]}, runtime=RUNTIME)
    with pytest.raises(InputError):
        SpikeInput([-1], [0])


def _madc_network(sample_period: int, weight: int, record_spikes: bool = False):
    """Two neurons driven by one source, the membrane of neuron 1 on the MADC: the graph and one entry of
    input (an event at 5000 cycles)."""
    from bss2.graph import MADCRecording

    builder = NetworkBuilder()
    source = builder.add(ExternalSpikeSource(1))
    population = builder.add(Population(2, record_spikes=record_spikes))
    builder.add(Projection(source, population, [0, 0], [0, 1], [weight, weight]))
    if record_spikes:
        builder.add(SpikeRecording(population))
    builder.add(MADCRecording(population, 1, "membrane", sample_period=sample_period))
    network = builder.done()
    routing = route(network)
    labels = labels_of(network, routing, source)
    return network_to_graph(network, routing), [SpikeInput([5000], labels[[0]])]


def test_madc_records_one_membrane_at_its_sample_period(executor):
    graph, inputs = _madc_network(25, 30)
    outputs, _ = executor.run(graph.graph, {graph.spike_input: inputs}, runtime=RUNTIME)
    (trace,) = outputs[graph.madc_output]
    assert trace.values.shape[1] == 1 and trace.times.size > RUNTIME // 25 - 10
    assert (np.diff(trace.times) == 25).all()
    before = trace.values[trace.times < 5000, 0]
    after = trace.values[(trace.times > 5000) & (trace.times < 6500), 0]
    assert after.max() > before[-20:].max()  # the input lifts the recorded membrane


@pytest.mark.parametrize("runtime", ["12500", 1.9, True, float("nan"), [5], 0, -3, 2**32, 2**70])
def test_runtime_must_be_a_whole_number_of_cycles_within_the_timer(executor, runtime):
    network, routing, _, _ = _network(weight=63)
    graph = network_to_graph(network, routing)
    with pytest.raises(InputError, match="runtime"):
        executor.run(graph.graph, {graph.spike_input: []}, runtime=runtime)


@pytest.mark.parametrize("times", [[1.7], [float("nan")], [float("inf")], ["a"], [True], [2**63]])
def test_spike_times_must_be_whole_cycles(times):
    with pytest.raises(InputError, match="times"):
        SpikeInput(times, [0])


def test_a_run_leaves_the_callers_spike_input_as_it_was(executor):
    network, routing, source, population = _network(weight=63)
    graph = network_to_graph(network, routing)
    labels = labels_of(network, routing, source)
    entry = SpikeInput([3000, 1000, 2000], labels[[0, 0, 0]])
    executor.run(graph.graph, {graph.spike_input: [entry]}, runtime=RUNTIME)
    assert entry.times.tolist() == [3000, 1000, 2000]
    assert SpikeInput([1000.0], [0]).times.dtype == np.int64  # whole floats are whole cycles


def test_a_bare_times_labels_pair_is_refused_as_ambiguous_and_pairs_in_a_list_are_entries():
    from bss2.exec.spiking import spike_inputs

    for pair in (([0, 10], [1, 2]), (np.array([5, 6]), np.array([1, 1])), ([], [])):
        with pytest.raises(InputError, match="ambiguous"):
            spike_inputs(pair, "v0")
    batch = spike_inputs([([0, 10], [1, 2]), (np.array([5]), [3])], "v0")
    assert [entry.times.tolist() for entry in batch] == [[0, 10], [5]]
    assert [entry.labels.tolist() for entry in batch] == [[1, 2], [3]]
    assert len(spike_inputs([SpikeInput([1], [2]), SpikeInput([], [])], "v0")) == 2
    assert len(spike_inputs(SpikeInput([1], [2]), "v0")) == 1
    for bad in ([(0, 1)], [([0], [1], [2])], "spikes", [[[0, 1], [2]]]):
        with pytest.raises(InputError, match="v0"):
            spike_inputs(bad, "v0")


def test_a_run_that_overflows_the_recording_memory_fails_clearly_and_the_executor_recovers():
    graph, inputs = _madc_network(5, 63, record_spikes=True)
    config = EmulatorConfig.ideal().evolve(recording_words=RUNTIME // 5 + 10)  # one entry fits, three do not
    with JITExecutor(EmulatorConnection(seed=4, config=config)) as executor:
        with pytest.raises(ExecutionFailed, match="recording memory") as failure:
            executor.run(graph.graph, {graph.spike_input: inputs * 3}, runtime=RUNTIME)
        assert failure.value.stage == "decode" and failure.value.chip == 0
        outputs, _ = executor.run(graph.graph, {graph.spike_input: inputs}, runtime=RUNTIME)
        assert RUNTIME // 5 - 5 <= outputs[graph.madc_output][0].times.size <= RUNTIME // 5
