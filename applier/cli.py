"""`kubedr apply | diff | switchover | images`: flags in, one Engine (or one switchover) out."""

from __future__ import annotations

import argparse
import logging
import re
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kubedr import leader, webhook
from kubedr.config import Bound, UsageError, check_bounds
from kubedr.durations import parse_duration

if TYPE_CHECKING:
    from kubedr.applier.policy import Settings
    from kubedr.applier.round import Engine
    from kubedr.applier.sources import Records
    from kubedr.applier.takeover import Wait
    from kubedr.kubeapi import Cluster
    from kubedr.sealing import Identity

log = logging.getLogger("kubedr.applier")
POLL = "1s"  # how often the remote is polled
POLL_WITH_WEBHOOK = "60s"  # ... when the Git host announces pushes: a lost webhook is applied within a minute


def target_arguments(p: argparse.ArgumentParser) -> None:
    """The branch, the mirror and how to apply it: the options of every command that runs the applier's Engine."""
    source_arguments(p)
    apply_arguments(p)


def source_arguments(p: argparse.ArgumentParser) -> None:
    """--branch and --workdir: which branch, and where a remote repo is mirrored."""
    p.add_argument("--branch", default="main", help="branch to follow (default main)")
    p.add_argument("--workdir", help="where a remote repo is mirrored (default ~/.cache/kubedr/applier/<digest of repo and branch>)")


def apply_arguments(p: argparse.ArgumentParser) -> None:
    """How the Engine applies: identities, mode, maps, prune, recreate, drift, concurrency, trust."""
    p.add_argument("--identity", action="append", metavar="FILE", help="age identity file to unseal Secrets")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--standby", dest="mode", action="store_const", const="standby",
                   help="record standby mode now (undoes a switchover); by default the mode recorded on "
                        "the secondary is followed, standby when none is")
    g.add_argument("--active", dest="mode", action="store_const", const="active",
                   help="record active mode now: workloads at the primary's replicas")
    p.add_argument("--standby-replicas", type=int, metavar="N", help="replicas in standby (default 0)")
    p.add_argument("--namespace-standby-replicas", action="append", metavar="NS=N",
                   help="per-namespace standby replicas")
    p.add_argument("--namespace-map", action="append", metavar="A=B", help="apply namespace A as B")
    p.add_argument("--image-map", action="append", metavar="OLD=NEW", help="swap an image registry prefix")
    p.add_argument("--storage-class-map", action="append", metavar="A=B", help="use storage class B for A")
    prune = p.add_mutually_exclusive_group()
    prune.add_argument("--prune", action="store_true", default=None,
                       help="delete what kubedr applied and left the repo (default: the repo policy, else off)")
    prune.add_argument("--no-prune", dest="prune", action="store_false", default=None, help="never delete")
    p.add_argument("--force-prune", action="store_true", help="prune even past the safety threshold")
    recreate = p.add_mutually_exclusive_group()
    recreate.add_argument("--recreate", action="store_true", default=None,
                          help="delete and re-create an object whose immutable fields changed, as the primary did "
                               "(the default; never PVCs, PVs or Namespaces)")
    recreate.add_argument("--no-recreate", dest="recreate", action="store_false", default=None,
                          help="leave such an object failed, with the reason, for a person to recreate")
    p.add_argument("--prune-max-fraction", type=float, metavar="F",
                   help="refuse a prune of more than this share of the inventory (default 0.25)")
    p.add_argument("--prune-max-objects", type=int, metavar="N",
                   help="refuse a prune of more than this many objects (default 50)")
    heal = p.add_mutually_exclusive_group()
    heal.add_argument("--heal", action="store_true", default=None,
                      help="reapply (forced) objects whose kubedr-owned fields were changed on the secondary "
                           "(default: the repo policy, else on for namespaces in standby)")
    heal.add_argument("--no-heal", dest="heal", action="store_false", default=None,
                      help="report drift only")
    p.add_argument("--no-drift", dest="drift", action="store_false", default=None,
                   help="do not watch applied objects for drift")
    p.add_argument("--drift-interval", default=None, metavar="DURATION",
                   help="report lasting drift and scan for strays this often; also the longest wait between "
                        "heals of an object that keeps drifting (default 60s)")
    p.add_argument("--concurrency", type=int, default=16, help="parallel requests within a stage")
    p.add_argument("--no-validate", dest="validate", action="store_false",
                   help="skip kubernetes-validate schema checks")
    p.add_argument("--allowed-signers", metavar="FILE",
                   help="git allowed-signers file: apply only commits whose SSH signature verifies against it "
                        "(default: the trust section of the repo policy, else no check)")
    source_options(p)
    p.add_argument("--service-account", metavar="NAMESPACE/NAME",
                   help="apply the source's objects as this ServiceAccount (impersonation): it writes only where "
                        "the account's RBAC lets it (default: as the applier itself)")


