"""Mutation run over the safety-critical code: does a plausible bug in it make a test fail?

Each target names functions of one module and the tests that cover them. Every mutant (one small change: a
comparison or boolean operator turned around, a condition negated, a constant changed, a value returned as
None, a call or raise dropped) is written into a copy of the tree, and the covering tests run against it
(first failure stops them). A mutant is killed when they fail or time out; a survivor is printed with its
place and change. The copy lives in a temporary directory: the checkout is never touched. Not part of
scripts/test (a run takes a while); bash scripts/mutate [--only NAME] [--list] [--min-score 90].
"""

from __future__ import annotations

import argparse
import ast
import copy
import os
import runpy
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Target:
    """Functions of one module, and the tests that cover them (pytest arguments)."""

    name: str
    module: str
    functions: tuple[str, ...]
    tests: tuple[str, ...]


TARGETS: tuple[Target, ...] = (
    Target("fencing", "exporter/fence.py", ("Fence.check", "Fence.recheck", "Fence.claim", "Fence.stale_commits"),
           ("tests/integration/exporter/test_exporter_fence_push.py",
            "tests/integration/failback/test_failback_fence_git.py",
            "tests/integration/exporter/test_exporter_disk.py::test_a_full_disk_is_one_line_and_the_exporter_converges_once_space_returns")),
    Target("fencing", "base/roles.py", ("fence_reason", "parse", "successor", "read_writer"),
           ("tests/unit/kubedr/test_roles.py", "tests/integration/failback/test_failback_fence_git.py",
            "tests/integration/exporter/test_exporter_fence_push.py")),
    Target("trust gate", "applier/trust.py", ("Gate.admit", "Gate._commits", "Gate._signers_file",
                                              "Gate._policy_changers", "policy_signers"),
           ("tests/integration/applier/test_applier_trust_policy.py",
            "tests/integration/exporter/test_trust_signed_commits.py",
            "tests/integration/applier/test_applier_basics.py::test_first_apply_in_order_standby_and_recorded")),
    Target("prune guard", "applier/inventory.py", ("guard",),
           ("tests/unit/applier/test_applier_prune_guard.py",)),
    Target("prune guard", "applier/round.py", ("Engine._prune", "Engine._drop_ghosts"),
           ("tests/integration/applier/test_applier_basics.py", "tests/integration/applier/test_applier_idle_and_inventory.py",
            "tests/integration/applier/test_applier_sources.py",
            "-k", "prune or guard or gone_out_of_band or through_its_service_account")),
    Target("source ownership", "applier/owners.py", ("owner_of", "foreign", "Owners.others", "Owners.claim"),
           ("tests/unit/applier/test_applier_source_names.py", "tests/integration/applier/test_applier_sources.py",
            "-k", "own")),
    Target("sanitize skip rules", "base/sanitize.py",
           ("controller_of", "controller_exported", "_controlled", "_controller_made_sa_token",
            "_endpoints_of_service", "_finished_job", "_pristine_default_sa", "skip_rule"),
           ("tests/unit/exporter/test_sanitize.py",)),
    Target("snapshot verification", "snapshot/restore.py", ("fetch_and_verify", "_check_files"),
           ("tests/integration/snapshot/test_snapshot_refusals.py", "tests/integration/snapshot/test_snapshot_roundtrip.py",
            "-k", "disagrees or refuses_before or directory_store")),
    Target("sealing", "base/sealing.py", ("Sealer.digest", "Sealer.seal", "_open", "_check_format", "unseal",
                                          "reseal", "is_sealed", "load_digest_key", "parse_digest_key"),
           ("tests/unit/kubedr/test_sealing.py", "tests/integration/sealing")),
    Target("install keys", "commands/install_keys.py", ("find",),
           ("tests/integration/deploy/test_deploy_install.py", "-k", "protects or missing_key")),
    Target("install keys", "commands/uninstall.py", ("_created",),
           ("tests/integration/deploy/test_deploy_install.py", "-k", "protects or uninstall_removes")),
)

NEGATED: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Lt: ast.GtE, ast.GtE: ast.Lt, ast.Gt: ast.LtE, ast.LtE: ast.Gt,
    ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
}
SWAPPED_ARITHMETIC: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult,
}
QUIET_CALLS = ("log", "logging")  # a dropped or changed log line is no bug of the guarded behaviour


@dataclass(frozen=True)
class Mutant:
    """One change: the span of the original node (1-based lines, byte columns) and its replacement."""

    target: Target
    function: str
    line: int
    col: int
    end_line: int
    end_col: int
    original: str
    replacement: str

    def describe(self) -> str:
        return f"{self.target.module}:{self.line} {self.function}: {self.original!r} -> {self.replacement!r}"


