"""Benchmark of the host-chip link: goodput of large messages and round-trip latency of small ones.

Runs the server (and the fault relay) in separate processes, as in deployment, so that client and server
do not share one interpreter lock. Each goodput figure is one direction: the client sends N bytes of
uint64 instruction words, the server answers with an 8-byte reply, and goodput = N / round-trip time.

    .venv/bin/python tests/benchmarks/link.py            # full run (~1 min)
    .venv/bin/python tests/benchmarks/link.py --quick    # a few seconds, for CI
    .venv/bin/python tests/benchmarks/link.py --json out.json

Add a benchmark by decorating a function ``(args) -> list[Row]`` with ``@benchmark("name")``; it then
appears in the table and the JSON file (e.g. a later ``Connection`` benchmark over the emulator server).
"""

from __future__ import annotations

import argparse
from typing import Any
import json
import os
import platform
import socket
import struct
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

MB = 1e6  # goodput is reported in MB/s = 10**6 bytes per second


@dataclass
class Row:
    benchmark: str
    case: str
    value: float
    unit: str
    target: str = ""
    extra: dict = field(default_factory=dict)


BENCHMARKS: dict[str, Callable[[argparse.Namespace], list[Row]]] = {}


def benchmark(name: str) -> Callable:
    def register(fn: Callable[[argparse.Namespace], list[Row]]) -> Callable:
        BENCHMARKS[name] = fn
        return fn
    return register


# ---------------------------------------------------------------------------------------------- helpers


def _spawn(*args: str) -> tuple[subprocess.Popen, int]:
    """Start this script in a helper role; it prints the port it listens on."""
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), *args], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise RuntimeError(f"helper {args} failed to start")
    return proc, int(line)


def _stop(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait(5)


def _words(nbytes: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2**63, size=nbytes // 8, dtype=np.uint64)


def _goodput(request: Callable[[np.ndarray], bytes], words: np.ndarray, reps: int) -> tuple[float, float]:
    """Median and best goodput in MB/s of sending ``words`` and receiving the small reply."""
    for _ in range(2):  # warm up: RTT estimate, congestion window and both heaps reach steady state
        request(words)
    rates = []
    for _ in range(reps):
        t0 = time.perf_counter()
        reply = request(words)
        dt = time.perf_counter() - t0
        if struct.unpack("!Q", reply)[0] != words.nbytes:
            raise RuntimeError("server saw a different number of bytes")
        rates.append(words.nbytes / dt / MB)
    return float(np.median(rates)), float(max(rates))


def _latency(request: Callable[[bytes], bytes], count: int) -> tuple[float, float]:
    """p50 and p99 round trip in µs of an 8-byte request."""
    payload = b"\x00" * 8
    for _ in range(min(100, count)):
        request(payload)
    times = np.empty(count)
    for i in range(count):
        t0 = time.perf_counter()
        request(payload)
        times[i] = time.perf_counter() - t0
    return float(np.percentile(times, 50) * 1e6), float(np.percentile(times, 99) * 1e6)


def _sizes(args: argparse.Namespace) -> list[int]:
    return [8 * 2**20] if args.quick else [8 * 2**20, 64 * 2**20]


# ---------------------------------------------------------------------------------------------- benchmarks


@benchmark("udp")
def bench_udp(args: argparse.Namespace) -> list[Row]:
    from bss2.comm.udp import UdpLink

    reps = 2 if args.quick else 5
    rows = []
    server, port = _spawn("--serve-udp")
    try:
        for relay_loss in (None, 0.0, 0.02):  # None: direct, no relay
            relay, target, via = None, port, "direct"
            if relay_loss is not None:
                relay, target = _spawn("--relay", str(port), str(relay_loss))
                via = f"relay, {relay_loss:.0%} loss"
            loss = relay_loss or 0.0
            try:
                with UdpLink("127.0.0.1", target, timeout=120) as link:
                    for size in _sizes(args):
                        s0 = dict(link._ep.stats)
                        med, best = _goodput(link.request, _words(size), reps)
                        retx = link._ep.stats["retransmissions"] - s0["retransmissions"]
                        target_text = {"direct": "≥ 118 MB/s", "relay, 2% loss": "≥ ½ lossless"}.get(via, "")
                        rows.append(Row("udp goodput", f"{size / 2**20:.0f} MiB, {via}", med, "MB/s", target_text,
                                        {"best": round(best, 1), "retransmissions": retx, "loss": loss,
                                         "max_payload": link.max_payload}))
                    if via == "direct":
                        for size in _sizes(args):
                            down = _download_goodput(link.request, size, reps)
                            rows.append(Row("udp goodput", f"{size / 2**20:.0f} MiB reply (server -> client)",
                                            down, "MB/s", "≥ 118 MB/s"))
                        p50, p99 = _latency(link.request, 500 if args.quick else 5000)
                        rows.append(Row("udp latency", "8 B round trip, p50", p50, "µs", "≤ 200 µs"))
                        rows.append(Row("udp latency", "8 B round trip, p99", p99, "µs"))
            finally:
                if relay is not None:
                    _stop(relay)
    finally:
        _stop(server)
    return rows


@benchmark("tcp")
def bench_tcp(args: argparse.Namespace) -> list[Row]:
    """Reference: plain TCP sendall/recv over loopback of the same bytes, measured in the same run."""
    reps = 2 if args.quick else 5
    server, port = _spawn("--serve-tcp")
    rows = []
    try:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def request(data) -> bytes:
                view = memoryview(data).cast("B")
                sock.sendall(struct.pack("!Q", len(view)))
                sock.sendall(view)
                return _recv_exact(sock, 8)

            for size in _sizes(args):
                med, best = _goodput(request, _words(size), reps)
                rows.append(Row("tcp goodput (reference)", f"{size / 2**20:.0f} MiB, direct", med, "MB/s",
                                extra={"best": round(best, 1)}))
            p50, p99 = _latency(request, 500 if args.quick else 5000)
            rows.append(Row("tcp latency (reference)", "8 B round trip, p50", p50, "µs"))
            rows.append(Row("tcp latency (reference)", "8 B round trip, p99", p99, "µs"))
    finally:
        _stop(server)
    return rows


# ---------------------------------------------------------------------------------------------- helper roles


def _recv_exact(sock: socket.socket, n: int) -> bytearray:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:])
        if k == 0:
            raise ConnectionError("peer closed")
        got += k
    return buf