def source_options(p: argparse.ArgumentParser) -> None:
    """--source of every command that acts on one source of a secondary."""
    p.add_argument("--source", metavar="NAME",
                   help="the source (repo and branch) on the secondary: its records there and the label on the "
                        "objects it applies (default: derived from the repo and branch)")


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    """Options of apply, diff, switchover and images."""
    if name == "switchover":
        parser.add_argument("--kubeconfig", help="kubeconfig of the secondary (in-cluster when absent)")
        parser.add_argument("--context")
        source_options(parser)
        parser.add_argument("--namespaces", help="only these namespaces (space or comma separated)")
        parser.add_argument("--plan", action="store_true",
                            help="print what would come up and the images it needs; change nothing")
        wait_arguments(parser)
        return
    if name == "images":
        _images_arguments(parser)
        return
    parser.add_argument("--kubeconfig", help="kubeconfig of the secondary (in-cluster when absent)")
    parser.add_argument("--context")
    parser.add_argument("--repo", help="config repo: URL, or a local path (a bare repo or a git-sync checkout)")
    when = parser.add_mutually_exclusive_group()
    when.add_argument("--revision", help="apply the tree of this sha or tag (restore)")
    when.add_argument("--at", help="apply the last commit at or before this time (restore)")
    target_arguments(parser)
    if name == "apply":
        parser.add_argument("--once", action="store_true", help="one round, then exit (1 if anything failed)")
        parser.add_argument("--interval", default=None,
                            help=f"how often to poll the remote (default {POLL}; {POLL_WITH_WEBHOOK} with "
                                 "--webhook-listen, where polling is the fallback)")
        parser.add_argument("--webhook-listen", metavar="[HOST]:PORT",
                            help=f"serve POST {webhook.PATH} for the Git host's push webhook (GitHub, GitLab, Gitea): "
                                 "a verified push to the branch is fetched at once")
        parser.add_argument("--webhook-secret-file", metavar="FILE",
                            help="the webhook's shared secret (needed with --webhook-listen)")
        parser.add_argument("--dry-run", action="store_true", help="send everything with dryRun=All")
        parser.add_argument("--metrics-listen", help="serve /metrics /healthz /readyz on host:port")
        parser.add_argument("--cluster-name", help="this cluster's name (its exporter's --cluster-name): while the "
                                                   "branch names it the writer, nothing is applied")
        leader.add_arguments(parser, "kubedr-applier")


def wait_arguments(p: argparse.ArgumentParser) -> None:
    """--wait/--no-wait and --timeout of switchover and promote."""
    wait = p.add_mutually_exclusive_group()
    wait.add_argument("--wait", dest="wait", action="store_true", default=True,
                      help="follow every workload brought up until it is Available, print the RTO (the default)")
    wait.add_argument("--no-wait", dest="wait", action="store_false", help="return once the workloads are requested")
    p.add_argument("--timeout", default="10m", metavar="DURATION",
                   help="with --wait: give up after this long, name what is not Available and why, exit 1 "
                        "(default 10m)")


