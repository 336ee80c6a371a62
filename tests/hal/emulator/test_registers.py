"""Register semantics: read-after-write, read-only and write-only blocks, errors that change nothing."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bss2.hal import wire
from bss2.hal.emulator import Emulator
from bss2.hal.regmap import REGISTER_MAP
from bss2.hal.wire import ErrorCode

RW_BLOCKS = [b for b in REGISTER_MAP if b.access == "rw" and b.name not in ("timer",)]


def run(emulator, *parts):
    return wire.decode_responses(emulator.execute(np.concatenate([np.atleast_1d(p) for p in parts])))


def storable(block, value):
    """Values the chip accepts for a block (CapMem rejects code 1023, a PPU cannot be started)."""
    if block.name == "capmem_cell" and value & 0x3FF == 0x3FF:
        value &= ~1
    if block.name == "ppu_control":
        value &= ~1
    return value


@pytest.fixture(scope="module")
def emulator():
    return Emulator(seed=11)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_read_after_write_for_every_rw_block(emulator, data):
    block = data.draw(st.sampled_from(RW_BLOCKS))
    instance = data.draw(st.integers(0, block.count - 1))
    word = data.draw(st.integers(0, block.words - 1))
    value = storable(block, data.draw(st.integers(0, 0xFFFF_FFFF)))
    address = block.address(instance, word)
    result = run(emulator, wire.encode_write([address], [value]), wire.encode_read([address]))
    assert result.error_codes.size == 0
    assert result.read_data.tolist() == [value]


@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_block_write_then_block_read_round_trips(emulator, data):
    block = data.draw(st.sampled_from([b for b in RW_BLOCKS if b.word_stride == 1]))
    count = data.draw(st.integers(1, min(40, block.count * block.words)))
    values = [storable(block, v) for v in data.draw(st.lists(st.integers(0, 0xFFFF_FFFF), min_size=count, max_size=count))]
    start = block.base
    result = run(emulator, wire.encode_write_block(start, values), wire.encode_read_block(start, count))
    assert result.error_codes.size == 0
    assert result.read_data.tolist() == values


def test_reads_see_writes_in_program_order(emulator):
    address = REGISTER_MAP["padi_bus_config"].address(3)
    result = run(emulator, wire.encode_write([address], [1]), wire.encode_read([address]), wire.encode_write([address], [0]), wire.encode_read([address]))
    assert result.read_data.tolist() == [1, 0]


def test_state_persists_across_programs(emulator):
    address = REGISTER_MAP["neuron_config"].address(77)
    run(emulator, wire.encode_write([address], [0x1234]))
    assert run(emulator, wire.encode_read([address])).read_data.tolist() == [0x1234]


def test_chip_id_is_the_seed_and_read_only():
    emulator = Emulator(seed=(5 << 32) | 0xBEEF)
    assert emulator.chip_id == 0xBEEF
    result = run(emulator, wire.encode_write([0], [7]), wire.encode_read([0]))
    assert result.error_codes.tolist() == [ErrorCode.READ_ONLY]
    assert result.read_data.tolist() == [0xBEEF]


def test_write_only_blocks_read_as_zero(emulator):
    address = REGISTER_MAP["spike_injection"].base
    result = run(emulator, wire.encode_write([address], [0x1234]), wire.encode_read([address]))
    assert result.read_data.tolist() == [0]


def test_read_only_write_changes_nothing(emulator):
    counter = REGISTER_MAP["crossbar_output_event_counter"].base
    before = run(emulator, wire.encode_read_block(counter, 12)).read_data
    result = run(emulator, wire.encode_write_block(counter, np.arange(12)), wire.encode_read_block(counter, 12))
    assert result.error_codes.tolist() == [ErrorCode.READ_ONLY]
    assert np.array_equal(result.read_data, before)


def test_unmapped_address_is_an_error_and_execution_continues(emulator):
    unmapped = 0x7F_0000
    result = run(emulator, wire.encode_read([unmapped]), wire.encode_write([unmapped], [1]), wire.encode_read([2]), wire.encode_end(9))
    assert result.error_codes.tolist() == [ErrorCode.UNMAPPED_ADDRESS] * 2
    assert result.error_indices.tolist() == [0, 1]
    assert result.read_data.size == 1 and result.end_cookies.tolist() == [9]


def test_capmem_code_1023_is_rejected_and_leaves_the_cell(emulator):
    cell = REGISTER_MAP["capmem_cell"].address(5)
    run(emulator, wire.encode_write([cell], [400]))
    result = run(emulator, wire.encode_write([cell], [1023]), wire.encode_write_block(cell, [1, 1023]), wire.encode_read_block(cell, 2))
    assert result.error_codes.tolist() == [ErrorCode.INVALID_VALUE] * 2
    assert result.read_data[0] == 400


def test_starting_a_ppu_is_not_emulated(emulator):
    control = REGISTER_MAP["ppu_control"].address(1)
    before = run(emulator, wire.encode_read([control])).read_data.tolist()
    result = run(emulator, wire.encode_write([control], [1]), wire.encode_read([control]))
    assert result.error_codes.tolist() == [ErrorCode.NOT_EMULATED]
    assert result.read_data.tolist() == before


def test_unknown_and_malformed_instructions_are_reported_with_their_index(emulator):
    words = np.array([0xEE << 56, int(wire.encode_read([2])[0]) | 5, int(wire.encode_end(3)[0])], dtype=np.uint64)
    result = run(emulator, words)
    assert result.error_codes.tolist() == [ErrorCode.UNKNOWN_OPCODE, ErrorCode.MALFORMED]
    assert result.error_opcodes.tolist() == [0xEE, wire.Opcode.READ]
    assert result.end_cookies.tolist() == [3]


def test_truncated_block_writes_nothing(emulator):
    address = REGISTER_MAP["ppu_memory_word"].base
    run(emulator, wire.encode_write_block(address, [5, 6, 7, 8]))
    truncated = wire.encode_write_block(address, [1, 2, 3, 4])[:-1]
    result = run(emulator, truncated)
    assert result.error_codes.tolist() == [ErrorCode.TRUNCATED_BLOCK]
    assert run(emulator, wire.encode_read_block(address, 4)).read_data.tolist() == [5, 6, 7, 8]


def test_chip_reset_restores_defaults():
    emulator = Emulator(seed=3)
    block = REGISTER_MAP["synapse_driver_config"]
    run(emulator, wire.encode_write([block.base], [0xABC]))
    result = run(emulator, wire.encode_write([REGISTER_MAP["chip_reset"].base], [1]), wire.encode_read([block.base, 0]))
    assert result.read_data.tolist() == [int(block.default_words()[0]), 3]


def test_timer_counts_cycles_and_can_be_set(emulator):
    words = np.concatenate([
        wire.encode_timer_reset(), wire.encode_wait_until([1000]), wire.encode_read([2]),
        wire.encode_write([2], [50_000]), wire.encode_read([2]),
    ])
    data = run(emulator, words).read_data
    assert data[0] == 1000
    assert data[1] == 50_001  # the read issues one cycle after the write


def test_end_echoes_its_cookie(emulator):
    assert run(emulator, wire.encode_end(0xCAFE)).end_cookies.tolist() == [0xCAFE]


def test_reset_method_returns_to_power_on():
    emulator = Emulator(seed=2)
    run(emulator, wire.encode_write([REGISTER_MAP["padi_bus_config"].base], [1]))
    emulator.reset()
    assert run(emulator, wire.encode_read([REGISTER_MAP["padi_bus_config"].base])).read_data.tolist() == [0]
