"""The `kubedr` command: one entry point, each subcommand imported only when it runs."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import time

from kubedr import config

# name -> (module, help). A module provides add_arguments(name, parser) and run(args) -> int.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("kubedr.commands.demo", "rehearse DR end to end on two emulated clusters"),
    "emulate": ("kubedr.emulator.cli", "run the Kubernetes API emulator and write a kubeconfig for it"),
    "install": ("kubedr.commands.install", "from two kubeconfigs to a protected pair: keys, repo, manifests, first commit"),
    "uninstall": ("kubedr.commands.uninstall", "remove what kubedr install made in both clusters, and nothing else"),
    "init": ("kubedr.commands.repo_init", "create a config repo from the repo template"),
    "export": ("kubedr.exporter.cli", "watch the primary and commit every change to Git"),
    "apply": ("kubedr.applier.cli", "apply the repo to the secondary (standby by default)"),
    "diff": ("kubedr.applier.cli", "show what apply would change, per object"),
    "switchover": ("kubedr.applier.cli", "bring standby workloads up to the primary's replicas"),
    "images": ("kubedr.applier.cli", "images the repo's workloads need at switchover; --check asks the DR registry"),
    "promote": ("kubedr.commands.promote", "take the writer role for this cluster (epoch + 1) and bring workloads up"),
    "demote": ("kubedr.commands.demote", "make a returning primary a standby; keep what it never replicated on a side branch"),
    "sync": ("kubedr.commands.sync", "one-shot export from one cluster and apply to another"),
    "status": ("kubedr.commands.status", "replication lag, last applied commit, last snapshot"),
    "seal": ("kubedr.commands.sealing_cli", "seal a Secret manifest with age recipients"),
    "unseal": ("kubedr.commands.sealing_cli", "unseal a sealed Secret manifest with an age identity"),
    "reseal": ("kubedr.commands.sealing_cli", "re-seal every Secret in a repo for new recipients, in one commit"),
    "trust": ("kubedr.commands.trust_cli", "acknowledge reviewed commits whose signature does not verify; list them"),
    "snapshot": ("kubedr.snapshot.cli", "etcd snapshot save | list | verify | prune | restore | post-restore"),
}


def build_parser(name: str | None = None) -> argparse.ArgumentParser:
    """Build the parser; only the named subcommand's module is imported."""
    parser = config.Parser(prog="kubedr", description=__doc__)
    parser.add_argument("--config", help="YAML config file (also $KUBEDR_CONFIG); a section per command")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    parser.add_argument("--log-json", action="store_true", help="structured JSON logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for cmd, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(cmd, help=help_text)
        if cmd == name:
            importlib.import_module(module).add_arguments(cmd, p)
    return parser


def _command_name(argv: list[str]) -> str | None:
    return next((a for a in argv if a in COMMANDS), None)


def main(argv: list[str] | None = None) -> int:
    # the command's start: this process's own when it is the command (its start-up counts), else now
    started = config.process_start() if argv is None else time.monotonic()
    argv = list(sys.argv[1:] if argv is None else argv)
    name = _command_name(argv)
    parser = build_parser(name)
    args = parser.parse_args(argv)
    args.started = started
    if not args.command:
        parser.print_help()
        return 2
    try:
        config.apply_defaults(parser, args, argv)
    except config.UsageError as exc:
        print(f"kubedr: {exc}", file=sys.stderr)
        return 2
    config.setup_logging(args.log_level, args.log_json)
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except config.UsageError as exc:
        logging.getLogger("kubedr").error("%s", exc)
        return 2
    except Exception as exc:
        detail = environment_error(exc)
        if detail is None:
            raise
        logging.getLogger("kubedr").error("kubedr %s: %s", args.command, detail)
        return 1


# (module, class): errors of the environment, never of kubedr: a command that lets one through says it in one line
ENVIRONMENT_ERRORS = (("kubedr.kubeapi", "Unreachable"), ("kubedr.apierrors", "ApiError"), ("kubedr.git", "GitError"))


def environment_error(exc: Exception) -> str | None:
    """One line for an API server or git remote that refused or did not answer; None for anything else. Looks
    the classes up among the loaded modules: one that was never imported cannot have raised."""
    for module, name in ENVIRONMENT_ERRORS:
        cls = getattr(sys.modules.get(module), name, None)
        if cls is not None and isinstance(exc, cls):
            status, path = getattr(exc, "status", None), getattr(exc, "path", "")
            return f"{status} from {path}: {exc}" if status else str(exc)
    return None


if __name__ == "__main__":
    sys.exit(main())
