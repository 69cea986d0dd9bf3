"""What every benchmark shares: its goals checked (each figure says whether it met its goal, the benchmark fails
naming every miss) and the peak memory of one process (its own VmHWM, never a child's)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path


class Goals:
    """The goals one benchmark states; `check()` at the end fails with every figure that missed its goal."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.missed: list[str] = []

    def at_most(self, what: str, value: float, limit: float, unit: str = "") -> str:
        """The goal text for a figure that must not exceed limit ("goal <= 500 ms", "... MISSED")."""
        return self._judge(what, value, limit, unit, value <= limit, "<=")

    def at_least(self, what: str, value: float, limit: float, unit: str = "") -> str:
        """The goal text for a figure that must reach limit."""
        return self._judge(what, value, limit, unit, value >= limit, ">=")

    def none(self, what: str, count: int) -> str:
        """The goal text for a count of failures that must be zero."""
        return self._judge(what, count, 0, "", count == 0, "==")

    def _judge(self, what: str, value: float, limit: float, unit: str, met: bool, op: str) -> str:
        text = f"goal {op} {limit:g}{_unit(unit)}"
        if met:
            return f"({text})"
        self.missed.append(f"{what} {value:.6g}{_unit(unit)}, {text}")
        return f"({text}: MISSED)"

    def check(self) -> None:
        """Fail when any figure missed its goal, naming each one."""
        assert not self.missed, f"{self.name}: goal missed: " + "; ".join(self.missed)


def _memory_mb(pid: int, field: str) -> float:
    """One memory figure of /proc/PID/status (VmHWM, VmRSS), in MB; 0 when it cannot be read."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def rss_hwm_mb(pid: int) -> float:
    """The peak resident memory (VmHWM) of one process, in MB; 0 when it cannot be read."""
    return _memory_mb(pid, "VmHWM")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a running process and of the children it waited for (its git commands), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def cpu_split(pid: int) -> tuple[float, float]:
    """(the process's own CPU seconds, those of the children it waited for), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick


def rss_mb(pid: int) -> float:
    """The resident memory of a running process now (VmRSS), in MB; 0 when it cannot be read."""
    return _memory_mb(pid, "VmRSS")


def run_sampled(proc: subprocess.Popen, interval: float = 0.02) -> tuple[float, float, float]:
    """Wait for proc; (seconds, its own peak RSS in MB, CPU seconds with its children's).

    The RSS is sampled from /proc until the process has exited but is not yet reaped (VmHWM only grows, so the
    last read is the peak): wait4's ru_maxrss would be the largest of the process and its children (git), and
    Linux carries the parent's high-water mark over fork+exec."""
    start = time.perf_counter()
    peak = 0.0
    while os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
        peak = max(peak, rss_hwm_mb(proc.pid))
        time.sleep(interval)  # sampling interval of the probe
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - start, peak, usage.ru_utime + usage.ru_stime


def _unit(unit: str) -> str:
    return unit if not unit or unit.startswith("/") or unit == "x" else f" {unit}"
