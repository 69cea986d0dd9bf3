"""`kubedr install` on two emulators: keys where they belong, the manifests applied, the first commit flowing
through the exporter and applier it configured (run by the pretend kubelet of deploy_harness), a second run
that changes nothing, --dry-run and --output-dir, and `kubedr uninstall` leaving both clusters as before."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deploy_harness import kubectl_json, run_deployment, snapshot, versions

from tests.conftest import free_port, run_git, stop_process, wait_until

Key = tuple[str, str, str, str]


class Pair:
    """Two emulators, their kubeconfigs, and a bare config repo."""

    def __init__(self, tmp: Path) -> None:
        from kubedr.emulator.server import Emulator

        self.tmp = tmp
        self.emus = {side: Emulator(listen=f"127.0.0.1:{free_port()}").start() for side in ("primary", "secondary")}
        self.kubeconfig = {side: emu.write_kubeconfig(tmp / f"{side}.kubeconfig") for side, emu in self.emus.items()}
        self.repo = tmp / "config.git"
        self.url = self.repo.as_uri()  # a URL: the pretend kubelet moves the pod's /tmp, where the repo lives too
        run_git("init", "-q", "--bare", "-b", "main", str(self.repo))

    def kubedr(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "kubedr", *args], capture_output=True, text=True,
                              timeout=timeout, env=_env(), cwd=self.tmp)

    def install_args(self, *extra: str) -> list[str]:
        return ["install", "--primary-kubeconfig", str(self.kubeconfig["primary"]), "--secondary-kubeconfig",
                str(self.kubeconfig["secondary"]), "--repo", self.url, "--namespaces", "shop",
                "--primary-cluster-name", "prod-eu-1", "--secondary-cluster-name", "prod-us-1", *extra]

    def uninstall_args(self) -> list[str]:
        return ["uninstall", "--primary-kubeconfig", str(self.kubeconfig["primary"]), "--secondary-kubeconfig",
                str(self.kubeconfig["secondary"])]

    def objects(self, kubectl: str) -> dict[str, dict[Key, dict[str, Any]]]:
        return {side: snapshot(kubectl, path) for side, path in self.kubeconfig.items()}

    def refs(self) -> str:
        return run_git("for-each-ref", cwd=self.repo)


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("KUBEDR_", "KUBECONFIG"))}


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    p = Pair(tmp_path)
    api = p.emus["primary"].api
    api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
    api.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "shop"},
                "data": {"color": "blue"}})
    api.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"},
                "type": "Opaque", "data": {"password": base64.b64encode(b"s3cret").decode()}})
    yield p
    for emu in p.emus.values():
        emu.stop()


def _secret_file(kubectl: str, kubeconfig: Path, name: str, item: str) -> bytes:
    secret = kubectl_json(kubectl, kubeconfig, "-n", "kubedr-system", "get", "secret", name)
    return base64.b64decode(secret["data"][item])


def _everything(objects: dict[Key, dict[str, Any]]) -> str:
    """Every object as text, with every Secret's values decoded too: a key leaked anywhere shows here."""
    parts = [repr(objects)]
    for obj in objects.values():
        if obj["kind"] == "Secret":
            parts += [base64.b64decode(v).decode(errors="replace") for v in (obj.get("data") or {}).values()]
    return "\n".join(parts)


def _repo_blobs(repo: Path) -> str:
    """The content of every object of every ref of the repo."""
    listed = run_git("rev-list", "--objects", "--all", cwd=repo).split("\n")
    shas = "".join(line.split()[0] + "\n" for line in listed if line.strip())
    return subprocess.run(["git", "cat-file", "--batch"], cwd=repo, input=shas.encode(), capture_output=True,
                          check=True).stdout.decode(errors="replace")


def _plan(stdout: str) -> list[str]:
    """The plan's lines: those after the `kubedr install:` header, up to the first that is not one."""
    lines = stdout.split("kubedr install: ", 1)[1].splitlines()[1:]
    return [ln for ln in lines[:next((i for i, ln in enumerate(lines) if not ln.startswith("  ")), len(lines))]]


def _identity_line(identity: bytes) -> str:
    (line,) = [ln for ln in identity.decode().splitlines() if ln.startswith("AGE-SECRET-KEY-1")]
    return line


