"""Exporter harness: an emulated primary over HTTP, an in-process exporter, and readers for the bare remote."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from exporter_harness import export_args

from kubedr.commands.cli import build_parser
from kubedr.exporter.cli import export_options, exporter_for
from kubedr.exporter.pipeline import Exporter


@pytest.fixture
def primary(tmp_path: Path) -> Iterator:
    """The emulator (with a small watch history, so 410 Gone is reachable) and its kubeconfig."""
    from kubedr.emulator.server import Emulator

    emu = Emulator(history=200).start()
    emu.kubeconfig_path = emu.write_kubeconfig(tmp_path / "kubeconfig")
    emu.api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
    yield emu
    emu.stop()


@pytest.fixture
def start_exporter(tmp_path: Path, primary) -> Iterator[Callable[..., Exporter]]:
    """Start an in-process exporter on a remote (defaults: --namespaces shop, plaintext Secrets)."""
    started: list[Exporter] = []

    def start(remote: Path | str, *extra: str) -> Exporter:
        argv = export_args(primary, remote, tmp_path / "clone", *(extra or ("--namespaces", "shop")),
                           "--secrets", "plaintext", "--push-backoff-max", "0.5s")
        args = build_parser("export").parse_args(argv)
        exp = exporter_for(export_options(args))
        exp.start()
        started.append(exp)
        return exp

    yield start
    for exp in started:
        exp.stop(drain=1)


