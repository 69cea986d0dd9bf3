"""Whether the clone's file system is why a write failed: a full disk is said as such, not as libgit2's "no error"."""

from __future__ import annotations

import errno
import os
from pathlib import Path

NEARLY_FULL = 64 * 1024  # bytes: a write that failed with less free than this failed for want of space


def storage_problem(path: Path, exc: BaseException) -> str | None:
    """Why a write under path failed when the file system is the cause ('no space left on device'); else None.

    libgit2 sometimes reports a full disk as "no error": the file system's free space decides then.
    """
    code = getattr(exc, "errno", None)
    text = str(exc).lower()
    if code in (errno.ENOSPC, errno.EDQUOT) or "no space left" in text or "quota exceeded" in text:
        return "no space left on device"
    if code == errno.EROFS or "read-only file system" in text:
        return "read-only file system"
    return "no space left on device" if out_of_space(path) else None


def out_of_space(path: Path) -> bool:
    """True when the file system holding path has (almost) no free space or no free inodes left."""
    try:
        st = os.statvfs(path)
    except OSError:
        return False
    free = (st.f_bfree if os.geteuid() == 0 else st.f_bavail) * st.f_frsize
    return free < NEARLY_FULL or bool(st.f_files and not st.f_ffree)
