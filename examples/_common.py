"""Shared helpers of the bss2.ml examples: training and evaluation loops with progress bars, result tables."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence

import torch
from tqdm import tqdm


def batches(n: int, batch_size: int, shuffle: bool, generator: torch.Generator | None = None) -> list[torch.Tensor]:
    """Index batches covering ``range(n)``."""
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    return list(order.split(batch_size))


def train_epoch(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, optimizer: torch.optim.Optimizer,
                batch_size: int, description: str, generator: torch.Generator | None = None,
                augment: Callable[[torch.Tensor], torch.Tensor] | None = None, progress: bool = True,
                loss_fn: torch.nn.Module | None = None) -> float:
    """One epoch of training (default loss: cross-entropy); returns the mean loss."""
    model.train()
    total, count = 0.0, 0
    loss_fn = torch.nn.CrossEntropyLoss() if loss_fn is None else loss_fn
    for index in tqdm(batches(len(x), batch_size, True, generator), desc=description, leave=False,
                      disable=not progress):
        inputs = x[index] if augment is None else augment(x[index])
        loss = loss_fn(model(inputs), y[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item() * len(index)
        count += len(index)
    return total / max(count, 1)


@torch.no_grad()
def predict(model: torch.nn.Module, x: torch.Tensor, batch_size: int, description: str,
            progress: bool = True) -> torch.Tensor:
    """Predicted classes of ``x``."""
    model.eval()
    out = [model(x[index]).argmax(dim=1) for index in tqdm(batches(len(x), batch_size, False), desc=description,
                                                             leave=False, disable=not progress)]
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long)


def accuracy(predicted: torch.Tensor, y: torch.Tensor) -> float:
    return float((predicted == y).float().mean()) if len(y) else float("nan")


def confusion(predicted: torch.Tensor, y: torch.Tensor, classes: int) -> torch.Tensor:
    """(true, predicted) counts."""
    return torch.bincount(y * classes + predicted, minlength=classes * classes).view(classes, classes)


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain-text table on stdout."""
    cells = [list(map(str, header))] + [[f"{v:.1f}" if isinstance(v, float) else str(v) for v in row]
                                        for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    line = "+".join("-" * (w + 2) for w in widths)
    print(f"\n{title}\n{line}")
    for i, row in enumerate(cells):
        print(" | ".join(cell.ljust(w) for cell, w in zip(row, widths)))
        if i == 0:
            print(line)
    print(line)


def threads_from_env(default: int = 1) -> None:
    """Set torch's thread count from BSS2_THREADS, else ``default``: these models are small, and one thread is as
    fast as two on them and much faster on a loaded machine (no threads waiting at OpenMP barriers)."""
    torch.set_num_threads(int(os.environ.get("BSS2_THREADS", default)))


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __str__(self) -> str:
        return f"{time.perf_counter() - self.start:.1f} s"


def calibrate_num_sends(model: torch.nn.Sequential, x: torch.Tensor, target: float = 64.0, final_target: float = 32.0,
                        limit: int = 16) -> list[int]:
    """Set each hardware layer's ``num_sends`` from data, layer by layer in model order, without noise: a hidden
    layer's 99th percentile of positive outputs (what passes the following ReLU) becomes about ``target`` LSB, the
    last layer's 99th percentile of |output| about ``final_target`` LSB (logits of a moderate scale).

    The layers' automatic choice (full-scale input at full-scale weights just saturates) is a worst case; real
    activations are far smaller, so more sends buy signal-to-noise ratio. Returns the chosen values."""
    from bss2.ml import MockParameter, get_mock_parameter, nn, set_mock_parameter

    indices = [i for i, layer in enumerate(model) if isinstance(layer, (nn.Linear, nn.Conv1d, nn.Conv2d))]
    saved = get_mock_parameter()
    set_mock_parameter(MockParameter(noise_std=0.0, gain=saved.gain))
    try:
        with torch.no_grad():
            for index in indices:
                layer = model[index]
                layer.num_sends = 1
                out = model[:index + 1](x).flatten().float()[:1_000_000]
                last = index == indices[-1]
                level = float(torch.quantile(out.abs() if last else out.clamp(min=0), 0.99))
                goal = final_target if last else target
                layer.num_sends = max(1, min(limit, int(goal / max(level, 0.5))))
    finally:
        set_mock_parameter(saved)
    return [model[i].num_sends for i in indices]
