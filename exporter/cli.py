"""`kubedr export`: startup reconcile (one resync commit), then watch -> commit -> push until stopped."""

from __future__ import annotations

import argparse
import logging
import os
import threading
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubedr import config, contract, git, holds, leader, metrics, sanitize
from kubedr.apierrors import ApiError
from kubedr.config import UsageError
from kubedr.durations import parse_duration
from kubedr.exporter import coverage
from kubedr.exporter.events import Event
from kubedr.exporter.gitstore import GitStore, StorageFull, WorkdirError, default_workdir
from kubedr.exporter.observer import NETWORK_ERRORS, Observer, why
from kubedr.exporter.pipeline import FENCED, Exporter, ExportOptions, cluster_name, report_of
from kubedr.exporter.recorder import SECRET_KEY, SECRET_MODES
from kubedr.exporter.scope import ScopeError, effective, split_names
from kubedr.exporter.selection import Selection
from kubedr.kubeapi import Cluster, Unreachable

log = logging.getLogger("kubedr.exporter")
DIGEST_KEY_NAME = "kubedr-digest-key"  # in the clone's .git when no --digest-key-file is given



DURATIONS = ("batch_window", "push_backoff_max", "remote_check_interval", "role_check_interval")
LIMITS: dict[str, config.Bound] = {  # a zero interval would spin; a page size of 0 lists everything at once
    "batch_window": config.Bound(least=0), "push_backoff_max": config.Bound(above=0),
    "remote_check_interval": config.Bound(above=0), "role_check_interval": config.Bound(above=0),
    "page_size": config.Bound(least=1)}


def export_options(args: argparse.Namespace) -> ExportOptions:
    """The one typed, validated ExportOptions of a command line; UsageError (one line, naming the flag) if bad."""
    if not args.repo:
        raise UsageError("--repo is required (a path or URL of the Git remote)")
    if args.namespaces and args.all_namespaces:
        raise UsageError("give one of --namespaces a,b or --all-namespaces (or export.namespaces in the policy)")
    if args.exclude_namespaces and not args.all_namespaces:
        raise UsageError("--exclude-namespaces goes with --all-namespaces")
    repo = args.repo
    if "://" not in repo and ":" not in repo.split("/")[0] and os.path.exists(repo):
        repo = os.path.abspath(repo)
    try:
        durations = {name: parse_duration(getattr(args, name), "--" + name.replace("_", "-")) for name in DURATIONS}
        elect = leader.options_from(args)
    except ValueError as exc:  # DurationError, leader.OptionsError
        raise UsageError(str(exc)) from exc
    config.check_bounds({**durations, "page_size": args.page_size}, LIMITS)
    recipients = tuple(_recipients(args))
    if args.secrets == "plaintext" and recipients:
        raise UsageError("--secrets plaintext writes Secret values to Git in clear text: it does not go with "
                         "--recipient/--recipients-file (drop --secrets to seal them)")
    if args.secrets == "seal" and not recipients:
        raise UsageError("--secrets seal needs --recipient or --recipients-file")
    return ExportOptions(repo=repo, branch=args.branch, workdir=args.workdir, kubeconfig=args.kubeconfig,
                         context=args.context, cluster_name=args.cluster_name, scope=scope_flags(args),
                         page_size=args.page_size, secrets=args.secrets, recipients=recipients,
                         digest_key_file=args.digest_key_file, signing_key=args.signing_key,
                         metrics_listen=args.metrics_listen, once=bool(args.once), election=elect, **durations)


