import argparse

import pytest

from kubedr import config


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser("export")
    p.add_argument("--repo")
    p.add_argument("--once", action="store_true")
    p.add_argument("--namespace", action="append", dest="namespaces")
    return parser


def test_flag_beats_env_beats_file(tmp_path, monkeypatch):
    cfg = tmp_path / "kubedr.yaml"
    cfg.write_text("export:\n  repo: /from/file\n  once: true\n  namespaces: [a, b]\n")
    parser = _parser()
    argv = ["--config", str(cfg), "export"]
    args = parser.parse_args(argv)
    config.apply_defaults(parser, args, argv)
    assert (args.repo, args.once, args.namespaces) == ("/from/file", True, ["a", "b"])

    monkeypatch.setenv("KUBEDR_REPO", "/from/env")
    args = parser.parse_args(argv)
    config.apply_defaults(parser, args, argv)
    assert args.repo == "/from/env"

    argv = ["--config", str(cfg), "export", "--repo=/from/flag"]
    args = parser.parse_args(argv)
    config.apply_defaults(parser, args, argv)
    assert args.repo == "/from/flag"


def test_unknown_setting_names_file_and_key(tmp_path):
    cfg = tmp_path / "kubedr.yaml"
    cfg.write_text("export:\n  repoo: x\n")
    parser = _parser()
    argv = ["--config", str(cfg), "export"]
    args = parser.parse_args(argv)
    with pytest.raises(config.UsageError, match=r"kubedr.yaml: unknown setting export.repoo"):
        config.apply_defaults(parser, args, argv)


def test_cli_reports_a_bad_config_file_in_one_line(tmp_path, capsys):
    from kubedr.commands import cli

    cfg = tmp_path / "kubedr.yaml"
    cfg.write_text("status:\n  no-such-setting: 1\n")
    assert cli.main(["--config", str(cfg), "status"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "kubedr.yaml: unknown setting status.no-such-setting" in err


def _parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    out = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                out += _parsers(child)
    return out


def test_no_parser_of_any_command_accepts_abbreviated_flags():
    from kubedr.commands.cli import COMMANDS, build_parser

    for name in COMMANDS:
        parsers = _parsers(build_parser(name))
        assert len(parsers) > len(COMMANDS), f"{name}: sub-parsers not found"
        lax = [p.prog for p in parsers if p.allow_abbrev]
        assert not lax, f"parsers that take a prefix for a flag: {lax}"


@pytest.mark.parametrize("argv,bad", [
    (["snapshot", "restore", "--initial-cluster-tok", "a"], "--initial-cluster-tok"),  # --initial-cluster-token
    (["export", "--namesp", "shop"], "--namesp"),                                      # --namespaces
    (["apply", "--dry", "--repo", "x"], "--dry"),                                      # --dry-run
    (["export", "--namespaecs", "shop"], "--namespaecs"),                              # misspelled
])
def test_shortened_or_misspelled_flag_is_an_error(argv, bad, capsys):
    from kubedr.commands.cli import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert f"unrecognized arguments: {bad}" in capsys.readouterr().err


def test_the_log_follows_stderr_when_a_caller_swaps_and_closes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import logging
    import sys

    from kubedr.config import setup_logging

    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup_logging("INFO")
        logging.getLogger("kubedr.test").info("one")
        first.close()  # a test's capture ends; the handler made under it stays
        monkeypatch.setattr(sys, "stderr", second)
        logging.getLogger("kubedr.test").info("two")
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    assert "kubedr.test: two" in second.getvalue()
    assert "Logging error" not in second.getvalue()
