"""Backends by name, imported on use.

Each table maps a user-facing name to "module:attribute". Nothing here imports a backend; `load` does,
when a command actually asks for one, so `sonocli --help` never pays for paramiko or cryptography.
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
}


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
