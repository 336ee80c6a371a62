"""The BrainScaleS-2 chip emulator: the embedded default backend and the stand-in for the chip in tests.

:class:`Emulator` executes wire-format instruction words (:mod:`bss2.hal.wire`) against the register map
and a physical model of the analog core with the real chip's imperfections (fixed pattern, noise,
saturation, leakage, event loss, CapMem settling); :class:`EmulatorConfig` holds every physical parameter
(``defaults.yaml``; :meth:`EmulatorConfig.ideal` turns the imperfections off). The embedded processors
(PPUs) are not emulated: starting one answers with an ``NOT_EMULATED`` error. See ``docs/emulator.rst``.
"""

from .config import EmulatorConfig
from .emulator import Emulator, Timing

__all__ = ["Emulator", "EmulatorConfig", "Timing"]
