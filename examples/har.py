"""Human activity recognition (UCI HAR) on BrainScaleS-2, the hxtorch paper's application (section 4.2).

    python examples/har.py --out results/har              # full run
    python examples/har.py --out /tmp/har --quick         # CI smoke run

Model (paper, table 1; no biases): Conv1d 9 -> 16, kernel 32, stride 6; Linear 256 -> 125; Linear 125 -> 6.
Between the layers a ConvertingReLU (ReLU, shift right, clip to 0..31) turns each layer's output (-128..127) into
the next layer's input (0..31); ``num_sends`` (2, 8, 4) lifts each layer's typical output well above the noise.
Each channel is mapped affinely onto 0..31 so that its central 99 % of training values span the range (the gravity
component keeps enough levels to tell sitting from standing by the phone's tilt). Windows are cut to 122 of their
128 samples, so the convolution yields the paper's 16 positions (16 x 16 = 256 features); in training the cut moves
randomly by up to +-3 samples (shift augmentation). Training is noise-aware: the mock adds Gaussian noise of
2 LSB (or the measured noise, if larger) to every layer's output, as the paper did. Accuracy is reported on a
validation split by subject (no person in both parts; ``--seed`` picks the subjects).
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

import bss2.ml as ml  # noqa: E402
from bss2.ml import nn  # noqa: E402
from bss2.ml.datasets import HAR_LABELS, load_har, split_by_subject  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (Stopwatch, accuracy, confusion, predict, print_table, threads_from_env,  # noqa: E402
                     train_epoch)

WINDOW = 122  # samples fed to the convolution: (122 - 32) // 6 + 1 = 16 positions
MAX_SHIFT = (128 - WINDOW) // 2
SPAN_SIGMA = 3.0  # +- this many standard deviations map onto 0..31


class Quantiser:
    """Per-channel affine map of the raw signals onto integer inputs 0..31 (range from the training split).

    ``percentile``: the central ``coverage`` of each channel's values spans 0..31, so the gravity component of the
    total acceleration (which tells sitting from standing by a few degrees of tilt) keeps several levels of
    resolution; ``sigma``: mean +- 3 standard deviations span 0..31.
    """

    def __init__(self, x: torch.Tensor, mode: str = "percentile", coverage: float = 0.99) -> None:
        values = x.transpose(0, 1).reshape(x.shape[1], -1)
        if mode == "percentile":
            tail = (1.0 - coverage) / 2
            self.low = torch.quantile(values, tail, dim=1).view(1, -1, 1)
            self.high = torch.quantile(values, 1.0 - tail, dim=1).view(1, -1, 1)
        elif mode == "sigma":
            mean, std = values.mean(dim=1).view(1, -1, 1), values.std(dim=1).view(1, -1, 1)
            self.low, self.high = mean - SPAN_SIGMA * std, mean + SPAN_SIGMA * std
        else:
            raise ValueError(f"unknown quantiser mode {mode!r}")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        scaled = (x - self.low) / (self.high - self.low) * 31
        return torch.round(scaled).clamp_(0, 31)


def crop(x: torch.Tensor, offset: int = MAX_SHIFT) -> torch.Tensor:
    return x[..., offset:offset + WINDOW]


def random_rotations(n: int, degrees: float, generator: torch.Generator) -> torch.Tensor:
    """(n, 3, 3) rotations by normally distributed angles (std ``degrees``) about the three axes."""
    angles = torch.randn(n, 3, generator=generator) * math.radians(degrees)
    cos, sin = torch.cos(angles), torch.sin(angles)
    one, zero = torch.ones(n), torch.zeros(n)
    rx = torch.stack([one, zero, zero, zero, cos[:, 0], -sin[:, 0], zero, sin[:, 0], cos[:, 0]], 1).view(n, 3, 3)
    ry = torch.stack([cos[:, 1], zero, sin[:, 1], zero, one, zero, -sin[:, 1], zero, cos[:, 1]], 1).view(n, 3, 3)
    rz = torch.stack([cos[:, 2], -sin[:, 2], zero, sin[:, 2], cos[:, 2], zero, zero, zero, one], 1).view(n, 3, 3)
    return rz @ ry @ rx


def augmenter(quantise: Quantiser, degrees: float,
              generator: torch.Generator) -> Callable[[torch.Tensor], torch.Tensor]:
    """Training augmentation on raw windows: the phone sits a little differently on every person (a small random
    rotation of the three sensor triples), and a window may start a few samples earlier or later (random crop);
    then quantise to 0..31."""
    def augment(x: torch.Tensor) -> torch.Tensor:
        if degrees > 0:
            rotation = random_rotations(len(x), degrees, generator)
            x = torch.cat([rotation @ x[:, 3 * k:3 * k + 3] for k in range(3)], dim=1)
        offset = int(torch.randint(0, 2 * MAX_SHIFT + 1, (), generator=generator))
        return crop(quantise(x), offset)
    return augment


def build_model(seed: int, avg: int, shift: int = 1) -> torch.nn.Sequential:
    """The paper's topology in hardware units; weights start uniform in +-20 (of -63..63)."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        nn.Conv1d(9, 16, 32, stride=6, bias=False, mock=True),
        nn.ConvertingReLU(shift=shift),
        torch.nn.Flatten(),
        nn.Linear(256, 125, bias=False, mock=True),
        nn.ConvertingReLU(shift=shift),
        nn.Linear(125, 6, bias=False, mock=True, avg=avg),
    )
    with torch.no_grad():
        for layer in model:
            if isinstance(layer, (nn.Conv1d, nn.Linear)):
                layer.weight.uniform_(-20, 20)
    return model