def add_arguments(name: str, p: argparse.ArgumentParser) -> None:
    """Flags of `kubedr export` (also settable in the config file section `export:` and $KUBEDR_*)."""
    p.add_argument("--kubeconfig", help="kubeconfig of the primary (in-cluster config when absent)")
    p.add_argument("--context", help="kubeconfig context")
    p.add_argument("--namespaces", help="comma-separated namespaces to export")
    p.add_argument("--all-namespaces", action="store_true", help="export every namespace")
    p.add_argument("--exclude-namespaces", help="with --all-namespaces: comma-separated namespaces to leave out")
    p.add_argument("--cluster-scoped-kinds", "--extra-kinds", dest="cluster_scoped_kinds",
                   help="extra cluster-scoped kinds to export, e.g. Node,APIService")
    p.add_argument("--label-selector", help="export only namespaced objects whose labels match, e.g. 'backup!=no'")
    p.add_argument("--exclude-kinds", help="kinds never exported, e.g. ConfigMap,Certificate.cert-manager.io")
    p.add_argument("--exclude-objects", help="objects never exported: namespace/Kind/name globs, e.g. "
                                             "'shop/ConfigMap/tmp-*,*/Secret/*-tls' (_cluster for cluster-scoped)")
    p.add_argument("--remote-check-interval", default="10s",
                   help="how often an idle exporter looks for commits others pushed (policy changes, hand edits)")
    p.add_argument("--repo", help="Git remote: a path, file://, git://, ssh or https URL")
    p.add_argument("--branch", default="main", help="branch to commit to (default main)")
    p.add_argument("--workdir", help="local clone, the durable buffer (default ~/.cache/kubedr/export/<digest of "
                                     "the repo, branch and cluster name>)")
    p.add_argument("--once", action="store_true", help="only the startup reconcile (one resync commit), then exit")
    p.add_argument("--explain", action="store_true",
                   help="print the coverage report (types watched or not and why, objects exported or skipped by "
                        "rule) without writing anything, then exit; --repo is not needed")
    p.add_argument("--batch-window", default="100ms", help="cap on how long one commit gathers changes")
    p.add_argument("--cluster-name", help="Source-Cluster trailer (default: the API server host)")
    p.add_argument("--recipient", action="append", help="age recipient (age1...) for sealing Secrets; repeatable")
    p.add_argument("--recipients-file", help="file with age recipients, one per line")
    p.add_argument("--digest-key-file", help="key for the keyed digest that keeps unchanged Secrets stable")
    p.add_argument("--secrets", choices=SECRET_MODES,
                   help="seal (default with a recipient), skip (default without), plaintext (tests only)")
    p.add_argument("--signing-key", help="SSH private key (ed25519, ecdsa, rsa) that signs every commit, as git "
                                         "does with gpg.format=ssh")
    p.add_argument("--metrics-listen", help="host:port for /metrics /healthz /readyz, e.g. :9090")
    p.add_argument("--push-backoff-max", default="30s", help="longest wait between push retries")
    p.add_argument("--page-size", type=int, default=500, help="objects per list page")
    p.add_argument("--role-check-interval", default="5s",
                   help="while fenced (another cluster is the writer), how often to read the role again")
    leader.add_arguments(p, "kubedr-exporter")


