"""Backends by name, imported on use; the one declaration of every user-facing list of names.

Each table maps a user-facing name to "module:attribute". Nothing here imports a backend; `load` does,
when a command actually asks for one, so `sonocli --help` never pays for paramiko or cryptography.
Everything else that lists these names (the chip.ini schema's WMBUS_DONGLE choices, the radio simulator,
command help, the baud-rate checks of ports and of MBUS_BAUDRATE) reads them from here. This module
imports nothing of sonocli but ``sonocli.errors``, so any layer may import it.
"""

from __future__ import annotations

import importlib
from typing import Any

from sonocli.errors import UsageError

TRANSPORTS: dict[str, str] = {
    "sim": "sonocli.transports.protocol_sim:Serial",
}

DONGLES: dict[str, str] = {
    "im871a": "sonocli.codecs.dongles.im871a:Im871aDriver",
    "amb8465": "sonocli.codecs.dongles.amb8465:Amb8465Driver",
    "cul": "sonocli.codecs.dongles.cul:CulDriver",
    "rtlwmbus": "sonocli.codecs.dongles.rtlwmbus:RtlWmbusDriver",
    "hex": "sonocli.codecs.dongles.hexlines:HexLinesDriver",
}

# Baud rates of the wired M-Bus, for both ``--baud`` and chip.ini's MBUS_BAUDRATE. The operating guide's
# web page allows 300..19200; sonocli also allows 38400, which USB level converters offer.
BAUD_RATES: tuple[int, ...] = (300, 600, 1200, 2400, 4800, 9600, 19200, 38400)

EXPORTERS: dict[str, str] = {
    "csv": "sonocli.outputs.csv_writer:CsvWriter",
    "xml": "sonocli.outputs.xml_writer:XmlWriter",
}

CHANNELS: dict[str, str] = {
    "ftp": "sonocli.push.ftp:FtpChannel",
    "sftp": "sonocli.push.sftp:SftpChannel",
    "tcp": "sonocli.push.tcp:TcpChannel",
    "http": "sonocli.push.http:HttpChannel",
    "smtp": "sonocli.push.smtp:SmtpChannel",
    "mqtt": "sonocli.push.mqtt:MqttChannel",
}


def names(table: dict[str, str]) -> tuple[str, ...]:
    """The names of ``table`` in declaration order."""
    return tuple(table)


def dongle_names() -> tuple[str, ...]:
    """Receiver sticks (``--dongle``, WMBUS_DONGLE, ``sim://air?dongle=``), in declaration order."""
    return names(DONGLES)


def exporter_names() -> tuple[str, ...]:
    """Export formats, in declaration order."""
    return names(EXPORTERS)


def channel_names() -> tuple[str, ...]:
    """Push channels, in declaration order."""
    return names(CHANNELS)


def transport_names() -> tuple[str, ...]:
    """Registered transports, in declaration order."""
    return names(TRANSPORTS)


def words(items: tuple[object, ...], last: str = "or") -> str:
    """``a, b or c`` for help texts (``last`` joins the final two)."""
    texts = [str(item) for item in items]
    if len(texts) < 2:
        return "".join(texts)
    return f"{', '.join(texts[:-1])} {last} {texts[-1]}"


def baud_help() -> str:
    """The allowed baud rates in words, for ``--baud`` help: ``300, 600, ..., 19200 or 38400``."""
    return words(BAUD_RATES)


def load(table: dict[str, str], name: str, kind: str) -> Any:
    """Import and return the object registered as ``name`` in ``table``.

    An unknown name is a usage error that lists the allowed names.
    """
    key = name.lower()
    if key not in table:
        allowed = ", ".join(sorted(table))
        raise UsageError(f"unknown {kind} {name!r}; allowed: {allowed}")
    module_name, _, attr = table[key].partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attr)
