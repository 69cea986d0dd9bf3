"""Retention deletes the right snapshots, never the newest; saves that died are removed after a day."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta

from snapshot_harness import S3_ENV, kubedr, listed

from kubedr.snapshot.manifest import new_id


def _clone_at(store, src_id: str, when: datetime) -> str:
    """A copy of a real snapshot, dated `when` (as if saved then)."""
    sid = new_id(when)
    src, dst = store / "kubernetes" / src_id, store / "kubernetes" / sid
    shutil.copytree(src, dst)
    doc = json.loads((dst / "manifest.json").read_text())
    doc.update(id=sid, created=when.isoformat(), finished=when.isoformat())
    (dst / "manifest.json").write_text(json.dumps(doc))
    return sid


def test_prune_by_count_and_age(etcd_server, age_keys, tmp_path):
    etcd_server.ctl("put", "a", "b")
    store = tmp_path / "store"
    kubedr("save", "--store", str(store), "--endpoints", etcd_server.client_url, "--root", str(tmp_path),
           "-r", age_keys.recipient, "--no-cluster-info")
    [real] = listed(str(store))
    now = datetime.now(UTC)
    ids = {h: _clone_at(store, real["id"], now - timedelta(hours=h)) for h in (30, 50, 80, 200)}
    shutil.rmtree(store / "kubernetes" / real["id"])  # the newest is now 30h old
    # interrupted saves: a bundle and no manifest; never listed; removed by prune once a day old
    for sid in ("20000101T000000.000Z", new_id(now - timedelta(minutes=5))):
        (store / "kubernetes" / sid).mkdir()
        (store / "kubernetes" / sid / "bundle.tar.age.partial").write_bytes(b"x")
    assert [m["id"] for m in listed(str(store))] == [ids[30], ids[50], ids[80], ids[200]]

    out = kubedr("prune", "--store", str(store), "--keep-last", "2", "--dry-run")
    assert out.stdout.splitlines() == [f"would delete kubernetes/{ids[80]}", f"would delete kubernetes/{ids[200]}",
                                       "would delete incomplete kubernetes/20000101T000000.000Z"]
    assert len(listed(str(store))) == 4

    kubedr("prune", "--store", str(store), "--max-age", "3d")  # 80h and 200h go
    assert [m["id"] for m in listed(str(store))] == [ids[30], ids[50]]
    assert not (store / "kubernetes" / ids[80]).exists()
    assert not (store / "kubernetes" / "20000101T000000.000Z").exists()
    assert len(list(store.glob("kubernetes/*/bundle.tar.age.partial"))) == 1  # the recent one may be running

    kubedr("prune", "--store", str(store), "--keep-last", "1", "--max-age", "40h")  # 30h kept by both rules
    assert [m["id"] for m in listed(str(store))] == [ids[30]]

    kubedr("prune", "--store", str(store), "--max-age", "1h")  # all too old, but the newest always stays
    assert [m["id"] for m in listed(str(store))] == [ids[30]]

    bad = kubedr("prune", "--store", str(store), "--max-age", "7 days", check=False)
    assert bad.returncode == 2 and "duration" in bad.stderr


def test_save_after_retention_flags(etcd_server, age_keys, tmp_path):
    store = tmp_path / "store"
    for i in range(3):
        etcd_server.ctl("put", "k", str(i))
        kubedr("save", "--store", str(store), "--endpoints", etcd_server.client_url, "--root", str(tmp_path),
               "-r", age_keys.recipient, "--keep-last", "2", "--no-cluster-info")
    found = listed(str(store))
    assert len(found) == 2 and found[0]["snapshot"]["revision"] > found[1]["snapshot"]["revision"]


# moto dates every multipart upload 2010-11-10T20:48:33Z; prune runs under faketime (Debian's libfaketime) at a
# chosen distance from that date, so the upload is as young or as old as the case needs. The store is untouched.
MOTO_INITIATED = datetime(2010, 11, 10, 20, 48, 33, tzinfo=UTC)


def test_prune_aborts_an_upload_only_once_it_is_a_day_old(s3_endpoint):
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_endpoint, aws_access_key_id="testing",
                      aws_secret_access_key="testing", region_name="us-east-1")
    s3.create_bucket(Bucket="young")
    key = "etcd/kubernetes/20101110T204833.000Z/bundle.tar.age"
    upload = s3.create_multipart_upload(Bucket="young", Key=key)["UploadId"]
    s3.upload_part(Bucket="young", Key=key, UploadId=upload, PartNumber=1, Body=b"x" * (5 << 20))
    env = {**S3_ENV, "KUBEDR_ENDPOINT_URL": s3_endpoint, "KUBEDR_PATH_STYLE": "1", "TZ": "UTC"}
    prune = ["prune", "--store", "s3://young/etcd", "--keep-last", "1"]
    for age, aborted in ((timedelta(hours=23, minutes=50), False), (timedelta(hours=24, minutes=10), True)):
        at = (MOTO_INITIATED + age).strftime("%Y-%m-%d %H:%M:%S UTC")
        out = kubedr(*prune, env=env, faketime=at)
        left = [u["UploadId"] for u in s3.list_multipart_uploads(Bucket="young").get("Uploads", [])]
        if aborted:
            assert out.stdout.splitlines() == [f"abort incomplete upload {key}"] and left == []
        else:
            assert out.stdout == "" and left == [upload], f"a {age} old upload was aborted: {out.stdout}"
