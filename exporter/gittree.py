"""Git objects of the exporter's commits through libgit2 (pygit2), and a pack stream for big batches.

A commit rewrites only the trees on the paths it changes (libgit2 tree builders on HEAD's trees), so its
cost does not depend on the objects kept in Python: none are. Blobs of a small commit are written loose by
libgit2; a big batch (a resync of 100,000 objects) streams its blobs into one pack file as they arrive,
keeping ~100 bytes per object, because pygit2 exposes no pack writer for new objects and a loose file per
object costs 100-300 us on a busy disk. Objects are only referenced once the branch moves (`git update-ref`),
and a pack appears with its .idx last, so a kill at any instant leaves at worst unreferenced objects.
"""

from __future__ import annotations

import hashlib
import os
import struct
import time
import zlib
from array import array
from collections.abc import Iterable, Mapping

import pygit2

from kubedr.contract import FILE_MODES

BLOB, TREE, COMMIT = pygit2.GIT_OBJECT_BLOB, pygit2.GIT_OBJECT_TREE, pygit2.GIT_OBJECT_COMMIT
FILE_MODE, TREE_MODE = pygit2.GIT_FILEMODE_BLOB, pygit2.GIT_FILEMODE_TREE
PACK_THRESHOLD = 32  # a commit with more new blobs than this streams them into one pack, not loose files


def blob_id(data: bytes) -> bytes:
    """The git object id (raw 20 bytes) of a blob holding data."""
    return pygit2.hash(data).raw


class PackStream:
    """One pack v2 written as objects arrive (no deltas); the .idx is made at finish()."""

    def __init__(self, pack_dir: str) -> None:
        os.makedirs(pack_dir, exist_ok=True)
        self.pack_dir = pack_dir
        self.tmp = os.path.join(pack_dir, f"tmp_kubedr_{os.getpid()}_{id(self):x}.pack")
        self.fh = open(self.tmp, "wb+")  # noqa: SIM115 - closed by finish() or abort()
        self.fh.write(b"PACK" + struct.pack(">II", 2, 0))
        self.names = bytearray()  # 20 bytes per object, in write order
        self.has: set[bytes] = set()  # the same ids, to write each object once
        self.crcs = array("I")
        self.offsets = array("Q")
        self.size = 12

    def __len__(self) -> int:
        return len(self.crcs)

    def add(self, kind: int, oid: bytes, data: bytes) -> None:
        """Append one object (its id computed by the caller)."""
        if oid in self.has:
            return
        self.has.add(oid)
        record = _entry_header(kind, len(data)) + zlib.compress(data, 1)
        self.names += oid
        self.crcs.append(zlib.crc32(record))
        self.offsets.append(self.size)
        self.fh.write(record)
        self.size += len(record)

    def abort(self) -> None:
        """Drop the half-written pack (on a full disk too: closing may fail to flush what is buffered)."""
        try:
            self.fh.close()
        except OSError:
            pass
        try:
            os.unlink(self.tmp)
        except FileNotFoundError:
            pass

    def finish(self) -> str:
        """Count, checksum and index the pack, then move .pack and .idx (last) into place; returns its base path."""
        count = len(self.crcs)
        self.fh.seek(8)
        self.fh.write(struct.pack(">I", count))
        self.fh.seek(0)
        digest = hashlib.sha1(usedforsecurity=False)
        while chunk := self.fh.read(1 << 20):
            digest.update(chunk)
        checksum = digest.digest()
        self.fh.write(checksum)
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        names = self.names
        order = sorted(range(count), key=lambda i: names[20 * i:20 * i + 20])
        fanout = [0] * 256
        for i in order:
            fanout[names[20 * i]] += 1
        total = 0
        for b in range(256):
            total += fanout[b]
            fanout[b] = total
        large = array("Q")
        small = array("I")
        for i in order:
            off = self.offsets[i]
            if off < 0x80000000:
                small.append(off)
            else:
                small.append(0x80000000 | len(large))
                large.append(off)
        crcs = array("I", (self.crcs[i] for i in order))
        for table in (small, crcs, large):
            if struct.pack("=I", 1) != struct.pack(">I", 1):
                table.byteswap()  # network order
        idx = bytearray(b"\377tOc" + struct.pack(">I", 2) + struct.pack(">256I", *fanout))
        idx += b"".join(names[20 * i:20 * i + 20] for i in order)
        idx += crcs.tobytes() + small.tobytes() + large.tobytes() + checksum
        idx += hashlib.sha1(idx, usedforsecurity=False).digest()
        base = os.path.join(self.pack_dir, f"pack-{checksum.hex()}")
        os.replace(self.tmp, base + ".pack")
        tmp = f"{base}.idx.tmp{os.getpid()}"
        with open(tmp, "wb") as fh:
            fh.write(idx)
        os.replace(tmp, base + ".idx")
        return base


