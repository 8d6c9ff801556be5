"""SMTP never sends a login in clear by accident (issue 13, item 6): a real aiosmtpd without STARTTLS.

The server here accepts AUTH on a plain connection (what a careless or a man-in-the-middle server offers).
sonocli must fail at step ``tls`` with one line, exit 1, before AUTH or a byte of the report goes out; with
SMTP_ALLOWPLAIN=1 it delivers and warns at every delivery.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sonocli.errors import PushError
from sonocli.push.base import StepEvent
from tests.integration.push.conftest import make_root
from tests.integration.push.test_push_channels import XML, channel, report

USER, PASSWORD = "alice", "S3cretMail"
# the point of this peer: it offers AUTH without TLS, which aiosmtpd rightly warns about
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")


@dataclass
class PlainSmtp:
    port: int
    messages: list[Any] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    logins: list[bytes] = field(default_factory=list)


@pytest.fixture(scope="module")
def plain_smtp() -> Any:
    """aiosmtpd with AUTH but no STARTTLS (auth_require_tls=False): it would take the password in clear."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    logging.getLogger("mail.log").setLevel(logging.ERROR)
    peer = PlainSmtp(0)

    class Sink:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            peer.messages.append(envelope)
            return "250 OK"

    class EphemeralController(Controller):
        def _trigger_server(self) -> None:
            self.port = self.server.sockets[0].getsockname()[1]
            super()._trigger_server()

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: Any, data: Any) -> Any:
        peer.logins.append(bytes(data.login) + b" " + bytes(data.password))
        return AuthResult(success=data.login == USER.encode() and data.password == PASSWORD.encode(),
                          handled=False)

    ctl = EphemeralController(Sink(), hostname="127.0.0.1", port=0, auth_require_tls=False,
                              auth_required=True, authenticator=authenticator)
    ctl.start()
    peer.port = int(ctl.port)
    yield peer
    ctl.stop()


def _settings(port: int, **extra: Any) -> dict[str, Any]:
    return {"SMTP_IP": f"127.0.0.1:{port}", "SMTP_USER": USER, "SMTP_PASSWORD": PASSWORD,
            "SMTP_FROMADDRESS": "muc@example.org", "SMTP_TOADDRESS": "head@example.org", **extra}


def test_no_starttls_refuses_the_login_and_sends_nothing(tmp_path: Path, plain_smtp: PlainSmtp) -> None:
    steps: list[StepEvent] = []
    ch = channel("smtp", tmp_path, steps, **_settings(plain_smtp.port))
    before = len(plain_smtp.messages)
    with pytest.raises(PushError) as err:
        ch.send(report("s", XML, "application/xml"))
    assert (err.value.channel, err.value.step) == ("smtp", "tls")
    assert "no STARTTLS" in err.value.message and "in clear" in err.value.message
    assert err.value.hint is not None and "SMTP_ALLOWPLAIN=1" in err.value.hint
    assert PASSWORD not in err.value.message
    assert plain_smtp.logins == [] and len(plain_smtp.messages) == before
    assert [(s.step, s.ok) for s in steps if s.step == "tls"] == [("tls", False)]


def test_allow_plain_delivers_with_a_warning_each_time(
    tmp_path: Path, plain_smtp: PlainSmtp, caplog: pytest.LogCaptureFixture
) -> None:
    ch = channel("smtp", tmp_path, **_settings(plain_smtp.port, SMTP_ALLOWPLAIN=True))
    before = len(plain_smtp.messages)
    with caplog.at_level(logging.WARNING, logger="sonocli.push.smtp"):
        ch.send(report("one", XML, "application/xml"))
        ch.send(report("two", XML, "application/xml"))
    assert len(plain_smtp.messages) == before + 2
    warnings = [r.getMessage() for r in caplog.records if r.name == "sonocli.push.smtp"]
    assert len(warnings) == 2 and all("in clear" in w and "SMTP_ALLOWPLAIN=1" in w for w in warnings)
    assert all(PASSWORD not in w for w in warnings)


def test_push_test_exits_1_with_one_line(tmp_path: Path, demo_meter_list: Path, plain_smtp: PlainSmtp) -> None:
    root = make_root(tmp_path / "root", demo_meter_list, SMTP_ENABLE=1, **_settings(plain_smtp.port))
    before, logins = len(plain_smtp.messages), len(plain_smtp.logins)
    run = subprocess.run([sys.executable, "-m", "sonocli", "--root", str(root), "push", "--test"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stdout + run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("sonocli: error:")]
    assert len(errors) == 1 and "no STARTTLS" in errors[0], run.stderr
    assert PASSWORD not in run.stdout + run.stderr
    assert len(plain_smtp.messages) == before and len(plain_smtp.logins) == logins
