"""Physical parameters of the emulated chip (:class:`EmulatorConfig`), loaded from ``defaults.yaml``."""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path
from typing import Any

import attrs
import yaml

from ..errors import HalValueError


def _non_negative(instance: Any, attribute: attrs.Attribute, value: float) -> None:
    if not (value >= 0) or math.isnan(value):
        raise HalValueError(f"EmulatorConfig.{attribute.name} = {value} must be >= 0")


def _positive(instance: Any, attribute: attrs.Attribute, value: float) -> None:
    if not (value > 0):
        raise HalValueError(f"EmulatorConfig.{attribute.name} = {value} must be > 0")


def _f(default: float, validator: Any = _non_negative) -> Any:
    return attrs.field(default=default, converter=float, validator=validator)


@attrs.frozen
class EmulatorConfig:
    """Every physical parameter of the emulator; the defaults (``defaults.yaml``) follow CHIP.md.

    Units are in the field names' documentation in ``defaults.yaml`` and ``docs/emulator.rst``: LSB are
    CADC steps, cycles are 8 ns FPGA cycles, ``*_us`` are microseconds of chip time. ``math.inf`` is
    allowed for time constants (no decay) and the saturation knee (no bend).
    """

    host_link_bits_per_s: float = _f(1.0e9, _positive)
    chip_io_bits_per_s: float = _f(8.0e9, _positive)
    instruction_cycles: float = _f(1.0)
    neuron_reset_cycles: float = _f(16.0)
    cadc_conversion_cycles: float = _f(64.0)
    recurrent_latency_cycles: float = _f(4.0)
    capmem_settle_tau_us: float = _f(2500.0)

    hagen_gain: float = _f(0.002)
    gain_spread: float = _f(0.14)
    exc_inh_mismatch: float = _f(0.03)
    gain_curve_zero_code: float = _f(20.0)
    gain_curve_zero_spread_code: float = _f(15.0)
    synapse_spread: float = _f(0.02)
    driver_spread: float = _f(0.01)
    driver_offset_step: float = _f(0.03)
    noise_lsb: float = _f(2.0)
    saturation_knee_lsb: float = _f(92.0, _positive)
    saturation_knee_spread_lsb: float = _f(5.0)
    saturation_span_lsb: float = _f(40.0, _positive)
    parasitic_leak_tau_us: float = _f(500.0, _positive)
    padi_dead_cycles: float = _f(3.0)

    voltage_lsb_per_code: float = _f(0.25)
    voltage_zero_code: float = _f(300.0)
    voltage_slope_spread: float = _f(0.03)
    offset_spread_lsb: float = _f(3.0)
    threshold_spread_lsb: float = _f(2.0)
    tau_mem_us: float = _f(10.0, _positive)
    tau_syn_us: float = _f(5.0, _positive)
    tau_spread: float = _f(0.10)
    spike_charge_lsb: float = _f(0.3)
    pulse_extension_step: float = _f(0.25)
    adaptation_tau_us: float = _f(50.0, _positive)
    adaptation_a_per_code: float = _f(0.001)
    adaptation_b_lsb_per_code: float = _f(0.02)
    exponential_slope_lsb: float = _f(4.0, _positive)
    exponential_strength_per_code: float = _f(0.002)
    offset_current_lsb_per_us_per_code: float = _f(0.01)

    recording_words: float = _f(4194304.0, _positive)

    madc_lsb_per_cadc_lsb: float = _f(4.0)
    madc_noise_lsb: float = _f(1.0)

    dt_us: float = _f(0.1, _positive)

    @classmethod
    def from_yaml(cls, source: str | Path | None = None) -> EmulatorConfig:
        """Load a config from a YAML file path or YAML text (default: the packaged ``defaults.yaml``).

        Keys missing from the file keep their class defaults; unknown keys raise :class:`HalValueError`.
        """
        if source is None:
            text = resources.files("bss2.hal.emulator").joinpath("defaults.yaml").read_text(encoding="utf-8")
        elif isinstance(source, Path) or (isinstance(source, str) and "\n" not in source and source.endswith((".yaml", ".yml"))):
            text = Path(source).read_text(encoding="utf-8")
        else:
            text = str(source)
        values = yaml.safe_load(text) or {}
        if not isinstance(values, dict):
            raise HalValueError(f"emulator config YAML must be a mapping, got {type(values).__name__}")
        known = {a.name for a in attrs.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise HalValueError(f"unknown emulator config keys {unknown}; known keys: {sorted(known)}")
        return cls(**values)

    @classmethod
    def default(cls) -> EmulatorConfig:
        """The documented defaults of ``defaults.yaml`` (a realistic, uncalibrated chip)."""
        return _DEFAULT

    @classmethod
    def ideal(cls) -> EmulatorConfig:
        """Every imperfection off: no fixed pattern, noise, saturation bend, leakage or event loss.

        The MAC is then exactly ``floor(hagen_gain * num_sends * x @ W)``, clipped only by the ADC range.
        Timing (link, timeline, CapMem settling) stays physical.
        """
        return _DEFAULT.evolve(
            gain_spread=0.0,
            exc_inh_mismatch=0.0,
            gain_curve_zero_spread_code=0.0,
            synapse_spread=0.0,
            driver_spread=0.0,
            noise_lsb=0.0,
            saturation_knee_lsb=math.inf,
            saturation_knee_spread_lsb=0.0,
            parasitic_leak_tau_us=math.inf,
            padi_dead_cycles=0.0,
            voltage_slope_spread=0.0,
            offset_spread_lsb=0.0,
            threshold_spread_lsb=0.0,
            tau_spread=0.0,
            madc_noise_lsb=0.0,
        )

    def evolve(self, **changes: Any) -> EmulatorConfig:
        """A copy with ``changes`` applied (validated like the constructor)."""
        known = {a.name for a in attrs.fields(type(self))}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise HalValueError(f"unknown emulator config keys {unknown}")
        return attrs.evolve(self, **changes)

    def to_dict(self) -> dict[str, float]:
        """All parameters as a plain dict (YAML-serialisable)."""
        return attrs.asdict(self)


_DEFAULT = EmulatorConfig.from_yaml()