def wait_options(args: argparse.Namespace) -> Wait | None:
    """How to wait (None with --no-wait); UsageError for a bad --timeout."""
    from kubedr.applier.takeover import Wait

    if not args.wait:
        return None
    try:
        return Wait(parse_duration(args.timeout, "--timeout"))
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def namespace_list(text: str | None) -> list[str]:
    """--namespaces: names separated by spaces or commas."""
    return [n for n in (text or "").replace(",", " ").split() if n]


def _identities(files: list[str] | None) -> list[Identity] | None:
    if not files:
        return None
    from kubedr import sealing
    out: list[Identity] = []
    for f in files:
        try:
            out.extend(sealing.load_identities(f))
        except Exception as exc:
            raise UsageError(f"--identity {f}: {' '.join(str(exc).split())}") from exc
    return out


@dataclass(frozen=True)
class ApplyOptions:
    """What `kubedr apply | diff` (or sync, promote, demote) was told, checked once: the Engine's settings and how
    to run it."""

    settings: Settings
    kubeconfig: str | None = None
    context: str | None = None
    workdir: str | None = None
    once: bool = False
    interval: float = 1.0
    drift_interval: float | None = None
    metrics_listen: str | None = None
    cluster_name: str | None = None
    election: leader.Options = leader.Options()
    webhook_listen: str | None = None
    webhook_secret: bytes | None = None


TIMES: dict[str, Bound] = {"interval": Bound(above=0), "drift_interval": Bound(above=0)}  # seconds
FLAGS = {"namespace_replicas": "--namespace-standby-replicas"}  # Settings fields spelled unlike their flag


def settings_from(args: argparse.Namespace, repo: str, identities: list[str] | None = None) -> Settings:
    """Settings for the Engine from parsed options (args is only read); UsageError for a bad map or a value
    outside its bound (policy.LIMITS)."""
    from kubedr.applier.decode import Maps, parse_map
    from kubedr.applier.policy import LIMITS, Settings
    from kubedr.applier.sources import check_name, derive

    try:
        maps = Maps(parse_map(args.namespace_map, "namespace-map"), parse_map(args.image_map, "image-map"),
                    parse_map(args.storage_class_map, "storage-class-map"))
        ns_replicas = {k: int(v) for k, v in
                       parse_map(args.namespace_standby_replicas, "namespace-standby-replicas").items()}
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    check_bounds({"prune_max_fraction": args.prune_max_fraction, "prune_max_objects": args.prune_max_objects,
                  "standby_replicas": args.standby_replicas, "namespace_replicas": ns_replicas,
                  "concurrency": args.concurrency}, LIMITS, FLAGS)
    prune = args.prune
    if (getattr(args, "revision", None) or getattr(args, "at", None)) and prune is None:
        prune = True  # a restore applies that tree exactly: it prunes back to it (guard still on)
    # what the operator set (flags, $KUBEDR_*, config file); the repo's policy file fills in the rest
    given = {"prune": prune, "prune_max_fraction": args.prune_max_fraction,
             "prune_max_objects": args.prune_max_objects, "standby_replicas": args.standby_replicas,
             "recreate": args.recreate, "heal": args.heal, "drift": args.drift,
             "namespace_replicas": args.namespace_standby_replicas, "maps.namespaces": args.namespace_map,
             "maps.images": args.image_map, "maps.storage_classes": args.storage_class_map}
    explicit = frozenset(k for k, v in given.items() if v is not None)
    if args.allowed_signers:
        from kubedr import signing
        try:
            signing.check_allowed_signers(args.allowed_signers)
        except signing.SigningError as exc:
            raise UsageError(f"--allowed-signers: {exc}") from exc
    source = check_name(args.source) if getattr(args, "source", None) else derive(repo, args.branch)
    account = getattr(args, "service_account", None)
    if account and not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-.a-z0-9]*[a-z0-9])?", account):
        raise UsageError(f"--service-account {account!r}: expected NAMESPACE/NAME")
    optional = {k: v for k, v in (("prune", prune), ("prune_max_fraction", args.prune_max_fraction),
                                  ("prune_max_objects", args.prune_max_objects),
                                  ("standby_replicas", args.standby_replicas),
                                  ("recreate", args.recreate), ("heal", args.heal),
                                  ("drift", args.drift)) if v is not None}
    return Settings(repo=repo, branch=args.branch, revision=getattr(args, "revision", None),
                    at=getattr(args, "at", None), force_prune=args.force_prune,
                    dry_run=getattr(args, "dry_run", False), concurrency=args.concurrency, maps=maps,
                    mode_override=args.mode, namespace_replicas=ns_replicas,
                    identities=_identities(args.identity if identities is None else identities),
                    validate=args.validate, explicit=explicit, allowed_signers=args.allowed_signers, source=source,
                    service_account=account, **optional)