def _functions(tree: ast.Module, names: tuple[str, ...]) -> Iterator[tuple[str, ast.FunctionDef]]:
    """The named functions (`Class.method` or `function`) of a module; a missing one is an error."""
    found: dict[str, ast.FunctionDef] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            found[node.name] = node
        elif isinstance(node, ast.ClassDef):
            found.update({f"{node.name}.{m.name}": m for m in node.body if isinstance(m, ast.FunctionDef)})
    for name in names:
        if name not in found:
            raise SystemExit(f"mutate: {name} not found (the TARGETS table is out of date)")
        yield name, found[name]


def _quiet(node: ast.AST) -> bool:
    """A call of log.* / logging.*."""
    func = node.func if isinstance(node, ast.Call) else None
    while isinstance(func, ast.Attribute):
        func = func.value
    return isinstance(func, ast.Name) and func.id in QUIET_CALLS


def _changes(node: ast.AST) -> Iterator[tuple[ast.AST, str]]:
    """(node to replace, its replacement source) for every mutation this node offers."""
    def variant(change: ast.AST) -> str:
        return ast.unparse(change)

    if isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            if type(op) in NEGATED:
                new = copy.deepcopy(node)
                new.ops[i] = NEGATED[type(op)]()
                yield node, f"({variant(new)})"
    elif isinstance(node, ast.BoolOp):
        new = copy.deepcopy(node)
        new.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        yield node, f"({variant(new)})"
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        yield node, f"({variant(node.operand)})"
    elif isinstance(node, ast.BinOp) and type(node.op) in SWAPPED_ARITHMETIC:
        new = copy.deepcopy(node)
        new.op = SWAPPED_ARITHMETIC[type(node.op)]()
        yield node, f"({variant(new)})"
    elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
        yield node, repr(not node.value)
    elif isinstance(node, ast.Constant) and type(node.value) in (int, float):
        yield node, repr(node.value + 1)
    elif isinstance(node, ast.If | ast.While | ast.IfExp) and not isinstance(
            node.test, ast.Compare | ast.BoolOp | ast.UnaryOp):
        yield node.test, f"(not {variant(node.test)})"
    elif isinstance(node, ast.Return) and node.value is not None and not (
            isinstance(node.value, ast.Constant) and node.value.value is None):
        yield node, "return None"
    elif isinstance(node, ast.Raise):
        yield node, "pass"
    elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and not _quiet(node.value):
        yield node, "pass"


def _walk(node: ast.AST) -> Iterator[ast.AST]:
    """Nodes of a function body, skipping docstrings, f-strings, log calls and constant call options."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.JoinedStr) or (isinstance(child, ast.Call) and _quiet(child)):
            continue
        if isinstance(child, ast.Expr) and isinstance(child.value, ast.Constant) and isinstance(child.value.value, str):
            continue
        if isinstance(child, ast.keyword) and isinstance(child.value, ast.Constant):
            continue  # check=False, timeout=60, exist_ok=True: options of a call, not the decision
        yield child
        yield from _walk(child)


def mutants(target: Target, root: Path = ROOT) -> list[Mutant]:
    """Every mutant of a target's functions, in source order (those that do not compile are left out)."""
    source = (root / target.module).read_text()
    lines = source.splitlines(keepends=True)
    tree = ast.parse(source)
    out: list[Mutant] = []
    seen: set[tuple[int, int, int, int, str]] = set()
    for name, func in _functions(tree, target.functions):
        body = ast.Module(body=func.body, type_ignores=[])  # not its signature: defaults, annotations
        for node in _walk(body):
            for old, new in _changes(node):
                span = (old.lineno, old.col_offset, old.end_lineno or old.lineno, old.end_col_offset or 0)
                if (*span, new) in seen:
                    continue
                seen.add((*span, new))
                m = Mutant(target, name, *span, _segment(lines, *span), new)
                try:
                    compile(apply(m, lines), target.module, "exec")
                except SyntaxError:
                    continue
                out.append(m)
    return sorted(out, key=lambda m: (m.line, m.col, m.replacement))


def _segment(lines: list[str], line: int, col: int, end_line: int, end_col: int) -> str:
    data = "".join(lines[line - 1:end_line]).encode()
    start = col
    end = len("".join(lines[line - 1:end_line - 1]).encode()) + end_col
    return data[start:end].decode()


