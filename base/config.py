"""Settings come from flags, then $KUBEDR_* variables, then the YAML config file, in that order."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from kubedr.signing import Signer


class UsageError(Exception):
    """A setting is missing or wrong; reported as one line, exit code 2."""


@dataclass(frozen=True)
class Bound:
    """The range a numeric setting must lie in, so a nonsense value is refused where options are read."""

    least: float | None = None  # the smallest value allowed
    above: float | None = None  # values must be greater than this
    most: float | None = None  # the largest value allowed

    def __str__(self) -> str:
        low = f"above {self.above:g}" if self.above is not None else \
            f"at least {self.least:g}" if self.least is not None else ""
        high = f"at most {self.most:g}" if self.most is not None else ""
        return " and ".join(filter(None, (low, high)))

    def holds(self, value: float) -> bool:
        """The value lies in the range."""
        return not ((self.least is not None and value < self.least) or (self.above is not None and value <= self.above)
                    or (self.most is not None and value > self.most))


def out_of_bounds(values: dict[str, Any], bounds: dict[str, Bound]) -> tuple[str, float, Bound] | None:
    """The first setting whose value (a number, or a mapping of numbers) is outside its bound; None: not given."""
    for name, bound in bounds.items():
        value = values.get(name)
        for item in (value.values() if isinstance(value, dict) else [value]):
            if item is not None and not bound.holds(item):
                return name, item, bound
    return None


def check_bounds(values: dict[str, Any], bounds: dict[str, Bound], flags: dict[str, str] | None = None) -> None:
    """UsageError (one line naming the flag) for a setting outside its bound; flags maps a setting to its flag
    where the two are not spelled alike."""
    found = out_of_bounds(values, bounds)
    if found is not None:
        name, value, bound = found
        flag = (flags or {}).get(name) or "--" + name.replace("_", "-")
        raise UsageError(f"{flag} {value:g}: must be {bound}")


def load_file(path: str) -> dict[str, Any]:
    """Read the config file; a broken file is a usage error that names it."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"config file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise UsageError(f"config file {path}: expected a mapping of command -> settings")
    return data


class Parser(argparse.ArgumentParser):
    """Every kubedr parser and the sub-parsers it makes: no abbreviations, so a shortened or misspelled flag is an
    error instead of silently meaning another flag (--initial-cluster taken as --initial-cluster-token)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)


def signer(path: str | None, required: str = "") -> Signer | None:
    """The kubedr.signing.Signer for a --signing-key flag (None without one, unless `required` says for what)."""
    from kubedr import signing

    if not path:
        if required:
            raise UsageError(f"{required}: --signing-key is required")
        return None
    try:
        return signing.Signer(path)
    except signing.SigningError as exc:
        raise UsageError(f"--signing-key: {exc}") from exc


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            sub: argparse.ArgumentParser = action.choices[name]
            return sub
    raise KeyError(name)


def _given_on_command_line(action: argparse.Action, argv: list[str]) -> bool:
    return any(a == opt or a.startswith(opt + "=") for a in argv for opt in action.option_strings)


def _coerce(action: argparse.Action, value: Any) -> Any:
    if isinstance(action, argparse._StoreTrueAction | argparse._StoreFalseAction):
        return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes", "on")
    if isinstance(action, argparse._AppendAction):
        if isinstance(value, str):
            return [v for v in value.replace(",", " ").split() if v]
        return list(value)
    if callable(action.type) and isinstance(value, str):
        return action.type(value)
    if isinstance(value, list) and action.nargs is None:
        return ",".join(str(v) for v in value)
    return value


def apply_defaults(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str]) -> None:
    """Fill options not given on the command line from $KUBEDR_<DEST> and the config file section."""
    path = args.config or os.environ.get("KUBEDR_CONFIG")
    section: dict[str, Any] = {}
    if path:
        section = load_file(path).get(args.command) or {}
        if not isinstance(section, dict):
            raise UsageError(f"config file {path}: section {args.command!r} must be a mapping")
    sub = _subparser(parser, args.command)
    known = {a.dest for a in sub._actions}
    for key in section:
        if key.replace("-", "_") not in known:
            raise UsageError(f"config file {path}: unknown setting {args.command}.{key}")
    for action in sub._actions:
        if action.dest in ("help", "command") or _given_on_command_line(action, argv):
            continue
        env = os.environ.get("KUBEDR_" + action.dest.upper())
        value = env if env is not None else section.get(action.dest, section.get(action.dest.replace("_", "-")))
        if value is not None:
            setattr(args, action.dest, _coerce(action, value))


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {"ts": self.formatTime(record), "level": record.levelname, "logger": record.name,
               "msg": record.getMessage()}
        doc.update(getattr(record, "fields", {}))
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def process_start() -> float:
    """When this process started, on the monotonic clock (Linux: /proc/self/stat, to 10 ms; elsewhere: now):
    a command's figures (switchover's RTO) count its own start-up too."""
    try:
        with open("/proc/self/stat", encoding="ascii") as fh:
            ticks = int(fh.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime, after "pid (comm)"
        since = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return time.monotonic()
    return time.monotonic() - max(0.0, since)


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to the sys.stderr of the moment: a caller that swaps it (a test's capture) never leaves a closed stream."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr  # handle() holds the lock; no flush of a stream that may be closed
        super().emit(record)


def setup_logging(level: str = "INFO", as_json: bool = False) -> None:
    """One log format for every daemon; JSON for log shippers."""
    handler = _Stderr(sys.stderr)
    handler.setFormatter(_JsonFormatter() if as_json else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("urllib3", "git", "botocore", "boto3", "kubernetes"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