def test_install_protects_the_pair_and_a_second_run_changes_nothing(pair: Pair, kubectl: str,
                                                                      tmp_path: Path) -> None:
    before = pair.objects(kubectl)

    # --dry-run prints the plan and changes nothing anywhere
    dry = pair.kubedr(*pair.install_args("--dry-run"))
    assert dry.returncode == 0, dry.stderr
    assert "apps/Deployment kubedr-system/kubedr-exporter" in dry.stdout and "dry run: nothing" in dry.stdout
    assert {s: versions(o) for s, o in pair.objects(kubectl).items()} == {s: versions(o) for s, o in before.items()}
    assert pair.refs() == ""

    # install; once its Deployments exist, the pretend kubelet runs them as their Pods would
    log = tmp_path / "install.log"
    with log.open("wb") as out:
        install = subprocess.Popen([sys.executable, "-m", "kubedr", *pair.install_args("--timeout", "150s")],
                                   stdout=out, stderr=subprocess.STDOUT, env=_env(), cwd=tmp_path)
    procs = []
    try:
        for side, name in (("primary", "kubedr-exporter"), ("secondary", "kubedr-applier")):
            wait_until(lambda s=side, n=name: subprocess.run(
                [kubectl, "--kubeconfig", str(pair.kubeconfig[s]), "-n", "kubedr-system", "get", "deployment", n],
                capture_output=True).returncode == 0 or install.poll() is not None, timeout=60, what=name)
            assert install.poll() is None, log.read_text()
            procs.append((run_deployment(kubectl, pair.kubeconfig[side], name, tmp_path / name, free_port(),
                                         tmp_path / f"{name}.log"), tmp_path / f"{name}.log"))
        assert install.wait(180) == 0, log.read_text()[-4000:]
        out = log.read_text()
        assert "the first commit flowed" in out, out
        assert "repo" in out and "prod-eu-1" in out and "prod-us-1" in out  # kubedr status's table follows
        for proc, plog in procs:
            assert proc.poll() is None, plog.read_text()[-3000:]

        secondary = pair.emus["secondary"].api
        assert secondary.get("v1", "ConfigMap", "settings", "shop")["data"] == {"color": "blue"}
        # sealed by the primary to the recipient install derived from the identity that only the secondary holds
        assert base64.b64decode(secondary.get("v1", "Secret", "db", "shop")["data"]["password"]) == b"s3cret"
    finally:
        for proc, _ in procs:
            stop_process(proc)
        if install.poll() is None:
            stop_process(install)

    # keys where they belong: the identity's private part nowhere on the primary, in no blob of any ref
    objects = pair.objects(kubectl)
    identity = _identity_line(_secret_file(kubectl, pair.kubeconfig["secondary"], "kubedr-age-identity",
                                           "identity.txt"))
    primary_text = _everything(objects["primary"]).lower()
    assert identity.lower() not in primary_text
    assert identity.lower() not in _repo_blobs(pair.repo).lower()
    assert identity.lower() in _everything(objects["secondary"]).lower()  # the search can find it
    for name, item in (("kubedr-signing-key", "signing.key"), ("kubedr-digest-key", "digest.key")):
        private = _secret_file(kubectl, pair.kubeconfig["primary"], name, item).decode().strip().splitlines()[-2]
        assert private.lower() not in _everything(objects["secondary"]).lower(), name
        assert private.lower() not in _repo_blobs(pair.repo).lower(), name
    # RBAC as the manifests have it: the exporter only reads the primary
    role = kubectl_json(kubectl, pair.kubeconfig["primary"], "get", "clusterrole", "kubedr-exporter")
    assert {v for r in role["rules"] for v in r["verbs"]} == {"get", "list", "watch"}
    applier = kubectl_json(kubectl, pair.kubeconfig["secondary"], "get", "clusterrole", "kubedr-applier")
    assert not {v for r in applier["rules"] for v in r["verbs"]} & {"impersonate", "deletecollection", "*"}
    # every commit verifies against the allowed signers install gave the applier
    signers = tmp_path / "allowed_signers"
    cms = kubectl_json(kubectl, pair.kubeconfig["secondary"], "-n", "kubedr-system", "get", "configmap")["items"]
    signers.write_text(next(c for c in cms if c["metadata"]["name"].startswith("kubedr-allowed-signers-"))["data"]
                       ["allowed_signers"])
    for sha in run_git("rev-list", "main", cwd=pair.repo).split():
        verified = subprocess.run(["git", "-c", f"gpg.ssh.allowedSignersFile={signers}", "verify-commit", sha],
                                  cwd=pair.repo, capture_output=True, text=True)
        assert verified.returncode == 0 and "exporter@prod-eu-1" in verified.stderr, verified.stderr

    # a second run changes nothing: no object, no commit
    refs = pair.refs()
    again = pair.kubedr(*pair.install_args("--timeout", "30s"))
    assert again.returncode == 0, again.stderr
    plan = _plan(again.stdout)
    assert plan and {ln.split()[-1] for ln in plan} == {"keep", "unchanged"}, again.stdout
    assert {s: versions(o) for s, o in pair.objects(kubectl).items()} == \
        {s: versions(o) for s, o in objects.items()}
    assert pair.refs() == refs

    # uninstall: the primary as before; the secondary as before but for what the applier replicated
    gone = pair.kubedr(*pair.uninstall_args())
    assert gone.returncode == 0, gone.stderr
    wait_until(lambda: versions(snapshot(kubectl, pair.kubeconfig["primary"])) == versions(before["primary"]),
               timeout=30, what="the primary as before")
    after = snapshot(kubectl, pair.kubeconfig["secondary"])
    left = {k for k in after if k not in before["secondary"]}
    assert left and all(k[2] == "shop" or k[1:] == ("Namespace", "", "shop") for k in left), left
    assert all(after[k]["metadata"]["resourceVersion"] == v for k, v in versions(before["secondary"]).items())
    assert pair.refs() == refs
    twice = pair.kubedr(*pair.uninstall_args())
    assert twice.returncode == 0 and "nothing of kubedr install's" in twice.stdout, twice.stdout


