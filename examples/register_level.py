"""Register-level experiment on the embedded emulator: containers, tickets, a hagen-mode MAC, a neuron trace.

Uses only ``bss2.hal`` and ``bss2.comm`` (no graph, no executor, no torch):

1. write a synapse matrix and read it back through a ticket;
2. compute a matrix-vector product in hagen mode with the register-level recipe of ``bss2.hal.hagen``
   and compare it with the ideal arithmetic ``floor(0.002 * x @ W)``;
3. reset one neuron and record its membrane with the MADC while it relaxes to its leak potential.

    python examples/register_level.py [--seed 7]
"""

from __future__ import annotations

import argparse

import numpy as np

from bss2.comm import EmulatorConnection, run
from bss2.hal import (
    AtomicNeuronOnDLS,
    CapMemBlock,
    CapMemBlockOnDLS,
    MADCConfig,
    MADCOnDLS,
    NeuronConfig,
    PlaybackProgramBuilder,
    ReadoutChannelOnDLS,
    ReadoutSourceSelection,
    SynapseMatrix,
    SynramOnDLS,
    hagen,
    wire,
)
from bss2.hal.regmap import REGISTER_MAP


def synapse_round_trip(connection: EmulatorConnection, rng: np.random.Generator) -> bool:
    matrix = SynapseMatrix(weights=rng.integers(0, 64, (256, 256)), labels=rng.integers(0, 64, (256, 256)))
    builder = PlaybackProgramBuilder()
    builder.write(SynramOnDLS(1), matrix)
    ticket = builder.read(SynramOnDLS(1), SynapseMatrix)
    program = builder.done()
    result = run(connection, program)
    print(f"synapse matrix: {program.words.size} instruction words, read back equal: {ticket.get() == matrix}, "
          f"hardware time {result.timing.hardware_time * 1e6:.1f} us")
    return bool(ticket.get() == matrix)


def hagen_mac(connection: EmulatorConnection, rng: np.random.Generator) -> float:
    weights = rng.integers(-63, 64, (128, 256))
    inputs = rng.integers(0, 32, (100, 128))
    connection.execute(np.concatenate([hagen.hagen_config_words({0: weights}), wire.encode_end(1)]))
    responses = connection.execute(hagen.hagen_input_words({0: inputs}, end_cookie=2)).responses
    measured = hagen.decode_hagen_responses(responses, [0], batch=100)[0]
    ideal = np.clip(np.floor(0.002 * inputs @ weights), -128, 127)
    linear = np.abs(ideal) < 70
    error = measured[linear] - ideal[linear]
    print(f"hagen MAC: 100 vectors x (128 x 256); deviation from the ideal chip in the linear range: "
          f"mean {error.mean():+.2f} LSB, std {error.std():.2f} LSB (fixed pattern + noise)")
    return float(error.std())


def membrane_trace(connection: EmulatorConnection) -> np.ndarray:
    neuron = AtomicNeuronOnDLS(row=0, column=10)
    builder = PlaybackProgramBuilder()
    builder.write(CapMemBlockOnDLS(0), CapMemBlock.nominal())
    builder.write(neuron, NeuronConfig(enable_leak=True, enable_readout=True))
    builder.write(ReadoutChannelOnDLS(0), ReadoutSourceSelection(neuron=int(neuron), signal="membrane", enable=True))
    builder.write(MADCOnDLS(), MADCConfig(enable=True, sample_period=125, number_of_samples=80))
    builder.timer_reset().wait_until(2_500_000)  # let CapMem settle (20 ms)
    builder.timer_reset()
    builder.words(wire.encode_write([REGISTER_MAP["neuron_reset"].base], [0b0001]))
    builder.words(wire.encode_write([REGISTER_MAP["madc_control"].base], [1]))
    builder.wait_until(10_000)  # 80 µs
    program = builder.done()
    run(connection, program)
    values = program.madc_values.astype(int)
    print(f"membrane after reset: {values[0]} -> {values[-1]} (MADC LSB), {values.size} samples 1 us apart")
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7, help="chip serial number of the emulated chip")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    with EmulatorConnection(seed=args.seed) as connection:
        print(f"connected to {connection!r}")
        synapse_round_trip(connection, rng)
        hagen_mac(connection, rng)
        membrane_trace(connection)


if __name__ == "__main__":
    main()
