"""The Connection layer: backend conformance, backend selection, run() semantics, the emulator server."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bss2.comm import (
    ChipBusy,
    CommError,
    EmulatorConnection,
    UdpConnection,
    ZeroMockConnection,
    connect,
    connect_many,
    run,
)
from bss2.comm.arq import ArqConfig
from bss2.comm.connection import decode_reply, encode_request, handle_request
from bss2.comm.faults import FaultSpec, FaultyRelay
from bss2.comm.server import make_server
from bss2.hal import (
    AtomicNeuronOnDLS,
    CADCSampleRow,
    CADCSampleRowOnDLS,
    CapMemCell,
    CapMemCellOnDLS,
    ChipIdOnDLS,
    NeuronBackendConfig,
    NeuronConfig,
    PlaybackProgramBuilder,
    ProgramError,
    SynapseMatrix,
    SynramOnDLS,
    TimerOnDLS,
    wire,
)

emulator_module = pytest.importorskip("bss2.hal.emulator")


def random_register_program(rng: np.random.Generator) -> tuple[PlaybackProgramBuilder, list]:
    """Writes and reads of random neuron/CapMem registers (no analog noise involved)."""
    builder = PlaybackProgramBuilder()
    tickets = []
    for _ in range(int(rng.integers(1, 20))):
        neuron = AtomicNeuronOnDLS.from_enum(int(rng.integers(0, 512)))
        choice = rng.integers(0, 3)
        if choice == 0:
            builder.write(neuron, NeuronBackendConfig(address_out=int(rng.integers(0, 256)), refractory_time=int(rng.integers(0, 256))))
            tickets.append(builder.read(neuron, NeuronBackendConfig))
        elif choice == 1:
            cell = CapMemCellOnDLS.from_enum(int(rng.integers(0, CapMemCellOnDLS.SIZE)))
            builder.write(cell, CapMemCell(value=int(rng.integers(0, 1023))))
            tickets.append(builder.read(cell))
        else:
            builder.write(neuron, NeuronConfig(membrane_capacitance=int(rng.integers(0, 64))))
            tickets.append(builder.read(neuron, NeuronConfig))
    return builder, tickets


@pytest.fixture
def udp_server():
    servers = []

    def start(seed: int = 0, **kwargs):
        server = make_server(seed=seed, **kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def test_emulator_connection_reads_what_was_written_and_reports_timing():
    with EmulatorConnection(seed=5) as connection:
        assert connection.info.backend == "emulator" and connection.info.chip_id == 5
        builder, tickets = random_register_program(np.random.default_rng(0))
        chip_id = builder.read(ChipIdOnDLS())
        program = builder.done()
        result = run(connection, program)
        assert chip_id.get().value == 5
        assert all(t.ready for t in tickets)
        assert result.timing.hardware_time > 0 and result.timing.execute > 0


@pytest.mark.parametrize("seed", [0, 3])
def test_udp_backend_conforms_to_the_in_process_emulator(udp_server, seed):
    server = udp_server(seed=seed)
    local = EmulatorConnection(seed=seed)
    rng = np.random.default_rng(seed)
    with UdpConnection(*server.address[:2]) as remote:
        assert remote.info.chip_id == local.info.chip_id
        for _ in range(20):
            builder, _ = random_register_program(rng)
            builder.read(CADCSampleRowOnDLS(0, 0), CADCSampleRow)  # measured values, deterministic per seed
            words = builder.done().words
            assert np.array_equal(remote.execute(words).responses, local.execute(words).responses)


def test_programs_through_a_hostile_network_are_bit_exact(udp_server):
    server = udp_server(seed=1)
    local = EmulatorConnection(seed=1)
    spec = FaultSpec(loss=0.05, duplicate=0.05, reorder=0.05, corrupt=0.01, reorder_delay=0.002)
    rng = np.random.default_rng(42)
    with FaultyRelay(server.address[:2], spec, seed=3) as relay:
        with UdpConnection(*relay.address[:2], timeout=30) as remote:
            for _ in range(200):
                builder, _ = random_register_program(rng)
                if rng.random() < 0.1:
                    builder.write(SynramOnDLS(int(rng.integers(0, 2))), SynapseMatrix(weights=rng.integers(0, 64, (256, 256))))
                words = builder.done().words
                assert np.array_equal(remote.execute(words).responses, local.execute(words).responses)
        assert relay.stats["dropped"] and relay.stats["corrupted"]


def test_busy_server_rejects_a_second_client(udp_server):
    server = udp_server()
    with UdpConnection(*server.address[:2]):
        with pytest.raises(ChipBusy):
            UdpConnection(*server.address[:2], connect_timeout=2.0)


def test_token_is_required_when_set(udp_server):
    server = udp_server(token="secret")
    with pytest.raises(CommError):
        UdpConnection(*server.address[:2], token="wrong", connect_timeout=2.0)
    with UdpConnection(*server.address[:2], token="secret") as connection:
        assert connection.info.backend == "udp"


def test_server_answers_malformed_requests_with_errors_and_keeps_serving():
    emulator = emulator_module.Emulator(seed=2)
    for request in (b"", b"junk", encode_request(None)[:-1] + b"\x09", encode_request(np.zeros(3, np.uint64)) + b"\x01"):
        with pytest.raises(CommError):
            decode_reply(handle_request(emulator, request))
    words = PlaybackProgramBuilder().done().words
    responses, chip_id, _, _ = decode_reply(handle_request(emulator, encode_request(words)))
    assert chip_id == 2 and wire.decode_responses(responses).end_cookies.size == 1


def test_zeromock_answers_every_read_with_zero_and_keeps_no_state():
    builder = PlaybackProgramBuilder()
    builder.write(AtomicNeuronOnDLS(0, 1), NeuronConfig(membrane_capacitance=5))
    neuron = builder.read(AtomicNeuronOnDLS(0, 1), NeuronConfig)
    row = builder.read(CADCSampleRowOnDLS(1, 1), CADCSampleRow)
    timer = builder.read(TimerOnDLS())
    program = builder.done()
    result = run(ZeroMockConnection(), program)
    assert NeuronConfig.decode([0]) == neuron.get()
    assert (row.get().samples == 0).all() and timer.get().value == 0
    assert result.timing.hardware_time == pytest.approx(program.words.size * 8e-9)


def test_run_raises_on_incomplete_responses_and_leaves_tickets_unready():
    class Truncating(ZeroMockConnection):
        def _execute_words(self, words):
            result = super()._execute_words(words)
            return type(result)(result.responses[:-1], result.timing)

    builder = PlaybackProgramBuilder()
    ticket = builder.read(TimerOnDLS())
    with pytest.raises(ProgramError, match="end-of-program"):
        run(Truncating(), builder.done())
    assert not ticket.ready


def test_connect_reads_the_environment(monkeypatch):
    monkeypatch.delenv("BSS2_CONNECTION", raising=False)
    assert isinstance(connect(), EmulatorConnection)
    monkeypatch.setenv("BSS2_CONNECTION", "zeromock")
    assert isinstance(connect(), ZeroMockConnection)
    monkeypatch.setenv("BSS2_CONNECTION", "emulator:0x10,emulator,zeromock")
    connections = connect_many()
    assert [c.info.chip_id for c in connections] == [0x10, 1, 0]
    with pytest.raises(CommError, match="connect_many"):
        connect()
    monkeypatch.setenv("BSS2_CONNECTION", "emulator:5:ideal")
    ideal = connect()
    assert ideal.info.chip_id == 5 and ideal.emulator.config == type(ideal.emulator.config).ideal()
    monkeypatch.setenv("BSS2_CONNECTION", "carrier-pigeon")
    with pytest.raises(CommError, match="not a known backend"):
        connect()
    monkeypatch.setenv("BSS2_CONNECTION", "udp://localhost")
    with pytest.raises(CommError, match="host and a port"):
        connect()


def test_closed_connection_refuses_programs():
    connection = ZeroMockConnection()
    connection.close()
    with pytest.raises(CommError, match="closed"):
        connection.execute(PlaybackProgramBuilder().done())


def test_every_program_started_is_counted_and_a_refused_one_is_not():
    """programs_executed lets a user of the chip notice programs that others ran on it."""
    connection = EmulatorConnection(seed=1)
    assert connection.programs_executed == 0
    connection.execute(PlaybackProgramBuilder().done())
    connection.execute([wire.encode_timer_reset(), wire.encode_end(1)])  # in parts: one program
    assert connection.programs_executed == 2
    with pytest.raises(CommError):
        connection.execute(np.zeros((2, 2), np.uint64))  # started, then refused by its words
    assert connection.programs_executed == 3
    connection.close()
    with pytest.raises(CommError, match="closed"):
        connection.execute(PlaybackProgramBuilder().done())
    assert connection.programs_executed == 3


def test_console_script_serves_and_a_killed_server_makes_the_client_raise():
    process = subprocess.Popen(
        [sys.executable, "-m", "bss2.comm.server", "serve", "--port", "0", "--seed", "9", "--lease-timeout", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "BSS2_TOKEN": ""},
    )
    try:
        line = process.stdout.readline()
        port = int(line.rsplit(":", 1)[1])
        connection = UdpConnection("127.0.0.1", port, timeout=2.0)
        assert connection.info.chip_id == 9
        process.kill()
        process.wait(timeout=10)
        start = time.monotonic()
        with pytest.raises(CommError):
            connection.execute(np.tile(PlaybackProgramBuilder().done().words, 1))
        assert time.monotonic() - start < 10  # bounded by the client's timeout, not forever
    finally:
        process.kill()
        process.wait(timeout=10)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 2**64 - 1), max_size=60), st.integers(0, 2**32 - 1))
def test_zeromock_fast_answers_equal_the_general_answers(words, seed):
    from bss2.comm.connection import _zero_responses_general, zero_responses

    rng = np.random.default_rng(seed)
    # mix random words with well-formed reads, block reads and END markers at random places
    parts = [np.array(words, dtype=np.uint64)]
    parts.append(wire.encode_read(rng.integers(0, 1 << 24, 3)))
    parts.append(wire.encode_read_block(int(rng.integers(0, 1 << 20)), int(rng.integers(1, 9))))
    parts.append(wire.encode_write_block(int(rng.integers(0, 1 << 20)), rng.integers(0, 2**32, int(rng.integers(1, 7)))))
    parts.append(wire.encode_end(int(rng.integers(0, 2**32))))
    rng.shuffle(parts)
    stream = np.concatenate(parts)
    assert np.array_equal(zero_responses(stream), _zero_responses_general(stream))


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 4), st.integers(0, 2**32 - 1), st.booleans())
def test_zeromock_walks_leading_write_blocks(n_blocks, seed, truncated):
    """Leading WRITE_BLOCKs (a weight update) are skipped header by header; data words that look like
    reads or END markers never answer, and what follows answers as in the general decoder."""
    from bss2.comm.connection import _zero_responses_general, zero_responses

    rng = np.random.default_rng(seed)
    parts = []
    for _ in range(n_blocks):
        data = rng.integers(0, 2**32, int(rng.integers(1, 40)), dtype=np.uint64)
        data[::3] = (int(rng.choice([wire.Opcode.READ, wire.Opcode.READ_BLOCK, wire.Opcode.END])) << 24) | 5  # looks like an instruction
        parts.append(wire.encode_write_block(int(rng.integers(0, 1 << 20)), data))
    parts.append(wire.encode_read_block(int(rng.integers(0, 1 << 20)), int(rng.integers(1, 9))))
    parts.append(wire.encode_read(rng.integers(0, 1 << 24, 2)))
    parts.append(wire.encode_end(int(rng.integers(0, 2**32))))
    stream = np.concatenate(parts)
    if truncated and n_blocks:
        stream = parts[0][: max(1, parts[0].size - 2)]  # a block whose data runs past the end
    assert np.array_equal(zero_responses(stream), _zero_responses_general(stream))


def _weights_then_vectors(rng: np.random.Generator) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """A hagen set-up program, then a program in parts: a new weight block per synram, then vectors and END."""
    from bss2.hal import REGISTER_MAP, hagen
    from bss2.hal.emulator import Emulator

    setup = hagen.hagen_config_words({h: rng.integers(-63, 64, (128, 256)) for h in (0, 1)})
    scratch = Emulator(seed=0)
    scratch.execute(hagen.hagen_config_words({h: rng.integers(-63, 64, (128, 256)) for h in (0, 1)}))
    base = REGISTER_MAP["synapse_quad"].base
    planes = scratch.memory[base : base + 32768]
    blocks = [wire.encode_write_block(base + 16384 * h, planes[16384 * h : 16384 * (h + 1)]) for h in (0, 1)]
    x = {h: rng.integers(0, 32, (5, 128)) for h in (0, 1)}
    return setup, blocks, hagen.hagen_input_words(x, end_cookie=9)


@pytest.mark.parametrize("backend", ["emulator", "zeromock", "udp"])
def test_a_program_in_parts_runs_as_their_concatenation(udp_server, backend):
    rng = np.random.default_rng(11)
    setup, synapse_blocks, vectors = _weights_then_vectors(rng)

    def make():
        if backend == "udp":
            return UdpConnection(*udp_server(seed=2).address[:2])
        return EmulatorConnection(seed=2) if backend == "emulator" else ZeroMockConnection()

    with make() as joined, make() as split:
        assert joined.execute(setup).responses.size == split.execute([setup]).responses.size
        for _ in range(2):
            expected = joined.execute(np.concatenate([*synapse_blocks, vectors]))
            got = split.execute((*synapse_blocks, np.empty(0, np.uint64), vectors))
            assert np.array_equal(got.responses, expected.responses)
            assert got.timing.hardware_time == expected.timing.hardware_time
        # a part that is not 1-D uint64 words is refused
        with pytest.raises(CommError, match="1-D uint64"):
            split.execute([vectors, vectors.astype(np.float64)])
        assert split.execute([]).responses.size == 0


@pytest.mark.parametrize("backend", [EmulatorConnection, UdpConnection])
def test_a_subclass_that_sees_every_programs_words_sees_parts_joined(udp_server, backend):
    seen = []

    class Recording(backend):
        def _execute_words(self, words):
            seen.append(words.copy())
            return super()._execute_words(words)

    _, blocks, vectors = _weights_then_vectors(np.random.default_rng(12))
    connection = Recording(seed=1) if backend is EmulatorConnection else Recording(*udp_server(seed=1).address[:2])
    with connection:
        connection.execute([*blocks, vectors])
    assert len(seen) == 1 and np.array_equal(seen[0], np.concatenate([*blocks, vectors]))