_DOWNLOAD = b"GET!"  # request prefix: the reply is that many bytes (u64 after the prefix)
_download_cache: dict[int, bytes] = {}


def _reply_with_length(data: bytes) -> bytes:
    if data[:4] == _DOWNLOAD and len(data) == 12:
        (n,) = struct.unpack_from("!Q", data, 4)
        if n not in _download_cache:
            _download_cache[n] = _words(n, seed=1).tobytes()
        return _download_cache[n]
    return struct.pack("!Q", len(data))


def _download_goodput(request: Callable[[bytes], bytes], nbytes: int, reps: int) -> float:
    """Median goodput in MB/s of the server -> client direction (8 B request, ``nbytes`` reply)."""
    ask = _DOWNLOAD + struct.pack("!Q", nbytes)
    for _ in range(2):  # warm up; the server builds its reply once
        request(ask)
    rates = []
    for _ in range(reps):
        t0 = time.perf_counter()
        reply = request(ask)
        dt = time.perf_counter() - t0
        if len(reply) != nbytes:
            raise RuntimeError(f"reply of {len(reply)} B, expected {nbytes} B")
        rates.append(nbytes / dt / MB)
    return float(np.median(rates))


def _serve_udp() -> None:
    from bss2.comm.udp import UdpServer

    server = UdpServer(_reply_with_length, lease_timeout=30.0)
    print(server.address[1], flush=True)
    server.serve_forever()


def _serve_tcp() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        print(listener.getsockname()[1], flush=True)
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = bytearray(64 * 2**20 + 8)
        while True:
            try:
                (n,) = struct.unpack("!Q", _recv_exact(conn, 8))
            except ConnectionError:  # the benchmark is done with us
                return
            view = memoryview(buf)[:n]
            got = 0
            while got < n:
                k = conn.recv_into(view[got:])
                if k == 0:
                    return
                got += k
            conn.sendall(struct.pack("!Q", n))


def _serve_emulator() -> None:
    """What ``bss2-emulator serve`` runs: an emulated chip behind the reliable link, in its own process."""
    from bss2.comm.server import make_server

    server = make_server(seed=0).start()
    print(server.address[1], flush=True)
    while True:
        time.sleep(3600)


def _relay(port: int, loss: float) -> None:
    from bss2.comm.faults import FaultSpec, FaultyRelay

    relay = FaultyRelay(("127.0.0.1", port), FaultSpec(loss=loss), seed=1).start()
    print(relay.address[1], flush=True)
    while True:
        time.sleep(3600)


@benchmark("connection")
def bench_connection(args: argparse.Namespace) -> list[Row]:
    """Round trip of an empty program (END only) through each Connection backend, end to end with run()."""
    from bss2.comm import EmulatorConnection, UdpConnection, ZeroMockConnection, run
    from bss2.hal import PlaybackProgramBuilder

    count = 300 if args.quick else 3000
    rows = []

    def measure(connection: Any) -> tuple[float, float]:
        def once(_: bytes) -> bytes:
            run(connection, PlaybackProgramBuilder().done())
            return b""
        return _latency(once, count)

    server, port = _spawn("--serve-emulator")  # a separate process, as bss2-emulator serve runs
    try:
        for name, connection in (
            ("EmulatorConnection (in process)", EmulatorConnection(seed=0)),
            ("ZeroMockConnection", ZeroMockConnection()),
            ("UdpConnection -> bss2-emulator serve", UdpConnection("127.0.0.1", port)),
        ):
            with connection:
                p50, p99 = measure(connection)
            target = "p50 <= 200 us" if name.startswith("Udp") else ""
            rows.append(Row("connection", f"empty program via {name}", p50, "us p50", target, {"p99_us": round(p99, 1)}))
    finally:
        _stop(server)
    return rows


# ---------------------------------------------------------------------------------------------- main


def _print_table(rows: list[Row]) -> None:
    header = ("benchmark", "case", "value", "unit", "target", "details")
    lines = [(r.benchmark, r.case, f"{r.value:,.1f}", r.unit, r.target,
              ", ".join(f"{k}={v}" for k, v in r.extra.items())) for r in rows]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:{'>' if i == 2 else '<'}{w}}}" for i, w in enumerate(widths))
    print(fmt.format(*header))
    print("  ".join("-" * w for w in widths))
    for line in lines:
        print(fmt.format(*line))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and few repetitions (CI)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--only", choices=sorted(BENCHMARKS), action="append", help="run only these")
    parser.add_argument("--serve-udp", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-tcp", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-emulator", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--relay", nargs=2, metavar=("PORT", "LOSS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_emulator:
        _serve_emulator()
        return 0
    if args.serve_udp:
        _serve_udp()
        return 0
    if args.serve_tcp:
        _serve_tcp()
        return 0
    if args.relay:
        _relay(int(args.relay[0]), float(args.relay[1]))
        return 0
    rows: list[Row] = []
    for name in args.only or BENCHMARKS:
        rows += BENCHMARKS[name](args)
    _print_table(rows)
    if args.json:
        meta = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
                "quick": args.quick, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "results": [asdict(r) for r in rows]}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
