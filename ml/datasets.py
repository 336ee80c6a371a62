"""Data sets for the examples: UCI HAR, MNIST, PhysioNet 2017 ECG (files), and yin-yang (generated).

Files are looked up in an explicit ``path``, else in ``$BSS2_DATA``, else in ``../shared/data`` relative to the
repository root (resolved from this package's location and from the working directory).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

HAR_LABELS = ("WALKING", "WALKING_UPSTAIRS", "WALKING_DOWNSTAIRS", "SITTING", "STANDING", "LAYING")
HAR_CHANNELS = ("body_acc_x", "body_acc_y", "body_acc_z", "body_gyro_x", "body_gyro_y", "body_gyro_z",
                "total_acc_x", "total_acc_y", "total_acc_z")


def data_directories() -> list[Path]:
    """The directories searched for data files, in order."""
    env = os.environ.get("BSS2_DATA")
    if env:
        return [Path(env)]
    repository = Path(__file__).resolve().parent.parent
    candidates = [repository / ".." / "shared" / "data", Path.cwd() / ".." / "shared" / "data"]
    return list(dict.fromkeys(path.resolve() for path in candidates))


def find_data_file(name: str, path: str | os.PathLike[str] | None = None) -> Path:
    """Resolve a data file: ``path`` (a file, or a directory holding ``name``) or the default directories.

    :raises FileNotFoundError: naming every place looked at and the ``BSS2_DATA`` variable.
    """
    if path is not None:
        candidate = Path(path)
        candidate = candidate / name if candidate.is_dir() else candidate
        if candidate.exists():
            return candidate
        raise FileNotFoundError(f"data file {candidate} not found")
    places = [directory / name for directory in data_directories()]
    for candidate in places:
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"data file {name!r} not found in {', '.join(map(str, places))}; set BSS2_DATA to the "
                            "directory holding it or pass path=")


# ----------------------------------------------------------------------------------------------------------------------
# UCI HAR


def _load_har_folder(root: Path, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read the original UCI HAR layout: ``<root>/<split>/Inertial Signals/<channel>_<split>.txt`` etc."""
    if (root / "UCI HAR Dataset").is_dir():
        root = root / "UCI HAR Dataset"
    folder = root / split
    signals = folder / "Inertial Signals"
    if not signals.is_dir():
        raise FileNotFoundError(f"UCI HAR folder layout not found: {signals}")
    x = np.stack([np.loadtxt(signals / f"{channel}_{split}.txt", dtype=np.float32) for channel in HAR_CHANNELS],
                 axis=1)
    y = np.loadtxt(folder / f"y_{split}.txt", dtype=np.int64) - 1  # files count activities from 1
    subject = np.loadtxt(folder / f"subject_{split}.txt", dtype=np.int64)
    return x, y, subject


def load_har(path: str | os.PathLike[str] | None = None,
             split: str = "train") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Load UCI HAR inertial signals.

    :param path: ``uci_har_train.npz``, a directory holding it, or the original ``UCI HAR Dataset`` folder (or
        its parent); ``None`` searches the default directories for ``uci_har_train.npz``.
    :param split: ``"train"`` (the npz holds only this) or ``"test"`` (folder layout only).
    :returns: ``(x, y, subject)``: x (n, 9, 128) float32 in g resp. rad/s (channel order :data:`HAR_CHANNELS`),
        y (n,) int64 in 0..5 (:data:`HAR_LABELS`), subject (n,) int64 ids.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if path is not None and Path(path).is_dir() and not (Path(path) / f"uci_har_{split}.npz").exists():
        x, y, subject = _load_har_folder(Path(path), split)
    else:
        file = find_data_file(f"uci_har_{split}.npz", path)
        with np.load(file, allow_pickle=False) as data:
            x, y, subject = data["X"], data["y"], data["subject"]
    return (torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), torch.from_numpy(y.astype(np.int64)),
            torch.from_numpy(subject.astype(np.int64)))