def _entry_header(kind: int, size: int) -> bytes:
    byte = (kind << 4) | (size & 0x0F)
    size >>= 4
    out = bytearray()
    while size:
        out.append(byte | 0x80)
        byte = size & 0x7F
        size >>= 7
    out.append(byte)
    return bytes(out)


class BlobSink:
    """The new blobs of the next commit: kept in memory while few, streamed into one pack when many."""

    def __init__(self, repo: pygit2.Repository) -> None:
        self.repo = repo
        self.small: dict[bytes, bytes] = {}
        self.pack: PackStream | None = None
        self.failed: OSError | None = None  # the pack could not be written (a full disk): the batch cannot commit

    def add(self, data: bytes) -> bytes:
        """Stage a blob; returns its raw id (callers stage what HEAD lacks: a copy in another pack is harmless)."""
        oid = blob_id(data)
        if oid in self.small or self.failed is not None:
            return oid
        try:
            if self.pack is not None:
                self.pack.add(BLOB, oid, data)
            elif len(self.small) < PACK_THRESHOLD:
                self.small[oid] = data
            else:
                self.pack = PackStream(os.path.join(self.repo.path, "objects", "pack"))
                for known, body in self.small.items():
                    self.pack.add(BLOB, known, body)
                self.small = {}
                self.pack.add(BLOB, oid, data)
        except OSError as exc:  # one error for the batch (flush raises it), not one per object
            self.failed = exc
            self.discard(keep_failure=True)
        return oid

    def get(self, oid: bytes) -> bytes | None:
        """A staged blob's bytes while it is still in memory."""
        return self.small.get(oid)

    def flush(self) -> None:
        """Make every staged blob readable in the repository: a pack when many, loose objects otherwise."""
        if self.failed is not None:
            raise self.failed
        pack, self.pack = self.pack, None
        small, self.small = self.small, {}
        if pack is not None:
            try:
                pack.finish()  # libgit2 finds the new pack on its next lookup miss
            except OSError:
                pack.abort()
                raise
        for data in small.values():
            self.repo.odb.write(BLOB, data)

    def discard(self, keep_failure: bool = False) -> None:
        """Forget what was staged (a batch that made no commit)."""
        if self.pack is not None:
            self.pack.abort()
        self.pack, self.small = None, {}
        if not keep_failure:
            self.failed = None


