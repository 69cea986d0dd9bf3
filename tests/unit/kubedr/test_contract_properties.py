"""Property-based tests of the repo contract (hypothesis): canonical YAML and object <-> path, for any input.

Examples are bounded and derandomized, so the suite stays fast and a CI run is the same run every time.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from kubedr import contract
from kubedr.contract import ObjectRef, ref_of_path
from tests.conftest import shuffled

PROPERTY = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Words and numbers YAML 1.1 (PyYAML) or Go's YAML (kubectl) read as something other than a string.
YAML_WORDS = [
    "y", "Y", "n", "N", "yes", "No", "ON", "off", "Off", "true", "False", "TRUE", "null", "Null", "NULL", "~",
    "", " ", "-", "?", ":", "=", "<<", "!", "&a", "*a", "|", ">", "%", "@", "`", "#", "---", "...",
    ".inf", "-.Inf", "+.INF", ".nan", ".NaN", "0o17", "0O17", "017", "0x1F", "0X1F", "0b101", "0B101", "1e3",
    "1E+3", "-1.5e-3", ".5", "5.", "1_000", "1__0", "0_1", "+_1", "1_e3", "0_x1F", "08", "+1", "-0", "1:30",
    "12:30:45", "2026-01-01", "2026-1-2", "2001-12-14t21:59:43.10-05:00", "100m", "64Mi", "1.27", "0.0.0.0",
    "1e", "e3", "0x", "0o", "inf", "-inf", "nan", "Infinity",
    "k" * 1100, "0o" + "1" * 1100,  # keys past YAML's 1024-character limit for implicit keys
]
NUMBERISH = st.text(alphabet="0123456789_+-.eExXoObB", min_size=1, max_size=8)
LINE = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
MULTILINE = st.builds(lambda lines, trail: "\n".join(lines) + trail,
                      st.lists(st.one_of(LINE, st.sampled_from(["  ", "a ", " b", "\t", "#x", "- y", "k: v"])),
                               min_size=1, max_size=5),
                      st.sampled_from(["", "\n", "\n\n", " ", "  \n", "\n\n\n"]))
STRINGS = st.one_of(st.sampled_from(YAML_WORDS), NUMBERISH, st.text(max_size=20), MULTILINE)
NUMBERS = st.one_of(st.integers(min_value=-(2**63), max_value=2**63 - 1),
                    st.floats(allow_nan=False, allow_infinity=False))
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, STRINGS)


def values(scalars: st.SearchStrategy = SCALARS, keys: st.SearchStrategy = STRINGS) -> st.SearchStrategy:
    """Nested JSON-like values: what an API object holds."""
    return st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(keys, inner, max_size=4)), max_leaves=12)


def objects(payload: st.SearchStrategy) -> st.SearchStrategy:
    meta = st.fixed_dictionaries({"name": st.text(min_size=1, max_size=20)},
                                 optional={"labels": st.dictionaries(STRINGS, STRINGS, max_size=3),
                                           "annotations": st.dictionaries(STRINGS, STRINGS, max_size=3)})
    return st.builds(lambda m, extra, p: {**extra, "apiVersion": "v1", "kind": "ConfigMap", "metadata": m,
                                          "payload": p},
                     meta, st.dictionaries(STRINGS, values(), max_size=3), payload)


def typed(value: Any, json_numbers: bool = False) -> Any:
    """A comparable form that tells True from 1 and "1" from 1 (== alone does not); with json_numbers, 1.0
    and 1 are one number, as in JSON (Go prints the float 1e17 as 100000000000000000)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return ("number", float(value) if json_numbers else value)
    if isinstance(value, dict):
        return ("map", sorted((typed(k), typed(v, json_numbers)) for k, v in value.items()))
    if isinstance(value, list):
        return ("list", [typed(v, json_numbers) for v in value])
    return ("str", value)


def difference(want: Any, got: Any, where: str = "") -> str:
    """Where two values first differ (typed), for a failure message that points at the scalar."""
    if typed(want, True) == typed(got, True):
        return ""
    if isinstance(want, dict) and isinstance(got, dict):
        if set(want) != set(got):
            return f"{where}: keys {sorted(set(want) ^ set(got), key=repr)!r}"
        return next(d for k in want if (d := difference(want[k], got[k], f"{where}/{k!r}")))
    if isinstance(want, list) and isinstance(got, list) and len(want) == len(got):
        return next(d for i, (w, g) in enumerate(zip(want, got, strict=True)) if (d := difference(w, g, f"{where}[{i}]")))
    return f"{where}: wrote {want!r}, read {got!r}"


@PROPERTY
@given(objects(values()))
def test_dump_loads_back_equal_with_pyyaml(obj: dict) -> None:
    data = contract.dump(obj)
    for loader in (yaml.CSafeLoader, yaml.SafeLoader):
        assert typed(yaml.load(data, Loader=loader)) == typed(obj), data.decode()
    assert contract.dump(contract.load(data, "-")) == data


@PROPERTY
@given(objects(values()), st.randoms(use_true_random=False))
def test_dump_is_the_same_whatever_the_key_order(obj: dict, rng: random.Random) -> None:
    assert contract.dump(shuffled(obj, rng)) == contract.dump(obj)


@PROPERTY
@given(st.floats(allow_nan=False))
def test_dump_of_any_float_loads_back(value: float) -> None:
    data = contract.dump({"apiVersion": "v1", "kind": "X", "metadata": {"name": "x"}, "v": value})
    assert yaml.load(data, Loader=yaml.CSafeLoader)["v"] == value


