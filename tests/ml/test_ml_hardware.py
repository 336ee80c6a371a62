"""The hardware singleton and the run_matmul boundary."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

import bss2.ml as ml
from bss2.ml import _hardware


def test_init_and_release() -> None:
    assert not ml.is_initialized()
    ml.init_hardware()
    assert ml.is_initialized()
    ml.release_hardware()
    assert not ml.is_initialized()
    ml.release_hardware()  # releasing twice is harmless


def test_context_manager_releases_on_error() -> None:
    with pytest.raises(RuntimeError):
        with ml.hardware():
            assert ml.is_initialized()
            raise RuntimeError("boom")
    assert not ml.is_initialized()


def test_hardware_path_initialises_the_default_backend_once_with_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="bss2.ml"):
        ml.matmul(torch.ones(1, 2), torch.ones(2, 1))
        ml.matmul(torch.ones(1, 2), torch.ones(2, 1))
    assert ml.is_initialized()
    assert sum("without init_hardware" in record.message for record in caplog.records) == 1


def test_mock_path_does_not_initialise_hardware() -> None:
    ml.matmul(torch.ones(1, 2), torch.ones(2, 1), mock=True)
    assert not ml.is_initialized()


def test_run_matmul_checks_its_operands() -> None:
    x, w = np.zeros((2, 3), np.int64), np.zeros((3, 4), np.int64)
    assert _hardware.run_matmul(x, w, 1, 5).shape == (2, 4)
    with pytest.raises(ValueError, match="shapes"):
        _hardware.run_matmul(x, w.T, 1, 5)
    with pytest.raises(TypeError, match="integer"):
        _hardware.run_matmul(x.astype(float), w, 1, 5)
    with pytest.raises(OverflowError, match="inputs"):
        _hardware.run_matmul(x + 32, w, 1, 5)
    with pytest.raises(OverflowError, match="weights"):
        _hardware.run_matmul(x, w - 64, 1, 5)
    with pytest.raises(ValueError, match="num_sends"):
        _hardware.run_matmul(x, w, 0, 5)


def test_run_matmul_ideal_arithmetic_is_exact_at_integer_results() -> None:
    # -1500 * 0.002 = -3 exactly; a float product could floor to -4
    x = np.full((1, 1), 25, np.int64)
    w = np.full((1, 1), -60, np.int64)
    assert _hardware.run_matmul(x, w, 1, 5).item() == -3
    assert _hardware.run_matmul(x, w, 2, 5).item() == -6
