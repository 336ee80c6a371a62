"""Fixtures of the bss2.ml tests: each test starts from the default mock parameter and a released backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

import bss2.ml as ml


@pytest.fixture(autouse=True)
def _ideal_chip(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hardware path runs on an ideal emulated chip, so results equal the documented arithmetic exactly."""
    monkeypatch.setenv("BSS2_CONNECTION", "emulator:0:ideal")


@pytest.fixture(autouse=True)
def _clean_state() -> Iterator[None]:
    ml.set_mock_parameter(ml.MockParameter())
    torch.manual_seed(0)
    yield
    ml._tracing._active = None  # a failed tracing test must not leave a tracer recording
    ml.release_hardware()
    ml.set_mock_parameter(ml.MockParameter())
