"""/openapi/v2: the Swagger definitions kubectl falls back to, in the shape kube-openapi's parser accepts."""

from __future__ import annotations

import yaml

from kubedr.emulator import openapi_v2
from kubedr.emulator.server import _accepted


def _fields(buf: bytes) -> list[tuple[int, int, object]]:
    """A minimal protobuf reader: (field, wire type, value) with varints as int and length-delimited as bytes."""
    out, i = [], 0

    def varint() -> int:
        nonlocal i
        n = shift = 0
        while True:
            b = buf[i]
            i += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return n

    while i < len(buf):
        key = varint()
        field, wire = key >> 3, key & 7
        if wire == 0:
            out.append((field, wire, varint()))
        elif wire == 2:
            n = varint()
            out.append((field, wire, buf[i:i + n]))
            i += n
        else:
            raise AssertionError(f"unexpected wire type {wire}")
    return out


def _decode_schema(buf: bytes) -> dict:
    """Read back an openapi.v2.Schema (the fields the encoder writes) into Swagger JSON."""
    out: dict = {}
    for field, _, value in _fields(buf):
        if field in (1, 2, 4):
            out[{1: "$ref", 2: "format", 4: "description"}[field]] = value.decode()
        elif field == 19:
            out.setdefault("required", []).append(value.decode())
        elif field == 20:
            out.setdefault("enum", []).append(yaml.safe_load(_fields(value)[0][2].decode()))
        elif field == 21:
            (sub,) = _fields(value)
            out["additionalProperties"] = _decode_schema(sub[2]) if sub[0] == 1 else bool(sub[2])
        elif field == 22:
            (sub,) = _fields(value)
            out["type"] = sub[2].decode()
        elif field == 23:
            (sub,) = _fields(value)
            out["items"] = _decode_schema(sub[2])
        elif field == 25:
            props = {}
            for _, _, named in _fields(value):
                (_, _, name), (_, _, schema) = _fields(named)
                props[name.decode()] = _decode_schema(schema)
            out["properties"] = props
        elif field == 27:
            out["readOnly"] = bool(value)
        elif field == 31:
            (_, _, name), (_, _, any_) = _fields(value)
            out[name.decode()] = yaml.safe_load(_fields(any_)[0][2].decode())
    return out


def test_protobuf_round_trips_to_the_json_document():
    doc = openapi_v2.document()
    top = _fields(openapi_v2.protobuf())
    assert top[0] == (1, 2, b"2.0")
    definitions = next(v for f, _, v in top if f == 9)
    defs = {}
    for _, _, named in _fields(definitions):
        (_, _, name), (_, _, schema) = _fields(named)
        defs[name.decode()] = schema
    assert list(defs) == list(doc["definitions"])
    for name in ("io.k8s.api.policy.v1.PodDisruptionBudget", "io.k8s.api.apps.v1.DeploymentSpec",
                 "io.k8s.api.core.v1.Container", "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
                 "io.k8s.api.core.v1.ConfigMap"):
        assert _decode_schema(defs[name]) == doc["definitions"][name], name


def test_definitions_pass_kube_openapis_parser_rules():
    """kube-openapi's NewOpenAPIData rejects the whole document for one bad schema; kubectl would then fail."""
    defs = openapi_v2.document()["definitions"]

    def check(schema: dict, path: str) -> None:
        if "$ref" in schema:
            assert set(schema) <= {"$ref", "description"}, path
            assert schema["$ref"].startswith("#/definitions/"), path
            assert schema["$ref"].removeprefix("#/definitions/") in defs, path
            return
        t = schema.get("type")
        assert t is None or isinstance(t, str), path
        if t == "array":
            assert isinstance(schema.get("items"), dict), path
            check(schema["items"], path + "[]")
        elif t not in (None, "object"):
            assert t in ("string", "integer", "number", "boolean"), path
        for key, sub in (schema.get("properties") or {}).items():
            check(sub, f"{path}.{key}")
        if isinstance(schema.get("additionalProperties"), dict):
            check(schema["additionalProperties"], path + "{}")

    for name, schema in defs.items():
        check(schema, name)
    pdb = defs["io.k8s.api.policy.v1.PodDisruptionBudget"]
    assert pdb["x-kubernetes-group-version-kind"] == [{"group": "policy", "kind": "PodDisruptionBudget",
                                                       "version": "v1"}]
    assert defs["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] == {"type": "string", "format": "int-or-string"}
    spec = defs["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert spec["x-kubernetes-patch-merge-key"] == "name" and spec["items"]["$ref"].endswith("core.v1.Container")


def test_accept_header_order_follows_q_values():
    assert _accepted("application/com.github.proto-openapi.spec.v2@v1.0+protobuf") == [
        "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"]
    assert _accepted("application/json;q=0.5, application/com.github.proto-openapi.spec.v2.v1.0+protobuf") == [
        "application/com.github.proto-openapi.spec.v2.v1.0+protobuf", "application/json"]
    assert _accepted("text/html, */*;q=0") == ["text/html"]
