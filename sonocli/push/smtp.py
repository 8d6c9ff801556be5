"""XML reports by email (guide 5.2.4, 8.3).

Subject: ``<SMTP_SUBJECTBASENAME> ID: <MUC-ID>, Timestamp: <unix time> (<index>)``, the index counting the
reports of one report cycle (a cycle splits into several mails when REPORT_SIZELIMIT is reached). The XML
is the body (``text/xml``). STARTTLS is used whenever the server offers it (verified against
TLS_ROOT_CERT_FILE when that file exists, else the system CAs), AUTH whenever it is offered and SMTP_USER
is set. SMTP_IP may carry a port (``host:587``); ``smtps://host`` means implicit TLS (port 465).
All timeouts are 30 s times SMTP_TIMEOUTSCALE.

The login never goes out in clear by accident: with SMTP_USER set and no TLS (the server offers no
STARTTLS, or a man in the middle stripped it from the EHLO answer) the delivery fails at step ``tls``
before AUTH or a byte of the report is sent. SMTP_ALLOWPLAIN=1 (sonocli's own) allows it explicitly, and
every such delivery logs a warning.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from sonocli import logs
from sonocli.push.base import Channel, Report, as_int, as_text, device_path, split_host

BASE_TIMEOUT = 30.0
log = logs.logger("sonocli.push.smtp")


class SmtpChannel(Channel):
    name = "smtp"
    format = "xml"

    def __init__(self, get: Any, root: Path, *, muc_id: str = "0", **kwargs: Any) -> None:
        super().__init__(get, root, **kwargs)
        text = as_text(get("SMTP_IP"))
        scheme, host, port = split_host(text, 25)
        self.implicit_tls = scheme == "smtps"
        if self.implicit_tls and ":" not in text.partition("://")[2]:
            port = 465
        self.host = host
        self.port = port
        self.user = as_text(get("SMTP_USER"))
        self.password = as_text(get("SMTP_PASSWORD"))
        self.sender = as_text(get("SMTP_FROMADDRESS"))
        self.recipient = as_text(get("SMTP_TOADDRESS"))
        self.subject_base = as_text(get("SMTP_SUBJECTBASENAME")) or "SonoCollect 111"
        self.timeout = BASE_TIMEOUT * max(1, as_int(get("SMTP_TIMEOUTSCALE"), 1))
        self.cafile = device_path(root, as_text(get("TLS_ROOT_CERT_FILE")) or "/app/cacert.pem")
        self.muc_id = muc_id
        self.allow_plain = bool(get("SMTP_ALLOWPLAIN"))

    def describe(self) -> str:
        return f"smtp://{self.host}:{self.port} from {self.sender} to {self.recipient}"

    def report_name(self, created: int, index: int) -> str:
        return f"{self.subject_base} ID: {self.muc_id}, Timestamp: {created} ({index})"

    def _context(self) -> ssl.SSLContext:
        if self.cafile.is_file():
            return ssl.create_default_context(cafile=str(self.cafile))
        return ssl.create_default_context()

    def _plain_login_allowed(self) -> None:
        """No TLS but a login to send: refuse (nothing sent yet), unless SMTP_ALLOWPLAIN=1 says otherwise."""
        where = f"{self.host}:{self.port}"
        if not self.allow_plain:
            raise self.fail(
                "tls",
                f"{where} offers no STARTTLS; refusing to send the login of {self.user!r} in clear, nothing sent",
                hint="use a server with STARTTLS or smtps://HOST, or set SMTP_ALLOWPLAIN=1 to allow plain SMTP",
            )
        log.warning("smtp: %s offers no STARTTLS; sending the login of %r in clear (SMTP_ALLOWPLAIN=1)",
                    where, self.user)

    def send(self, report: Report) -> None:
        import smtplib
        from email.message import EmailMessage
        from email.utils import formatdate, make_msgid

        if not self.host:
            raise self.fail("resolve", "SMTP_IP is empty; set the mail server in chip.ini")
        if not self.recipient or not self.sender:
            raise self.fail("upload", "SMTP_FROMADDRESS and SMTP_TOADDRESS must both be set")
        self.resolve(self.host, self.port)
        client: smtplib.SMTP
        with self.step("connect", f"{self.host}:{self.port}"):
            if self.implicit_tls:
                client = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self._context())
            else:
                client = smtplib.SMTP(self.host, self.port, timeout=self.timeout, local_hostname="sonocli")
            if client.sock is not None:
                self.track(client.sock)
        try:
            client.ehlo()
            if not self.implicit_tls and client.has_extn("starttls"):
                with self.step("tls", "STARTTLS"):
                    client.starttls(context=self._context())
                    client.ehlo()
                    if client.sock is not None:
                        self.track(client.sock)
            elif not self.implicit_tls and self.user:
                with self.step("tls", "none (SMTP_ALLOWPLAIN=1: the login goes in clear)"):
                    self._plain_login_allowed()
            if self.user:
                with self.step("login", self.user):
                    if not client.has_extn("auth"):
                        raise self.fail("login", "server offers no AUTH, but SMTP_USER is set",
                                        hint="clear SMTP_USER or use a server that authenticates")
                    client.login(self.user, self.password)
            message = EmailMessage()
            message["Subject"] = report.name
            message["From"] = self.sender
            message["To"] = self.recipient
            message["Date"] = formatdate(report.created, usegmt=True)
            message["Message-ID"] = make_msgid("sonocli")
            message.set_content(report.payload, maintype="text", subtype="xml", cte="base64")
            with self.step("upload", report.name):
                refused = client.send_message(message)
                if refused:
                    raise self.fail("upload", f"recipients refused: {', '.join(refused)}")
        finally:
            try:
                client.quit()
            except Exception:
                client.close()
