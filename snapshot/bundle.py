"""The bundle: tar -> compress -> age, streamed through pipes so memory stays flat whatever the size.

Writing runs three stages at once: a thread packs and compresses into a pipe, a thread age-encrypts that pipe
into a second one, and the caller's thread hands the second pipe to the store while hashing what it stores.
Reading mirrors it: the store's stream is hashed and decrypted in a thread, then decompressed and unpacked
into a staging directory, checking each file's size and sha256 on the way.
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import io
import os
import stat
import tarfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

import pyrage

from kubedr.snapshot.store import Reader, Store

CHUNK = 1 << 20
PIPE_SIZE = 1 << 20
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
GZIP_MAGIC = b"\x1f\x8b"
Progress = Callable[[int], None]


class BundleError(Exception):
    """The bundle could not be written or does not check out; the message names the object."""


def zstd_available() -> bool:
    """zstandard is optional: without it bundles are stored uncompressed (gzip is too slow for the goal)."""
    try:
        import zstandard  # noqa: F401
    except ImportError:
        return False
    return True


def default_compression() -> str:
    return "zstd" if zstd_available() else "none"


@dataclass(frozen=True)
class BundleFile:
    """One file in the bundle: where it comes from (a path or bytes) and its name inside the tar."""

    name: str
    path: Path | None = None
    data: bytes | None = None
    mode: int = 0o600
    sha256: str | None = None  # known already (the snapshot is hashed while it is checked)
    link: str | None = None  # a symlink with this target (sha256 is that of the target text)


@dataclass
class Written:
    """What the store now holds: size and sha256 of the object, and the file list of the tar."""

    size: int
    sha256: str
    files: list[dict[str, Any]]


class _HashingReader:
    """Reads through, hashing and counting; optionally reports progress."""

    def __init__(self, reader: Reader, progress: Progress | None = None, hashed: bool = True) -> None:
        self.reader, self.progress = reader, progress
        self.hash = hashlib.sha256() if hashed else None
        self.total = 0

    def read(self, n: int = -1) -> bytes:
        data = self.reader.read(n)
        if data:
            if self.hash is not None:
                self.hash.update(data)
            self.total += len(data)
            if self.progress:
                self.progress(len(data))
        return data

    def readinto(self, buf: Any) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)


def _pipe() -> tuple[BinaryIO, BinaryIO]:
    r, w = os.pipe()
    try:
        fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    except OSError:
        pass
    return os.fdopen(r, "rb", buffering=CHUNK), os.fdopen(w, "wb", buffering=CHUNK)


def _close(*files: Any) -> None:
    for f in files:
        try:
            f.close()
        except (OSError, ValueError):
            pass


class _Stage(threading.Thread):
    """A pipeline stage in a thread that keeps its exception for the caller."""

    def __init__(self, name: str, target: Callable[[], None], cleanup: Callable[[], None]) -> None:
        super().__init__(name=name, daemon=True)
        self._target_fn, self._cleanup = target, cleanup
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._target_fn()
        except BaseException as exc:  # reported by the caller after join
            self.error = exc
        finally:
            self._cleanup()


def _compressor(out: BinaryIO, compression: str) -> BinaryIO:
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdCompressor(level=1).stream_writer(out, closefd=False, write_size=CHUNK)
    if compression == "gzip":
        return gzip.GzipFile(fileobj=out, mode="wb", compresslevel=1)  # type: ignore[return-value]
    if compression == "none":
        return _NoClose(out)  # type: ignore[return-value]
    raise BundleError(f"unknown compression {compression!r} (zstd, gzip, none)")


class _NoClose(io.RawIOBase):
    def __init__(self, out: BinaryIO) -> None:
        self.out, self.pos = out, 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        n = self.out.write(b)
        self.pos += n
        return n

    def tell(self) -> int:
        return self.pos

    def close(self) -> None:
        self.out.flush()


def _pack(entries: list[BundleFile], out: BinaryIO, compression: str, files: list[dict[str, Any]],
          progress: Progress | None) -> None:
    comp = _compressor(out, compression)
    # "w", not the "w|" stream mode: it writes straight through instead of re-buffering every block
    # copybufsize is TarFile's own argument, which typeshed's open() does not list
    with tarfile.open(fileobj=comp, mode="w", format=tarfile.PAX_FORMAT,  # type: ignore[call-overload]
                      copybufsize=CHUNK) as tar:
        for e in entries:
            info = tarfile.TarInfo(e.name)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            extra: dict[str, Any] = {}
            if e.link is not None:
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, e.link, 0o777
                info.mtime = int(time.time())
                tar.addfile(info)
                sha, extra = hashlib.sha256(e.link.encode()).hexdigest(), {"link": e.link}
            elif e.path is not None:
                st = e.path.stat()
                info.size, info.mtime, info.mode = st.st_size, int(st.st_mtime), stat.S_IMODE(st.st_mode)
                with open(e.path, "rb") as fh:
                    reader = _HashingReader(fh, progress, hashed=e.sha256 is None)
                    tar.addfile(info, reader)
                if reader.total != info.size:
                    raise BundleError(f"{e.path}: changed size while being bundled")
                sha = e.sha256 or reader.hash.hexdigest()  # type: ignore[union-attr]
            else:
                data = e.data or b""
                info.size, info.mode = len(data), e.mode
                info.mtime = int(time.time())
                tar.addfile(info, io.BytesIO(data))
                sha = hashlib.sha256(data).hexdigest()
                if progress:
                    progress(len(data))
            files.append({"path": e.name, "size": info.size, "mode": f"{info.mode:04o}", "sha256": sha, **extra})
    comp.close()


class _HashingWriter:
    """Writes through, hashing and counting what the store receives."""

    def __init__(self, out: BinaryIO) -> None:
        self.out, self.hash, self.total = out, hashlib.sha256(), 0

    def write(self, data: Any) -> int:
        self.hash.update(data)
        self.total += len(data)
        self.out.write(data)
        return len(data)

    def flush(self) -> None:
        self.out.flush()


def write(store: Store, key: str, entries: Iterable[BundleFile], recipients: list[Any], compression: str = "zstd",
          progress: Progress | None = None) -> Written:
    """Pack, compress, encrypt and store the entries under key; nothing is held whole in memory.

    A thread packs and compresses into a pipe; this thread encrypts from the pipe straight into the store's
    writer, hashing what it writes. Any failure leaves no object behind (the store's writer is abandoned).
    """
    entries = list(entries)
    files: list[dict[str, Any]] = []
    r1, w1 = _pipe()
    packer = _Stage("bundle-pack", lambda: _pack(entries, w1, compression, files, progress),
                    lambda: _close(w1))
    packer.start()
    try:
        with store.writer(key) as out:
            stored = _HashingWriter(out)
            pyrage.encrypt_io(r1, stored, recipients)  # type: ignore[arg-type]  # any file-like; stubs say Buffered
            packer.join()
            if packer.error is not None:  # raised inside the block: the object is not committed
                raise BundleError(f"{store.url}/{key}: packing failed: {packer.error}") from packer.error
    finally:
        _close(r1)
        packer.join()
    return Written(size=stored.total, sha256=stored.hash.hexdigest(), files=files)


@dataclass
class Read:
    """What came back: size and sha256 of the stored object, and each extracted file's size and sha256."""

    size: int
    sha256: str
    files: dict[str, dict[str, Any]]


def _safe_name(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or any(p in ("..", "") for p in path.parts) or not path.parts:
        raise BundleError(f"unsafe path in bundle: {name!r}")
    return path


def _decompressor(reader: io.BufferedReader) -> BinaryIO:
    head = reader.peek(4)[:4]
    if head.startswith(ZSTD_MAGIC):
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(reader, read_size=CHUNK)
    if head.startswith(GZIP_MAGIC):
        return gzip.GzipFile(fileobj=reader, mode="rb")  # type: ignore[return-value]  # a BufferedIOBase
    return reader


def _unpack(reader: io.BufferedReader, dest: Path, progress: Progress | None) -> dict[str, dict[str, Any]]:
    files: dict[str, dict[str, Any]] = {}
    with tarfile.open(fileobj=_decompressor(reader), mode="r|", bufsize=CHUNK) as tar:
        for member in tar:
            rel = _safe_name(member.name)
            target = dest.joinpath(*rel.parts)
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            if member.issym():  # recreated as a link, never followed in staging
                target.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(member.linkname, target)
                files[str(rel)] = {"size": 0, "sha256": hashlib.sha256(member.linkname.encode()).hexdigest(),
                                   "mode": "0777", "link": member.linkname}
                continue
            if not member.isfile():
                raise BundleError(f"bundle entry {member.name!r} is not a regular file")
            target.parent.mkdir(parents=True, exist_ok=True)
            h = hashlib.sha256()
            src = tar.extractfile(member)
            assert src is not None
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                while chunk := src.read(CHUNK):
                    h.update(chunk)
                    out.write(chunk)
                    if progress:
                        progress(len(chunk))
            os.chmod(target, stat.S_IMODE(member.mode) & 0o777)
            files[str(rel)] = {"size": member.size, "sha256": h.hexdigest(), "mode": f"{member.mode & 0o777:04o}"}
    return files


def _explain(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if "no matching keys" in text.lower() or "NoMatchingKeys" in text:
        return "no identity matches the bundle's recipients (wrong --identity?)"
    return text


def read(store: Store, key: str, identities: list[Any], dest: Path, progress: Progress | None = None,
         expect: tuple[int, str] | None = None) -> Read:
    """Download, hash, decrypt and unpack the bundle into dest (a staging directory).

    expect is the (size, sha256) the manifest recorded: when decryption fails, the error says whether the
    object itself was damaged or truncated, or the identity is wrong.
    """
    source = store.get_stream(key)
    try:
        return _read(source, f"{store.url}/{key}", identities, dest, progress, expect)
    finally:
        _close(source)


def _read(source: Reader, where: str, identities: list[Any], dest: Path, progress: Progress | None,
          expect: tuple[int, str] | None) -> Read:
    hashed = _HashingReader(source)
    r, w = _pipe()
    decrypter = _Stage("bundle-decrypt", lambda: pyrage.decrypt_io(hashed, w, identities),  # type: ignore[arg-type]
                       lambda: _close(w))  # pyrage reads and writes any file-like; its stubs say BufferedIOBase
    decrypter.start()
    files: dict[str, dict[str, Any]] = {}
    unpack_error: BaseException | None = None
    try:
        assert isinstance(r, io.BufferedReader)  # os.fdopen with a buffer size
        files = _unpack(r, dest, progress)
        while r.read(CHUNK):  # drain what follows the tar so the decrypter reaches the end
            pass
    except BaseException as exc:  # decided below, after the decrypter has spoken
        unpack_error = exc
    finally:
        _close(r)
        decrypter.join()
    if decrypter.error is not None:
        while hashed.read(CHUNK):
            pass
        got = (hashed.total, hashed.hash.hexdigest())  # type: ignore[union-attr]
        if expect is not None and got != expect:
            raise BundleError(f"{where}: damaged or truncated: {got[0]} bytes with sha256 {got[1][:12]}..., the "
                              f"manifest says {expect[0]} bytes with sha256 {expect[1][:12]}...") from decrypter.error
        raise BundleError(f"{where}: cannot decrypt: {_explain(decrypter.error)}") from decrypter.error
    if unpack_error is not None:
        if isinstance(unpack_error, BundleError):
            raise unpack_error
        raise BundleError(f"{where}: cannot unpack: {unpack_error}") from unpack_error
    while hashed.read(CHUNK):  # anything after the age stream still counts towards the checksum
        pass
    return Read(size=hashed.total, sha256=hashed.hash.hexdigest(), files=files)  # type: ignore[union-attr]
