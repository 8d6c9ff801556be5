"""The SFTP server's host key and the device's own SSH/TLS keys, as ``sonocli service`` changes them.

Kept behind the engine (the CLI never imports push or service internals it should not): the one explicit
way to replace a changed SFTP host key, and the rotation of every key sonocli uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sonocli.errors import UsageError
from sonocli.model.valueclass import valueclass

if TYPE_CHECKING:
    from sonocli.engine.core import Engine
    from sonocli.service.devicekeys import GeneratedKeys


@valueclass(frozen=True)
class ReplacedHostKey:
    name: str  # as in known_hosts: host or [host]:port
    old: str
    new: str
    file: str


def replace_sftp_host_key(engine: Engine, old: str, new: str) -> ReplacedHostKey:
    """Replace the known host key of FTP_IP (an ``sftp://`` server) when ``old`` is the fingerprint on file and
    ``new`` the one the server offers now; UsageError otherwise, with known_hosts unchanged."""
    from sonocli.push.sftp import KNOWN_HOSTS, SftpChannel, replace_host_key

    if not str(engine.get("FTP_IP") or "").lower().startswith("sftp://"):
        raise UsageError("FTP_IP is not an sftp:// server; there is no SSH host key to replace")
    for option, value in (("--old", old), ("--new", new)):
        if not value.startswith("SHA256:"):
            raise UsageError(f"{option} {value!r} is not an OpenSSH fingerprint (SHA256:..., as ssh-keygen -lf "
                             "prints it)")
    channel = SftpChannel(engine.get, engine.root)
    name = replace_host_key(channel.app, channel.host, channel.port, old, new, timeout=channel.timeout)
    return ReplacedHostKey(name, old, new, str(channel.app / KNOWN_HOSTS))


def regenerate_keys(engine: Engine, common_name: str) -> GeneratedKeys:
    """New TLS key and certificate, SSH host key and the SFTP login key (app/ssh_id_ed25519), see
    sonocli.service.devicekeys.regenerate."""
    from sonocli.service.devicekeys import regenerate

    return regenerate(engine.layout.app, common_name)
