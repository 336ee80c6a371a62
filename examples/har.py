"""Human activity recognition (UCI HAR) on BrainScaleS-2, the hxtorch paper's application (section 4.2).

    python examples/har.py --out results/har              # full run
    python examples/har.py --out /tmp/har --quick         # CI smoke run

Model (paper, table 1; no biases): Conv1d 9 -> 16, kernel 32, stride 6; Linear 256 -> 125; Linear 125 -> 6.
Between the layers a ConvertingReLU (ReLU, shift right, clip to 0..31) turns each layer's output (-128..127) into
the next layer's input (0..31); ``num_sends`` (2, 8, 4) lifts each layer's typical output well above the noise.
Each channel is mapped affinely onto 0..31 from its training-split percentiles: the total acceleration's central
99 % span the range (the gravity component keeps enough levels to tell sitting from standing by the phone's tilt);
the body acceleration and gyroscope channels are clipped hard, their central 40 % span the range, so the small
motions of the static activities get many levels instead of a handful (4-fold mock accuracy 85 % -> 92 %). Windows
are cut to 122 of their 128 samples, so the convolution yields the paper's 16 positions (16 x 16 = 256 features).
Augmentation in training: the cut moves randomly by up to +-3 samples, and each sensor triple is rotated by a small
random angle (std 5 degrees: the phone sits a little differently on every person). Training is noise-aware: the
mock adds Gaussian noise of 2 LSB (or the measured noise, if larger) to every layer's output, as the paper did.

Accuracy is cross-validated by subject: the 21 subjects are dealt at random (``--seed``) into ``--folds`` groups;
each fold trains a fresh model on the other subjects and validates on its own (no person in both parts), and the
table shows every fold and the mean (``--fold k`` runs one). The confusion matrices sum over the folds, so every
window counts once. No validation window is used for training or for scaling the inputs.
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
from bss2.ml.datasets import HAR_LABELS, load_har  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (Stopwatch, accuracy, confusion, predict, print_table, threads_from_env,  # noqa: E402
                     train_epoch)

WINDOW = 122  # samples fed to the convolution: (122 - 32) // 6 + 1 = 16 positions
MAX_SHIFT = (128 - WINDOW) // 2
BODY_CHANNELS = 6  # body_acc x/y/z, body_gyro x/y/z; then total_acc x/y/z
SPAN_SIGMA = 3.0  # +- this many standard deviations map onto 0..31


class Quantiser:
    """Per-channel affine map of the raw signals onto integer inputs 0..31 (range from the training split).

    ``percentile``: the central ``coverage`` of each channel's values spans 0..31, so the gravity component of the
    total acceleration (which tells sitting from standing by a few degrees of tilt) keeps several levels of
    resolution; ``sigma``: mean +- 3 standard deviations span 0..31.
    """

    def __init__(self, x: torch.Tensor, mode: str = "percentile", coverage: float = 0.99,
                 body_coverage: float | None = None) -> None:
        values = x.transpose(0, 1).reshape(x.shape[1], -1)
        if mode == "percentile":
            tails = torch.full((x.shape[1], 1), (1.0 - coverage) / 2)
            if body_coverage is not None:
                tails[:BODY_CHANNELS] = (1.0 - body_coverage) / 2
            self.low = torch.stack([torch.quantile(v, t) for v, t in zip(values, tails)]).view(1, -1, 1)
            self.high = torch.stack([torch.quantile(v, 1.0 - t) for v, t in zip(values, tails)]).view(1, -1, 1)
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


def augmenter(quantise: Quantiser, degrees: float, gain_noise: float,
              generator: torch.Generator) -> Callable[[torch.Tensor], torch.Tensor]:
    """Training augmentation on raw windows: the phone sits a little differently on every person (a small random
    rotation of the three sensor triples), and a window may start a few samples earlier or later (random crop);
    then quantise to 0..31."""
    def augment(x: torch.Tensor) -> torch.Tensor:
        if degrees > 0:
            rotation = random_rotations(len(x), degrees, generator)
            x = torch.cat([rotation @ x[:, 3 * k:3 * k + 3] for k in range(3)], dim=1)
        if gain_noise > 0:
            x = x * (1 + gain_noise * torch.randn(len(x), x.shape[1], 1, generator=generator))
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


def subject_folds(subject: torch.Tensor, folds: int, seed: int) -> list[torch.Tensor]:
    """The subjects dealt at random (``seed``) into ``folds`` disjoint groups of nearly equal size."""
    subjects = torch.unique(subject)
    order = subjects[torch.randperm(len(subjects), generator=torch.Generator().manual_seed(seed))]
    return [order[k::folds].sort().values for k in range(folds)]


def run_fold(args: argparse.Namespace, x: torch.Tensor, y: torch.Tensor, train_index: torch.Tensor,
             val_index: torch.Tensor, measured: ml.MockParameter, seed: int,
             progress: bool) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Train in mock mode on ``train_index``, evaluate on ``val_index`` (mock, backend), fine-tune on the backend
    and evaluate again. Returns the predictions per stage and the validation labels."""
    if args.quick:
        generator = torch.Generator().manual_seed(seed)
        train_index = train_index[torch.randperm(len(train_index), generator=generator)[:1200]]
        val_index = val_index[torch.randperm(len(val_index), generator=generator)[:400]]
    quantise = Quantiser(x[train_index], args.input_range, args.coverage, args.body_coverage)
    x_train, y_train = x[train_index], y[train_index]  # raw: quantised per batch after augmentation
    x_val, y_val = crop(quantise(x[val_index])), y[val_index]

    generator = torch.Generator().manual_seed(seed)
    augment = augmenter(quantise, args.rotation, args.gain_noise, generator)
    model = build_model(seed, args.avg, args.shift)
    for layer, n in zip([m for m in model if isinstance(m, (nn.Conv1d, nn.Linear))], args.num_sends):
        layer.num_sends = n
    nn.set_mock(model, True)
    loss = torch.nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(args.epochs, 1))
    ml.set_mock_parameter(ml.MockParameter(noise_std=max(args.train_noise, measured.noise_std), gain=measured.gain))
    for _ in tqdm(range(args.epochs), desc="mock training", disable=not progress):
        train_epoch(model, x_train, y_train, optimizer, args.batch_size, "epoch", generator, augment, progress=False,
                    loss_fn=loss)
        scheduler.step()
    ml.set_mock_parameter(measured)
    predictions = {"mock": predict(model, x_val, 500, "mock", progress)}
    if args.mock_only:
        return predictions, y_val

    nn.set_mock(model, False)
    predictions["backend"] = predict(model, x_val, 500, "backend", progress)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr * args.hil_lr)
    for _ in tqdm(range(args.hil_epochs), desc="hardware in the loop", disable=not progress):
        train_epoch(model, x_train, y_train, optimizer, args.batch_size, "HIL epoch", generator, augment,
                    progress=progress, loss_fn=loss)
    predictions["backend_finetuned"] = predict(model, x_val, 500, "backend", progress)
    return predictions, y_val


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("results/har"), help="output directory for the PNG")
    parser.add_argument("--data", type=Path, default=None, help="uci_har_train.npz or the UCI HAR folder")
    parser.add_argument("--quick", action="store_true", help="small and fast (CI): 1 fold, 1200 training windows")
    parser.add_argument("--folds", type=int, default=4, help="cross-validation folds by subject")
    parser.add_argument("--fold", type=int, default=None, help="run only this fold (0-based; default: all)")
    parser.add_argument("--epochs", type=int, default=None, help="mock training epochs (default 80; paper: 50)")
    parser.add_argument("--hil-epochs", type=int, default=1, help="hardware-in-the-loop epochs (paper: 1)")
    parser.add_argument("--hil-lr", type=float, default=0.05, help="HIL learning rate relative to --lr")
    parser.add_argument("--train-noise", type=float, default=2.0,
                        help="mock noise during training in LSB (noise-aware training; at least the measured one)")
    parser.add_argument("--lr", type=float, default=0.2)
    parser.add_argument("--weight-decay", type=float, default=0.0, help="AdamW's decoupled weight decay")
    parser.add_argument("--label-smoothing", type=float, default=0.0)
    parser.add_argument("--rotation", type=float, default=5.0, help="rotation augmentation, degrees (std)")
    parser.add_argument("--gain-noise", type=float, default=0.0,
                        help="augmentation: every channel of a window scaled by 1 + N(0, this**2)")
    parser.add_argument("--input-range", choices=("percentile", "sigma"), default="percentile")
    parser.add_argument("--coverage", type=float, default=0.99,
                        help="central fraction of each total_acc channel's training values spanning 0..31")
    parser.add_argument("--body-coverage", type=float, default=0.4,
                        help="the same for the body_acc and body_gyro channels (values outside are clipped)")
    parser.add_argument("--sends", default="2,8,4", help="num_sends of the three layers")
    parser.add_argument("--shift", type=int, default=2, help="ConvertingReLU shift between the layers")
    parser.add_argument("--avg", type=int, default=1, help="neurons averaged per output class")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0, help="seeds the folds, the initialisation and the training")
    parser.add_argument("--mock-only", action="store_true", help="skip the backend (for exploring in mock mode)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    args.epochs = args.epochs if args.epochs is not None else (2 if args.quick else 80)
    args.num_sends = [int(n) for n in args.sends.split(",")]
    progress = not args.no_progress
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    threads_from_env()
    args.out.mkdir(parents=True, exist_ok=True)
    clock = Stopwatch()

    x, y, subject = load_har(args.data)
    folds = subject_folds(subject, args.folds, args.seed)
    chosen = [args.fold] if args.fold is not None else ([0] if args.quick else list(range(args.folds)))

    ml.init_hardware()
    measured = ml.measure_mock_parameter()
    print(f"measured mock parameter: gain {measured.gain:.5f}, noise {measured.noise_std:.2f} LSB; training with "
          f"noise {max(args.train_noise, measured.noise_std):.2f} LSB; num_sends per layer {args.sends}")
    stages = ("mock",) if args.mock_only else ("mock", "backend", "backend_finetuned")
    per_fold: list[dict[str, float]] = []
    matrices = {stage: torch.zeros(6, 6, dtype=torch.long) for stage in stages}
    for k in chosen:
        is_validation = torch.isin(subject, folds[k])
        train_index, val_index = torch.nonzero(~is_validation).flatten(), torch.nonzero(is_validation).flatten()
        predictions, y_val = run_fold(args, x, y, train_index, val_index, measured, args.seed + k, progress)
        per_fold.append({stage: accuracy(predictions[stage], y_val) for stage in stages})
        for stage in stages:
            matrices[stage] += confusion(predictions[stage], y_val, 6)
        print(f"fold {k}: validation subjects {folds[k].tolist()} ({len(y_val)} windows): "
              + ", ".join(f"{stage} {100 * per_fold[-1][stage]:.1f} %" for stage in stages), flush=True)
    ml.release_hardware()

    results = {stage: sum(r[stage] for r in per_fold) / len(per_fold) for stage in stages}
    names = {"mock": ("mock / software", 92.7), "backend": ("backend, before fine-tuning", 82.3),
             "backend_finetuned": (f"backend, after {args.hil_epochs} HIL epoch(s)", "closer to software")}
    png = args.out / "har_confusion.png"
    if not args.mock_only:
        totals = {stage: float(m.diagonal().sum()) / float(m.sum()) for stage, m in matrices.items()}
        plot_confusions([(f"(a) mock: {100 * totals['mock']:.1f} %", matrices["mock"]),
                         (f"(b) backend: {100 * totals['backend']:.1f} %", matrices["backend"]),
                         (f"(c) after {args.hil_epochs} HIL epoch(s): {100 * totals['backend_finetuned']:.1f} %",
                          matrices["backend_finetuned"])], png)
    header = ("model", *[f"fold {k} [%]" for k in chosen], "mean [%]", "paper (official test split) [%]")
    print_table(f"HAR, {len(chosen)} of {args.folds} folds by subject (each validation subject unseen in its "
                f"training), {args.epochs} mock epochs, {clock}", header,
                [(names[stage][0], *[100 * r[stage] for r in per_fold], 100 * results[stage], names[stage][1])
                 for stage in stages])
    if not args.mock_only:
        print(f"confusion matrices, summed over the folds: {png}  (classes: {', '.join(HAR_LABELS)})")
    return results


if __name__ == "__main__":
    main()
