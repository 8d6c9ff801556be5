"""The SonoError tree.

Every failure a user can cause or meet is one of these; the CLI root turns it into one line on stderr and
the exit code it carries, so scripts can trust the codes (DESIGN.md: 0 ok, 1 operational failure, 2 usage
or bad input, 3 partial success).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3


class SonoError(Exception):
    """Base of every error sonocli raises on purpose.

    ``hint`` is a short suggestion shown after the message (e.g. "add the user to the dialout group");
    ``frames`` holds hex strings of the last frames on the wire (the flight recorder), printed with --debug.
    """

    exit_code: int = EXIT_FAILURE

    def __init__(self, message: str, *, hint: str | None = None, frames: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.frames = frames

    def __str__(self) -> str:
        return self.message


class UsageError(SonoError):
    """Bad input from the user: options, files, values (exit 2)."""

    exit_code = EXIT_USAGE


class DecodeError(UsageError):
    """Bytes that are not a valid frame or telegram. ``offset`` is the byte offset of the problem."""

    def __init__(self, message: str, *, offset: int | None = None, hint: str | None = None) -> None:
        text = f"{message} (at byte {offset})" if offset is not None else message
        super().__init__(text, hint=hint)
        self.offset = offset
        self.reason = message


class NeedMoreData(DecodeError):
    """A stream decoder needs more bytes; a normal answer, not a failure, for incremental decoding."""


class ConfigError(UsageError):
    """A configuration file or value is invalid; carries the file and line where known."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        where = ""
        if file is not None:
            where = f"{file}:{line}: " if line is not None else f"{file}: "
        super().__init__(f"{where}{message}", hint=hint)
        self.file = file
        self.line = line


class NotFoundError(UsageError):
    """A meter, key, file or item named by the user does not exist (exit 2)."""


class TransportError(SonoError):
    """A port could not be opened or died (exit 1)."""


class TimeoutError_(SonoError):
    """A meter or server did not answer in time (exit 1)."""


class ProtocolError(SonoError):
    """A peer answered with something that breaks the protocol (exit 1)."""


class SecurityError(SonoError):
    """Decryption or authentication failed; subclasses say exactly why (exit 1)."""


class NoKeyError(SecurityError):
    """No key is configured for an encrypted meter."""


class WrongKeyError(SecurityError):
    """Decryption ran but the check bytes (2F2F) did not match: the key is wrong."""


class MacError(SecurityError):
    """The message authentication code did not verify."""


class UnsupportedSecurityError(SecurityError):
    """A security mode sonocli does not implement (e.g. mode 13)."""


class TruncatedError(SecurityError, DecodeError):
    """A wireless telegram shorter than its L-field or its encrypted blocks say: bytes lost on the air.

    Still a DecodeError (a receiver counts it as a bad telegram) but exit 1, not 2: it is one of the
    distinct failure kinds of issue 4 (no key, wrong key, MAC mismatch, unsupported mode, truncated).
    """

    exit_code = EXIT_FAILURE


class PushError(SonoError):
    """A delivery channel failed; ``channel`` and ``step`` say where (resolve, connect, tls, login, upload)."""

    def __init__(
        self, message: str, *, channel: str = "", step: str = "", hint: str | None = None
    ) -> None:
        prefix = f"{channel}: {step}: " if channel and step else (f"{channel}: " if channel else "")
        super().__init__(f"{prefix}{message}", hint=hint)
        self.channel = channel
        self.step = step


class PartialFailure(SonoError):
    """Some items succeeded and some failed (exit 3)."""

    exit_code = EXIT_PARTIAL


class UpdateError(SonoError):
    """A system update image was refused or the install failed; the old installation stays (exit 1)."""


# -- secrets in messages ------------------------------------------------------------------------------------
SHOWN_MAX = 40  # characters of a value a message shows; the rest is counted, not echoed
SECRET_WORDS = ("PASS", "PWD", "SECRET", "TOKEN")


def looks_secret(name: str) -> bool:
    """Whether a key name (an unknown chip.ini key, say FTP_PASSWORD) looks like it holds a secret."""
    upper = name.upper()
    return any(word in upper for word in SECRET_WORDS)


def shown_value(text: str, *, secret: bool = False, limit: int = SHOWN_MAX) -> str:
    """``text`` as an error or log line may show it: quoted; a secret as ``<hidden, N characters>`` (never
    a character of it, however invalid); a long value cut to ``limit`` characters with its length named, so
    a 50 MB value is one short line and not the journal's next 50 MB."""
    if secret:
        return f"<hidden, {len(text)} characters>" if text else "''"
    if len(text) > limit:
        return f"{text[:limit]!r}... ({len(text)} characters)"
    return repr(text)


def redact(text: str, secrets: tuple[str, ...] | list[str] | frozenset[str]) -> str:
    """``text`` with every occurrence of each secret value (4 characters or more) replaced by ``***``."""
    for secret in sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text
