"""Images the standby needs on switchover: every image the repo's workloads name (image maps applied), which
objects use each, and whether the DR registry has it (registry HTTP API v2: HEAD of the manifest).

A DR rehearsal finds a missing image before a disaster does: a held workload pulls only when it comes up.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import ssl
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import urllib3

from kubedr import contract
from kubedr.applier.decode import Maps, _walk_containers, map_image, map_ref
from kubedr.applier.fetch import Source

log = logging.getLogger("kubedr.applier.images")

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
# Everything a manifest HEAD may answer with: an image index / manifest list, or a single image's manifest.
MANIFEST_TYPES = ", ".join((
    "application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json",
))


class Index:
    """image -> the objects (kind ns/name) that use it, per commit; blobs already read are not read again."""

    def __init__(self) -> None:
        self._maps = ""
        self._by_blob: dict[str, list[str]] = {}

    def images(self, source: Source, target: str, maps: Maps) -> dict[str, list[str]]:
        """Every image (after the image map) of the commit's objects, with the objects that use it."""
        if maps.fingerprint() != self._maps:
            self._maps, self._by_blob = maps.fingerprint(), {}
        tree = source.tree(target)
        refs = source.objects(target).refs
        new = sorted({tree[p] for p in refs if tree[p] not in self._by_blob})
        paths = {tree[p]: p for p in refs}
        for sha, data in zip(new, source.read_blobs(new), strict=True):
            self._by_blob[sha] = _images_of(paths[sha], data, maps)
        out: dict[str, list[str]] = {}
        for path, ref in sorted(refs.items()):
            for image in self._by_blob.get(tree[path]) or []:
                out.setdefault(image, []).append(map_ref(ref, maps).display)
        return dict(sorted(out.items()))


def _images_of(path: str, data: bytes, maps: Maps) -> list[str]:
    if b"image" not in data or not path.endswith((".yaml", ".yml")):
        return []
    try:
        obj = contract.load(data, path)
    except contract.ManifestError:
        return []  # the round reports a bad file
    found: list[str] = []

    def take(c: dict[str, Any]) -> None:
        if isinstance(c.get("image"), str) and c["image"]:
            image = map_image(c["image"], maps.images)
            if image not in found:
                found.append(image)

    _walk_containers(obj.get("spec"), take)
    return found


# ---- references -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ImageRef:
    """An image reference as a container runtime resolves it (docker.io and library/ filled in)."""

    registry: str
    repository: str
    reference: str  # a tag, or a digest (sha256:...)

    @property
    def api_host(self) -> str:
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry


_DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")


def parse_image(image: str) -> ImageRef:
    """nginx -> docker.io/library/nginx:latest; reg:5000/a/b@sha256:... as is. ValueError for nonsense."""
    name, digest = image, ""
    if "@" in image:
        name, digest = image.split("@", 1)
        if not _DIGEST.match(digest):
            raise ValueError(f"{image}: invalid digest")
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, rest
    else:
        registry, path = DOCKER_HUB, name
    tag = ""
    last = path.rsplit("/", 1)[-1]
    if ":" in last:
        path, tag = path.rsplit(":", 1)
    if registry == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    if not path or path != path.lower() or not re.fullmatch(r"[a-z0-9._/-]+", path):
        raise ValueError(f"{image}: invalid repository name")
    return ImageRef(registry, path, digest or tag or "latest")


# ---- the registry --------------------------------------------------------------------------------------------

@dataclass
class Check:
    """What the registry said about one image: present (with its digest), missing, or an error (one line)."""

    image: str
    state: str  # present | missing | error
    detail: str = ""


@dataclass
class Registries:
    """How to reach registries: credentials per host (docker config.json `auths`), CA, plain-HTTP hosts."""

    auths: dict[str, tuple[str, str]] = field(default_factory=dict)
    ca_file: str | None = None
    plain_http: frozenset[str] = frozenset()
    timeout: float = 10.0

    def __post_init__(self) -> None:
        ctx = ssl.create_default_context(cafile=self.ca_file) if self.ca_file else None
        self.pool = urllib3.PoolManager(ssl_context=ctx, retries=False,
                                        timeout=urllib3.Timeout(connect=self.timeout, read=self.timeout))

    def credentials(self, host: str) -> tuple[str, str] | None:
        for key in (host, f"https://{host}", f"http://{host}",
                    *(("https://index.docker.io/v1/", "index.docker.io") if host == DOCKER_HUB_API else ())):
            if key in self.auths:
                return self.auths[key]
        return None

    def check(self, image: str) -> Check:
        """HEAD the image's manifest, answering a Basic or Bearer challenge with the host's credentials."""
        try:
            ref = parse_image(image)
        except ValueError as exc:
            return Check(image, "error", str(exc))
        scheme = "http" if ref.api_host in self.plain_http else "https"
        url = f"{scheme}://{ref.api_host}/v2/{ref.repository}/manifests/{ref.reference}"
        headers = {"Accept": MANIFEST_TYPES}
        try:
            resp = self.pool.request("HEAD", url, headers=headers)
            if resp.status == 401:
                auth = self._answer(resp.headers.get("WWW-Authenticate") or "", ref)
                if auth is None:
                    return Check(image, "error", f"{ref.api_host} wants credentials; none given for it")
                resp = self.pool.request("HEAD", url, headers={**headers, "Authorization": auth})
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            return Check(image, "error", f"{ref.api_host}: {' '.join(str(exc).split())[:200]}")
        if resp.status == 200:
            return Check(image, "present", resp.headers.get("Docker-Content-Digest") or "")
        if resp.status == 404:
            return Check(image, "missing", f"not in {ref.api_host}/{ref.repository}")
        if resp.status in (401, 403):
            return Check(image, "error", f"{ref.api_host} refused the credentials (HTTP {resp.status})")
        return Check(image, "error", f"{ref.api_host} answered HTTP {resp.status}")

    def _answer(self, challenge: str, ref: ImageRef) -> str | None:
        creds = self.credentials(ref.api_host)
        scheme, _, params = challenge.partition(" ")
        if scheme.lower() == "basic":
            return _basic(creds) if creds else None
        if scheme.lower() != "bearer":
            return None
        p = dict(re.findall(r'(\w+)="([^"]*)"', params))
        if not p.get("realm"):
            return None
        fields = {"scope": p.get("scope") or f"repository:{ref.repository}:pull"}
        if p.get("service"):
            fields["service"] = p["service"]
        headers = {"Authorization": _basic(creds)} if creds else {}
        resp = self.pool.request("GET", p["realm"], fields=fields, headers=headers)
        if resp.status != 200:
            return None
        doc = json.loads(resp.data)
        token = doc.get("token") or doc.get("access_token")
        return f"Bearer {token}" if token else None

    def check_all(self, images: list[str], concurrency: int = 8) -> list[Check]:
        """Check every image, a few at a time; one unreachable registry never stops the others."""
        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            return list(pool.map(self.check, images))


def _basic(creds: tuple[str, str]) -> str:
    return "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()


def parse_auths(doc: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """host -> (user, password) from a docker config.json / .dockerconfigjson (`auths`)."""
    out: dict[str, tuple[str, str]] = {}
    for host, entry in (doc.get("auths") or {}).items():
        if not isinstance(entry, dict):
            continue
        if entry.get("auth"):
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        else:
            user, password = entry.get("username") or "", entry.get("password") or ""
        if user:
            out[host] = (user, password)
    return out
