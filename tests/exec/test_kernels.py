"""The executor's compiled host passes (:mod:`bss2.exec._kernels`) give exactly what their numpy twins give."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bss2.exec import _kernels
from bss2.hal import wire

needs_numba = pytest.mark.skipif(_kernels.mode() != "numba", reason="numba is not importable or BSS2_EXEC_KERNELS=numpy")

_INT8 = hnp.arrays(np.int8, st.tuples(st.integers(0, 40), st.integers(1, 300)))


@needs_numba
@given(data=st.data(), count=st.integers(1, 3))
@settings(max_examples=150, deadline=None)
def test_saturated_sum_equals_the_numpy_twin(data, count):
    first = data.draw(_INT8)
    sources = [first] + [data.draw(hnp.arrays(np.int8, first.shape)) for _ in range(count - 1)]
    if data.draw(st.booleans()) and first.shape[1] > 1:  # strided views, as tile outputs may be
        sources = [s[:, ::2] for s in sources]
    expected = _kernels.saturated_sum_numpy(sources, np.int16)
    got = _kernels.saturated_sum(sources, np.int16)
    assert got.dtype == np.int8 and np.array_equal(got, expected)
    exact = np.clip(np.sum([s.astype(np.int64) for s in sources], axis=0), -128, 127)
    assert np.array_equal(got, exact)


@given(total=hnp.arrays(st.sampled_from([np.int16, np.int32]), st.tuples(st.integers(0, 30), st.integers(1, 200))))
@settings(max_examples=150, deadline=None)
def test_saturate_int8_clips_every_entry(total):
    expected = np.clip(total.astype(np.int64), -128, 127).astype(np.int8)
    assert np.array_equal(_kernels.saturate_int8(total.copy()), expected)


def test_numpy_twins_are_used_without_numba(monkeypatch):
    monkeypatch.setattr(_kernels, "_compiled", lambda: None)
    assert _kernels.mode() == "numpy"
    a = np.array([[100, -100, 5]], np.int8)
    b = np.array([[100, -100, -5]], np.int8)
    assert _kernels.saturated_sum([a, b], np.int16).tolist() == [[127, -128, 0]]
    assert _kernels.saturate_int8(np.array([[300, -300, 7]], np.int32)).tolist() == [[127, -128, 7]]


def _answers(rng: np.random.Generator, vectors: int, n_syn: int) -> np.ndarray:
    body = rng.integers(0, 2**63, (vectors, n_syn, 33), dtype=np.uint64)
    body.view(np.uint8).reshape(vectors, n_syn, 264)[:, :, 7] = int(wire.ResponseType.BLOCK_DATA)
    return body


def _reference_cut(body: np.ndarray, tiles: np.ndarray, vectors: int) -> np.ndarray:
    samples = body[:, :, 1:].view(np.uint8).reshape(body.shape[0], body.shape[1], 256)
    return np.stack([(samples[p * vectors : (p + 1) * vectors, k, lo:hi].astype(np.int16) - 128).astype(np.int8)
                     for p, k, lo, hi in tiles.tolist()])


@pytest.mark.parametrize("which", ["numba", "numpy"])
@given(seed=st.integers(0, 2**32 - 1), vectors=st.integers(1, 20), n_syn=st.integers(1, 2), phases=st.integers(1, 3),
       width=st.integers(1, 256))
@settings(max_examples=60, deadline=None)
def test_cut_samples_equals_sample_minus_128(which, seed, vectors, n_syn, phases, width):
    if which == "numba" and _kernels.mode() != "numba":
        pytest.skip("numba is not importable")
    rng = np.random.default_rng(seed)
    body = _answers(rng, vectors * phases, n_syn)
    tiles = np.array([(int(rng.integers(0, phases)), int(rng.integers(0, n_syn)), lo, lo + width)
                      for lo in rng.integers(0, 257 - width, int(rng.integers(1, 5)))], np.int64)
    original = _kernels._compiled
    _kernels._compiled = original if which == "numba" else (lambda: None)
    try:
        got = _kernels.cut_samples(body, tiles, vectors)
    finally:
        _kernels._compiled = original
    assert got is not None and np.array_equal(got, _reference_cut(body, tiles, vectors))


@pytest.mark.parametrize("which", ["numba", "numpy"])
def test_cut_samples_refuses_answers_that_are_not_block_data(which, monkeypatch):
    if which == "numba" and _kernels.mode() != "numba":
        pytest.skip("numba is not importable")
    if which == "numpy":
        monkeypatch.setattr(_kernels, "_compiled", lambda: None)
    rng = np.random.default_rng(3)
    body = _answers(rng, 4, 2)
    tiles = np.array([[0, 0, 0, 256], [0, 1, 0, 256]], np.int64)
    assert _kernels.cut_samples(body, tiles, 4) is not None
    body.view(np.uint8).reshape(4, 2, 264)[3, 1, 7] = int(wire.ResponseType.ERROR)
    assert _kernels.cut_samples(body, tiles, 4) is None