def apply_options(args: argparse.Namespace, repo: str, kubeconfig: str | None = None, context: str | None = None,
                  workdir: str | None = None, identities: list[str] | None = None) -> ApplyOptions:
    """The one typed, validated ApplyOptions of a command line; UsageError (one line, naming the flag) if bad."""
    webhook_listen, secret_file = getattr(args, "webhook_listen", None), getattr(args, "webhook_secret_file", None)
    secret = _webhook_secret(webhook_listen, secret_file)
    try:
        interval = parse_duration(getattr(args, "interval", None) or (POLL_WITH_WEBHOOK if webhook_listen else POLL),
                                  "--interval")
        drift_text = getattr(args, "drift_interval", None)
        drift = parse_duration(drift_text, "--drift-interval") if drift_text else None
        elect = leader.options_from(args)
    except ValueError as exc:  # DurationError, leader.OptionsError
        raise UsageError(str(exc)) from exc
    check_bounds({"interval": interval, "drift_interval": drift}, TIMES)
    return ApplyOptions(settings_from(args, repo, identities),
                        kubeconfig=getattr(args, "kubeconfig", None) if kubeconfig is None else kubeconfig,
                        context=getattr(args, "context", None) if context is None else context,
                        workdir=workdir or getattr(args, "workdir", None), once=bool(getattr(args, "once", False)),
                        interval=interval, drift_interval=drift, metrics_listen=getattr(args, "metrics_listen", None),
                        cluster_name=getattr(args, "cluster_name", None), election=elect,
                        webhook_listen=webhook_listen, webhook_secret=secret)


def _webhook_secret(listen: str | None, secret_file: str | None) -> bytes | None:
    """The webhook secret, read now; UsageError for one option without the other (never an unverified webhook)."""
    if bool(listen) != bool(secret_file):
        raise UsageError("--webhook-listen and --webhook-secret-file go together: the secret verifies every call")
    return webhook.load_secret(secret_file) if secret_file else None


def engine_for(options: ApplyOptions, write: bool = True) -> Engine:
    """The Engine of these options: the repo as a Source, the secondary's API; UsageError for a repo that is not
    there (a local path that does not exist). write=False (diff): the records of a kubedr before sources are read
    where they are, never moved."""
    from kubedr.applier.fetch import FetchError, Source
    from kubedr.applier.round import Engine
    from kubedr.applier.sources import open_records
    from kubedr.kube import api_client
    from kubedr.kubeapi import Cluster

    settings = options.settings
    try:
        source = Source(settings.repo, settings.branch, options.workdir)
    except FetchError as exc:
        raise UsageError(str(exc)) from exc
    cluster = Cluster(api_client(options.kubeconfig, options.context, pool=max(16, settings.concurrency)))
    # a command that writes nothing reads the records of a kubedr before sources where they are
    return Engine(cluster, source, settings, None if write else open_records(cluster, settings.source, write=False))


