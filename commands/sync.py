"""`kubedr sync`: export once from one cluster into a new repo, then apply it once to another, in this process.

The repo is new on every run and its own (applied whole, never held as a rewrite), Secrets travel sealed to a
throwaway age key, and everything runs in-process: no child Python, so it works from any directory.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile

import pyrage

from kubedr import git
from kubedr.applier.cli import apply_options, engine_for, namespace_list, target_arguments
from kubedr.applier.round import loop
from kubedr.config import UsageError
from kubedr.exporter.cli import export
from kubedr.exporter.pipeline import ExportOptions

log = logging.getLogger("kubedr.sync")


SYNC_SOURCE = "sync"  # the source name of `kubedr sync` unless --source is given


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    """The two clusters, the namespaces, and the applier's options."""
    parser.add_argument("--from-kubeconfig", help="the cluster to export from")
    parser.add_argument("--from-context")
    parser.add_argument("--to-kubeconfig", help="the cluster to apply to")
    parser.add_argument("--to-context")
    parser.add_argument("--namespaces", help="namespaces to carry over (space or comma separated)")
    target_arguments(parser)
    parser.add_argument("--keep-repo", help="keep the temporary repo at this path")


def run(args: argparse.Namespace) -> int:
    """Export once into a temporary repo, then apply it once; the exporter's exit code when the export fails."""
    if not args.from_kubeconfig or not args.to_kubeconfig:
        raise UsageError("kubedr sync: --from-kubeconfig and --to-kubeconfig are required")
    namespaces = namespace_list(args.namespaces)
    if not namespaces:
        raise UsageError("kubedr sync: --namespaces is required (space or comma separated)")
    tmp = tempfile.mkdtemp(prefix="kubedr-sync-")
    try:
        repo = args.keep_repo or os.path.join(tmp, "repo.git")
        git.run(["init", "--bare", "-q", "-b", args.branch, repo])
        identity, recipient = throwaway_key(tmp)
        identity_files = [*(args.identity or []), identity]
        code = export(ExportOptions(repo=os.path.abspath(repo), branch=args.branch, workdir=os.path.join(tmp, "export"),
                                    kubeconfig=args.from_kubeconfig, context=args.from_context,
                                    scope={"namespaces": namespaces}, recipients=(recipient,), once=True))
        if code != 0:
            log.error("sync: export from %s failed (exit %d)", args.from_kubeconfig, code)
            return code
        # one name for every run: each sync's repo is new, the objects it applied are the last sync's
        named = argparse.Namespace(**{**vars(args), "source": getattr(args, "source", None) or SYNC_SOURCE})
        options = apply_options(named, repo, args.to_kubeconfig, args.to_context,
                                args.workdir or os.path.join(tmp, "work"), identity_files)
        options.settings.own_repo = True  # a new repo each run: applied whole, never held as a rewrite
        engine = engine_for(options)
        try:
            return loop(engine, 1.0, once=True)
        finally:
            engine.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def throwaway_key(tmp: str) -> tuple[str, str]:
    """A new age identity for this sync only, so Secrets travel sealed: its file (mode 0600) and its recipient."""
    ident = pyrage.x25519.Identity.generate()
    path = os.path.join(tmp, "sync-identity.txt")
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8") as fh:
        fh.write(f"{ident}\n")
    return path, str(ident.to_public())
