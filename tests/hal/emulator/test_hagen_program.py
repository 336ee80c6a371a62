"""The canonical hagen program (bss2.hal.hagen): structure of the words, argument checks, decoding."""

import numpy as np
import pytest

from bss2.hal import hagen, wire
from bss2.hal.errors import EncodingError, HalValueError
from bss2.hal.regmap import REGISTER_MAP


def test_labels_address_row_bus_and_activation():
    label = int(hagen.hagen_label(1, 13, 7))
    assert label >> 13 == 1 and (label >> 11) & 3 == 13 % 4 and (label >> 6) & 31 == 13 // 4 and label & 63 == 7


def test_input_words_per_vector_structure():
    x = {0: np.array([[0] * 127 + [5], [1] * 128]), 1: np.array([[0] * 128, [2] * 128])}
    words = hagen.hagen_input_words(x, num_sends=1, end_cookie=9)
    stream = wire.decode_instructions(words)
    ops = stream.opcode.tolist()
    assert ops[0] == wire.Opcode.TIMER_RESET and ops[1] == wire.Opcode.WRITE and ops[-1] == wire.Opcode.END
    reads = stream.payload[stream.opcode == wire.Opcode.READ_BLOCK]
    assert ((reads >> np.uint64(32)) & np.uint64(0xFFFFFF)).tolist() == [hagen.cadc_row_address(0), hagen.cadc_row_address(1)] * 2
    spikes = stream.payload[stream.opcode == wire.Opcode.SPIKES]
    counts = ((spikes >> np.uint64(48)) & np.uint64(3)).astype(int)
    assert counts.sum() == 1 + 256  # zero entries send nothing
    labels = np.concatenate([[(int(p) >> s) & 0xFFFF for s in (32, 16, 0)][:c] for p, c in zip(spikes, counts)])
    assert labels[0] == hagen.hagen_label(0, 127, 5)


def test_no_spikes_word_holds_two_labels_for_one_bus():
    rng = np.random.default_rng(0)
    x = {h: rng.integers(0, 32, (50, 128)) * (rng.random((50, 128)) < 0.3) for h in (0, 1)}
    stream = wire.decode_instructions(hagen.hagen_input_words(x, num_sends=3))
    payload = stream.payload[stream.opcode == wire.Opcode.SPIKES]
    counts = ((payload >> np.uint64(48)) & np.uint64(3)).astype(int)
    lanes = np.stack([((payload >> np.uint64(s)) & np.uint64(0xFFFF)).astype(int) for s in (32, 16, 0)], axis=1)
    bus = (lanes >> 11) & 7
    for a, b in ((0, 1), (0, 2), (1, 2)):
        both = counts > b
        assert not np.any(bus[both, a] == bus[both, b])
    # every non-zero entry is sent num_sends times
    assert counts.sum() == 3 * sum(int((v > 0).sum()) for v in x.values())


def test_config_words_write_signed_weights_into_row_pairs():
    w = np.zeros((128, 256), np.int64)
    w[3, 5], w[3, 6] = 17, -9
    words = hagen.hagen_config_words({1: w})
    stream = wire.decode_instructions(words)
    base = REGISTER_MAP["synapse_quad"].base + 16384
    headers = stream.block_headers[((stream.words[stream.block_headers] >> np.uint64(32)) & np.uint64(0xFFFFFF)) == base]
    assert headers.size == 1
    data = stream.block_data[stream.block_of == np.flatnonzero(stream.block_headers == headers[0])[0]]
    synapses = data.astype("<u4").view(np.uint8).reshape(256, 256)
    assert synapses[6, 5] == 17 and synapses[7, 6] == 9 and synapses.sum() == 26


@pytest.mark.parametrize(
    "call",
    [
        lambda: hagen.hagen_input_words({0: np.full((2, 128), 32)}),
        lambda: hagen.hagen_input_words({0: np.zeros((2, 127), int)}),
        lambda: hagen.hagen_input_words({2: np.zeros((2, 128), int)}),
        lambda: hagen.hagen_input_words({0: np.zeros((2, 128), int)}, wait_between_events=64),
        lambda: hagen.hagen_input_words({0: np.zeros((2, 128), int), 1: np.zeros((3, 128), int)}),
        lambda: hagen.hagen_config_words({0: np.full((128, 256), 64)}),
        lambda: hagen.hagen_config_words({0: np.zeros((128, 256), int)}, neuron_capmem={"v_leak": np.full(512, 1023)}),
    ],
)
def test_bad_arguments_raise_clear_errors(call):
    with pytest.raises(HalValueError):
        call()


def test_decoding_rejects_error_responses():
    errors = wire.encode_errors([3], [2], [0])
    with pytest.raises(EncodingError):
        hagen.decode_hagen_responses(errors, [0], 1)


def test_large_batches_encode_vectorised():
    rng = np.random.default_rng(1)
    x = {h: rng.integers(0, 32, (2000, 128)) for h in (0, 1)}
    words = hagen.hagen_input_words(x)
    assert words.dtype == np.uint64 and words.size > 2000 * 86
