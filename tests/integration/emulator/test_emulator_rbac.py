"""Impersonation and RBAC in the emulator, driven by the real kubectl's `--as` (the Impersonate-User header kubedr
sends for a source's ServiceAccount): what an impersonated user may do is what the stored RBAC objects grant, and a
refusal is the API server's 403 word for word."""

from __future__ import annotations

import subprocess
from typing import Any

RBAC = "rbac.authorization.k8s.io"
SA = "system:serviceaccount:kubedr-system:source-a"
SUBJECT = [{"kind": "ServiceAccount", "name": "source-a", "namespace": "kubedr-system"}]


def run(kubectl: str, emulator: Any, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([kubectl, "--kubeconfig", str(emulator.kubeconfig), *args], capture_output=True, text=True,
                          timeout=60, input=stdin)


def grant(emulator: Any, kind: str, name: str, rules: list[dict[str, Any]], namespace: str | None = None,
          subjects: list[dict[str, Any]] | None = None, role: str | None = None) -> None:
    """A Role or ClusterRole with these rules (unless role names an existing one) and its binding."""
    binding = "RoleBinding" if namespace else "ClusterRoleBinding"
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    if role is None:
        emulator.api.create({"apiVersion": f"{RBAC}/v1", "kind": kind, "metadata": meta, "rules": rules})
    emulator.api.create({"apiVersion": f"{RBAC}/v1", "kind": binding, "metadata": meta,
                         "roleRef": {"apiGroup": RBAC, "kind": kind, "name": role or name},
                         "subjects": subjects or SUBJECT})


def setup(emulator: Any) -> None:
    for ns in ("app-a", "app-b"):
        emulator.api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    grant(emulator, "Role", "writer", [{"apiGroups": [""], "resources": ["configmaps"],
                                         "verbs": ["get", "list", "create", "patch"]}], "app-a")


def test_an_impersonated_service_account_gets_what_its_bindings_grant(kubectl: str, emulator: Any) -> None:
    setup(emulator)
    as_sa = f"--as={SA}"
    assert run(kubectl, emulator, as_sa, "-n", "app-a", "create", "configmap", "x", "--from-literal=k=v").returncode == 0
    assert "x" in run(kubectl, emulator, as_sa, "-n", "app-a", "get", "configmaps", "-o", "name").stdout
    denied = run(kubectl, emulator, as_sa, "-n", "app-b", "create", "configmap", "x", "--from-literal=k=v")
    assert denied.returncode == 1
    assert ('configmaps is forbidden: User "system:serviceaccount:kubedr-system:source-a" cannot create resource '
            '"configmaps" in API group "" in the namespace "app-b"') in denied.stderr
    listed = run(kubectl, emulator, as_sa, "get", "deployments", "-A")
    assert ('deployments.apps is forbidden: User "system:serviceaccount:kubedr-system:source-a" cannot list resource '
            '"deployments" in API group "apps" at the cluster scope') in listed.stderr
    assert run(kubectl, emulator, "-n", "app-b", "get", "configmaps").returncode == 0  # the token's user: everything


def test_groups_resource_names_and_a_namespace_s_own_requests(kubectl: str, emulator: Any) -> None:
    setup(emulator)
    as_sa = f"--as={SA}"
    # a ServiceAccount is in system:serviceaccounts and system:serviceaccounts:<namespace>
    grant(emulator, "ClusterRole", "read-deployments", [{"apiGroups": ["apps"], "resources": ["deployments"],
                                                         "verbs": ["list"]}],
          subjects=[{"kind": "Group", "name": "system:serviceaccounts:kubedr-system", "apiGroup": RBAC}])
    assert run(kubectl, emulator, as_sa, "get", "deployments", "-A").returncode == 0
    # resourceNames: that name only
    grant(emulator, "ClusterRole", "own-namespace", [{"apiGroups": [""], "resources": ["namespaces"],
                                                      "resourceNames": ["app-a"], "verbs": ["get"]}])
    assert run(kubectl, emulator, as_sa, "get", "namespace", "app-a").returncode == 0
    other = run(kubectl, emulator, as_sa, "get", "namespace", "app-b")
    assert ('namespaces "app-b" is forbidden: User "system:serviceaccount:kubedr-system:source-a" cannot get resource '
            '"namespaces" in API group "" in the namespace "app-b"') in other.stderr
    # a RoleBinding in app-b that grants namespaces: a Namespace's own requests are in that namespace
    grant(emulator, "Role", "see-self", [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]}], "app-b")
    assert run(kubectl, emulator, as_sa, "get", "namespace", "app-b").returncode == 0


def test_an_apply_that_creates_needs_create_and_a_missing_role_is_named(kubectl: str, emulator: Any) -> None:
    setup(emulator)
    as_sa = f"--as={SA}"
    grant(emulator, "Role", "patch-only", [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "patch"]}],
          "app-a")
    secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: app-a}\nstringData: {k: v}\n"
    created = run(kubectl, emulator, as_sa, "apply", "--server-side", "-f", "-", stdin=secret)
    assert created.returncode == 1 and 'secrets "s" is forbidden: ' in created.stderr, created.stderr
    assert run(kubectl, emulator, "apply", "--server-side", "-f", "-", stdin=secret).returncode == 0
    updated = run(kubectl, emulator, as_sa, "apply", "--server-side", "--force-conflicts", "-f", "-",
                  stdin=secret.replace("k: v", "k: w"))
    assert updated.returncode == 0, updated.stderr  # it exists: patch is enough

    grant(emulator, "Role", "dangling", [], "app-a", role="missing")
    services = run(kubectl, emulator, as_sa, "-n", "app-a", "get", "services")
    assert services.stderr.rstrip().endswith(
        'in the namespace "app-a": RBAC: role.rbac.authorization.k8s.io "missing" not found'), services.stderr