def _kubectl(kubectl: str, kubeconfig: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([kubectl, "--kubeconfig", str(kubeconfig), *args], capture_output=True, text=True,
                          timeout=120)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_output_dir_writes_manifests_kustomize_renders_and_both_servers_accept(pair: Pair, kubectl: str,
                                                                                tmp_path: Path) -> None:
    out = tmp_path / "gitops"
    done = pair.kubedr(*pair.install_args("--output-dir", str(out)))
    assert done.returncode == 0, done.stderr
    assert "kubectl apply -k" in done.stdout
    written = _files(out)
    for side in ("primary", "secondary"):
        rendered = _kubectl(kubectl, pair.kubeconfig[side], "kustomize", str(out / "overlays" / side))
        assert rendered.returncode == 0, rendered.stderr
        accepted = _kubectl(kubectl, pair.kubeconfig[side], "apply", "--dry-run=server", "-k",
                            str(out / "overlays" / side))
        assert accepted.returncode == 0, accepted.stderr
        assert "(server dry run)" in accepted.stdout
        # written, not applied: only the namespace and the keys are in the cluster
        assert _kubectl(kubectl, pair.kubeconfig[side], "-n", "kubedr-system", "get", "deployments",
                        "-o", "name").stdout == ""
    identity = _identity_line(_secret_file(kubectl, pair.kubeconfig["secondary"], "kubedr-age-identity",
                                           "identity.txt"))
    text = "\n".join(data.decode(errors="replace") for data in written.values())
    assert identity.lower() not in text.lower() and "PRIVATE KEY" not in text
    for name, item in (("kubedr-signing-key", "signing.key"), ("kubedr-digest-key", "digest.key")):
        private = _secret_file(kubectl, pair.kubeconfig["primary"], name, item).decode().strip().splitlines()[-2]
        assert private not in text, name
    assert "AGE-SECRET-KEY" not in text.upper()
    # run again: the same files, the same keys
    again = pair.kubedr(*pair.install_args("--output-dir", str(out)))
    assert again.returncode == 0, again.stderr
    assert _files(out) == written
    assert {ln.split()[-1] for ln in _plan(again.stdout) if " key " in ln or " init " in ln} == {"keep"}


def test_uninstall_removes_what_install_made_and_nothing_else(pair: Pair, kubectl: str) -> None:
    secondary = pair.kubeconfig["secondary"]
    # the operator made kubedr's namespace and its git credentials on the secondary before installing
    assert _kubectl(kubectl, secondary, "create", "namespace", "kubedr-system").returncode == 0
    assert _kubectl(kubectl, secondary, "label", "namespace", "kubedr-system", "team=dr").returncode == 0
    assert _kubectl(kubectl, secondary, "-n", "kubedr-system", "create", "secret", "generic", "kubedr-git",
                    "--from-literal=git-credentials=https://dr:token@git.example.com").returncode == 0
    before = pair.objects(kubectl)
    done = pair.kubedr(*pair.install_args("--no-wait"))
    assert done.returncode == 0, done.stderr
    git_lines = [ln for ln in _plan(done.stdout) if "kubedr-git" in ln]
    assert [ln.split()[0] + " " + ln.split()[-1] for ln in git_lines] == ["primary create", "secondary keep"]
    live = pair.objects(kubectl)
    assert ("apps/v1", "Deployment", "kubedr-system", "kubedr-applier") in live["secondary"]

    dry = pair.kubedr("uninstall", "--primary-kubeconfig", str(pair.kubeconfig["primary"]), "--secondary-kubeconfig",
                      str(secondary), "--dry-run")
    assert dry.returncode == 0 and "release  Namespace kubedr-system" in dry.stdout, dry.stdout
    assert {s: versions(o) for s, o in pair.objects(kubectl).items()} == {s: versions(o) for s, o in live.items()}

    gone = pair.kubedr(*pair.uninstall_args())
    assert gone.returncode == 0, gone.stderr

    def kept(objects: dict[Key, dict[str, Any]]) -> dict[Key, str]:
        """All but the namespace install released, and the Events the cluster's controllers wrote about
        install's objects in it (they age out on their own, as after any `kubectl delete`)."""
        return {k: v for k, v in versions(objects).items() if k != ns and k[1] != "Event"}

    ns = ("v1", "Namespace", "", "kubedr-system")

    def as_before() -> bool:
        now = pair.objects(kubectl)
        same = kept(now["secondary"]) == kept(before["secondary"])
        return same and versions(now["primary"]) == versions(before["primary"]) and \
            now["secondary"][ns]["metadata"].get("labels") == before["secondary"][ns]["metadata"].get("labels")

    wait_until(as_before, timeout=30, what="both clusters as before (the secondary's namespace and secret kept)")
    annotations = pair.objects(kubectl)["secondary"][("v1", "Namespace", "", "kubedr-system")]["metadata"]
    assert "kubedr.io/created-by-install" not in (annotations.get("annotations") or {})


def test_a_missing_key_is_made_a_wrong_one_stops_install(pair: Pair, kubectl: str) -> None:
    primary, secondary = pair.kubeconfig["primary"], pair.kubeconfig["secondary"]
    assert pair.kubedr(*pair.install_args("--no-wait")).returncode == 0
    recipients = _secret_file(kubectl, secondary, "kubedr-age-identity", "identity.txt")
    # as if a run had been killed half-way: a key and a Deployment missing; the next run makes exactly those
    assert _kubectl(kubectl, primary, "-n", "kubedr-system", "delete", "secret", "kubedr-digest-key").returncode == 0
    assert _kubectl(kubectl, secondary, "-n", "kubedr-system", "delete", "deployment", "kubedr-applier").returncode == 0
    again = pair.kubedr(*pair.install_args("--no-wait"))
    assert again.returncode == 0, again.stderr
    made = [ln for ln in _plan(again.stdout) if ln.split()[-1] != "keep" and ln.split()[-1] != "unchanged"]
    assert [ln.split()[0] for ln in made] == ["primary", "secondary"], again.stdout
    assert "kubedr-digest-key" in made[0] and "kubedr-applier" in made[1], made
    assert _secret_file(kubectl, secondary, "kubedr-age-identity", "identity.txt") == recipients  # not rotated

    # keys that are there but unusable: one line naming each, and nothing changes anywhere
    assert _kubectl(kubectl, secondary, "-n", "kubedr-system", "patch", "secret", "kubedr-age-identity", "-p",
                    '{"data": {"identity.txt": "bm90IGEga2V5Cg=="}}').returncode == 0
    assert _kubectl(kubectl, primary, "-n", "kubedr-system", "patch", "secret", "kubedr-digest-key", "--type",
                    "json", "-p", '[{"op": "move", "from": "/data/digest.key", "path": "/data/key"}]').returncode == 0
    before = {s: versions(o) for s, o in pair.objects(kubectl).items()}
    refused = pair.kubedr(*pair.install_args("--no-wait"))
    assert refused.returncode == 1
    identity, digest = refused.stderr.strip().splitlines()
    assert identity.split(" ERROR kubedr.install: ")[1].startswith(
        "Secret kubedr-system/kubedr-age-identity in the secondary: identity.txt:1: not an age X25519 identity: "
        "left as it is"), identity
    assert "Secret kubedr-system/kubedr-digest-key in the primary has no digest.key: left as it is" in digest, digest
    assert "Traceback" not in refused.stderr
    assert {s: versions(o) for s, o in pair.objects(kubectl).items()} == before


@pytest.mark.parametrize("role,says", [
    ("cluster: prod-us-1\nepoch: 1\n", "names the writer prod-us-1 (epoch 1), not prod-eu-1"),
    ("cluster: [not, a, name]\n", ".kubedr/writer.yaml: not a writer role"),
])
def test_a_repo_of_another_writer_stops_install(pair: Pair, kubectl: str, tmp_path: Path, role: str,
                                                says: str) -> None:
    clone = tmp_path / "clone"
    run_git("clone", "-q", str(pair.repo), str(clone))
    (clone / ".kubedr").mkdir()
    (clone / ".kubedr" / "writer.yaml").write_text(role)
    run_git("add", ".", cwd=clone)
    run_git("commit", "-qm", "a role", cwd=clone)
    run_git("push", "-q", "origin", "HEAD:main", cwd=clone)
    before = {s: versions(o) for s, o in pair.objects(kubectl).items()}
    refs = pair.refs()
    refused = pair.kubedr(*pair.install_args("--no-wait"))
    assert refused.returncode == 1
    (line,) = refused.stderr.strip().splitlines()
    assert says in line and "install changes nothing" in line, line
    assert {s: versions(o) for s, o in pair.objects(kubectl).items()} == before and pair.refs() == refs


@pytest.mark.parametrize("args,says", [
    (["--namespaces", "shop"], "--repo required"),
    (["--repo", "REPO", "--namespaces", "shop", "--all-namespaces"], "one of --namespaces a,b or --all-namespaces"),
    (["--repo", "REPO", "--namespaces", "shop", "--secondary-cluster-name", "primary"], "different cluster names"),
    (["--repo", "/nonexistent/cfg", "--namespaces", "shop"], "a URL, or a bare repository"),
    (["--repo", "REPO", "--namespaces", "shop", "--timeout", "soon"], "--timeout"),
    (["--repo", "REPO", "--namespaces", "shop", "--recipient", "age1nope"], "not an age X25519 recipient"),
])
def test_usage_errors_are_one_line_and_exit_2(pair: Pair, args: list[str], says: str) -> None:
    argv = ["install", "--primary-kubeconfig", str(pair.kubeconfig["primary"]), "--secondary-kubeconfig",
            str(pair.kubeconfig["secondary"]), *[a.replace("REPO", pair.url) for a in args]]
    done = pair.kubedr(*argv)
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert says in line, line


def test_the_readme_install_command_parses_and_names_both_sides() -> None:
    import re
    import shlex

    from kubedr.commands.cli import build_parser
    from tests.conftest import ROOT

    text = (ROOT / "README.md").read_text()
    block = text.split("<!-- install -->", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    argv = shlex.split(re.sub(r"\\\n", " ", block))[1:]
    args = build_parser("install").parse_args(argv)  # every flag exists (argparse exits 2 on one that does not)
    assert args.command == "install" and args.primary_kubeconfig and args.secondary_kubeconfig and args.repo
    assert args.namespaces and args.git_ssh_key and args.signing_key and args.snapshot_store


def test_a_changed_setting_is_applied_and_the_old_config_deleted(pair: Pair, kubectl: str) -> None:
    primary = pair.kubeconfig["primary"]
    assert pair.kubedr(*pair.install_args("--no-wait")).returncode == 0

    def configs() -> set[str]:
        names = kubectl_json(kubectl, primary, "-n", "kubedr-system", "get", "configmaps")["items"]
        return {c["metadata"]["name"] for c in names if c["metadata"]["name"].startswith("kubedr-config-")}

    (old,) = configs()
    args = pair.install_args("--no-wait")
    args[args.index("shop")] = "shop,payments"
    changed = pair.kubedr(*args)
    assert changed.returncode == 0, changed.stderr
    acted = {(ln.split()[0], ln.split()[-1]) for ln in _plan(changed.stdout) if ln.split()[-1] not in
             ("keep", "unchanged")}
    assert acted == {("primary", "create"), ("primary", "update"), ("primary", "delete")}, changed.stdout
    (new,) = configs()
    assert new != old
    dep = kubectl_json(kubectl, primary, "-n", "kubedr-system", "get", "deployment", "kubedr-exporter")
    assert {v["configMap"]["name"] for v in dep["spec"]["template"]["spec"]["volumes"] if "configMap" in v} >= {new}
    settings = kubectl_json(kubectl, primary, "-n", "kubedr-system", "get", "configmap", new)["data"]["config.yaml"]
    assert "namespaces: shop,payments" in settings
