"""Source names, the names of their records on the secondary, and who owns an object: plain data."""

from __future__ import annotations

import re

import pytest

from kubedr.applier.owners import Refusal, foreign, owner_of
from kubedr.applier.sources import BUCKETS, MAX_NAME, RECORDS, Records, check_name, derive
from kubedr.config import UsageError
from kubedr.contract import ObjectRef

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


@pytest.mark.parametrize("repo,branch,expected", [
    ("ssh://git@git.example.com/dr/cluster-config.git", "main", "cluster-config-main-"),
    ("https://git.example.com/dr/cluster-config", "main", "cluster-config-main-"),
    ("/srv/git/ra.git", "release/v2", "ra-release-v2-"),
    ("git@host:Team/App_Config.git", "main", "app-config-main-"),
])
def test_a_default_name_says_which_repo_and_branch(repo: str, branch: str, expected: str) -> None:
    name = derive(repo, branch)
    assert name.startswith(expected) and len(name) == len(expected) + 6 and check_name(name) == name


def test_one_repo_spelled_two_ways_is_one_source_and_two_repos_are_two() -> None:
    assert derive("ssh://git@git.example.com:22/dr/config.git", "main") == derive(
        "https://user:token@git.example.com/dr/config", "main")
    assert derive("https://a.example.com/dr/config", "main") != derive("https://b.example.com/dr/config", "main")
    assert derive("https://a.example.com/dr/config", "main") != derive("https://a.example.com/dr/config", "dev")


def test_long_or_odd_repo_names_still_make_a_name() -> None:
    name = derive("https://h/" + "x" * 300 + ".git", "feature/" + "y" * 100)
    assert len(name) <= MAX_NAME and check_name(name) == name
    assert check_name(derive("https://h/___.git", "---")) == derive("https://h/___.git", "---")


@pytest.mark.parametrize("bad", ["", "A", "a_b", "-a", "a-", "a.b", "x" * (MAX_NAME + 1), "a/b"])
def test_a_given_name_must_fit_records_and_labels(bad: str) -> None:
    with pytest.raises(UsageError, match="--source"):
        check_name(bad)


def test_records_are_valid_configmap_names_and_labels_at_the_longest_name() -> None:
    records = Records("s" * MAX_NAME)
    names = [records.name(base) for base in RECORDS] + [records.bucket(b) for b in range(BUCKETS)]
    assert all(DNS_SUBDOMAIN.match(n) and len(n) <= 63 for n in names), names
    assert len(set(names)) == len(names)
    assert all(LABEL_VALUE.match(v) and len(v) <= 63 for v in records.labels("inventory").values())
    assert records.inventory_selector() == f"kubedr.io/inventory=true,kubedr.io/source={'s' * MAX_NAME}"


def test_the_records_of_a_kubedr_before_sources_keep_their_names() -> None:
    legacy = Records("a", legacy=True)
    assert [legacy.name(b) for b in RECORDS] == ["kubedr-status", "kubedr-mode", "kubedr-role", "kubedr-role-scan"]
    assert legacy.bucket(3) == "kubedr-inventory-03" and legacy.labels("inventory") == {"kubedr.io/inventory": "true"}
    assert legacy.inventory_selector() == "kubedr.io/inventory=true,!kubedr.io/source"


def test_who_owns_an_object() -> None:
    def obj(labels: dict[str, str] | None) -> dict[str, object]:
        return {"metadata": {"name": "x", **({"labels": labels} if labels is not None else {})}}

    assert owner_of(obj({"kubedr.io/managed": "true", "kubedr.io/source": "a"})) == "a"
    assert owner_of(obj({"kubedr.io/managed": "true"})) == ""  # applied before sources: nobody's
    assert foreign(obj({"kubedr.io/source": "a"}), "b") == "a"
    assert foreign(obj({"kubedr.io/source": "b"}), "b") == ""
    assert foreign(obj(None), "b") == "" and foreign({}, "b") == ""


def test_a_refusal_names_the_object_and_its_owner_in_one_line() -> None:
    cm = Refusal(ObjectRef("", "ConfigMap", "app-a", "cfg"), "app-a/ConfigMap/cfg.yaml", "a")
    assert cm.reason() == ("refused: ConfigMap app-a/cfg is owned by source a (a source never changes another "
                           "source's object)")
    ns = Refusal(ObjectRef("", "Namespace", "", "shop"), "_cluster/Namespace/shop.yaml", "a")
    assert "two sources write namespace shop (give one a --namespace-map)" in ns.reason()
    assert cm.to_data() == {"object": "ConfigMap app-a/cfg", "path": "app-a/ConfigMap/cfg.yaml", "owner": "a"}
