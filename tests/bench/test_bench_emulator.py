"""Emulator throughput: HTTP writes/s over keep-alive connections (goal >= 1,000/s) and watch events delivered/s
(goal >= 20,000/s), asserted (tests/bench/measure.Goals): the emulator must never be what a benchmark measures."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time

import pytest

from kubedr.emulator.server import Emulator
from tests.bench.measure import Goals
from tests.conftest import free_port

pytestmark = pytest.mark.bench


def _cm(name: str) -> bytes:
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": {"app": "bench"}},
                       "data": {"key": "value-" + name}}).encode()


def test_bench_http_writes_per_second():
    threads, per_thread = 4, 750
    with Emulator(listen=f"127.0.0.1:{free_port()}") as emu:
        errors: list[str] = []

        def writer(t: int) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", emu.port)
            headers = {"Content-Type": "application/json", "Authorization": f"Bearer {emu.token}"}
            for i in range(per_thread):
                conn.request("POST", "/api/v1/namespaces/default/configmaps", _cm(f"c{t}-{i}"), headers)
                resp = conn.getresponse()
                resp.read()
                if resp.status != 201:
                    errors.append(str(resp.status))
            conn.close()

        workers = [threading.Thread(target=writer, args=(t,)) for t in range(threads)]
        start = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        elapsed = time.perf_counter() - start
        assert not errors
        total = threads * per_thread
        rate = total / elapsed
        goals = Goals("emulator HTTP creates")
        print(f"\nemulator HTTP creates: {total} in {elapsed:.2f}s = {rate:,.0f} writes/s "
              f"({threads} keep-alive connections) {goals.at_least('creates', rate, 1000, '/s')}")

        from kubernetes import client

        from kubedr.kube import api_client
        kc = emu.write_kubeconfig(f"/tmp/kubedr-bench-{emu.port}.kubeconfig")
        core = client.CoreV1Api(api_client(str(kc)))
        n = 500
        start = time.perf_counter()
        for i in range(n):
            core.patch_namespaced_config_map(f"c0-{i}", "default", {"data": {"key": "patched"}})
        elapsed = time.perf_counter() - start
        print(f"emulator HTTP merge patches via the kubernetes client (1 thread): {n / elapsed:,.0f} writes/s")
    goals.check()


def _watch_socket(port: int, token: str, rv: str) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"GET /api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv} HTTP/1.1\r\n"
              f"Host: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
    return s


def _count_events(s: socket.socket, want: int, out: list[float]) -> None:
    seen, last = 0, b""
    while seen < want:
        data = s.recv(1 << 20)
        if not data:
            break
        seen += (last + data).count(b"}\n") - last.count(b"}\n")
        last = data[-1:]
    out.append(time.perf_counter())


def test_bench_watch_events_per_second():
    n, watchers = 20_000, 3
    with Emulator(listen=f"127.0.0.1:{free_port()}", history=n * 2) as emu:
        rv = str(emu.store.rv)
        socks = [_watch_socket(emu.port, emu.token, rv) for _ in range(watchers)]
        done: list[float] = []
        readers = [threading.Thread(target=_count_events, args=(s, n, done)) for s in socks]
        for r in readers:
            r.start()
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "default"},
                "data": {"key": "value"}}
        start = time.perf_counter()
        for i in range(n):
            body["metadata"]["name"] = f"w{i}"
            emu.api.create(body, manager="bench")
        produced = time.perf_counter() - start
        for r in readers:
            r.join(60)
        elapsed = max(done) - start
        for s in socks:
            s.close()
        assert len(done) == watchers
        print(f"\nemulator in-process creates: {n / produced:,.0f} writes/s")
        goals = Goals("emulator watch")
        print(f"emulator live watch: {n} events to each of {watchers} watchers in {elapsed:.2f}s = "
              f"{n * watchers / elapsed:,.0f} events delivered/s "
              f"{goals.at_least('events', n * watchers / elapsed, 20000, '/s')} ({n / elapsed:,.0f}/s per watcher, "
              f"bound by the writer)")
        # resume from a resourceVersion: the history is replayed as fast as the server can send it
        socks = [_watch_socket(emu.port, emu.token, rv) for _ in range(watchers)]
        done = []
        readers = [threading.Thread(target=_count_events, args=(s, n, done)) for s in socks]
        start = time.perf_counter()
        for r in readers:
            r.start()
        for r in readers:
            r.join(60)
        elapsed = max(done) - start
        for s in socks:
            s.close()
        print(f"emulator watch resume (history replay): {n * watchers} events in {elapsed:.2f}s = "
              f"{n * watchers / elapsed:,.0f} events delivered/s")
    goals.check()


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def test_bench_list_latency_and_memory():
    """Full and paginated lists over HTTP at 10,000 objects, and the resident memory those objects cost."""
    n = 10_000
    with Emulator(listen=f"127.0.0.1:{free_port()}", controllers=False) as emu:
        before = _rss_kib()
        for i in range(n):
            emu.api.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
                "name": f"l{i}", "namespace": "default", "labels": {"app": "bench", "shard": str(i % 10)}},
                "data": {"key": "value-" + str(i) * 8}}, manager="bench")
        grown = _rss_kib() - before
        conn = http.client.HTTPConnection("127.0.0.1", emu.port)
        headers = {"Authorization": f"Bearer {emu.token}"}

        def timed(path: str) -> tuple[float, dict]:
            start = time.perf_counter()
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            body = json.loads(resp.read())
            assert resp.status == 200
            return time.perf_counter() - start, body

        full = sorted(timed("/api/v1/namespaces/default/configmaps")[0] for _ in range(5))
        shard = sorted(timed("/api/v1/namespaces/default/configmaps?labelSelector=shard%3D3")[0] for _ in range(5))
        start, pages, token = time.perf_counter(), 0, ""
        while True:
            _, body = timed(f"/api/v1/namespaces/default/configmaps?limit=500&continue={token}")
            pages += 1
            token = body["metadata"].get("continue") or ""
            if not token:
                break
        paged = time.perf_counter() - start
        conn.close()
        print(f"\nemulator list of {n} ConfigMaps over HTTP: median {full[2] * 1000:.0f} ms (full), "
              f"{shard[2] * 1000:.0f} ms (labelSelector, {n // 10} items), {paged * 1000:.0f} ms for all "
              f"{pages} pages of 500")
        print(f"emulator memory: {grown / 1024:.1f} MiB RSS for {n} ConfigMaps "
              f"({grown * 1024 / n:,.0f} bytes each, events history included)")
