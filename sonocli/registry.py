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

# What each receiver can do with each chip.ini WMBUS_MODE (Table 25, plus sonocli's C1_OTHER_REQ): the
# receive mode it listens in. A mode missing here is refused by ``config check`` with this list:
# * R2_OTHER_REQ: no driver sets a stick to R2 (the iM871A has it in hardware; sonocli's driver does not).
# * T2_OTHER_REQ: T2 is the bidirectional T mode (the collector answers); the iM871A and AMB8465 are
#   transceivers that have a T2-other mode, and listen to T1/T2 meters' T-mode frames in it. rtl-wmbus and
#   culfw's receive modes only receive, so T2 is refused there (T1_OTHER_REQ hears the same meters).
# * hex replays captures: it takes any receive mode, but no bidirectional one either.
DONGLE_WMBUS_MODES: dict[str, dict[str, str]] = {
    "im871a": {"T1_OTHER_REQ": "T1", "T2_OTHER_REQ": "T1", "S2_REQ": "S1", "C1_OTHER_REQ": "C1"},
    "amb8465": {"T1_OTHER_REQ": "T1", "T2_OTHER_REQ": "T1", "S2_REQ": "S1", "C1_OTHER_REQ": "C1"},
    "cul": {"T1_OTHER_REQ": "T1", "S2_REQ": "S1", "C1_OTHER_REQ": "C1"},
    "rtlwmbus": {"T1_OTHER_REQ": "T1", "C1_OTHER_REQ": "C1"},
    "hex": {"T1_OTHER_REQ": "T1", "S2_REQ": "S1", "C1_OTHER_REQ": "C1"},
}


def wmbus_mode_problem(dongle: str, mode: str, parameter: str = "WMBUS_MODE") -> str | None:
    """Why ``dongle`` cannot run chip.ini's WMBUS_MODE (or WMBUS2_MODE) ``mode`` (None: it can), naming
    what it can do."""
    modes = DONGLE_WMBUS_MODES.get(dongle.lower())
    if modes is None or not mode or mode.upper() in modes:
        return None
    return (f"{parameter} {mode.upper()} is not supported by the {dongle.lower()} dongle; it can do "
            f"{words(tuple(modes))}")


# URL schemes a port may use (``--port``, MBUS_PORT, WMBUS_PORT …): pyserial's serial_for_url handlers and
# sonocli's simulator; a plain device path (/dev/ttyUSB0, COM3) needs none.
PORT_SCHEMES: tuple[str, ...] = ("socket", "rfc2217", "sim", "spy", "loop", "hwgrep", "alt")

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


def check_port_url(url: str, *, also: tuple[str, ...] = ()) -> None:
    """Refuse a port URL whose scheme no transport knows, naming the supported ones (pyserial would only say
    "protocol 'tcp' not known"). ``also`` names what the caller accepts besides (``listen``: ``-``, ``file:PATH``)."""
    scheme, sep, _rest = url.partition("://")
    if not sep or scheme.lower() in PORT_SCHEMES:
        return
    supported = ["a device path (/dev/ttyUSB0)", *(f"{name}://" for name in PORT_SCHEMES), *also]
    raise UsageError(f"port {url!r}: unknown URL scheme {scheme + '://'!r}; supported: {', '.join(supported)}",
                     hint="socket://HOST:PORT for a TCP gateway (ser2net); sim://demo or sim://air for the simulator")


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
