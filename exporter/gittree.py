"""HEAD's tree kept in memory; blobs, trees and commits written as loose objects, so a commit spawns no git.

A group commit then costs a few milliseconds whatever the size of the repo: only the directories on the path
of a changed file are re-serialised, and each keeps its entries encoded in git order (a change is a bisect,
not a re-sort of a 10,000-entry directory). Objects are written like git does (zlib, temp file + rename),
so a kill at any instant leaves at worst an unreferenced object; the branch only moves through `git update-ref`.
"""

from __future__ import annotations

import bisect
import hashlib
import os
import struct
import time
import zlib
from pathlib import Path

FILE_MODE = "100644"
TREE_MODE = b"40000"


class _Dir:
    """One directory: its entries, and their serialised form kept in git order between commits."""

    __slots__ = ("entries", "sha", "order", "encoded", "dirty")

    def __init__(self) -> None:
        self.entries: dict[str, tuple[str, str] | _Dir] = {}
        self.sha: str | None = None  # None: changed since last serialised
        self.order: list[bytes] = []  # git sort keys (directories sort as "name/")
        self.encoded: dict[bytes, bytes] = {}  # sort key -> "mode name\0<sha>" bytes
        self.dirty: set[str] = set()  # subdirectories to serialise again

    @staticmethod
    def _key(name: str, is_dir: bool) -> bytes:
        return name.encode() + (b"/" if is_dir else b"")

    def put(self, name: str, entry: tuple[str, str] | _Dir) -> None:
        is_dir = isinstance(entry, _Dir)
        old = self.entries.get(name)
        if old is not None and isinstance(old, _Dir) != is_dir:
            self.remove(name)
            old = None
        key = self._key(name, is_dir)
        if old is None:
            if not self.order or key > self.order[-1]:
                self.order.append(key)
            else:
                bisect.insort(self.order, key)
        self.entries[name] = entry
        if not is_dir:
            mode, sha = entry  # type: ignore[misc]
            self.encoded[key] = (mode.lstrip("0") or "0").encode() + b" " + name.encode() + b"\0" + bytes.fromhex(sha)
        self.sha = None

    def remove(self, name: str) -> None:
        entry = self.entries.pop(name, None)
        if entry is None:
            return
        key = self._key(name, isinstance(entry, _Dir))
        del self.order[bisect.bisect_left(self.order, key)]
        self.encoded.pop(key, None)
        self.dirty.discard(name)
        self.sha = None


PACK_TYPES = {"commit": 1, "tree": 2, "blob": 3}
PACK_THRESHOLD = 32  # a commit with more new objects than this is written as one pack, not loose files


class ObjectStore:
    """Writes objects into a repository: loose files, or one pack per large batch (one file, not thousands)."""

    def __init__(self, gitdir: Path) -> None:
        self.objects = os.path.join(gitdir, "objects")
        self._dirs: set[str] = set()
        self._batch: dict[str, tuple[str, bytes]] | None = None

    def begin(self) -> None:
        """Collect the objects of one commit in memory until flush()."""
        self._batch = {}

    def discard(self) -> None:
        """Forget unflushed objects (a batch that made no commit)."""
        self._batch = None

    def flush(self) -> None:
        """Write what begin() collected: a pack when large, loose objects otherwise."""
        batch, self._batch = self._batch or {}, None
        if len(batch) > PACK_THRESHOLD:
            write_pack(os.path.join(self.objects, "pack"), batch)
        else:
            for sha, (kind, data) in batch.items():
                self._loose(sha, f"{kind} {len(data)}\0".encode() + data)

    def write(self, kind: str, data: bytes) -> str:
        """Store one object; returns its SHA-1 (nothing is written when it already exists loose)."""
        raw = f"{kind} {len(data)}\0".encode() + data
        sha = hashlib.sha1(raw, usedforsecurity=False).hexdigest()
        if self._batch is not None:
            if not os.path.exists(os.path.join(self.objects, sha[:2], sha[2:])):
                self._batch[sha] = (kind, data)
        else:
            self._loose(sha, raw)
        return sha

    def _loose(self, sha: str, raw: bytes) -> None:
        folder = os.path.join(self.objects, sha[:2])
        path = os.path.join(folder, sha[2:])
        if not os.path.exists(path):
            if folder not in self._dirs:
                os.makedirs(folder, exist_ok=True)
                self._dirs.add(folder)
            tmp = os.path.join(folder, f"tmp_obj_{os.getpid()}_{sha[2:8]}")
            try:
                fh = open(tmp, "wb")  # noqa: SIM115 - closed below
            except FileNotFoundError:  # `git repack -d` (prune-packed) removed the emptied fan-out directory
                os.makedirs(folder, exist_ok=True)
                fh = open(tmp, "wb")  # noqa: SIM115
            with fh:
                fh.write(zlib.compress(raw, 1))
            os.replace(tmp, path)  # the directory now holds our file: prune-packed cannot remove it meanwhile


