"""MNIST with hxtorch's test model on BrainScaleS-2: mock training, then inference on the backend.

    python examples/mnist.py --out results/mnist            # full run
    python examples/mnist.py --out /tmp/mnist --quick       # CI smoke run

Model: Conv2d 1 -> 20, kernel 10, stride 5 (images padded to 30 x 30, so 20 x 5 x 5 = 500 features);
Linear 500 -> 128; Linear 128 -> 10; ConvertingReLU between the layers. Pixels map to inputs 0..31. Each
layer's ``num_sends`` is calibrated on a few training images so its outputs use about half the output range
(signal well above the noise), then the model trains in mock mode with noise (noise-aware training).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch
from tqdm import tqdm

import bss2.ml as ml
from bss2.ml import nn
from bss2.ml.datasets import load_mnist

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (Stopwatch, accuracy, calibrate_num_sends, predict, print_table, threads_from_env,  # noqa: E402
                     train_epoch)


def to_hardware_input(images: torch.Tensor) -> torch.Tensor:
    """(n, 1, 28, 28) in 0..1 -> (n, 1, 30, 30) integers 0..31 (one pixel of zero padding on each side)."""
    return torch.nn.functional.pad(torch.round(images * 31), (1, 1, 1, 1))


def build_model(seed: int) -> torch.nn.Sequential:
    """hxtorch's test model in hardware units; weights start uniform in +-20."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        nn.Conv2d(1, 20, 10, stride=5, bias=False, mock=True),
        nn.ConvertingReLU(shift=1),
        torch.nn.Flatten(),
        nn.Linear(500, 128, bias=False, mock=True),
        nn.ConvertingReLU(shift=1),
        nn.Linear(128, 10, bias=False, mock=True),
    )
    with torch.no_grad():
        for layer in model:
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                layer.weight.uniform_(-20, 20)
    return model


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("results/mnist"), help="output directory (unused yet)")
    parser.add_argument("--data", type=Path, default=None, help="mnist.npz or its directory")
    parser.add_argument("--quick", action="store_true", help="small and fast (CI)")
    parser.add_argument("--epochs", type=int, default=None, help="mock training epochs")
    parser.add_argument("--hil-epochs", type=int, default=None, help="hardware-in-the-loop epochs")
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    epochs = args.epochs if args.epochs is not None else (1 if args.quick else 8)
    hil_epochs = args.hil_epochs if args.hil_epochs is not None else (0 if args.quick else 1)
    progress = not args.no_progress
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    threads_from_env()
    args.out.mkdir(parents=True, exist_ok=True)
    clock = Stopwatch()

    x_train, y_train = load_mnist(args.data, "train")
    x_test, y_test = load_mnist(args.data, "test")
    if args.quick:
        x_train, y_train, x_test, y_test = x_train[:3000], y_train[:3000], x_test[:1000], y_test[:1000]
    x_train, x_test = to_hardware_input(x_train), to_hardware_input(x_test)

    ml.init_hardware()
    measured = ml.measure_mock_parameter()
    ml.set_mock_parameter(ml.MockParameter(noise_std=max(2.0, measured.noise_std), gain=measured.gain))
    print(f"measured mock parameter: gain {measured.gain:.5f}, noise {measured.noise_std:.2f} LSB; "
          f"training with noise {ml.get_mock_parameter().noise_std:.2f} LSB")

    generator = torch.Generator().manual_seed(args.seed)
    model = build_model(args.seed)
    sends = calibrate_num_sends(model, x_train[:500])
    print(f"num_sends per layer (calibrated on 500 training images): {sends}")
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(epochs, 1))
    for epoch in tqdm(range(epochs), desc="mock training", disable=not progress):
        train_epoch(model, x_train, y_train, optimizer, 64, f"epoch {epoch}", generator, progress=progress)
        scheduler.step()
    ml.set_mock_parameter(measured)
    results = {"mock": accuracy(predict(model, x_test, 1000, "mock", progress), y_test)}
    nn.set_mock(model, False)
    results["backend"] = accuracy(predict(model, x_test, 1000, "backend", progress), y_test)
    rows = [("mock (measured parameter)", 100 * results["mock"]), ("backend", 100 * results["backend"])]
    if hil_epochs:
        optimizer = torch.optim.Adam(model.parameters(), lr=args.lr * 0.02)
        for _ in range(hil_epochs):
            train_epoch(model, x_train, y_train, optimizer, 64, "HIL epoch", generator, progress=progress)
        results["backend_finetuned"] = accuracy(predict(model, x_test, 1000, "backend", progress), y_test)
        rows.append((f"backend after {hil_epochs} HIL epoch(s)", 100 * results["backend_finetuned"]))
    ml.release_hardware()
    print_table(f"MNIST ({len(y_train)} train / {len(y_test)} test images, {epochs} mock epochs, {clock})",
                ("model", "test accuracy [%]"), rows)
    return results


if __name__ == "__main__":
    main()
