"""Tensor helpers of the bss2.ml tests."""

from __future__ import annotations

import torch


def random_inputs(*shape: int, high: int = 31) -> torch.Tensor:
    return torch.randint(0, high + 1, shape).float()


def random_weights(*shape: int, high: int = 63) -> torch.Tensor:
    return torch.randint(-high, high + 1, shape).float()
