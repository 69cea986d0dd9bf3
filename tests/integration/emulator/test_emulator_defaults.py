"""The emulator defaults objects as a real kube-apiserver v1.24 does (tests/fixtures/defaults).

`input.yaml` goes through the real kubectl (`apply --server-side`) to the emulator; every object must then
equal the capture the real server returned for it, except values a server allocates or generates, which are
checked for shape. The exporter's output must be the same bytes from both.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from kubedr import contract, sanitize
from tests.conftest import FIXTURES

CAPTURES = FIXTURES / "defaults"
NAMESPACE = "defaults"
TYPES = "deploy,sts,ds,job,cronjob,svc,sa,cm,ing,netpol,pdb,pvc,hpa,limits,quota"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")

# What the real cluster's controllers and admission plugins add and the emulator does not (emulator/README.md):
# the capture must show it and the emulator must not, so this table is updated when either changes.
NOT_EMULATED: dict[tuple[str, str], tuple[tuple[str, ...], ...]] = {
    # the v1.24 token controller's Secret reference (LegacyServiceAccountTokenNoAutoGeneration off there)
    ("ServiceAccount", "runner"): (("secrets",),),
    # the StorageObjectInUseProtection admission plugin (and the pvc-protection controller that removes it)
    ("PersistentVolumeClaim", "claim"): (("metadata", "finalizers"),),
}


def _captures() -> dict[tuple[str, str], dict]:
    out = {}
    for path in sorted(CAPTURES.glob("*.json")):
        obj = json.loads(path.read_text())
        out[(obj["kind"], obj["metadata"]["name"])] = obj
    return out


def _inputs() -> dict[tuple[str, str], dict]:
    docs = yaml.safe_load_all((CAPTURES / "input.yaml").read_text())
    return {(d["kind"], d["metadata"]["name"]): d for d in docs if d}


@pytest.fixture
def applied(emulator, kubectl) -> dict:
    """input.yaml applied as the captures were made; returns a function that reads the objects back."""
    def k(*args: str) -> str:
        proc = subprocess.run([kubectl, "--kubeconfig", str(emulator.kubeconfig), *args], capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr}"
        return proc.stdout

    def objects(*extra: str) -> dict[tuple[str, str], dict]:
        emulator.controllers.idle()
        items = json.loads(k("get", "-n", NAMESPACE, TYPES, "-o", "json", *extra))["items"]
        return {(o["kind"], o["metadata"]["name"]): o for o in items}

    def apply() -> None:
        k("apply", "--server-side", "-n", NAMESPACE, "-f", str(CAPTURES / "input.yaml"))

    k("create", "namespace", NAMESPACE)
    apply()
    return {"objects": objects, "apply": apply}


def _pop(obj: dict, path: tuple[str, ...]) -> object:
    *parents, last = path
    node = obj
    for step in parents:
        node = node[step]
    return node.pop(last)


def _normalised(obj: dict, given: dict) -> dict:
    """The object with generated values checked for shape and replaced by a marker."""
    obj = copy.deepcopy(obj)
    meta = obj["metadata"]
    where = f"{obj['kind']}/{meta['name']}"
    uid = meta.pop("uid")
    assert UUID.fullmatch(uid), where
    assert meta.pop("resourceVersion").isdigit(), where
    assert TIME.fullmatch(meta.pop("creationTimestamp")), where
    if "status" in obj:
        assert isinstance(obj.pop("status"), dict), where  # written by controllers: present, not compared
    spec = obj.get("spec") or {}
    if obj["kind"] == "Service" and spec.get("clusterIP") != "None" and spec.get("type") != "ExternalName":
        ips = [spec.pop("clusterIP"), *spec.pop("clusterIPs")]
        assert len(set(ips)) == 1 and ipaddress.ip_address(ips[0]).version == 4, where
    if obj["kind"] == "Service":
        wanted = (given.get("spec") or {}).get("ports") or []
        for port, asked in zip(spec.get("ports") or [], wanted, strict=True):
            if "nodePort" not in asked and "nodePort" in port:
                assert 30000 <= port.pop("nodePort") <= 32767, where
    if obj["kind"] == "Job":  # the generated selector and its labels carry the Job's own uid
        for labels in (meta["labels"], spec["selector"]["matchLabels"], spec["template"]["metadata"]["labels"]):
            assert labels.pop("controller-uid") == uid, where
    return obj


def test_every_object_equals_its_capture_but_for_generated_values(applied):
    got = applied["objects"]()
    inputs = _inputs()
    captures = _captures()
    assert len(captures) == 18 and set(captures) <= set(got)
    for key, capture in captures.items():
        ours = got[key]
        capture = copy.deepcopy(capture)
        for path in NOT_EMULATED.get(key, ()):
            assert _pop(capture, path), f"{key}: the capture no longer shows {path}"
        assert _normalised(ours, inputs[key]) == _normalised(capture, inputs[key]), key
        for path in NOT_EMULATED.get(key, ()):
            with pytest.raises(KeyError):
                _pop(copy.deepcopy(ours), path)


def test_the_same_manifest_applied_again_changes_nothing(applied):
    """Defaults are filled in the same way on every write, so re-applying is a no-op (no resourceVersion bump)."""
    before = {key: o["metadata"]["resourceVersion"] for key, o in applied["objects"]().items()}
    applied["apply"]()
    after = {key: o["metadata"]["resourceVersion"] for key, o in applied["objects"]().items()}
    assert after == before


def test_defaulted_fields_are_not_owned_by_the_applier(applied):
    """As in tests/fixtures/objects/namespaced-deployment.json: an Apply manager owns what it sent, not what the
    server defaulted (list keys include the defaulted protocol)."""
    deployment = applied["objects"]("--show-managed-fields")[("Deployment", "probes")]
    (entry,) = [e for e in deployment["metadata"]["managedFields"] if e["operation"] == "Apply"]
    owned = json.dumps(entry["fieldsV1"])
    assert '"f:serviceAccountName"' in owned and '"f:initialDelaySeconds"' in owned
    for name in ("progressDeadlineSeconds", "revisionHistoryLimit", "strategy", "replicas", "dnsPolicy",
                 "restartPolicy", "schedulerName", "securityContext", "terminationGracePeriodSeconds",
                 "terminationMessagePath", "terminationMessagePolicy", "imagePullPolicy", "timeoutSeconds",
                 "periodSeconds", "successThreshold", "failureThreshold", "scheme", "service", "defaultMode",
                 "serviceAccount", "apiVersion"):
        assert f'"f:{name}"' not in owned, name
    assert '"k:{\\"containerPort\\":8080,\\"protocol\\":\\"TCP\\"}"' in owned


def _exported(obj: dict) -> bytes | None:
    clean = sanitize.sanitize(obj)
    return None if clean is None else contract.dump(clean)


def test_the_exporter_writes_the_same_bytes_from_the_emulator_and_from_the_captures(applied, tmp_path: Path):
    """The captures were read without managedFields, so both sides are sanitized without them."""
    got = applied["objects"]()
    for key, capture in _captures().items():
        ours = _exported(got[key])
        theirs = _exported(capture)
        assert ours is not None and theirs is not None, key
        assert ours == theirs, f"{key}:\n{ours.decode()}\n---- capture ----\n{theirs.decode()}"


QUANTITIES = """
apiVersion: v1
kind: ResourceQuota
metadata: {name: canonical}
spec: {hard: {cpu: "0.5", memory: 1024Mi, pods: "20"}}
"""


def test_quantities_are_stored_canonical_and_reapplying_them_is_a_no_op(emulator, kubectl):
    def k(*args: str) -> str:
        proc = subprocess.run([kubectl, "--kubeconfig", str(emulator.kubeconfig), *args], input=QUANTITIES,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    k("apply", "--server-side", "-f", "-")
    first = json.loads(k("get", "quota", "canonical", "-o", "json"))
    assert first["spec"]["hard"] == {"cpu": "500m", "memory": "1Gi", "pods": "20"}
    k("apply", "--server-side", "-f", "-")
    again = json.loads(k("get", "quota", "canonical", "-o", "json"))
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
