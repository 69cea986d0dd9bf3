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


def test_with_a_webhook_polling_is_the_fallback_and_the_secret_comes_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "webhook-secret"
    secret.write_text("s3cret\n")
    hooked = apply("--webhook-listen", ":9443", "--webhook-secret-file", str(secret))
    assert (hooked.interval, hooked.webhook_listen, hooked.webhook_secret) == (60.0, ":9443", b"s3cret")
    assert apply("--webhook-listen", ":9443", "--webhook-secret-file", str(secret), "--interval", "5s").interval == 5
    assert (apply().interval, apply().webhook_secret) == (1.0, None)


@pytest.mark.parametrize("flags,error", [
    (("--webhook-listen", ":9443"), "--webhook-listen and --webhook-secret-file go together"),
    (("--webhook-secret-file", "S"), "--webhook-listen and --webhook-secret-file go together"),
    (("--webhook-listen", ":9443", "--webhook-secret-file", "MISSING"), "--webhook-secret-file MISSING: No such file"),
    (("--webhook-listen", ":9443", "--webhook-secret-file", "EMPTY"), "--webhook-secret-file EMPTY: empty"),
])
def test_a_webhook_is_never_served_without_its_secret(flags: tuple[str, ...], error: str, tmp_path: Path) -> None:
    (tmp_path / "s").write_text("x")
    (tmp_path / "empty").write_text("\n")
    names = {"S": str(tmp_path / "s"), "MISSING": str(tmp_path / "missing"), "EMPTY": str(tmp_path / "empty")}
    with pytest.raises(UsageError) as exc:
        apply(*(names.get(f, f) for f in flags))
    assert str(exc.value).startswith(error.replace("MISSING", names["MISSING"]).replace("EMPTY", names["EMPTY"]))


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


@pytest.mark.parametrize("flags,error", [
    (("--prune-max-fraction", "7"), "--prune-max-fraction 7: must be above 0 and at most 1"),
    (("--prune-max-fraction", "0"), "--prune-max-fraction 0: must be above 0 and at most 1"),
    (("--prune-max-fraction", "-0.5"), "--prune-max-fraction -0.5: must be above 0 and at most 1"),
    (("--prune-max-objects", "-1"), "--prune-max-objects -1: must be at least 0"),
    (("--standby-replicas", "-2"), "--standby-replicas -2: must be at least 0"),
    (("--namespace-standby-replicas", "shop=-1"), "--namespace-standby-replicas -1: must be at least 0"),
    (("--concurrency", "0"), "--concurrency 0: must be at least 1"),
    (("--interval", "0"), "--interval 0: must be above 0"),
    (("--drift-interval", "0s"), "--drift-interval 0: must be above 0"),
])
def test_apply_refuses_nonsense_naming_the_flag(flags: tuple[str, ...], error: str) -> None:
    with pytest.raises(UsageError) as exc:
        apply(*flags)
    assert str(exc.value) == error


def test_apply_bounds_include_their_edges() -> None:
    s = apply("--prune-max-fraction", "1", "--prune-max-objects", "0", "--standby-replicas", "0", "--concurrency",
              "1", "--namespace-standby-replicas", "shop=0").settings
    assert (s.prune_max_fraction, s.prune_max_objects, s.standby_replicas, s.concurrency) == (1.0, 0, 0, 1)


def test_the_repo_policy_cannot_turn_the_prune_guard_off() -> None:
    from kubedr.applier.policy import PolicyError, parse

    assert parse(b"apply:\n  prune_max_fraction: 1\n") == {"prune_max_fraction": 1.0}
    for key, value, error in (("prune_max_fraction", "7", "7: must be above 0 and at most 1"),
                              ("prune_max_objects", "-5", "-5: must be at least 0"),
                              ("standby_replicas_by_namespace", "{shop: -1}", "-1: must be at least 0")):
        with pytest.raises(PolicyError, match=f"^apply.{key}: {error}$"):
            parse(f"apply:\n  {key}: {value}\n".encode())


@pytest.mark.parametrize("flags,error", [
    (("--page-size", "0"), "--page-size 0: must be at least 1"),
    (("--remote-check-interval", "0"), "--remote-check-interval 0: must be above 0"),
    (("--role-check-interval", "0s"), "--role-check-interval 0: must be above 0"),
    (("--push-backoff-max", "0ms"), "--push-backoff-max 0: must be above 0"),
])
def test_export_refuses_nonsense_naming_the_flag(flags: tuple[str, ...], error: str) -> None:
    with pytest.raises(UsageError) as exc:
        export("--namespaces", "shop", *flags)
    assert str(exc.value) == error
    assert export("--namespaces", "shop", "--batch-window", "0").batch_window == 0  # commit each pass at once


def test_plaintext_secrets_do_not_go_with_recipients(tmp_path: Path) -> None:
    key = str(pyrage.x25519.Identity.generate().to_public())
    (tmp_path / "recipients.txt").write_text(key + "\n")
    for given in (("--recipient", key), ("--recipients-file", str(tmp_path / "recipients.txt"))):
        with pytest.raises(UsageError, match="^--secrets plaintext writes Secret values to Git in clear text"):
            export("--namespaces", "shop", "--secrets", "plaintext", *given)
        assert export("--namespaces", "shop", *given).secret_mode == "seal"
    assert export("--namespaces", "shop", "--secrets", "plaintext").secret_mode == "plaintext"  # tests only
    with pytest.raises(UsageError, match="^--secrets seal needs --recipient"):
        export("--namespaces", "shop", "--secrets", "seal")


@pytest.mark.parametrize("argv,error", [
    (["apply", "--repo", "r", "--prune-max-fraction", "7"], "--prune-max-fraction 7: must be above 0 and at most 1"),
    (["export", "--repo", "r", "--namespaces", "a", "--secrets", "plaintext", "--recipient",
      str(pyrage.x25519.Identity.generate().to_public())], "--secrets plaintext writes Secret values"),
    (["snapshot", "save", "--store", "STORE", "--part-size-mb", "1"], "--part-size-mb 1: must be at least 5"),
    (["snapshot", "restore", "--store", "STORE", "--data-dir", "d", "--bump-revision", "-1"],
     "--bump-revision -1: must be at least 0"),
    (["snapshot", "save", "--store", "STORE", "--every", "0s", "-r", "age1x"], "--every 0: must be at least 1"),
])
def test_nonsense_is_one_line_and_exit_2(argv: list[str], error: str, tmp_path: Path, capsys: Any) -> None:
    assert main([str(tmp_path) if a == "STORE" else a for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and error in err[0], err
