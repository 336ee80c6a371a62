"""Per vertex: its configuration is validated, and it accepts exactly the inputs its rules allow."""

from __future__ import annotations

import numpy as np
import pytest

from bss2.graph import (
    Addition,
    ArgMax,
    BackgroundSpikeSource,
    CADCMembraneReadoutView,
    Concatenation,
    ConnectionType,
    ConvertingReLU,
    CrossbarNode,
    DataInput,
    DataOutput,
    EdgeError,
    ExecutionInstance,
    ExternalInput,
    ExternalSpikeInput,
    ExternalSpikeOutput,
    GraphBuilder,
    GraphError,
    MACSynapseArrayView,
    MADCReadoutView,
    NeuronEventOutputView,
    NeuronView,
    PADIBus,
    PortTypeError,
    ReLU,
    Subtraction,
    SynapseArrayView,
    SynapseDriver,
    argmax,
    converting_relu,
    saturating_add,
)
from bss2.hal.coordinates import AtomicNeuronOnDLS, CrossbarNodeOnDLS, PADIBusOnDLS, SynapseDriverOnDLS

from graph_helpers import mac_chain

CT = ConnectionType


def spiking_chain(b: GraphBuilder):
    """external spikes -> crossbar -> bus 1 (top) -> driver 5 -> synapses rows 10, 11 -> neurons 0..3."""
    x = b.add(ExternalInput(CT.DataTimedSpikes, 1))
    d = b.add(DataInput(CT.TimedSpikes, 1), [x])
    e = b.add(ExternalSpikeInput(0), [d])
    node = b.add(CrossbarNode(CrossbarNodeOnDLS(8, 1), mask=0xC0, target=0x40), [e])
    bus = b.add(PADIBus(PADIBusOnDLS(0, 1)), [node])
    driver = b.add(SynapseDriver(SynapseDriverOnDLS(0, 5)), [bus])
    weights = np.full((2, 4), 10)
    syn = b.add(SynapseArrayView(0, [10, 11], range(4), weights, np.zeros((2, 4))), [driver])
    neurons = b.add(NeuronView(0, range(4)), [syn])
    return x, d, e, node, bus, driver, syn, neurons


class TestConfigurationValidation:
    @pytest.mark.parametrize("make", [
        lambda: MACSynapseArrayView(0, [0], [0], [[64]]),
        lambda: MACSynapseArrayView(0, [0], [0], [[-64]]),
        lambda: MACSynapseArrayView(2, [0], [0], [[0]]),
        lambda: MACSynapseArrayView(0, [128], [0], [[0]]),
        lambda: MACSynapseArrayView(0, [1, 0], [0], [[0], [0]]),
        lambda: MACSynapseArrayView(0, [0], [0], [[0, 0]]),
        lambda: MACSynapseArrayView(0, [0], [0], [[0]], num_sends=0),
        lambda: SynapseArrayView(0, [0], [0], [[64]], [[0]]),
        lambda: SynapseArrayView(0, [0], [0], [[1]], [[64]]),
        lambda: NeuronView(0, [256]),
        lambda: NeuronView(0, []),
        lambda: NeuronView(0, [0, 1], address_out=[0, 256]),
        lambda: CrossbarNode(CrossbarNodeOnDLS(0, 0), mask=1 << 16),
        lambda: SynapseDriver(SynapseDriverOnDLS(0, 0), row_modes=("excitatory", "sideways")),
        lambda: SynapseDriver(SynapseDriverOnDLS(0, 0), row_select_mask=32),
        lambda: BackgroundSpikeSource(0, period=0),
        lambda: CADCMembraneReadoutView(0, [0], mode="sometimes"),
        lambda: MADCReadoutView(AtomicNeuronOnDLS(0, 0), signal="voltage"),
        lambda: ConvertingReLU(4, shift=8),
        lambda: DataInput(CT.Int8, 4),
        lambda: DataOutput(CT.DataInt8, 4),
        lambda: ExternalInput(CT.UInt5, 4),
        lambda: Concatenation(CT.DataInt8, ()),
    ])
    def test_bad_configuration_is_rejected_with_a_graph_error(self, make):
        with pytest.raises((GraphError, IndexError, ValueError, TypeError)):
            make()

    @pytest.mark.parametrize("make, match", [
        (lambda: ExternalInput("bogus", 4), "unknown connection type 'bogus'"),
        (lambda: DataOutput("Int9", 4), "unknown connection type 'Int9'"),
        (lambda: MACSynapseArrayView(0, [[0], [1, 2]], [0], [[1]]), "rectangular"),
    ], ids=["type name", "output type", "ragged rows"])
    def test_unknown_types_and_ragged_arrays_raise_graph_errors(self, make, match):
        with pytest.raises(GraphError, match=match):
            make()
        assert ExternalInput("DataInt8", 4).type is CT.DataInt8  # a member's name still converts

    def test_error_message_names_field_value_and_range(self):
        with pytest.raises(ValueError, match=r"weights contains 70, out of range \[-63, 63\]"):
            MACSynapseArrayView(0, [0], [0], [[70]])

    def test_arrays_are_read_only_and_equal_by_value(self):
        w = np.ones((2, 3), dtype=np.int8)
        view = MACSynapseArrayView(0, [0, 1], [0, 1, 2], w)
        assert not view.weights.flags.writeable
        w[0, 0] = 5  # the view was copied into int8 already, or is a read-only view of its own
        assert view == MACSynapseArrayView(0, [0, 1], [0, 1, 2], np.ones((2, 3)))
        with pytest.raises(ValueError):
            view.weights[0, 0] = 3

    def test_vertices_are_frozen(self):
        with pytest.raises(AttributeError):
            ReLU(3).size = 4  # type: ignore[misc]


