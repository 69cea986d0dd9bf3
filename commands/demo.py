"""`kubedr demo`: the first five minutes — DR rehearsed end to end on two emulated clusters, no cluster needed.

Two API emulators run in this process (primary and secondary). A small shop application is seeded on the
primary (Namespace, CRD + custom resource, ConfigMap, Secret, Deployment, Service); the real `kubedr export`
and `kubedr apply` run as child processes between them through a Git repo made by `kubedr init`. Then a few
changes and a delete are made on the primary, each timed until it is live on the secondary (replication
lag), the secondary is switched over, and the Git log, a sealed Secret, the secondary's state and
`kubedr status` are printed. Exit 1 (and the child logs) when the secondary did not converge in time.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubedr import git
from kubedr.commands import demo_failback as failback
from kubedr.config import UsageError

NAMESPACE = "shop"
STEPS = 10
FIELD_MANAGER = "kubectl"      # the seeded objects look as if a person applied them with kubectl
REPLICAS_ANNOTATION = "kubedr.io/primary-replicas"

# (apiVersion, kind) -> (URL prefix, plural, namespaced): just the kinds the demo touches.
PATHS: dict[tuple[str, str], tuple[str, str, bool]] = {
    ("v1", "Namespace"): ("/api/v1", "namespaces", False),
    ("v1", "ConfigMap"): ("/api/v1", "configmaps", True),
    ("v1", "Secret"): ("/api/v1", "secrets", True),
    ("v1", "Service"): ("/api/v1", "services", True),
    ("apps/v1", "Deployment"): ("/apis/apps/v1", "deployments", True),
    ("apps/v1", "ReplicaSet"): ("/apis/apps/v1", "replicasets", True),
    ("v1", "Pod"): ("/api/v1", "pods", True),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"):
        ("/apis/apiextensions.k8s.io/v1", "customresourcedefinitions", False),
    ("example.com/v1", "Widget"): ("/apis/example.com/v1", "widgets", True),
}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _meta(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": NAMESPACE, **extra}


WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {"group": "example.com", "scope": "Namespaced",
             "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
             "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                 "type": "object", "properties": {"spec": {"type": "object", "properties": {
                     "color": {"type": "string"}, "size": {"type": "integer"}}}}}}}]},
}

APP: list[dict[str, Any]] = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE, "labels": {"team": "shop"}}},
    WIDGET_CRD,
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta("settings", labels={"app": "web"}),
     "data": {"FEATURE_CHECKOUT_V2": "false", "CURRENCY": "EUR"}},
    {"apiVersion": "v1", "kind": "Secret", "metadata": _meta("db", labels={"app": "web"}), "type": "Opaque",
     "data": {"username": b64("shop"), "password": b64("correct horse battery staple")}},
    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta("web", labels={"app": "web"}),
     "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
              "template": {"metadata": {"labels": {"app": "web"}},
                           "spec": {"containers": [{
                               "name": "web", "image": "registry.example.com/shop/web:1.4.2",
                               "ports": [{"containerPort": 8080, "name": "http"}],
                               "envFrom": [{"configMapRef": {"name": "settings"}}],
                               "env": [{"name": "DB_PASSWORD", "valueFrom": {
                                   "secretKeyRef": {"name": "db", "key": "password"}}}]}]}}}},
    {"apiVersion": "v1", "kind": "Service", "metadata": _meta("web", labels={"app": "web"}),
     "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}},
    {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": _meta("blue"),
     "spec": {"color": "blue", "size": 3}},
]


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    """Flags of `kubedr demo`."""
    parser.add_argument("--workdir", help="keep the repo, kubeconfigs and logs here (default: a temp dir, removed)")
    parser.add_argument("--timeout", type=float, default=90.0,
                        help="seconds the clusters may take to converge, in all (default 90)")


def run(args: argparse.Namespace) -> int:
    """Rehearse DR end to end; 0 when the secondary converged on every step."""
    keep = bool(args.workdir)
    root = Path(args.workdir or tempfile.mkdtemp(prefix="kubedr-demo-")).resolve()
    if keep:
        root.mkdir(parents=True, exist_ok=True)
        if any(root.iterdir()):
            raise UsageError(f"demo: --workdir {root} is not empty")
    demo = Demo(root, deadline=time.monotonic() + args.timeout, keep=keep)
    try:
        return demo.run()
    finally:
        demo.close()
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


class NotConverged(Exception):
    """The secondary did not reach the expected state in time."""


@dataclass
class Change:
    """One change on the primary and the condition that shows it arrived on the secondary."""

    what: str
    act: Callable[[], None]
    arrived: Callable[[], bool]


class Demo:
    """The two clusters, the repo, the two kubedr processes, and the narrative."""

    def __init__(self, root: Path, deadline: float, keep: bool = False) -> None:
        self.root, self.deadline, self.keep = root, deadline, keep
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, Path] = {}
        self.emulators: list[Any] = []
        self.step_no = 0
        self.saved_env: dict[str, str | None] = {}

    # -- narrative --------------------------------------------------------------------------------------
    def say(self, text: str = "") -> None:
        print(text, flush=True)

    def step(self, text: str) -> None:
        self.step_no += 1
        self.say(f"[{self.step_no}/{STEPS}] {text}")

    def run(self) -> int:
        started = time.monotonic()
        self.say("kubedr demo: two emulated clusters, one Git repo, the real exporter and applier\n")
        try:
            self.isolate_git()
            self.start_clusters()
            self.make_repo()
            self.make_keys()
            self.seed()
            self.start_kubedr()
            lags = self.make_changes()
            self.say("\n== Metrics (Prometheus /metrics of the exporter and the applier) ==")
            self.print_metrics()
            self.say("")
            failback.promote_secondary(self)
            self.report(lags)
            self.say("")
            failback.round_trip(self)
        except NotConverged as exc:
            self.say(f"\ndemo FAILED: {exc}")
            self.dump_logs()
            return 1
        self.say(f"\ndemo OK: the secondary converged on every step ({time.monotonic() - started:.1f} s in all)")
        return 0

    def isolate_git(self) -> None:
        """The demo's own Git settings (identity, no signing prompts), whatever the user's ~/.gitconfig says."""
        gitconfig = self.root / "gitconfig"
        gitconfig.write_text("[user]\n\tname = kubedr demo\n\temail = demo@kubedr.invalid\n"
                             "[commit]\n\tgpgsign = false\n[init]\n\tdefaultBranch = main\n")
        self.saved_env = {k: os.environ.get(k) for k in ("GIT_CONFIG_GLOBAL", "GIT_CONFIG_NOSYSTEM")}
        os.environ["GIT_CONFIG_GLOBAL"] = str(gitconfig)
        os.environ["GIT_CONFIG_NOSYSTEM"] = "1"

    # -- 1. clusters ------------------------------------------------------------------------------------
    def start_clusters(self) -> None:
        from kubedr.emulator.server import Emulator
        from kubedr.kube import api_client
        from kubedr.kubeapi import Cluster

        logging.getLogger("kubedr.emulator").setLevel(logging.WARNING)   # the story is told on stdout
        self.kubeconfigs: dict[str, Path] = {}
        self.api: dict[str, Cluster] = {}
        for side in ("primary", "secondary"):
            emu = Emulator(listen="127.0.0.1:0").start()
            self.emulators.append(emu)
            self.kubeconfigs[side] = emu.write_kubeconfig(self.root / f"{side}.kubeconfig", context=side)
            self.api[side] = Cluster(api_client(str(self.kubeconfigs[side]), pool=4))
        self.step(f"two clusters: primary API {self.emulators[0].url}, secondary API {self.emulators[1].url}")

    # -- 2. repo ----------------------------------------------------------------------------------------
    def make_repo(self) -> None:
        from kubedr.commands import repo_init

        self.remote = self.root / "config.git"
        git.run(["init", "--quiet", "--bare", "-b", "main", str(self.remote)])
        repo_init.init_repo(str(self.remote), writer="primary")
        self.step(f"config repo {self.remote} made by `kubedr init --writer primary` (README for auditors, "
                  ".kubedr/policy.yaml, .gitattributes, .kubedr/writer.yaml: the primary may export, epoch 1)")

    # -- 3. keys ----------------------------------------------------------------------------------------
    def make_keys(self) -> None:
        import pyrage

        identity = pyrage.x25519.Identity.generate()
        self.identity_file = self.root / "secondary-identity.txt"
        self.identity_file.write_text(f"# the secondary's age identity: only the applier holds it\n{identity}\n")
        self.identity_file.chmod(0o600)
        self.recipient = str(identity.to_public())
        digest = self.root / "digest.key"  # both exporters share it: an unchanged Secret keeps its ciphertext
        digest.touch(mode=0o600)
        digest.write_text(secrets.token_hex(32) + "\n")
        self.step(f"age key for the secondary: the exporter gets only the public key {self.recipient[:16]}...")

    # -- 4. seed ----------------------------------------------------------------------------------------
    def seed(self) -> None:
        for obj in APP:
            self.apply("primary", obj)
        names = ", ".join(f"{o['kind']} {self.display(o)}" for o in APP)
        self.step(f"seeded the primary: {names}")

    # -- 5. exporter and applier ------------------------------------------------------------------------
    def start_kubedr(self) -> None:
        env = dict(os.environ)
        for var, value in (("GIT_AUTHOR_NAME", "kubedr exporter"), ("GIT_AUTHOR_EMAIL", "exporter@kubedr.invalid"),
                           ("GIT_COMMITTER_NAME", "kubedr exporter"),
                           ("GIT_COMMITTER_EMAIL", "exporter@kubedr.invalid")):
            env.setdefault(var, value)
        env = {k: v for k, v in env.items() if not k.startswith("KUBEDR_")}   # the demo's settings only
        began = time.monotonic()
        self.env = env
        self.metrics = {"exporter": f"127.0.0.1:{_free_port()}", "applier": f"127.0.0.1:{_free_port()}"}
        self.spawn("exporter", ["export", *failback.export_args(self, "primary"), "--batch-window", "50ms",
                                "--metrics-listen", self.metrics["exporter"]], env)
        self.standby_metrics = f"127.0.0.1:{_free_port()}"
        self.spawn("exporter-secondary", ["export", *failback.export_args(self, "secondary"), "--batch-window", "50ms",
                                          "--metrics-listen", self.standby_metrics], env)
        self.spawn("applier", ["apply", "--kubeconfig", str(self.kubeconfigs["secondary"]),
                               "--repo", str(self.remote), "--branch", "main", "--workdir",
                               str(self.root / "applier-clone"), "--identity", str(self.identity_file),
                               "--interval", "100ms", "--prune", "--standby",
                               "--metrics-listen", self.metrics["applier"]], env)
        self.step("exporter (primary -> Git) and applier (Git -> secondary, standby mode) started; the secondary's "
                  "own exporter runs too, fenced (the primary is the writer) until a promote")
        self.wait_for("the initial sync", self.initial_state_arrived)
        self.say(f"      secondary converged {time.monotonic() - began:.2f} s after start "
                 f"(initial sync of {len(APP)} objects, Secrets unsealed, Deployment held at 0 replicas)")
        children = self.owned_children()
        tree = git.run(["ls-tree", "-r", "--name-only", "main"], git_dir=self.remote).text.split()
        leaked = [f for f in tree if "/ReplicaSet.apps/" in f or "/Pod/" in f]
        if leaked:
            raise NotConverged(f"objects owned by a controller reached Git: {', '.join(leaked)}")
        if children:
            self.say(f"      owned children on the primary ({children}) stayed out of Git: "
                     "controllers recreate them on the secondary")

    def spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        log = self.root / f"{name}.log"
        self.logs[name] = log
        with open(log, "ab") as out:
            self.procs[name] = subprocess.Popen([sys.executable, "-m", "kubedr", "--log-level", "INFO", *argv],
                                                stdout=out, stderr=subprocess.STDOUT, env=env,
                                                stdin=subprocess.DEVNULL)

    def initial_state_arrived(self) -> bool:
        dep = self.get("secondary", "apps/v1", "Deployment", "web")
        secret = self.get("secondary", "v1", "Secret", "db")
        return bool(
            self.get("secondary", "v1", "Namespace", NAMESPACE)
            and self.get("secondary", "apiextensions.k8s.io/v1", "CustomResourceDefinition", "widgets.example.com")
            and self.get("secondary", "v1", "ConfigMap", "settings")
            and self.get("secondary", "v1", "Service", "web")
            and self.get("secondary", "example.com/v1", "Widget", "blue")
            and secret and secret.get("data", {}).get("password") == b64("correct horse battery staple")
            and dep and dep["spec"].get("replicas") == 0
            and (dep["metadata"].get("annotations") or {}).get(REPLICAS_ANNOTATION) == "3")

    def owned_children(self) -> str:
        counts = []
        for kind, api_version in (("ReplicaSet", "apps/v1"), ("Pod", "v1")):
            prefix, plural, _ = PATHS[(api_version, kind)]
            items = self.api["primary"].request("GET", f"{prefix}/namespaces/{NAMESPACE}/{plural}").get("items")
            if items:
                counts.append(f"{len(items)} {kind}{'s' if len(items) > 1 else ''}")
        return ", ".join(counts)

    # -- 6. changes -------------------------------------------------------------------------------------
    def make_changes(self) -> list[tuple[str, float]]:
        def data_of(kind: str, name: str, key: str) -> str | None:
            obj = self.get("secondary", "v1", kind, name)
            value: str | None = (obj or {}).get("data", {}).get(key)
            return value

        def annotation(name: str) -> str | None:
            obj = self.get("secondary", "apps/v1", "Deployment", name) or {}
            return (obj.get("metadata", {}).get("annotations") or {}).get(REPLICAS_ANNOTATION)

        changes = [
            Change("update ConfigMap shop/settings (FEATURE_CHECKOUT_V2=true)",
                   lambda: self.patch("primary", "v1", "ConfigMap", "settings", {"data": {"FEATURE_CHECKOUT_V2": "true"}}),
                   lambda: data_of("ConfigMap", "settings", "FEATURE_CHECKOUT_V2") == "true"),
            Change("scale Deployment shop/web 3 -> 5",
                   lambda: self.patch("primary", "apps/v1", "Deployment", "web", {"spec": {"replicas": 5}}),
                   lambda: annotation("web") == "5"),
            Change("rotate Secret shop/db password",
                   lambda: self.patch("primary", "v1", "Secret", "db", {"data": {"password": b64("n3w-pa55word")}}),
                   lambda: data_of("Secret", "db", "password") == b64("n3w-pa55word")),
            Change("create Widget shop/green",
                   lambda: self.apply("primary", {"apiVersion": "example.com/v1", "kind": "Widget",
                                                  "metadata": _meta("green"), "spec": {"color": "green", "size": 5}}),
                   lambda: self.get("secondary", "example.com/v1", "Widget", "green") is not None),
            Change("delete Widget shop/blue",
                   lambda: self.delete("primary", "example.com/v1", "Widget", "blue"),
                   lambda: self.get("secondary", "example.com/v1", "Widget", "blue") is None),
        ]
        self.step("changes on the primary, each timed until it is live on the secondary:")
        lags = []
        for change in changes:
            t0 = time.monotonic()
            change.act()
            self.wait_for(change.what, change.arrived)
            lag = time.monotonic() - t0
            lags.append((change.what, lag))
            self.say(f"      {change.what:<60} lag {lag * 1000:6.0f} ms")
        values = [lag for _, lag in lags]
        self.say(f"      replication lag: p50 {statistics.median(values) * 1000:.0f} ms, "
                 f"max {max(values) * 1000:.0f} ms over {len(values)} changes "
                 "(primary change -> applied on the secondary)")
        return lags

    # -- the report -------------------------------------------------------------------------------------
    def report(self, lags: list[tuple[str, float]]) -> None:
        self.say("\n== Git log of the config repo (newest first) ==")
        log = git.run(["log", "--format=%h %s", "main"], git_dir=self.remote).text
        self.say(log.rstrip())
        last = git.run(["log", "-1", "--format=%B", "--all-match", "--grep", "Deployment", "--grep",
                        "^Source-Cluster: primary$", "main"], git_dir=self.remote, check=False).text.strip()
        if last:
            self.say("\n-- one commit in full (trailers: source cluster, resourceVersion, field managers) --")
            self.say(last)
        sealed = git.run(["show", f"main:{NAMESPACE}/Secret/db.yaml"], git_dir=self.remote, check=False).text
        if sealed:
            self.say(f"\n== A sealed Secret in the repo ({NAMESPACE}/Secret/db.yaml; no value in clear text) ==")
            self.say("\n".join(sealed.splitlines()[:16]) + ("\n..." if len(sealed.splitlines()) > 16 else ""))
        self.say("\n== Secondary cluster state ==")
        self.print_secondary()
        self.say("\n== kubedr status ==")
        self.print_status()
        if self.keep:
            self.say(f"\nkept in {self.root}: the repo, both kubeconfigs, the exporter and applier logs. Explore:")
            self.say(f"  git clone {self.remote} shop-config && git -C shop-config log -p -- "
                     f"{NAMESPACE}/Deployment.apps/web.yaml")
        else:
            self.say("\n(run `kubedr demo --workdir DIR` to keep the repo and logs and explore them)")

    def print_secondary(self) -> None:
        from rich import box
        from rich.console import Console
        from rich.table import Table

        table = Table(box=box.SIMPLE_HEAD)
        for col in ("KIND", "NAME", "STATE"):
            table.add_column(col, no_wrap=True)
        rows = [("apiextensions.k8s.io/v1", "CustomResourceDefinition", "widgets.example.com"),
                ("v1", "Namespace", NAMESPACE), ("v1", "ConfigMap", "settings"), ("v1", "Secret", "db"),
                ("apps/v1", "Deployment", "web"), ("v1", "Service", "web"),
                ("example.com/v1", "Widget", "blue"), ("example.com/v1", "Widget", "green")]
        for api_version, kind, name in rows:
            obj = self.get("secondary", api_version, kind, name)
            shown = name if not PATHS[(api_version, kind)][2] else f"{NAMESPACE}/{name}"
            table.add_row(kind, shown, describe(obj))
        Console(width=None if sys.stdout.isatty() else 120).print(table)

    def print_metrics(self) -> None:
        """A few figures from each process's /metrics, read with the Prometheus text parser."""
        import urllib.request

        from prometheus_client.parser import text_string_to_metric_families

        wanted = {
            "exporter": ("kubedr_exporter_commits", "kubedr_exporter_object_changes",
                         "kubedr_exporter_change_to_commit_seconds", "kubedr_exporter_change_to_push_seconds"),
            "applier": ("kubedr_applier_objects", "kubedr_applier_replication_lag_distribution_seconds",
                        "kubedr_applier_apply_failures"),
        }
        for name, listen in self.metrics.items():
            try:
                with urllib.request.urlopen(f"http://{listen}/metrics", timeout=5) as resp:
                    families = list(text_string_to_metric_families(resp.read().decode()))
            except OSError as exc:
                self.say(f"  {name}: /metrics unreachable ({exc})")
                continue
            for fam in families:
                if fam.name not in wanted[name]:
                    continue
                if fam.type == "histogram":
                    total = sum(x.value for x in fam.samples if x.name.endswith("_sum"))
                    count = sum(x.value for x in fam.samples if x.name.endswith("_count"))
                    mean = f", mean {total / count * 1000:.0f} ms" if count else ""
                    self.say(f"  {fam.name}: {count:.0f} observed{mean}")
                else:
                    for x in fam.samples:
                        if x.name.endswith("_created"):
                            continue
                        labels = ",".join(f'{k}="{v}"' for k, v in sorted(x.labels.items()))
                        self.say(f"  {x.name}{{{labels}}} {x.value:g}")

    def print_status(self) -> None:
        from kubedr.commands import status

        args = argparse.Namespace(primary_kubeconfig=str(self.kubeconfigs["primary"]), primary_context=None,
                                  secondary_kubeconfig=str(self.kubeconfigs["secondary"]), secondary_context=None,
                                  repo=str(self.remote), branch="main", snapshot_store=None,
                                  snapshot_cluster="kubernetes", endpoint_url=None, region=None, path_style=False,
                                  max_lag=None, output="table", primary_cluster_name="primary",
                                  secondary_cluster_name="secondary")
        status.render(status.gather(args))

    # -- plumbing ---------------------------------------------------------------------------------------
    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def wait_for(self, what: str, condition: Callable[[], bool]) -> None:
        while True:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise NotConverged(f"{what}: the {name} exited with code {proc.returncode}")
            if condition():
                return
            if self.remaining() <= 0:
                raise NotConverged(f"{what} did not reach the secondary in time")
            time.sleep(0.01)

    def path(self, api_version: str, kind: str, name: str = "") -> str:
        prefix, plural, namespaced = PATHS[(api_version, kind)]
        base = f"{prefix}/namespaces/{NAMESPACE}/{plural}" if namespaced else f"{prefix}/{plural}"
        return f"{base}/{name}" if name else base

    def get(self, side: str, api_version: str, kind: str, name: str) -> dict[str, Any] | None:
        from kubedr.apierrors import NotFound

        try:
            live: dict[str, Any] = self.api[side].request("GET", self.path(api_version, kind, name))
        except NotFound:
            return None
        return live

    def apply(self, side: str, obj: dict[str, Any]) -> None:
        """Server-side apply, retried briefly while a just-created CRD becomes served."""
        from kubedr.apierrors import NotFound

        path = self.path(obj["apiVersion"], obj["kind"], obj["metadata"]["name"])
        until = time.monotonic() + 10
        while True:
            try:
                self.api[side].request("PATCH", path, json.dumps(obj), {"fieldManager": FIELD_MANAGER, "force": "true"},
                                       "application/apply-patch+yaml")
                return
            except NotFound:
                if time.monotonic() > until:
                    raise
                time.sleep(0.05)

    def patch(self, side: str, api_version: str, kind: str, name: str, merge: dict[str, Any]) -> None:
        self.api[side].request("PATCH", self.path(api_version, kind, name), merge,
                               {"fieldManager": FIELD_MANAGER}, "application/merge-patch+json")

    def delete(self, side: str, api_version: str, kind: str, name: str) -> None:
        self.api[side].request("DELETE", self.path(api_version, kind, name))

    @staticmethod
    def display(obj: dict[str, Any]) -> str:
        meta = obj["metadata"]
        return f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta["name"]

    def dump_logs(self) -> None:
        for name, log in self.logs.items():
            try:
                lines = log.read_text(errors="replace").splitlines()
            except OSError:
                continue
            self.say(f"\n-- last lines of the {name} log ({log}) --")
            self.say("\n".join(lines[-25:]))

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for emu in self.emulators:
            emu.stop()
        for key, value in self.saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def describe(obj: dict[str, Any] | None) -> str:
    """One phrase per object for the state table."""
    if obj is None:
        return "absent"
    kind = obj.get("kind")
    ann = obj.get("metadata", {}).get("annotations") or {}
    if kind == "Deployment":
        spec = obj.get("spec", {})
        held = f"standby, primary runs {ann[REPLICAS_ANNOTATION]}" if REPLICAS_ANNOTATION in ann else "active"
        return f"replicas {spec.get('replicas')} ({held}), image {spec['template']['spec']['containers'][0]['image']}"
    if kind == "ConfigMap":
        return ", ".join(f"{k}={v}" for k, v in sorted((obj.get("data") or {}).items()))
    if kind == "Secret":
        return f"{len(obj.get('data') or {})} keys, unsealed by the applier"
    if kind == "Service":
        ports = obj.get("spec", {}).get("ports") or []
        return ", ".join(f"{p.get('port')}->{p.get('targetPort')}" for p in ports)
    if kind == "Widget":
        return f"color {obj.get('spec', {}).get('color')}"
    if kind == "CustomResourceDefinition":
        return "served"
    return "present"
