"""One exception root for the whole project, with specific subclasses.

Callers catch :class:`StreamError` to handle anything this project raises on
purpose; the subclasses say which contract was broken. Bad input is not an
exception: the decoder returns it as a ``Rejection`` with a reason code, so one
bad record can never abort the processing of others.
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