class TestHagenChain:
    def test_valid_chain_is_accepted(self, builder):
        descriptors = mac_chain(builder)
        assert len(builder) == len(descriptors) == 6

    def test_mac_view_rejects_wrong_size(self, builder):
        x = builder.add(ExternalInput(CT.DataUInt5, 5))
        d = builder.add(DataInput(CT.UInt5, 5), [x])
        with pytest.raises(EdgeError, match="expects size 4, got 5"):
            builder.add(MACSynapseArrayView(0, range(4), [0], np.zeros((4, 1))), [d])

    def test_mac_view_accepts_a_slice_of_the_right_size(self, builder):
        x = builder.add(ExternalInput(CT.DataUInt5, 8))
        d = builder.add(DataInput(CT.UInt5, 4), [x[4:8]])
        builder.add(MACSynapseArrayView(0, range(4), [0], np.zeros((4, 1))), [d])

    def test_neuron_view_rejects_other_synram(self, builder):
        _, _, s, *_ = mac_chain(builder, synram=0)
        with pytest.raises(EdgeError, match="synram 0 cannot feed neuron row 1"):
            builder.add(NeuronView(1, range(3)), [s], ExecutionInstance(1))

    def test_neuron_view_rejects_other_columns(self, builder):
        _, _, s, *_ = mac_chain(builder, columns=3)
        with pytest.raises(EdgeError, match="columns do not match"):
            builder.add(NeuronView(0, [1, 2, 3]), [s], ExecutionInstance(1))

    def test_cadc_rejects_wrong_port_type(self, builder):
        _, d, s, *_ = mac_chain(builder)
        with pytest.raises(PortTypeError):
            builder.add(CADCMembraneReadoutView(0, range(3)), [s], ExecutionInstance(1))

    def test_cadc_reads_a_slice_of_the_neurons(self, builder):
        *_, n, _, _ = mac_chain(builder, columns=3)
        builder.add(CADCMembraneReadoutView(0, [1, 2]), [n[1:3]], ExecutionInstance(1))
        with pytest.raises(EdgeError):
            builder.add(CADCMembraneReadoutView(0, [0, 2]), [n[1:3]], ExecutionInstance(1))

    def test_madc_needs_the_recorded_neurons_column(self, builder):
        *_, n, _, _ = mac_chain(builder, columns=3)
        builder.add(MADCReadoutView(AtomicNeuronOnDLS(0, 2)), [n[2:3]], ExecutionInstance(1))
        with pytest.raises(EdgeError, match="column 1 is not"):
            builder.add(MADCReadoutView(AtomicNeuronOnDLS(0, 2)), [n[1:2]], ExecutionInstance(1))

    def test_data_output_rejects_on_chip_mismatch(self, builder):
        *_, n, c, _ = mac_chain(builder)
        with pytest.raises(PortTypeError):
            builder.add(DataOutput(CT.Int8, 3), [n], ExecutionInstance(1))