def scope_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The scope settings given as flags (or $KUBEDR_*, or the config file): these win over the policy."""
    given: dict[str, Any] = {
        "namespaces": [] if args.all_namespaces else split_names(args.namespaces) or None,
        "exclude_namespaces": split_names(args.exclude_namespaces) or None,
        "extra_kinds": split_names(args.cluster_scoped_kinds) or None,
        "label_selector": args.label_selector or None,
        "exclude_kinds": split_names(args.exclude_kinds) or None,
        "exclude_objects": split_names(args.exclude_objects) or None}
    flags = {k: v for k, v in given.items() if v is not None}
    try:
        effective(flags, {})
    except ScopeError as exc:
        raise UsageError(f"--{str(exc).replace('_', '-')}") from exc
    return flags


def _recipients(args: argparse.Namespace) -> list[str]:
    """--recipient (repeatable, comma-separated) and --recipients-file, read and checked by kubedr.sealing."""
    from kubedr import sealing

    try:
        return sealing.load_recipients(split_names(args.recipient), [args.recipients_file] if args.recipients_file else [])
    except sealing.SealingError as exc:
        raise UsageError(str(exc)) from exc


def _secret_mode(options: ExportOptions, private_dir: Callable[[], Path]) -> tuple[str, Any]:
    recipients = list(options.recipients)
    mode = options.secret_mode
    if mode == "plaintext":
        log.warning("!!! --secrets=plaintext: Secret values are written to Git IN CLEAR TEXT. Tests only. !!!")
        return mode, None
    if mode == "skip":
        log.info("Secrets are not exported: no --recipient given (add --recipient age1... to export them sealed)")
        return mode, None
    from kubedr import sealing

    # The format `kubedr seal/reseal` read (hex line); made on first start if missing. Without a file it lives
    # in the clone's .git, which survives restarts and is never pushed: losing it costs one re-encryption.
    key_file = options.digest_key_file or str(private_dir() / DIGEST_KEY_NAME)
    try:
        key = sealing.load_digest_key(key_file, create=True)
    except OSError as exc:
        raise UsageError(f"digest key {key_file}: {exc.strerror or exc}") from exc
    except sealing.SealingError as exc:
        raise UsageError(f"{exc}") from exc
    try:
        return mode, sealing.Sealer(recipients, key)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"cannot seal Secrets: {exc}") from exc


def explain(args: argparse.Namespace) -> int:
    """`kubedr export --explain`: discover and list like a startup reconcile, print the coverage report."""
    from kubedr.kube import api_client

    if bool(args.namespaces) == bool(args.all_namespaces):
        raise UsageError("give exactly one of --namespaces a,b or --all-namespaces")
    selection = Selection(None if args.all_namespaces else split_names(args.namespaces), split_names(args.exclude_namespaces),
                          split_names(args.cluster_scoped_kinds))
    skip = (args.secrets or ("seal" if _recipients(args) else "skip")) == "skip"
    observer = Observer(Cluster(api_client(args.kubeconfig, args.context)), selection, page_size=args.page_size,
                        skip_keys={SECRET_KEY} if skip else set())
    exported: dict[coverage.Key, set[str]] = defaultdict(set)
    skipped, orphans = coverage.Tally(), coverage.Tally()
    kinds: set[coverage.Key] = set()
    crds: dict[coverage.Key, dict[str, Any]] = {}  # (group, kind) of the custom resources -> their CRD

    def emit(event: Event) -> None:
        spec = (event.obj or {}).get("spec") or {}
        if event.rtype.kind == "CustomResourceDefinition" and isinstance(spec.get("names"), dict):
            crds[(str(spec.get("group")), str(spec["names"].get("kind")))] = event.obj or {}
        for obj, wanted in selection.process(event):
            ref = contract.ref_of(obj)
            key = (ref.group, ref.kind)
            rule = sanitize.skip_rule(obj, lambda group, kind: (group, kind) in kinds) if wanted else None
            if wanted and rule is None:
                exported[key].add(ref.path)
            else:
                exported[key].discard(ref.path)
            skipped.note(key, ref.path, rule.id if rule else None)
            orphans.note(key, ref.path, sanitize.controller_kind(obj) if wanted and rule is None else None)

    try:
        types = observer.discover()
    except (ApiError, *NETWORK_ERRORS) as exc:
        log.error("cannot read the API server's discovery: %s", why(exc))
        return 1
    kinds.update(t.key for t in types)
    for rtype in types:
        try:
            observer.list(rtype, emit)
        except (ApiError, *NETWORK_ERRORS) as exc:
            observer.list_failed[rtype] = why(exc)
    report = report_of(observer, set(types), {k: len(v) for k, v in exported.items()}, skipped.counts(),
                       orphans.counts())
    print("\n".join(report.lines()))
    print("\n".join(holds.report([k for k, paths in exported.items() if paths], {}, lambda g, k: crds.get((g, k))))
          + "\n  (a rule of the repo policy's standby: section wins over these; the applier logs them all at start)")
    return 0


def exporter_for(options: ExportOptions) -> Exporter:
    """The Exporter and what it works with: the clone (with its signer), the API, the Secrets' sealing."""
    from kubedr.kube import api_client

    api = Cluster(api_client(options.kubeconfig, options.context, pool=128))  # one connection per watch
    workdir = options.workdir or default_workdir(options.repo, options.branch, cluster_name(options, api))
    store = GitStore(Path(workdir), options.repo, options.branch)
    try:
        store.prepare()
    except WorkdirError as exc:
        raise UsageError(f"--workdir {exc}") from None
    secrets, sealer = _secret_mode(options, store.prepare)
    store.use_signer(config.signer(options.signing_key))
    return Exporter(options, store, api, secrets, sealer)


def run(args: argparse.Namespace) -> int:
    """Entry point of `kubedr export` (with --leader-elect: only while holding the Lease)."""
    if args.explain:
        return explain(args)
    return export(export_options(args))


def export(options: ExportOptions) -> int:
    """Export as the options say (once, or until stopped); a remote, clone or API server that fails is one line,
    exit 1, and FENCED (3) when --once finds another cluster the writer."""
    from kubedr.kube import api_client

    try:
        current = [exporter_for(options)]
        if options.metrics_listen:
            metrics.serve(options.metrics_listen, live=lambda: current[0].healthy(),
                          ready=leader.readiness(lambda: current[0].readiness()))

        def work(stop: threading.Event) -> int:
            while True:  # fenced mid-run: a fresh pipeline waits for the role again
                code = current[0].work(stop, options.once)
                if code != FENCED or options.once or stop.is_set():
                    return code
                current[0] = exporter_for(options)

        return leader.run_elected(options.election, lambda: api_client(options.kubeconfig, options.context), work)
    except (git.GitError, StorageFull, WorkdirError) as exc:  # the remote, the clone, its disk
        log.error("%s", exc)
        return 1
    except (ApiError, Unreachable) as exc:  # the primary refused or did not answer (a daemon restarts on it)
        log.error("%s", why(exc))
        return 1
    except ScopeError as exc:  # the policy is unusable and no flag says which namespaces
        raise UsageError(str(exc)) from exc
