"""Containers: every container of the register map encodes/decodes losslessly and validates its fields."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bss2.hal import coordinates as co
from bss2.hal.containers import (
    CONTAINERS,
    CADCSampleRow,
    CapMemBlock,
    NeuronConfig,
    SynapseDriverConfig,
    SynapseMatrix,
    SynapseQuad,
    default_container_for,
)
from bss2.hal.errors import HalTypeError, HalValueError, ReadOnlyError
from bss2.hal.regmap import REGISTER_MAP

CONTAINER_TYPES = sorted(CONTAINERS.values(), key=lambda c: c.__name__)


def element_strategy(field):
    if field.kind == "bool":
        return st.booleans()
    if field.kind == "enum":
        return st.sampled_from(list(field.enum_type))
    return st.integers(field.low, field.high)


def container_strategy(kind):
    fields = {}
    for f in kind.BLOCK.fields:
        element = element_strategy(f)
        fields[f.name] = st.tuples(*[element] * f.repeat) if f.repeat > 1 else element
    return st.builds(kind, **fields)


def coordinate_strategy(kind):
    return st.integers(0, kind.COORDINATE.SIZE - 1).map(kind.COORDINATE.from_enum)


@pytest.mark.parametrize("kind", CONTAINER_TYPES, ids=lambda c: c.__name__)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_random_valid_values_encode_and_decode_back_equal(kind, data):
    container = data.draw(container_strategy(kind))
    words = container.to_words()
    assert words.dtype == np.uint32 and words.size == kind.BLOCK.words
    assert kind.decode(words) == container
    coord = data.draw(coordinate_strategy(kind))
    if kind.BLOCK.writable:
        addresses, encoded = container.encode(coord)
        assert np.array_equal(encoded, words)
        assert addresses.tolist() == [kind.BLOCK.address(int(coord), w) for w in range(kind.BLOCK.words)]
    else:
        with pytest.raises(ReadOnlyError):
            container.encode(coord)


@pytest.mark.parametrize("kind", CONTAINER_TYPES, ids=lambda c: c.__name__)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_dict_and_yaml_round_trip(kind, data):
    container = data.draw(container_strategy(kind))
    assert kind.from_dict(container.to_dict()) == container
    assert kind.from_yaml(container.to_yaml()) == container


@pytest.mark.parametrize("kind", CONTAINER_TYPES, ids=lambda c: c.__name__)
def test_defaults_match_the_register_map_reset_words(kind):
    assert np.array_equal(kind().to_words(), kind.BLOCK.default_words())


@pytest.mark.parametrize("kind", CONTAINER_TYPES, ids=lambda c: c.__name__)
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_out_of_range_values_raise_naming_field_and_range(kind, data):
    candidates = [f for f in kind.BLOCK.fields if f.kind in ("uint", "int")]
    if not candidates:
        return
    f = data.draw(st.sampled_from(candidates))
    bad = data.draw(st.one_of(st.integers(f.high + 1, f.high + 1000), st.integers(f.low - 1000, f.low - 1)))
    value = tuple([bad] * f.repeat) if f.repeat > 1 else bad
    with pytest.raises(HalValueError) as info:
        kind(**{f.name: value})
    assert f.name in str(info.value) and str(bad) in str(info.value) and f"[{f.low}, {f.high}]" in str(info.value)


def test_type_errors_for_wrong_value_types():
    with pytest.raises(HalTypeError):
        NeuronConfig(enable_leak=1)
    with pytest.raises(HalTypeError):
        NeuronConfig(membrane_capacitance=3.0)
    with pytest.raises(HalValueError, match="not one of"):
        SynapseDriverConfig(row_mode_top="sideways")
    with pytest.raises(HalValueError, match="needs 4 values"):
        SynapseQuad(weights=(1, 2, 3))


def test_containers_are_frozen_and_evolve_validates():
    config = NeuronConfig()
    with pytest.raises(AttributeError):
        config.enable_leak = False  # type: ignore[misc]
    assert config.evolve(enable_leak=False).enable_leak is False
    with pytest.raises(HalValueError):
        config.evolve(membrane_capacitance=99)


def test_wrong_coordinate_type_is_rejected():
    with pytest.raises(HalTypeError, match="AtomicNeuronOnDLS"):
        NeuronConfig().encode(co.SynramOnDLS(0))


def test_enum_fields_accept_names_and_members():
    RowMode = REGISTER_MAP.enums["RowMode"]
    assert SynapseDriverConfig(row_mode_top="inhibitory") == SynapseDriverConfig(row_mode_top=RowMode.inhibitory)
    assert SynapseDriverConfig(row_mode_top=2).row_mode_top is RowMode.inhibitory


weights_arrays = st.integers(0, 2**32 - 1).map(lambda seed: np.random.default_rng(seed))


@settings(max_examples=15, deadline=None)
@given(rng=weights_arrays, synram=st.integers(0, 1))
def test_synapse_matrix_round_trip_and_agrees_with_quads(rng, synram):
    matrix = SynapseMatrix(
        weights=rng.integers(0, 64, (256, 256)),
        labels=rng.integers(0, 64, (256, 256)),
        time_calibs=rng.integers(0, 4, (256, 256)),
        amp_calibs=rng.integers(0, 4, (256, 256)),
    )
    addresses, words = matrix.encode(co.SynramOnDLS(synram))
    assert SynapseMatrix.decode(words) == matrix
    lookup = dict(zip(addresses.tolist(), words.tolist()))
    row, quad = rng.integers(0, 256), rng.integers(0, 64)
    coord = co.SynapseQuadOnDLS(synram, int(row), int(quad))
    quad_words = [lookup[a] for a in SynapseQuad.addresses(coord)]
    decoded = SynapseQuad.decode(quad_words)
    assert list(decoded.weights) == matrix.weights[row, 4 * quad : 4 * quad + 4].tolist()
    assert list(decoded.labels) == matrix.labels[row, 4 * quad : 4 * quad + 4].tolist()


def test_synapse_matrix_validation():
    with pytest.raises(HalValueError, match="shape"):
        SynapseMatrix(weights=np.zeros((128, 256)))
    with pytest.raises(HalValueError, match=r"64, out of range \[0, 63\]"):
        SynapseMatrix(weights=np.full((256, 256), 64))
    with pytest.raises(HalTypeError):
        SynapseMatrix(weights=np.full((256, 256), 1.5))
    assert not SynapseMatrix().weights.flags.writeable


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), block=st.integers(0, 3))
def test_capmem_block_round_trip(seed, block):
    values = np.random.default_rng(seed).integers(0, 1023, (24, 130))
    capmem = CapMemBlock(values=values)
    addresses, words = capmem.encode(co.CapMemBlockOnDLS(block))
    assert CapMemBlock.decode(words) == capmem
    cell = co.CapMemCellOnDLS(block=block, row=5, column=77)
    assert addresses[5 * 130 + 77] == REGISTER_MAP["capmem_cell"].address(int(cell))
    with pytest.raises(HalValueError):
        CapMemBlock(values=np.full((24, 130), 1023))


def test_cadc_sample_row_is_read_only():
    row = CADCSampleRow(samples=np.arange(256))
    assert CADCSampleRow.decode(row.to_words()) == row
    with pytest.raises(ReadOnlyError):
        row.encode(co.CADCSampleRowOnDLS(0, 0))


def test_default_container_for_ambiguous_coordinates():
    assert default_container_for(co.SynapseDriverOnDLS(0, 0)) is SynapseDriverConfig
    with pytest.raises(HalTypeError, match="name the container type"):
        default_container_for(co.AtomicNeuronOnDLS(0, 0))
