"""aecli's errors, and the one place that turns an error into what the user sees.

A ConfigError is a bad input (a value, a file, a folder): its message is one sentence,
printed as `aecli: error: <sentence>` with exit status 2. HYDRA_FULL_ERROR=1, Hydra's
own switch, shows the traceback instead. Nothing heavy is imported here.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn


class ConfigError(ValueError):
    """A config value, file or folder that aecli cannot use; the message is one sentence."""


def full_error() -> bool:
    """HYDRA_FULL_ERROR=1: show tracebacks instead of one-line messages."""
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


def fail(err: BaseException | str, status: int = 2) -> NoReturn:
    """Print `aecli: error: <first line>` and exit with `status`; re-raise under HYDRA_FULL_ERROR=1."""
    if full_error() and isinstance(err, BaseException):
        raise err
    say(err)
    sys.exit(status)


def say(err: object) -> None:
    """`aecli: error: <first line>` on stderr: the one way aecli reports an error."""
    print(f"aecli: error: {first_line(err)}", file=sys.stderr)


def first_line(err: object) -> str:
    """An error's message, or its type when it has none, on one line."""
    text = str(err).strip()
    if isinstance(err, BaseException) and not text:
        return type(err).__name__
    return text.splitlines()[0] if text else ""


def first_sentence(err: object, limit: int = 160) -> str:
    """An error's first line up to its first full stop, at most `limit` characters, cut at a word
    with "..." when longer: an error quoted inside one of aecli's sentences never ends mid-word."""
    text = first_line(err)
    end = text.find(". ")
    text = text[: end + 1] if end >= 0 else text
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(",;:") + "..."