def _entry_header(kind: str, size: int) -> bytes:
    byte = (PACK_TYPES[kind] << 4) | (size & 0x0F)
    size >>= 4
    out = bytearray()
    while size:
        out.append(byte | 0x80)
        byte = size & 0x7F
        size >>= 7
    out.append(byte)
    return bytes(out)


def write_pack(pack_dir: str, objects: dict[str, tuple[str, bytes]]) -> str:
    """Write objects as pack v2 + idx v2 (no deltas); the .idx appears last, so git never sees half a pack."""
    os.makedirs(pack_dir, exist_ok=True)
    body = bytearray(b"PACK" + struct.pack(">II", 2, len(objects)))
    entries = []
    for sha, (kind, data) in objects.items():
        record = _entry_header(kind, len(data)) + zlib.compress(data, 1)
        entries.append((bytes.fromhex(sha), zlib.crc32(record), len(body)))
        body += record
    checksum = hashlib.sha1(body, usedforsecurity=False).digest()
    body += checksum
    entries.sort()
    fanout = [0] * 256
    for name, _, _ in entries:
        fanout[name[0]] += 1
    total = 0
    for i in range(256):
        total += fanout[i]
        fanout[i] = total
    idx = bytearray(b"\377tOc" + struct.pack(">I", 2) + struct.pack(">256I", *fanout))
    idx += b"".join(name for name, _, _ in entries)
    idx += b"".join(struct.pack(">I", crc) for _, crc, _ in entries)
    idx += b"".join(struct.pack(">I", offset) for _, _, offset in entries)
    idx += checksum
    idx += hashlib.sha1(idx, usedforsecurity=False).digest()
    base = os.path.join(pack_dir, f"pack-{checksum.hex()}")
    for suffix, content in ((".pack", body), (".idx", idx)):
        tmp = f"{base}{suffix}.tmp{os.getpid()}"
        with open(tmp, "wb") as fh:
            fh.write(content)
        os.replace(tmp, base + suffix)
    return base


class TreeModel:
    """The committed tree as nested directories of (mode, blob sha)."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.root = _Dir()

    def load(self, listing: str) -> None:
        """Fill from `git ls-tree -r -z --full-tree HEAD` output."""
        self.root = _Dir()
        for record in listing.split("\0"):
            if not record:
                continue
            meta, _, path = record.partition("\t")
            mode, _, sha = meta.split(" ")
            self.set(path, sha, mode)

    def _dir_of(self, path: str) -> _Dir | None:
        node = self.root
        for part in path.split("/")[:-1]:
            child = node.entries.get(part)
            if not isinstance(child, _Dir):
                return None
            node = child
        return node

    def get(self, path: str) -> str | None:
        """Blob sha at path, or None."""
        d = self._dir_of(path)
        entry = d.entries.get(path.rpartition("/")[2]) if d else None
        return entry[1] if isinstance(entry, tuple) else None

    def set(self, path: str, sha: str | None, mode: str = FILE_MODE) -> None:
        """Put a blob at path (None removes it, and its directories once empty); marks the path dirty."""
        parts = path.split("/")
        chain = [self.root]
        for part in parts[:-1]:
            child = chain[-1].entries.get(part)
            if not isinstance(child, _Dir):
                if sha is None:
                    return
                child = _Dir()
                chain[-1].put(part, child)
            chain.append(child)
        if sha is None:
            chain[-1].remove(parts[-1])
        else:
            chain[-1].put(parts[-1], (mode, sha))
        for i, d in enumerate(chain):
            d.sha = None
            if i + 1 < len(chain):
                d.dirty.add(parts[i])
        for i in range(len(chain) - 1, 0, -1):  # drop directories left empty
            if not chain[i].entries:
                chain[i - 1].remove(parts[i - 1])

    def write_tree(self, node: _Dir | None = None) -> str:
        """Serialise dirty directories bottom-up; returns the root tree sha."""
        node = node or self.root
        if node.sha is not None:
            return node.sha
        for name in node.dirty:
            child = node.entries.get(name)
            if isinstance(child, _Dir):
                node.encoded[name.encode() + b"/"] = TREE_MODE + b" " + name.encode() + b"\0" + bytes.fromhex(
                    self.write_tree(child))
        node.dirty.clear()
        node.sha = self.store.write("tree", b"".join(map(node.encoded.__getitem__, node.order)))
        return node.sha


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
