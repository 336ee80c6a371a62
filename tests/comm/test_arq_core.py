"""Deterministic unit tests of the sans-IO ARQ core over a simulated network with a virtual clock."""

from __future__ import annotations

import random
import struct
import zlib

import pytest
from arq_sim import Faults, Net

from bss2.comm.arq import (
    PROTOCOL_VERSION,
    ArqConfig,
    Closed,
    ConnectionLost,
    Endpoint,
    HandshakeComplete,
    MessageReceived,
    Rejected,
    RejectReason,
    State,
)
from bss2.comm.errors import ConnectionLost as ConnectionLostError

SMALL = ArqConfig(max_payload=1440, window=16, idle_timeout=5.0, keepalive_interval=0.5)


def pair(seed: int = 0, faults: Faults | None = None, config: ArqConfig = SMALL, client_token=None,
         server_token=None) -> tuple[Net, Endpoint, Endpoint]:
    net = Net(seed=seed, faults=faults or Faults())
    server = net.add("server", "server", config, token=server_token)
    client = net.add("client", "client", config, token=client_token)
    client.connect(net.now, peer="server")
    return net, client, server


def messages(seed: int, count: int, max_len: int = 6000) -> list[bytes]:
    rng = random.Random(seed)
    sizes = [0, 1, 1439, 1440, 1441, 2880] + [rng.randrange(max_len) for _ in range(count)]
    return [rng.randbytes(n) for n in sizes]


def exchange(net: Net, client: Endpoint, msgs: list[bytes], max_steps: int = 200_000) -> list[bytes]:
    for m in msgs:
        client.send_message(m, net.now)
    net.run_until(lambda: len(net.of("server", MessageReceived)) >= len(msgs)
                  or net.of("client", ConnectionLost), max_steps=max_steps)
    return [e.data for e in net.of("server", MessageReceived)]


def test_handshake_negotiates_the_smaller_parameters() -> None:
    net = Net()
    net.add("server", "server", ArqConfig(max_payload=4000, window=64))
    client = net.add("client", "client", ArqConfig(max_payload=8000, window=32))
    client.connect(0.0, peer="server")
    assert net.run_until(lambda: net.of("client", HandshakeComplete) and net.of("server", HandshakeComplete))
    done = net.of("client", HandshakeComplete)[0]
    assert (done.max_payload, done.window) == (4000, 32)
    assert net.of("server", HandshakeComplete)[0].peer == "client"


def test_lossless_messages_arrive_in_order_and_bit_exact() -> None:
    net, client, _ = pair()
    msgs = messages(1, 20)
    assert exchange(net, client, msgs) == msgs


def test_reply_flows_back_from_server() -> None:
    net, client, server = pair()
    client.send_message(b"ping", net.now)
    assert net.run_until(lambda: net.of("server", MessageReceived))
    server.send_message(b"pong" * 1000, net.now)
    assert net.run_until(lambda: net.of("client", MessageReceived))
    assert net.of("client", MessageReceived)[0].data == b"pong" * 1000


@pytest.mark.parametrize("faults", [
    Faults(loss=0.1), Faults(duplicate=0.3), Faults(reorder=0.5), Faults(corrupt=0.1),
    Faults(delay=0.02), Faults(loss=0.05, duplicate=0.05, reorder=0.2, corrupt=0.02),
], ids=["loss", "duplicate", "reorder", "corrupt", "delay", "all"])
def test_faults_do_not_change_what_is_delivered(faults: Faults) -> None:
    net, client, _ = pair(seed=3, faults=faults)
    msgs = messages(2, 30)
    assert exchange(net, client, msgs) == msgs
    assert not net.of("client", ConnectionLost)


def test_corrupted_frames_are_dropped_and_counted() -> None:
    net, client, server = pair(seed=5, faults=Faults(corrupt=0.3))
    msgs = messages(3, 10)
    assert exchange(net, client, msgs) == msgs
    assert server.stats["datagrams_dropped"] + client.stats["datagrams_dropped"] > 0


def test_losses_are_repaired_by_fast_retransmit_not_only_timeouts() -> None:
    net, client, _ = pair(seed=4, faults=Faults(loss=0.03))
    msgs = [bytes(200_000)]
    assert exchange(net, client, msgs) == msgs
    assert client.stats["retransmissions"] > client.stats["timeouts"]


