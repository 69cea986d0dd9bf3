"""`kubedr init --repo PATH|URL`: start a config repo from the template (README for auditors, policy, .gitattributes).

A path that is not a repository becomes one (git init); an existing working tree gets the template files it
lacks (and is pushed to its origin, if it has one); a URL (or a bare repository on disk) is cloned into a temporary directory, given the template,
committed and pushed. Existing files are never overwritten unless --force; nothing is force-pushed.
"""

from __future__ import annotations

import argparse
import logging
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from kubedr import config, git
from kubedr.commands.shipped import shipped
from kubedr.config import UsageError
from kubedr.policyfile import POLICY_PATH

log = logging.getLogger("kubedr.init")

COMMIT_MESSAGE = "init: kubedr config repo from the template\n\nREADME for auditors, .kubedr/policy.yaml, .gitattributes"
_SCP_LIKE = re.compile(r"^[\w.-]+@[\w.-]+:")


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    """Flags of `kubedr init`."""
    parser.add_argument("--repo", help="a directory (created if missing) or a remote URL / bare repository")
    parser.add_argument("--branch", default="main", help="branch to create or update (default main)")
    parser.add_argument("--force", action="store_true", help="overwrite template files that already exist")
    parser.add_argument("--writer", metavar="CLUSTER",
                        help="give CLUSTER (the primary's exporter --cluster-name) the writer role, epoch 1, "
                             "unless the repo already names a writer")
    parser.add_argument("--no-push", action="store_true", help="commit but do not push (for a remote: the clone is kept and its path printed)")
    parser.add_argument("--signing-key", help="SSH private key that signs the commit (git gpg.format=ssh)")


def run(args: argparse.Namespace) -> int:
    """Create or update the repo; print what was done."""
    if not args.repo:
        raise UsageError("init: --repo PATH|URL is required")

    signer = config.signer(args.signing_key)
    result = init_repo(args.repo, branch=args.branch, force=args.force, push=not args.no_push,
                       sign_env=signer.git_config() if signer else None, writer=args.writer)
    print(result)
    return 0


def template_files() -> list[Path]:
    """Every file of the template, relative to it (hidden files included)."""
    root = template_dir()
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def template_dir() -> Path:
    """The template shipped in the package (kubedr/repo_template links to repo-template/ in a checkout)."""
    return shipped("repo_template", "repo-template")


def is_remote(repo: str) -> bool:
    """A URL, an scp-like address, or a bare repository on disk: something to clone and push to."""
    if "://" in repo or _SCP_LIKE.match(repo):
        return True
    path = Path(repo)
    if not path.is_dir():
        return False
    probe = git.run(["-C", str(path), "rev-parse", "--is-bare-repository"], check=False)
    return probe.ok and probe.text.strip() == "true"


def init_repo(repo: str, branch: str = "main", force: bool = False, push: bool = True,
              sign_env: dict[str, str] | None = None, writer: str | None = None) -> str:
    """Give repo the template and commit it; returns one line saying what happened."""
    if is_remote(repo):
        tmp = tempfile.mkdtemp(prefix="kubedr-init-")
        work = Path(tmp) / "repo"
        try:
            _git(None, "clone", "--quiet", repo, str(work))
            _checkout(work, branch)
            written = copy_template(work, force) + write_role(work, writer)
            sha = _commit(work, written, sign_env)
            if sha and push:
                _git(work, "push", "--quiet", "origin", f"HEAD:refs/heads/{branch}")
            summary = _summary(repo, branch, written, sha, pushed=bool(sha and push))
            if sha and not push:  # the commit lives only in the clone: keep it for the operator to push
                return f"{summary}; the clone is kept at {work} (push it with: git -C {work} push origin {branch})"
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        shutil.rmtree(tmp, ignore_errors=True)
        return summary
    work = Path(repo)
    if work.exists() and not work.is_dir():
        raise UsageError(f"init: {repo} exists and is not a directory")
    work.mkdir(parents=True, exist_ok=True)
    if not (work / ".git").exists():
        _git(work, "init", "--quiet", "-b", branch)
    else:
        _checkout(work, branch)
    written = copy_template(work, force) + write_role(work, writer)
    sha = _commit(work, written, sign_env)
    has_origin = git.run(["-C", str(work), "remote", "get-url", "origin"], check=False).ok
    if sha and push and has_origin:
        _git(work, "push", "--quiet", "origin", f"HEAD:refs/heads/{branch}")
    return _summary(repo, branch, written, sha, pushed=bool(sha and push and has_origin))


