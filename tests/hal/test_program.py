"""Playback program builder: tickets, merge, timed spikes, response checking."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bss2.hal import (
    AtomicNeuronOnDLS,
    CADCSampleRow,
    CADCSampleRowOnDLS,
    NeuronConfig,
    PlaybackProgramBuilder,
    ProgramError,
    SynapseMatrix,
    SynramOnDLS,
    TicketNotReadyError,
    TimerOnDLS,
    program_from_words,
    wire,
)
from bss2.hal.errors import HalTypeError, HalValueError
from bss2.hal.program import encode_register_writes, encode_timed_spikes


def respond(program, memory=None, spikes=()):
    """Answer a program like a chip whose memory holds `memory[address]` (default: address value)."""
    memory = memory or {}
    data = np.array([memory.get(int(a), int(a) & 0xFFFF) for a in program.read_addresses], dtype=np.int64)
    parts = [wire.encode_read_data(program.read_addresses, data)] if data.size else []
    if spikes:
        parts.append(wire.encode_spike_responses([s[0] for s in spikes], [s[1] for s in spikes]))
    parts.append(wire.encode_end_response(program.cookie))
    return np.concatenate(parts)


def test_ticket_raises_before_the_program_ran():
    builder = PlaybackProgramBuilder()
    ticket = builder.read(TimerOnDLS())
    with pytest.raises(TicketNotReadyError, match="not ready"):
        ticket.get()
    program = builder.done()
    with pytest.raises(TicketNotReadyError):
        ticket.get()
    program.deliver(respond(program, {2: 1234}))
    assert ticket.get().value == 1234 and ticket.ready


def test_write_then_read_decodes_containers():
    neuron = AtomicNeuronOnDLS(row=1, column=9)
    config = NeuronConfig(enable_leak=False, membrane_capacitance=17)
    builder = PlaybackProgramBuilder().write(neuron, config)
    ticket = builder.read(neuron, NeuronConfig)
    program = builder.done()
    address = int(NeuronConfig.addresses(neuron)[0])
    program.deliver(respond(program, {address: int(config.to_words()[0])}))
    assert ticket.get() == config


def test_bulk_reads_use_blocks_and_decode():
    builder = PlaybackProgramBuilder()
    ticket = builder.read(CADCSampleRowOnDLS(1, 0), CADCSampleRow)
    program = builder.done()
    assert program.words.size == 2  # one READ_BLOCK + END
    samples = np.arange(256, dtype=np.uint8)
    memory = dict(zip(CADCSampleRow.addresses(CADCSampleRowOnDLS(1, 0)).tolist(), CADCSampleRow(samples=samples).to_words().tolist()))
    program.deliver(respond(program, memory))
    assert np.array_equal(ticket.get().samples, samples)


def test_whole_synram_write_is_two_blocks():
    builder = PlaybackProgramBuilder().write(SynramOnDLS(0), SynapseMatrix(weights=np.ones((256, 256), int)))
    program = builder.done()
    stream = wire.decode_instructions(program.words)
    assert stream.block_headers.size == 2 and stream.block_data.size == 32768


def test_merge_keeps_tickets_working():
    first = PlaybackProgramBuilder()
    t1 = first.read(TimerOnDLS())
    second = PlaybackProgramBuilder()
    t2 = second.read(AtomicNeuronOnDLS(0, 3), NeuronConfig)
    t3 = second.read(TimerOnDLS())
    first.merge(second)
    assert len(second) == 0
    program = first.done()
    address = int(NeuronConfig.addresses(AtomicNeuronOnDLS(0, 3))[0])
    program.deliver(respond(program, {2: 7, address: int(NeuronConfig(membrane_capacitance=5).to_words()[0])}))
    assert t1.get().value == 7 and t3.get().value == 7
    assert t2.get().membrane_capacitance == 5


def test_deliver_rejects_incomplete_or_erroneous_responses_and_changes_nothing():
    builder = PlaybackProgramBuilder()
    ticket = builder.read(TimerOnDLS())
    program = builder.done()
    full = respond(program)
    with pytest.raises(ProgramError, match="end-of-program marker"):
        program.deliver(full[:-1])
    with pytest.raises(ProgramError, match="expected 1 read words"):
        program.deliver(wire.encode_end_response(program.cookie))
    with pytest.raises(ProgramError, match="error"):
        program.deliver(np.concatenate((wire.encode_errors([1], [0x42], [0]), full)))
    assert not ticket.ready
    program.deliver(full)
    assert ticket.ready


def test_builder_rejects_wrong_inputs():
    builder = PlaybackProgramBuilder()
    with pytest.raises(HalTypeError):
        builder.write(AtomicNeuronOnDLS(0, 0), "not a container")  # type: ignore[arg-type]
    with pytest.raises(HalTypeError):
        builder.read(AtomicNeuronOnDLS(0, 0))  # ambiguous: NeuronConfig or NeuronBackendConfig
    with pytest.raises(HalValueError):
        builder.spikes([1, 2], times=[5])
    assert len(builder) == 0


@given(st.lists(st.tuples(st.integers(0, 2**16 - 1), st.integers(0, 5000)), min_size=1, max_size=60))
def test_timed_spikes_are_sent_at_their_times_or_as_early_as_possible(events):
    labels = np.array([e[0] for e in events])
    times = np.array([e[1] for e in events])
    words = encode_timed_spikes(labels, times)
    # replay the documented timing rule of wire.py
    t, sent = 0, []
    for w in words.tolist():
        opcode, payload = w >> 56, w & ((1 << 56) - 1)
        if opcode == wire.Opcode.WAIT_UNTIL:
            t = max(t, payload & 0xFFFFFFFF)
        else:
            t += (payload >> 50) & 63
            count = (payload >> 48) & 3
            for k in range(count):
                sent.append(((payload >> (32 - 16 * k)) & 0xFFFF, t))
            t += 1
    order = np.argsort(times, kind="stable")
    assert [s[0] for s in sent] == labels[order].tolist()
    sent_times = np.array([s[1] for s in sent])
    assert (sent_times >= times[order]).all()
    # never later than necessary: at most 3 events per cycle
    assert (np.bincount(sent_times) <= 3).all()
    exact = np.bincount(times, minlength=sent_times.max() + 1) <= 3
    if exact.all():
        assert np.array_equal(sent_times, times[order])


@given(st.lists(st.integers(0, 200), max_size=60, unique=True))
def test_register_writes_keep_order_and_values(addresses):
    addresses = np.array(sorted(addresses), dtype=np.int64)
    data = (addresses * 3 + 1) % 2**32
    stream = wire.decode_instructions(encode_register_writes(addresses, data))
    singles = stream.opcode == wire.Opcode.WRITE
    written = dict(zip(stream.addresses[singles].tolist(), stream.low32[singles].tolist()))
    for header, count in zip(stream.block_headers.tolist(), stream.block_counts.tolist()):
        start = int(stream.words[header] >> np.uint64(32)) & 0xFFFFFF
        block_values = stream.block_data[stream.block_of == list(stream.block_headers).index(header)]
        written.update(zip(range(start, start + count), block_values.tolist()))
    assert written == dict(zip(addresses.tolist(), data.tolist()))


def test_program_from_words_recovers_reads_and_cookie():
    builder = PlaybackProgramBuilder()
    builder.read(TimerOnDLS())
    builder.read(CADCSampleRowOnDLS(0, 0), CADCSampleRow)
    original = builder.done()
    replay = program_from_words(original.words)
    assert replay.cookie == original.cookie
    assert np.array_equal(replay.read_addresses, original.read_addresses)
    assert replay.expected_response_words == original.expected_response_words == 1 + 1 + 32 + 1  # READ_DATA, block header, 32 data words, END
