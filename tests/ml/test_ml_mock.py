"""Mock parameter, mock forward statistics and measurement on the backend."""

from __future__ import annotations

import pytest
import torch

import bss2.ml as ml
from bss2.ml import mock as mock_module

from ml_testutil import random_inputs, random_weights


def test_mock_parameter_defaults_are_hxtorchs() -> None:
    assert ml.MockParameter() == ml.MockParameter(noise_std=2.0, gain=0.002)


@pytest.mark.parametrize("kwargs", [{"gain": 0.0}, {"gain": 1.5}, {"gain": -0.1}, {"gain": float("nan")},
                                    {"noise_std": -1.0}, {"noise_std": float("inf")}])
def test_mock_parameter_rejects_invalid_values(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="MockParameter"):
        ml.MockParameter(**kwargs)


def test_set_and_get_mock_parameter() -> None:
    parameter = ml.MockParameter(noise_std=0.5, gain=0.004)
    ml.set_mock_parameter(parameter)
    assert ml.get_mock_parameter() is parameter
    with pytest.raises(TypeError):
        ml.set_mock_parameter((0.5, 0.004))  # type: ignore[arg-type]


def _gain_and_noise(x: torch.Tensor, w: torch.Tensor, num_sends: int) -> tuple[float, float]:
    out = ml.matmul(x, w, num_sends=num_sends, mock=True)
    ideal = (x @ w) * num_sends
    fit = float((out * ideal).sum() / (ideal * ideal).sum())
    residual = out - fit * ideal + 0.5  # floor subtracts 0.5 on average
    return fit, float(residual.std())


@pytest.mark.parametrize(("gain", "noise_std", "num_sends"), [(0.002, 2.0, 1), (0.001, 1.0, 3), (0.003, 0.0, 1)])
def test_mock_forward_statistics(gain: float, noise_std: float, num_sends: int) -> None:
    ml.set_mock_parameter(ml.MockParameter(noise_std=noise_std, gain=gain))
    x, w = random_inputs(400, 100), random_weights(100, 64, high=20)
    measured_gain, measured_noise = _gain_and_noise(x, w, num_sends)
    assert measured_gain == pytest.approx(gain, rel=0.02)
    # floor adds uniform quantisation noise (std 1/sqrt(12))
    assert measured_noise == pytest.approx((noise_std ** 2 + 1 / 12) ** 0.5, rel=0.1)


def test_large_cpu_outputs_use_the_noise_pool_with_exact_statistics() -> None:
    x, w = random_inputs(1200, 1024, high=4), random_weights(1024, 512, high=5)
    assert 8 * 1200 * 512 > mock_module._FRESH_NOISE_LIMIT
    ml.set_mock_parameter(ml.MockParameter(noise_std=0.0))
    clean = ml.matmul(x, w, mock=True)
    ml.set_mock_parameter(ml.MockParameter(noise_std=3.0))
    noisy = ml.matmul(x, w, mock=True)
    difference = noisy - clean  # eight tiles of independent noise, each floored
    assert float(difference.mean()) == pytest.approx(0.0, abs=0.1)
    assert float(difference.std()) == pytest.approx((8 * 9.0) ** 0.5, rel=0.05)
    assert not torch.equal(noisy, ml.matmul(x, w, mock=True))


def test_mock_outputs_saturate() -> None:
    ml.set_mock_parameter(ml.MockParameter(noise_std=0.0))
    out = ml.matmul(torch.full((2, 128), 31.0), torch.full((128, 2), 63.0), num_sends=4, mock=True)
    assert out.tolist() == [[127, 127], [127, 127]]


def test_mock_is_reproducible_with_the_torch_seed() -> None:
    x, w = random_inputs(20, 50), random_weights(50, 10)
    torch.manual_seed(5)
    first = ml.matmul(x, w, mock=True)
    torch.manual_seed(5)
    assert torch.equal(first, ml.matmul(x, w, mock=True))


def test_measure_mock_parameter_on_the_ideal_backend() -> None:
    measured = ml.measure_mock_parameter()
    assert measured.gain == pytest.approx(0.002, rel=0.01)
    assert measured.noise_std < 0.5  # only the floor's quantisation
    assert ml.get_mock_parameter() == ml.MockParameter()  # measuring does not install


def test_measure_mock_parameter_goes_through_run_matmul(monkeypatch: pytest.MonkeyPatch) -> None:
    from bss2.ml import _hardware

    def doubled_gain(inputs, weights, num_sends, wait_between_events):  # type: ignore[no-untyped-def]
        acc = inputs @ weights
        return (acc * num_sends // 250).clip(-128, 127)

    monkeypatch.setattr(_hardware, "run_matmul", doubled_gain)
    assert ml.measure_mock_parameter().gain == pytest.approx(0.004, rel=0.01)


def _reference_mock(x: torch.Tensor, w: torch.Tensor, num_sends: int, gain: float) -> torch.Tensor:
    """The noise-free model, tile by tile, in float64."""
    x, w = x.double(), w.double()
    total = torch.zeros(x.shape[0], w.shape[1], dtype=torch.float64)
    for start in range(0, max(x.shape[1], 1), 128):
        product = x[:, start:start + 128] @ w[start:start + 128]
        total += torch.floor(product * (num_sends * gain)).clamp(-128, 127)
    return total.clamp(-128, 127)


@pytest.mark.parametrize(("batch", "rows", "columns"), [(1200, 1024, 512), (700, 300, 1100), (3000, 100, 600)])
def test_large_cpu_path_is_exact_without_noise(batch: int, rows: int, columns: int) -> None:
    assert -(-rows // 128) * batch * columns > mock_module._FRESH_NOISE_LIMIT  # the large-call path
    gain, num_sends = 0.003, 2
    ml.set_mock_parameter(ml.MockParameter(noise_std=0.0, gain=gain))
    x, w = random_inputs(batch, rows), random_weights(rows, columns)
    out = ml.matmul(x, w, num_sends=num_sends, mock=True)
    reference = _reference_mock(x, w, num_sends, gain)
    assert out.dtype == x.dtype
    assert torch.equal(out.double(), reference)
    assert float(reference.abs().max()) >= 127  # saturation is exercised


def test_large_and_small_paths_agree_without_noise() -> None:
    ml.set_mock_parameter(ml.MockParameter(noise_std=0.0, gain=0.002))
    x, w = random_inputs(1500, 600), random_weights(600, 384)
    large = mock_module.mock_matmul(x, w, 1, ml.get_mock_parameter())
    small = torch.cat([mock_module.mock_matmul(x[i:i + 100], w, 1, ml.get_mock_parameter())
                       for i in range(0, 1500, 100)])
    assert torch.equal(large, small)



def test_pool_windows_of_one_block_are_distinct() -> None:
    pool = torch.zeros(64 * 20)
    for _ in range(50):
        offsets = mock_module._pool_offsets(pool, 64 * 10, 8)
        assert len(set(offsets)) == 8
        assert all(offset % 64 == 0 and 0 <= offset <= 64 * 10 for offset in offsets)
    with pytest.raises(ValueError):
        mock_module._pool_offsets(pool, 64 * 15, 8)