def run(args: argparse.Namespace) -> int:
    """Dispatch on args.command."""
    if args.command == "switchover":
        return _switchover(args)
    if args.command == "images":
        return _images(args)
    if not args.repo:
        raise UsageError(f"kubedr {args.command}: --repo is required (URL or path of the config repo)")
    options = apply_options(args, args.repo)
    engine = engine_for(options, write=args.command != "diff")
    try:
        if args.command == "diff":
            return _diff(engine)
        return _apply(engine, options)
    finally:
        engine.close()


def _apply(engine: Engine, options: ApplyOptions) -> int:
    from kubedr import metrics
    from kubedr.applier.round import loop

    engine.cluster_name = options.cluster_name
    if options.metrics_listen:
        metrics.serve(options.metrics_listen, ready=leader.readiness(lambda: engine.caught_up))
    if options.settings.dry_run:
        _say_source(engine)
        return _dry_run(engine, options)
    from kubedr.applier import routing
    from kubedr.kube import api_client

    hooked = False
    if options.webhook_listen and options.webhook_secret and not options.once:
        webhook.serve(options.webhook_listen, webhook.Receiver(options.webhook_secret, engine.settings.branch,
                                                               engine.source.announce))
        routing.mark(engine.cluster, False)  # a spare until it leads (a crashed leader restarts in its pod)
        hooked = True
    _say_source(engine)  # once its ports are its own: a taken port is the one line a failed start says

    def work(stop: Any) -> int:
        if not hooked:
            return follow(stop)
        routing.mark(engine.cluster, True)  # the webhook Service now routes here
        try:
            return follow(stop)
        finally:
            routing.mark(engine.cluster, False)

    def follow(stop: Any) -> int:
        if options.once or not engine.settings.drift:
            return loop(engine, options.interval, options.once, stop)
        from kubedr.applier.drift import INTERVAL, Drift, DriftSettings

        engine.drift = Drift(engine, DriftSettings(interval=options.drift_interval or INTERVAL))
        engine.drift.start()
        try:
            return loop(engine, options.interval, options.once, stop)
        finally:
            engine.drift.stop()

    return leader.run_elected(options.election, lambda: api_client(options.kubeconfig, options.context), work)


def _say_source(engine: Engine) -> None:
    """Name the source at start (its name is derived when not given), in the log and on /metrics."""
    from kubedr import metrics
    from kubedr.applier.history import shown

    s = engine.settings
    log.info("source %s: %s (%s)%s", s.source, shown(s.repo), s.branch,
             f", applied as ServiceAccount {s.service_account}" if s.service_account else "")
    metrics.APPLY_SOURCE.labels(s.source, shown(s.repo), s.branch).set(1)


def _dry_run(engine: Engine, options: ApplyOptions) -> int:
    """One round with dryRun=All that records nothing; exit codes as --once: 1 on failures or when held."""
    from kubedr.applier.role import serving

    try:
        if serving(engine.cluster, options.cluster_name, engine.source, record=False, records=engine.records):
            print("nothing would be applied: this cluster writes the branch, or held the role and was not demoted")
            return 0
        report = engine.step()
    except Exception as exc:  # the cluster or the repo is unreachable: one line
        log.error("dry run failed: %s", " ".join(str(exc).split()))
        return 1
    if engine.held is not None:  # a rollback or rewrite: nothing is applied until a person acknowledges it
        print(engine.held.line())
        return 1
    held = engine.untrusted
    if report is None:
        print(f"held at {held.line()}" if held else "nothing to apply")
        return 1 if held else 0
    for path in report.would_apply:
        print(f"would apply {path}")
    for path in report.would_delete:
        print(f"would delete {path}")
    for line in report.recreated:
        print(line)
    for line in report.exempt:
        print(f"exempt from standby: {line}")
    for f in report.failures:
        print(f"would fail {f}")
    if held:
        print(f"then held at {held.line()}")
    return 1 if report.failures or held else 0