def _read_by_kubectl(kubectl: str, kubeconfig: Path, documents: list[bytes], tmp: Path) -> list[dict]:
    """kubectl's own YAML reading (Go rules): create --dry-run=client prints what it decoded."""
    path = tmp / "objects.yaml"
    path.write_bytes(b"---\n".join(documents))
    out = subprocess.run([kubectl, "--kubeconfig", str(kubeconfig), "create", "--dry-run=client", "-o", "json",
                          "--validate=false", "-f", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    decoder, text, pos, found = json.JSONDecoder(), out.stdout, 0, []
    while text[pos:].strip():
        doc, pos = decoder.raw_decode(text, pos + len(text[pos:]) - len(text[pos:].lstrip()))
        found.extend(doc["items"] if doc.get("kind") == "List" else [doc])
    return found


# kubectl reads JSON-able objects: strings for labels/annotations/name, anything in other fields
KUBECTL_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**53), max_value=2**53),
                            st.floats(allow_nan=False, allow_infinity=False, width=32), STRINGS)


@settings(PROPERTY, max_examples=12,  # one kubectl run per example (the file is rewritten each time), and
          phases=[Phase.explicit, Phase.generate],  # no shrinking: minutes of kubectl runs; the message has the dump
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(objects(values(KUBECTL_SCALARS)), min_size=10, max_size=10))
def test_kubectl_reads_the_dump_as_pyyaml_does(kubectl: str, emulator: Any, tmp_path: Path,
                                               objs: list[dict]) -> None:
    for i, obj in enumerate(objs):
        obj["metadata"]["name"] = f"obj-{i}"
    read = _read_by_kubectl(kubectl, Path(emulator.kubeconfig), [contract.dump(o) for o in objs], tmp_path)
    assert len(read) == len(objs)
    for obj, got in zip(objs, read, strict=True):
        want = json.loads(json.dumps(obj))
        got["metadata"].pop("namespace", None)
        assert typed(got, True) == typed(want, True), difference(want, got)


NAMES = st.text(min_size=1, max_size=60).filter(lambda n: n not in (".", "..") and "/" not in n and "%" not in n)
DNS_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
GROUPS = st.one_of(st.just(""), st.lists(DNS_LABEL, min_size=2, max_size=3).map(".".join))
KINDS = st.from_regex(r"[A-Z][A-Za-z0-9]{0,15}", fullmatch=True)


@PROPERTY
@given(NAMES)
def test_any_name_encodes_reversibly_into_safe_characters(name: str) -> None:
    stem = contract.encode_name(name)
    assert re.fullmatch(r"[A-Za-z0-9._%-]+", stem) and not stem.startswith(".")
    assert contract.decode_name(stem) == name


@PROPERTY
@given(st.one_of(st.just(""), DNS_LABEL), GROUPS, KINDS, NAMES)
def test_path_and_object_reference_round_trip(namespace: str, group: str, kind: str, name: str) -> None:
    ref = ObjectRef(group, kind, namespace, name)
    back = ref_of_path(ref.path)
    assert back == ref or contract.hashed(ref.path) and back == ObjectRef(group, kind, namespace, back.name)
    obj = {"apiVersion": f"{group}/v1" if group else "v1", "kind": kind,
           "metadata": {"name": name, **({"namespace": namespace} if namespace else {})}}
    assert contract.ref_of(obj) == ref
    assert contract.load(contract.dump(obj), ref.path) == obj


# Names near Kubernetes' 253-character limit, from characters that encode to 1, 3, 6 or 12 bytes of file name
LONG_NAMES = st.text(alphabet=st.sampled_from("ab.-_:%~ é€😀"), min_size=200, max_size=253).filter(
    lambda n: n not in (".", "..") and "/" not in n)


@PROPERTY
@given(st.one_of(NAMES, LONG_NAMES), st.one_of(st.just(""), DNS_LABEL), KINDS)
def test_every_name_gets_a_file_name_that_fits_and_only_its_object_may_live_there(name: str, namespace: str,
                                                                                  kind: str) -> None:
    ref = ObjectRef("", kind, namespace, name)
    file_name = ref.path.rpartition("/")[2]
    encoded = contract.encode_name(name) + ".yaml"
    assert len(file_name.encode()) <= 255
    if len(encoded) <= 255:
        assert file_name == encoded and not contract.hashed(ref.path)  # existing paths never change
        return
    prefix, mark, rest = file_name.partition("~")
    assert mark and encoded.startswith(prefix) and "~" not in rest and len(file_name) >= 253
    assert ref_of_path(ref.path) == ObjectRef("", kind, namespace, file_name[:-5])  # the name is in the file
    obj = {"apiVersion": "v1", "kind": kind, "metadata": {"name": name, **({"namespace": namespace} if namespace
                                                                          else {})}}
    assert contract.load(contract.dump(obj), ref.path) == obj
    other = {**obj, "metadata": {**obj["metadata"], "name": name[:-1] + ("a" if name[-1] != "a" else "b")}}
    with pytest.raises(contract.ManifestError, match="but its path says"):
        contract.load(contract.dump(other), ref.path)
    legacy = ref.path.rpartition("/")[0] + "/" + encoded  # what was written before the rule: still read
    assert ref_of_path(legacy) == ref and contract.load(contract.dump(obj), legacy) == obj


def test_the_longest_legal_name_fits_a_file_name() -> None:
    ref = ObjectRef("", "ConfigMap", "shop", "a" * 253)
    assert all(len(segment.encode()) <= 255 for segment in ref.path.split("/"))