def test_sequence_numbers_wrap_around_32_bits() -> None:
    config = ArqConfig(max_payload=256, window=8, initial_sequence=2**32 - 5)
    net, client, server = pair(seed=1, faults=Faults(loss=0.05, reorder=0.3), config=config)
    msgs = messages(4, 10, max_len=3000)
    assert exchange(net, client, msgs) == msgs
    assert client.stats["data_frames_sent"] > 5  # crossed 2**32
    server.send_message(b"back" * 300, net.now)
    assert net.run_until(lambda: net.of("client", MessageReceived))


def test_retransmit_exhaustion_loses_the_connection_without_partial_data() -> None:
    net, client, _ = pair(config=ArqConfig(max_payload=1440, window=16, idle_timeout=1000.0))
    assert net.run_until(lambda: net.of("client", HandshakeComplete))
    net.faults.loss = 1.0
    client.send_message(bytes(10_000), net.now)
    assert net.run_until(lambda: net.of("client", ConnectionLost), max_time=120)
    assert "retransmissions" in net.of("client", ConnectionLost)[0].reason
    assert not net.of("server", MessageReceived)
    assert client.state is State.CLOSED
    with pytest.raises(ConnectionLostError, match="state"):
        client.send_message(b"x", net.now)


def test_partial_message_is_never_delivered() -> None:
    net, client, _ = pair()
    assert net.run_until(lambda: net.of("server", HandshakeComplete))
    client.send_message(bytes(20 * 1440), net.now)
    net.step()  # some frames of the message are on their way
    net.blackholed.add("client")
    net.run_until(lambda: net.of("server", ConnectionLost), max_time=60)
    assert not net.of("server", MessageReceived)
    assert "no frame from peer" in net.of("server", ConnectionLost)[0].reason


def test_unanswered_handshake_gives_up() -> None:
    net = Net()
    client = net.add("client", "client", SMALL)
    client.connect(0.0, peer="nobody")
    assert net.run_until(lambda: net.of("client", ConnectionLost), max_time=60)


def test_server_restart_is_reported_to_the_client() -> None:
    net, client, _ = pair()
    assert net.run_until(lambda: net.of("client", HandshakeComplete))
    net.add("server", "server", SMALL)  # a fresh process knows no session
    client.send_message(b"hello", net.now)
    assert net.run_until(lambda: net.of("client", ConnectionLost))
    assert "no such session" in net.of("client", ConnectionLost)[0].reason


def test_client_restart_from_same_address_replaces_the_session() -> None:
    net, client, server = pair()
    assert net.run_until(lambda: net.of("server", HandshakeComplete))
    reborn = net.add("client", "client", SMALL)  # same label = same address, new session id
    reborn.connect(net.now, peer="server")
    assert net.run_until(lambda: net.of("client", HandshakeComplete))
    assert "restarted" in net.of("server", ConnectionLost)[0].reason
    assert len(net.of("server", HandshakeComplete)) == 2
    reborn.send_message(b"after restart", net.now)
    assert net.run_until(lambda: net.of("server", MessageReceived))


def test_stale_frames_of_an_earlier_session_are_ignored() -> None:
    net, client, server = pair()
    assert exchange(net, client, [b"first session"]) == [b"first session"]
    old = [data for src, dst, data in net.log if src == "client"]
    client.close(net.now)
    assert net.run_until(lambda: net.of("client", Closed))
    second = net.add("client", "client", SMALL)
    second.connect(net.now, peer="server")
    assert net.run_until(lambda: net.of("client", HandshakeComplete))
    for data in old:  # replay every frame of session 1, including its HELLO and CONFIRM
        if data[3] != 1:  # a replayed HELLO from the same address would count as a restart
            net.inject("client", "server", data)
    net.run_for(0.01)
    assert [e.data for e in net.of("server", MessageReceived)] == [b"first session"]
    second.send_message(b"second session", net.now)
    assert net.run_until(lambda: len(net.of("server", MessageReceived)) == 2)
    assert net.of("server", MessageReceived)[1].data == b"second session"


