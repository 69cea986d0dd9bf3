"""One DR region for two primaries: two sources on one secondary, each fenced to its own objects. Three emulated
clusters, the real `kubedr export` on each primary and one `kubedr apply` per source on the secondary."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubedr import contract
from kubedr.apierrors import NotFound
from tests.conftest import free_port, run_git, wait_until
from tests.integration.applier.conftest import cli_env, configmap, deployment, namespace

SOURCES = ("a", "b")


class Region:
    """One primary with its exporter, its repo, and the applier of its source on the shared secondary."""

    def __init__(self, name: str, tmp: Path, secondary: Any) -> None:
        from kubedr.emulator.server import Emulator

        self.name, self.tmp, self.secondary = name, tmp, secondary
        self.ns = f"app-{name}"
        self.emu = Emulator().start()
        self.kubeconfig = str(self.emu.write_kubeconfig(tmp / f"primary-{name}.kubeconfig"))
        self.remote = tmp / f"r{name}.git"
        run_git("init", "--bare", "-q", "-b", "main", str(self.remote))
        self.metrics = f"127.0.0.1:{free_port()}"
        self.procs: list[subprocess.Popen] = []

    def start(self) -> None:
        # the exporter looks at commits others pushed once an hour: a file pushed by hand stays in the repo
        self._spawn("exporter", "export", "--kubeconfig", self.kubeconfig, "--namespaces", self.ns, "--repo",
                    str(self.remote), "--workdir", str(self.tmp / f"export-{self.name}"), "--cluster-name",
                    f"prod-{self.name}", "--secrets", "plaintext", "--batch-window", "50ms",
                    "--remote-check-interval", "1h")
        self._spawn("applier", "apply", "--kubeconfig", self.secondary.kubeconfig_path, "--repo", str(self.remote),
                    "--source", self.name, "--workdir", str(self.tmp / f"apply-{self.name}"), "--interval", "0.2s",
                    "--prune", "--no-validate", "--metrics-listen", self.metrics)

    def _spawn(self, what: str, *argv: str) -> None:
        log = open(self.tmp / f"{self.name}-{what}.log", "ab")  # noqa: SIM115 - the process owns it
        self.procs.append(subprocess.Popen([sys.executable, "-m", "kubedr", *argv], stdout=log,
                                           stderr=subprocess.STDOUT, env=cli_env(), start_new_session=True))

    def log(self, what: str) -> str:
        return (self.tmp / f"{self.name}-{what}.log").read_text(errors="replace")

    def metrics_text(self) -> str:
        try:
            with urllib.request.urlopen(f"http://{self.metrics}/metrics", timeout=2) as resp:
                return str(resp.read().decode())
        except OSError:
            return ""

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(30)
        self.emu.stop()


@pytest.fixture
def region(secondary: Any, tmp_path: Path) -> Iterator[dict[str, Region]]:
    regions = {name: Region(name, tmp_path, secondary) for name in SOURCES}
    yield regions
    for r in regions.values():
        r.close()


def on_secondary(secondary: Any, api_version: str, kind: str, name: str, ns: str | None = None) -> dict[str, Any] | None:
    try:
        return secondary.api.get(api_version, kind, name, ns)
    except NotFound:
        return None


def source_label(obj: dict[str, Any] | None) -> str | None:
    return None if obj is None else (obj["metadata"].get("labels") or {}).get("kubedr.io/source")


def kubedr(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubedr", *argv], capture_output=True, text=True, timeout=120,
                          env=cli_env())


def push_by_hand(remote: Path, work: Path, files: dict[str, dict[str, Any]]) -> str:
    """One commit with these files on top of the branch, pushed as someone with push access would."""
    run_git("clone", "-q", str(remote), str(work))
    for path, obj in files.items():
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_bytes(contract.dump(obj))
    run_git("add", "-A", cwd=work)
    run_git("-c", "user.name=someone", "-c", "user.email=someone@example.com", "commit", "-q", "-m", "by hand",
            cwd=work)
    run_git("push", "-q", "origin", "HEAD:main", cwd=work)
    return run_git("rev-parse", "HEAD", cwd=work).strip()


def test_two_sources_on_one_secondary_each_keep_to_their_own(secondary: Any, region: dict[str, Region],
                                                             tmp_path: Path) -> None:
    a, b = region["a"], region["b"]
    for r in (a, b):
        r.emu.api.create(namespace(r.ns))
        for obj in (configmap(f"cfg-{r.name}", r.ns), configmap(f"gone-{r.name}", r.ns),
                    *(configmap(f"keep-{i}", r.ns) for i in range(4)), deployment(f"web-{r.name}", r.ns, replicas=2)):
            r.emu.api.create(obj)
        r.start()

    # both sources converge, each object labelled with its source, workloads held in standby
    for r in (a, b):
        wait_until(lambda r=r: source_label(on_secondary(secondary, "apps/v1", "Deployment", f"web-{r.name}", r.ns))
                   == r.name, timeout=60, what=f"source {r.name} applied; applier log:\n{r.log('applier')[-3000:]}")
        assert source_label(on_secondary(secondary, "v1", "Namespace", r.ns)) == r.name
        wait_until(lambda r=r: on_secondary(secondary, "v1", "ConfigMap", f"gone-{r.name}", r.ns) is not None,
                   timeout=30, what=f"gone-{r.name} applied")
    assert on_secondary(secondary, "apps/v1", "Deployment", "web-a", "app-a")["spec"]["replicas"] == 0
    def system() -> set[str]:
        return {cm["metadata"]["name"] for cm in secondary.api.list("v1", "ConfigMap", "kubedr-system")}

    wait_until(lambda: {"kubedr-status.a", "kubedr-status.b"} <= system(), timeout=30, what="both records")
    records = system()
    assert all(any(n.startswith(f"kubedr-inventory.{s}.") for n in records) for s in SOURCES), records
    assert "kubedr-status" not in records

    # a delete on primary A prunes A's object, nothing of B's
    a.emu.api.delete("v1", "ConfigMap", "gone-a", "app-a")
    wait_until(lambda: on_secondary(secondary, "v1", "ConfigMap", "gone-a", "app-a") is None, timeout=30,
               what=f"gone-a pruned; applier a:\n{a.log('applier')[-3000:]}")
    assert on_secondary(secondary, "v1", "ConfigMap", "gone-b", "app-b") is not None
    assert on_secondary(secondary, "v1", "ConfigMap", "cfg-a", "app-a") is not None

    # B's repo names an object A owns: refused for that object, its owner named; the rest of the commit applies
    taken = configmap("cfg-a", "app-a", color="from-b")
    head = push_by_hand(b.remote, tmp_path / "hand-b", {contract.ref_of(taken).path: taken,
                                                         "app-b/ConfigMap/extra-b.yaml": configmap("extra-b", "app-b")})
    wait_until(lambda: on_secondary(secondary, "v1", "ConfigMap", "extra-b", "app-b") is not None, timeout=30,
               what=f"the rest of B's commit applied; applier b:\n{b.log('applier')[-3000:]}")
    wait_until(lambda: "app-a/ConfigMap/cfg-a.yaml: refused: ConfigMap app-a/cfg-a is owned by source a"
               in b.log("applier"), timeout=30, what="the refusal in B's log")
    cfg = on_secondary(secondary, "v1", "ConfigMap", "cfg-a", "app-a")
    assert cfg is not None and cfg["data"] == {"k": "cfg-a"} and source_label(cfg) == "a"
    # what b looked up: one list per kind and namespace of its commit, of other sources' objects only
    others_of_b = "labelSelector=kubedr.io%2Fsource%2Ckubedr.io%2Fsource%21%3Db"
    lists = [p for _, m, p in secondary.requests if m == "GET" and others_of_b in p]
    assert "/api/v1/namespaces/app-a/configmaps?" + others_of_b in {p.partition("&")[0] for p in lists}, lists
    assert not [p for p in lists if p.startswith("/api/v1/configmaps?")], lists
    wait_until(lambda: 'kubedr_applier_owned_elsewhere_objects{owner="a"} 1.0' in b.metrics_text(), timeout=30,
               what="the refusal on B's /metrics")
    assert "kubedr_applier_owned_elsewhere_objects{" not in a.metrics_text()

    # kubedr status shows both sources, B's refusal with its owner
    rows = json.loads(kubedr("--log-level", "ERROR", "status", "-o", "json", "--secondary-kubeconfig",
                             secondary.kubeconfig_path).stdout)
    appliers = {r["source"]: r for r in rows if r["component"] == "applier"}
    assert set(appliers) == {"a", "b"}, rows
    assert appliers["b"]["data"]["commit"] == head
    assert appliers["b"]["data"]["ownedElsewhere"] == [{"object": "ConfigMap app-a/cfg-a", "path":
                                                        "app-a/ConfigMap/cfg-a.yaml", "owner": "a"}]
    assert "1 owned by other sources (refused): ConfigMap app-a/cfg-a (source a)" in appliers["b"]["detail"]
    assert appliers["a"]["failures"] == "0" and appliers["b"]["failures"] == "1"
    table = kubedr("status", "--secondary-kubeconfig", secondary.kubeconfig_path).stdout
    assert "SOURCE" in table and "secondary applier b:" in table, table

    # a switchover of source A brings up A's workloads only
    done = kubedr("switchover", "--source", "a", "--kubeconfig", secondary.kubeconfig_path, "--timeout", "60s")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "(source a)" in done.stdout
    assert on_secondary(secondary, "apps/v1", "Deployment", "web-a", "app-a")["spec"]["replicas"] == 2
    assert on_secondary(secondary, "apps/v1", "Deployment", "web-b", "app-b")["spec"]["replicas"] == 0
    modes = {r["source"]: r["data"]["mode"] for r in json.loads(kubedr(
        "--log-level", "ERROR", "status", "-o", "json", "--secondary-kubeconfig", secondary.kubeconfig_path).stdout)
        if r["component"] == "applier"}
    assert modes == {"a": "active", "b": "standby"}
    # without --source, a secondary of two sources asks which one
    which = kubedr("switchover", "--kubeconfig", secondary.kubeconfig_path, "--no-wait")
    assert which.returncode == 2 and "this secondary serves 2 sources (a, b): give --source NAME" in which.stderr


def make_legacy(secondary: Any, source: str) -> None:
    """Turn a source's records and labels into what a kubedr before sources left: one set of records under the
    singleton names (`kubedr-status`, `kubedr-inventory-NN`, ...), objects without a source label, and a
    fingerprint of settings that did not know sources."""
    from kubedr.applier.sources import BUCKETS, RECORDS, SOURCE_LABEL, Records
    from kubedr.applier.state import copy_state, delete_state, put_state
    from kubedr.kube import api_client
    from kubedr.kubeapi import Cluster

    cluster = Cluster(api_client(secondary.kubeconfig_path))
    new, old = Records(source), Records(source, legacy=True)
    for base, kind in RECORDS.items():
        if copy_state(cluster, new.name(base), old.name(base), old.labels(kind)):
            delete_state(cluster, new.name(base))
    for number in range(BUCKETS):
        if copy_state(cluster, new.bucket(number), old.bucket(number), old.labels("inventory")):
            delete_state(cluster, new.bucket(number))
    put_state(cluster, "kubedr-status", {"settings": "before-sources"}, manager="kubedr-before-sources")
    for api_version, kind in (("v1", "Namespace"), ("v1", "ConfigMap"), ("apps/v1", "Deployment")):
        for obj in secondary.api.list(api_version, kind, label_selector=SOURCE_LABEL):
            meta = obj["metadata"]
            secondary.api.patch(api_version, kind, meta["name"], {"metadata": {"labels": {SOURCE_LABEL: None}}},
                                "merge", meta.get("namespace"))


def test_a_secondary_from_before_sources_is_read_as_the_source_its_records_name(secondary: Any,
                                                                                  tmp_path: Path) -> None:
    from kubedr.applier.sources import derive
    from tests.integration.applier.conftest import Repo, apply

    remote = tmp_path / "config.git"
    run_git("init", "--bare", "-q", "-b", "main", str(remote))
    repo = Repo(remote, tmp_path / "work")
    for obj in (namespace("shop"), deployment("web", replicas=3), *(configmap(f"c{i}") for i in range(6))):
        repo.put(obj)
    repo.commit("shop")
    assert apply(secondary, repo, "--prune") == 0
    name = derive(str(remote), "main")
    make_legacy(secondary, name)
    switched = kubedr("switchover", "--kubeconfig", secondary.kubeconfig_path, "--no-wait")  # an old secondary's DR
    assert switched.returncode == 0, switched.stderr
    assert on_secondary(secondary, "apps/v1", "Deployment", "web", "shop")["spec"]["replicas"] == 3
    make_legacy(secondary, name)  # the switchover moved the records: back to before sources, now in active mode
    legacy = {cm["metadata"]["name"] for cm in secondary.api.list("v1", "ConfigMap", "kubedr-system")}
    assert {"kubedr-status", "kubedr-mode"} <= legacy and not [n for n in legacy if n.startswith("kubedr-") and "." in n]

    # read-only commands read the old records where they are, as the source they name
    rows = json.loads(kubedr("--log-level", "ERROR", "status", "-o", "json", "--secondary-kubeconfig",
                             secondary.kubeconfig_path).stdout)
    (row,) = [r for r in rows if r["component"] == "applier"]
    assert row["source"] == name and row["data"]["mode"] == "active", row
    assert kubedr("diff", "--kubeconfig", secondary.kubeconfig_path, "--repo", str(remote)).returncode in (0, 1)
    assert legacy == {cm["metadata"]["name"] for cm in secondary.api.list("v1", "ConfigMap", "kubedr-system")}

    # the applier of that repo, without --source, moves them under its name (one line), keeps the mode, labels
    # every object, and prunes as before
    repo.remove(configmap("c0"))
    repo.commit("c0 goes")
    run = kubedr("apply", "--once", "--kubeconfig", secondary.kubeconfig_path, "--repo", str(remote), "--prune",
                 "--workdir", str(tmp_path / "applier-work"))
    assert run.returncode == 0, run.stderr
    assert run.stderr.count(f"source {name}: the records of kubedr before sources") == 1, run.stderr
    after = {cm["metadata"]["name"] for cm in secondary.api.list("v1", "ConfigMap", "kubedr-system")}
    assert {f"kubedr-status.{name}", f"kubedr-mode.{name}"} <= after
    assert not after & {"kubedr-status", "kubedr-mode"} and not [n for n in after if n.startswith("kubedr-inventory-")]
    assert on_secondary(secondary, "v1", "ConfigMap", "c0", "shop") is None, "pruned from the moved inventory"
    web = on_secondary(secondary, "apps/v1", "Deployment", "web", "shop")
    assert web["spec"]["replicas"] == 3 and source_label(web) == name, "still active, now labelled"
    assert all(source_label(on_secondary(secondary, "v1", "ConfigMap", f"c{i}", "shop")) == name for i in range(1, 6))
    again = kubedr("apply", "--once", "--kubeconfig", secondary.kubeconfig_path, "--repo", str(remote), "--prune",
                   "--workdir", str(tmp_path / "applier-work"))
    assert again.returncode == 0 and "before sources" not in again.stderr, again.stderr


def overlay_rbac(secondary: Any) -> None:
    """The dr-region overlay's least privilege (manifests/overlays/dr-region/rbac.yaml) on the secondary: source a's
    account writes namespace app-a and that Namespace object."""
    import yaml

    from tests.conftest import ROOT

    secondary.api.create(namespace("kubedr-system"))  # from the manifests' base
    for doc in yaml.safe_load_all((ROOT / "manifests/overlays/dr-region/rbac.yaml").read_text()):
        if doc and not (doc["kind"] == "Namespace" and on_secondary(secondary, "v1", "Namespace", doc["metadata"]["name"])):
            secondary.api.create(doc)


def test_a_source_applies_through_its_service_account_and_the_api_server_refuses_the_rest(
        secondary: Any, tmp_path: Path) -> None:
    from tests.integration.applier.conftest import Repo, status_of

    remote = tmp_path / "ra.git"
    run_git("init", "--bare", "-q", "-b", "main", str(remote))
    repo = Repo(remote, tmp_path / "work")
    secondary.api.create(namespace("other"))  # someone else's: A's account may not write there
    overlay_rbac(secondary)
    for obj in (namespace("app-a"), deployment("web", "app-a"), configmap("settings", "app-a"),
                configmap("doomed", "app-a"), configmap("intruder", "other")):
        repo.put(obj)
    repo.commit("a")
    args = ("apply", "--once", "--kubeconfig", secondary.kubeconfig_path, "--repo", str(remote), "--source", "a",
            "--service-account", "kubedr-system/kubedr-source-a", "--prune", "--no-validate",
            "--workdir", str(tmp_path / "applier-work"))
    run = kubedr(*args)
    assert run.returncode == 1, run.stderr
    refused = ('other/ConfigMap/intruder.yaml: configmaps "intruder" is forbidden: User '
               '"system:serviceaccount:kubedr-system:kubedr-source-a" cannot patch resource "configmaps" in API group '
               '"" in the namespace "other"')
    assert refused in run.stderr, run.stderr
    assert on_secondary(secondary, "v1", "ConfigMap", "intruder", "other") is None
    for kind, name in (("ConfigMap", "settings"), ("ConfigMap", "doomed")):
        assert source_label(on_secondary(secondary, "v1", kind, name, "app-a")) == "a"
    assert on_secondary(secondary, "apps/v1", "Deployment", "web", "app-a")["spec"]["replicas"] == 0
    st = status_of(secondary)  # the applier's own records: written as itself, not as the source's account
    assert [(f["path"], "forbidden" in f["reason"]) for f in st["failures"]] == [("other/ConfigMap/intruder.yaml", True)]

    repo.remove(configmap("doomed", "app-a"))  # a prune goes through the account too
    repo.commit("doomed goes")
    assert kubedr(*args).returncode == 1
    assert on_secondary(secondary, "v1", "ConfigMap", "doomed", "app-a") is None
    # no account: the applier writes as itself (the emulator's user may write anywhere)
    plain = kubedr(*[a for a in args if a not in ("--service-account", "kubedr-system/kubedr-source-a")])
    assert plain.returncode == 0, plain.stderr
    assert source_label(on_secondary(secondary, "v1", "ConfigMap", "intruder", "other")) == "a"

    # a prune the account may not make is the round's failure, named; the object stays until one may
    repo.remove(configmap("intruder", "other"))
    repo.commit("intruder goes")
    assert kubedr(*args).returncode == 1
    assert on_secondary(secondary, "v1", "ConfigMap", "intruder", "other") is not None
    [failure] = status_of(secondary)["failures"]
    assert failure["path"] == "other/ConfigMap/intruder.yaml" and failure["reason"].startswith("delete failed: ")
    assert "is forbidden: User \"system:serviceaccount:kubedr-system:kubedr-source-a\" cannot" in failure["reason"]
    assert kubedr(*[a for a in args if a not in ("--service-account", "kubedr-system/kubedr-source-a")]).returncode == 0
    assert on_secondary(secondary, "v1", "ConfigMap", "intruder", "other") is None


def test_promote_and_demote_act_on_one_source(primary: Any, secondary: Any, tmp_path: Path) -> None:
    """The secondary takes the writer role of source a (its primary is lost) and stays a standby of b; then a's
    primary takes it back and the secondary is demoted for a only."""
    from kubedr.applier.role import read_role
    from kubedr.applier.sources import Records
    from kubedr.kube import api_client
    from kubedr.kubeapi import Cluster
    from tests.integration.applier.conftest import Repo

    repos: dict[str, Repo] = {}
    for name in SOURCES:
        remote = tmp_path / f"r{name}.git"
        run_git("init", "--bare", "-q", "-b", "main", str(remote))
        repos[name] = Repo(remote, tmp_path / f"work-{name}")
        for obj in (namespace(f"app-{name}"), deployment(f"web-{name}", f"app-{name}", replicas=3),
                    configmap("settings", f"app-{name}", v="1")):
            repos[name].put(obj)
        repos[name].commit(name)

    def apply_once(name: str) -> subprocess.CompletedProcess[str]:
        return kubedr("apply", "--once", "--kubeconfig", secondary.kubeconfig_path, "--repo",
                      str(repos[name].remote), "--source", name, "--cluster-name", "dr", "--no-validate",
                      "--workdir", str(tmp_path / f"apply-{name}"))

    def role_of(emu: Any, name: str) -> dict[str, str]:
        return read_role(Cluster(api_client(emu.kubeconfig_path)), Records(name))

    def replicas(name: str) -> int:
        return int(on_secondary(secondary, "apps/v1", "Deployment", f"web-{name}", f"app-{name}")["spec"]["replicas"])

    assert all(apply_once(name).returncode == 0 for name in SOURCES)
    promoted = kubedr("promote", "--source", "a", "--kubeconfig", secondary.kubeconfig_path, "--repo",
                      str(repos["a"].remote), "--cluster-name", "dr", "--force", "--no-wait", "--no-validate",
                      "--workdir", str(tmp_path / "promote-a"))
    assert promoted.returncode == 0, promoted.stderr
    assert role_of(secondary, "a")["role"] == "writer" and role_of(secondary, "b") == {}
    assert (replicas("a"), replicas("b")) == (3, 0)

    for name in SOURCES:
        run_git("pull", "-q", "--ff-only", "origin", "main", cwd=repos[name].work)  # promote's role commit
        repos[name].put(configmap("settings", f"app-{name}", v="2"))
        repos[name].commit("v2")
    held = apply_once("a")  # the writer of a applies nothing of a ...
    assert "nothing is applied to this cluster: it is the writer (dr at epoch 1) (source a)" in held.stderr
    assert on_secondary(secondary, "v1", "ConfigMap", "settings", "app-a")["data"] == {"v": "1"}
    assert apply_once("b").returncode == 0  # ... and stays a standby of b
    assert on_secondary(secondary, "v1", "ConfigMap", "settings", "app-b")["data"] == {"v": "2"}

    # a's primary takes the role back; the secondary becomes a standby of a again, b untouched
    back = kubedr("promote", "--source", "a", "--kubeconfig", str(primary.kubeconfig_path), "--repo",
                  str(repos["a"].remote), "--cluster-name", "prod-a", "--force", "--no-wait", "--no-validate",
                  "--workdir", str(tmp_path / "promote-prod-a"))
    assert back.returncode == 0, back.stderr
    demoted = kubedr("demote", "--source", "a", "--kubeconfig", secondary.kubeconfig_path, "--repo",
                     str(repos["a"].remote), "--cluster-name", "dr", "--namespaces", "app-a", "--secrets", "plaintext",
                     "--no-validate", "--workdir", str(tmp_path / "export-dr-a"),
                     "--apply-workdir", str(tmp_path / "apply-a"))
    assert demoted.returncode == 0, demoted.stdout + demoted.stderr
    assert role_of(secondary, "a")["role"] == "standby" and role_of(secondary, "b") == {}
    assert (replicas("a"), replicas("b")) == (0, 0)
    assert on_secondary(secondary, "v1", "ConfigMap", "settings", "app-a")["data"] == {"v": "2"}
    assert apply_once("a").returncode == 0 and apply_once("b").returncode == 0


def test_two_sources_writing_one_namespace_are_a_reported_conflict_not_a_fight(secondary: Any, tmp_path: Path,
                                                                              daemon: Any) -> None:
    from tests.integration.applier.conftest import Repo

    repos = {}
    for name in SOURCES:
        remote = tmp_path / f"r{name}.git"
        run_git("init", "--bare", "-q", "-b", "main", str(remote))
        repos[name] = Repo(remote, tmp_path / f"work-{name}")
        for obj in (namespace("shared"), configmap("common", "shared", by=name), configmap(f"own-{name}", "shared")):
            repos[name].put(obj)
        repos[name].commit(name)
    first = daemon(secondary, repos["a"], "--source", "a", "--workdir", str(tmp_path / "apply-a"))
    wait_until(lambda: source_label(on_secondary(secondary, "v1", "ConfigMap", "common", "shared")) == "a",
               timeout=30, what=f"a applied; log:\n{first.text()}")
    second = daemon(secondary, repos["b"], "--source", "b", "--workdir", str(tmp_path / "apply-b"),
                    "--drift-interval", "1s")
    wait_until(lambda: on_secondary(secondary, "v1", "ConfigMap", "own-b", "shared") is not None, timeout=30,
               what=f"b's own object applied; log:\n{second.text()}")
    wait_until(lambda: "two sources write namespace shared (give one a --namespace-map)" in second.text(),
               timeout=30, what="the namespace conflict reported")
    common = "/api/v1/namespaces/shared/configmaps/common"
    seen = len(secondary.requests)
    # both appliers keep running (b retries its failures, a's drift watch follows the object): nobody writes it
    wait_until(lambda: "refused: ConfigMap shared/common is owned by source a" in second.text()
               and second.text().count("refused: ConfigMap shared/common") >= 2, timeout=30,
               what=f"b's retry refused again; log:\n{second.text()}")
    writes = [p for _, m, p in secondary.requests[seen:] if m in ("PATCH", "PUT", "DELETE") and p.startswith(common)]
    assert not writes, writes
    live = on_secondary(secondary, "v1", "ConfigMap", "common", "shared")
    assert live["data"] == {"by": "a"} and source_label(live) == "a"
    assert "healed" not in first.text() + second.text()
    rows = json.loads(kubedr("--log-level", "ERROR", "status", "-o", "json", "--secondary-kubeconfig",
                             secondary.kubeconfig_path).stdout)
    (row,) = [r for r in rows if r["component"] == "applier" and r["source"] == "b"]
    assert row["problem"] and sorted(o["object"] for o in row["data"]["ownedElsewhere"]) == [
        "ConfigMap shared/common", "Namespace shared"]
