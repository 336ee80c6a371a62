"""Yin-yang perceptron on BrainScaleS-2: mock training, run on the backend, hardware-in-the-loop fine-tuning.

    python examples/yin_yang.py --out results/yin_yang          # full run (a few minutes on two cores)
    python examples/yin_yang.py --out /tmp/yy --quick           # CI smoke run

Model: Linear 4 -> 128 (inputs 0..31), ConvertingReLU, Linear 128 -> 3 with every output averaged over ``avg``
neurons. Steps: measure the mock parameter on the backend; train in mock mode; evaluate on the backend (hardware
path); fine-tune with the forward pass on the backend and the backward pass in software; plot the decision map.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

import bss2.ml as ml  # noqa: E402
from bss2.ml import nn  # noqa: E402
from bss2.ml.datasets import yin_yang  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Stopwatch, accuracy, predict, print_table, threads_from_env, train_epoch  # noqa: E402

CLASS_NAMES = ("yin", "yang", "dot")


def build_model(hidden: int, avg: int, shift: int, output_sends: int, seed: int) -> torch.nn.Sequential:
    """The perceptron, initialised in hardware units (weights uniform in +-40, well inside -63..63)."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        nn.Linear(4, hidden, bias=False, mock=True),
        nn.ConvertingReLU(shift=shift),
        nn.Linear(hidden, 3, bias=False, num_sends=output_sends, mock=True, avg=avg),
    )
    with torch.no_grad():
        for layer in (model[0], model[2]):
            layer.weight.uniform_(-40, 40)
    return model


def to_hardware_input(x: torch.Tensor) -> torch.Tensor:
    """(x, y, 1-x, 1-y) in 0..1 -> integer inputs 0..31."""
    return torch.round(x * 31)


def decision_map(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, path: Path, title: str,
                 resolution: int) -> None:
    """Plot the model's class over the unit square, with the test points on top."""
    grid = torch.linspace(0, 1, resolution)
    gx, gy = torch.meshgrid(grid, grid, indexing="xy")
    points = torch.stack([gx.flatten(), gy.flatten(), 1 - gx.flatten(), 1 - gy.flatten()], dim=1)
    classes = predict(model, to_hardware_input(points), 1000, "decision map", progress=False)
    classes = classes.view(resolution, resolution)
    figure, axes = plt.subplots(figsize=(5, 5))
    colours = matplotlib.colors.ListedColormap(["#f2c14e", "#5b8db8", "#d1495b"])
    axes.imshow(classes.numpy(), origin="lower", extent=(0, 1, 0, 1), cmap=colours, alpha=0.35, vmin=0, vmax=2)
    axes.scatter(x[:, 0], x[:, 1], c=y, cmap=colours, s=6, vmin=0, vmax=2)
    axes.set_xlabel("x")
    axes.set_ylabel("y")
    axes.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("results/yin_yang"), help="output directory for the PNG")
    parser.add_argument("--quick", action="store_true", help="small and fast (CI)")
    parser.add_argument("--epochs", type=int, default=None, help="mock training epochs")
    parser.add_argument("--hil-epochs", type=int, default=None, help="hardware-in-the-loop epochs")
    parser.add_argument("--lr", type=float, default=1.0, help="Adam step size in weight units (mock training)")
    parser.add_argument("--hil-lr", type=float, default=0.05, help="Adam step size, hardware in the loop")
    parser.add_argument("--train-size", type=int, default=None)
    parser.add_argument("--test-size", type=int, default=None)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--avg", type=int, default=5, help="neurons averaged per output")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    epochs = args.epochs if args.epochs is not None else (6 if args.quick else 60)
    hil_epochs = args.hil_epochs if args.hil_epochs is not None else (1 if args.quick else 6)
    train_size = args.train_size or (1500 if args.quick else 5000)
    test_size = args.test_size or (600 if args.quick else 2000)
    progress = not args.no_progress
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    threads_from_env()
    args.out.mkdir(parents=True, exist_ok=True)
    clock = Stopwatch()

    ml.init_hardware()
    parameter = ml.measure_mock_parameter()
    ml.set_mock_parameter(parameter)
    print(f"measured mock parameter: gain {parameter.gain:.5f} LSB/unit, noise {parameter.noise_std:.2f} LSB")

    x_train, y_train = yin_yang(train_size, seed=args.seed)
    x_test, y_test = yin_yang(test_size, seed=args.seed + 1)
    inputs_train, inputs_test = to_hardware_input(x_train), to_hardware_input(x_test)
    generator = torch.Generator().manual_seed(args.seed)

    model = build_model(args.hidden, args.avg, shift=2, output_sends=3, seed=args.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)
    for _ in tqdm(range(epochs), desc="mock training", disable=not progress):
        train_epoch(model, inputs_train, y_train, optimizer, 50, "epoch", generator, progress=False)
        scheduler.step()
    results = {"mock": accuracy(predict(model, inputs_test, 1000, "mock", progress), y_test)}

    nn.set_mock(model, False)
    results["backend"] = accuracy(predict(model, inputs_test, 1000, "backend", progress), y_test)

    optimizer = torch.optim.Adam(model.parameters(), lr=args.hil_lr)
    for _ in tqdm(range(hil_epochs), desc="hardware in the loop", disable=not progress):
        train_epoch(model, inputs_train, y_train, optimizer, 50, "epoch", generator, progress=False)
    results["backend_finetuned"] = accuracy(predict(model, inputs_test, 1000, "backend", progress), y_test)

    png = args.out / "yin_yang_decision_map.png"
    decision_map(model, x_test, y_test, png, f"backend after fine-tuning: {100 * results['backend_finetuned']:.1f} %",
                 40 if args.quick else 120)
    ml.release_hardware()

    print_table(f"yin-yang ({train_size} train / {test_size} test samples, {epochs} mock + {hil_epochs} HIL epochs, "
                f"{clock})", ("model", "test accuracy [%]"),
                [("mock (measured parameter)", 100 * results["mock"]),
                 ("backend, before fine-tuning", 100 * results["backend"]),
                 ("backend, after fine-tuning", 100 * results["backend_finetuned"])])
    print(f"decision map: {png}")
    return results


if __name__ == "__main__":
    main()