def test_second_client_is_rejected_busy() -> None:
    net, client, _ = pair()
    assert net.run_until(lambda: net.of("server", HandshakeComplete))
    other = net.add("other", "client", SMALL)
    other.connect(net.now, peer="server")
    assert net.run_until(lambda: net.of("other", Rejected))
    assert net.of("other", Rejected)[0].reason is RejectReason.BUSY
    assert other.state is State.CLOSED
    assert exchange(net, client, [b"still mine"]) == [b"still mine"]


def test_server_accepts_next_client_after_clean_close() -> None:
    net, client, server = pair()
    assert exchange(net, client, [b"one"]) == [b"one"]
    client.close(net.now)
    assert net.run_until(lambda: net.of("client", Closed) and net.of("server", Closed))
    assert net.of("client", Closed)[0].by_peer is False
    assert net.of("server", Closed)[0].by_peer is True
    assert server.state is State.LISTEN
    other = net.add("other", "client", SMALL)
    other.connect(net.now, peer="server")
    assert net.run_until(lambda: net.of("other", HandshakeComplete))


def test_close_waits_for_queued_data() -> None:
    net, client, _ = pair(seed=2, faults=Faults(loss=0.1))
    msgs = messages(5, 5)
    for m in msgs:
        client.send_message(m, net.now)
    client.close(net.now)
    assert net.run_until(lambda: net.of("client", Closed))
    assert [e.data for e in net.of("server", MessageReceived)] == msgs


def test_close_survives_lost_fin_ack() -> None:
    net, client, _ = pair()
    assert net.run_until(lambda: net.of("client", HandshakeComplete))
    client.close(net.now)
    net.step()
    net.faults.loss = 0.5
    assert net.run_until(lambda: net.of("client", Closed), max_time=60)


def test_lease_expires_when_client_vanishes() -> None:
    net, client, server = pair()
    assert net.run_until(lambda: net.of("server", HandshakeComplete))
    net.blackholed.add("client")
    assert net.run_until(lambda: net.of("server", ConnectionLost), max_time=60)
    assert server.state is State.LISTEN
    assert net.now >= SMALL.idle_timeout


def test_keepalive_holds_an_idle_session() -> None:
    net, client, server = pair()
    net.run_for(4 * SMALL.idle_timeout)
    assert client.is_established and server.is_established
    assert not net.of("server", ConnectionLost) and not net.of("client", ConnectionLost)


def test_client_notices_silent_server() -> None:
    net, client, _ = pair()
    assert net.run_until(lambda: net.of("client", HandshakeComplete))
    net.blackholed.add("server")
    assert net.run_until(lambda: net.of("client", ConnectionLost), max_time=60)


def test_matching_tokens_authenticate() -> None:
    net, client, _ = pair(client_token="s3cret", server_token=b"s3cret")
    assert exchange(net, client, [b"authenticated"]) == [b"authenticated"]
    assert not any(b"s3cret" in data for _, _, data in net.log)


@pytest.mark.parametrize("client_token, server_token", [(b"wrong", b"right"), (None, b"right"),
                                                        (b"right", None)])
def test_token_mismatch_is_rejected_as_auth(client_token, server_token) -> None:
    net, client, server = pair(client_token=client_token, server_token=server_token)
    assert net.run_until(lambda: net.of("client", Rejected) or net.of("client", ConnectionLost), max_time=60)
    assert net.of("client", Rejected)[0].reason is RejectReason.AUTH
    assert not net.of("server", HandshakeComplete)
    net.run_for(0.1)
    assert server.state is State.LISTEN


def _hello(version: int, payload: int = 1440, window: int = 16) -> bytes:
    pre = struct.pack("!HBBII", 0xB532, version, 1, 1234, 0)
    body = struct.pack("!16sIII", bytes(16), payload, window, 0)
    return pre + struct.pack("!I", zlib.crc32(body, zlib.crc32(pre))) + body


def _rejection(server: Endpoint) -> tuple[RejectReason, str]:
    (data, peer), = server.datagrams_to_send(0.0)
    assert peer == "x" and data[3] == 4 and struct.unpack_from("!I", data, 8)[0] == 1234
    return RejectReason(data[16]), data[17:].decode()


def test_version_mismatch_is_rejected() -> None:
    server = Endpoint("server")
    server.receive_datagram(_hello(PROTOCOL_VERSION + 1), 0.0, peer="x")
    reason, detail = _rejection(server)
    assert reason is RejectReason.VERSION and "version" in detail