class TestSpikingChain:
    def test_valid_chain_is_accepted(self, builder):
        spiking_chain(builder)

    def test_crossbar_node_input_must_match_its_source(self, builder):
        x, d, e, *_ = spiking_chain(builder)
        with pytest.raises(EdgeError, match="crossbar input 8"):
            builder.add(CrossbarNode(CrossbarNodeOnDLS(9, 0)), [e])

    def test_bus_rejects_node_of_other_output(self, builder):
        x, d, e, node, *_ = spiking_chain(builder)
        with pytest.raises(EdgeError, match="does not feed PADI bus"):
            builder.add(PADIBus(PADIBusOnDLS(0, 2)), [node])

    def test_driver_rejects_bus_it_does_not_listen_on(self, builder):
        *_, bus, _, _, _ = spiking_chain(builder)
        with pytest.raises(EdgeError, match="listens on"):
            builder.add(SynapseDriver(SynapseDriverOnDLS(0, 6)), [bus])

    def test_synapse_view_needs_both_rows_of_the_driver(self, builder):
        *_, driver, _, _ = spiking_chain(builder)
        with pytest.raises(EdgeError, match="not both in the view's rows"):
            builder.add(SynapseArrayView(0, [10, 12], [0], np.zeros((2, 1)), np.zeros((2, 1))), [driver])

    def test_event_output_needs_columns_of_its_block(self, builder):
        *_, neurons = spiking_chain(builder)
        builder.add(NeuronEventOutputView(0), [neurons])
        with pytest.raises(EdgeError, match="event output 1"):
            builder.add(NeuronEventOutputView(1), [neurons])

    def test_external_output_takes_only_nodes_towards_the_fpga(self, builder):
        *_, neurons = spiking_chain(builder)
        eo = builder.add(NeuronEventOutputView(0), [neurons])
        to_bus = builder.add(CrossbarNode(CrossbarNodeOnDLS(0, 0)), [eo])
        to_fpga = builder.add(CrossbarNode(CrossbarNodeOnDLS(0, 8)), [eo])
        builder.add(ExternalSpikeOutput(), [to_fpga])
        with pytest.raises(EdgeError):
            builder.add(ExternalSpikeOutput(), [to_bus])

    def test_background_source_feeds_its_crossbar_input(self, builder):
        src = builder.add(BackgroundSpikeSource(3, label=5))
        builder.add(CrossbarNode(CrossbarNodeOnDLS(15, 0)), [src])
        with pytest.raises(EdgeError):
            builder.add(CrossbarNode(CrossbarNodeOnDLS(14, 0)), [src])


class TestTransformations:
    def test_addition_arity_and_types(self, builder):
        *_, o = mac_chain(builder)
        builder.add(Addition(3, 2), [o, o], ExecutionInstance(2))
        with pytest.raises(EdgeError, match="takes 2..2 inputs, got 1"):
            builder.add(Addition(3, 2), [o], ExecutionInstance(2))
        with pytest.raises(EdgeError, match="expects size 4"):
            builder.add(Addition(4, 1), [o], ExecutionInstance(2))

    def test_converting_relu_output_feeds_a_data_input(self, builder):
        *_, o = mac_chain(builder)
        r = builder.add(ConvertingReLU(3, 1), [o], ExecutionInstance(2))
        builder.add(DataInput(CT.UInt5, 3), [r], ExecutionInstance(3))
        with pytest.raises(PortTypeError):
            builder.add(ReLU(3), [r], ExecutionInstance(2))

    def test_reference_semantics(self):
        a = np.array([[100, -100, 5]], np.int8)
        b = np.array([[100, -100, -7]], np.int8)
        assert saturating_add(a, b).tolist() == [[127, -128, -2]]
        assert Subtraction(3).evaluate(a, b).tolist() == [[0, 0, 12]]
        assert ReLU(3).evaluate(b).tolist() == [[100, 0, 0]]
        assert converting_relu(np.array([[127, 64, 3, -5]]), 2).tolist() == [[31, 16, 0, 0]]
        assert converting_relu(np.array([[127]]), 0).tolist() == [[31]]
        assert argmax(np.array([[1, 9, 9, 2], [5, 0, 0, 0]])).tolist() == [[1], [0]]
        assert ArgMax(4).evaluate(np.array([[0, 0, 3, 1]])).tolist() == [[2]]
        assert Concatenation(CT.DataInt8, (1, 2)).evaluate(np.array([[1]]), np.array([[2, 3]])).tolist() == [[1, 2, 3]]
        assert Addition(1, 3).evaluate(np.array([[100]]), np.array([[100]]), np.array([[-100]])).tolist() == [[100]]


