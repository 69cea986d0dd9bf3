"""Who a request is and whether RBAC lets it through, as kube-apiserver's impersonation filter and RBAC authorizer
decide it, for impersonated users.

The bearer token authenticates the emulator's one user, in the group `system:masters` (the superuser: RBAC is never
asked, as on a real server). A request with `Impersonate-User` (what `kubectl --as` and `kubedr apply
--service-account` send) is made as that user instead: a ServiceAccount (`system:serviceaccount:NS:NAME`) gets
the groups `system:serviceaccounts` and `system:serviceaccounts:NS` unless `Impersonate-Group` names others, and
every impersonated user is in `system:authenticated`. Its requests are authorized by the stored RBAC objects:
ClusterRoleBindings, and the RoleBindings of the request's namespace, to Roles and ClusterRoles, rule by rule
(verbs, apiGroups, resources with `*/sub` and `res/sub`, resourceNames, nonResourceURLs with a trailing `*`),
plus the bootstrap roles every server reconciles for `system:authenticated` (BOOTSTRAP: discovery, version,
health). A refusal is the server's 403 with its message. An apply that creates the object is also authorized
for `create` (the apiserver's create-on-update check), by name.

Not emulated: authorizing the impersonation itself (the emulator's user may impersonate anyone), Impersonate-Extra
and Impersonate-Uid (ignored), aggregated ClusterRoles (the aggregation controller fills their rules on a real
server; here only the rules stored count), escalate/bind checks on RBAC writes, the Node authorizer and webhooks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from typing import Any

from kubedr.emulator.errors import ApiError, api_error

MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"
SA_PREFIX = "system:serviceaccount:"
RBAC_GROUP = "rbac.authorization.k8s.io"

# The bootstrap policy's rules bound to system:authenticated (system:discovery, system:public-info-viewer,
# system:basic-user's non-resource part): discovery and health, for everyone who authenticated.
BOOTSTRAP: tuple[dict[str, Any], ...] = (
    {"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*",
                         "/readyz", "/version", "/version/"], "verbs": ["get"]},
)


@dataclass(frozen=True)
class User:
    """An authenticated user: name and groups."""

    name: str
    groups: tuple[str, ...]

    @property
    def superuser(self) -> bool:
        return MASTERS in self.groups


TOKEN_USER = User("kubedr-emulator", (MASTERS, AUTHENTICATED))  # who the bearer token is


@dataclass(frozen=True)
class Attributes:
    """What a request asks, as the authorizer sees it (a resource request, or a path)."""

    verb: str
    path: str
    resource: str = ""  # plural; "" for a non-resource request
    group: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""

    @property
    def resource_request(self) -> bool:
        return bool(self.resource)


def requester(headers: Message) -> User:
    """The user a request is made as: the token's, or the impersonated one (Impersonate-User/-Group)."""
    name = headers.get("Impersonate-User")
    groups = tuple(headers.get_all("Impersonate-Group") or ())
    if not name:
        if groups:
            raise api_error(500, "InternalError", "Internal error occurred: requested impersonation of groups "
                                                   "without impersonating a user")
        return TOKEN_USER
    if not groups and name.startswith(SA_PREFIX) and name.count(":") == 3:
        namespace = name.split(":")[2]
        groups = ("system:serviceaccounts", f"system:serviceaccounts:{namespace}")
    return User(name, groups if AUTHENTICATED in groups else (*groups, AUTHENTICATED))


def verb_of(method: str, named: bool, watch: bool) -> str:
    """The authorization verb of an HTTP method on an object (named) or a collection."""
    if method == "GET":
        return "get" if named else ("watch" if watch else "list")
    if method == "DELETE":
        return "delete" if named else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())