def split_by_subject(subject: torch.Tensor, validation_fraction: float = 0.25,
                     seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Split sample indices so no subject appears in both parts.

    :returns: ``(train_index, validation_index)``, int64 tensors; about ``validation_fraction`` of the subjects
        (at least one) are drawn at random (``seed``) for validation.
    """
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    subjects = torch.unique(subject)
    if subjects.numel() < 2:
        raise ValueError("split_by_subject needs at least two subjects")
    count = min(subjects.numel() - 1, max(1, round(validation_fraction * subjects.numel())))
    generator = torch.Generator().manual_seed(seed)
    chosen = subjects[torch.randperm(subjects.numel(), generator=generator)[:count]]
    is_validation = torch.isin(subject, chosen)
    return torch.nonzero(~is_validation).flatten(), torch.nonzero(is_validation).flatten()


# ----------------------------------------------------------------------------------------------------------------------
# MNIST and ECG


def load_mnist(path: str | os.PathLike[str] | None = None,
               split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Load MNIST from ``mnist.npz``.

    :returns: ``(x, y)``: x (n, 1, 28, 28) float32 in 0..1, y (n,) int64 in 0..9.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    with np.load(find_data_file("mnist.npz", path), allow_pickle=False) as data:
        x, y = data[f"x_{split}"], data[f"y_{split}"]
    return torch.from_numpy(x.astype(np.float32) / 255.0).unsqueeze(1), torch.from_numpy(y.astype(np.int64))


def load_ecg(path: str | os.PathLike[str] | None = None) -> tuple[list[torch.Tensor], torch.Tensor, int]:
    """Load the PhysioNet/CinC 2017 single-lead ECG records.

    :returns: ``(records, y, fs)``: one int32 tensor per record in ADC units (1000 per mV), decoded as the
        cumulative sum of its stored differences; y (n,) int64 in 0..3 (N, A, O, ~); fs the sampling rate in Hz.
    """
    with np.load(find_data_file("ecg_af2017_train.npz", path), allow_pickle=False) as data:
        diff, offsets, lengths = data["ecg_diff"], data["offsets"], data["lengths"]
        y, fs = data["y"].astype(np.int64), int(data["fs"])
    # One cumulative sum over all records in wrapping int32 arithmetic, then each record made relative to the running
    # total before its start (read before any record is changed): differences of wrapped sums are exact because
    # every record's values fit in int32. Records are views into that one array.
    with np.errstate(over="ignore"):
        total = np.cumsum(diff, dtype=np.int32)
        bases = np.where(offsets > 0, total[np.maximum(offsets - 1, 0)], 0).astype(np.int32)
        records = []
        for start, length, base in zip(offsets.tolist(), lengths.tolist(), bases.tolist()):
            record = total[start:start + length]
            record -= np.int32(base)
            records.append(torch.from_numpy(record))
    return records, torch.from_numpy(y), fs


# ----------------------------------------------------------------------------------------------------------------------
# yin-yang (Kriener, Göltz, Petrovici 2021)


def _yin_yang_class(x: np.ndarray, y: np.ndarray, r_small: float, r_big: float) -> np.ndarray:
    """0 = yin, 1 = yang, 2 = dot, for points inside the big circle of radius ``r_big`` centred at (r_big, r_big)."""
    d_right = np.hypot(x - 1.5 * r_big, y - r_big)
    d_left = np.hypot(x - 0.5 * r_big, y - r_big)
    is_yin = (d_right <= r_small) | ((d_left > r_small) & (d_left <= 0.5 * r_big)) | (
        (y > r_big) & (d_right > 0.5 * r_big))
    is_dot = (d_right < r_small) | (d_left < r_small)
    return np.where(is_dot, 2, np.where(is_yin, 0, 1))


def yin_yang(n: int, seed: int = 0, r_small: float = 0.1, r_big: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Generate the yin-yang data set: points uniform in the yin-yang disc (inside the unit square), balanced
    over the three classes (sample ``i`` has class ``i % 3``).

    :returns: ``(x, y)``: x (n, 4) float32 ``(x, y, 1 - x, 1 - y)`` in 0..1, y (n,) int64 (0 yin, 1 yang, 2 dot).
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng(seed)
    wanted = np.arange(n) % 3
    per_class = [np.empty((0, 2))] * 3
    while any(len(points) < np.sum(wanted == c) for c, points in enumerate(per_class)):
        # Rejection sampling in bulk; the dots cover ~8 % of the disc, so draw generously.
        candidates = rng.random((max(64, 8 * n), 2)) * 2 * r_big
        inside = np.hypot(candidates[:, 0] - r_big, candidates[:, 1] - r_big) <= r_big
        candidates = candidates[inside]
        labels = _yin_yang_class(candidates[:, 0], candidates[:, 1], r_small, r_big)
        per_class = [np.concatenate([per_class[c], candidates[labels == c]]) for c in range(3)]
    points = np.empty((n, 2))
    for c in range(3):
        points[wanted == c] = per_class[c][:np.sum(wanted == c)]
    features = np.concatenate([points, 1.0 - points], axis=1).astype(np.float32)
    return torch.from_numpy(features), torch.from_numpy(wanted.astype(np.int64))