def test_bad_parameters_are_rejected() -> None:
    server = Endpoint("server")
    server.receive_datagram(_hello(PROTOCOL_VERSION, payload=10), 0.0, peer="x")
    reason, detail = _rejection(server)
    assert reason is RejectReason.PARAMETERS and "max_payload=10" in detail


def test_client_surfaces_rejection_reason() -> None:
    net = Net()
    client = net.add("client", "client", SMALL)
    client.connect(0.0, peer="server")
    (hello, _), = client.datagrams_to_send(0.0)
    sid = struct.unpack_from("!I", hello, 4)[0]
    pre = struct.pack("!HBBII", 0xB532, PROTOCOL_VERSION + 7, 4, 0, sid)
    body = bytes([RejectReason.VERSION]) + b"speak v8"
    client.receive_datagram(pre + struct.pack("!I", zlib.crc32(body, zlib.crc32(pre))) + body, 0.001)
    assert client.events() == [Rejected(RejectReason.VERSION, "speak v8")]


def test_flow_control_respects_advertised_window() -> None:
    net, client, server = pair(config=ArqConfig(max_payload=256, window=4))
    assert net.run_until(lambda: net.of("client", HandshakeComplete))
    client.send_message(bytes(256 * 40), net.now)
    sent = client.datagrams_to_send(net.now)
    assert len(sent) == 4  # cwnd and window allow 4 frames; the rest waits for acks
    assert net.run_until(lambda: net.of("server", MessageReceived))


@pytest.mark.parametrize("kwargs", [dict(max_payload=100), dict(max_payload=70_000), dict(window=1),
                                    dict(initial_rto=10.0), dict(initial_sequence=-1),
                                    dict(idle_timeout=0.01, keepalive_interval=1.0)])
def test_bad_config_names_the_argument(kwargs) -> None:
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=name):
        ArqConfig(**kwargs)


def test_bad_role_names_the_argument() -> None:
    with pytest.raises(ValueError, match="role"):
        Endpoint("router")


def test_message_larger_than_limit_loses_connection() -> None:
    config = ArqConfig(max_payload=256, window=8, max_message_size=1000)
    net, client, _ = pair(config=config)
    client.send_message(bytes(5000), net.now)
    assert net.run_until(lambda: net.of("server", ConnectionLost))
    assert "max_message_size=1000" in net.of("server", ConnectionLost)[0].reason
    assert not net.of("server", MessageReceived)


def test_memoryview_of_numpy_words_is_sent_without_change() -> None:
    np = pytest.importorskip("numpy")
    words = np.arange(3000, dtype=np.uint64) * np.uint64(0x0123456789ABCDEF)
    net, client, _ = pair()
    assert exchange(net, client, [words]) == [words.tobytes()]


def test_late_duplicate_hello_cannot_reopen_a_closed_session() -> None:
    net, client, server = pair()
    assert exchange(net, client, [b"x"]) == [b"x"]
    hello = next(data for src, _, data in net.log if src == "client" and data[3] == 1)
    client.close(net.now)
    assert net.run_until(lambda: net.of("server", Closed))
    net.inject("client", "server", hello)  # the network delivers a duplicate long after
    net.run_for(0.01)
    assert server.state is State.LISTEN
    other = net.add("other", "client", SMALL)
    other.connect(net.now, peer="server")
    assert net.run_until(lambda: net.of("other", HandshakeComplete))


def test_closed_client_frees_a_half_open_slot() -> None:
    net = Net()
    server = net.add("server", "server", SMALL)
    client = net.add("client", "client", SMALL)
    client.connect(0.0, peer="server")
    (hello, _), = client.datagrams_to_send(0.0)
    client.close(0.0)
    client._end(Closed(by_peer=False))  # the client gave up before the server answered
    net.inject("client", "server", hello)
    net.run_for(0.01)
    assert server.state is State.LISTEN


def test_non_contiguous_buffer_is_refused_by_name() -> None:
    np = pytest.importorskip("numpy")
    net, client, _ = pair()
    with pytest.raises(TypeError, match="contiguous"):
        client.send_message(np.arange(10, dtype=np.uint64)[::2], net.now)
