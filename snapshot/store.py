"""Where bundles live: a local directory or any S3 API, behind one small streaming interface."""

from __future__ import annotations

import builtins
import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import urlparse

CHUNK = 1 << 20
CONNECT_TIMEOUT = 5  # S3: seconds to connect
READ_TIMEOUT = 20  # S3: seconds to wait for an answer (a stored part, a listing page)
ATTEMPTS = 3  # S3: tries of one request, the first included (botocore's standard retry mode, with backoff)


class StoreError(Exception):
    """The object store refused or lost an object; the message names it."""


class Reader(Protocol):
    """What is read in chunks: files, pipes, S3 response bodies."""

    def read(self, n: int = -1, /) -> bytes: ...


class Body(Reader, Protocol):
    """A stored object being read: in chunks, then closed."""

    def close(self) -> None: ...


class Store(Protocol):
    """Objects by key, streamed in and out; keys use '/' whatever the backend."""

    url: str

    def put_stream(self, key: str, reader: Reader) -> int: ...
    def writer(self, key: str) -> AbstractContextManager[BinaryIO]: ...
    def put_bytes(self, key: str, data: bytes) -> None: ...
    def get_stream(self, key: str) -> Body: ...
    def get_bytes(self, key: str) -> bytes: ...
    def list(self, prefix: str) -> builtins.list[str]: ...
    def size(self, key: str) -> int: ...
    def delete(self, keys: builtins.list[str]) -> None: ...


class DirStore:
    """A directory tree; writes go to '<name>.partial' and are renamed when complete."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.url = f"file://{self.root}"

    def _path(self, key: str) -> Path:
        parts = [p for p in key.split("/") if p]
        if any(p in (".", "..") for p in parts):
            raise StoreError(f"{self.url}: invalid key {key!r}")
        return self.root.joinpath(*parts)

    @contextmanager
    def writer(self, key: str) -> Iterator[BinaryIO]:
        """Write '<name>.partial'; renamed into place only when the block ends without an exception."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".partial")
        try:
            with open(tmp, "wb", buffering=CHUNK) as out:
                yield out
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, path)
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)  # the rename itself survives a crash
        finally:
            os.close(fd)

    def put_stream(self, key: str, reader: Reader) -> int:
        with self.writer(key) as out:
            return copy_stream(reader, out)

    def put_bytes(self, key: str, data: bytes) -> None:
        import io

        self.put_stream(key, io.BytesIO(data))

    def get_stream(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except FileNotFoundError as exc:
            raise StoreError(f"{self.url}: object {key} not found") from exc

    def get_bytes(self, key: str) -> bytes:
        with self.get_stream(key) as fh:
            return fh.read()

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError as exc:
            raise StoreError(f"{self.url}: object {key} not found") from exc

    def list(self, prefix: str) -> builtins.list[str]:
        base = self._path(prefix) if prefix.strip("/") else self.root
        if not base.is_dir():
            return []
        return sorted(p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file())

    def delete(self, keys: builtins.list[str]) -> None:
        for key in keys:
            self._path(key).unlink(missing_ok=True)
        for key in keys:  # drop directories left empty, up to the store root
            parent = self._path(key).parent
            while parent != self.root and parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
                parent = parent.parent


@dataclass(frozen=True)
class S3Options:
    """Connection settings for an S3 API (AWS, OCI, MinIO, Ceph)."""

    endpoint_url: str | None = None
    region: str | None = None
    path_style: bool = False
    part_size: int = 16 << 20
    concurrency: int = 4


class S3Store:
    """An S3 bucket and prefix; multipart uploads for large objects, checksums only where required (OCI)."""

    def __init__(self, bucket: str, prefix: str, options: S3Options) -> None:
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}".rstrip("/")
        conf = Config(
            region_name=options.region,
            s3={"addressing_style": "path" if options.path_style else "auto"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            connect_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT,
            retries={"max_attempts": ATTEMPTS, "mode": "standard"},
            max_pool_connections=max(10, options.concurrency * 2),
        )
        self.client = boto3.client("s3", endpoint_url=options.endpoint_url, config=conf)
        self.transfer = TransferConfig(multipart_threshold=options.part_size, multipart_chunksize=options.part_size,
                                       max_concurrency=options.concurrency, use_threads=True)

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key.strip('/')}" if self.prefix else key.strip("/")

    def _fail(self, what: str, key: str, exc: Exception) -> StoreError:
        return StoreError(f"{self.url}: {what} {key}: {exc}")

    def put_stream(self, key: str, reader: Reader) -> int:
        counted = _Counting(reader)
        try:  # boto3 only reads from it; its stubs ask for a whole IO
            self.client.upload_fileobj(counted, self.bucket, self._key(key),  # type: ignore[arg-type]
                                       Config=self.transfer)
        except Exception as exc:  # botocore raises many unrelated types
            raise self._fail("upload", key, exc) from exc
        return counted.total

    @contextmanager
    def writer(self, key: str) -> Iterator[BinaryIO]:
        """A pipe into upload_fileobj in a thread; an exception in the block aborts the upload."""
        r, w = os.pipe()
        reader = _Abortable(os.fdopen(r, "rb", buffering=CHUNK))
        failure: list[BaseException] = []

        def upload() -> None:
            try:
                self.put_stream(key, reader)
            except BaseException as exc:  # reported by the writer below
                failure.append(exc)
            finally:
                reader.close()

        thread = threading.Thread(target=upload, name="s3-upload", daemon=True)
        thread.start()
        out = os.fdopen(w, "wb", buffering=CHUNK)
        try:
            yield out
            out.close()
        except BaseException as exc:
            reader.aborted = True  # the uploader fails its next read: a multipart upload is aborted
            try:
                out.close()
            except OSError:
                pass
            thread.join()
            if failure and isinstance(exc, OSError):  # the upload failed first, then the pipe closed
                raise failure[0] from None
            raise
        thread.join()
        if failure:
            raise failure[0]

    def put_bytes(self, key: str, data: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        except Exception as exc:
            raise self._fail("upload", key, exc) from exc

    def get_stream(self, key: str) -> Body:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except Exception as exc:
            raise self._fail("download", key, exc) from exc

    def get_bytes(self, key: str) -> bytes:
        body = self.get_stream(key)
        try:
            return body.read()
        finally:
            body.close()

    def size(self, key: str) -> int:
        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=self._key(key))["ContentLength"])
        except Exception as exc:
            raise self._fail("head", key, exc) from exc

    def list(self, prefix: str) -> builtins.list[str]:
        full = self._key(prefix)
        if full and not full.endswith("/"):
            full += "/"
        keys: list[str] = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full):
                keys.extend(o["Key"] for o in page.get("Contents", []))
        except Exception as exc:
            raise self._fail("list", prefix, exc) from exc
        cut = len(self.prefix) + 1 if self.prefix else 0
        return sorted(k[cut:] for k in keys)

    def abort_uploads(self, prefix: str, older_than: float) -> builtins.list[str]:
        """Abort multipart uploads under prefix started more than older_than seconds ago (killed saves)."""
        import datetime as dt

        cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=older_than)
        aborted: list[str] = []
        try:
            pages = self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket,
                                                                                 Prefix=self._key(prefix) + "/")
            for page in pages:
                for up in page.get("Uploads", []):
                    if up["Initiated"] < cutoff:
                        self.client.abort_multipart_upload(Bucket=self.bucket, Key=up["Key"], UploadId=up["UploadId"])
                        aborted.append(up["Key"])
        except Exception as exc:
            raise self._fail("abort uploads under", prefix, exc) from exc
        return aborted

    def delete(self, keys: builtins.list[str]) -> None:
        # one DeleteObject per key: DeleteObjects needs a checksum some S3 implementations reject
        for key in keys:
            try:
                self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
            except Exception as exc:
                raise self._fail("delete", key, exc) from exc


