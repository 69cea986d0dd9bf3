"""A branch that moves back (rollback) or to other history (rewrite) is held until a person acknowledges it, with
and without the trust gate; another repo URL is a re-point, applied whole within the prune guard. Real `kubedr
apply` processes, real git and ssh-keygen."""

from __future__ import annotations

import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubedr.commands.cli import main
from kubedr.signing import ACK_TRAILER
from tests.conftest import free_port, run_git, wait_until
from tests.integration.applier.conftest import (
    Repo,
    applied,
    apply,
    cli_env,
    configmap,
    git,
    live,
    namespace,
    status,
    status_of,
)
from tests.sshkeys import allowed_signers, make_key

BINDING = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "pwned"},
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
           "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "mallory"}]}
STATUS_PATH = "/api/v1/namespaces/kubedr-system/configmaps/kubedr-status"


def binding(secondary: Any) -> Any:
    return live(secondary, "rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "pwned")


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        return str(resp.read().decode())


def held_for(secondary: Any, commit: str) -> Any:
    return wait_until(lambda: (status_of(secondary).get("held") or {}).get("commit") == commit
                      and status_of(secondary)["held"], timeout=30, what=f"the applier to hold at {commit[:12]}")


def polls_later(secondary: Any, n: int = 3) -> None:
    """Wait until the applier read its record n more times: that many polls went by."""
    def reads() -> int:
        return sum(1 for _, method, path in secondary.requests if method == "GET" and path.startswith(STATUS_PATH))
    start = reads()
    wait_until(lambda: reads() >= start + n, timeout=20, what=f"{n} more polls")


def history(repo: Repo, key: Path | None) -> list[str]:
    """c1..c5 on the branch: c4 gives mallory cluster-admin, c5 takes it back."""
    shas = []
    for i, obj in enumerate([namespace("shop"), configmap("a", color="blue"), configmap("b"), BINDING], 1):
        repo.put(obj)
        shas.append(repo.commit(f"c{i}", key=key))
    repo.remove(BINDING)
    shas.append(repo.commit("c5: revoke", key=key))
    return shas


def acknowledge(secondary: Any, repo: Repo, held: str, admin: Path | None) -> str:
    """What a person does: a signed `kubedr trust ack` with the gate, `kubedr trust accept` without; the new head."""
    accept = ["trust", "accept", held[:12], "--kubeconfig", secondary.kubeconfig_path]
    if admin is None:
        assert main(accept) == 0
        return held
    assert main(accept) == 2  # with the trust gate a record on the secondary is not enough: a signature is
    signers = allowed_signers(admin.parent / f"{admin.name}.allowed", admin=admin)  # the ones the applier holds
    assert main(["trust", "ack", held, "--repo", str(repo.remote), "--signing-key", str(admin),
                 "--allowed-signers", str(signers)]) == 0
    return run_git("rev-parse", "main", cwd=repo.remote).strip()


@pytest.mark.parametrize("gate", [True, False], ids=["trust-gate", "no-gate"])
def test_a_rollback_is_held_and_applies_nothing_until_acknowledged(secondary: Any, repo: Repo, daemon: Any,
                                                                  tmp_path: Path, gate: bool) -> None:
    admin = make_key(tmp_path, "admin") if gate else None
    signers = ["--allowed-signers", str(allowed_signers(tmp_path / "signers", admin=admin))] if admin else []
    c1, c2, c3, c4, c5 = history(repo, admin)
    port = free_port()
    d = daemon(secondary, repo, "--metrics-listen", f"127.0.0.1:{port}", *signers)
    applied(secondary, repo, d, c5)
    assert binding(secondary) is None
    assert main(["trust", "accept", c5, "--kubeconfig", secondary.kubeconfig_path]) == 2  # nothing is held

    repo.force(c4)  # the branch moved back to the commit that grants cluster-admin
    held = held_for(secondary, c4)
    assert (held["reason"], held["newest"], held["gate"]) == ("rollback", c5, "on" if gate else "off")
    polls_later(secondary)
    assert binding(secondary) is None and status_of(secondary)["commit"] == c5
    assert not [p for _, m, p in secondary.requests if m == "PATCH" and "clusterrolebindings" in p]
    line = (f"held: branch main of {repo.remote} moved back from {c5[:12]} to {c4[:12]} (rollback): nothing of it is "
            f"applied until a person acknowledges {c4[:12]}")
    assert d.text().count(line) == 1
    assert f'kubedr_applier_history_held_info{{commit="{c4}",newest="{c5}",reason="rollback"}} 1.0' in scrape(port)
    code, row = status(secondary)
    assert code == 1 and row["detail"].startswith(f"HELD branch main of {repo.remote} moved back")
    assert main(["trust", "accept", c5[:12], "--kubeconfig", secondary.kubeconfig_path]) == 2  # not the held one

    head = acknowledge(secondary, repo, c4, admin)
    applied(secondary, repo, d, head)
    assert binding(secondary) is not None  # c4's tree, now that a person let it in
    assert not status_of(secondary)["held"] and "kubedr_applier_history_held_info{" not in scrape(port)
    assert f"{head[:12]} applied; the hold is released" in d.text()
    # the acknowledged head is the new newest: going on from it is no rollback
    git("pull", "-q", "--ff-only", "origin", "main", cwd=repo.work)
    repo.put(configmap("c"))
    applied(secondary, repo, d, repo.commit("c6", key=admin))
    assert status(secondary)[0] == 0


@pytest.mark.parametrize("gate", [True, False], ids=["trust-gate", "no-gate"])
def test_when_the_branch_comes_back_the_hold_ends_and_a_revoke_after_an_acknowledged_grant_prunes(
        secondary: Any, repo: Repo, daemon: Any, tmp_path: Path, gate: bool) -> None:
    admin = make_key(tmp_path, "admin") if gate else None
    signers = ["--allowed-signers", str(allowed_signers(tmp_path / "signers", admin=admin))] if admin else []
    c1, c2, c3, c4, c5 = history(repo, admin)
    d = daemon(secondary, repo, "--prune", *signers)
    applied(secondary, repo, d, c5)
    repo.force(c4)
    held_for(secondary, c4)
    repo.force(c5)  # the force-push undone: c5 is what was applied, nothing to hold or to apply
    wait_until(lambda: not status_of(secondary).get("held"), timeout=30, what="the hold to end")
    assert status_of(secondary)["commit"] == c5 and binding(secondary) is None
    assert not [p for _, m, p in secondary.requests if m == "PATCH" and "clusterrolebindings" in p]

    repo.force(c4)  # the grant again, and this time a person lets it in
    held_for(secondary, c4)
    head = acknowledge(secondary, repo, c4, admin)
    applied(secondary, repo, d, head)
    assert binding(secondary) is not None
    git("pull", "-q", "--ff-only", "origin", "main", cwd=repo.work)
    repo.remove(BINDING)
    revoke = repo.commit("revoke again", key=admin)
    applied(secondary, repo, d, revoke)
    wait_until(lambda: binding(secondary) is None, timeout=30, what="the revoked binding to be pruned")


@pytest.mark.parametrize("gate", [True, False], ids=["trust-gate", "no-gate"])
def test_rewritten_history_on_the_same_url_is_held_until_acknowledged(secondary: Any, repo: Repo, daemon: Any,
                                                                     tmp_path: Path, gate: bool) -> None:
    """A force-pushed orphan history (gate on), a repo deleted and re-created at the same URL (gate off)."""
    admin = make_key(tmp_path, "admin") if gate else None
    signers = ["--allowed-signers", str(allowed_signers(tmp_path / "signers", admin=admin))] if admin else []
    *_, c5 = history(repo, admin)
    d = daemon(secondary, repo, *signers)
    applied(secondary, repo, d, c5)

    mallory = make_key(tmp_path, "mallory")
    if not gate:  # the repo deleted and created again at the same URL, naming a key of its own in its policy
        shutil.rmtree(repo.remote)
        run_git("init", "--bare", "-q", "-b", "main", str(repo.remote))
    git("checkout", "-q", "--orphan", "rewritten", cwd=repo.work)
    git("rm", "-r", "-q", "-f", ".", cwd=repo.work)
    for obj in (namespace("shop"), configmap("a", color="rewritten"), BINDING):
        repo.put(obj)
    if not gate:
        repo.write(".kubedr/policy.yaml", yaml.safe_dump({"trust": {"allowed_signers": [
            f'mallory namespaces="git" {Path(str(mallory) + ".pub").read_text().strip()}']}}).encode())
    other = repo.commit("unrelated history", key=admin or mallory, force=True)
    held = held_for(secondary, other)
    assert held["reason"] == "rewrite"
    # an acknowledgement signed by a key the secondary never trusted (the rewritten policy's own) counts for nothing
    forged = repo.commit(f"acknowledge\n\n{ACK_TRAILER}: {other}", key=mallory)
    wait_until(lambda: status_of(secondary)["held"].get("head") == forged, timeout=30, what="the hold to see it")
    polls_later(secondary)
    assert status_of(secondary)["held"]["commit"] == other
    assert binding(secondary) is None and live(secondary, "v1", "ConfigMap", "a", "shop")["data"] == {"color": "blue"}
    assert (f"held: branch main of {repo.remote} no longer contains {c5[:12]}, the newest commit applied from it; "
            f"its head is {other[:12]} (rewritten history)") in d.text()

    acknowledge(secondary, repo, other, admin)
    if gate:  # the rewrite is accepted; the forged commit on it is still unsigned by an allowed key: stop before it
        applied(secondary, repo, d, other)
        wait_until(lambda: status_of(secondary)["untrusted"].get("commit") == forged, what="held at the forgery")
    else:
        applied(secondary, repo, d, forged)
    assert binding(secondary) is not None
    assert live(secondary, "v1", "ConfigMap", "a", "shop")["data"] == {"color": "rewritten"}


def test_an_old_acknowledgement_does_not_release_a_new_hold(secondary: Any, repo: Repo, daemon: Any,
                                                             tmp_path: Path) -> None:
    """A signed acknowledgement counts only when made after the hold began and never applied before."""
    admin = make_key(tmp_path, "admin")
    signers = allowed_signers(tmp_path / "signers", admin=admin)
    c1, c2, c3, c4, c5 = history(repo, admin)
    d = daemon(secondary, repo, "--allowed-signers", str(signers))
    applied(secondary, repo, d, c5)
    repo.force(c4)
    held_for(secondary, c4)
    head = acknowledge(secondary, repo, c4, admin)
    applied(secondary, repo, d, head)
    git("pull", "-q", "--ff-only", "origin", "main", cwd=repo.work)
    repo.put(configmap("c"))
    newest = repo.commit("c6", key=admin)
    applied(secondary, repo, d, newest)
    # the same rollback again, replaying the branch up to the old acknowledgement: held, not released by it
    repo.force(c4)
    held_for(secondary, c4)
    repo.force(head)
    wait_until(lambda: (status_of(secondary).get("held") or {}).get("head") == head, timeout=30,
               what="the hold to see the replayed acknowledgement")
    polls_later(secondary)
    assert status_of(secondary)["commit"] == newest and status_of(secondary)["held"]["commit"] == c4


def test_kubedr_diff_and_a_dry_run_show_a_held_branch_as_held(secondary: Any, repo: Repo, daemon: Any) -> None:
    *_, c4, c5 = history(repo, None)
    d = daemon(secondary, repo)
    applied(secondary, repo, d, c5)
    repo.force(c4)
    held_for(secondary, c4)
    proc = subprocess.run([sys.executable, "-m", "kubedr", "diff", "--kubeconfig", secondary.kubeconfig_path,
                           "--repo", str(repo.remote), "--no-validate"], capture_output=True, text=True, timeout=60,
                          env=cli_env())
    assert proc.returncode == 2 and proc.stdout == "", proc.stdout  # no diff of c4 shown as what apply would do
    line = f"held: branch main of {repo.remote} moved back from {c5[:12]} to {c4[:12]} (rollback)"
    assert line in proc.stderr
    dry = subprocess.run([sys.executable, "-m", "kubedr", "apply", "--dry-run", "--kubeconfig",
                          secondary.kubeconfig_path, "--repo", str(repo.remote), "--no-validate"],
                         capture_output=True, text=True, timeout=60, env=cli_env())
    assert dry.returncode == 1 and dry.stdout.startswith(line) and "would apply" not in dry.stdout, dry.stdout


def test_kubedr_diff_never_shows_an_untrusted_commit_as_what_apply_would_do(secondary: Any, repo: Repo,
                                                                           tmp_path: Path) -> None:
    admin = make_key(tmp_path, "admin")
    signers = str(allowed_signers(tmp_path / "signers", admin=admin))
    repo.put(namespace("shop"))
    repo.put(configmap("a", color="blue"))
    repo.commit("signed", key=admin)
    assert apply(secondary, repo, "--allowed-signers", signers, "--no-validate") == 0
    repo.put(configmap("a", color="HACKED"))
    bad = repo.commit("unsigned")
    proc = subprocess.run([sys.executable, "-m", "kubedr", "diff", "--kubeconfig", secondary.kubeconfig_path,
                           "--repo", str(repo.remote), "--no-validate", "--allowed-signers", signers],
                          capture_output=True, text=True, timeout=60, env=cli_env())
    assert "HACKED" not in proc.stdout and proc.returncode == 2, proc.stdout
    assert f"untrusted commit {bad[:12]} (not signed)" in proc.stderr