def copy_template(work: Path, force: bool = False) -> list[str]:
    """Copy template files into work; existing files are kept unless force. Returns the paths written."""
    root = template_dir()
    written = []
    for rel in template_files():
        target = work / rel
        if target.exists() and not force:
            log.info("kept existing %s", rel)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / rel, target)
        written.append(rel.as_posix())
    return written


def write_role(work: Path, writer: str | None) -> list[str]:
    """The first writer role (epoch 1), only where no role exists: afterwards only promote changes it."""
    from kubedr import roles

    target = work / roles.WRITER_PATH
    if not writer or target.exists():
        return []
    try:
        role = roles.successor(None, writer, "kubedr init --writer")
    except roles.RoleError as exc:
        raise UsageError(f"init: --writer: {exc}") from exc
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(roles.dump(role))
    return [roles.WRITER_PATH]


def read_policy(repo_dir: str | Path) -> dict[str, Any]:
    """The repo's .kubedr/policy.yaml as a dict ({} when absent); a broken file is one line naming it."""
    path = Path(repo_dir) / POLICY_PATH
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a mapping of section -> settings")
    return data


def _checkout(work: Path, branch: str) -> None:
    """Be on branch: the existing one, a new one from HEAD, or an unborn one in an empty repo."""
    exists, local = (git.run(["-C", str(work), "rev-parse", "--verify", "--quiet", ref], check=False).ok
                     for ref in (f"refs/remotes/origin/{branch}", f"refs/heads/{branch}"))
    if local:
        _git(work, "checkout", "--quiet", branch)
    elif exists:
        _git(work, "checkout", "--quiet", "-b", branch, f"origin/{branch}")
    else:
        _git(work, "symbolic-ref", "HEAD", f"refs/heads/{branch}")


def _commit(work: Path, written: list[str], sign_env: dict[str, str] | None = None) -> str | None:
    """Commit the written files; None when there was nothing new."""
    if not written:
        return None
    _git(work, "add", "--", *written)
    if git.run(["-C", str(work), "diff", "--cached", "--quiet"], check=False).ok:
        return None
    _git(work, *_identity(work), "commit", "--quiet", "-m", COMMIT_MESSAGE, env=sign_env)
    return _git(work, "rev-parse", "HEAD").strip()


def _identity(work: Path) -> list[str]:
    """-c user.name/-c user.email when git has none configured (GIT_* variables still win)."""
    args = []
    for key, fallback in (("user.name", "kubedr init"), ("user.email", "kubedr@localhost")):
        has = git.run(["-C", str(work), "config", key], check=False).text.strip()
        if not has:
            args += ["-c", f"{key}={fallback}"]
    return args


def _git(work: Path | None, *args: str, env: dict[str, str] | None = None) -> str:
    """Run git in work (git.GitError when it fails: kubedr's command line says it in one line, exit 1)."""
    return git.run(args, cwd=work, env=env).text


def _summary(repo: str, branch: str, written: list[str], sha: str | None, pushed: bool) -> str:
    if not sha:
        return f"{repo} ({branch}): already has the template; nothing to commit"
    where = "pushed" if pushed else "committed"
    return f"{repo} ({branch}): {where} {sha[:12]} with {len(written)} template files: {', '.join(written)}"
