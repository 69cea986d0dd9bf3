"""Allowed signers from the repo policy (no --allowed-signers): a key is trusted only once a commit signed by an
already allowed key adds it; an unsigned policy change cannot let a new key in."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

from kubedr import signing
from tests.integration.applier.conftest import Repo, apply, configmap, live, namespace, status_of
from tests.sshkeys import make_key


def signer_line(principal: str, key: Path) -> str:
    return f'{principal} namespaces="git" {Path(str(key) + ".pub").read_text().strip()}'


def commit(repo: Repo, message: str, key: Path | None) -> str:
    env = {**os.environ, **(signing.Signer(key).git_config() if key else {})}
    subprocess.run(["git", "add", "-A"], cwd=repo.work, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "--allow-empty",
                    "-m", message], cwd=repo.work, env=env, check=True, capture_output=True)
    subprocess.run(["git", "push", "-q", "origin", "HEAD:main"], cwd=repo.work, check=True, capture_output=True)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo.work, capture_output=True, text=True).stdout.strip()


def policy(*lines: str) -> bytes:
    return yaml.safe_dump({"version": 1, "trust": {"allowed_signers": list(lines)}}).encode()


def test_policy_signers_anchor_trust_in_signed_history(secondary, repo: Repo, tmp_path: Path) -> None:
    admin, ops, stranger = (make_key(tmp_path, n) for n in ("admin", "ops", "stranger"))
    repo.write(".kubedr/policy.yaml", policy(signer_line("admin", admin)))
    repo.put(namespace("shop"))
    repo.put(configmap("a"))
    commit(repo, "start", admin)
    assert apply(secondary, repo, "--no-validate") == 0
    assert live(secondary, "v1", "ConfigMap", "a", "shop")

    # an unsigned commit that adds a key, and a commit signed by that key: neither applies
    repo.write(".kubedr/policy.yaml", policy(signer_line("admin", admin), signer_line("stranger", stranger)))
    bad = commit(repo, "let me in", None)
    repo.put(configmap("b"))
    commit(repo, "by the stranger", stranger)
    assert apply(secondary, repo, "--no-validate") == 1
    assert status_of(secondary)["untrusted"]["commit"] == bad
    assert not live(secondary, "v1", "ConfigMap", "b", "shop")

    # undo by a signed commit (history is not rewritten), acknowledge the bad one: the stranger's commit is
    # still checked against the signers of the last applied commit, which do not include it
    repo.write(".kubedr/policy.yaml", policy(signer_line("admin", admin)))
    commit(repo, f"revert the policy\n\n{signing.ACK_TRAILER}: {bad}", admin)
    assert apply(secondary, repo, "--no-validate") == 1
    assert status_of(secondary)["untrusted"]["reason"] == "signed by a key that is not in the allowed signers"

    # a key added by a signed policy change is trusted from there on, in the same round or the next
    repo.write(".kubedr/policy.yaml", policy(signer_line("admin", admin), signer_line("ops", ops)))
    stranger_sha = subprocess.run(["git", "log", "-1", "--format=%H", "--grep=by the stranger"], cwd=repo.work,
                                  capture_output=True, text=True).stdout.strip()
    commit(repo, f"add ops\n\n{signing.ACK_TRAILER}: {stranger_sha}", admin)
    repo.put(configmap("c"))
    commit(repo, "by ops", ops)
    for _ in range(2):  # the first round stops where the signers changed, the next checks on with the new ones
        code = apply(secondary, repo, "--no-validate")
    assert code == 0 and not status_of(secondary)["untrusted"]
    assert live(secondary, "v1", "ConfigMap", "b", "shop") and live(secondary, "v1", "ConfigMap", "c", "shop")


def test_a_commit_signed_by_the_key_it_adds_is_refused(secondary, repo: Repo, tmp_path: Path) -> None:
    """The signers in force are those of the last applied commit (the anchor), never those of the commit being
    judged: a pusher cannot sign their way in with the key they add."""
    admin, stranger = make_key(tmp_path, "admin"), make_key(tmp_path, "stranger")
    repo.write(".kubedr/policy.yaml", policy(signer_line("admin", admin)))
    repo.put(namespace("shop"))
    commit(repo, "start", admin)
    assert apply(secondary, repo, "--no-validate") == 0
    assert apply(secondary, repo, "--no-validate") == 0, "nothing new: the gate lets the applied commit stand"

    repo.write(".kubedr/policy.yaml", policy(signer_line("admin", admin), signer_line("stranger", stranger)))
    repo.put(configmap("b"))
    sneaked = commit(repo, "let myself in", stranger)
    assert apply(secondary, repo, "--no-validate") == 1
    assert status_of(secondary)["untrusted"]["commit"] == sneaked
    assert not live(secondary, "v1", "ConfigMap", "b", "shop")


def test_a_fresh_shallow_mirror_checks_every_commit_since_the_applied_one(secondary, git_daemon, tmp_path: Path) -> None:
    """Over a remote URL a new work dir starts as a shallow mirror of the tip: the gate fetches back to the
    applied commit (its anchor) and checks every commit since, so an unsigned one deep below the tip holds it."""
    admin = make_key(tmp_path, "admin")
    bare, url = git_daemon("trusted.git")
    repo = Repo(bare, tmp_path / "work")
    repo.write(".kubedr/policy.yaml", policy(signer_line("admin", admin)))
    repo.put(namespace("shop"))
    commit(repo, "start", admin)
    assert apply(secondary, url, "--no-validate", "--workdir", str(tmp_path / "first")) == 0
    shas = []
    for i in range(12):
        repo.put(configmap(f"cm-{i}"))
        shas.append(commit(repo, f"change {i}", None if i == 3 else admin))
    assert apply(secondary, url, "--no-validate", "--workdir", str(tmp_path / "fresh")) == 1
    assert status_of(secondary)["untrusted"]["commit"] == shas[3]
    assert live(secondary, "v1", "ConfigMap", "cm-2", "shop") and not live(secondary, "v1", "ConfigMap", "cm-3", "shop")


def test_trust_on_first_use_is_said_and_a_root_policy_is_a_change(repo: Repo, tmp_path: Path, caplog) -> None:
    """Without --allowed-signers the first commit's policy is trusted on first use (a warning says so, once, and
    never with the flag); the root commit that brings the policy counts as a policy change, one without does not."""
    import logging

    from kubedr.applier.fetch import Source
    from kubedr.applier.trust import Gate

    admin = make_key(tmp_path, "admin")
    repo.put(namespace("shop"))
    bare = commit(repo, "root without a policy", admin)
    repo.write(".kubedr/policy.yaml", policy(signer_line("admin", admin)))
    first = commit(repo, "the policy", admin)
    repo.put(configmap("a"))
    second = commit(repo, "a", admin)
    source = Source(str(repo.remote))
    gate = Gate(source, None)
    assert gate._policy_changers(None, bare) == set()
    assert gate._policy_changers(None, first) == {first}
    assert gate._policy_changers(bare, second) == {first}
    said = "on first use; --allowed-signers anchors trust outside the repo"
    with caplog.at_level(logging.WARNING, logger="kubedr"):
        assert gate.admit(None, first).target == first
        assert gate.admit(first, second).target == second
        signers = tmp_path / "signers"
        signers.write_text(signer_line("admin", admin) + "\n")
        assert Gate(source, str(signers)).admit(None, second).target == second
    assert [r.getMessage() for r in caplog.records if said in r.getMessage()] == [
        f"trusting the allowed signers in .kubedr/policy.yaml of {first[:12]} {said}"]
    # a root commit that brings a policy (another branch's, as a re-created repo's would be) is a change too
    subprocess.run(["git", "checkout", "-q", "--orphan", "side"], cwd=repo.work, check=True)
    env = {**os.environ, **signing.Signer(admin).git_config()}
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "side root"],
                   cwd=repo.work, env=env, check=True, capture_output=True)
    subprocess.run(["git", "push", "-q", "origin", "HEAD:side"], cwd=repo.work, check=True, capture_output=True)
    root = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo.work, capture_output=True, text=True).stdout.strip()
    assert gate._policy_changers(None, root) == {root}