class TreeCache:
    """HEAD's directories as libgit2 tree builders, kept from one commit to the next.

    A commit changes only the entries it touches and writes the directories on their paths; a directory is
    read from git once (not once per commit), and its entries live in libgit2, not in Python objects.
    """

    def __init__(self, repo: pygit2.Repository, root: pygit2.Oid | None) -> None:
        self.repo = repo
        self.root = root
        self.dirs: dict[str, pygit2.TreeBuilder | None] = {}

    def _tree(self, oid: pygit2.Oid | None) -> pygit2.Tree | None:
        """The tree behind a directory entry; None when its object is not a tree (a hostile entry)."""
        try:
            tree = self.repo.get(oid) if oid is not None else None
        except pygit2.GitError:  # a tree git cannot parse either: as if absent, what is written replaces it
            return None
        return tree if isinstance(tree, pygit2.Tree) else None

    def _dir(self, path: str, create: bool = False) -> pygit2.TreeBuilder | None:
        """The builder of a directory ("" the root); None when absent and not created."""
        builder = self.dirs.get(path)
        if builder is not None or (path in self.dirs and not create):
            return builder
        if not path:
            tree = self._tree(self.root)
            builder = self.repo.TreeBuilder(tree) if tree is not None else self.repo.TreeBuilder()
        else:
            parent_path, _, name = path.rpartition("/")
            parent = self._dir(parent_path, create)
            entry = parent.get(name) if parent is not None else None
            tree = self._tree(entry.id) if entry is not None and entry.filemode == TREE_MODE else None
            if tree is not None:
                builder = self.repo.TreeBuilder(tree)
            elif create and parent is not None:
                if entry is not None:
                    parent.remove(name)  # a file (or any entry that is not a directory) that a directory replaces
                builder = self.repo.TreeBuilder()
        self.dirs[path] = builder
        return builder

    def get(self, path: str) -> bytes | None:
        """The raw blob id at path, None when there is no regular file there (a symlink or submodule is none)."""
        folder, _, name = path.rpartition("/")
        builder = self._dir(folder)
        entry = builder.get(name) if builder is not None else None
        return None if entry is None or entry.filemode not in FILE_MODES else entry.id.raw

    def _drop(self, path: str) -> None:
        """Forget a directory and everything below it (it went, or a file replaced it)."""
        prefix = path + "/"
        for known in [d for d in self.dirs if d == path or d.startswith(prefix)]:
            self.dirs[known] = None

    def apply(self, changes: Mapping[str, bytes | None], drops: Iterable[tuple[str, str]] = ()) -> pygit2.Oid:
        """Apply path -> raw blob id (None removes) and write the changed directories; returns the root tree.

        drops are (directory, name) entries removed first, whatever they are (entries kubedr refuses to read).
        A directory left empty goes; a file replaces a directory of the same name and the other way round.
        """
        dirty: set[str] = set()
        for folder, name in drops:
            builder = self._dir(folder)
            if builder is None or builder.get(name) is None:
                continue
            builder.remove(name)  # never a directory kubedr reads: nothing of it is cached
            dirty |= _ancestry(folder)
        removals_first = ((p, o) for wanted in (False, True) for p, o in changes.items() if (o is not None) == wanted)
        for path, oid in removals_first:
            folder, _, name = path.rpartition("/")
            builder = self._dir(folder, create=oid is not None)
            if builder is None:
                continue
            entry = builder.get(name)
            if oid is None:
                if entry is None or entry.filemode == TREE_MODE:
                    continue
                builder.remove(name)
            else:
                if entry is not None and entry.filemode == TREE_MODE:
                    self._drop(path)
                builder.insert(name, pygit2.Oid(raw=oid), FILE_MODE)
            dirty |= _ancestry(folder)
        for folder in sorted(dirty, key=lambda d: -d.count("/") - (1 if d else 0)):  # deepest first
            builder = self.dirs.get(folder)
            parent_path, _, name = folder.rpartition("/")
            parent = self.dirs.get(parent_path)
            if not folder or builder is None or parent is None:
                continue  # the root is written below; a dropped directory was replaced by a file
            if len(builder):
                parent.insert(name, builder.write(), TREE_MODE)
                continue
            entry = parent.get(name)
            if entry is not None and entry.filemode == TREE_MODE:
                parent.remove(name)
            self.dirs[folder] = None
        root = self._dir("", create=True)
        assert root is not None
        self.root = root.write()
        return self.root


def _ancestry(folder: str) -> set[str]:
    """A directory and every directory above it, the root ("") included."""
    out = {folder}
    while folder:
        folder = folder.rpartition("/")[0]
        out.add(folder)
    return out


COMMITTED_AT = "Kubedr-Committed-At"  # trailer: the commit time to the microsecond (git's own is whole seconds)


def committed_at(when: float) -> str:
    """The trailer's value for a Unix time: RFC 3339 UTC with microseconds, e.g. 2026-11-24T19:50:21.123456Z."""
    seconds = int(when)
    micros = min(999_999, round((when - seconds) * 1e6))
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{micros:06d}Z"


def with_trailer(message: str, key: str, value: str) -> str:
    """Append a trailer to the message's trailer block (a new block when its last paragraph is prose)."""
    body = message.rstrip("\n")
    head, _, tail = body.rpartition("\n\n")
    last = tail.splitlines() if head else []  # the subject is never a trailer block
    is_trailers = bool(last) and all(": " in ln and " " not in ln.split(": ", 1)[0] for ln in last)
    sep = "\n" if is_trailers else "\n\n"
    return f"{body}{sep}{key}: {value}\n"


def commit_object(tree: str, parent: str | None, message: str, env: dict[str, str],
                  when: float | None = None) -> bytes:
    """The bytes of a commit object, identities from GIT_AUTHOR_* / GIT_COMMITTER_*; when: the commit time."""
    now = f"{int(time.time() if when is None else when)} +0000"
    lines = [f"tree {tree}"] + ([f"parent {parent}"] if parent else [])
    lines.append(f"author {env['GIT_AUTHOR_NAME']} <{env['GIT_AUTHOR_EMAIL']}> {now}")
    lines.append(f"committer {env['GIT_COMMITTER_NAME']} <{env['GIT_COMMITTER_EMAIL']}> {now}")
    return ("\n".join(lines) + "\n\n" + message).encode()
