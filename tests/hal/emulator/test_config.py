"""EmulatorConfig: defaults from defaults.yaml, ideal(), YAML round trip, validation."""

import math

import pytest
import yaml

from bss2.hal.emulator import EmulatorConfig
from bss2.hal.errors import HalValueError


def test_default_matches_documented_chip_values():
    config = EmulatorConfig.default()
    assert config.hagen_gain == 0.002
    assert config.noise_lsb == 2.0
    assert config.host_link_bits_per_s == 1e9
    assert config.chip_io_bits_per_s == 8e9
    assert config == EmulatorConfig()


def test_ideal_turns_every_imperfection_off():
    ideal = EmulatorConfig.ideal()
    assert ideal.noise_lsb == 0 and ideal.gain_spread == 0 and ideal.synapse_spread == 0
    assert ideal.offset_spread_lsb == 0 and ideal.padi_dead_cycles == 0
    assert math.isinf(ideal.saturation_knee_lsb) and math.isinf(ideal.parasitic_leak_tau_us)
    assert ideal.hagen_gain == EmulatorConfig.default().hagen_gain


def test_yaml_round_trip(tmp_path):
    path = tmp_path / "chip.yaml"
    config = EmulatorConfig.default().evolve(noise_lsb=3.5)
    path.write_text(yaml.safe_dump(config.to_dict()))
    assert EmulatorConfig.from_yaml(path) == config
    assert EmulatorConfig.from_yaml("noise_lsb: 1.0\n").noise_lsb == 1.0


def test_unknown_keys_and_bad_values_raise_naming_them():
    with pytest.raises(HalValueError, match="bogus"):
        EmulatorConfig.from_yaml("bogus: 1\n")
    with pytest.raises(HalValueError, match="noise_lsb"):
        EmulatorConfig.default().evolve(noise_lsb=-1)
    with pytest.raises(HalValueError, match="tau_mem_us"):
        EmulatorConfig(tau_mem_us=0)
