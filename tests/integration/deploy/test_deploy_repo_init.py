"""`kubedr init`: the template lands in a new directory, an existing repo, a bare remote and a git:// remote."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kubedr import contract
from kubedr.commands import repo_init
from kubedr.git import GitError
from tests.conftest import run_git

EXPECTED = {"README.md", ".gitattributes", ".kubedr/policy.yaml"}


def test_template_has_the_promised_files_and_none_is_an_object() -> None:
    files = {p.as_posix() for p in repo_init.template_files()}
    assert EXPECTED <= files
    # the applier must never mistake a template file for a manifest
    assert all(contract.ref_of_path(f) is None for f in files)


def test_policy_is_valid_yaml_with_the_documented_sections(tmp_path: Path) -> None:
    repo_init.init_repo(str(tmp_path / "r"))
    policy = repo_init.read_policy(tmp_path / "r")
    assert policy["version"] == 1
    assert policy["apply"]["prune_max_fraction"] == 0.25
    assert policy["apply"]["standby_replicas"] == 0
    assert "kubedr-system" in policy["export"]["exclude_namespaces"]


def test_init_a_new_directory_commits_the_template_once(tmp_path: Path) -> None:
    repo = tmp_path / "config"
    line = repo_init.init_repo(str(repo))
    assert "committed" in line
    assert set(run_git("ls-files", cwd=repo).split()) == EXPECTED
    assert run_git("log", "--format=%s", cwd=repo).strip() == "init: kubedr config repo from the template"
    assert run_git("rev-parse", "--abbrev-ref", "HEAD", cwd=repo).strip() == "main"
    # idempotent: a second run finds nothing to add
    assert "nothing to commit" in repo_init.init_repo(str(repo))
    assert len(run_git("log", "--format=%H", cwd=repo).split()) == 1


def test_existing_files_are_kept_unless_forced(tmp_path: Path) -> None:
    repo = tmp_path / "config"
    repo.mkdir()
    run_git("init", "-q", "-b", "main", str(repo))
    (repo / "README.md").write_text("ours\n")
    repo_init.init_repo(str(repo))
    assert (repo / "README.md").read_text() == "ours\n"
    assert (repo / ".kubedr" / "policy.yaml").is_file()
    repo_init.init_repo(str(repo), force=True)
    assert "Reading the history" in (repo / "README.md").read_text()


def test_init_a_bare_remote_pushes(tmp_path: Path, git_remote: Path) -> None:
    line = repo_init.init_repo(str(git_remote))
    assert "pushed" in line
    clone = tmp_path / "clone"
    run_git("clone", "-q", str(git_remote), str(clone))
    assert set(run_git("ls-files", cwd=clone).split()) == EXPECTED
    # a remote that already has history keeps it; the template is added on top, nothing force-pushed
    (clone / "shop").mkdir()
    (clone / "shop" / "x.txt").write_text("x\n")
    (clone / ".gitattributes").unlink()
    run_git("add", "-A", cwd=clone)
    run_git("commit", "-q", "-m", "someone else", cwd=clone)
    run_git("push", "-q", "origin", "main", cwd=clone)
    assert "pushed" in repo_init.init_repo(str(git_remote))
    log = run_git("--git-dir", str(git_remote), "log", "--format=%s", "main").splitlines()
    assert log == ["init: kubedr config repo from the template", "someone else",
                   "init: kubedr config repo from the template"]


def test_init_over_git_daemon_via_the_cli(tmp_path: Path, git_daemon) -> None:
    bare, url = git_daemon("config.git")
    proc = subprocess.run([sys.executable, "-m", "kubedr", "init", "--repo", url, "--branch", "dr"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "pushed" in proc.stdout
    files = run_git("--git-dir", str(bare), "ls-tree", "-r", "--name-only", "dr").split()
    assert set(files) == EXPECTED
    policy = run_git("--git-dir", str(bare), "show", "dr:.kubedr/policy.yaml")
    assert yaml.safe_load(policy)["apply"]["prune"] is True


def test_cli_without_repo_is_one_line_usage_error() -> None:
    proc = subprocess.run([sys.executable, "-m", "kubedr", "init"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "--repo" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_unreachable_remote_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(GitError, match="^git clone: ") as err:
        repo_init.init_repo(f"file://{tmp_path}/missing.git")
    assert len(str(err.value).splitlines()) == 1


def test_a_working_clone_with_an_origin_is_pushed(tmp_path: Path, git_remote: Path) -> None:
    clone = tmp_path / "clone"
    run_git("clone", "-q", str(git_remote), str(clone))
    line = repo_init.init_repo(str(clone))
    assert "pushed" in line
    files = run_git("--git-dir", str(git_remote), "ls-tree", "-r", "--name-only", "main").split()
    assert set(files) == EXPECTED
    assert "committed" in repo_init.init_repo(str(tmp_path / "other"), push=True)   # no origin: nothing to push


def test_no_push_to_a_remote_keeps_the_clone_with_the_commit(git_remote: Path) -> None:
    line = repo_init.init_repo(str(git_remote), push=False)
    clone = Path(line.rsplit("the clone is kept at ", 1)[1].split(" ", 1)[0])
    try:
        assert run_git("log", "-1", "--format=%s", cwd=clone).startswith("init: kubedr config repo")
        assert (clone / ".kubedr" / "policy.yaml").is_file()
        assert run_git("for-each-ref", cwd=git_remote).strip() == ""  # nothing pushed
    finally:
        shutil.rmtree(clone.parent, ignore_errors=True)
