"""A save killed half-way (SIGKILL mid-upload) leaves nothing listed, in a directory and in S3."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import boto3
import pytest
from snapshot_harness import S3_ENV, fill_etcd, kubedr, listed

from tests.conftest import wait_until

DB_VALUES = 160 << 20  # a directory store takes this in well under a second: wide enough to catch it


@pytest.fixture
def big_etcd(etcd_factory, request):
    e = etcd_factory(name="big")
    fill_etcd(e, getattr(request, "param", DB_VALUES))
    return e


def start_save(e, age_keys, tmp_path, *store_args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "kubedr", "snapshot", "save", *store_args, "--endpoints", e.client_url,
         "--root", str(tmp_path / "none"), "-r", age_keys.recipient, "--compression", "none", "--no-cluster-info"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, **S3_ENV})


def kill_when(proc: subprocess.Popen, uploading, what: str):
    """Freeze the save as soon as its upload is under way (so it cannot finish), look, then SIGKILL it."""
    def check():
        if proc.poll() is not None:
            raise AssertionError(f"save ended before it was stopped: {proc.stderr.read().decode()[-500:]}")
        return uploading()

    try:
        found = wait_until(check, timeout=60, interval=0.001, what=what)
        os.kill(proc.pid, signal.SIGSTOP)
        return found
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)


def test_directory_store(big_etcd, age_keys, tmp_path):
    store = tmp_path / "store"
    proc = start_save(big_etcd, age_keys, tmp_path, "--store", str(store))

    def uploading():
        return [p for p in store.rglob("bundle.tar.age.partial") if p.stat().st_size > 0]

    [partial] = kill_when(proc, uploading, "the bundle upload to start")
    assert proc.returncode == -signal.SIGKILL
    assert partial.stat().st_size < DB_VALUES and not list(store.rglob("manifest.json"))
    assert listed(str(store)) == []
    out = kubedr("verify", "--store", str(store), "-i", str(age_keys.identity), check=False)
    assert out.returncode == 1 and "no snapshot" in out.stderr


@pytest.mark.parametrize("big_etcd", [40 << 20], indirect=True)  # S3 over HTTP is slower: less will do
def test_s3_store(big_etcd, age_keys, tmp_path, s3_endpoint):
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, aws_access_key_id="testing",
                      aws_secret_access_key="testing", region_name="us-east-1")
    s3.create_bucket(Bucket="killed")
    common = ["--store", "s3://killed/etcd", "--endpoint-url", s3_endpoint, "--path-style"]
    proc = start_save(big_etcd, age_keys, tmp_path, *common, "--part-size-mb", "5")

    def uploading():
        uploads = s3.list_multipart_uploads(Bucket="killed").get("Uploads", [])
        return [u for u in uploads
                if s3.list_parts(Bucket="killed", Key=u["Key"], UploadId=u["UploadId"]).get("Parts")]

    [upload] = kill_when(proc, uploading, "a multipart upload with a stored part")
    assert upload["Key"].endswith("/bundle.tar.age")
    assert "Contents" not in s3.list_objects_v2(Bucket="killed")  # parts are not objects until completed
    env = {**S3_ENV, "KUBEDR_ENDPOINT_URL": s3_endpoint, "KUBEDR_PATH_STYLE": "1"}
    assert listed("s3://killed/etcd", env=env) == []
    # prune aborts such uploads once they are a day old (moto dates every upload 2010-11-10: old enough)
    out = kubedr("prune", "--store", "s3://killed/etcd", "--keep-last", "1", env=env)
    assert out.stdout.splitlines() == [f"abort incomplete upload {upload['Key']}"]
    assert not s3.list_multipart_uploads(Bucket="killed").get("Uploads")


@pytest.mark.parametrize("size", [1 << 20, 24 << 20], ids=["single-put", "multipart"])
def test_s3_failed_bundle_leaves_no_object(tmp_path, s3_endpoint, size):
    from pyrage import x25519

    from kubedr.snapshot import bundle
    from kubedr.snapshot.store import S3Options, S3Store

    for k, v in S3_ENV.items():
        os.environ.setdefault(k, v)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    bucket = f"failed-{size}"
    s3.create_bucket(Bucket=bucket)
    store = S3Store(bucket, "etcd", S3Options(endpoint_url=s3_endpoint, path_style=True, part_size=5 << 20))
    big = tmp_path / "db"
    big.write_bytes(os.urandom(size))
    with pytest.raises(bundle.BundleError, match="packing failed"):
        bundle.write(store, "c/1/bundle.tar.age", [bundle.BundleFile("etcd/snapshot.db", path=big),
                                                   bundle.BundleFile("gone", path=tmp_path / "missing")],
                     [x25519.Identity.generate().to_public()], "none")
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
