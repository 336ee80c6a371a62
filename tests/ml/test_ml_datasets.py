"""Data set loaders and the yin-yang generator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bss2.ml import datasets


def _available(name: str) -> bool:
    try:
        datasets.find_data_file(name)
    except FileNotFoundError:
        return False
    return True


needs_har = pytest.mark.skipif(not _available("uci_har_train.npz"),
                               reason="uci_har_train.npz not found (set BSS2_DATA or provide ../shared/data)")
needs_mnist = pytest.mark.skipif(not _available("mnist.npz"),
                                 reason="mnist.npz not found (set BSS2_DATA or provide ../shared/data)")
needs_ecg = pytest.mark.skipif(not _available("ecg_af2017_train.npz"),
                               reason="ecg_af2017_train.npz not found (set BSS2_DATA or provide ../shared/data)")


def test_yin_yang_shapes_balance_and_determinism() -> None:
    x, y = datasets.yin_yang(301, seed=3)
    assert x.shape == (301, 4) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.equal(y, torch.arange(301) % 3)
    assert torch.equal(x, datasets.yin_yang(301, seed=3)[0])
    assert not torch.equal(x, datasets.yin_yang(301, seed=4)[0])
    torch.testing.assert_close(x[:, 2:], 1 - x[:, :2])


def test_yin_yang_points_lie_in_the_disc_and_match_the_formula() -> None:
    x, y = datasets.yin_yang(3000, seed=0)
    px, py = x[:, 0].double(), x[:, 1].double()
    assert bool((torch.hypot(px - 0.5, py - 0.5) <= 0.5).all())
    dots = (torch.hypot(px - 0.25, py - 0.5) < 0.1) | (torch.hypot(px - 0.75, py - 0.5) < 0.1)
    assert torch.equal(dots, y == 2)
    # far from the dots: yin holds the top of the right half, yang the bottom of the left half
    assert set(y[(px > 0.6) & (py > 0.85)].tolist()) == {0}
    assert set(y[(px < 0.4) & (py < 0.15)].tolist()) == {1}


def test_yin_yang_classes_are_point_symmetric() -> None:
    x, y = datasets.yin_yang(3000, seed=1)
    away = y != 2
    flipped = datasets._yin_yang_class(1 - x[away, 0].numpy(), 1 - x[away, 1].numpy(), 0.1, 0.5)
    boundary = np.isclose(np.hypot(x[away, 0].numpy() - 0.25, x[away, 1].numpy() - 0.5), 0.25, atol=1e-6)
    assert np.all((flipped == 1 - y[away].numpy()) | boundary)


def test_missing_file_names_the_path_and_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BSS2_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"uci_har_train\.npz.*BSS2_DATA"):
        datasets.load_har()
    with pytest.raises(FileNotFoundError, match="mnist.npz"):
        datasets.load_mnist()


def test_bss2_data_overrides_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    np.savez(tmp_path / "mnist.npz", x_train=np.zeros((2, 28, 28), np.uint8), y_train=np.array([1, 2], np.uint8),
             x_test=np.full((1, 28, 28), 255, np.uint8), y_test=np.array([7], np.uint8))
    monkeypatch.setenv("BSS2_DATA", str(tmp_path))
    x, y = datasets.load_mnist(split="test")
    assert x.shape == (1, 1, 28, 28) and float(x.max()) == 1.0 and y.tolist() == [7]


def test_har_from_the_original_folder_layout(tmp_path: Path) -> None:
    root = tmp_path / "UCI HAR Dataset" / "train"
    (root / "Inertial Signals").mkdir(parents=True)
    for k, channel in enumerate(datasets.HAR_CHANNELS):
        np.savetxt(root / "Inertial Signals" / f"{channel}_train.txt", np.full((3, 128), k, np.float32))
    np.savetxt(root / "y_train.txt", [1, 6, 3], fmt="%d")
    np.savetxt(root / "subject_train.txt", [1, 1, 2], fmt="%d")
    x, y, subject = datasets.load_har(tmp_path)
    assert x.shape == (3, 9, 128) and float(x[0, 4, 0]) == 4.0
    assert y.tolist() == [0, 5, 2] and subject.tolist() == [1, 1, 2]


def test_split_by_subject_separates_subjects() -> None:
    subject = torch.tensor([1, 1, 2, 3, 3, 4, 5, 5, 6, 7, 8, 9])
    train, validation = datasets.split_by_subject(subject, 0.25, seed=2)
    assert len(train) + len(validation) == len(subject)
    assert not set(subject[train].tolist()) & set(subject[validation].tolist())
    assert len(set(subject[validation].tolist())) == 2
    assert torch.equal(validation, datasets.split_by_subject(subject, 0.25, seed=2)[1])


@needs_har
def test_load_har() -> None:
    x, y, subject = datasets.load_har()
    assert x.shape == (7352, 9, 128) and x.dtype == torch.float32
    assert torch.bincount(y).tolist() == [1226, 1073, 986, 1286, 1374, 1407]
    assert len(torch.unique(subject)) == 21


@needs_mnist
def test_load_mnist() -> None:
    x, y = datasets.load_mnist(split="test")
    assert x.shape == (10000, 1, 28, 28) and 0.0 <= float(x.min()) and float(x.max()) == 1.0
    assert y.shape == (10000,) and int(y.max()) == 9


@needs_ecg
def test_load_ecg_decodes_cumulative_sums() -> None:
    records, y, fs = datasets.load_ecg()
    assert len(records) == len(y) == 7000 and fs == 300
    with np.load(datasets.find_data_file("ecg_af2017_train.npz"), allow_pickle=False) as data:
        i = 17
        start, length = int(data["offsets"][i]), int(data["lengths"][i])
        expected = np.cumsum(data["ecg_diff"][start:start + length], dtype=np.int32)
    assert np.array_equal(records[i].numpy(), expected)
