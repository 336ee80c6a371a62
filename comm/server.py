"""``bss2-emulator``: serve an emulated chip behind the reliable UDP link.

::

    bss2-emulator serve --host 127.0.0.1 --port 5000 --seed 7

It binds to loopback unless told otherwise, serves one client session at a time (a second client gets a
prompt ``ChipBusy``), frees the chip when a client disappears (``--lease-timeout``), requires the shared
token in ``BSS2_TOKEN`` if that is set (checked with an HMAC in the handshake, never sent in clear), and
survives any datagram, however malformed.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence

from .connection import handle_request
from .udp import UdpServer

_log = logging.getLogger("bss2.comm")


def make_server(host: str = "127.0.0.1", port: int = 0, seed: int = 0, token: str | None = None,
                lease_timeout: float = 10.0, config: object = None) -> UdpServer:
    """A :class:`~bss2.comm.udp.UdpServer` whose handler runs programs on a fresh emulator."""
    from bss2.hal.emulator import Emulator

    emulator = Emulator(seed=seed, config=config)
    lock = threading.Lock()  # one session at a time already; the lock guards against reentrancy

    def handler(request: bytes) -> bytes:
        with lock:
            return handle_request(emulator, request)

    return UdpServer(handler, host=host, port=port, token=token, lease_timeout=lease_timeout)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bss2-emulator`` console script."""
    parser = argparse.ArgumentParser(prog="bss2-emulator", description="Serve an emulated BrainScaleS-2 chip.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve an emulator over the reliable UDP link")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    serve.add_argument("--port", type=int, default=5000, help="UDP port (0 picks a free one)")
    serve.add_argument("--seed", type=lambda s: int(s, 0), default=0, help="chip serial number (fixed pattern)")
    serve.add_argument("--lease-timeout", type=float, default=10.0, help="seconds after which a silent client is dropped")
    serve.add_argument("--ideal", action="store_true", help="serve an ideal chip (no noise, no fixed pattern)")
    serve.add_argument("-v", "--verbose", action="store_true", help="log connections")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = None
    if args.ideal:
        from bss2.hal.emulator import EmulatorConfig

        config = EmulatorConfig.ideal()
    token = os.environ.get("BSS2_TOKEN") or None
    server = make_server(args.host, args.port, args.seed, token, args.lease_timeout, config)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    _log.info("serving emulated chip %#x on %s:%d%s", args.seed, *server.address[:2], " (token required)" if token else "")
    print(f"bss2-emulator listening on {server.address[0]}:{server.address[1]}", flush=True)
    try:
        server.serve_forever(stop)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