class Rbac:
    """The RBAC authorizer over the store's Roles, ClusterRoles and their bindings."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def check(self, user: User, attrs: Attributes) -> None:
        """Nothing when allowed; the 403 the API server answers when not."""
        allowed, reason = self.authorize(user, attrs)
        if not allowed:
            raise forbidden(user, attrs, reason)

    def check_create(self, user: User, attrs: Attributes) -> None:
        """An apply that creates: `create` must be allowed too; the 403 of the create-on-update check when not."""
        allowed, reason = self.authorize(user, Attributes("create", attrs.path, attrs.resource, attrs.group,
                                                          attrs.subresource, attrs.namespace, attrs.name))
        if not allowed:
            raise _forbidden_error(attrs.group, attrs.resource, attrs.name, reason)

    def authorize(self, user: User, attrs: Attributes) -> tuple[bool, str]:
        """(allowed, reason): the reason names rules that could not be read (a binding to a missing role)."""
        if user.superuser:
            return True, ""
        errors: list[str] = []
        for rule in self._rules(user, attrs.namespace, errors):
            if rule_allows(rule, attrs):
                return True, ""
        return False, f"RBAC: {_aggregate(errors)}" if errors else ""

    def _rules(self, user: User, namespace: str, errors: list[str]) -> Iterator[dict[str, Any]]:
        if AUTHENTICATED in user.groups:
            yield from BOOTSTRAP
        for binding in self._items("clusterrolebindings", ""):
            if applies(user, binding, ""):
                yield from self._role_rules(binding.get("roleRef") or {}, "", errors)
        if namespace:
            for binding in self._items("rolebindings", namespace):
                if applies(user, binding, namespace):
                    yield from self._role_rules(binding.get("roleRef") or {}, namespace, errors)

    def _role_rules(self, ref: dict[str, Any], namespace: str, errors: list[str]) -> list[dict[str, Any]]:
        kind, name = ref.get("kind"), str(ref.get("name") or "")
        if kind == "ClusterRole":
            found = self._item("clusterroles", "", name)
            missing = f'clusterrole.rbac.authorization.k8s.io "{name}" not found'
        elif kind == "Role" and namespace:
            found = self._item("roles", namespace, name)
            missing = f'role.rbac.authorization.k8s.io "{name}" not found'
        else:
            return []
        if found is None:
            errors.append(missing)
            return []
        return [r for r in found.get("rules") or [] if isinstance(r, dict)]

    def _items(self, plural: str, namespace: str) -> list[dict[str, Any]]:
        with self.store.lock:
            names = self.store.objs.get((RBAC_GROUP, plural), {}).get(namespace, {})
            return [entry.obj for _, entry in sorted(names.items())]

    def _item(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self.store.lock:
            entry = self.store.objs.get((RBAC_GROUP, plural), {}).get(namespace, {}).get(name)
            return entry.obj if entry is not None else None


def applies(user: User, binding: dict[str, Any], namespace: str) -> bool:
    """Whether one of a binding's subjects is the user (a ServiceAccount subject without a namespace is one of the
    binding's own namespace)."""
    for subject in binding.get("subjects") or []:
        kind, name = subject.get("kind"), subject.get("name")
        if kind == "User" and name == user.name:
            return True
        if kind == "Group" and name in user.groups:
            return True
        if kind == "ServiceAccount":
            ns = subject.get("namespace") or namespace
            if ns and user.name == f"{SA_PREFIX}{ns}:{name}":
                return True
    return False


def rule_allows(rule: dict[str, Any], attrs: Attributes) -> bool:
    """One PolicyRule against the request, as rbac/v1's helpers match it."""
    verbs = rule.get("verbs") or []
    if "*" not in verbs and attrs.verb not in verbs:
        return False
    if not attrs.resource_request:
        return any(u == "*" or u == attrs.path or (u.endswith("*") and attrs.path.startswith(u[:-1]))
                   for u in rule.get("nonResourceURLs") or [])
    groups = rule.get("apiGroups") or []
    if "*" not in groups and attrs.group not in groups:
        return False
    wanted = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    if not any(r == "*" or r == wanted or (attrs.subresource and r == f"*/{attrs.subresource}")
               for r in rule.get("resources") or []):
        return False
    names = rule.get("resourceNames") or []
    return not names or attrs.name in names


def forbidden(user: User, attrs: Attributes, reason: str) -> ApiError:
    """The 403 of the authorization filter: who cannot do what, where."""
    if not attrs.resource_request:
        what = f'User "{user.name}" cannot {attrs.verb} path "{attrs.path}"'
        return api_error(403, "Forbidden", f"forbidden: {what}" + (f": {reason}" if reason else ""), {})
    resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    where = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
    what = (f'User "{user.name}" cannot {attrs.verb} resource "{resource}" in API group "{attrs.group}" {where}'
            + (f": {reason}" if reason else ""))
    return _forbidden_error(attrs.group, attrs.resource, attrs.name, what)


def _forbidden_error(group: str, resource: str, name: str, why: str) -> ApiError:
    """apierrors.NewForbidden: `<resource>[.group] ["name"] is forbidden: <why>`."""
    qualified = f"{resource}.{group}" if group else resource
    details: dict[str, Any] = {"name": name} if name else {}
    if group:
        details["group"] = group
    details["kind"] = resource
    head = f'{qualified} "{name}"' if name else qualified
    return api_error(403, "Forbidden", f"{head} is forbidden: {why}", details)


def _aggregate(errors: list[str]) -> str:
    """utilerrors.NewAggregate's text: one error as it is, several in brackets."""
    return errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"
