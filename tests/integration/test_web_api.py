# ruff: noqa: F811 - the fixtures are imported from web_helpers and push/conftest by name
"""The JSON API and the pages of the web interface, on a real uvicorn serving a sim://demo root.

Every endpoint, every right (a user without it gets 403, nobody gets 401), sessions (CSRF, timeout,
MaxSessions, one writer at a time), the login rate limit, and bad input: one JSON error, nothing saved.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from sonocli.engine import users
from sonocli.engine.core import Engine
from tests.integration.web_helpers import Client, _prepared, root, sono, web  # noqa: F401 (fixtures)

pytest.importorskip("starlette")

ADMIN = ("admin", "admin")

# (method, path, body, tab, write): every API endpoint and page, with the right it needs
ENDPOINTS: list[tuple[str, str, Any, str | None, bool]] = [
    ("GET", "/api/meters", None, "meter", False),
    ("GET", "/api/meters/{device}/readings", None, "meter", False),
    ("GET", "/api/config/METER_TIME", None, "config", False),
    ("PUT", "/api/config/METER_TIME", {"value": "600"}, "config", True),
    ("GET", "/api/config/REPORT_TIME", None, "server", False),
    ("GET", "/api/config/NAME", None, "general", False),
    ("GET", "/api/config/WEB_PORT", None, "security", False),
    ("POST", "/api/readout?wait=1", None, "meter", True),
    ("POST", "/api/scan?wait=1", None, "meter", True),
    ("GET", "/general", None, "general", False),
    ("GET", "/meter", None, "meter", False),
    ("GET", "/meter/1", None, "meter", False),
    ("GET", "/meter/1/value/1/chart", None, "meter", False),
    ("GET", "/configuration", None, "config", False),
    ("GET", "/server", None, "server", False),
    ("GET", "/security", None, "security", False),
    ("GET", "/user", None, "user", True),
    ("GET", "/service", None, "service", False),
]


def _device(root: Path) -> str:
    return Engine(root).meter_list().meters[0].device_id


def _path(path: str, root: Path) -> str:
    return path.replace("{device}", _device(root))


def test_status_needs_credentials_and_warns_about_default_passwords(web: Any) -> None:
    status, hdrs, body = Client(web.port).request("GET", "/api/status")
    assert status == 401 and b'"error"' in body and hdrs["www-authenticate"].startswith("Basic")
    status, data = Client(web.port, ADMIN).json("GET", "/api/status")
    assert status == 200 and data["meters"] == 12 and data["default_passwords"] == ["admin", "web", "ftp"]
    assert data["heard"] == 7 and data["user"]["name"] == "admin"
    assert Client(web.port, ("admin", "wrong")).json("GET", "/api/status")[0] == 401


def test_security_headers_on_every_answer(web: Any) -> None:
    for path in ("/login", "/api/status", "/api/nothing"):
        _, hdrs, _ = Client(web.port).request("GET", path)
        assert "frame-ancestors 'none'" in hdrs["content-security-policy"]
        assert hdrs["x-content-type-options"] == "nosniff" and hdrs["x-frame-options"] == "DENY"


def test_meters_are_the_cli_json_objects(web: Any, root: Path) -> None:
    import json

    status, data = Client(web.port, ADMIN).json("GET", "/api/meters")
    cli = json.loads(sono(root, "meters", "list", "--json"))
    assert status == 200
    cli_meters = cli["meters"] if isinstance(cli, dict) else cli
    assert data == cli_meters


def test_readout_then_readings_since(web: Any, root: Path) -> None:
    client = Client(web.port, ADMIN)
    status, job = client.json("POST", "/api/readout?wait=1")
    assert status == 200 and job["state"] == "done" and job["result"]["read"] == 12
    status, got = client.json("GET", f"/api/jobs/{job['id']}")
    assert status == 200 and got["id"] == job["id"]
    status, data = client.json("GET", f"/api/meters/{_device(root)}/readings?since=2000-01-01T00:00:00Z")
    assert status == 200 and data["readings"] and data["readings"][-1]["records"]
    # the reading objects of readout/readings --json: the one meter object, "time", records
    from tests.cli.schema_check import check

    check(data["meter"], "meter")
    for reading in data["readings"]:
        check(reading, "reading")
        assert reading["meter"]["device_id"] == data["device_id"]
    status, data = client.json("GET", f"/api/meters/{_device(root)}/readings?since=2999-01-01")
    assert status == 200 and data["readings"] == []
    status, data = client.json("GET", f"/api/meters/{_device(root)}/readings?since=yesterday")
    assert status == 400 and "ISO 8601" in data["error"]
    assert client.json("GET", "/api/meters/NOPE/readings")[0] == 404


def test_a_scan_adds_nothing_new_on_a_scanned_bus(web: Any) -> None:
    status, job = Client(web.port, ADMIN).json("POST", "/api/scan?wait=1")
    assert status == 200 and job["result"]["found"] == 12 and job["result"]["added"] == 0


def test_config_get_put_with_the_schemas_messages_and_nothing_saved_on_bad_input(web: Any, root: Path) -> None:
    client = Client(web.port, ADMIN)
    before = (root / "app" / "chip.ini").read_bytes()
    status, data = client.json("PUT", "/api/config/METER_TIME", {"value": "5"})
    assert status == 400 and data == {"error": "METER_TIME='5': out of range; allowed: 10..4294967295", "status": 400}
    assert client.json("PUT", "/api/config/NO_SUCH", {"value": "1"})[0] == 404
    status, data = client.json("PUT", "/api/config/METER_TIME", {"nothing": 1})
    assert status == 400 and "value" in data["error"]
    status, _, body = client.request("PUT", "/api/config/METER_TIME", b"{not json")
    assert status == 400 and b"not JSON" in body
    assert (root / "app" / "chip.ini").read_bytes() == before
    assert client.json("PUT", "/api/config/METER_TIME", {"value": "600"}) == (
        200, {"name": "METER_TIME", "before": "900", "after": "600"})
    assert "METER_TIME=600" in (root / "app" / "chip.ini").read_text()


def test_passwords_in_chip_ini_are_never_shown(web: Any, root: Path) -> None:
    sono(root, "config", "set", "FTP_PASS", "top-secret")
    status, data = Client(web.port, ADMIN).json("GET", "/api/config/FTP_PASS")
    assert status == 200 and data["value"] == "********"
    client = Client(web.port)
    client.login("admin", "admin")
    assert b"top-secret" not in client.request("GET", "/server")[2]
    assert b"top-secret" not in client.request("GET", "/print")[2]


@pytest.mark.parametrize(("method", "path", "body", "tab", "write"), ENDPOINTS)
def test_every_endpoint_refuses_a_user_without_the_right(web: Any, root: Path, method: str, path: str, body: Any,
                                                         tab: str | None, write: bool) -> None:
    engine = Engine(root)
    users.add_user(engine, "none", "pw-none")
    level = "read" if write else None
    if level and tab != "user":
        users.add_user(engine, "reader", "pw-reader", grants=f"{tab}:read")
    real = _path(path, root)
    api = real.startswith("/api/")
    if api:
        assert Client(web.port).request(method, real, body)[0] == 401
        status, _, out = Client(web.port, ("none", "pw-none")).request(method, real, body)
        assert status == 403 and b'"error"' in out
        if level and tab != "user":
            assert Client(web.port, ("reader", "pw-reader")).request(method, real, body)[0] == 403
        assert Client(web.port, ADMIN).request(method, real, body)[0] == 200
    else:
        status, hdrs, _ = Client(web.port).request(method, real)
        assert status == 303 and hdrs["location"].startswith("/login")
        client = Client(web.port)
        client.login("none", "pw-none")
        assert client.request(method, real)[0] == 403
        admin = Client(web.port)
        admin.login("admin", "admin")
        assert admin.request(method, real)[0] == 200


def test_forms_need_the_csrf_token_and_the_write_right(web: Any, root: Path) -> None:
    engine = Engine(root)
    users.add_user(engine, "viewer", "pw", grants="meter:read")
    viewer = Client(web.port)
    viewer.login("viewer", "pw")
    assert viewer.post_form("/meter/1", {"user": "X1"})[0] == 403
    admin = Client(web.port)
    admin.login("admin", "admin")
    status, _, body = admin.request("POST", "/meter/1", form={"user": "X1"})  # no csrf field
    assert status == 403 and b"CSRF" in body
    assert Engine(root).meter_list().meters[0].user is None
    assert admin.post_form("/meter/1", {"user": "X1"})[0] == 303
    assert Engine(root).meter_list().meters[0].user == "X1"


def test_a_bad_form_value_gets_the_schemas_message_and_saves_nothing(web: Any, root: Path) -> None:
    admin = Client(web.port)
    admin.login("admin", "admin")
    before = (root / "app" / "chip.ini").read_bytes()
    status, hdrs, _ = admin.post_form("/configuration", {"METER_TIME": "600", "MBUS_BAUDRATE": "1234"})
    assert status == 303
    page = admin.request("GET", hdrs["location"])[2].decode()
    assert "MBUS_BAUDRATE=&#x27;1234&#x27;" in page or "MBUS_BAUDRATE='1234'" in page
    assert (root / "app" / "chip.ini").read_bytes() == before  # METER_TIME not saved either
    status, _, _ = admin.post_form("/meter/1/value/1", {"obis": "not-obis"})
    assert status == 303 and Engine(root).meter_list().meters[0].values[0].obis is None


def test_one_writer_at_a_time(web: Any, root: Path) -> None:
    first, second = Client(web.port), Client(web.port)
    first.login("admin", "admin")
    second.login("web", "web")
    assert first.post_form("/meter/1", {"user": "FIRST"})[0] == 303
    status, hdrs, _ = second.post_form("/meter/1", {"user": "SECOND"})
    assert status == 303 and "error" in second.request("GET", hdrs["location"])[2].decode()
    assert Client(web.port, ("web", "web")).json("PUT", "/api/config/METER_TIME", {"value": "600"})[0] == 409
    assert Engine(root).meter_list().meters[0].user == "FIRST"
    first.post_form("/logout", {})
    assert second.post_form("/meter/1", {"user": "SECOND"})[0] == 303
    assert Engine(root).meter_list().meters[0].user == "SECOND"


def test_concurrent_basic_writers_both_land_or_are_refused_cleanly(web: Any, root: Path) -> None:
    results: list[int] = []

    def put(name: str, value: str) -> None:
        results.append(Client(web.port, ADMIN).json("PUT", f"/api/config/{name}", {"value": value})[0])

    threads = [threading.Thread(target=put, args=(n, v)) for n, v in
               (("METER_TIME", "600"), ("REPORT_TIME", "30"), ("METER_DELAY", "5"), ("MUC_LOG", "ALL"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(set(results)) in ([200], [200, 409])
    text = (root / "app" / "chip.ini").read_text()
    landed = sum(line in text for line in ("METER_TIME=600", "REPORT_TIME=30", "METER_DELAY=5", "MUC_LOG=ALL"))
    assert landed == results.count(200)


def test_two_scans_at_once_one_is_refused(web: Any) -> None:
    client = Client(web.port, ADMIN)
    assert client.json("POST", "/api/scan")[0] == 202
    second = client.json("POST", "/api/readout")
    assert second[0] in (409, 202)  # 202 only when the first scan was already over
    if second[0] == 409:
        assert "running" in second[1]["error"]


def test_login_rate_limit_and_no_password_in_the_log(web: Any, caplog: pytest.LogCaptureFixture) -> None:
    client = Client(web.port)
    codes = [client.login("admin", f"guess-{i}") for i in range(6)]
    assert codes[:5] == [401] * 5 and codes[5] == 429
    assert client.login("admin", "admin") == 429  # even the right password, while locked out
    assert "guess-" not in caplog.text


def test_sessions_time_out_after_webcom_timeout(web: Any, root: Path) -> None:
    import time

    client = Client(web.port)
    client.login("admin", "admin")
    assert client.request("GET", "/meter")[0] == 200
    sono(root, "config", "set", "WEBCOM_TIMEOUT", "300")
    time.sleep(0.5)
    status, hdrs, _ = client.request("GET", "/meter")
    assert status == 303 and "expired" in hdrs["location"]
    assert client.request("GET", "/api/status")[0] == 401


def test_max_sessions(web: Any, root: Path) -> None:
    users.add_user(Engine(root), "once", "pw", grants="meter:read", max_sessions=1)
    assert Client(web.port).login("once", "pw") == 303
    assert Client(web.port).login("once", "pw") == 403


def test_heard_meter_activation_and_user_tab(web: Any, root: Path) -> None:
    admin = Client(web.port)
    admin.login("admin", "admin")
    heard = Engine(root).heard_meters()[0].id
    assert admin.post_form("/meter/heard", {"ref": heard})[0] == 303
    assert any(m.serial == heard and m.active for m in Engine(root).meter_list().meters)
    form = {"action": "add", "name": "carl", "password": "pw", "grant": "meter:read"}
    assert admin.post_form("/user", form)[0] == 303
    assert users.get_user(Engine(root), "carl").can("meter")
    _, hdrs, _ = admin.post_form("/user", {"action": "delete", "name": "admin"})
    assert "admin cannot be deleted" in admin.request("GET", hdrs["location"])[2].decode()
    web_user = Client(web.port)
    web_user.login("web", "web")
    _, hdrs, _ = web_user.post_form("/user", {"action": "passwd", "name": "admin", "password": "x"})
    assert "only admin itself" in web_user.request("GET", hdrs["location"])[2].decode()
    assert users.authenticate(Engine(root), "admin", "admin") is not None
    assert admin.post_form("/password", {"current": "admin", "password": "new-admin"})[0] == 303
    assert users.authenticate(Engine(root), "admin", "new-admin") is not None


def test_unknown_api_paths_are_json_404(web: Any) -> None:
    status, data = Client(web.port, ADMIN).json("GET", "/api/../../etc/passwd")
    assert status == 404 and "error" in data
    assert Client(web.port, ADMIN).json("DELETE", "/api/meters/1")[0] in (404, 405)