class _Abortable:
    """A reader that fails once the writer gave up, so a half-written object is never completed."""

    def __init__(self, reader: BinaryIO) -> None:
        self.reader, self.aborted = reader, False

    def read(self, n: int = -1) -> bytes:
        if self.aborted:
            raise StoreError("upload aborted by the writer")
        data = self.reader.read(n)
        if self.aborted:  # the EOF that closing the pipe produced: not the end of the object
            raise StoreError("upload aborted by the writer")
        return data

    def close(self) -> None:
        self.reader.close()


class _Counting:
    """A reader that counts what passed through it."""

    def __init__(self, reader: Reader) -> None:
        self.reader, self.total = reader, 0

    def read(self, n: int = -1) -> bytes:
        data = self.reader.read(n)
        self.total += len(data)
        return data


def open_store(url: str, options: S3Options | None = None) -> Store:
    """A store from a path, file:// URL or s3://bucket/prefix."""
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise StoreError(f"{url}: s3 URL needs a bucket (s3://bucket/prefix)")
        return S3Store(parsed.netloc, parsed.path, options or S3Options())
    if parsed.scheme == "file":
        return DirStore(parsed.path)
    if parsed.scheme:
        raise StoreError(f"{url}: unsupported store (use a directory, file:// or s3://)")
    return DirStore(url)


def copy_stream(reader: Reader, writer: BinaryIO) -> int:
    """Copy in 1 MiB chunks; returns bytes copied."""
    total = 0
    while chunk := reader.read(CHUNK):
        writer.write(chunk)
        total += len(chunk)
    return total


__all__ = ["Body", "DirStore", "Reader", "S3Options", "S3Store", "Store", "StoreError", "copy_stream", "open_store"]
