"""`kubedr emulate`: run the API emulator standalone until SIGTERM/SIGINT and write a kubeconfig for it."""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from kubedr.config import UsageError

log = logging.getLogger("kubedr.emulator")


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--listen", help="HOST:PORT to serve on (default 127.0.0.1:6443; port 0 picks a free one)")
    parser.add_argument("--kubeconfig", help="where to write the kubeconfig for kubectl and the clients")
    parser.add_argument("--context", help="context name in the kubeconfig (default emulator)")
    parser.add_argument("--token", help="bearer token clients must send (default kubedr-emulator-token)")
    parser.add_argument("--tls", action="store_true", help="serve HTTPS with a self-signed CA (in the kubeconfig)")
    parser.add_argument("--history", type=int, help="watch events kept for resume (default 10000); older -> 410")
    parser.add_argument("--bookmark-interval", type=float, help="seconds between watch BOOKMARK events (default 1)")
    parser.add_argument("--no-controllers", action="store_true", help="no namespace/deployment/endpoint controllers")
    parser.add_argument("--no-kubelet", action="store_true",
                        help="no pretend node: Pods stay Pending (by default every Pod runs at once, Ready)")
    parser.add_argument("--pod-ip", help="the address every running Pod gets (default none: Services route nowhere)")
    parser.add_argument("--pod-start-delay", type=float, default=0.0, metavar="SECONDS",
                        help="how long each Pod waits before it runs (default 0)")


def run(args: argparse.Namespace) -> int:
    from kubedr.emulator.server import DEFAULT_TOKEN, Emulator

    if not args.kubeconfig:
        raise UsageError("emulate: --kubeconfig PATH is required (where to write the kubeconfig)")
    emu = Emulator(listen=args.listen or "127.0.0.1:6443", token=args.token or DEFAULT_TOKEN, tls=bool(args.tls),
                   history=args.history or 10_000, bookmark_interval=args.bookmark_interval or 1.0,
                   controllers=not args.no_controllers, kubelet=not args.no_kubelet, pod_ip=args.pod_ip,
                   pod_start_delay=args.pod_start_delay)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    emu.start()
    try:
        path = emu.write_kubeconfig(args.kubeconfig, args.context or "emulator")
        log.info("emulator ready at %s; kubeconfig %s", emu.url, path)
        print(f"emulator listening on {emu.url}, kubeconfig written to {path}", flush=True)
        stop.wait()
    finally:
        emu.stop()
    return 0
