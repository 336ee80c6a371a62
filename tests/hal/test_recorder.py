"""Recorder: (coordinate, container) pairs survive a YAML round trip and replay into programs."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bss2.hal import (
    AtomicNeuronOnDLS,
    CapMemBlock,
    CapMemBlockOnDLS,
    CrossbarNode,
    CrossbarNodeOnDLS,
    NeuronBackendConfig,
    PlaybackProgramBuilder,
    Recorder,
    SynapseMatrix,
    SynramOnDLS,
)
from bss2.hal.recorder import coordinate_from_dict, coordinate_to_dict


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 511), st.integers(0, 255), st.integers(0, 239), st.integers(0, 2**16 - 1))
def test_yaml_round_trip(neuron, address, node, mask):
    recorder = Recorder()
    recorder.write(AtomicNeuronOnDLS.from_enum(neuron), NeuronBackendConfig(address_out=address))
    recorder.write(CrossbarNodeOnDLS.from_enum(node), CrossbarNode(mask=mask, enable=True))
    recorder.write(CapMemBlockOnDLS(1), CapMemBlock.nominal())
    restored = Recorder.from_yaml(recorder.to_yaml())
    assert [(c, v) for c, v in restored][:2] == [(c, v) for c, v in recorder][:2]
    assert list(restored)[2][1] == CapMemBlock.nominal()


def test_replay_produces_the_same_program_words():
    recorder = Recorder()
    recorder.write(SynramOnDLS(0), SynapseMatrix(weights=np.eye(256, dtype=int)))
    recorder.write(AtomicNeuronOnDLS(1, 2), NeuronBackendConfig(enable_spike_out=True))
    direct = PlaybackProgramBuilder()
    for coordinate, container in recorder:
        direct.write(coordinate, container)
    replayed = Recorder.from_yaml(recorder.to_yaml()).apply(PlaybackProgramBuilder())
    assert np.array_equal(direct.done().words[:-1], replayed.done().words[:-1])


def test_coordinate_dicts():
    coordinate = AtomicNeuronOnDLS(row=1, column=200)
    assert coordinate_from_dict(coordinate_to_dict(coordinate)) == coordinate
    assert coordinate_from_dict(coordinate_to_dict(SynramOnDLS(1))) == SynramOnDLS(1)
