"""Wire format: golden vectors, encode/decode properties, robustness against arbitrary words."""

from importlib import resources

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from bss2.hal import wire
from bss2.hal.errors import EncodingError, HalValueError

EXAMPLES = yaml.safe_load(resources.files("bss2.hal").joinpath("wire_examples.yaml").read_text())


@pytest.mark.parametrize("example", EXAMPLES["instructions"] + EXAMPLES["responses"], ids=lambda e: e["name"])
def test_golden_examples_encode_exactly(example):
    words = eval("wire." + example["call"], {"wire": wire})  # calls are plain encoder expressions
    assert [int(w) for w in words] == example["words"]


def test_golden_instructions_decode():
    stream = np.array([w for e in EXAMPLES["instructions"] for w in e["words"]], dtype=np.uint64)
    decoded = wire.decode_instructions(stream)
    assert [wire.Opcode(int(o)).name for o in decoded.opcode] == [e["name"] for e in EXAMPLES["instructions"]]
    assert decoded.block_data.tolist() == [1, 2, 3]
    assert decoded.addresses[0] == 0x000804 and decoded.low32[0] == 0xDEADBEEF


def test_golden_responses_decode():
    stream = np.array([w for e in EXAMPLES["responses"] for w in e["words"]], dtype=np.uint64)
    r = wire.decode_responses(stream)
    assert r.read_addresses.tolist() == [0x000002, 0x002000, 0x002001]
    assert r.read_data.tolist() == [0x12345678, 0xAABBCCDD, 0x11223344]
    assert r.spike_labels.tolist() == [0x0123] and r.spike_times.tolist() == [0x10000]
    assert r.madc_channels.tolist() == [1] and r.madc_values.tolist() == [0x3FF] and r.madc_times.tolist() == [5]
    assert r.error_codes.tolist() == [1] and r.error_opcodes.tolist() == [0x42] and r.error_indices.tolist() == [7]
    assert r.end_cookies.tolist() == [0xC0FFEE] and r.malformed == 0


addresses = st.integers(0, wire.ADDRESS_LIMIT - 1)
data32 = st.integers(0, 2**32 - 1)


@given(st.lists(st.tuples(addresses, data32), max_size=50))
def test_writes_round_trip(pairs):
    a = np.array([p[0] for p in pairs], dtype=np.int64)
    d = np.array([p[1] for p in pairs], dtype=np.int64)
    decoded = wire.decode_instructions(wire.encode_write(a, d))
    assert (decoded.opcode == wire.Opcode.WRITE).all()
    assert decoded.addresses.tolist() == a.tolist() and decoded.low32.tolist() == d.tolist()


@given(st.integers(0, 1000), st.lists(data32, min_size=1, max_size=300))
def test_write_blocks_round_trip(start, data):
    words = wire.encode_write_block(start, data)
    decoded = wire.decode_instructions(words)
    assert decoded.block_data.tolist() == data
    assert (decoded.opcode == wire.Opcode.WRITE_BLOCK).all()


def test_blocks_longer_than_the_count_field_are_split():
    data = np.arange(70000) % 2**32
    decoded = wire.decode_instructions(wire.encode_write_block(0x10000, data))
    assert decoded.block_data.size == 70000 and np.array_equal(decoded.block_data, data)
    assert decoded.block_headers.size == 2


@given(
    st.lists(st.integers(0, 2**16 - 1), max_size=40),
    st.lists(st.tuples(addresses, data32), max_size=20),
    st.lists(st.tuples(st.integers(0, 1000), st.lists(data32, min_size=1, max_size=9)), max_size=5),
)
def test_mixed_response_streams_round_trip_in_order(labels, reads, blocks):
    parts, expected_addresses, expected_data = [], [], []
    for a, d in reads:
        parts.append(wire.encode_read_data([a], [d]))
        expected_addresses.append(a)
        expected_data.append(d)
    for start, data in blocks:
        parts.append(wire.encode_block_data(start, data))
        expected_addresses.extend(range(start, start + len(data)))
        expected_data.extend(data)
    parts.append(wire.encode_spike_responses(labels, np.arange(len(labels))))
    parts.append(wire.encode_end_response(9))
    r = wire.decode_responses(np.concatenate(parts))
    assert r.read_addresses.tolist() == expected_addresses and r.read_data.tolist() == expected_data
    assert r.spike_labels.tolist() == labels and r.end_cookies.tolist() == [9] and r.malformed == 0


