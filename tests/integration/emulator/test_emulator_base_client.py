"""kubedr's one client raises one error class per refusal, over HTTP and from the emulator's in-process API alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kubedr.apierrors import AlreadyExists, ApiError, Conflict, Gone, Invalid, NotFound, api_error
from kubedr.kube import api_client
from kubedr.kubeapi import Cluster
from tests.conftest import free_port, load_fixture

CMS = "/api/v1/namespaces/default/configmaps"


def cm(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"},
            "data": data}


def test_each_refusal_is_its_class_with_the_servers_status(emulator: Any) -> None:
    cluster = Cluster(api_client(str(emulator.kubeconfig)))
    created = cluster.request("POST", CMS, cm("app-config", k="v"))
    with pytest.raises(NotFound) as missing:
        cluster.request("GET", f"{CMS}/missing")
    want = load_fixture("errors/404-not-found.json")
    assert (missing.value.reason, str(missing.value), missing.value.path) == ("NotFound", want["message"],
                                                                                f"{CMS}/missing")
    with pytest.raises(AlreadyExists) as taken:
        cluster.request("POST", CMS, cm("app-config"))
    assert isinstance(taken.value, Conflict) and taken.value.details == load_fixture(
        "errors/409-already-exists.json")["details"]
    cluster.request("PUT", f"{CMS}/app-config", {**created, "data": {"k": "new"}})
    with pytest.raises(Conflict) as stale:  # still the old resourceVersion
        cluster.request("PUT", f"{CMS}/app-config", {**created, "data": {"k": "newer"}})
    assert not isinstance(stale.value, AlreadyExists) and stale.value.reason == "Conflict"
    with pytest.raises(Invalid) as bad:
        cluster.request("POST", CMS, cm("Bad_Name"))
    assert bad.value.causes and str(bad.value) == load_fixture("errors/422-invalid.json")["message"]


def test_a_too_old_watch_is_gone(tmp_path: Path) -> None:
    from kubedr.emulator.server import Emulator

    with Emulator(listen=f"127.0.0.1:{free_port()}", history=20) as emu:
        emu.write_kubeconfig(tmp_path / "kc")
        for i in range(40):
            emu.api.create(cm(f"c{i}"))
        cluster = Cluster(api_client(str(emu.kubeconfig)))
        events = cluster.watch(CMS, {"resourceVersion": "2"}, read_timeout=10)
        first = next(events)
        events.close()
    assert first["type"] == "ERROR"
    exc = api_error(first["object"]["code"], first["object"], CMS)
    assert isinstance(exc, Gone) and exc.reason == "Expired" and str(exc).startswith("too old resource version: 2 (")


def test_the_in_process_api_raises_the_same_classes(emulator: Any) -> None:
    with pytest.raises(NotFound):
        emulator.api.get("v1", "ConfigMap", "missing", "default")
    emulator.api.create(cm("a"))
    with pytest.raises(AlreadyExists):
        emulator.api.create(cm("a"))
    with pytest.raises(ApiError) as bad:
        emulator.api.create(cm("Bad_Name"))
    assert isinstance(bad.value, Invalid) and bad.value.status == 422