def _diff(engine: Engine) -> int:
    from kubedr.applier.diff import diff

    out, errors = diff(engine, prune=bool(engine.settings.prune))
    for chunk in out:
        sys.stdout.write(chunk)
    for e in errors:
        log.error("%s", e)
    return 2 if errors and not out else (1 if out else 0)


def _switchover(args: argparse.Namespace) -> int:
    import time

    from kubedr.applier.sources import pick
    from kubedr.applier.standby import read_mode, record_mode, switchover
    from kubedr.applier.takeover import serve
    from kubedr.kube import api_client
    from kubedr.kubeapi import Cluster

    started = getattr(args, "started", None) or time.monotonic()  # the command's start (kubedr.commands.cli)
    wait = wait_options(args)
    cluster = Cluster(api_client(args.kubeconfig, args.context))
    namespaces = namespace_list(args.namespaces)
    records = pick(cluster, args.source, write=not args.plan)
    if args.plan:
        return _switchover_plan(cluster, namespaces, records)
    mode = read_mode(cluster, records)
    if namespaces:
        mode.active_namespaces |= set(namespaces)
    else:
        mode.active = True
    record_mode(cluster, mode, "kubedr switchover" + (f" --namespaces {' '.join(namespaces)}" if namespaces else ""),
                records)
    done = switchover(cluster, records, namespaces or None)
    for f in done.failures:
        log.error("switchover: %s", f)
    print(f"switchover: {len(done.brought_up)} objects brought up ({mode.name}); {len(done.failures)} failed "
          f"(source {records.source})", flush=True)
    if wait is None:
        return 1 if done.failures else 0
    served = serve(cluster, "switchover", namespaces or None, done.brought_up, started, wait, records)
    return 1 if done.failures or served else 0


def _switchover_plan(cluster: Cluster, namespaces: list[str], records: Records) -> int:
    """What a switchover of the source would bring up, and the images those workloads pull (from its record)."""
    from kubedr.applier.standby import plan
    from kubedr.applier.status import STATUS_CONFIGMAP, images_of

    for line in plan(cluster, records, namespaces or None):
        print(f"would bring up {line}")
    images = images_of(records.get(cluster, STATUS_CONFIGMAP) or {})
    print(f"images needed ({len(images)}; check them with `kubedr images --check`):")
    for image, users in images.items():
        print(f"  {image}  ({', '.join(users)})")
    return 0


def _images_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repo", help="config repo: URL, or a local path")
    p.add_argument("--branch", default="main", help="branch (default main)")
    p.add_argument("--revision", help="a sha or tag instead of the branch head")
    p.add_argument("--image-map", action="append", metavar="OLD=NEW",
                   help="swap an image registry prefix, as the applier does (default: the repo policy's)")
    p.add_argument("--namespace-map", action="append", metavar="A=B", help="name objects as applied (A as B)")
    p.add_argument("--workdir", help="where a remote repo is mirrored (default ~/.cache/kubedr/applier/<digest of repo and branch>)")
    p.add_argument("--check", action="store_true",
                   help="ask each image's registry (HTTP API v2 manifest HEAD) whether it has it; exit 1 if not")
    p.add_argument("--auth-file", help="registry credentials, docker config.json format (auths)")
    p.add_argument("--kubeconfig", help="kubeconfig of the secondary, to read --pull-secret from")
    p.add_argument("--context")
    p.add_argument("--pull-secret", action="append", metavar="NS/NAME",
                   help="a kubernetes.io/dockerconfigjson Secret on the secondary whose credentials to use")
    p.add_argument("--ca-file", help="CA bundle that signs the registries' certificates")
    p.add_argument("--plain-http", action="append", metavar="HOST[:PORT]", help="a registry served over HTTP")
    p.add_argument("--output", "-o", choices=("table", "json"), default="table")


