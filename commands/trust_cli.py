"""`kubedr trust ack | verify`: review and acknowledge commits whose signature does not verify.

The applier stops at the first commit that does not verify (applier/trust.py). History is never rewritten:
a person holding an allowed key reviews the commit, then records that in a signed, empty commit whose
trailer `Kubedr-Acknowledges: <sha>` names it; the applier then goes on past it. The same acknowledgement
releases a held rollback or rewrite of the branch (applier/history.py); without the trust gate, `trust accept`
records the release on the secondary instead. An acknowledgement that the allowed signers in force would not
accept is refused before anything is pushed.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile

from kubedr import config, git, signing
from kubedr.commands.repo_init import is_remote
from kubedr.config import UsageError
from kubedr.remote import redact

log = logging.getLogger("kubedr.trust")


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    """`kubedr trust ACTION`: ack SHA... (signed commit), verify (list what does not verify), or accept SHA (a held
    rollback or rewrite, on a secondary without the trust gate)."""
    parser.add_argument("action", choices=("ack", "verify", "accept"),
                        help="ack: acknowledge commits; verify: list them; accept: release a held rollback or "
                             "rewrite on the secondary (no trust gate)")
    parser.add_argument("commits", nargs="*", metavar="SHA", help="ack: the reviewed commits; accept: the held one")
    parser.add_argument("--kubeconfig", help="accept: kubeconfig of the secondary (in-cluster when absent)")
    parser.add_argument("--context")
    parser.add_argument("--repo", help="the config repo: URL, bare repo or working tree")
    parser.add_argument("--branch", default="main", help="branch (default main)")
    parser.add_argument("--signing-key", help="ack: your SSH private key (its public key is an allowed signer)")
    parser.add_argument("--allowed-signers", help="git allowed-signers file, as the appliers have it (ack: default "
                        "the policy's trust.allowed_signers on the branch)")
    parser.add_argument("--message", help="ack: what was reviewed (goes into the commit message)")
    parser.add_argument("--source", help="accept: the source that holds (default: derived from --repo and --branch, "
                                         "else the one source on the secondary)")


def run(args: argparse.Namespace) -> int:
    """Dispatch on the action."""
    if args.action == "accept":
        return _accept(args)
    if not args.repo:
        raise UsageError("trust: --repo is required")
    tmp = tempfile.mkdtemp(prefix="kubedr-trust-")
    try:
        where = tmp if is_remote(args.repo) else args.repo  # a scratch bare copy of a remote, else the repo itself
        if where == tmp:
            git.run(["init", "-q", "--bare", tmp])
            git.run(["fetch", "-q", args.repo, f"+refs/heads/{args.branch}:refs/heads/{args.branch}"], cwd=tmp,
                    remote=args.repo)
        return _ack(args, where, tmp) if args.action == "ack" else _verify(args, where)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _resolve(where: str, branch: str, commits: list[str]) -> list[str]:
    """Full shas of the named commits; each must be on the branch."""
    out = []
    for c in commits:
        found = git.run(["rev-parse", "-q", "--verify", f"{c}^{{commit}}"], cwd=where, check=False)
        if not found.ok:
            raise UsageError(f"trust: no commit {c} on branch {branch}")
        sha = found.text.strip()
        if not git.run(["merge-base", "--is-ancestor", sha, f"refs/heads/{branch}"], cwd=where, check=False).ok:
            raise UsageError(f"trust: commit {c} is not on branch {branch}")
        out.append(sha)
    return out


def _signers_in_force(args: argparse.Namespace, where: str, head: str, scratch: str) -> str:
    """The allowed-signers file an acknowledgement must verify against: the flag's, else the branch policy's."""
    from kubedr.applier.policy import POLICY_PATH
    from kubedr.applier.trust import policy_signers
    from kubedr.repotree import TreeReader

    if args.allowed_signers:
        try:
            signing.check_allowed_signers(args.allowed_signers)
        except signing.SigningError as exc:
            raise UsageError(str(exc)) from exc
        return str(args.allowed_signers)
    reader = TreeReader(git.run(["rev-parse", "--absolute-git-dir"], cwd=where).text.strip())
    blob = reader.read(head).files.get(POLICY_PATH)
    lines = policy_signers(next(reader.blobs([blob]))) if blob else []
    if not lines:
        raise UsageError(f"trust ack: no allowed signers in force on {args.branch}: give --allowed-signers FILE "
                         f"(the appliers' file) or list the keys in the policy's trust.allowed_signers")
    path = os.path.join(scratch, "kubedr-allowed-signers")
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def _ack(args: argparse.Namespace, where: str, scratch: str) -> int:
    if not args.commits:
        raise UsageError("trust ack: name the reviewed commit(s)")
    signer = config.signer(args.signing_key, required="trust ack (an acknowledgement counts only when signed)")
    assert signer is not None  # required: a usage error without one
    shas = _resolve(where, args.branch, args.commits)
    head = git.run(["rev-parse", f"refs/heads/{args.branch}"], cwd=where).text.strip()
    subject = f"acknowledge {len(shas)} reviewed commit{'s' if len(shas) > 1 else ''}: " + \
        ", ".join(s[:12] for s in shas)
    body = f"{args.message.strip()}\n\n" if args.message else ""
    message = f"{subject}\n\n{body}" + "".join(f"{signing.ACK_TRAILER}: {s}\n" for s in shas)
    env = {**os.environ, **signer.git_config()}  # git's identity when the operator set none
    env.setdefault("GIT_AUTHOR_NAME", "kubedr trust")
    env.setdefault("GIT_AUTHOR_EMAIL", "trust@kubedr.invalid")
    env.setdefault("GIT_COMMITTER_NAME", env["GIT_AUTHOR_NAME"])
    env.setdefault("GIT_COMMITTER_EMAIL", env["GIT_AUTHOR_EMAIL"])
    sha = git.run(["commit-tree", "-S", f"{head}^{{tree}}", "-p", head, "-F", "-"], cwd=where, stdin=message.encode(),
                  env=env).text.strip()
    signers = _signers_in_force(args, where, head, scratch)
    verdict = signing.verify([sha], signers, cwd=where)[sha]
    if not verdict.good:
        source = args.allowed_signers or f"the policy's trust.allowed_signers on {args.branch}"
        raise UsageError(f"trust ack: {args.signing_key} is not an allowed signer ({verdict.reason}; allowed signers: "
                         f"{source}): the appliers would ignore this acknowledgement; nothing pushed")
    if where == scratch:
        git.run(["push", "-q", args.repo, f"{sha}:refs/heads/{args.branch}"], cwd=where, remote=args.repo)
    else:
        git.run(["update-ref", f"refs/heads/{args.branch}", sha, head], cwd=where)
    print(f"{redact(args.repo)} ({args.branch}): {sha[:12]} acknowledges {', '.join(s[:12] for s in shas)}")
    return 0


def _verify(args: argparse.Namespace, where: str) -> int:
    if not args.allowed_signers:
        raise UsageError("trust verify: --allowed-signers is required")
    try:
        signing.check_allowed_signers(args.allowed_signers)
    except signing.SigningError as exc:
        raise UsageError(str(exc)) from exc
    shas = git.run(["rev-list", "--topo-order", "--reverse", f"refs/heads/{args.branch}"], cwd=where).text.split()
    verdicts = signing.verify(shas, args.allowed_signers, cwd=where)
    acked = {a for v in verdicts.values() if v.good for a in v.acknowledges}
    bad = [v for s in shas if not (v := verdicts[s]).good]
    for v in bad:
        state = "acknowledged" if v.sha in acked else "NOT acknowledged"
        print(f"{v.sha}  {v.reason}{f' ({v.signer})' if v.signer else ''}  {state}")
    print(f"{len(shas)} commits, {len(bad)} do not verify, {sum(v.sha not in acked for v in bad)} unacknowledged")
    return 1 if any(v.sha not in acked for v in bad) else 0


def _accept(args: argparse.Namespace) -> int:
    """A person accepts the branch head a secondary without the trust gate holds after a rollback or rewrite."""
    import getpass

    import urllib3

    from kubedr.apierrors import ApiError
    from kubedr.applier.history import accept
    from kubedr.applier.sources import derive, pick
    from kubedr.kube import api_client
    from kubedr.kubeapi import Cluster

    if len(args.commits) != 1:
        raise UsageError("trust accept: name the held commit (kubedr status shows it)")
    try:
        cluster = Cluster(api_client(args.kubeconfig, args.context))
    except Exception as exc:  # a missing or unreadable kubeconfig: one line
        raise UsageError(f"trust accept: kubeconfig: {' '.join(str(exc).split())}") from exc
    try:
        who = getpass.getuser()
    except (KeyError, OSError):  # no user name in a bare container
        who = "someone"
    try:
        source = args.source or (derive(args.repo, args.branch) if args.repo else None)
        held = accept(cluster, args.commits[0], f"{who} with kubedr trust accept", pick(cluster, source, write=True))
    except (ApiError, OSError, urllib3.exceptions.HTTPError) as exc:
        log.error("trust accept: the secondary: %s", " ".join(str(exc).split()))
        return 1
    print(f"accepted {held.what()}; the applier applies it at its next poll")
    return 0
