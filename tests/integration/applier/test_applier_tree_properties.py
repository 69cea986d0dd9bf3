"""Property test (hypothesis): trees with arbitrary entry names and modes, written as real git objects; the applier
applies exactly the regular files whose paths the contract accepts, each with the bytes at that entry.

Examples are bounded and derandomized, as in tests/unit/kubedr/test_contract_properties.py.
"""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubedr import contract
from kubedr.applier.decode import MANAGED_LABEL
from tests import hostile
from tests.conftest import run_git
from tests.integration.applier.conftest import apply, namespace

NAMES = st.one_of(st.sampled_from([
    b"shop", b"web", b"_cluster", b"ConfigMap", b"ConfigMap.", b"Namespace", b"a.yaml", b"b.yaml", b"shop.yaml",
    b"web.yaml", b"..", b".", b".git", b".GIT", b"git~1", b"", b"shop/ConfigMap/a.yaml", b"ConfigMap/a.yaml",
    b"a%2E.yaml", "é.yaml".encode(), b"\xff.yaml", b".kubedr", b"README.md", b"shop\\ConfigMap\\a.yaml",
]), st.text(alphabet="ab./\\~%", min_size=1, max_size=6).map(str.encode))
FILE_MODES = st.sampled_from(["100644", "100755", "100664", "120000", "644", "160000"])


def trees(depth: int = 3) -> st.SearchStrategy:
    """A directory: a list of (name, mode, child), child a nested directory for mode 40000."""
    leaf = st.tuples(NAMES, FILE_MODES, st.none())
    if depth == 0:
        return st.lists(leaf, max_size=4)
    return st.lists(st.one_of(leaf, st.tuples(NAMES, st.just("40000"), st.deferred(lambda: trees(depth - 1)))),
                    max_size=4)


def repos() -> st.SearchStrategy:
    """A root with real object files (shop/ConfigMap/a.yaml, web/ConfigMap/b.yaml) among arbitrary entries."""
    mode = st.sampled_from(["100644", "100644", "100755", "100664", "120000"])
    return st.builds(lambda a, b, cm, shop, root: [
        (b"shop", "40000", [(b"ConfigMap", "40000", [(b"a.yaml", a, None), *cm]), *shop]),
        (b"web", "40000", [(b"ConfigMap", "40000", [(b"b.yaml", b, None)])]), *root],
        mode, mode, trees(0), trees(1), trees(2))


def manifest(path: str, entry: int, example: int) -> bytes:
    """What an object file at this path holds (tagged with the entry), or plain text for any other path."""
    try:
        ref = contract.ref_of_path(path)
    except contract.ManifestError:
        ref = None
    if ref is None or (ref.group, ref.kind) not in (("", "ConfigMap"), ("", "Namespace")):
        return b"not: an object\n"
    meta = {"name": ref.name, **({"namespace": ref.namespace} if ref.namespace else {})}
    return contract.dump({"apiVersion": "v1", "kind": ref.kind, "metadata": meta,
                          **({"data": {"entry": str(entry), "example": str(example)}} if ref.namespace else {})})


def write(repo: Path, directory: list, parent: str, example: int, counter: Any, expected: dict[str, int]) -> str:
    """Write the directory as a tree (entries as listed, unchecked); note in expected what must be applied."""
    names = [name for name, _, _ in directory]
    entries = []
    for name, mode, child in directory:
        path = f"{parent}/{name.decode('utf-8', 'replace')}" if parent else name.decode("utf-8", "replace")
        ok = names.count(name) == 1 and contract.entry_problem(name, int(mode, 8)) is None
        if child is not None:
            entries.append((mode, name, write(repo, child, path, example, counter, expected if ok else {})))
        elif mode == "160000":
            entries.append((mode, name, "1" * 40))
        else:
            entry = next(counter)
            entries.append((mode, name, hostile.blob(repo, manifest(path, entry, example))))
            if ok and _is_object(path):
                expected[path] = entry
    return hostile.tree(repo, entries)


def _is_object(path: str) -> bool:
    try:
        ref = contract.ref_of_path(path)
    except contract.ManifestError:
        return False
    return ref is not None and ref.kind == "ConfigMap" and ref.namespace in ("shop", "web")


@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(repos())
def test_the_applier_applies_exactly_the_regular_files_the_contract_accepts(root: list) -> None:
    from kubedr.emulator.server import Emulator

    example = next(EXAMPLES)
    with tempfile.TemporaryDirectory() as tmp:
        emu = Emulator().start()
        try:
            emu.kubeconfig_path = str(emu.write_kubeconfig(Path(tmp) / "kubeconfig"))
            for ns in ("shop", "web"):
                emu.api.create(namespace(ns))
            repo = Path(tmp) / "repo.git"
            run_git("init", "--bare", "-q", "-b", "main", str(repo))
            expected: dict[str, int] = {}
            hostile.commit(repo, write(repo, root, "", example, itertools.count(), expected), f"example {example}")
            apply(emu, repo, "--no-validate")
            applied = {f"{o['metadata']['namespace']}/ConfigMap/{o['metadata']['name']}.yaml": int(o["data"]["entry"])
                       for o in emu.api.list("v1", "ConfigMap")
                       if MANAGED_LABEL in (o["metadata"].get("labels") or {})}
        finally:
            emu.stop()
    assert applied == expected


EXAMPLES = itertools.count()
