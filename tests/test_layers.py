"""Cross-cutting checks: the lower layers never import torch, and importing bss2.hal stays light."""

import subprocess
import sys

import pytest

LOWER_LAYERS = ["bss2.hal", "bss2.comm", "bss2.graph", "bss2.exec"]


@pytest.mark.parametrize("module", LOWER_LAYERS)
def test_lower_layers_do_not_import_torch(module):
    code = f"import sys, {module}; sys.exit(1 if 'torch' in sys.modules else 0)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"importing {module} imported torch\n{result.stderr}"


def test_importing_hal_does_not_import_the_emulator_or_heavy_optional_modules():
    code = (
        "import sys, bss2.hal; heavy = [m for m in ('bss2.hal.emulator', 'scipy', 'matplotlib', 'torch') "
        "if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
