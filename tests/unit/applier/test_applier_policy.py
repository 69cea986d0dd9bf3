"""The repo policy file fills what the operator left open; the operator's settings always win."""

from __future__ import annotations

import pytest

from kubedr.applier.decode import Maps
from kubedr.applier.policy import PolicyError, Settings, merge, parse

POLICY = b"""version: 1
export: {namespaces: []}
apply:
  prune: true
  prune_max_fraction: 0.5
  prune_max_objects: 5
  standby: true
  standby_replicas: 1
  standby_replicas_by_namespace: {critical: 2}
  namespace_map: {shop: shop-dr}
  image_map: {}
  storage_class_map: null
  heal: false
  drift: true
  some_future_key: 1
"""


def test_parse_reads_the_apply_section() -> None:
    got = parse(POLICY)
    assert got["prune"] is True and got["prune_max_fraction"] == 0.5 and got["prune_max_objects"] == 5
    assert got["namespace_replicas"] == {"critical": 2}
    assert got["maps.namespaces"] == {"shop": "shop-dr"}
    assert "maps.storage_classes" not in got
    assert got["heal"] is False and got["drift"] is True
    assert "heal" not in parse(b"apply: {heal: null}")  # null: heal where the secondary is standby


def test_policy_fills_only_what_the_operator_left_open() -> None:
    user = Settings(repo="r", maps=Maps(images={"a": "b"}), standby_replicas=3,
                    explicit=frozenset({"standby_replicas", "maps.images"}))
    eff = merge(user, parse(POLICY))
    assert eff.prune is True and eff.prune_max_objects == 5
    assert eff.standby_replicas == 3
    assert eff.maps.images == {"a": "b"} and eff.maps.namespaces == {"shop": "shop-dr"}
    assert user.prune is False  # the operator's settings object is left alone


@pytest.mark.parametrize(("text", "where"), [
    (b"apply: [1]", "apply"), (b"apply: {prune: maybe}", "apply.prune"),
    (b"apply: {standby_replicas: lots}", "apply.standby_replicas"), (b"apply: {x: [", "invalid YAML"),
])
def test_bad_policy_says_which_key(text: bytes, where: str) -> None:
    with pytest.raises(PolicyError, match=where.replace(".", r"\.")):
        parse(text)
