"""The bss2.ml examples run end to end in --quick mode (each well under a minute on two cores)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _data_available(name: str) -> bool:
    from bss2.ml.datasets import find_data_file
    try:
        find_data_file(name)
    except FileNotFoundError:
        return False
    return True


def _run(script: str, out: Path) -> str:
    env = dict(os.environ)
    result = subprocess.run([sys.executable, str(EXAMPLES / script), "--quick", "--no-progress", "--out", str(out)],
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_yin_yang_quick(tmp_path: Path) -> None:
    stdout = _run("yin_yang.py", tmp_path)
    assert "backend, after fine-tuning" in stdout
    assert (tmp_path / "yin_yang_decision_map.png").stat().st_size > 1000


@pytest.mark.skipif(not _data_available("uci_har_train.npz"), reason="uci_har_train.npz not found (BSS2_DATA)")
def test_har_quick(tmp_path: Path) -> None:
    stdout = _run("har.py", tmp_path)
    assert "backend, before fine-tuning" in stdout and "92.7" in stdout
    assert (tmp_path / "har_confusion.png").stat().st_size > 1000


@pytest.mark.skipif(not _data_available("mnist.npz"), reason="mnist.npz not found (BSS2_DATA)")
def test_mnist_quick(tmp_path: Path) -> None:
    assert "backend" in _run("mnist.py", tmp_path)
