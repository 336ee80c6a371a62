"""Loading numba for hal's compiled passes, with the environment switch that selects their numpy twins.

Every compiled pass in ``hal`` (the emulator's kernels, the hagen input encoder) has a numpy twin that gives the
same results; an environment variable per pass picks ``numba`` (the default) or ``numpy``. numba is imported
here, on first use, never at import time of ``hal``.
"""

from __future__ import annotations

import logging
import os
from types import ModuleType

from .errors import HalValueError

_log = logging.getLogger(__name__)


def load_numba(variable: str, what: str) -> ModuleType | None:
    """The numba module, or None when ``$variable`` is ``numpy`` or numba cannot be imported (logged, naming
    ``what`` falls back to its numpy passes). Any other value than ``numba``/``numpy`` raises."""
    wanted = os.environ.get(variable, "numba").strip().lower()
    if wanted not in ("numba", "numpy"):
        raise HalValueError(f"{variable} = {wanted!r}: expected 'numba' or 'numpy'")
    if wanted == "numpy":
        return None
    try:
        import numba
    except ImportError:  # pragma: no cover - numba is a dependency; this is the degraded fallback
        _log.warning("numba is not importable: %s uses its (slower) numpy passes", what)
        return None
    return numba
