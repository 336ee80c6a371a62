"""The register map source: consistency and coverage of CHIP.md's register blocks."""

import numpy as np
import pytest

from bss2.hal import coordinates as co
from bss2.hal.errors import HalValueError
from bss2.hal.regmap import REGISTER_MAP, block_of_addresses, load_register_map

REQUIRED_BLOCKS = [
    "synapse_quad", "synapse_driver_config", "padi_bus_config", "crossbar_node", "crossbar_output_config",
    "background_spike_source", "neuron_config", "neuron_backend_config", "neuron_reset", "capmem_cell",
    "capmem_block_config", "cadc_config", "cadc_channel_config", "cadc_sample_quad", "madc_config",
    "madc_control", "readout_source_selection", "ppu_memory_word", "ppu_control", "ppu_status", "timer",
    "spike_injection", "chip_reset", "chip_id",
]


@pytest.mark.parametrize("name", REQUIRED_BLOCKS)
def test_every_required_block_is_mapped(name):
    block = REGISTER_MAP[name]
    assert block.count == block.coordinate.SIZE
    assert block.fields


def test_read_only_blocks():
    for name in ("chip_id", "cadc_sample_quad", "ppu_status", "crossbar_output_event_counter"):
        assert REGISTER_MAP[name].access == "ro"


def test_blocks_do_not_overlap_and_lookup_finds_each_word():
    seen = set()
    for block in REGISTER_MAP:
        addresses = block.all_addresses.reshape(-1)
        assert len(set(addresses.tolist()) & seen) == 0
        seen.update(addresses.tolist())
        index, ordered = block_of_addresses(addresses)
        assert all(ordered[i] is block for i in np.unique(index))
        instance, word = block.locate(block.all_addresses)
        assert np.array_equal(instance, np.broadcast_to(np.arange(block.count)[:, None], instance.shape))
        assert np.array_equal(word, np.broadcast_to(np.arange(block.words)[None, :], word.shape))


def test_unmapped_addresses_are_reported():
    index, _ = block_of_addresses(np.array([0x7, 0x3FFF, 0x20000, 0xFFFFFF]))
    assert (index == -1).all()


def test_synapse_planes_are_contiguous_per_synram():
    block = REGISTER_MAP["synapse_quad"]
    weights_synram1 = block.all_addresses[co.SynapseQuadOnSynram.SIZE :, 0]
    assert np.all(np.diff(weights_synram1) == 1)


def test_loader_rejects_overlapping_fields():
    text = """
enums: {}
capmem_rows: {neuron: [%s], shared: []}
blocks:
  bad:
    base: 0
    coordinate: TimerOnDLS
    count: 1
    words: 1
    container: Bad
    fields:
      - {name: a, word: 0, offset: 0, width: 4}
      - {name: b, word: 0, offset: 3, width: 4}
""" % ", ".join("{name: r%d, nominal: 0}" % i for i in range(24))
    with pytest.raises(HalValueError, match="overlaps"):
        load_register_map(text)


def test_loader_rejects_count_mismatch():
    text = """
capmem_rows: {neuron: [%s], shared: []}
blocks:
  bad: {base: 0, coordinate: SynramOnDLS, count: 3, words: 1, container: Bad, fields: [{name: a, word: 0, offset: 0, width: 4}]}
""" % ", ".join("{name: r%d, nominal: 0}" % i for i in range(24))
    with pytest.raises(HalValueError, match="count"):
        load_register_map(text)


def test_capmem_row_names():
    assert REGISTER_MAP.capmem_row("v_leak") == 0
    assert len(REGISTER_MAP.capmem_neuron_rows) == 24
    with pytest.raises(HalValueError):
        REGISTER_MAP.capmem_row("nonsense")