def _images(args: argparse.Namespace) -> int:
    """List (and with --check, look up) every image the repo's workloads reference."""
    import json

    from kubedr.applier.decode import Maps, parse_map
    from kubedr.applier.fetch import FetchError, Source
    from kubedr.applier.images import Index, Registries, parse_auths
    from kubedr.applier.policy import POLICY_PATH, PolicyError, parse

    if not args.repo:
        raise UsageError("kubedr images: --repo is required (URL or path of the config repo)")
    try:
        maps = Maps(parse_map(args.namespace_map, "namespace-map"), parse_map(args.image_map, "image-map"), {})
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    try:
        source = Source(args.repo, args.branch, args.workdir)
        target = source.resolve(args.revision) if args.revision else source.head()
        if target is None:
            raise UsageError(f"kubedr images: {args.branch} has no commits")
        policy_blob = source.file(target, POLICY_PATH)
        if policy_blob and not args.image_map:
            try:
                policy = parse(next(iter(source.read_blobs([policy_blob]))))
                maps = Maps(maps.namespaces, policy.get("maps.images") or {}, {})
            except PolicyError as exc:
                log.error("%s: %s (ignored)", POLICY_PATH, exc)
        images = Index().images(source, target, maps)
    except FetchError as exc:
        raise UsageError(str(exc)) from exc
    rows: list[dict[str, Any]] = [{"image": image, "objects": users, "state": "", "detail": ""}
                                  for image, users in images.items()]
    if args.check:
        auths: dict[str, tuple[str, str]] = {}
        if args.auth_file:
            try:
                with open(args.auth_file, encoding="utf-8") as fh:
                    auths.update(parse_auths(json.load(fh)))
            except (OSError, ValueError) as exc:
                raise UsageError(f"--auth-file {args.auth_file}: {exc}") from exc
        for name in args.pull_secret or []:
            auths.update(_pull_secret(args, name))
        registries = Registries(auths, args.ca_file, frozenset(args.plain_http or []))
        for row, check in zip(rows, registries.check_all([r["image"] for r in rows]), strict=True):
            row["state"], row["detail"] = check.state, check.detail
    if args.output == "json":
        print(json.dumps(rows, indent=2))
    else:
        _print_images(rows, target, args.check)
    return 1 if any(r["state"] in ("missing", "error") for r in rows) else 0


def _pull_secret(args: argparse.Namespace, name: str) -> dict[str, tuple[str, str]]:
    import base64
    import json

    from kubedr.apierrors import ApiError
    from kubedr.applier.images import parse_auths
    from kubedr.kube import api_client
    from kubedr.kubeapi import Cluster

    ns, _, secret = name.partition("/")
    if not ns or not secret:
        raise UsageError(f"--pull-secret {name}: expected NAMESPACE/NAME")
    try:
        obj = Cluster(api_client(args.kubeconfig, args.context)).request(
            "GET", f"/api/v1/namespaces/{ns}/secrets/{secret}")
        raw = (obj.get("data") or {}).get(".dockerconfigjson")
        if not raw:
            raise UsageError(f"--pull-secret {name}: not a kubernetes.io/dockerconfigjson Secret")
        return parse_auths(json.loads(base64.b64decode(raw)))
    except (ApiError, ValueError) as exc:
        raise UsageError(f"--pull-secret {name}: {exc}") from exc


def _print_images(rows: list[dict[str, Any]], target: str, checked: bool) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 200)
    table = Table(box=box.SIMPLE_HEAD, title=f"images at {target[:12]}", title_justify="left")
    for col in ("IMAGE", *(("STATE",) if checked else ()), "USED BY", *(("DETAIL",) if checked else ())):
        table.add_column(col, overflow="fold")
    for r in rows:
        cells = [r["image"], *((r["state"],) if checked else ()), ", ".join(r["objects"]),
                 *((r["detail"],) if checked else ())]
        table.add_row(*cells, style="red" if r["state"] in ("missing", "error") else None)
    console.print(table)
    if checked:
        missing = [r for r in rows if r["state"] != "present"]
        print(f"{len(rows) - len(missing)} of {len(rows)} images present" +
              (f"; missing or unknown: {', '.join(r['image'] for r in missing)}" if missing else ""))
