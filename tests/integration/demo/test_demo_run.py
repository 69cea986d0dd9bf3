"""`kubedr demo` as a newcomer runs it: a subprocess that must finish in under a minute and show what it promises."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT


def run_demo(*args: str, timeout: float = 150) -> tuple[subprocess.CompletedProcess, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBEDR_")}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "kubedr", "demo", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=env)
    return proc, time.monotonic() - started


def test_demo_runs_to_completion_and_prints_what_it_promises(tmp_path: Path) -> None:
    keep = tmp_path / "demo"
    proc, elapsed = run_demo("--workdir", str(keep))
    out = proc.stdout
    assert proc.returncode == 0, f"demo failed:\n{out}\n{proc.stderr[-3000:]}"
    assert elapsed < 90, f"demo took {elapsed:.1f}s"  # about 25 s on an idle machine, round trip included
    assert "demo OK: the secondary converged on every step" in out

    # the Git log: the template commit, the initial resync, one commit per change, newest first
    log = out.split("== Git log of the config repo (newest first) ==")[1].split("\n\n")[0].strip().splitlines()
    subjects = [re.sub(r"^[0-9a-f]{7,40} ", "", line) for line in log]
    assert all(re.match(r"^[0-9a-f]{7,40} ", line) for line in log), log
    assert subjects[-1] == "init: kubedr config repo from the template"
    assert subjects[-2].startswith("resync 7 objects")
    for expected in ("update ConfigMap shop/settings", "update apps/Deployment shop/web", "update Secret shop/db",
                     "create example.com/Widget shop/green", "delete example.com/Widget shop/blue"):
        assert expected in subjects, f"{expected!r} not in {subjects}"
    assert subjects[0].startswith("promote secondary: writer role, epoch 2") or subjects[1].startswith("promote secondary")
    assert "Source-Cluster: primary" in out and "Field-Managers: kubectl" in out

    # the sealed Secret shows no clear text
    assert "format: kubedr.io/age/v1" in out and "-----BEGIN AGE ENCRYPTED FILE-----" in out
    assert "correct horse battery staple" not in out and "n3w-pa55word" not in out

    # the secondary's state after the changes and the switchover
    state = out.split("== Secondary cluster state ==")[1].split("== kubedr status ==")[0]
    rows = {tuple(line.split()[:2]): line for line in state.splitlines() if line.strip()}
    assert "FEATURE_CHECKOUT_V2=true" in rows[("ConfigMap", "shop/settings")]
    assert "replicas 5 (active)" in rows[("Deployment", "shop/web")]
    assert "absent" in rows[("Widget", "shop/blue")]
    assert "color green" in rows[("Widget", "shop/green")]
    assert "served" in rows[("CustomResourceDefinition", "widgets.example.com")]
    assert "2 keys" in rows[("Secret", "shop/db")]

    # the measured lag, per change and summarised
    per_change = re.findall(r"lag\s+(\d+) ms", out)
    assert len(per_change) == 5
    summary = re.search(r"replication lag: p50 (\d+) ms, max (\d+) ms over 5 changes", out)
    assert summary, out
    p50, worst = int(summary.group(1)), int(summary.group(2))
    assert 0 < p50 <= worst == max(int(v) for v in per_change)
    assert worst < 10_000

    # Prometheus metrics scraped from both processes
    metrics = out.split("== Metrics (Prometheus /metrics of the exporter and the applier) ==")[1]
    assert 'kubedr_exporter_commits_total{reason="change"} 5' in metrics
    assert re.search(r"kubedr_exporter_change_to_commit_seconds: \d+ observed, mean \d+ ms", metrics)
    assert re.search(r'kubedr_applier_objects_total\{action="delete"\} 1\b', metrics)

    # kubedr status, and what was kept for exploring
    # after the promote the secondary writes the branch: its applier applies nothing, no lag against itself
    assert re.search(r"secondary\s+applier\s+idle \(writer\)\s+[0-9a-f]{12}\s", out), out
    assert re.search(r"secondary\s+role\s+writer", out) and "repo git: writer secondary (epoch 2)" in out, out
    assert (keep / "config.git").is_dir() and (keep / "exporter.log").is_file() and (keep / "applier.log").is_file()
    assert re.search(r"primary\s+role\s+fenced", out) and re.search(r"secondary\s+role\s+writer", out)

    # the round trip: the old primary fenced, demoted with its change on a side branch, then failback
    assert "[8/10] the old primary is back: its exporter says 'fenced: the writer is secondary (epoch 2)" in out
    assert "reached no branch (0 commits)" in out
    assert "the last commit of primary is" in out and "(the RPO you accept)" in out
    assert re.search(r"Deployment shop/web runs 5 replicas, Available: RTO \d+\.\d s \(promote start -> every "
                     r"workload Available\)", out), out
    assert re.search(r"secondary applier: .*last promote \d+s ago: RTO \d+\.\d s \(1 workload Available\)",
                     " ".join(out.split())), out
    assert "demote primary: 1 objects never reached main" in out and "+  CURRENCY: USD" in out
    assert "[10/10] failback" in out and "(0 merge commits; unreplicated changes on kubedr/unreplicated/primary/" in out
    git = ["git", "--git-dir", str(keep / "config.git")]
    head = subprocess.run([*git, "log", "--format=%s", "main"], capture_output=True, text=True, check=True).stdout
    promotes = [s for s in head.splitlines() if s.startswith("promote ")]
    assert promotes == ["promote primary: writer role, epoch 3", "promote secondary: writer role, epoch 2"]
    assert subprocess.run([*git, "rev-list", "--merges", "main"], capture_output=True, text=True).stdout == ""


def test_demo_exits_non_zero_when_the_secondary_does_not_converge() -> None:
    proc, _ = run_demo("--timeout", "0.01", timeout=60)
    assert proc.returncode == 1, proc.stdout
    assert "demo FAILED:" in proc.stdout and "did not reach the secondary in time" in proc.stdout
