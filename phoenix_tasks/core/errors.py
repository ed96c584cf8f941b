"""Errors a user can cause or fix: printed as one line, never as a traceback."""

from __future__ import annotations


class PhoenixError(Exception):
    """A user-facing error: its message is printed as is and the task exits non-zero."""

    exit_code = 1


class NotBuilt(PhoenixError):
    """A feature that is planned but not built yet; says so plainly."""

    exit_code = 3
