"""An HTTPS remote followed over one kept connection (kubedr.smarthttp): polled and fetched with the credentials
sent at once, tags taken in as git fetch takes them, a rewritten branch negotiated, nothing left held in the
mirror; git itself where its settings apply."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from kubedr.applier.fetch import Source
from tests.conftest import run_git
from tests.githttp import GitHTTPS
from tests.integration.applier.conftest import Repo, configmap, namespace

TOKEN = "t0ken-for-the-mirror"
FETCH = "git-upload-pack"


@pytest.fixture
def https(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A repo served over HTTPS with basic auth, and this process's git given the CA and a credential store."""
    root = tmp_path / "srv"
    run_git("init", "--bare", "-q", "-b", "main", str(root / "config.git"))
    server = GitHTTPS(root, "kubedr", TOKEN, tmp_path).start()
    store = tmp_path / "git-credentials"
    store.write_text(f"https://kubedr:{TOKEN}@127.0.0.1:{server.port}\n")
    store.chmod(0o600)
    for key in [k for k in os.environ if k.startswith("GIT_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("GIT_SSL_CAINFO", str(server.ca_file))
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "credential.helper")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", f"store --file={store}")
    yield server, root / "config.git"
    server.stop()


def _fetches(server: GitHTTPS, since: int) -> list[tuple[int, str, str, int]]:
    return [r for r in server.requests[since:] if FETCH in r[2]]


def test_an_https_remote_is_polled_and_fetched_over_one_kept_connection(https, tmp_path: Path) -> None:
    server, bare = https
    repo = Repo(bare, tmp_path / "work")
    repo.put(namespace("shop"))
    repo.put(configmap("a"))
    first = repo.commit("one")
    src = Source(server.url("config.git"), "main", str(tmp_path / "mirror"))
    assert src.head() == first  # a new mirror: git fetch --depth=1 (git's own connection)
    since = len(server.requests)

    repo.remove(configmap("a"))
    repo.put(configmap("b"))
    second = repo.commit("two")
    subprocess.run(["git", "tag", "v2"], cwd=repo.work, check=True)
    subprocess.run(["git", "push", "-q", "origin", "v2"], cwd=repo.work, check=True)
    assert src.head() == second  # the poll (info/refs), then a fetch: both on the kept connection
    mirror = tmp_path / "mirror" / "mirror.git"
    tag = subprocess.run(["git", "--git-dir", str(mirror), "rev-parse", "refs/tags/v2"], capture_output=True, text=True)
    assert tag.stdout.strip() == second  # tags come too, as with +refs/tags/*:refs/tags/*
    assert src.head() == second  # a branch that moved is fetched at once: nothing new, nothing fetched

    repo.put(configmap("c"))
    src.announce()
    third = repo.commit("three")
    assert src.head() == third

    replaced = Repo(bare, tmp_path / "other")  # the branch rewritten: the mirror's commits are unknown to the host
    run_git("-C", str(replaced.work), "checkout", "-q", "--orphan", "fresh")
    replaced.put(configmap("z"))
    rewritten = replaced.commit("rewritten", force=True)
    assert src.head() == rewritten and src.has(third)  # the mirror only ever gains objects
    fetched = _fetches(server, since)
    assert len({conn for conn, *_ in fetched}) == 1, fetched  # one TCP and TLS handshake for all of it
    assert all(status == 200 for *_, status in fetched), fetched  # credentials sent at once: no 401
    assert sum(m == "POST" for _, m, _, _ in fetched) >= 3  # three fetches carried (the rewritten one too)
    assert not list((mirror / "objects" / "pack").glob("*.keep"))
    assert sorted(c.path for c in src.changes(second, third) or []) == ["shop/ConfigMap/c.yaml"]
    src.close()


def test_git_fetches_when_a_git_setting_applies_that_the_kept_connection_does_not(https, tmp_path: Path,
                                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    server, bare = https
    monkeypatch.setenv("GIT_CONFIG_COUNT", "2")
    monkeypatch.setenv("GIT_CONFIG_KEY_1", "http.extraHeader")
    monkeypatch.setenv("GIT_CONFIG_VALUE_1", "X-Team: dr")
    repo = Repo(bare, tmp_path / "work")
    repo.put(configmap("a"))
    repo.commit("one")
    src = Source(server.url("config.git"), "main", str(tmp_path / "mirror"))
    src.head()
    since = len(server.requests)
    second = repo.commit("two")
    assert src.head() == second
    fetched = _fetches(server, since)
    assert any(status == 401 for *_, status in fetched)  # git's challenge and answer: git ran it
    src.close()
