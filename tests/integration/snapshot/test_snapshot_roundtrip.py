"""Save a real etcd to a directory and to S3 over HTTP, restore into a fresh data dir, read the keys back."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path

import boto3
import zstandard
from snapshot_harness import (
    S3_ENV,
    fake_kubeadm_root,
    kubedr,
    listed,
    tree,
)

from tests.conftest import free_port

KEYS = {f"/registry/configmaps/default/cm-{i}": f"value-{i}" for i in range(50)}


def put_keys(e) -> None:
    for k, v in KEYS.items():
        e.ctl("put", k, v)


def restore_and_read(etcd_factory, tmp_path: Path, store: str, identity: Path, extra: list[str] = (),
                     env: dict | None = None, target_root: Path | None = None) -> subprocess.CompletedProcess:
    """Restore into a new data dir, start etcd there and check every key."""
    data_dir = tmp_path / "restored" / "etcd"
    peer = free_port()
    args = ["restore", "--store", store, "-i", str(identity), "--data-dir", str(data_dir), "--name", "cp-restored",
            "--peer-urls", f"http://127.0.0.1:{peer}", *extra]
    if target_root:
        args += ["--target-root", str(target_root)]
    out = kubedr(*args, env=env)
    assert (data_dir / "member" / "snap" / "db").is_file()
    restored = etcd_factory(name="cp-restored", data_dir=data_dir, peer_port=peer)
    for k, v in KEYS.items():
        assert restored.get(k) == v, k
    return out


def test_directory_store_save_list_verify_restore(etcd_release, etcd_factory, etcd_server, age_keys, tmp_path):
    """Once per etcd release: 3.4 restores with etcdctl, 3.5 with etcdutl."""
    put_keys(etcd_server)
    root = tmp_path / "node"
    fake_kubeadm_root(root)
    store = f"file://{tmp_path / 'store'}"
    out = kubedr("save", "--store", store, "--cluster", "prod", "--endpoints", etcd_server.client_url,
                 "--root", str(root), "--node", "cp-1", "-r", age_keys.recipient)
    assert "saved prod/" in out.stdout

    [m] = listed(store, "prod")
    assert m["node"] == "cp-1" and m["snapshot"]["revision"] >= len(KEYS) + 1
    assert m["snapshot"]["total_keys"] >= len(KEYS) and m["snapshot"]["etcd_version"].startswith(etcd_release + ".")
    assert m["snapshot"]["member"]["name"] == "cp-1"
    names = {f["path"] for f in m["files"]}
    assert {"etcd/snapshot.db", "kubernetes/pki/ca.key", "kubernetes/admin.conf",
            "kubernetes/manifests/etcd.yaml", "kubelet/kubeadm-flags.env"} <= names
    assert next(f for f in m["files"] if f["path"] == "kubernetes/pki/ca.key")["mode"] == "0600"
    stored = tmp_path / "store" / "prod" / m["id"]
    assert sorted(p.name for p in stored.iterdir()) == ["bundle.tar.age", "manifest.json"]
    assert b"cert ca" not in (stored / "bundle.tar.age").read_bytes()  # never in clear

    assert kubedr("verify", "--store", store, "--cluster", "prod", "-i", str(age_keys.identity)).returncode == 0

    # the target already has a kubeadm tree: it is kept as a backup copy, then replaced
    target = tmp_path / "target"
    (target / "etc/kubernetes/pki").mkdir(parents=True)
    (target / "etc/kubernetes/pki/ca.crt").write_text("old ca\n")
    (target / "etc/kubernetes/stale.conf").write_text("old\n")
    out = restore_and_read(etcd_factory, tmp_path, store, age_keys.identity,
                           ["--cluster", "prod", "--id", m["id"]], target_root=target)
    assert "restore plan" in out.stdout and "kubedr-backup-" in out.stdout
    tool = {"3.4": "etcdctl snapshot restore", "3.5": "etcdutl snapshot restore"}[etcd_release]
    assert tool in out.stdout, out.stdout
    src, dst = tree(root / "etc/kubernetes"), tree(target / "etc/kubernetes")
    assert {k: v for k, v in dst.items() if k in src} == src
    assert (target / "var/lib/kubelet/kubeadm-flags.env").read_bytes() == (
        root / "var/lib/kubelet/kubeadm-flags.env").read_bytes()
    assert (target / "etc/kubernetes/pki/ca.key").stat().st_mode & 0o777 == 0o600
    [backup] = (target / "etc").glob("kubernetes.kubedr-backup-*")
    assert (backup / "pki/ca.crt").read_text() == "old ca\n" and (backup / "stale.conf").exists()


def test_s3_store_over_http(etcd_factory, etcd_server, age_keys, tmp_path, s3_endpoint):
    put_keys(etcd_server)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, aws_access_key_id="testing",
                      aws_secret_access_key="testing", region_name="us-east-1")
    s3.create_bucket(Bucket="dr-backups")
    store = "s3://dr-backups/etcd/eu-west"
    common = ["--store", store, "--endpoint-url", s3_endpoint, "--path-style", "--region", "us-east-1"]
    kubedr("save", *common, "--endpoints", etcd_server.client_url, "--root", str(tmp_path / "empty-root"),
           "-r", age_keys.recipient, "--part-size-mb", "5", env=S3_ENV)
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="dr-backups")["Contents"])
    assert len(keys) == 2 and keys[0].startswith("etcd/eu-west/kubernetes/")
    assert keys[0].endswith("/bundle.tar.age") and keys[1].endswith("/manifest.json")
    [m] = listed(store, env={**S3_ENV, "KUBEDR_ENDPOINT_URL": s3_endpoint, "KUBEDR_PATH_STYLE": "true"})
    assert m["bundle"]["size"] == s3.head_object(Bucket="dr-backups", Key=keys[0])["ContentLength"]
    restore_and_read(etcd_factory, tmp_path, store, age_keys.identity, common, env=S3_ENV)

    missing = kubedr("save", "--store", "s3://no-such-bucket/etcd", *common[2:], "--endpoints",
                     etcd_server.client_url, "-r", age_keys.recipient, "--root", str(tmp_path), env=S3_ENV,
                     check=False)
    errors = [line for line in missing.stderr.splitlines() if "ERROR" in line]
    assert missing.returncode == 1 and len(errors) == 1 and "NoSuchBucket" in errors[0], missing.stderr


def test_kubeadm_client_tls(etcd_factory, age_keys, tmp_path):
    root = tmp_path / "node"
    tls = fake_kubeadm_root(root, with_etcd_pki=True)
    e = etcd_factory(name="cp-tls", tls=tls)
    assert e.client_url.startswith("https://")
    put_keys(e)
    store = str(tmp_path / "store")
    # no --cacert/--cert/--key: found under <root>/etc/kubernetes/pki/etcd as kubeadm lays them out
    kubedr("save", "--store", store, "--endpoints", e.client_url, "--root", str(root), "-r", age_keys.recipient)
    [m] = listed(store)
    assert "kubernetes/pki/etcd/healthcheck-client.key" in {f["path"] for f in m["files"]}
    restore_and_read(etcd_factory, tmp_path, store, age_keys.identity)


def test_age_cli_decrypts_the_bundle(etcd_server, age_keys, tmp_path):
    put_keys(etcd_server)
    root = tmp_path / "node"
    fake_kubeadm_root(root)
    store = tmp_path / "store"
    kubedr("save", "--store", str(store), "--endpoints", etcd_server.client_url, "--root", str(root),
           "-r", age_keys.recipient)
    [obj] = store.glob("kubernetes/*/bundle.tar.age")
    plain = subprocess.run(["age", "-d", "-i", str(age_keys.identity), str(obj)], capture_output=True,
                           check=True).stdout
    with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(plain)) as z, tarfile.open(fileobj=z, mode="r|") as t:
        names = [m.name for m in t]
    assert "etcd/snapshot.db" in names and "kubernetes/pki/sa.key" in names


def test_settings_from_the_config_file(etcd_server, age_keys, tmp_path):
    put_keys(etcd_server)
    config = tmp_path / "kubedr.yaml"
    config.write_text(json.dumps({"snapshot": {
        "store": str(tmp_path / "store"), "cluster": "from-config", "endpoints": etcd_server.client_url,
        "root": str(tmp_path / "empty"), "recipient": [age_keys.recipient], "identity": [str(age_keys.identity)],
        "compression": "none"}}))
    env = {"KUBEDR_CONFIG": str(config)}
    kubedr("save", env=env)
    [m] = listed(str(tmp_path / "store"), "from-config")
    assert m["bundle"]["compression"] == "none"
    assert "ok from-config/" in kubedr("verify", env=env).stdout
    missing = kubedr("save", "--store", str(tmp_path / "s2"), "--endpoints", etcd_server.client_url, check=False)
    assert missing.returncode == 2 and "--recipient" in missing.stderr
