"""Coordinates: range checks, value semantics, enumeration and conversions."""

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bss2.hal import coordinates as co
from bss2.hal.errors import CoordinateRangeError, HalTypeError

ALL_TYPES = co.all_coordinate_types()


@pytest.mark.parametrize("kind", ALL_TYPES, ids=lambda t: t.__name__)
def test_iter_all_enumerates_every_value_once_in_order(kind):
    values = list(co.iter_all(kind))
    assert len(values) == kind.SIZE
    assert [int(v) for v in values] == list(range(kind.SIZE))
    assert values == sorted(values)
    assert len(set(values)) == kind.SIZE


@pytest.mark.parametrize("kind", ALL_TYPES, ids=lambda t: t.__name__)
def test_from_enum_out_of_range_names_type_value_and_range(kind):
    with pytest.raises(CoordinateRangeError) as info:
        kind.from_enum(kind.SIZE)
    message = str(info.value)
    assert kind.__name__ in message and str(kind.SIZE) in message and f"[0, {kind.SIZE - 1}]" in message
    with pytest.raises(IndexError):
        kind.from_enum(-1)


def test_linear_coordinate_range_error_is_index_and_value_error():
    with pytest.raises(IndexError, match=r"NeuronColumnOnDLS = 256 is out of range \[0, 255\]"):
        co.NeuronColumnOnDLS(256)
    with pytest.raises(ValueError):
        co.SynapseRowOnSynram(-1)


def test_composite_component_out_of_range_names_component():
    with pytest.raises(CoordinateRangeError, match=r"AtomicNeuronOnDLS.column .*= 300"):
        co.AtomicNeuronOnDLS(row=0, column=300)


def test_non_integers_are_type_errors():
    with pytest.raises(HalTypeError):
        co.NeuronColumnOnDLS(1.5)
    with pytest.raises(HalTypeError):
        co.NeuronColumnOnDLS(True)
    with pytest.raises(HalTypeError):
        co.SynramOnDLS(co.HemisphereOnDLS(0))


def test_different_types_never_equal_and_do_not_order():
    assert co.SynramOnDLS(0) != co.HemisphereOnDLS(0)
    assert hash(co.SynramOnDLS(1)) != hash(co.HemisphereOnDLS(1)) or co.SynramOnDLS(1) != co.HemisphereOnDLS(1)
    with pytest.raises(TypeError):
        _ = co.SynramOnDLS(0) < co.HemisphereOnDLS(1)


def test_composite_construction_forms_agree():
    by_position = co.AtomicNeuronOnDLS(1, 17)
    by_keyword = co.AtomicNeuronOnDLS(column=17, row=1)
    by_typed = co.AtomicNeuronOnDLS(co.NeuronColumnOnDLS(17), co.NeuronRowOnDLS(1))
    assert by_position == by_keyword == by_typed == co.AtomicNeuronOnDLS.from_enum(256 + 17)
    assert by_typed.column == co.NeuronColumnOnDLS(17) and by_typed.row == co.NeuronRowOnDLS(1)
    with pytest.raises(HalTypeError, match="missing"):
        co.AtomicNeuronOnDLS(row=1)


@given(st.integers(0, co.SynapseOnDLS.SIZE - 1))
def test_composite_enum_round_trips_through_components(value):
    synapse = co.SynapseOnDLS.from_enum(value)
    rebuilt = co.SynapseOnDLS(synram=int(synapse.synram), row=int(synapse.row), column=int(synapse.column))
    assert rebuilt == synapse and int(rebuilt) == value
    assert pickle.loads(pickle.dumps(synapse)) == synapse


@given(st.integers(0, 255))
def test_synapse_row_to_driver_and_back(row):
    driver = co.SynapseRowOnSynram(row).to_synapse_driver()
    assert int(driver) == row // 2
    assert co.SynapseRowOnSynram(row) in driver.to_synapse_rows()
    assert co.SynapseRowOnSynram(row).is_top_row_of_driver() == (row % 2 == 0)


@given(st.integers(0, 127))
def test_driver_listens_on_bus_d_mod_4_with_row_select_d_div_4(d):
    driver = co.SynapseDriverOnSynapseDriverBlock(d)
    assert int(driver.to_padi_bus()) == d % 4
    assert driver.row_select_address == d // 4


@given(st.integers(0, 511))
def test_neuron_conversions_follow_the_geometry(value):
    neuron = co.AtomicNeuronOnDLS.from_enum(value)
    row, column = int(neuron.row), int(neuron.column)
    assert neuron.to_synram() == co.SynramOnDLS(row)
    assert neuron.to_capmem_block() == co.CapMemBlockOnDLS(2 * row + column // 128)
    assert neuron.to_capmem_column() == co.NeuronColumnOnDLS(column).to_capmem_column() == co.CapMemColumnOnCapMemBlock(column % 128)
    assert neuron.to_neuron_event_output() == co.NeuronEventOutputOnDLS(4 * row + column // 64)
    cell = neuron.to_capmem_cell(3)
    assert cell.to_atomic_neuron() == neuron and int(cell.row) == 3
    assert neuron.to_cadc_channel().to_atomic_neuron() == neuron


def test_crossbar_input_and_output_conversions():
    assert co.SPL1Address(2).to_crossbar_input() == co.CrossbarInputOnDLS(10)
    assert co.SPL1Address(2).to_crossbar_output() == co.CrossbarOutputOnDLS(10)
    assert co.BackgroundSpikeSourceOnDLS(7).to_crossbar_input() == co.CrossbarInputOnDLS(19)
    assert co.PADIBusOnDLS(block=1, bus=2).to_crossbar_output() == co.CrossbarOutputOnDLS(6)
    assert co.CrossbarOutputOnDLS(6).to_padi_bus() == co.PADIBusOnDLS(1, 2)
    assert co.CrossbarOutputOnDLS(9).to_padi_bus() is None
    assert co.SynapseDriverOnDLS(block=1, driver=6).to_padi_bus() == co.PADIBusOnDLS(1, 2)


def test_shared_capmem_cells_belong_to_no_neuron():
    assert co.CapMemCellOnDLS(block=0, row=0, column=128).to_atomic_neuron() is None
    assert co.CapMemColumnOnCapMemBlock(129).is_shared


def test_singletons_need_no_argument():
    assert co.TimerOnDLS() == co.TimerOnDLS(0)
    with pytest.raises(CoordinateRangeError):
        co.TimerOnDLS(1)
