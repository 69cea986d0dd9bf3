"""The one list-and-watch loop (kubedr.listwatch) against the emulator over HTTP: pages, a watch resumed from its
bookmarks, 410 Gone re-listed with a growing pause, the ERROR event it arrives as, and a stop within a second."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from kubedr.apierrors import Gone
from kubedr.emulator.server import Emulator
from kubedr.kube import api_client
from kubedr.kubeapi import Cluster, Resource
from kubedr.listwatch import Handler, ListWatch, pages, served
from tests.conftest import free_port, wait_until

CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap", True)
PATH = "/api/v1/namespaces/default/configmaps"


class Seen(Handler):
    """Everything the loop reported, in order."""

    def __init__(self) -> None:
        self.listed_names: list[str] = []
        self.syncs = 0
        self.events: list[tuple[str, str]] = []
        self.failures: list[tuple[Exception, float]] = []

    def listed(self, obj: dict[str, Any]) -> None:
        assert (obj["apiVersion"], obj["kind"]) == ("v1", "ConfigMap")
        self.listed_names.append(obj["metadata"]["name"])

    def synced(self) -> None:
        self.syncs += 1

    def changed(self, kind: str, obj: dict[str, Any]) -> None:
        self.events.append((kind, obj["metadata"]["name"]))

    def failed(self, exc: Exception, retry_in: float) -> None:
        self.failures.append((exc, retry_in))


def _start(tmp_path: Path, **options: Any) -> tuple[Emulator, Cluster]:
    emu = Emulator(listen=f"127.0.0.1:{free_port()}", controllers=False, **options).start()
    return emu, Cluster(api_client(str(emu.write_kubeconfig(tmp_path / "kubeconfig"))))


def _cm(cluster: Cluster, name: str, **labels: str) -> None:
    cluster.request("POST", PATH, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name,
                                                                                        "labels": labels}})


def _secrets(cluster: Cluster, prefix: str, count: int) -> None:
    for i in range(count):  # another resource: the history moves on
        cluster.request("POST", "/api/v1/namespaces/default/secrets",
                        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"{prefix}-{i}"}})


def _watches(emu: Emulator) -> int:
    return sum(1 for _, method, path in emu.requests if "/configmaps?" in path and "watch=1" in path)


def test_pages_and_a_watch_resumed_from_its_bookmarks(tmp_path: Path) -> None:
    emu, cluster = _start(tmp_path, history=5, bookmark_interval=0.1)
    try:
        for i in range(7):
            _cm(cluster, f"cm-{i}", keep="yes")
        assert [len(items) for items, _ in pages(cluster, CONFIGMAPS, page_size=3)] == [3, 3, 1]
        seen = Seen()
        loop = ListWatch(cluster, CONFIGMAPS, seen, label_selector="keep=yes", page_size=3, timeout=2)
        loop.start("test-watch")
        wait_until(lambda: seen.syncs == 1 and _watches(emu) == 1, what="the first list, then the watch")
        assert sorted(seen.listed_names) == [f"cm-{i}" for i in range(7)]
        configmap = emu.store.kind("v1", "ConfigMap")
        for i in range(20):  # in-process, at once; not labelled: the watch sees only bookmarks, the list's
            emu.store.create_rt(configmap, {"apiVersion": "v1", "kind": "ConfigMap",  # resourceVersion leaves
                                            "metadata": {"name": f"other-{i}"}}, "default")  # the history
        newest = cluster.get(PATH)["metadata"]["resourceVersion"]
        wait_until(lambda: loop.rv == newest, what="a bookmark carrying the newest resourceVersion")
        wait_until(lambda: _watches(emu) == 2, what="the watch renewed (timeoutSeconds=2)")
        _cm(cluster, "after", keep="yes")
        wait_until(lambda: ("ADDED", "after") in seen.events, what="the new ConfigMap's event")
        assert seen.syncs == 1 and seen.failures == [], "resumed from the bookmark: no 410, no second list"
        loop.stop()
        loop.join(5)
    finally:
        emu.stop()


def test_repeated_410s_list_again_with_a_growing_pause(tmp_path: Path) -> None:
    emu, cluster = _start(tmp_path, history=2)
    stop = threading.Event()

    def write() -> None:  # while a watch request is held back, its resourceVersion leaves the history
        n = 0
        while not stop.wait(0.01):
            _secrets(cluster, f"w{n}", 1)
            n += 1

    writer = threading.Thread(target=write, daemon=True)
    try:
        emu.delay("GET", CONFIGMAPS.path(), 0.3, times=1000)  # every list and watch request of the loop
        writer.start()
        seen = Seen()
        loop = ListWatch(cluster, CONFIGMAPS, seen).start("test-gone")
        wait_until(lambda: len(seen.failures) >= 4, timeout=30, what="four 410s")
        loop.stop()
        loop.join(5)
        assert [(type(exc), pause) for exc, pause in seen.failures[:4]] == [(Gone, 0.0), (Gone, 0.5), (Gone, 1.0),
                                                                            (Gone, 2.0)]
        assert "too old resource version" in str(seen.failures[0][0])  # the stream's ERROR event, raised as Gone
        assert seen.syncs >= 4, "each 410 lists again"
    finally:
        stop.set()
        emu.stop()


def test_stop_ends_an_idle_watch_within_a_second(tmp_path: Path) -> None:
    emu, cluster = _start(tmp_path, bookmark_interval=600)  # no event would wake the stream for ten minutes
    try:
        loop = ListWatch(cluster, CONFIGMAPS, Seen(), timeout=300).start("test-stop")
        wait_until(lambda: _watches(emu) == 1, what="the watch open")
        started = time.monotonic()
        loop.stop()
        loop.join(5)
        assert not loop._thread.is_alive() and time.monotonic() - started < 1.0  # type: ignore[union-attr]
    finally:
        emu.stop()


def test_an_absent_kind_ends_the_loop_unless_the_handler_looks_again(tmp_path: Path) -> None:
    emu, cluster = _start(tmp_path)
    try:
        seen = Seen()
        ListWatch(cluster, served(cluster, "example.com", "Widget"), seen).run()  # returns: nothing to follow
        assert (seen.syncs, seen.events, seen.failures) == (0, [], [])
    finally:
        emu.stop()
