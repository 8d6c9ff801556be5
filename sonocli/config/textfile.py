"""Decoding configuration files as UTF-8 with an error that names the line (chip.ini, device_handle.cfg)."""

from __future__ import annotations

from sonocli.errors import ConfigError


def decode_utf8(data: bytes, file: str | None, hint: str) -> str:
    """The text of ``data``; a ConfigError with the line, byte and offset when it is not UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"not UTF-8 (byte 0x{data[exc.start]:02X} at offset {exc.start})", file=file, line=line, hint=hint
        ) from None
