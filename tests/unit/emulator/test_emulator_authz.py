"""The emulator's RBAC rule matching and impersonated users, on plain data (the rules as rbac/v1 writes them)."""

from __future__ import annotations

from email.message import Message

import pytest

from kubedr.emulator.authz import (
    BOOTSTRAP,
    TOKEN_USER,
    Attributes,
    User,
    applies,
    requester,
    rule_allows,
    verb_of,
)


def headers(user: str | None = None, *groups: str) -> Message:
    msg = Message()
    if user:
        msg["Impersonate-User"] = user
    for g in groups:
        msg["Impersonate-Group"] = g
    return msg


def test_the_token_is_the_superuser_and_a_service_account_gets_its_groups() -> None:
    assert requester(headers()) is TOKEN_USER and TOKEN_USER.superuser
    sa = requester(headers("system:serviceaccount:kubedr-system:source-a"))
    assert sa == User("system:serviceaccount:kubedr-system:source-a",
                      ("system:serviceaccounts", "system:serviceaccounts:kubedr-system", "system:authenticated"))
    assert requester(headers("alice", "team")).groups == ("team", "system:authenticated")
    assert requester(headers("bob", "system:masters")).superuser  # whoever may impersonate the group is one


DEPLOY = Attributes("patch", "/apis/apps/v1/namespaces/a/deployments/web", "deployments", "apps", "", "a", "web")
SCALE = Attributes("patch", "/apis/apps/v1/namespaces/a/deployments/web/scale", "deployments", "apps", "scale", "a",
                   "web")


@pytest.mark.parametrize("rule,attrs,allowed", [
    ({"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["patch"]}, DEPLOY, True),
    ({"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]}, DEPLOY, False),
    ({"apiGroups": [""], "resources": ["deployments"], "verbs": ["*"]}, DEPLOY, False),
    ({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}, DEPLOY, True),
    ({"apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": ["api"], "verbs": ["patch"]}, DEPLOY,
     False),
    ({"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["patch"]}, SCALE, False),  # a subresource: named
    ({"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["patch"]}, SCALE, True),
    ({"apiGroups": ["apps"], "resources": ["*/scale"], "verbs": ["patch"]}, SCALE, True),
    ({"apiGroups": ["apps"], "resources": ["*/scale"], "verbs": ["patch"]}, DEPLOY, False),
    ({"nonResourceURLs": ["/apis/*"], "verbs": ["get"]}, Attributes("get", "/apis/apps/v1"), True),
    ({"nonResourceURLs": ["/apis"], "verbs": ["get"]}, Attributes("get", "/apis/apps/v1"), False),
    ({"nonResourceURLs": ["/apis/*"], "verbs": ["get"]}, DEPLOY, False),  # a resource request needs resources
])
def test_rule_allows(rule: dict, attrs: Attributes, allowed: bool) -> None:
    assert rule_allows(rule, attrs) is allowed


@pytest.mark.parametrize("path,allowed", [("/api", True), ("/apis/apps/v1", True), ("/openapi/v3", True),
                                          ("/version", True), ("/metrics", False), ("/logs", False)])
def test_the_bootstrap_discovery_rules_let_every_authenticated_user_discover(path: str, allowed: bool) -> None:
    """system:discovery and system:public-info-viewer, as every kube-apiserver reconciles them at start."""
    assert any(rule_allows(rule, Attributes("get", path)) for rule in BOOTSTRAP) is allowed


def test_a_service_account_subject_without_a_namespace_is_the_binding_s() -> None:
    user = requester(headers("system:serviceaccount:app-a:deployer"))
    binding = {"subjects": [{"kind": "ServiceAccount", "name": "deployer"}]}
    assert applies(user, binding, "app-a") and not applies(user, binding, "app-b") and not applies(user, binding, "")
    assert applies(user, {"subjects": [{"kind": "Group", "name": "system:serviceaccounts"}]}, "")
    assert not applies(user, {"subjects": [{"kind": "User", "name": "deployer"}]}, "")


@pytest.mark.parametrize("method,named,watch,verb", [("GET", True, False, "get"), ("GET", False, False, "list"),
                                                     ("GET", False, True, "watch"), ("POST", False, False, "create"),
                                                     ("PUT", True, False, "update"), ("PATCH", True, False, "patch"),
                                                     ("DELETE", True, False, "delete"),
                                                     ("DELETE", False, False, "deletecollection")])
def test_verbs(method: str, named: bool, watch: bool, verb: str) -> None:
    assert verb_of(method, named, watch) == verb
