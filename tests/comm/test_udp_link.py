"""End-to-end tests of the UDP link over loopback, directly and through the fault-injecting relay."""

from __future__ import annotations

import hashlib
import random
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from bss2.comm.arq import ArqConfig
from bss2.comm.errors import ChipBusy, CommError, CommTimeoutError, ConnectionLost, HandshakeError
from bss2.comm.faults import FaultSpec, FaultyRelay
from bss2.comm.udp import UdpLink, UdpServer

FAST = ArqConfig(max_payload=8192, window=64, keepalive_interval=0.1, idle_timeout=2.0)


def echo(data: bytes) -> bytes:
    return data


@pytest.fixture
def server():
    started = []

    def start(handler=echo, **kwargs) -> UdpServer:
        srv = UdpServer(handler, **kwargs).start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


def test_echo_round_trip_of_numpy_words(server) -> None:
    srv = server()
    words = np.random.default_rng(0).integers(0, 2**63, size=1 << 20, dtype=np.uint64)  # 8 MB
    with UdpLink(*srv.address, timeout=20) as link:
        assert link.request(b"") == b""
        reply = link.request(words)
        assert np.array_equal(np.frombuffer(reply, dtype=np.uint64), words)


def test_hundreds_of_messages_survive_a_hostile_network(server) -> None:
    srv = server(lambda data: hashlib.sha256(data).digest() + data[::-1])
    spec = FaultSpec(loss=0.05, duplicate=0.05, reorder=0.05, corrupt=0.01, reorder_delay=0.002)
    rng = random.Random(7)
    with FaultyRelay(srv.address, spec, seed=11) as relay:
        with UdpLink(*relay.address, timeout=20, config=FAST) as link:
            for _ in range(300):
                msg = rng.randbytes(rng.choice([0, 1, 100, 8192, 8193, 30_000, rng.randrange(60_000)]))
                assert link.request(msg) == hashlib.sha256(msg).digest() + msg[::-1]
        assert relay.stats["dropped"] and relay.stats["corrupted"] and relay.stats["duplicated"]


def test_second_client_gets_chip_busy_until_first_closes(server) -> None:
    srv = server()
    first = UdpLink(*srv.address)
    with pytest.raises(ChipBusy, match="busy"):
        UdpLink(*srv.address)
    assert first.request(b"mine") == b"mine"
    first.close()
    with UdpLink(*srv.address) as second:
        assert second.request(b"now mine") == b"now mine"


SLOW_SERVER = """
import sys, time
from bss2.comm.udp import UdpServer
srv = UdpServer(lambda data: (time.sleep(30), data)[1])
print(srv.address[1], flush=True)
srv.serve_forever()
"""


def test_server_killed_mid_exchange_raises_in_client() -> None:
    proc = subprocess.Popen([sys.executable, "-c", SLOW_SERVER], stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        link = UdpLink("127.0.0.1", port, timeout=10)
        killer = threading.Timer(0.3, proc.kill)  # while the handler runs
        killer.start()
        with pytest.raises(ConnectionLost):  # the kernel reports the closed port: no need to wait 10 s
            link.request(b"x" * 100_000)
        killer.join()
        with pytest.raises(ConnectionLost, match="unusable"):  # a broken link stays broken
            link.request(b"again")
        link.close()
    finally:
        proc.kill()
        proc.wait(5)


def test_server_vanishing_behind_relay_raises_within_timeout(server) -> None:
    srv = server()
    with FaultyRelay(srv.address) as relay:
        link = UdpLink(*relay.address, timeout=1.0, config=FAST)
        assert link.request(b"ok") == b"ok"
        relay.set_faults(loss=1.0)
        with pytest.raises((ConnectionLost, CommTimeoutError)):
            link.request(b"lost" * 10_000)
        link.close(timeout=0.1)


def test_random_datagrams_never_crash_the_server(server) -> None:
    srv = server()
    rng = random.Random(3)
    with UdpLink(*srv.address) as link:
        assert link.request(b"before") == b"before"
        frame = b"\xb5\x32\x01" + bytes(30)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as junk:
            for i in range(2000):
                if i % 2:
                    data = rng.randbytes(rng.randrange(0, 2000))
                else:  # plausible headers with random tails reach deeper into the parser
                    data = frame[:rng.randrange(len(frame))] + rng.randbytes(rng.randrange(100))
                junk.sendto(data, srv.address)
        assert link.request(b"after") == b"after"


def test_matching_token_connects_and_wrong_token_is_refused(server) -> None:
    srv = server(token="lab-secret")
    with pytest.raises(HandshakeError, match="AUTH"):
        UdpLink(*srv.address, token="guess")
    with pytest.raises(HandshakeError):
        UdpLink(*srv.address)
    with UdpLink(*srv.address, token=b"lab-secret") as link:
        assert link.request(b"hi") == b"hi"


def test_vanished_client_frees_the_chip_after_the_lease(server) -> None:
    srv = server(lease_timeout=0.3)
    ghost = UdpLink(*srv.address)
    ghost._stop.set()  # the process "dies": no FIN, no more keepalives
    ghost._close_socket()
    for _ in range(100):  # bounded: 100 x 0.05 s
        try:
            with UdpLink(*srv.address) as link:
                assert link.request(b"mine now") == b"mine now"
            break
        except ChipBusy:
            time.sleep(0.05)
    else:
        pytest.fail("lease never expired")


def test_long_handler_and_idle_pauses_keep_the_session(server) -> None:
    srv = server(lambda data: (time.sleep(0.6), data)[1], lease_timeout=0.3)
    config = ArqConfig(keepalive_interval=0.05, idle_timeout=0.3)
    with UdpLink(*srv.address, config=config) as link:
        assert link.request(b"slow") == b"slow"  # the server's helper thread answers pings meanwhile
        time.sleep(0.6)  # longer than the lease: our keepalive thread holds it
        assert link.request(b"again") == b"again"


def test_handler_failure_ends_the_session(server) -> None:
    def broken(data: bytes) -> bytes:
        raise RuntimeError("handler bug")

    srv = server(broken)
    link = UdpLink(*srv.address, timeout=5)
    with pytest.raises(ConnectionLost, match="closed by the server"):
        link.request(b"boom")
    link.close()


def test_nothing_listening_is_reported() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(CommError):
        UdpLink("127.0.0.1", port, connect_timeout=1.0)


@pytest.mark.parametrize("kwargs, name", [(dict(port=70000), "port"), (dict(timeout=0), "timeout"),
                                          (dict(connect_timeout=-1), "connect_timeout")])
def test_bad_arguments_name_themselves(kwargs, name) -> None:
    args = dict(host="127.0.0.1", port=9) | kwargs
    with pytest.raises(ValueError, match=name):
        UdpLink(**args)


def test_errors_derive_from_builtins() -> None:
    assert issubclass(ChipBusy, ConnectionRefusedError)
    assert issubclass(ConnectionLost, ConnectionError)
    assert issubclass(CommTimeoutError, TimeoutError)
    assert issubclass(HandshakeError, ConnectionError)


def test_handler_returning_garbage_ends_the_session_but_not_the_server(server) -> None:
    srv = server(lambda data: None if data == b"bad" else data)
    link = UdpLink("localhost", srv.address[1], timeout=5)
    with pytest.raises(ConnectionLost):
        link.request(b"bad")
    link.close()
    with UdpLink(*srv.address) as again:
        assert again.request(b"good") == b"good"