def apply(m: Mutant, lines: list[str]) -> str:
    """The module's source with the mutant's change made."""
    before = "".join(lines[:m.line - 1]).encode() + lines[m.line - 1].encode()[:m.col]
    last = lines[m.end_line - 1].encode()
    after = last[m.end_col:] + "".join(lines[m.end_line:]).encode()
    return (before + m.replacement.encode() + after).decode()


class Run:
    """A copy of the tree laid out as installed (scripts/typecheck's layout), and pytest against it."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.tree = work / "tree"
        ignore = shutil.ignore_patterns(".git", ".venv", "__pycache__", ".mypy_cache", ".pytest_cache",
                                        ".ruff_cache", "*.egg-info", "build", "dist")
        shutil.copytree(ROOT, self.tree, symlinks=True, ignore=ignore)
        build_layout = runpy.run_path(str(ROOT / "scripts" / "typecheck"))["build_layout"]
        build_layout(self.tree, self.tree / ".mutate-layout")
        self.env = {**os.environ, "PYTHONPATH": str(self.tree / ".mutate-layout"), "PYTHONDONTWRITEBYTECODE": "1",
                    "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ.get('PATH', '')}"}

    def pytest(self, tests: tuple[str, ...], timeout: float) -> tuple[str, float]:
        """'passed', 'failed' or 'timeout', and the seconds it took."""
        started = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p",
                                 "no:randomly", "--timeout", str(int(timeout) + 5), *tests], cwd=self.tree,
                                env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return "timeout", time.monotonic() - started
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # whatever the tests left running (servers, git)
            except ProcessLookupError:
                pass
        return ("passed" if code == 0 else "failed"), time.monotonic() - started

    def check(self, m: Mutant, timeout: float) -> str:
        """Run the target's tests against the mutant, then put the module back."""
        path = self.tree / m.target.module
        original = path.read_text()
        path.write_text(apply(m, original.splitlines(keepends=True)))
        try:
            return self.pytest(m.target.tests, timeout)[0]
        finally:
            path.write_text(original)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="scripts/mutate", description=__doc__.splitlines()[0])
    p.add_argument("--only", action="append", default=[], help="a target name (repeatable): " +
                   ", ".join(sorted({t.name for t in TARGETS})))
    p.add_argument("--list", action="store_true", help="print the mutants, run nothing")
    p.add_argument("--min-score", type=float, default=90.0, help="exit 1 below this percentage (90)")
    p.add_argument("--workdir", help="where the copy of the tree goes (default: a temporary directory)")
    args = p.parse_args(argv)
    unknown = set(args.only) - {t.name for t in TARGETS}
    if unknown:
        p.error(f"unknown target {', '.join(sorted(unknown))}")
    targets = [t for t in TARGETS if not args.only or t.name in args.only]
    plan = [(t, mutants(t)) for t in targets]
    if args.list:
        for _, ms in plan:
            for m in ms:
                print(m.describe())
        print(f"{sum(len(ms) for _, ms in plan)} mutants")
        return 0
    work = Path(args.workdir or tempfile.mkdtemp(prefix="kubedr-mutate-"))
    run = Run(work)
    survivors: list[Mutant] = []
    timeouts: list[Mutant] = []
    totals: dict[str, list[int]] = {}
    started = time.monotonic()
    try:
        for target, ms in plan:
            state, took = run.pytest(target.tests, 600)
            if state != "passed":
                print(f"{target.module}: its tests do not pass unmutated ({state}); fix that first", file=sys.stderr)
                return 2
            print(f"{target.name}: {target.module}, {len(ms)} mutants, tests {' '.join(target.tests)} "
                  f"({took:.1f}s unmutated)", flush=True)
            count = totals.setdefault(target.name, [0, 0])
            for m in ms:
                outcome = run.check(m, timeout=5 * took + 30)
                count[0] += outcome != "passed"
                count[1] += 1
                if outcome == "passed":
                    survivors.append(m)
                    print(f"  SURVIVED {m.describe()}", flush=True)
                elif outcome == "timeout":
                    timeouts.append(m)
                    print(f"  killed by the timeout (a hang, or a loaded machine): {m.describe()}", flush=True)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    killed, total = sum(c[0] for c in totals.values()), sum(c[1] for c in totals.values())
    print()
    for name, (k, n) in totals.items():
        print(f"{name:24} {k}/{n} killed ({100 * k / max(n, 1):.0f}%)")
    score = 100 * killed / max(total, 1)
    print(f"{'score':24} {killed}/{total} killed ({score:.1f}%) in {time.monotonic() - started:.0f}s; "
          f"{len(survivors)} survived, {len(timeouts)} killed by the timeout")
    for m in survivors:
        print(f"  survived: {m.describe()}")
    return 0 if score >= args.min_score else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
