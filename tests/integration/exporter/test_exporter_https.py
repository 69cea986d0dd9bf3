"""An HTTPS remote with basic auth, credentials from a git credential store as the manifests mount them;
exporter and applier both, and no token in any output even when it is written into the URL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from exporter_harness import export_args, remote_files

from tests.conftest import run_git
from tests.githttp import GitHTTPS

TOKEN = "s3cr3t-t0ken-4711"


def _export(primary, url: str, workdir: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    argv = export_args(primary, url, workdir, "--namespaces", "shop", "--once")
    return subprocess.run([sys.executable, "-m", "kubedr", *argv], env=env, capture_output=True, text=True,
                          timeout=120)


def test_https_remote_with_credentials_from_a_store_and_never_a_token_in_the_logs(primary, tmp_path: Path) -> None:
    root = tmp_path / "srv"
    run_git("init", "--bare", "-q", "-b", "main", str(root / "config.git"))
    server = GitHTTPS(root, "kubedr", TOKEN, tmp_path).start()
    try:
        primary.api.create({"apiVersion": "v1", "kind": "ConfigMap", "data": {"mode": "a"},
                            "metadata": {"name": "settings", "namespace": "shop"}})
        store = tmp_path / "git-credentials"
        store.write_text(f"https://kubedr:{TOKEN}@127.0.0.1:{server.port}\n")
        store.chmod(0o600)
        base = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "KUBEDR_"))}
        base["GIT_SSL_CAINFO"] = str(server.ca_file)
        with_store = {**base, "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "credential.helper",
                      "GIT_CONFIG_VALUE_0": f"store --file={store}"}

        done = _export(primary, server.url("config.git"), tmp_path / "clone", with_store)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "shop/ConfigMap/settings.yaml" in remote_files(root / "config.git")
        assert any(status == 401 for _, _, _, status in server.requests)  # challenged, answered from the store
        assert any(m == "POST" and p.endswith("git-receive-pack") and s == 200 for _, m, p, s in server.requests)

        refused = _export(primary, server.url("config.git"), tmp_path / "clone2", base)
        assert refused.returncode == 1
        assert "could not read Username" in refused.stderr or "Authentication failed" in refused.stderr

        inline = _export(primary, f"https://kubedr:{TOKEN}@127.0.0.1:{server.port}/config.git", tmp_path / "clone3",
                         base)
        assert inline.returncode == 0, inline.stderr[-2000:]
        # the applier fetches from the same remote, with the same credential store
        applied = subprocess.run(
            [sys.executable, "-m", "kubedr", "apply", "--once", "--kubeconfig", str(primary.kubeconfig_path),
             "--repo", server.url("config.git"), "--workdir", str(tmp_path / "applier"), "--namespace-map",
             "shop=shop-dr"], env=with_store, capture_output=True, text=True, timeout=120)
        assert applied.returncode == 0, applied.stderr[-2000:]
        assert primary.api.get("v1", "ConfigMap", "settings", "shop-dr")["data"] == {"mode": "a"}
        failed = subprocess.run(
            [sys.executable, "-m", "kubedr", "apply", "--once", "--kubeconfig", str(primary.kubeconfig_path),
             "--repo", f"https://kubedr:{TOKEN}@127.0.0.1:{server.port}/missing.git", "--workdir",
             str(tmp_path / "applier2")], env=base, capture_output=True, text=True, timeout=120)
        assert failed.returncode != 0
        for proc in (done, refused, inline, applied, failed):
            assert TOKEN not in proc.stderr + proc.stdout
    finally:
        server.stop()
