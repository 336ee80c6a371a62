"""Property tests of the ARQ core: whatever the network does, delivery is exactly-once, in order and
bit-exact, or the session is reported lost; a partial message is never delivered."""

from __future__ import annotations

import random
import struct
import zlib

from arq_sim import Faults, Net
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bss2.comm.arq import ArqConfig, ConnectionLost, Endpoint, HandshakeComplete, MessageReceived

FATES = ["ok", "drop", "dup", "corrupt", "late"]
SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _run(net: Net, client: Endpoint, server: Endpoint, up: list[bytes], down: list[bytes]) -> None:
    for m in up:
        client.send_message(m, net.now)
    net.run_until(lambda: net.of("server", HandshakeComplete) or net.of("client", ConnectionLost)
                  or net.now > 300, max_steps=50_000)
    if server.is_established:
        for m in down:
            server.send_message(m, net.now)

    def finished() -> bool:
        lost = net.of("client", ConnectionLost) or net.of("server", ConnectionLost)
        done = (len(net.of("server", MessageReceived)) == len(up)
                and len(net.of("client", MessageReceived)) == len(down))
        return bool(lost) or done

    assert net.run_until(finished, max_steps=100_000, max_time=10_000), "simulation did not settle"


def _check(net: Net, up: list[bytes], down: list[bytes]) -> None:
    got_up = [e.data for e in net.of("server", MessageReceived)]
    got_down = [e.data for e in net.of("client", MessageReceived)]
    assert got_up == up[:len(got_up)]  # a prefix, each message bit-exact: never partial, never twice
    assert got_down == down[:len(got_down)]
    if len(got_up) < len(up) or len(got_down) < len(down):
        assert net.of("client", ConnectionLost) or net.of("server", ConnectionLost)
        event("connection lost before completion")
    else:
        event("all messages delivered")


def _payloads(data: st.DataObject, max_count: int = 6) -> list[bytes]:
    sizes = data.draw(st.lists(st.integers(0, 3000), max_size=max_count))
    rng = random.Random(data.draw(st.integers(0, 2**32)))
    return [rng.randbytes(n) for n in sizes]


@SETTINGS
@given(data=st.data(), seed=st.integers(0, 2**32), loss=st.floats(0, 0.4), dup=st.floats(0, 0.3),
       reorder=st.floats(0, 0.5), corrupt=st.floats(0, 0.2),
       isn=st.one_of(st.none(), st.integers(2**32 - 40, 2**32 - 1)))
def test_random_fault_rates_deliver_exactly_once_or_lose(data, seed, loss, dup, reorder, corrupt, isn) -> None:
    config = ArqConfig(max_payload=256, window=8, initial_sequence=isn, max_retransmissions=6,
                       idle_timeout=30.0, keepalive_interval=1.0)
    net = Net(seed=seed, faults=Faults(loss=loss, duplicate=dup, reorder=reorder, corrupt=corrupt))
    server = net.add("server", "server", config)
    client = net.add("client", "client", config)
    client.connect(net.now, peer="server")
    up, down = _payloads(data), _payloads(data)
    _run(net, client, server, up, down)
    _check(net, up, down)


@SETTINGS
@given(data=st.data(), schedule=st.lists(st.sampled_from(FATES), min_size=1, max_size=40))
def test_random_fault_schedules_deliver_exactly_once_or_lose(data, schedule) -> None:
    config = ArqConfig(max_payload=300, window=6, max_retransmissions=5, idle_timeout=30.0)
    net = Net(seed=1, schedule=schedule)
    server = net.add("server", "server", config)
    client = net.add("client", "client", config)
    client.connect(net.now, peer="server")
    up, down = _payloads(data), _payloads(data)
    _run(net, client, server, up, down)
    _check(net, up, down)


def _frame(ftype: int, src: int, dst: int, body: bytes, version: int = 1) -> bytes:
    pre = struct.pack("!HBBII", 0xB532, version, ftype, src, dst)
    return pre + struct.pack("!I", zlib.crc32(body, zlib.crc32(pre))) + body


@settings(max_examples=300, deadline=None)
@given(junk=st.lists(st.one_of(
    st.binary(max_size=200),
    st.builds(_frame, st.integers(0, 255), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1),
              st.binary(max_size=120), st.integers(0, 255)),
), max_size=20))
def test_arbitrary_datagrams_never_raise_or_break_a_session(junk) -> None:
    net = Net(seed=2)
    server = net.add("server", "server", ArqConfig(max_payload=256, window=8))
    client = net.add("client", "client", ArqConfig(max_payload=256, window=8))
    client.connect(net.now, peer="server")
    assert net.run_until(lambda: net.of("client", HandshakeComplete))
    for datagram in junk:
        server.receive_datagram(datagram, net.now, peer="stranger")
        client.receive_datagram(datagram, net.now, peer="stranger")
        server.datagrams_to_send(net.now)
    client.send_message(b"still fine", net.now)
    assert net.run_until(lambda: net.of("server", MessageReceived))
    assert net.of("server", MessageReceived)[0].data == b"still fine"
