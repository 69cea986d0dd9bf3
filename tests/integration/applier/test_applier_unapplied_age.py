"""The age of the oldest commit not yet applied: counted on every poll and when scraped, so an applier stuck in a
round, failing or held raises it (the RPO alert's gauge); a real `kubedr apply` daemon and its /metrics."""

from __future__ import annotations

import time
import urllib.request
from typing import Any

from tests.conftest import free_port, wait_until
from tests.integration.applier.conftest import Repo, applied, configmap, namespace, status_of

AGE = "kubedr_applier_oldest_unapplied_commit_age_seconds"


def age(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        line = next(ln for ln in resp.read().decode().splitlines() if ln.startswith(AGE + " "))
    return float(line.split()[1])


def test_a_stuck_round_raises_the_unapplied_age(secondary: Any, repo: Repo, daemon: Any) -> None:
    repo.put(namespace("shop"))
    repo.put(configmap("a"))
    first = repo.commit("a")
    port = free_port()
    d = daemon(secondary, repo, "--metrics-listen", f"127.0.0.1:{port}", "--no-validate")
    applied(secondary, repo, d, first)
    wait_until(lambda: age(port) < 5, what="a caught-up applier's age to stay small")

    # the next commit was made an hour ago (say, pushed late); its apply hangs in the API server
    secondary.delay("PATCH", "/api/v1/namespaces/shop/configmaps/b", 8.0)
    repo.put(configmap("b"))
    hour_ago = f"@{int(time.time()) - 3600} +0000"
    second = repo.commit("b", date=hour_ago)
    wait_until(lambda: age(port) >= 3600, timeout=8, what=f"the age to count from the pending commit; {d.text()}")
    assert status_of(secondary)["commit"] == first  # still stuck in the round: nothing recorded yet
    applied(secondary, repo, d, second)
    wait_until(lambda: age(port) < 60, what="the age to drop once the commit is applied")
