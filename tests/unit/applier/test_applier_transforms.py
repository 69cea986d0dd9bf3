"""Namespace, image and storage-class maps; validation; the kubedr mark."""

from __future__ import annotations

import pytest

from kubedr import contract
from kubedr.applier.decode import (
    MANAGED_LABEL,
    DecodeError,
    Decoder,
    Maps,
    Validator,
    map_image,
    map_ref,
    parse_map,
    transform,
)
from kubedr.contract import ObjectRef


def deployment(image: str = "reg.primary.example.com/shop/web:1.2") -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"initContainers": [{"name": "i", "image": "busybox"}],
                                           "containers": [{"name": "web", "image": image}]}}}}


@pytest.mark.parametrize(("image", "expected"), [
    ("reg.primary.example.com/shop/web:1", "reg.dr.example.com/shop/web:1"),
    ("reg.primary.example.com:5000/x", "reg.primary.example.com:5000/x"),
    ("reg.primary.example.comx/web", "reg.primary.example.comx/web"),
    ("docker.io/library/nginx@sha256:abc", "mirror.dr/library/nginx@sha256:abc"),
    ("busybox", "busybox"),
])
def test_map_image_prefix_boundaries(image: str, expected: str) -> None:
    images = {"reg.primary.example.com": "reg.dr.example.com", "docker.io": "mirror.dr"}
    assert map_image(image, images) == expected


def test_longest_prefix_wins() -> None:
    images = {"reg.example.com": "a.example.com", "reg.example.com/team": "b.example.com/team"}
    assert map_image("reg.example.com/team/web:1", images) == "b.example.com/team/web:1"


def test_image_map_reaches_init_and_cronjob_containers() -> None:
    dep = transform(deployment(), Maps(images={"reg.primary.example.com": "reg.dr.example.com",
                                                "busybox": "mirror/busybox"}))
    spec = dep["spec"]["template"]["spec"]
    assert spec["containers"][0]["image"] == "reg.dr.example.com/shop/web:1.2"
    assert spec["initContainers"][0]["image"] == "mirror/busybox"
    cron = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c", "namespace": "shop"},
            "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {
                "containers": [{"name": "c", "image": "reg.primary.example.com/job"}]}}}}}}
    transform(cron, Maps(images={"reg.primary.example.com": "reg.dr.example.com"}))
    assert cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"] == \
        "reg.dr.example.com/job"


def test_namespace_map_moves_objects_namespaces_and_binding_subjects() -> None:
    maps = Maps(namespaces={"shop": "shop-dr"})
    ns = transform({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}, maps)
    assert ns["metadata"]["name"] == "shop-dr"
    assert transform(deployment(), maps)["metadata"]["namespace"] == "shop-dr"
    rb = transform({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                    "metadata": {"name": "rb", "namespace": "shop"},
                    "subjects": [{"kind": "ServiceAccount", "name": "web", "namespace": "shop"}],
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"}}, maps)
    assert rb["subjects"][0]["namespace"] == "shop-dr"
    assert map_ref(ObjectRef("", "Namespace", "", "shop"), maps) == ObjectRef("", "Namespace", "", "shop-dr")
    assert map_ref(ObjectRef("apps", "Deployment", "shop", "web"), maps).namespace == "shop-dr"
    assert map_ref(ObjectRef("apps", "Deployment", "other", "web"), maps).namespace == "other"
    hooks = transform({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
                       "metadata": {"name": "v"}, "webhooks": [
                           {"name": "a.x", "clientConfig": {"service": {"namespace": "shop", "name": "hook"}}},
                           {"name": "b.x", "clientConfig": {"url": "https://x"}}]}, maps)
    assert hooks["webhooks"][0]["clientConfig"]["service"]["namespace"] == "shop-dr"
    api = transform({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": "v1.x"},
                     "spec": {"service": {"namespace": "shop", "name": "api"}}}, maps)
    assert api["spec"]["service"]["namespace"] == "shop-dr"


def test_storage_class_map() -> None:
    maps = Maps(storage_classes={"gp2": "oci-bv"})
    pvc = transform({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "d", "namespace": "s"},
                     "spec": {"storageClassName": "gp2"}}, maps)
    assert pvc["spec"]["storageClassName"] == "oci-bv"
    sts = transform({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "s"},
                     "spec": {"volumeClaimTemplates": [{"metadata": {"name": "d"},
                                                        "spec": {"storageClassName": "gp2"}}]}}, maps)
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] == "oci-bv"
    sc = transform({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "gp2"},
                    "provisioner": "x"}, maps)
    assert sc["metadata"]["name"] == "gp2"


def test_parse_map() -> None:
    assert parse_map(["a=b,c=d", "e=f"], "namespace-map") == {"a": "b", "c": "d", "e": "f"}
    with pytest.raises(ValueError, match="namespace-map"):
        parse_map(["nope"], "namespace-map")


def test_validator_names_the_bad_field_and_passes_custom_resources() -> None:
    v = Validator("v1.30.2")
    v.check(deployment())
    bad = deployment()
    bad["spec"]["replicas"] = "three"
    with pytest.raises(DecodeError, match="spec.replicas"):
        v.check(bad)
    v.check({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"x": 1}})
    assert Validator("v1.9.0").version  # an old cluster still gets the oldest bundled schemas


def test_decoder_marks_and_reports_bad_yaml_with_path() -> None:
    d = Decoder(Maps(), Validator("v1.30.0"))
    obj = d.decode("shop/Deployment.apps/web.yaml", contract.dump(deployment()))
    assert obj["metadata"]["labels"][MANAGED_LABEL] == "true"
    with pytest.raises(contract.ManifestError, match="shop/ConfigMap/x.yaml"):
        d.decode("shop/ConfigMap/x.yaml", b"a: [unclosed\n")


def test_sealed_secret_without_identity_is_refused_naming_it_and_opens_with_one() -> None:
    import pyrage

    from kubedr import sealing

    ident = pyrage.x25519.Identity.generate()
    plain = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"},
             "type": "Opaque", "data": {"password": "aHVudGVyMg=="}}
    sealed = sealing.Sealer([str(ident.to_public())], b"k" * 32).seal(plain)
    with pytest.raises(DecodeError, match="shop/db"):
        Decoder(Maps()).decode("shop/Secret/db.yaml", contract.dump(sealed))
    other = pyrage.x25519.Identity.generate()
    with pytest.raises(DecodeError, match="shop/db"):
        Decoder(Maps(), identities=[other]).decode("shop/Secret/db.yaml", contract.dump(sealed))
    opened = Decoder(Maps(), Validator("1.30"), identities=[ident]).decode("shop/Secret/db.yaml",
                                                                           contract.dump(sealed))
    assert opened["data"] == {"password": "aHVudGVyMg=="} and "sealed" not in opened