@given(st.lists(st.tuples(st.integers(0, 1023), st.integers(0, 2**32 - 1), st.integers(0, 1)), max_size=100))
def test_madc_samples_round_trip(samples):
    values, times, channels = (np.array([s[k] for s in samples], dtype=np.int64) for k in range(3))
    decoded = wire.decode_responses(wire.encode_madc_samples(values, times, channels))
    assert decoded.madc_values.tolist() == values.tolist() and decoded.madc_times.tolist() == times.tolist()
    assert decoded.madc_channels.tolist() == channels.tolist() and decoded.malformed == 0
    if samples:  # one channel for all
        assert wire.decode_responses(wire.encode_madc_samples(values, times, 1)).madc_channels.tolist() == [1] * len(samples)


def test_madc_sample_arrays_of_unequal_length_are_refused():
    with pytest.raises(HalValueError, match="differ in length: 2, 3, 1"):
        wire.encode_madc_samples([1, 2], [1, 2, 3])
    with pytest.raises(HalValueError, match="differ in length: 2, 2, 3"):
        wire.encode_madc_samples([1, 2], [1, 2], [0, 1, 0])


@given(st.lists(st.integers(0, 2**16 - 1), min_size=1, max_size=50), st.integers(1, 3), st.integers(0, 63))
def test_spike_packs_carry_every_label_in_order(labels, group, delay):
    words = wire.encode_spikes(labels, delays=delay, group=group)
    assert words.size == -(-len(labels) // group)
    payload = words & np.uint64(0x00FF_FFFF_FFFF_FFFF)
    counts = ((payload >> np.uint64(48)) & np.uint64(3)).astype(int)
    delays = ((payload >> np.uint64(50)) & np.uint64(63)).astype(int)
    slots = np.stack([(payload >> np.uint64(s)) & np.uint64(0xFFFF) for s in (32, 16, 0)], axis=1).astype(int)
    recovered = [int(slots[i, j]) for i in range(words.size) for j in range(counts[i])]
    assert recovered == labels and (delays == delay).all()


@settings(max_examples=200)
@given(st.lists(st.integers(0, 2**64 - 1), max_size=200))
def test_arbitrary_words_never_crash_the_decoders(words):
    array = np.array(words, dtype=np.uint64)
    stream = wire.decode_instructions(array)
    assert stream.index.size + int(np.count_nonzero(wire.block_payload_mask(array, wire.Opcode.WRITE_BLOCK)[0])) == array.size
    r = wire.decode_responses(array)
    assert r.malformed >= 0


def test_truncated_block_response_is_counted_malformed():
    words = wire.encode_block_data(0, [1, 2, 3, 4])[:-1]
    assert wire.decode_responses(words).malformed == 1


def test_encoders_reject_out_of_range_values_by_name():
    with pytest.raises(HalValueError, match=r"address = 16777216 is out of range"):
        wire.encode_write([1 << 24], [0])
    with pytest.raises(HalValueError, match="data"):
        wire.encode_write([0], [1 << 32])
    with pytest.raises(HalValueError, match="label"):
        wire.encode_spikes([70000])
    with pytest.raises(HalValueError, match="delay"):
        wire.encode_spikes([1], delays=64)
    with pytest.raises(HalValueError, match="integers"):
        wire.encode_write([1.5], [0])
    with pytest.raises(EncodingError, match="1-D"):
        wire.decode_responses(np.zeros((2, 2), np.uint64))


@given(st.lists(st.one_of(
    st.tuples(st.just("single"), addresses, data32),
    st.tuples(st.just("block"), st.integers(0, 1000), st.lists(data32, min_size=1, max_size=7)),
), max_size=12))
def test_writes_lists_every_written_word_in_program_order(items):
    parts, expected = [], []
    for item in items:
        if item[0] == "single":
            parts.append(wire.encode_write([item[1]], [item[2]]))
            expected.append((item[1], item[2]))
        else:
            parts.append(wire.encode_write_block(item[1], item[2]))
            expected.extend((item[1] + k, v) for k, v in enumerate(item[2]))
    stream = wire.decode_instructions(np.concatenate(parts) if parts else np.empty(0, np.uint64))
    got_addresses, got_data = stream.writes()
    assert list(zip(got_addresses.tolist(), got_data.tolist())) == expected
