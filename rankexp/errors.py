"""User-facing errors.

A :class:`RankexpError` carries one line that names the file, key or value at fault and what was
expected. The CLI prints that line and exits non-zero; the traceback is shown only with ``--debug``
(or ``RANKEXP_DEBUG=1``).
"""

from __future__ import annotations


class RankexpError(Exception):
    """An error caused by the user's input or environment, reported as one line."""

    exit_code = 2
    label = "error"  # the CLI prints "<label>: <message>"


class DataError(RankexpError):
    """A collection, qrels, queries, corpus or run file is missing, malformed or inconsistent."""


class ConfigError(RankexpError):
    """An override or config value is unknown or invalid."""


class ConfigValueError(ConfigError):
    """A config value out of its allowed range or type, found before any data is loaded
    (printed as ``config error: KEY must be WHAT, got VALUE``)."""

    label = "config error"


class TrainingError(RankexpError):
    """Training diverged (NaN/inf loss) or ran out of memory."""


def one_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (for errors we did not raise)."""
    text = str(exc).strip()
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__
