"""The second half of `kubedr demo`: disaster, promote, the old primary back and fenced, demote, failback.

The primary's exporter is killed (the region is lost) and the secondary is promoted: it takes the writer
role and its workloads come up, and its own exporter, fenced until then, starts exporting. The old primary's
exporter comes back and finds itself fenced: a change made on the primary reaches no branch. `kubedr demote`
sets that change aside on a side branch and makes the primary a standby; then the same two commands the
other way round fail back, and the branch history is still one line.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import urllib.request
from typing import TYPE_CHECKING

from kubedr import git, roles

if TYPE_CHECKING:
    from kubedr.commands.demo import Demo

NAMESPACE = "shop"


def export_args(demo: Demo, side: str) -> list[str]:
    """`kubedr export` options of one side (also what `kubedr demote` of that side needs)."""
    return ["--kubeconfig", str(demo.kubeconfigs[side]), "--namespaces", NAMESPACE, "--repo", str(demo.remote),
            "--branch", "main", "--workdir", str(demo.root / f"exporter-clone-{side}"), "--cluster-name", side,
            "--recipient", demo.recipient, "--digest-key-file", str(demo.root / "digest.key"),
            "--role-check-interval", "0.2s"]


def kubedr(demo: Demo, *argv: str) -> str:
    """Run one kubedr command; its stdout, or NotConverged with its last error line."""
    from kubedr.commands.demo import NotConverged

    proc = subprocess.run([sys.executable, "-m", "kubedr", "--log-level", "WARNING", *argv],
                          capture_output=True, text=True, timeout=max(10.0, demo.remaining() + 10), env=demo.env)
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        raise NotConverged(f"kubedr {argv[0]} failed: {lines[-1] if lines else proc.returncode}")
    return proc.stdout


def _show(demo: Demo, out: str) -> None:
    for line in out.strip().splitlines():
        demo.say(f"      {line}")


def _replicas(demo: Demo, side: str) -> int | None:
    replicas: int | None = (demo.get(side, "apps/v1", "Deployment", "web") or {}).get("spec", {}).get("replicas")
    return replicas


def readyz(listen: str) -> str:
    try:
        with urllib.request.urlopen(f"http://{listen}/readyz", timeout=2) as resp:
            body: bytes = resp.read()
            return body.decode().strip()
    except OSError as exc:
        return f"unreachable ({exc})"


def _git(demo: Demo, *args: str) -> str:
    return git.run(args, git_dir=demo.remote).text


def promote_secondary(demo: Demo) -> None:
    """Step 7: the primary is lost; the secondary takes the writer role and brings its workloads up."""
    proc = demo.procs.pop("exporter")
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    out = kubedr(demo, "promote", "--kubeconfig", str(demo.kubeconfigs["secondary"]), "--repo", str(demo.remote),
                 "--cluster-name", "secondary", "--identity", str(demo.identity_file),
                 "--workdir", str(demo.root / "promote-secondary"), "--force")
    demo.wait_for("the promote", lambda: _replicas(demo, "secondary") == 5)
    rto = re.search(r"RTO ([0-9.]+) s", out)
    demo.step("disaster: the primary's exporter is killed; `kubedr promote --force` on the secondary (--force: "
              "the primary committed moments ago) -> writer secondary, epoch 2; Deployment shop/web runs 5 "
              "replicas, Available" + (f": RTO {rto.group(1)} s (promote start -> every workload Available)"
                                        if rto else ""))
    _show(demo, out)


def round_trip(demo: Demo) -> None:
    """Steps 8-10: the old primary returns fenced, is demoted, and the roles go back (failback)."""
    head_at_promote = _git(demo, "rev-parse", "main").strip()
    demo.spawn("exporter", ["export", *export_args(demo, "primary"), "--batch-window", "50ms",
                            "--metrics-listen", demo.metrics["exporter"]], demo.env)
    demo.wait_for("the old primary's exporter to report fenced",
                  lambda: readyz(demo.metrics["exporter"]).startswith("fenced"))
    demo.patch("primary", "v1", "ConfigMap", "settings", {"data": {"CURRENCY": "USD"}})
    demo.patch("secondary", "v1", "ConfigMap", "settings", {"data": {"BANNER": "served-from-the-secondary"}})
    demo.wait_for("the secondary's change in the repo", lambda: "BANNER" in _git(
        demo, "show", f"main:{NAMESPACE}/ConfigMap/settings.yaml"))
    from_primary = [c for c in git.log([f"{head_at_promote}..main"], git_dir=demo.remote)
                    if c.trailer(roles.SOURCE_TRAILER) == ["primary"]]
    if from_primary:
        from kubedr.commands.demo import NotConverged

        raise NotConverged(f"{len(from_primary)} commits of the fenced primary reached the branch")
    demo.step("the old primary is back: its exporter says "
              f"'{readyz(demo.metrics['exporter'])}'; CURRENCY=USD set on the primary reached no branch "
              "(0 commits), BANNER set on the secondary did")

    out = kubedr(demo, "demote", *export_args(demo, "primary"), "--identity", str(demo.identity_file),
                 "--apply-workdir", str(demo.root / "applier-clone-primary"))
    demo.wait_for("the demote", lambda: _replicas(demo, "primary") == 0)
    demo.step("`kubedr demote` on the primary: what it never replicated is on a side branch, never applied; "
              "the primary is a standby of the secondary (web at 0 replicas, BANNER applied)")
    _show(demo, out)
    found = re.search(r"side branch (kubedr/\S+)", out)
    if found:
        side = found.group(1)
        diff = _git(demo, "diff", f"{side}^", side).strip().splitlines()
        _show(demo, "\n".join(ln for ln in diff if ln[:1] in "+-" and not ln.startswith(("+++", "---"))))

    proc = demo.procs.pop("exporter-secondary")
    proc.send_signal(signal.SIGTERM)  # a planned failback: the secondary's last changes are pushed
    proc.wait(30)
    kubedr(demo, "promote", "--kubeconfig", str(demo.kubeconfigs["primary"]), "--repo", str(demo.remote),
           "--cluster-name", "primary", "--identity", str(demo.identity_file),
           "--workdir", str(demo.root / "promote-primary"), "--force")
    demo.wait_for("the primary's exporter to export again", lambda: readyz(demo.metrics["exporter"]) == "ok")
    kubedr(demo, "demote", *export_args(demo, "secondary"), "--identity", str(demo.identity_file),
           "--apply-workdir", str(demo.root / "applier-clone"))
    demo.wait_for("the failback", lambda: _replicas(demo, "primary") == 5 and _replicas(demo, "secondary") == 0)
    demo.step("failback: the same two commands the other way -> writer primary, epoch 3; the secondary is a "
              "standby again, BANNER kept on both")
    demo.say("\n== The branch across the round trip: one line (git log --graph) ==")
    log = _git(demo, "log", "--graph", "--format=%h %s", "-12", "main").rstrip()
    demo.say(log)
    merges = _git(demo, "rev-list", "--merges", "main").split()
    demo.say(f"({len(merges)} merge commits; unreplicated changes on "
             f"{', '.join(_git(demo, 'for-each-ref', '--format=%(refname:short)', 'refs/heads/kubedr/').split()) or 'no side branch'})")
