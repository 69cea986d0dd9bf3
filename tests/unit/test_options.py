"""Each command turns its flags into one typed, checked options object; a bad value is one line naming the flag."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyrage
import pytest

from kubedr import leader
from kubedr.applier.cli import apply_options
from kubedr.commands.cli import build_parser, main
from kubedr.config import UsageError
from kubedr.durations import DurationError, parse_duration
from kubedr.exporter.cli import export_options


def export(*flags: str) -> Any:
    return export_options(build_parser("export").parse_args(["export", "--repo", "/nonexistent/r.git", *flags]))


def apply(*flags: str) -> Any:
    return apply_options(build_parser("apply").parse_args(["apply", "--repo", "r", *flags]), "r")


@pytest.mark.parametrize(("text", "seconds"), [("500ms", 0.5), ("10s", 10.0), ("2m", 120.0), ("36h", 129600.0),
                                               ("7d", 604800.0), ("2w", 1209600.0), ("1d12h", 129600.0),
                                               ("1m30s", 90.0), ("1.5", 1.5), (3, 3.0)])
def test_one_duration_syntax(text: Any, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "7 days", "d", "1s soon", "-1s"])
def test_a_bad_duration_names_its_flag(text: str) -> None:
    with pytest.raises(DurationError, match=f"^--flag '{text}': not a duration"):
        parse_duration(text, "--flag")


def test_a_retention_age_needs_its_unit() -> None:
    assert parse_duration("7d", bare_seconds=False) == 604800.0
    with pytest.raises(DurationError, match="a unit is required"):
        parse_duration("7", "--max-age", bare_seconds=False)


def test_export_options_are_typed() -> None:
    o = export("--namespaces", "shop, web", "--batch-window", "250ms", "--push-backoff-max", "1m",
               "--leader-elect", "--leader-election-lease-duration", "20")
    assert (o.batch_window, o.push_backoff_max, o.remote_check_interval, o.role_check_interval) == (0.25, 60, 10, 5)
    assert o.scope == {"namespaces": ["shop", "web"]} and o.secret_mode == "skip"
    assert o.election.elect and o.election.name == "kubedr-exporter" and o.election.timing.lease_duration == 20


@pytest.mark.parametrize("flag", ["--batch-window", "--push-backoff-max", "--remote-check-interval",
                                  "--role-check-interval"])
def test_export_bad_duration_is_one_line_naming_the_flag(flag: str) -> None:
    with pytest.raises(UsageError) as exc:
        export("--namespaces", "shop", flag, "soon")
    assert str(exc.value).startswith(f"{flag} 'soon': not a duration") and "\n" not in str(exc.value)


def test_export_recipients_from_flags_and_file_are_checked(tmp_path: Path) -> None:
    a, b = (str(pyrage.x25519.Identity.generate().to_public()) for _ in range(2))
    listed = tmp_path / "recipients.txt"
    listed.write_text(f"# the DR team\n{b}\n")
    o = export("--namespaces", "shop", "--recipient", a, "--recipients-file", str(listed))
    assert set(o.recipients) == {a, b} and o.secret_mode == "seal"
    listed.write_text("age1notakey\n")
    with pytest.raises(UsageError, match=f"^{listed}:1: not an age X25519 recipient"):
        export("--namespaces", "shop", "--recipients-file", str(listed))


def test_apply_options_are_typed_and_args_stay_as_given() -> None:
    args = build_parser("apply").parse_args(["apply", "--repo", "r", "--revision", "v1", "--interval", "2m",
                                             "--drift-interval", "30s"])
    o = apply_options(args, "r")
    assert (o.interval, o.drift_interval, o.settings.revision) == (120.0, 30.0, "v1")
    assert o.settings.prune is True and "prune" in o.settings.explicit  # a restore prunes back to its tree
    assert args.prune is None  # read, never written back


@pytest.mark.parametrize("flag", ["--interval", "--drift-interval"])
def test_apply_bad_duration_is_one_line_naming_the_flag(flag: str) -> None:
    with pytest.raises(UsageError, match=f"^{flag} 'soon': not a duration"):
        apply(flag, "soon")


def test_leader_timing_that_cannot_work_names_the_flags() -> None:
    with pytest.raises(UsageError, match="--leader-election-renew-deadline"):
        apply("--leader-elect", "--leader-election-renew-deadline", "30")
    assert apply().election == leader.Options()


def test_the_cli_reports_a_bad_setting_in_one_line(capsys: Any) -> None:
    assert main(["export", "--repo", "/nonexistent/r.git", "--namespaces", "a", "--batch-window", "soon"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--batch-window 'soon': not a duration" in err[0]


def test_the_snapshot_cli_reports_a_bad_retention_age_in_one_line(tmp_path: Path, capsys: Any) -> None:
    assert main(["snapshot", "prune", "--store", str(tmp_path), "--max-age", "7"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--max-age '7': not a duration" in err[0]