class TestMoreInputRules:
    def test_data_input_takes_only_its_memory_type(self, builder):
        x = builder.add(ExternalInput(CT.DataInt8, 4))
        with pytest.raises(PortTypeError, match="expects DataUInt5"):
            builder.add(DataInput(CT.UInt5, 4), [x])
        spikes = builder.add(ExternalInput(CT.DataTimedSpikes, 1))
        builder.add(DataInput(CT.TimedSpikes, 1), [spikes])

    def test_external_spike_input_takes_timed_spikes(self, builder):
        x = builder.add(ExternalInput(CT.DataUInt5, 1))
        d = builder.add(DataInput(CT.UInt5, 1), [x])
        with pytest.raises(PortTypeError):
            builder.add(ExternalSpikeInput(0), [d])

    def test_subtraction_needs_two_operands(self, builder):
        *_, o = mac_chain(builder)
        builder.add(Subtraction(3), [o, o], ExecutionInstance(1))
        with pytest.raises(EdgeError):
            builder.add(Subtraction(3), [o], ExecutionInstance(1))

    def test_argmax_gives_one_index(self, builder):
        *_, o = mac_chain(builder)
        a = builder.add(ArgMax(3), [o], ExecutionInstance(1))
        assert builder.output_port(a).type is CT.DataInt32 and builder.output_port(a).size == 1
        with pytest.raises(PortTypeError):
            builder.add(ReLU(1), [a], ExecutionInstance(1))

    def test_concatenation_checks_each_size(self, builder):
        *_, o = mac_chain(builder, columns=3)
        builder.add(Concatenation(CT.DataInt8, (3, 3)), [o, o], ExecutionInstance(1))
        with pytest.raises(EdgeError, match="input 1 expects size 2"):
            builder.add(Concatenation(CT.DataInt8, (3, 2)), [o, o], ExecutionInstance(1))

    def test_synapse_driver_takes_only_a_padi_bus(self, builder):
        x, d, e, node, *_ = spiking_chain(builder)
        with pytest.raises(PortTypeError):
            builder.add(SynapseDriver(SynapseDriverOnDLS(0, 1)), [node])

    def test_mac_view_takes_only_a_data_input(self, builder):
        *_, driver, syn, neurons = spiking_chain(builder)
        with pytest.raises(PortTypeError):
            builder.add(MACSynapseArrayView(0, [0], range(4), np.zeros((1, 4))), [neurons])

    def test_graph_inputs_and_outputs(self, builder):
        x, *_, o = mac_chain(builder)
        r = builder.add(ReLU(3), [o], ExecutionInstance(2))
        graph = builder.build()
        assert graph.inputs_of_graph() == (x,)
        assert graph.outputs_of_graph() == (r,)


def test_unfold_and_fold_reproduce_a_convolution_layout():
    from bss2.graph import Fold, GraphValueError, Unfold, channel_major, ops

    rng = np.random.default_rng(0)
    x = rng.integers(0, 32, (3, 2, 10))
    indices = ops.unfold_indices_1d(2, 10, 4, stride=2)
    unfold = Unfold("DataUInt5", 20, indices)
    rows = unfold.evaluate(x.reshape(3, 20))
    assert np.array_equal(rows, ops.apply_unfold(x, indices))
    weight = rng.integers(-5, 6, (5, 2, 4))
    out = rows @ ops.conv_weight_matrix(weight)  # (batch * positions, channels)
    fold = Fold("DataInt8", 5, indices.shape[0], channel_major(5, indices.shape[0]))
    folded = fold.evaluate(out)
    reference = np.einsum("bcpk,ock->bop", np.lib.stride_tricks.sliding_window_view(x, 4, axis=2)[:, :, ::2], weight)
    assert np.array_equal(folded, reference.reshape(3, -1))
    with pytest.raises(GraphValueError):
        Unfold("DataUInt5", 20, indices + 20)
    with pytest.raises(GraphValueError):
        Fold("UInt5", 5, 2, [0])
