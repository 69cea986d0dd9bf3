"""Sub-second commit times: the exporter's Kubedr-Committed-At trailer, read by the applier for its lag."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

from kubedr.applier.fetch import Source
from kubedr.contract import ObjectRef
from kubedr.exporter.committer import format_message
from kubedr.exporter.gitstore import GitStore
from kubedr.exporter.gittree import committed_at, with_trailer
from kubedr.exporter.recorder import Pending

CM = ObjectRef("", "ConfigMap", "shop", "a")


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def test_trailer_value_is_rfc3339_utc_with_microseconds() -> None:
    assert committed_at(1795549821.123456) == "2026-11-24T19:50:21.123456Z"
    assert committed_at(1795549821.9999996) == "2026-11-24T19:50:21.999999Z"  # never rounds into the next second
    assert committed_at(1795549821.0) == "2026-11-24T19:50:21.000000Z"


def test_trailer_joins_the_trailer_block_or_starts_one() -> None:
    msg = format_message([("update", Pending(CM, "7", ("kubectl",)))], "prod")
    assert with_trailer(msg, "K", "v") == msg + "K: v\n"
    assert with_trailer("resync: done\n", "K", "v") == "resync: done\n\nK: v\n"  # a subject is no trailer block
    assert with_trailer("subject\n\nsome prose here\n", "K", "v") == "subject\n\nsome prose here\n\nK: v\n"


def test_exporter_commits_carry_it_and_the_applier_measures_lag_from_it(tmp_path: Path, git_remote: Path) -> None:
    store = GitStore(tmp_path / "clone", str(git_remote))
    store.open()
    msg = format_message([("create", Pending(CM, "7", ("kubectl",)))], "prod")
    with store.lock:
        sha = store.commit_paths(lambda diff: msg, contents={"shop/ConfigMap/a.yaml": b"a: 1\n"})
    trailers = git("log", "-1", "--format=%(trailers:only,unfold)", sha, cwd=store.workdir).split("\n")
    assert trailers[:3] == ["Source-Cluster: prod", "Resource-Version: 7", "Field-Managers: kubectl"]
    value = git("log", "-1", "--format=%(trailers:key=Kubedr-Committed-At,valueonly)", sha, cwd=store.workdir)
    at = datetime.strptime(value.strip(), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
    ct = int(git("show", "-s", "--format=%ct", sha, cwd=store.workdir))
    assert int(at) == ct, "the trailer and the commit header are one instant"
    source = Source(str(store.workdir))
    assert abs(source.commit_time(sha) - at) < 1e-6

    # a commit made by anything else (a person, an older exporter): whole seconds, as before
    plain = git("commit-tree", f"{sha}^{{tree}}", "-p", sha, "-m", "docs: readme", cwd=store.workdir).strip()
    assert source.commit_time(plain) == float(git("show", "-s", "--format=%ct", plain, cwd=store.workdir))