def plot_confusions(matrices: list[tuple[str, torch.Tensor]], path: Path) -> None:
    """Row-normalised confusion matrices side by side (as the paper's figure 9)."""
    figure, axes = plt.subplots(1, len(matrices), figsize=(4.2 * len(matrices), 4.4))
    short = ["W", "WU", "WD", "Si", "St", "L"]
    for ax, (title, matrix) in zip(axes, matrices):
        recall = matrix.float() / matrix.sum(dim=1, keepdim=True).clamp(min=1)
        ax.imshow(recall.numpy(), cmap="Blues", vmin=0, vmax=1)
        for i in range(6):
            for j in range(6):
                ax.text(j, i, f"{int(matrix[i, j])}", ha="center", va="center", fontsize=7,
                        color="white" if recall[i, j] > 0.6 else "black")
        ax.set_xticks(range(6), short)
        ax.set_yticks(range(6), short)
        ax.set_xlabel("obtained label")
        ax.set_ylabel("true label")
        ax.set_title(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("results/har"), help="output directory for the PNG")
    parser.add_argument("--data", type=Path, default=None, help="uci_har_train.npz or the UCI HAR folder")
    parser.add_argument("--quick", action="store_true", help="small and fast (CI)")
    parser.add_argument("--epochs", type=int, default=None, help="mock training epochs (paper: 50)")
    parser.add_argument("--hil-epochs", type=int, default=1, help="hardware-in-the-loop epochs (paper: 1)")
    parser.add_argument("--train-noise", type=float, default=2.0,
                        help="mock noise during training in LSB (noise-aware training; at least the measured one)")
    parser.add_argument("--lr", type=float, default=0.2)
    parser.add_argument("--rotation", type=float, default=0.0, help="rotation augmentation, degrees (std)")
    parser.add_argument("--input-range", choices=("percentile", "sigma"), default="percentile")
    parser.add_argument("--sends", default="2,8,4", help="num_sends of the three layers")
    parser.add_argument("--shift", type=int, default=2, help="ConvertingReLU shift between the layers")
    parser.add_argument("--avg", type=int, default=1, help="neurons averaged per output class")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    epochs = args.epochs if args.epochs is not None else (2 if args.quick else 50)
    progress = not args.no_progress
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    threads_from_env()
    args.out.mkdir(parents=True, exist_ok=True)
    clock = Stopwatch()

    x, y, subject = load_har(args.data)
    train_index, val_index = split_by_subject(subject, 0.25, seed=args.seed)
    if args.quick:
        generator = torch.Generator().manual_seed(args.seed)
        train_index = train_index[torch.randperm(len(train_index), generator=generator)[:1200]]
        val_index = val_index[torch.randperm(len(val_index), generator=generator)[:400]]
    quantise = Quantiser(x[train_index], args.input_range)
    x_train, y_train = x[train_index], y[train_index]  # raw: quantised per batch after augmentation
    x_val, y_val = crop(quantise(x[val_index])), y[val_index]
    validation_subjects = sorted(set(subject[val_index].tolist()))

    ml.init_hardware()
    measured = ml.measure_mock_parameter()
    training = ml.MockParameter(noise_std=max(args.train_noise, measured.noise_std), gain=measured.gain)
    print(f"measured mock parameter: gain {measured.gain:.5f}, noise {measured.noise_std:.2f} LSB; "
          f"training with noise {training.noise_std:.2f} LSB; num_sends per layer {args.sends}")

    generator = torch.Generator().manual_seed(args.seed)
    augment = augmenter(quantise, args.rotation, generator)
    model = build_model(args.seed, args.avg, args.shift)
    sends = [int(n) for n in args.sends.split(",")]
    for layer, n in zip([m for m in model if isinstance(m, (nn.Conv1d, nn.Linear))], sends):
        layer.num_sends = n
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(epochs, 1))
    ml.set_mock_parameter(training)
    for _ in tqdm(range(epochs), desc="mock training", disable=not progress):
        train_epoch(model, x_train, y_train, optimizer, args.batch_size, "epoch", generator, augment, progress=False)
        scheduler.step()
    ml.set_mock_parameter(measured)
    predictions = {"mock": predict(model, x_val, 500, "mock", progress)}

    nn.set_mock(model, False)
    predictions["backend"] = predict(model, x_val, 500, "backend", progress)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr * 0.05)
    for _ in tqdm(range(args.hil_epochs), desc="hardware in the loop", disable=not progress):
        train_epoch(model, x_train, y_train, optimizer, args.batch_size, "HIL epoch", generator, augment,
                    progress=progress)
    predictions["backend_finetuned"] = predict(model, x_val, 500, "backend", progress)
    ml.release_hardware()

    results = {key: accuracy(value, y_val) for key, value in predictions.items()}
    png = args.out / "har_confusion.png"
    plot_confusions([(f"(a) mock: {100 * results['mock']:.1f} %", confusion(predictions["mock"], y_val, 6)),
                     (f"(b) backend: {100 * results['backend']:.1f} %", confusion(predictions["backend"], y_val, 6)),
                     (f"(c) after {args.hil_epochs} HIL epoch(s): {100 * results['backend_finetuned']:.1f} %",
                      confusion(predictions["backend_finetuned"], y_val, 6))], png)
    print_table(f"HAR, validation subjects {validation_subjects} ({len(y_val)} windows), {epochs} mock epochs, "
                f"{clock}", ("model", "this run [%]", "paper (official test split) [%]"),
                [("mock / software", 100 * results["mock"], 92.7),
                 ("backend, before fine-tuning", 100 * results["backend"], 82.3),
                 (f"backend, after {args.hil_epochs} HIL epoch(s)", 100 * results["backend_finetuned"],
                  "closer to software")])
    print(f"confusion matrices: {png}  (classes: {', '.join(HAR_LABELS)})")
    return results


if __name__ == "__main__":
    main()
