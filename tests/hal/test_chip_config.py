"""ChipConfig: typed access and differential encoding."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bss2.hal import (
    STATIC_BLOCKS,
    AtomicNeuronOnDLS,
    CapMemBlock,
    CapMemBlockOnDLS,
    ChipConfig,
    NeuronConfig,
    SynapseDriverConfig,
    SynapseDriverOnDLS,
    SynapseMatrix,
    SynramOnDLS,
    TimerOnDLS,
    wire,
)
from bss2.hal.errors import HalValueError
from bss2.hal.regmap import REGISTER_MAP


def test_default_config_encodes_reset_values_of_every_static_block():
    addresses, words = ChipConfig().encode()
    image = dict(zip(addresses.tolist(), words.tolist()))
    for block in STATIC_BLOCKS:
        assert image[block.address(0, 0)] == int(block.default_words()[0])
    assert REGISTER_MAP["timer"] not in STATIC_BLOCKS


def test_identical_configs_differ_in_nothing():
    config = ChipConfig()
    config.set(SynramOnDLS(0), SynapseMatrix(weights=np.full((256, 256), 3)))
    assert config.encode_diff(config.copy())[0].size == 0
    assert config.to_words(config.copy()).size == 0


@settings(max_examples=20, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 511), st.integers(0, 63)), min_size=1, max_size=20))
def test_diff_yields_exactly_the_changed_words(changes):
    base = ChipConfig()
    changed = base.copy()
    expected = {}
    for neuron, capacitance in changes:
        coord = AtomicNeuronOnDLS.from_enum(neuron)
        changed.set(coord, NeuronConfig(membrane_capacitance=capacitance))
        expected[int(NeuronConfig.addresses(coord)[0])] = int(NeuronConfig(membrane_capacitance=capacitance).to_words()[0])
    expected = {a: w for a, w in expected.items() if w != int(base.image[a])}
    addresses, words = changed.encode_diff(base)
    assert dict(zip(addresses.tolist(), words.tolist())) == expected


def test_weight_change_touches_only_weight_words_and_is_one_block_per_synram():
    base = ChipConfig()
    rng = np.random.default_rng(1)
    base.set(SynramOnDLS(1), SynapseMatrix(labels=rng.integers(0, 64, (256, 256))))
    new = base.copy()
    new.set_synapse_weights(SynramOnDLS(1), rng.integers(1, 64, (256, 256)))
    addresses, _ = new.encode_diff(base)
    assert addresses.size == 16384
    stream = wire.decode_instructions(new.to_words(base))
    assert stream.block_headers.size == 1
    assert np.array_equal(new.synapse_matrix(SynramOnDLS(1)).labels, base.synapse_matrix(SynramOnDLS(1)).labels)


def test_capmem_changes_are_detected():
    base = ChipConfig()
    new = base.copy()
    new.set(SynapseDriverOnDLS(0, 0), SynapseDriverConfig(enable_receiver=True))
    assert not new.changes_capmem(base)
    new.set(CapMemBlockOnDLS(1), CapMemBlock.nominal())
    assert new.changes_capmem(base)
    assert new.capmem_block(CapMemBlockOnDLS(1)) == CapMemBlock.nominal()


def test_non_static_containers_are_rejected():
    from bss2.hal import Timer

    with pytest.raises(HalValueError, match="not static"):
        ChipConfig().set(TimerOnDLS(), Timer(value=3))
    with pytest.raises(HalValueError, match="shape"):
        ChipConfig().set_synapse_weights(SynramOnDLS(0), np.zeros((2, 2)))
