"""`kubedr seal | unseal | reseal`: operator tools around kubedr.sealing (files or stdin/stdout with '-')."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import pygit2

from kubedr import config, contract, git, sealing
from kubedr.config import UsageError
from kubedr.exporter import treewalk

log = logging.getLogger("kubedr.sealing")


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    """Flags of one of seal / unseal / reseal."""
    if name in ("seal", "unseal"):
        parser.add_argument("input", nargs="?", default="-", help="Secret manifest (YAML/JSON); '-' for stdin")
        parser.add_argument("-o", "--output", default="-", help="where to write; '-' for stdout (default)")
    if name in ("seal", "reseal"):
        parser.add_argument("--recipient", action="append", help="age recipient (age1...); repeatable")
        parser.add_argument("--recipients-file", action="append", help="file of recipients, one per line")
        parser.add_argument("--digest-key-file", help="the exporter's digest key: keeps unchanged values' "
                                                      "ciphertext (seal), seals plain Secrets (reseal)")
    if name in ("unseal", "reseal"):
        parser.add_argument("--identity", action="append", help="age identity file (age-keygen); repeatable")
    if name == "seal":
        parser.add_argument("--previous", help="earlier sealed file whose unchanged values are kept "
                                               "(default: the output file, if it exists)")
    if name == "reseal":
        parser.add_argument("--repo", default=".", help="working tree of the config repo (default: .)")
        parser.add_argument("--message", help="commit message (default: says what was resealed)")
        parser.add_argument("--signing-key", help="SSH private key that signs the commit (git gpg.format=ssh)")


def _read(path: str) -> tuple[bytes, str]:
    if path == "-":
        return sys.stdin.buffer.read(), "<stdin>"
    try:
        return Path(path).read_bytes(), path
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}") from exc


def _write(path: str, data: bytes, private: bool) -> None:
    """stdout, or an atomic file write (0600 when it holds plaintext)."""
    if path == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=".kubedr-", dir=target.parent if str(target.parent) else ".")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o600 if private else 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _recipients(args: argparse.Namespace) -> list[str]:
    recipients = sealing.load_recipients(args.recipient or [], args.recipients_file or [])
    if not recipients:
        raise UsageError(f"kubedr {args.command} needs --recipient age1... or --recipients-file")
    return recipients


def _identities(args: argparse.Namespace) -> list[Any]:
    if not args.identity:
        raise UsageError(f"kubedr {args.command} needs --identity FILE (an age-keygen identity)")
    return sealing.load_identities(args.identity)


def _digest_key(args: argparse.Namespace) -> bytes | None:
    return sealing.load_digest_key(args.digest_key_file) if args.digest_key_file else None


def _previous(path: str | None) -> dict[str, Any] | None:
    if not path or path == "-" or not Path(path).exists():
        return None
    data, label = _read(path)
    obj = contract.load(data, label)
    return obj if sealing.is_sealed(obj) else None


def _seal(args: argparse.Namespace) -> int:
    data, label = _read(args.input)
    secret = contract.load(data, label)
    sealer = sealing.Sealer(_recipients(args), _digest_key(args) or sealing.generate_digest_key())
    previous = _previous(args.previous or (args.output if args.output != "-" else None))
    _write(args.output, contract.dump(sealer.seal(secret, previous)), private=False)
    return 0


def _unseal(args: argparse.Namespace) -> int:
    data, label = _read(args.input)
    sealed = contract.load(data, label)
    if not sealing.is_sealed(sealed):
        raise sealing.SealingError(f"{label}: not a sealed Secret")
    _write(args.output, contract.dump(sealing.unseal(sealed, _identities(args))), private=True)
    return 0


def _committed_secrets(root: Path) -> dict[str, bytes]:
    """path -> bytes of every Secret file HEAD holds, read from git objects; entries git refuses are named, unread."""
    try:
        repo = pygit2.Repository(str(root))
        head = repo.head.peel(pygit2.Commit)
    except (pygit2.GitError, KeyError):
        return {}  # no commit yet: nothing committed to reseal
    found = treewalk.files(repo, head.tree_id)
    for entry in found.refused:
        log.warning("%s: %s; not read, left as it is", entry.path, entry.why)
    out = {}
    for path, oid in sorted(found.changes):
        parts = path.split("/")
        if oid is not None and len(parts) == 3 and parts[1] == "Secret" and path.endswith(contract.SUFFIX):
            out[path] = repo[pygit2.Oid(raw=oid)].peel(pygit2.Blob).data
    return out


def _through_link(root: Path, rel: str) -> str | None:
    """The first symbolic link on the way from root to rel in the work tree (never written through), or None."""
    path = root
    for part in rel.split("/"):
        path = path / part
        if path.is_symlink():
            return path.relative_to(root).as_posix()
    return None


def _reseal(args: argparse.Namespace) -> int:
    top = git.run(["-C", args.repo, "rev-parse", "--show-toplevel"], check=False) \
        if Path(args.repo).is_dir() else None
    if top is None or not top.ok:
        raise UsageError(f"--repo {args.repo}: not a git working tree")
    root = Path(top.text.strip())
    recipients, identities = _recipients(args), _identities(args)
    signer = config.signer(args.signing_key)
    key = _digest_key(args)
    sealer = sealing.Sealer(recipients, key) if key else None
    changed: dict[str, bytes] = {}
    errors: list[str] = []
    plain: list[str] = []
    for rel, old in _committed_secrets(root).items():
        try:
            if contract.ref_of_path(rel) is None:
                continue
            obj = contract.load(old, rel)
            if sealing.is_sealed(obj):
                new = contract.dump(sealing.reseal(obj, identities, recipients))
            elif sealer is not None:
                new = contract.dump(sealer.seal(obj))
            else:
                plain.append(rel)
                continue
        except (contract.ManifestError, sealing.SealingError, sealing.UnsealError) as exc:
            errors.append(str(exc))
            continue
        if new != old:
            changed[rel] = new
    for rel in plain:
        log.warning("%s: plain Secret left as is (give --digest-key-file to seal it too)", rel)
    status = git.run(["status", "--porcelain", "-z", "--", *changed], cwd=root).text if changed else ""
    dirty = sorted({entry[3:] for entry in status.split("\0") if len(entry) > 3})
    errors += [f"{rel}: has uncommitted changes; commit or discard them first" for rel in dirty]
    errors += [f"{rel}: {link} is a symbolic link in the working tree; nothing is written through one"
               for rel in changed if (link := _through_link(root, rel))]
    if errors:
        for line in errors:
            log.error("%s", line)
        log.error("reseal: nothing written (%d error(s)); every Secret must open before recipients rotate",
                  len(errors))
        return 1
    if not changed:
        log.info("reseal: every Secret is already sealed for these recipients; no commit")
        return 0
    for rel, data in changed.items():
        _write(str(root / rel), data, private=False)
    names = [contract.ref_of_path(rel).display for rel in changed]  # type: ignore[union-attr]
    message = args.message or (
        f"reseal {len(changed)} Secret(s) for {len(recipients)} recipient(s)\n\n"
        + "".join(f"- {n}\n" for n in names) + "\nKubedr-Recipients: " + ", ".join(recipients) + "\n")
    git.run(["add", "--", *changed], cwd=root)
    git.run(["commit", "-q", "-F", "-", "--", *changed], cwd=root, stdin=message.encode(),
            env=signer.git_config() if signer else None)
    sha = git.run(["rev-parse", "HEAD"], cwd=root).text.strip()
    log.info("reseal: %d Secret(s) re-sealed in commit %s", len(changed), sha[:12])
    return 0


def run(args: argparse.Namespace) -> int:
    """Dispatch on args.command; bad input is one line naming the file or Secret, exit code 1."""
    handlers = {"seal": _seal, "unseal": _unseal, "reseal": _reseal}
    try:
        return handlers[args.command](args)
    except (contract.ManifestError, sealing.SealingError, sealing.UnsealError) as exc:
        log.error("%s", exc)
        return 1
