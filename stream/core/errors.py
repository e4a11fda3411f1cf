"""One exception root for the whole project, with specific subclasses.

Callers catch :class:`StreamError` to handle anything this project raises on
purpose; the subclasses say which contract was broken so the shell can decide
between "reject this input" (DLQ) and "refuse to start" (bad configuration).
"""

from __future__ import annotations


class StreamError(Exception):
    """Root of every error this project raises deliberately."""


class ConfigError(StreamError):
    """A setting (environment variable or option) is missing or malformed."""


class CriteriaError(StreamError):
    """A criteria document is invalid; ``field`` names the offending path."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class RejectedInput(StreamError):
    """An input record cannot be applied; ``reason`` is a stable DLQ reason code.

    Reason codes are part of the public contract (they appear in DLQ headers and
    metric labels), so they are short, fixed identifiers and never contain input.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
