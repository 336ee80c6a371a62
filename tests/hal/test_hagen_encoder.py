"""The compiled hagen input encoder gives exactly the words of the numpy passes."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from bss2.hal import HalValueError, hagen, wire

kernel = hagen._compiled_encoder()
needs_numba = pytest.mark.skipif(kernel is None, reason="numba is not importable or BSS2_HAGEN_ENCODER=numpy")


def _case(rng: np.random.Generator, case: int) -> tuple[np.ndarray, tuple[int, ...], int, int, int]:
    n_syn = int(rng.integers(1, 3))
    synrams = (0, 1) if n_syn == 2 else (int(rng.integers(0, 2)),)
    vectors = int(rng.integers(0, 6)) if case % 4 else int(rng.integers(0, 80))
    x = rng.integers(0, 32, (vectors, hagen.ROWS, n_syn)).astype(np.uint16)
    x[rng.random(x.shape) < rng.choice([0.0, 0.3, 0.9, 0.99, 1.0])] = 0  # dense, sparse, empty vectors
    if case % 5 == 0:  # rows of a few PADI buses only: many labels share a bus with the one before
        x[:, rng.integers(0, 4) :: 4] = 0
        x[:, rng.integers(0, 4) :: 4] = 0
    if case % 7 == 0:
        x[:, :, 0] = 0  # one synram without events
    num_sends = int(rng.choice([1, 1, 2, 3, 7]))
    return x, synrams, num_sends, int(rng.integers(0, 64)), int(rng.integers(0, 1 << 20))


@needs_numba
def test_compiled_encoder_equals_the_numpy_passes_on_random_inputs():
    rng = np.random.default_rng(0)
    for case in range(1500):
        x, synrams, num_sends, wait, settle = _case(rng, case)
        expected = hagen._encode_vectors_numpy(x, synrams, num_sends, wait, settle)
        got = hagen._encode_vectors_compiled(kernel, x, synrams, num_sends, wait, settle)
        assert got.dtype == expected.dtype == np.uint64
        assert np.array_equal(got, expected), (case, x.shape, synrams, num_sends, wait)


@needs_numba
def test_compiled_encoder_takes_any_integer_dtype_and_layout():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 32, (9, hagen.ROWS, 2))
    expected = hagen._encode_vectors_numpy(x.astype(np.uint16), (0, 1), 2, 5, 8)
    for variant in (x.astype(np.uint8), x, np.asfortranarray(x.astype(np.uint16)), x.astype(np.uint16)[::1]):
        assert np.array_equal(hagen._encode_vectors_compiled(kernel, variant, (0, 1), 2, 5, 8), expected)


def test_empty_batch_and_all_zero_vectors():
    for which in ("compiled", "numpy"):
        if which == "compiled" and kernel is None:
            continue
        encode = (lambda *a: hagen._encode_vectors_compiled(kernel, *a)) if which == "compiled" else hagen._encode_vectors_numpy
        assert encode(np.zeros((0, hagen.ROWS, 2), np.uint16), (0, 1), 1, 5, 8).size == 0
        words = encode(np.zeros((3, hagen.ROWS, 1), np.uint16), (1,), 4, 5, 8)
        stream = wire.decode_instructions(words)
        assert words.size == 3 * 4 and not (stream.opcode == wire.Opcode.SPIKES).any()  # no events, every vector read


@pytest.mark.parametrize("mode", ["numba", "numpy"])
def test_check_raises_for_activations_above_31(mode, monkeypatch):
    if mode == "numba" and kernel is None:
        pytest.skip("numba is not importable")
    if mode == "numpy":
        monkeypatch.setattr(hagen, "_compiled_encoder", lambda: None)
    assert hagen.encoder_mode() == mode
    x = np.zeros((2, hagen.ROWS, 1), np.uint16)
    x[1, 17, 0] = 40
    with pytest.raises(HalValueError, match=r"\[0, 31\].*40"):
        hagen.encode_vectors(x, (0,), 1, 5, 8)
    negative = x.astype(np.int64)
    negative[1, 17, 0] = -1  # wraps around to a large value in the kernel's unsigned layout
    with pytest.raises(HalValueError, match=r"\[0, 31\]"):
        hagen.encode_vectors(negative, (0,), 1, 5, 8)
    x[1, 17, 0] = 31
    assert np.array_equal(hagen.encode_vectors(x, (0,), 1, 5, 8), hagen._encode_vectors_numpy(x, (0,), 1, 5, 8))


def test_hagen_input_words_are_the_same_with_either_encoder(monkeypatch):
    rng = np.random.default_rng(2)
    inputs = {0: rng.integers(0, 32, (5, 128)), 1: rng.integers(0, 32, (5, 128))}
    inputs[1][rng.random((5, 128)) < 0.5] = 0
    compiled = hagen.hagen_input_words(inputs, num_sends=2, wait_between_events=9, end_cookie=4)
    monkeypatch.setattr(hagen, "_compiled_encoder", lambda: None)
    assert np.array_equal(hagen.hagen_input_words(inputs, num_sends=2, wait_between_events=9, end_cookie=4), compiled)


def test_environment_selects_the_numpy_passes():
    code = "from bss2.hal import hagen; print(hagen.encoder_mode())"
    for value, expected in (("numpy", "numpy"), (" NumPy ", "numpy")):
        env = {**os.environ, "BSS2_HAGEN_ENCODER": value}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        assert out.stdout.strip() == expected
    env = {**os.environ, "BSS2_HAGEN_ENCODER": "fortran"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode != 0 and "BSS2_HAGEN_ENCODER" in out.stderr


def _gather_case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, tuple[int, ...], int]:
    """A source value and a column map as the executor's lean programs build them: per phase, tiles whose
    (row, synram) entries take consecutive source columns, the rest without input."""
    synrams = (0, 1) if rng.random() < 0.6 else (int(rng.integers(0, 2)),)
    n_syn, phases = len(synrams), int(rng.integers(1, 4))
    width = int(rng.integers(1, 400))
    source = rng.integers(0, 32, (int(rng.integers(0, 12)), width))
    source[rng.random(source.shape) < rng.choice([0.0, 0.05, 0.5, 0.95])] = 0
    columns = np.full((phases, hagen.ROWS, n_syn), -1, np.int64)
    for p in range(phases):
        for k in range(n_syn):
            if rng.random() < 0.8:
                rows = int(rng.integers(1, hagen.ROWS + 1))
                first = int(rng.integers(0, hagen.ROWS - rows + 1))
                start = int(rng.integers(0, max(1, width - rows + 1)))
                count = min(rows, width - start)
                columns[p, first : first + count, k] = start + np.arange(count)
    return source, columns.reshape(phases, -1), synrams, int(rng.choice([1, 1, 1, 2, 3]))


@pytest.mark.parametrize("mode", ["numba", "numpy"])
def test_gathered_encoding_equals_encoding_the_gathered_inputs(mode, monkeypatch):
    if mode == "numba" and kernel is None:
        pytest.skip("numba is not importable")
    if mode == "numpy":
        monkeypatch.setattr(hagen, "_compiled_encoder", lambda: None)
    rng = np.random.default_rng(5)
    for case in range(400):
        source, columns, synrams, num_sends = _gather_case(rng)
        phases, batch = columns.shape[0], source.shape[0]
        x = np.zeros((phases * batch, hagen.ROWS * len(synrams)), np.uint16)
        for p in range(phases):
            used = columns[p] >= 0
            x[p * batch : (p + 1) * batch, used] = source[:, columns[p][used]]
        expected = hagen._encode_vectors_numpy(x.reshape(-1, hagen.ROWS, len(synrams)), synrams, num_sends, 7, 100)
        for variant in (source.astype(np.uint8), source, np.asfortranarray(source), source.astype(np.int32)):
            got = hagen.encode_gathered(variant, columns, synrams, num_sends, 7, 100)
            assert np.array_equal(got, expected), (case, variant.dtype)


@pytest.mark.parametrize("mode", ["numba", "numpy"])
def test_gathered_encoding_checks_only_the_gathered_columns(mode, monkeypatch):
    if mode == "numba" and kernel is None:
        pytest.skip("numba is not importable")
    if mode == "numpy":
        monkeypatch.setattr(hagen, "_compiled_encoder", lambda: None)
    source = np.full((3, 300), 5, np.int64)
    source[:, 200:] = 99  # never gathered
    columns = np.full((1, hagen.ROWS * 2), -1, np.int64)
    columns[0, ::2] = np.arange(128)
    words = hagen.encode_gathered(source, columns, (0, 1), 1, 0, 8)
    assert words.size == 3 * (5 + 128 // 3 + 1)  # 128 events per vector, 43 words of up to three labels
    for bad in (99, 32, -1):
        source[1, 7] = bad
        with pytest.raises(HalValueError, match=r"\[0, 31\]"):
            hagen.encode_gathered(source, columns, (0, 1), 1, 0, 8)


def test_gathered_encoding_rejects_bad_column_maps():
    source = np.ones((2, 100), np.uint8)
    columns = np.full((1, hagen.ROWS), -1, np.int64)
    columns[0, :5] = [0, 1, 2, 3, 100]  # one past the last source column
    with pytest.raises(HalValueError, match="source has 100 columns"):
        hagen.encode_gathered(source, columns, (0,), 1, 0, 8)
    columns[0, 4] = -2
    with pytest.raises(HalValueError, match="-2"):
        hagen.encode_gathered(source, columns, (0,), 1, 0, 8)
    with pytest.raises(HalValueError, match=r"shape \(phases, 256\)"):
        hagen.encode_gathered(source, np.zeros((1, hagen.ROWS), np.int64), (0, 1), 1, 0, 8)
    with pytest.raises(HalValueError, match="2-D integer"):
        hagen.encode_gathered(source.astype(float), np.zeros((1, hagen.ROWS), np.int64), (0,), 1, 0, 8)
    columns[0, 4] = 99
    columns.flags.writeable = False  # remembered: a narrower source is still refused
    assert hagen.encode_gathered(source, columns, (0,), 1, 0, 8).size
    with pytest.raises(HalValueError, match="source has 50 columns"):
        hagen.encode_gathered(source[:, :50], columns, (0,), 1, 0, 8)
