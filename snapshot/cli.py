"""`kubedr snapshot save | list | verify | prune | restore | post-restore`: flags, $KUBEDR_*, or the config's `snapshot:` section."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import write_to_textfile

from kubedr import metrics, shutdown
from kubedr.config import Bound, UsageError, check_bounds
from kubedr.durations import DurationError, parse_duration
from kubedr.snapshot import bundle, cutover, etcd, keys, manifest, preflight, restore, retention, save
from kubedr.snapshot.store import S3Options, Store, StoreError, open_store

log = logging.getLogger("kubedr.snapshot")

ACTIONS = {
    "save": "take, check, bundle, encrypt and store a snapshot",
    "list": "stored snapshots, newest first",
    "verify": "download, checksum, decrypt and check a snapshot without restoring it",
    "prune": "delete snapshots by retention (the newest is always kept)",
    "restore": "verify, check the aliases, print the plan, restore this node's etcd member and put its files back",
    "post-restore": "once the restored API answers: compare nodes, restart workloads, delete Pods of gone nodes",
}
ALL = tuple(ACTIONS)
STORED = ALL

# dest -> (flags, argparse keywords, actions that take it). Every option also sits on the `snapshot` parser
# so $KUBEDR_<DEST> and the config file's `snapshot:` section can set it (kubedr.config reads that parser).
OPTIONS: dict[str, tuple[tuple[str, ...], dict[str, Any], tuple[str, ...]]] = {
    "store": (("--store",), {"help": "directory, file:// URL or s3://bucket/prefix"}, STORED),
    "cluster": (("--cluster",), {"help": "cluster name: snapshots live under <store>/<cluster>/ (default "
                                 "kubernetes)"}, STORED),
    "endpoint_url": (("--endpoint-url",), {"help": "S3 endpoint (OCI, MinIO, Ceph, ...)"}, STORED),
    "region": (("--region",), {"help": "S3 region"}, STORED),
    "path_style": (("--path-style",), {"action": "store_true", "help": "S3 path-style addressing"}, STORED),
    "part_size_mb": (("--part-size-mb",), {"type": int, "help": "S3 multipart part size in MiB (default 16; "
                                           "memory is about 5 parts)"}, STORED),
    "endpoints": (("--endpoints",), {"help": "etcd client URLs, comma separated (default "
                                     "https://127.0.0.1:2379)"}, ("save",)),
    "cacert": (("--cacert",), {"help": "etcd CA (default <root>/etc/kubernetes/pki/etcd/ca.crt)"}, ("save",)),
    "cert": (("--cert",), {"help": "etcd client certificate (default kubeadm's healthcheck-client.crt)"},
             ("save",)),
    "key": (("--key",), {"help": "etcd client key"}, ("save",)),
    "root": (("--root",), {"help": "node filesystem root holding etc/kubernetes (default /)"}, ("save",)),
    "node": (("--node",), {"help": "this node's name: recorded at save, whose files restore places (default "
                                   "$NODE_NAME, then the hostname)"}, ("save", "restore")),
    "set_id": (("--set-id",), {"help": "snapshot id shared by the jobs of every control-plane node (one set)"},
               ("save",)),
    "set_window": (("--set-window",), {"help": "set id = the start time floored to this (e.g. 30m): jobs that one "
                                       "schedule starts on every control-plane node share it"}, ("save",)),
    "every": (("--every",), {"help": "keep running (a DaemonSet on the control-plane nodes): save at every multiple "
                             "of this period (e.g. 30m), the set id being that time, so every node's save of one "
                             "period shares it; a node that already stored its part skips it"}, ("save",)),
    "etcd_from": (("--etcd-from",), {"help": "who takes the set's etcd snapshot: leader (default in a set), this, "
                                     "or a node name"}, ("save",)),
    "expect_nodes": (("--expect-nodes",), {"help": "control-plane nodes of the set, comma separated (default the "
                                           "control-plane Nodes, else the etcd members)"}, ("save",)),
    "recipient": (("--recipient", "-r"), {"action": "append", "help": "age recipient (age1... or ssh-...); "
                                          "repeatable"}, ("save",)),
    "recipients_file": (("--recipients-file", "-R"), {"action": "append", "help": "file of age recipients"},
                        ("save",)),
    "compression": (("--compression",), {"choices": ("zstd", "gzip", "none"),
                                         "help": "bundle compression (default zstd when installed, else none)"},
                    ("save",)),
    "kubeconfig": (("--kubeconfig",), {"help": "kubeconfig for kubeadm-config and the node list (default "
                                       "$KUBECONFIG, then <root>/etc/kubernetes/admin.conf, then in-cluster); "
                                       "post-restore: the restored cluster"},
                   ("save", "post-restore")),
    "no_cluster_info": (("--no-cluster-info",), {"action": "store_true",
                                                 "help": "skip kubeadm-config and the node list"}, ("save",)),
    "metrics_file": (("--metrics-file",), {"help": "write the snapshot metrics here (node-exporter textfile)"},
                     ("save",)),
    "keep_last": (("--keep-last",), {"type": int, "help": "retention: keep the newest N"}, ("save", "prune")),
    "max_age": (("--max-age",), {"help": "retention: keep those younger than this (e.g. 7d, 36h)"},
                ("save", "prune")),
    "output": (("--output", "-o"), {"choices": ("table", "json"), "help": "list output (default table)"},
               ("list",)),
    "id": (("--id",), {"help": "snapshot id (default latest)"}, ("verify", "restore", "post-restore")),
    "identity": (("--identity", "-i"), {"action": "append", "help": "age identity file; repeatable"},
                 ("verify", "restore")),
    "work_dir": (("--work-dir",), {"help": "scratch space for the snapshot while it is checked (default $TMPDIR)"},
                 ("save", "verify", "restore")),
    "data_dir": (("--data-dir",), {"help": "new etcd data dir to restore into (must not exist or be empty; with "
                                   "--cutover the default is etcd's current one, kept as <dir>.kubedr-<time>)"},
                 ("restore",)),
    "name": (("--name",), {"help": "etcd member name (default from the manifest)"}, ("restore",)),
    "peer_urls": (("--peer-urls",), {"help": "member peer URLs, comma separated (default from the manifest)"},
                  ("restore",)),
    "initial_cluster": (("--initial-cluster",), {"help": "every member, name=peerURL,... (default the recorded "
                                                 "member list)"}, ("restore",)),
    "initial_cluster_token": (("--initial-cluster-token",), {"help": "the same on every member (default "
                                                             "etcd-cluster)"}, ("restore",)),
    "kubeadm_config": (("--kubeadm-config",), {"help": "this node's kubeadm config (ClusterConfiguration) for the "
                                               "preflight (default: kubeadm-config through <target-root>'s "
                                               "admin.conf, when it answers)"}, ("restore",)),
    "force": (("--force",), {"action": "store_true", "help": "restore: past preflight refusals (incomplete set, "
                             "aliases); post-restore: restart again what was restarted for this snapshot"},
              ("restore", "post-restore")),
    "cutover": (("--cutover",), {"action": "store_true", "help": "on a kubeadm node: stop etcd and kube-apiserver, "
                                 "swap in the restored member, start them, wait for etcd health; undone on failure"},
                ("restore",)),
    "cutover_timeout": (("--cutover-timeout",), {"type": float, "help": "seconds to wait for the control plane to "
                                                 "stop and for etcd health (default 300)"}, ("restore",)),
    "namespaces": (("--namespaces",), {"help": "post-restore: only these namespaces, comma separated (default all)"},
                   ("post-restore",)),
    "bump_revision": (("--bump-revision",), {"type": int, "help": "revision bump, etcdutl 3.5+ only (default "
                                             "1000000000; 0 disables)"}, ("restore",)),
    "target_root": (("--target-root",), {"help": "put PKI, confs, manifests and kubelet flags back under this "
                                         "root (e.g. /); omitted: only etcd is restored"}, ("restore",)),
    "dry_run": (("--dry-run",), {"action": "store_true", "help": "check everything and print the plan only"},
                ("prune", "restore")),
}


# numeric options and the values they may take (durations in seconds)
LIMITS: dict[str, Bound] = {"part_size_mb": Bound(least=5),  # S3's smallest multipart part is 5 MiB
                            "keep_last": Bound(least=1), "cutover_timeout": Bound(above=0),
                            "bump_revision": Bound(least=0), "every": Bound(least=1)}
RETRY = 60.0  # --every: seconds before a failed save of a period is tried again (within that period)


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    """The `snapshot` parser: every option (for config and env), and one sub-parser per action."""
    for dest, (flags, kw, _) in OPTIONS.items():
        parser.add_argument(*flags, dest=dest, default=None if kw.get("action") != "store_true" else False,
                            **{k: v for k, v in kw.items()})
    sub = parser.add_subparsers(dest="snapshot_action", metavar="ACTION")
    for action, help_text in ACTIONS.items():
        p = sub.add_parser(action, help=help_text, description=help_text)
        for dest, (flags, kw, actions) in OPTIONS.items():
            if action in actions:
                p.add_argument(*flags, dest=dest, default=argparse.SUPPRESS, **kw)


def _store(args: argparse.Namespace) -> Store:
    if not args.store:
        raise UsageError("snapshot: --store is required (a directory, file:// or s3://bucket/prefix)")
    opts = S3Options(endpoint_url=args.endpoint_url, region=args.region, path_style=bool(args.path_style),
                     part_size=(args.part_size_mb or 16) << 20)
    try:
        return open_store(args.store, opts)
    except StoreError as exc:
        raise UsageError(str(exc)) from exc


def _client(args: argparse.Namespace, root: Path) -> etcd.Client:
    endpoints = tuple(e.strip() for e in (args.endpoints or "https://127.0.0.1:2379").split(",") if e.strip())
    cacert, cert, key = args.cacert, args.cert, args.key
    if any(e.startswith("https://") for e in endpoints) and not (cacert and cert and key):
        found = etcd.kubeadm_tls(root / "etc/kubernetes/pki")
        if not found:
            raise UsageError(f"etcd client TLS: give --cacert/--cert/--key, none found under "
                             f"{root / 'etc/kubernetes/pki/etcd'}")
        cacert, cert, key = cacert or found[0], cert or found[1], key or found[2]
    for flag, value in (("--cacert", cacert), ("--cert", cert), ("--key", key)):
        if value and not Path(value).is_file():
            raise UsageError(f"{flag} {value}: no such file")
    return etcd.Client(endpoints, cacert, cert, key)


def _recipient_texts(args: argparse.Namespace) -> list[str]:
    texts = list(args.recipient or [])
    for name in args.recipients_file or []:
        texts += [line.strip() for line in Path(name).read_text().splitlines()
                  if line.strip() and not line.lstrip().startswith("#")]
    return texts


def _prune(store: Store, cluster: str, keep_last: int | None, max_age: str | None, dry_run: bool) -> int:
    if keep_last is not None and keep_last < 1:
        raise UsageError("--keep-last must be at least 1")
    age = retention.parse_duration(max_age, "--max-age") if max_age else None
    if keep_last is None and age is None:
        raise UsageError("snapshot prune: give --keep-last N and/or --max-age D")
    now = datetime.now(UTC)
    doomed = retention.select(manifest.list_all(store, cluster), now, keep_last, age)
    verb = "would delete" if dry_run else "delete"
    for m in doomed:
        print(f"{verb} {m.cluster}/{m.id}")
        if not dry_run:
            keys_ = store.list(m.prefix)
            # the manifest goes first, so a half-deleted snapshot is never listed
            store.delete(sorted(keys_, key=lambda k: not k.endswith(manifest.MANIFEST)))
    # saves that died before their manifest: unlisted, removed once surely not in progress any more
    for sid, keys_ in sorted(manifest.incomplete(store, cluster).items()):
        started = manifest.id_time(sid)
        if started is not None and now - started > retention.INCOMPLETE_AFTER:
            print(f"{verb} incomplete {cluster}/{sid}")
            if not dry_run:
                store.delete(keys_)
    abort = getattr(store, "abort_uploads", None)  # S3: parts of uploads that were killed
    if abort is not None and not dry_run:
        for key in abort(cluster, retention.INCOMPLETE_AFTER.total_seconds()):
            print(f"abort incomplete upload {key}")
    return len(doomed)


def _run_save(args: argparse.Namespace, store: Store, cluster: str, stop: threading.Event | None = None) -> int:
    if args.metrics_file and not args.metrics_file.endswith(".prom"):
        raise UsageError(f"--metrics-file {args.metrics_file}: node-exporter reads only files ending in .prom")
    if not args.metrics_file:
        return _save(args, store, cluster, stop)
    metrics.resume_textfile(args.metrics_file)
    try:
        return _save(args, store, cluster, stop)
    except BaseException:
        metrics.SNAPSHOT_FAILED.set(time.time())
        raise
    finally:
        try:
            write_to_textfile(args.metrics_file, metrics.SNAPSHOT_REGISTRY)
        except OSError as exc:  # the snapshot itself is stored; the age alert will say the figures are stale
            log.error("metrics file %s: %s", args.metrics_file, exc)


def _run_every(args: argparse.Namespace, store: Store, cluster: str, stop: threading.Event) -> int:
    """Save at every multiple of --every until SIGTERM; the period's start is the set id every node shares."""
    if args.set_id or args.set_window:
        raise UsageError("--every names each set by its period: it does not go with --set-id or --set-window")
    period = parse_duration(args.every, "--every")
    check_bounds({"every": period}, LIMITS)
    slot = time.time() // period * period  # the period running now: a node that started late joins its set
    while not stop.is_set():
        sid = manifest.new_id(datetime.fromtimestamp(slot, UTC))
        try:
            _run_save(argparse.Namespace(**{**vars(args), "set_id": sid}), store, cluster, stop)
            slot = max(slot + period, time.time() // period * period)
            wake = slot
        except FAILURES as exc:
            log.error("snapshot save %s: %s", sid, exc)
            wake = time.time() + RETRY  # this period's set again, while the period lasts
            if wake >= slot + period:
                slot = wake = max(slot + period, time.time() // period * period)
        stop.wait(max(0.0, wake - time.time()))
    return 0


def _save(args: argparse.Namespace, store: Store, cluster: str, stop: threading.Event | None = None) -> int:
    root = Path(args.root or "/")
    recipients = keys.load_recipients(args.recipient, args.recipients_file)
    req = save.SaveRequest(store=store, cluster=cluster, client=_client(args, root), recipients=recipients,
                           recipient_texts=_recipient_texts(args), root=root,
                           compression=args.compression or bundle.default_compression(), work_dir=args.work_dir,
                           kubeconfig=args.kubeconfig, cluster_info=not args.no_cluster_info, stop=stop)
    req.node = _node(args)
    req.set_id, req.etcd_from = _set_id(args), args.etcd_from or ("leader" if args.set_id or args.set_window
                                                                   else "this")
    req.expect_nodes = _csv(args.expect_nodes)
    if args.keep_last is not None or args.max_age:  # check retention flags before spending a snapshot on them
        if args.max_age:
            retention.parse_duration(args.max_age, "--max-age")
        if args.keep_last is not None and args.keep_last < 1:
            raise UsageError("--keep-last must be at least 1")
    done = save.save(req)
    m = done.manifest
    if m is None:
        part = done.part
        assert part is not None
        print(f"saved the files of node {part.node} in set {part.cluster}/{part.id}: {len(part.files)} files, "
              f"stored {part.bundle.size} bytes in {done.seconds:.2f}s (the etcd snapshot is another node's)")
        return 0
    mbps = m.snapshot.size / 1e6 / done.bundle_seconds if done.bundle_seconds else 0.0
    print(f"saved {m.cluster}/{m.id}: revision {m.snapshot.revision}, {m.snapshot.total_keys} keys, "
          f"snapshot {m.snapshot.size} bytes, stored {m.bundle.size} bytes in {done.seconds:.2f}s "
          f"(bundle {mbps:.0f} MB/s)")
    metrics.SNAPSHOT_LAST.set(datetime.fromisoformat(m.finished).timestamp())
    metrics.SNAPSHOT_BYTES.set(m.bundle.size)
    metrics.SNAPSHOT_SECONDS.set(done.seconds)
    if args.keep_last is not None or args.max_age:
        _prune(store, cluster, args.keep_last, args.max_age, False)
    return 0


def _node(args: argparse.Namespace) -> str:
    return args.node or os.environ.get("NODE_NAME") or socket.gethostname()


def _csv(text: str | None) -> list[str]:
    return [x.strip() for x in (text or "").split(",") if x.strip()]


def _set_id(args: argparse.Namespace) -> str | None:
    """--set-id as given, or the start time floored to --set-window; None: a one-node snapshot."""
    if args.set_id:
        if not manifest.id_time(args.set_id) and not manifest.CLUSTER_NAME.match(args.set_id):
            raise UsageError(f"--set-id {args.set_id!r}: use letters, digits, '.', '_' or '-'")
        return str(args.set_id)
    if not args.set_window:
        return None
    window = int(retention.parse_duration(args.set_window, "--set-window").total_seconds())
    if window < 1:
        raise UsageError(f"--set-window {args.set_window}: at least one second")
    now = int(datetime.now(UTC).timestamp())
    return manifest.new_id(datetime.fromtimestamp(now - now % window, UTC))


def _age(created: datetime, now: datetime) -> str:
    secs = int((now - created).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            return f"{secs // size}{unit}"
    return f"{secs}s"


def _run_list(args: argparse.Namespace, store: Store, cluster: str) -> int:
    found = manifest.list_all(store, cluster)
    if args.output == "json":
        json.dump([{**json.loads(m.to_json()), "present": m.present, "missing": m.missing} for m in found],
                  sys.stdout, indent=2)
        print()
        return 0
    now = datetime.now(UTC)
    print(f"{'ID':<22} {'AGE':>5} {'SIZE':>12} {'REVISION':>10} {'KEYS':>8}  {'NODES':<6} ETCD FROM")
    for m in found:
        nodes = f"{len(set(m.present) & set(m.set_nodes))}/{len(m.set_nodes)}"
        missing = f"  missing: {', '.join(m.missing)}" if m.missing else ""
        print(f"{m.id:<22} {_age(m.created_at, now):>5} {m.bundle.size:>12} "
              f"{m.snapshot.revision:>10} {m.snapshot.total_keys:>8}  {nodes:<6} {m.node}{missing}")
    return 0


def _verified(args: argparse.Namespace, store: Store, cluster: str, staging: Path) -> manifest.Manifest:
    identities = keys.load_identities(args.identity)
    m = manifest.find(store, cluster, args.id)
    restore.fetch_and_verify(store, m, identities, staging)
    return m


def _run_verify(args: argparse.Namespace, store: Store, cluster: str) -> int:
    staging = Path(tempfile.mkdtemp(prefix="kubedr-verify-", dir=args.work_dir))
    try:
        m = _verified(args, store, cluster, staging)
        others = [n for n in m.present if n != m.node]
        for node in others:  # every other node's files of the set
            restore.fetch_part(store, m, node, keys.load_identities(args.identity), staging / "nodes" / node)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"ok {m.cluster}/{m.id}: sha256 {m.bundle.sha256[:16]}..., {len(m.files)} files, etcd revision "
          f"{m.snapshot.revision} hash {m.snapshot.hash}"
          + (f"; files of {', '.join(others)} checked" if others else "")
          + (f"; set is missing {', '.join(m.missing)}" if m.missing else ""))
    return 0


def _run_restore(args: argparse.Namespace, store: Store, cluster: str) -> int:
    target_root = Path(args.target_root).absolute() if args.target_root else None
    if args.cutover and target_root is None:
        raise UsageError("snapshot restore --cutover: --target-root is required (/ on the node)")
    cut_root = target_root if args.cutover else None  # cutting over into this root
    current: Path | None = None
    if cut_root is not None:
        current = cutover.current_data_dir(cut_root)
        data_dir = Path(args.data_dir).absolute() if args.data_dir else current
        if not data_dir.is_relative_to(cut_root):
            raise UsageError(f"--data-dir {data_dir}: must be under --target-root {target_root} with --cutover")
    elif not args.data_dir:
        raise UsageError("snapshot restore: --data-dir is required (a new etcd data dir), or use --cutover")
    else:
        data_dir = Path(args.data_dir).absolute()
    req = restore.RestoreRequest(
        data_dir=data_dir, target_root=target_root, name=args.name, node=_node(args),
        peer_urls=_csv(args.peer_urls) or None, initial_cluster=_initial_cluster(args.initial_cluster),
        token=args.initial_cluster_token or "etcd-cluster", force=bool(args.force),
        bump_revision=1_000_000_000 if args.bump_revision is None else args.bump_revision,
        reuse_data_dir=data_dir == current)
    identities = keys.load_identities(args.identity)
    m = manifest.find(store, cluster, args.id)
    req.recorded_member = restore.recorded_member(store, m, req.node)
    if cut_root is not None and (done := cutover.finished(cut_root, m.id)):
        print(done)
        return 0
    checks = restore.check(m, req, preflight.target_cluster_config(args.kubeadm_config, target_root))
    staging = Path(tempfile.mkdtemp(prefix="kubedr-restore-", dir=args.work_dir))
    try:
        restore.fetch_and_verify(store, m, identities, staging)
        files, files_dir = None, None
        owner = restore.files_node(m, req.node)
        if target_root is not None and owner is not None and owner != m.node:
            part = restore.fetch_part(store, m, owner, identities, staging / "node")
            files, files_dir = part.files, staging / "node"
        elif target_root is not None and owner is None:
            files = []  # forced past a set without this node's files: only etcd is restored
        plan = restore.make_plan(m, staging, req, files, files_dir, checks)
        print("\n".join(plan.lines()))
        if cut_root is not None and current is not None:
            print(f"  then cut over: manifests aside, wait for etcd and kube-apiserver to stop, keep {current} "
                  f"as {current.name}.kubedr-<time>, place the member and files, point etcd.yaml at {data_dir}, "
                  "start, wait for etcd health")
        if args.dry_run:
            print("dry run: nothing changed")
            return 0
        if cut_root is not None:
            done = cutover.Cutover(plan, cut_root, args.cutover_timeout or 300.0).run()
            print(done)
            return 0
        restore.execute(plan)
        print(f"restored {m.cluster}/{m.id} member {plan.name} into {plan.data_dir}"
              + (f"; {len(plan.placements)} files of node {owner} placed under {target_root}"
                 if plan.placements else ""))
        return 0
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _initial_cluster(text: str | None) -> list[tuple[str, str]] | None:
    """name=url,name=url as etcd takes it."""
    if not text:
        return None
    out = []
    for item in _csv(text):
        name, sep, url = item.partition("=")
        if not sep or not name or "://" not in url:
            raise UsageError(f"--initial-cluster: {item!r} is not name=peerURL")
        out.append((name, url))
    return out


def _run_post_restore(args: argparse.Namespace, store: Store, cluster: str) -> int:
    from kubernetes.config import ConfigException
    from urllib3.exceptions import HTTPError

    from kubedr.apierrors import ApiError
    from kubedr.kube import api_client
    from kubedr.kubeapi import Cluster
    from kubedr.snapshot import postrestore

    m = manifest.find(store, cluster, args.id)
    recorded = m.nodes or sorted({*m.facts.control_plane_nodes, *m.facts.worker_nodes})
    try:
        summary = postrestore.run(Cluster(api_client(args.kubeconfig)), recorded, m.id, _csv(args.namespaces) or None,
                                  bool(args.force))
    except (ApiError, ConfigException, HTTPError) as exc:
        text = str(exc).strip().splitlines()
        log.error("snapshot post-restore: the API (%s) did not answer: %s", args.kubeconfig or "in-cluster",
                  text[0][:200] if text else type(exc).__name__)
        return 1
    print("\n".join(summary.lines()))
    return 1 if summary.failed else 0


def _peak_rss() -> str:
    """VmHWM: unlike ru_maxrss it is not inherited from the parent across fork and exec."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            kb = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
        return f"{kb / 1024:.0f} MiB"
    except (OSError, StopIteration, ValueError):
        return "unknown"


FAILURES = (StoreError, etcd.EtcdError, bundle.BundleError, restore.VerifyError, preflight.PreflightError,
            cutover.CutoverError)  # one line each, exit 1
RUNNERS = {"list": _run_list, "verify": _run_verify, "restore": _run_restore,
           "post-restore": _run_post_restore}


def run(args: argparse.Namespace) -> int:
    """Dispatch to the action; every failure is one line naming the snapshot, file or store."""
    try:
        return _run(args)
    except (keys.KeyFileError, DurationError, manifest.ClusterNameError) as exc:  # a bad setting: usage, exit 2
        raise UsageError(str(exc)) from exc


def _run(args: argparse.Namespace) -> int:
    action = getattr(args, "snapshot_action", None)
    if not action:
        raise UsageError(f"snapshot: choose an action: {', '.join(ACTIONS)}")
    check_bounds({name: getattr(args, name, None) for name in LIMITS if name != "every"}, LIMITS)
    store = _store(args)
    cluster = manifest.check_cluster(args.cluster or "kubernetes")
    try:
        if action == "prune":
            _prune(store, cluster, args.keep_last, args.max_age, bool(args.dry_run))
            return 0
        if action == "save":
            stop = threading.Event()
            with shutdown.on_sigterm(stop):
                return _run_every(args, store, cluster, stop) if args.every else _run_save(args, store, cluster,
                                                                                            stop)
        return RUNNERS[action](args, store, cluster)
    except FAILURES as exc:
        log.error("snapshot %s: %s", action, exc)
        return 1
    finally:
        log.debug("peak RSS of kubedr (this process, children not counted): %s", _peak_rss())
