"""The web interface and the JSON API (guide chapter 4), as a Starlette application over one Engine.

Every page and API call is the same engine call as the command line: meter-list changes go through
``engine.update_meters`` with the rules of ``sonocli.engine.meterlist``, activation of heard wM-Bus meters
through ``engine.activate``, scans and readouts through ``engine.scan``/``engine.readout``, chip.ini through
``sonocli.engine.configuration`` (the schema's own validation and messages), users through
``sonocli.engine.users``. Handlers are plain functions run in the server's thread pool (the engine blocks);
:func:`_endpoint` wraps each one with authentication (session cookie or HTTP Basic), the tab right it needs
(403 without it), CSRF for session forms, the one-writer rule and the mapping of errors to a page message
or a JSON error ``{"error": ..., "status": ...}``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import platform
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from sonocli import __version__
from sonocli.engine import configuration, meterlist
from sonocli.engine import users as users_mod
from sonocli.engine.meterjson import meter_dict, meter_object
from sonocli.errors import ConfigError, NotFoundError, SonoError, UsageError
from sonocli.model.valueclass import field, valueclass
from sonocli.web import pages
from sonocli.web.auth import BasicCache, RateLimit, Session, Sessions, TooManySessions, WriterBusy

if TYPE_CHECKING:
    from sonocli.engine.core import Engine
    from sonocli.engine.users import User

log = logging.getLogger("sonocli.web")
COOKIE = "sonocli_session"
SECRET_SUFFIXES = ("_PASS", "_PASSWORD")
MASK = "********"
# sonocli's own parameters shown on the Security tab (the network services); the rest of its own on Configuration
SECURITY_OWN = ("WEB_ENABLE", "WEB_IP", "WEB_PORT", "WEB_CERT_FILE", "WEB_KEY_FILE", "FTPD_ENABLE", "FTPD_IP",
                "FTPD_PORT")
TAB_OF_SCHEMA = {"general": "general", "configuration": "config", "server": "server", "security": "security"}
PAGE_TABS = {"general": "general", "config": "configuration", "server": "server", "security": "security"}
MAX_READINGS = 5000


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def param_right(param: Any) -> str:
    """The users-table tab whose right covers a chip.ini parameter."""
    if param.name in SECURITY_OWN:
        return "security"
    return TAB_OF_SCHEMA.get(param.tab, "config")


def is_secret(name: str) -> bool:
    return name.upper().endswith(SECRET_SUFFIXES)


@valueclass
class Job:
    """A scan or readout started from the web (one at a time: they share the wired bus)."""

    id: str
    kind: str
    user: str
    state: str = "running"  # running, done, failed
    done: int = 0
    total: int | None = None
    text: str = ""
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    started: float = field(default_factory=time.time)
    finished: threading.Event = field(default_factory=threading.Event)

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "user": self.user, "state": self.state, "done": self.done,
                "total": self.total, "text": self.text, "result": self.result, "error": self.error}


@valueclass
class Call:
    """What a handler gets: the request, who asks, the parsed form or JSON body."""

    request: Request
    user: User
    session: Session | None
    form: dict[str, str]
    body: Any
    params: dict[str, str]
    query: dict[str, str]
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # multipart uploads: name -> (file, data)


def parse_multipart(ctype: str, raw: bytes) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    """Fields and files of a ``multipart/form-data`` body, with the standard library's MIME parser (the
    only upload is the update image on the Service tab: no dependency is worth adding for it)."""
    from email import policy
    from email.parser import BytesParser

    message = BytesParser(policy=policy.HTTP).parsebytes(
        b"Content-Type: " + ctype.encode("latin-1") + b"\r\nMIME-Version: 1.0\r\n\r\n" + raw)
    if not message.is_multipart():
        raise HttpError(400, "the upload is not multipart/form-data")
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            files[name] = (filename, data)
        else:
            fields[name] = data.decode("utf-8", "replace")
    return fields, files


class WebApp:
    """The state of one web server: the engine, sessions, rate limit, jobs; :attr:`app` is the ASGI app."""

    def __init__(self, engine: Engine, *, on_change: Callable[[], None] | None = None, https: bool = False) -> None:
        self.engine = engine
        self.on_change = on_change or (lambda: None)
        self.https = https
        self.sessions = Sessions(lambda: float(self._chip_fresh("WEBCOM_TIMEOUT")) / 1000.0)
        self.rate = RateLimit()
        self.basic = BasicCache()
        self.jobs: dict[str, Job] = {}
        self._bus = threading.Lock()
        self.app = Starlette(routes=self._routes())

    # -- helpers --------------------------------------------------------------------------------------------
    def _chip_fresh(self, name: str) -> Any:
        try:
            return configuration.load_chip_ini(self.engine).get(name)
        except SonoError:
            return self.engine.get(name)

    def changed(self) -> None:
        """After a saved change: the web's engine rereads, the daemon is told (SIGHUP: it reinitialises)."""
        self.engine.reload()
        try:
            self.on_change()
        except Exception as exc:  # the change is saved; a daemon that missed it picks it up on its next reload
            log.warning("web: could not notify the daemon: %s", exc)

    def show_keys(self) -> bool:
        return bool(self._chip_fresh("SHOW_KEYS"))

    # -- routing --------------------------------------------------------------------------------------------
    def _routes(self) -> list[Route]:
        r: list[Route] = [
            Route("/static/app.js", self._static_js),
            Route("/static/style.css", self._static_css),
            Route("/login", self._login, methods=["GET", "POST"]),
            Route("/", lambda request: RedirectResponse("/meter", 303)),
        ]

        def add(path: str, handler: Callable[[Call], Response], methods: list[str], right: tuple[str, bool] | None,
                api: bool = False) -> None:
            r.append(Route(path, self._endpoint(handler, right, api), methods=methods))

        add("/logout", self.logout, ["POST"], None)
        add("/password", self.password_page, ["GET"], None)
        add("/password", self.password_save, ["POST"], None)
        for tab in ("general", "config", "server", "security"):
            add(f"/{PAGE_TABS[tab]}", self._tab_page(tab), ["GET"], (tab, False))
            add(f"/{PAGE_TABS[tab]}", self._tab_save(tab), ["POST"], (tab, True))
        add("/meter", self.meter_page, ["GET"], ("meter", False))
        add("/meter/activate", self.meter_activate, ["POST"], ("meter", True))
        add("/meter/heard", self.heard_activate, ["POST"], ("meter", True))
        add("/meter/scan", self.page_job("scan"), ["POST"], ("meter", True))
        add("/meter/readout", self.page_job("readout"), ["POST"], ("meter", True))
        add("/meter/{index:int}", self.meter_edit_page, ["GET"], ("meter", False))
        add("/meter/{index:int}", self.meter_save, ["POST"], ("meter", True))
        add("/meter/{index:int}/value/{value:int}", self.value_save, ["POST"], ("meter", True))
        add("/meter/{index:int}/value/{value:int}/chart", self.chart_page, ["GET"], ("meter", False))
        add("/user", self.user_page, ["GET"], ("user", True))
        add("/user", self.user_save, ["POST"], ("user", True))
        add("/service", self.service_page, ["GET"], ("service", False))
        add("/service/reload", self.service_reload, ["POST"], ("service", True))
        add("/service/update", self.service_update, ["POST"], ("service", True))
        add("/print", self.print_page, ["GET"], None)
        add("/api/status", self.api_status, ["GET"], None, True)
        add("/api/meters", self.api_meters, ["GET"], ("meter", False), True)
        add("/api/meters/{device_id}/readings", self.api_readings, ["GET"], ("meter", False), True)
        add("/api/config/{name}", self.api_config_get, ["GET"], None, True)
        add("/api/config/{name}", self.api_config_put, ["PUT"], None, True)
        add("/api/readout", self.api_job("readout"), ["POST"], ("meter", True), True)
        add("/api/scan", self.api_job("scan"), ["POST"], ("meter", True), True)
        add("/api/jobs/{job}", self.api_job_get, ["GET"], ("meter", False), True)
        add("/api/update", self.api_update, ["POST"], ("service", True), True)
        r.append(Route("/api/{rest:path}", self._api_unknown, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]))
        return r

    async def _static_js(self, request: Request) -> Response:
        return self._headers(Response(pages.APP_JS, media_type="text/javascript"))

    async def _static_css(self, request: Request) -> Response:
        return self._headers(Response(pages.STYLE, media_type="text/css"))

    async def _api_unknown(self, request: Request) -> Response:
        return self._headers(JSONResponse({"error": f"no API endpoint {request.url.path}", "status": 404}, 404))

    def _headers(self, response: Response) -> Response:
        h = response.headers
        h["Content-Security-Policy"] = ("default-src 'self'; img-src 'self' data:; style-src 'self'; "
                                        "script-src 'self'; frame-ancestors 'none'; form-action 'self'")
        h["X-Content-Type-Options"] = "nosniff"
        h["X-Frame-Options"] = "DENY"
        h["Referrer-Policy"] = "no-referrer"
        h["Cache-Control"] = "no-store"
        if self.https:
            h["Strict-Transport-Security"] = "max-age=31536000"
        return response

    @staticmethod
    def _client(request: Request) -> str:
        return request.client.host if request.client else "?"

    def _basic_user(self, request: Request) -> User | None:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("basic "):
            return None
        client = self._client(request)
        if self.rate.retry_after(client) > 0:
            raise HttpError(429, "too many failed logins from this address; try again later")
        try:
            name, _, password = base64.b64decode(header[6:].strip()).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise HttpError(401, "malformed Authorization header") from None
        try:
            stored = users_mod.get_user(self.engine, name)
        except NotFoundError:
            stored = None
        if stored is not None and stored.password_hash:
            key = self.basic.key(name, password, stored.password_hash)
            if self.basic.hit(key):
                return stored
        user = users_mod.authenticate(self.engine, name, password)
        if user is None:
            self.rate.failed(client, name)
            raise HttpError(401, "wrong user name or password")
        self.rate.succeeded(client)
        if user.password_hash:
            self.basic.add(self.basic.key(name, password, user.password_hash))
        return user

    def _endpoint(self, handler: Callable[[Call], Response], right: tuple[str, bool] | None,
                  api: bool) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            body = await request.body() if request.method in ("POST", "PUT") else b""
            try:
                response = await run_in_threadpool(self._dispatch, request, body, handler, right, api)
            except HttpError as exc:
                response = self._error(request, exc.status, exc.message, api)
            return self._headers(response)

        return endpoint

    def _dispatch(self, request: Request, raw: bytes, handler: Callable[[Call], Response],
                  right: tuple[str, bool] | None, api: bool) -> Response:
        session = self.sessions.get(request.cookies.get(COOKIE))
        user: User | None = None
        if session is not None:
            try:
                user = users_mod.get_user(self.engine, session.user)
            except NotFoundError:
                self.sessions.close(session.token)
                session = None
        if user is None and api:
            user = self._basic_user(request)
        if user is None:
            expired = bool(request.cookies.get(COOKIE))
            message = "the session has timed out; log in again" if expired else "log in first"
            if api:
                return JSONResponse({"error": message, "status": 401}, 401,
                                    headers={"WWW-Authenticate": 'Basic realm="sonocli"'})
            return RedirectResponse("/login?expired=1" if expired else "/login", 303)
        if right is not None and not user.can(*right):
            raise HttpError(403, f"user {user.name} has no {'write' if right[1] else 'read'} right for tab "
                                 f"{right[0]}")
        form: dict[str, str] = {}
        files: dict[str, tuple[str, bytes]] = {}
        body: Any = None
        ctype = request.headers.get("content-type", "")
        if raw and ctype.startswith("multipart/form-data"):
            form, files = parse_multipart(ctype, raw)
        elif raw and ctype.startswith("application/octet-stream"):
            body = raw
        elif raw and "json" in ctype:
            try:
                body = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise HttpError(400, f"the body is not JSON: {exc}") from None
        elif raw:
            try:
                form = dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
            except UnicodeDecodeError:
                raise HttpError(400, "the form is not UTF-8") from None
        unsafe = request.method not in ("GET", "HEAD")
        if unsafe and session is not None:
            token = form.get("csrf") or request.headers.get("x-csrf-token", "")
            if not token or token != session.csrf:
                raise HttpError(403, "the form is out of date or not from this site (CSRF check); reload the page")
        call = Call(request, user, session, form, body, dict(request.path_params.items()),
                    dict(request.query_params.items()), files)
        try:
            if unsafe and handler not in (self.logout, self.password_save):
                self.sessions.claim_write(session)
                with self.sessions.write_lock:
                    return handler(call)
            return handler(call)
        except WriterBusy as exc:
            return self._fail(call, 409, str(exc), api)
        except users_mod.PermissionDenied as exc:
            return self._fail(call, 403, exc.message, api)
        except NotFoundError as exc:
            return self._fail(call, 404, exc.message, api)
        except (UsageError, ConfigError) as exc:
            return self._fail(call, 400, exc.message, api)
        except SonoError as exc:
            return self._fail(call, 502, exc.message, api)
        finally:
            self.engine.release_thread()

    def _fail(self, call: Call, status: int, message: str, api: bool) -> Response:
        if not api and call.session is not None and call.request.method == "POST":
            call.session.flash.append(("error", message))
            back = call.request.headers.get("referer") or call.request.url.path
            return RedirectResponse(_local(back), 303)
        return self._error(call.request, status, message, api)

    def _error(self, request: Request, status: int, message: str, api: bool) -> Response:
        if api or request.url.path.startswith("/api/"):
            return JSONResponse({"error": message, "status": status}, status)
        return HTMLResponse(pages.layout("Error", f'<p class="error" id="error">{pages.e(message)}</p>'
                                         '<p><a href="/">back</a></p>'), status)

    def _page(self, call: Call, title: str, body: str, active: str = "", refresh: int | None = None) -> Response:
        flash: list[tuple[str, str]] = []
        if call.session is not None:
            flash, call.session.flash[:] = list(call.session.flash), []
        warnings = []
        defaults = users_mod.default_password_users(self.engine)
        if defaults:
            warnings.append("The guide's default password is still set for " + ", ".join(defaults)
                            + ": change it (User tab, or sonocli users passwd NAME).")
        timeout = int(self._chip_fresh("WEBCOM_TIMEOUT"))
        body = f'<span hidden id="timeout" data-ms="{timeout}"></span>' + body
        return HTMLResponse(pages.layout(title, body, user=call.user, csrf=call.session.csrf if call.session else "",
                                         active=active, flash=flash, warnings=warnings, refresh=refresh))

    def _done(self, call: Call, where: str, message: str) -> Response:
        if call.session is not None:
            call.session.flash.append(("info", message))
        return RedirectResponse(where, 303)

    # -- login ----------------------------------------------------------------------------------------------
    async def _login(self, request: Request) -> Response:
        if request.method == "GET":
            note = ""
            if request.query_params.get("expired"):
                note = '<p class="error">The session has timed out; log in again.</p>'
            return self._headers(HTMLResponse(pages.layout("Login", note + _LOGIN_FORM)))
        raw = await request.body()
        form = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        return self._headers(await run_in_threadpool(self._login_post, request, form))

    def _login_post(self, request: Request, form: dict[str, str]) -> Response:
        client = self._client(request)
        wait = self.rate.retry_after(client)
        if wait > 0:
            return HTMLResponse(pages.layout("Login", f'<p class="error" id="error">Too many failed logins: try '
                                             f'again in {wait:.0f} s.</p>' + _LOGIN_FORM), 429)
        name = form.get("user", "")
        user = users_mod.authenticate(self.engine, name, form.get("password", ""))
        if user is None:
            self.rate.failed(client, name)
            return HTMLResponse(pages.layout("Login", '<p class="error" id="error">Wrong user name or password.</p>'
                                             + _LOGIN_FORM), 401)
        self.rate.succeeded(client)
        try:
            session = self.sessions.open(user.name, user.max_sessions)
        except TooManySessions as exc:
            return HTMLResponse(pages.layout("Login", f'<p class="error" id="error">{pages.e(exc)}</p>'
                                             + _LOGIN_FORM), 403)
        log.info("web: %s logged in from %s", user.name, client)
        first = next((href for key, href, _ in pages.NAV if user.can(key, key == "user")), "/password")
        response = RedirectResponse(first, 303)
        response.set_cookie(COOKIE, session.token, httponly=True, samesite="strict", secure=self.https)
        return response

    def logout(self, call: Call) -> Response:
        if call.session is not None:
            self.sessions.close(call.session.token)
        response = RedirectResponse("/login", 303)
        response.delete_cookie(COOKIE)
        return response

    def password_page(self, call: Call) -> Response:
        need_current = '<p>Current password: <input type="password" name="current" id="current"></p>'
        body = (f'<form method="post" action="/password">{pages.csrf_field(call.session.csrf if call.session else "")}'
                f'{need_current}<p>New password: <input type="password" name="password" id="new-password"></p>'
                '<p><button type="submit" id="save">Change password</button></p></form>')
        return self._page(call, "Change password", body)

    def password_save(self, call: Call) -> Response:
        user = call.user
        if not user.is_admin and not user.change_password:
            raise users_mod.PermissionDenied(f"user {user.name} may not change its password (Change Password off)")
        if users_mod.authenticate(self.engine, user.name, call.form.get("current", "")) is None:
            raise users_mod.PermissionDenied("the current password is wrong")
        users_mod.set_password(self.engine, user.name, call.form.get("password", ""),
                               current=call.form.get("current", ""), by=user.name)
        return self._done(call, "/password", "password changed")

    # -- chip.ini tabs ----------------------------------------------------------------------------------------
    def _tab_params(self, tab: str) -> list[Any]:
        ini = configuration.load_chip_ini(self.engine)
        out = []
        for setting in configuration.settings(ini):
            p = setting.param
            if param_right(p) == tab and (tab != "config" or p.tab in ("configuration", "sonocli")):
                out.append(setting)
        return out

    def _tab_page(self, tab: str) -> Callable[[Call], Response]:
        def page(call: Call) -> Response:
            writable = call.user.can(tab, True)
            rows = [[pages.e(s.param.name), pages.field_input(s.param, MASK if is_secret(s.param.name) and s.text
                                                               else s.text, writable, is_secret(s.param.name)),
                     pages.e(s.param.allowed()), pages.e(s.param.help)] for s in self._tab_params(tab)]
            extra = self._general_facts() if tab == "general" else ""
            save = '<p><button type="submit" id="save">Save</button></p>' if writable else ""
            csrf = pages.csrf_field(call.session.csrf) if call.session else ""
            body = (f'{extra}<form method="post" action="/{PAGE_TABS[tab]}">{csrf}'
                    f'{pages.table(["Parameter", "Value", "Allowed", "Meaning"], rows, "params")}{save}</form>')
            return self._page(call, PAGE_TABS[tab].capitalize(), body, tab)

        return page

    def _tab_save(self, tab: str) -> Callable[[Call], Response]:
        def save(call: Call) -> Response:
            settings = {s.param.name: s for s in self._tab_params(tab)}
            ini = configuration.load_chip_ini(self.engine)
            changes: dict[str, str] = {}
            errors: list[str] = []
            for name, value in call.form.items():
                if name == "csrf":
                    continue
                if name not in settings:
                    errors.append(f"{name}: not a parameter of this tab")
                    continue
                if is_secret(name) and value == MASK:
                    continue
                if value == settings[name].text:
                    continue
                try:
                    ini.param(name).check(value)
                except ConfigError as exc:
                    errors.append(exc.message)
                    continue
                changes[name] = value
            if errors:  # nothing saved: every message, as the schema words it
                raise ConfigError("; ".join(errors))
            for name, value in changes.items():
                configuration.set_parameter(self.engine, name, value)
            if changes:
                self.changed()
            return self._done(call, f"/{PAGE_TABS[tab]}", f"saved: {', '.join(changes) or 'nothing changed'}")

        return save

    def _general_facts(self) -> str:
        def free(path: Any) -> str:
            try:
                return f"{shutil.disk_usage(path).free // 1024} kB"
            except OSError:
                return "?"

        now = datetime.now(UTC)
        rows = [["Serial number (MUC-ID)", pages.e(f"{self.engine.muc_id:012X}")],
                ["Software version", pages.e(f"sonocli {__version__}")],
                ["Free space log (kB)", pages.e(free(self.engine.layout.ext))],
                ["Free space Flash (kB)", pages.e(free(self.engine.layout.app))],
                ["System time (UTC)", pages.e(now.strftime("%Y-%m-%d %H:%M:%S"))],
                ["System time (local)", pages.e(now.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z"))]]
        return pages.table(["Field", "Value"], rows, "facts")

    # -- meter tab ---------------------------------------------------------------------------------------------
    def _latest(self) -> dict[str, tuple[datetime, dict[int, str]]]:
        out: dict[str, tuple[datetime, dict[int, str]]] = {}
        for meter in self.engine.meter_list().meters:
            found = self.engine.latest_values(meter)
            if found is not None:
                out[meter.device_id.upper()] = found
        return out

    def meter_page(self, call: Call) -> Response:
        writable = call.user.can("meter", True)
        csrf = call.session.csrf if call.session else ""
        show = self.show_keys()
        statuses = self.engine.meter_statuses()
        latest = self._latest()
        rows: list[list[str]] = []
        for number, meter in enumerate(self.engine.meter_list().meters, 1):
            data = meter_dict(number, meter, show, statuses.get(meter.device_id.upper()))
            seen = latest.get(meter.device_id.upper())
            state = ("*" if data["limited"] else "") + ("" if seen else "!")
            act = ""
            if writable:
                act = pages.button("/meter/activate", "Deactivate" if meter.active else "Activate", csrf,
                                   {"ref": str(number), "active": "0" if meter.active else "1"}, f"act-{number}")
            rows.append([pages.e(number), pages.e(data["interface"]), pages.e(state), pages.e(meter.serial),
                         pages.e(meter.manufacturer), pages.e((data["medium"] or {}).get("text", "")),
                         pages.e(meter.version),
                         pages.e("" if meter.rssi is None else meter.rssi),
                         pages.e(seen[0].strftime("%Y-%m-%d %H:%M:%S") if seen else ""), "", pages.e(meter.user or ""),
                         pages.e(data["key"] or ""), pages.e(meter.readout_cycle),
                         pages.e("yes" if meter.active else "no"),
                         f'<a href="/meter/{number}" id="edit-{number}">edit</a> {act}'])
            for vnum, value in enumerate(meter.values, 1):
                text = seen[1].get(vnum - 1, "") if seen else ""
                rows.append(["", "", "", "", "", pages.e(value.description), "", "", "",
                             f'{pages.e(text)} {pages.e(value.unit)}', pages.e(value.user or ""),
                             pages.e(value.obis or ""), "", pages.e("yes" if value.active else "no"),
                             f'<a href="/meter/{number}/value/{vnum}/chart">chart</a>'])
        header = ["#", "Interface", "S", "Serial", "MAN", "Medium / description", "Version", "RSSI", "Last reading",
                  "Value", "User label", "Key / OBIS-ID", "Cycle", "Active", ""]
        body = pages.table(header, rows, "meters")
        heard = self.engine.heard_meters()
        if heard:
            hrows = [[pages.e(h.id), pages.e(h.manufacturer), pages.e(h.version), pages.e(h.medium),
                      pages.e("" if h.rssi is None else h.rssi), pages.e(h.last_seen.strftime("%Y-%m-%d %H:%M:%S")),
                      pages.e(h.security), pages.button("/meter/heard", "Activate", csrf, {"ref": h.id},
                                                        f"heard-{h.id}") if writable else ""] for h in heard]
            body += ("<h2>wM-Bus meters heard (not in the list)</h2>"
                     + pages.table(["ID", "MAN", "Version", "Medium", "RSSI", "Last heard", "Security", ""], hrows,
                                   "heard"))
        refresh = None
        running = [j for j in self.jobs.values() if j.state == "running"]
        recent = sorted(self.jobs.values(), key=lambda j: j.started)[-1:]
        for job in running or recent:
            total = f"/{job.total}" if job.total else ""
            body = (f'<p class="info" id="job">{pages.e(job.kind)}: {pages.e(job.state)} {job.done}{total} '
                    f'{pages.e(job.text)} {pages.e(job.error or "")} '
                    f'{pages.e(json.dumps(job.result) if job.result else "")}</p>') + body
            refresh = 2 if job.state == "running" else None
        if writable:
            body = (pages.button("/meter/scan", "Scan", csrf, ident="scan") + " "
                    + pages.button("/meter/readout", "Readout", csrf, ident="readout")) + body
        return self._page(call, "Meter", body, "meter", refresh)

    def _find(self, index: int) -> Any:
        meters = self.engine.meter_list().meters
        if not 1 <= index <= len(meters):
            raise NotFoundError(f"no meter {index} in the list ({len(meters)} meters)")
        return meters[index - 1]

    def meter_edit_page(self, call: Call) -> Response:
        index = int(call.params["index"])
        meter = self._find(index)
        writable = call.user.can("meter", True)
        csrf = pages.csrf_field(call.session.csrf) if call.session else ""
        dis = "" if writable else " disabled"
        key = meter_dict(index, meter, self.show_keys())["key"] or ""
        button = '<button type="submit" id="save-meter">Save</button>' if writable else ""
        body = (f'<form method="post" action="/meter/{index}">{csrf}'
                f'<p>User label: <input name="user" id="user" value="{pages.e(meter.user or "")}"{dis}></p>'
                f'<p>Cycle (s, 0: general): <input name="cycle" id="cycle" value="{meter.readout_cycle}"{dis}></p>'
                f'<p>Encryption key (32 hex digits; empty: none): <input name="key" id="key" '
                f'value="{pages.e(key)}" size="50"{dis}></p>{button}</form><h2>Values</h2>')
        rows = []
        for vnum, value in enumerate(meter.values, 1):
            form = (f'<form class="inline" method="post" action="/meter/{index}/value/{vnum}">{csrf}'
                    f'<input name="user" id="user-{vnum}" value="{pages.e(value.user or "")}"{dis}> '
                    f'<input name="obis" id="obis-{vnum}" value="{pages.e(value.obis or "")}"{dis}> '
                    f'<select name="active"{dis}><option value="1"{" selected" if value.active else ""}>active</option>'
                    f'<option value="0"{"" if value.active else " selected"}>inactive</option></select> '
                    + (f'<button type="submit" id="save-{vnum}">Save</button>' if writable else "") + "</form>")
            rows.append([pages.e(vnum), pages.e(value.description), pages.e(value.unit), form,
                         f'<a href="/meter/{index}/value/{vnum}/chart">chart</a>'])
        body += pages.table(["#", "Description", "Unit", "User label / OBIS-ID / active", ""], rows, "values")
        return self._page(call, f"Meter {index}: {meter.device_id}", body, "meter")

    def meter_save(self, call: Call) -> Response:
        index = int(call.params["index"])
        meter = self._find(index)
        changes: dict[str, Any] = {}
        if "user" in call.form:
            changes["user"] = meterlist.check_label(call.form["user"]) if call.form["user"] else None
        if "cycle" in call.form:
            try:
                changes["readout_cycle"] = int(call.form["cycle"])
            except ValueError:
                raise UsageError(f"cycle {call.form['cycle']!r} is not a number of seconds") from None
        key_field = call.form.get("key")
        new_key: bytes | str | None = "keep"
        if key_field is not None and key_field != "********":
            text = key_field.replace(" ", "")
            try:
                new_key = bytes.fromhex(text) if text else None
            except ValueError:
                raise UsageError("the key is not 32 hex digits") from None
        ref = meter.device_id

        def change(ml: Any) -> tuple[Any, None]:
            ml = meterlist.edit_meter(ml, ref, changes) if changes else ml
            if new_key != "keep":
                ml = meterlist.set_key(ml, ref, new_key if isinstance(new_key, bytes) else None)
            return ml, None

        self.engine.update_meters(change)
        self.changed()
        return self._done(call, f"/meter/{index}", f"meter {index} saved")

    def value_save(self, call: Call) -> Response:
        index, vnum = int(call.params["index"]), int(call.params["value"])
        meter = self._find(index)
        changes: dict[str, Any] = {}
        if "user" in call.form:
            changes["user"] = meterlist.check_label(call.form["user"]) if call.form["user"] else None
        if "obis" in call.form:
            changes["obis"] = meterlist.check_obis(call.form["obis"]) if call.form["obis"] else None
        if "active" in call.form:
            changes["active"] = call.form["active"] == "1"
        ref = f"{index}/{vnum}"
        if not 1 <= vnum <= len(meter.values):
            raise NotFoundError(f"meter {index} has no value {vnum}")
        self.engine.update_meters(lambda ml: (meterlist.edit_value(ml, ref, changes), None))
        self.changed()
        return self._done(call, f"/meter/{index}", f"value {ref} saved")

    def meter_activate(self, call: Call) -> Response:
        ref = call.form.get("ref", "")
        self.engine.activate([ref], active=call.form.get("active", "1") == "1")
        self.changed()
        done = "activated" if call.form.get("active", "1") == "1" else "deactivated"
        return self._done(call, "/meter", f"meter {ref} {done}")

    def heard_activate(self, call: Call) -> Response:
        ref = call.form.get("ref", "")
        self.engine.activate([ref], active=True)
        self.changed()
        return self._done(call, "/meter", f"wM-Bus meter {ref} added to the list and activated")

    def chart_page(self, call: Call) -> Response:
        index, vnum = int(call.params["index"]), int(call.params["value"])
        meter = self._find(index)
        if not 1 <= vnum <= len(meter.values):
            raise NotFoundError(f"meter {index} has no value {vnum}")
        value = meter.values[vnum - 1]
        points: list[tuple[datetime, float]] = []
        if self.engine.layout.database.exists():
            for reading in self.engine.store.iter_readings(meter=meter.device_id):
                for v in reading.values:
                    if v.index == vnum - 1 and isinstance(v.value, int | float) and not isinstance(v.value, bool):
                        points.append((reading.taken_at, float(v.value)))
                        break
        body = (f"<p>{pages.e(value.description)} ({pages.e(value.unit)}), {len(points)} stored readings</p>"
                + pages.svg_chart(points[-MAX_READINGS:], value.unit) + f'<p><a href="/meter/{index}">back</a></p>')
        return self._page(call, f"Meter {index} value {vnum}", body, "meter")

    # -- jobs ------------------------------------------------------------------------------------------------
    def start_job(self, kind: str, user: str) -> Job:
        if not self._bus.acquire(blocking=False):
            raise HttpError(409, "a scan or readout is running; wait until it has finished")
        job = Job(uuid.uuid4().hex[:12], kind, user)
        self.jobs[job.id] = job
        for old in sorted(self.jobs.values(), key=lambda j: j.started)[:-20]:
            self.jobs.pop(old.id, None)

        def progress(done: int, total: int | None, text: str = "") -> None:
            job.done, job.total, job.text = done, total, text

        def run() -> None:
            try:
                if kind == "scan":
                    outcome = self.engine.scan(save=True, on_progress=progress)
                    job.result = {"found": len(outcome.result.meters), "added": len(outcome.added),
                                  "mode": outcome.mode}
                    if outcome.added:
                        self.changed()
                else:
                    meters = self.engine.wired_meters()
                    results, _recorded = self.engine.readout(meters, on_progress=progress)
                    job.result = {"meters": len(results), "read": sum(r.reading is not None for r in results),
                                  "failed": [r.meter.device_id for r in results if r.error is not None]}
                job.state = "done"
            except Exception as exc:  # one line for the page; the log has the details
                log.error("web: %s failed: %s", kind, exc)
                job.state, job.error = "failed", str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            finally:
                self.engine.release_thread()
                self._bus.release()
                job.finished.set()

        self.engine.reload()
        threading.Thread(target=run, name=f"sonocli-web-{kind}", daemon=True).start()
        return job

    def page_job(self, kind: str) -> Callable[[Call], Response]:
        def start(call: Call) -> Response:
            self.start_job(kind, call.user.name)
            return RedirectResponse("/meter", 303)

        return start

    def api_job(self, kind: str) -> Callable[[Call], Response]:
        def start(call: Call) -> Response:
            job = self.start_job(kind, call.user.name)
            if call.query.get("wait") in ("1", "true"):
                job.finished.wait(3600)
                return JSONResponse(job.public(), 200 if job.state == "done" else 502)
            return JSONResponse(job.public(), 202)

        return start

    def api_job_get(self, call: Call) -> Response:
        job = self.jobs.get(call.params["job"])
        if job is None:
            raise NotFoundError(f"no job {call.params['job']!r}")
        return JSONResponse(job.public())

    # -- users tab ---------------------------------------------------------------------------------------------
    def user_page(self, call: Call) -> Response:
        csrf = call.session.csrf if call.session else ""
        rows = []
        for u in users_mod.list_users(self.engine):
            rights = " ".join(f"{t}:{u.level(t)}" for t in users_mod.TABS if u.level(t) != "none")
            actions = "" if u.is_admin else pages.button("/user", "Delete", csrf, {"action": "delete", "name": u.name},
                                                         f"delete-{u.name}")
            rows.append([pages.e(u.name), pages.e(rights), pages.e("yes" if u.ftp else "no"),
                         pages.e(self.sessions.count(u.name)), pages.e(u.max_sessions),
                         pages.e("default" if u.default_password else "set"), actions])
        c = pages.csrf_field(csrf)
        body = pages.table(["Name", "Rights", "FTP", "Sessions", "MaxSessions", "Password", ""], rows, "users")
        body += (f'<h2>Add a user</h2><form method="post" action="/user">{c}<input type="hidden" name="action" '
                 'value="add">Name <input name="name" id="new-name"> Password <input type="password" name="password" '
                 'id="new-password"> Rights <input name="grant" id="new-grant" placeholder="meter:read,config:write">'
                 ' MaxSessions <input name="max_sessions" value="-1" size="4"> <button type="submit" id="add-user">'
                 'Add</button></form>'
                 f'<h2>Change rights</h2><form method="post" action="/user">{c}<input type="hidden" name="action" '
                 'value="edit">Name <input name="name"> Grant <input name="grant"> Revoke <input name="revoke"> '
                 '<button type="submit">Save</button></form>'
                 f'<h2>Set a password</h2><form method="post" action="/user">{c}<input type="hidden" name="action" '
                 'value="passwd">Name <input name="name"> New password <input type="password" name="password"> '
                 '<button type="submit">Set</button></form><p>admin\'s password: only admin itself, on the '
                 '<a href="/password">password</a> page.</p>')
        return self._page(call, "User", body, "user")

    def user_save(self, call: Call) -> Response:
        action, name = call.form.get("action", ""), call.form.get("name", "")
        if action == "add":
            try:
                sessions = int(call.form.get("max_sessions", "-1") or "-1")
            except ValueError:
                raise UsageError("MaxSessions is not a number") from None
            users_mod.add_user(self.engine, name, call.form.get("password", ""), grants=call.form.get("grant", ""),
                               max_sessions=sessions)
        elif action == "edit":
            users_mod.edit_user(self.engine, name, grant=call.form.get("grant", ""),
                                revoke=call.form.get("revoke", ""))
        elif action == "delete":
            users_mod.delete_user(self.engine, name)
            self.sessions.close_user(name)
        elif action == "passwd":
            if name == users_mod.ADMIN:
                raise users_mod.PermissionDenied("only admin itself can change the admin password (guide 4.6)")
            users_mod.set_password(self.engine, name, call.form.get("password", ""), by=call.user.name)
            self.sessions.close_user(name)
        else:
            raise UsageError(f"unknown action {action!r}")
        return self._done(call, "/user", f"user {name}: {action} done")

    # -- service, print ----------------------------------------------------------------------------------------
    def service_page(self, call: Call) -> Response:
        rows = [["Hardware version", pages.e(platform.machine())],
                ["RTOS version", pages.e(f"{platform.system()} {platform.release()}")],
                ["Software version", pages.e(f"sonocli {__version__}")],
                ["Website version", pages.e(f"sonocli {__version__} (Python {platform.python_version()})")]]
        body = pages.table(["Field", "Value"], rows, "versions")
        if call.user.can("service", True):
            body += ("<p>" + pages.button("/service/reload", "Reload configuration", call.session.csrf
                                          if call.session else "", ident="reload")
                     + " (serve-daemon rereads chip.ini and device_handle.cfg and reopens what changed)</p>")
            csrf = call.session.csrf if call.session else ""
            body += ('<h2>Update</h2><form method="post" action="/service/update" enctype="multipart/form-data">'
                     + pages.csrf_field(csrf)
                     + '<input type="file" name="image" id="update-image" accept=".sonoimg"> '
                     + '<label><input type="checkbox" name="install" value="1" checked> install now</label> '
                     + '<button type="submit" id="update">Upload</button></form>'
                     + "<p>A signed sonocli update image (guide 7.1): its signature is checked against "
                     + "app/update-pubkey.pem before anything changes; restart the daemon afterwards.</p>")
        return self._page(call, "Service", body, "service")

    def _update(self, call: Call, data: bytes, filename: str, install: bool) -> dict[str, Any]:
        from sonocli.engine.update import receive_update
        from sonocli.errors import UpdateError

        try:
            result = receive_update(self.engine.layout, data, filename, install=install)
        except UpdateError as exc:  # not a signed image, a downgrade, a failed install: nothing changed
            raise UsageError(exc.message, hint=exc.hint) from None
        log.warning("web: user %s uploaded update image %s (sonocli %s)%s", call.user.name, result["image"],
                    result["version"], ", installed" if result["installed"] else "")
        return result

    def service_update(self, call: Call) -> Response:
        filename, data = call.files.get("image", ("", b""))
        result = self._update(call, data, filename, call.form.get("install") == "1")
        done = "installed; restart the daemon to use it" if result["installed"] else "stored in ext/Upd/"
        return self._done(call, "/service", f"update image sonocli {result['version']} verified and {done}")

    def api_update(self, call: Call) -> Response:
        data = call.body if isinstance(call.body, bytes) else b""
        name = call.query.get("name", "update.sonoimg")
        return JSONResponse(self._update(call, data, name, call.query.get("install") in ("1", "true")))

    def service_reload(self, call: Call) -> Response:
        self.changed()
        return self._done(call, "/service", "configuration reloaded")

    def print_page(self, call: Call) -> Response:
        parts: list[str] = []
        for tab in ("general", "config", "server", "security"):
            if call.user.can(tab):
                rows = [[pages.e(s.param.name), pages.e(MASK if is_secret(s.param.name) and s.text else s.text)]
                        for s in self._tab_params(tab)]
                parts.append(f"<h2>{PAGE_TABS[tab].capitalize()}</h2>" + pages.table(["Parameter", "Value"], rows))
        if call.user.can("meter"):
            show = self.show_keys()
            rows = []
            for n, m in enumerate(self.engine.meter_list().meters, 1):
                d = meter_dict(n, m, show)
                rows.append([pages.e(x) for x in (n, d["interface"], m.serial, m.manufacturer, m.version,
                                                   (d["medium"] or {}).get("text", ""), m.user or "",
                                                   d["key"] or "",
                                                   "yes" if m.active else "no")])
            parts.append("<h2>Meter</h2>" + pages.table(["#", "Interface", "Serial", "MAN", "Version", "Medium",
                                                          "User label", "Key", "Active"], rows, "meters"))
        return HTMLResponse(pages.layout("Print page", "".join(parts)))

    # -- API -------------------------------------------------------------------------------------------------
    def api_status(self, call: Call) -> Response:
        ml = self.engine.meter_list().meters
        return JSONResponse({
            "name": self._chip_fresh("NAME"),
            "version": __version__,
            "user": call.user.public(),
            "time": datetime.now(UTC).isoformat(),
            "meters": len(ml),
            "active_meters": sum(m.active for m in ml),
            "heard": len(self.engine.heard_meters()),
            "writer": self.sessions.writer(),
            "default_passwords": users_mod.default_password_users(self.engine),
            "jobs": [j.public() for j in self.jobs.values() if j.state == "running"],
        })

    def api_meters(self, call: Call) -> Response:
        show = self.show_keys()
        statuses = self.engine.meter_statuses()
        return JSONResponse([meter_dict(n, m, show, statuses.get(m.device_id.upper()))
                             for n, m in enumerate(self.engine.meter_list().meters, 1)])

    def api_readings(self, call: Call) -> Response:
        device_id = call.params["device_id"]
        meters = [m for m in self.engine.meter_list().meters if m.device_id.upper() == device_id.upper()
                  or m.serial == device_id]
        if not meters:
            raise NotFoundError(f"no meter {device_id!r} in the list")
        since = None
        if call.query.get("since"):
            try:
                since = datetime.fromisoformat(call.query["since"].replace("Z", "+00:00"))
            except ValueError:
                raise UsageError(f"since={call.query['since']!r} is not an ISO 8601 time") from None
            if since.tzinfo is None:
                since = since.replace(tzinfo=UTC)
        try:
            limit = min(MAX_READINGS, int(call.query.get("limit", str(MAX_READINGS))))
        except ValueError:
            raise UsageError("limit is not a number") from None
        from sonocli.engine.messages import reading_message  # the shape of readout/readings --json

        out: list[dict[str, Any]] = []
        if self.engine.layout.database.exists():
            for reading in self.engine.store.iter_readings(meter=meters[0].device_id, since=since):
                out.append({**reading_message(reading), "rssi": reading.rssi})
                if len(out) >= limit:
                    break
        return JSONResponse({"device_id": meters[0].device_id, "meter": meter_object(meters[0]), "readings": out})

    def _param(self, call: Call, write: bool) -> Any:
        ini = configuration.load_chip_ini(self.engine)
        try:
            param = ini.param(call.params["name"])
        except ConfigError as exc:
            raise NotFoundError(exc.message) from None
        tab = param_right(param)
        if not call.user.can(tab, write):
            raise users_mod.PermissionDenied(f"user {call.user.name} has no {'write' if write else 'read'} right "
                                             f"for tab {tab} ({param.name})")
        return ini, param

    def api_config_get(self, call: Call) -> Response:
        ini, param = self._param(call, False)
        text = param.format(ini.get(param.name))
        return JSONResponse({"name": param.name, "value": MASK if is_secret(param.name) and text else text,
                             "default": param.format(param.default), "allowed": param.allowed(), "help": param.help,
                             "tab": param.tab})

    def api_config_put(self, call: Call) -> Response:
        _, param = self._param(call, True)
        if not isinstance(call.body, dict) or "value" not in call.body:
            raise UsageError('send JSON {"value": "..."}')
        change = configuration.set_parameter(self.engine, param.name, str(call.body["value"]))
        self.changed()
        secret = is_secret(param.name)
        return JSONResponse({"name": change.param.name, "before": MASK if secret else change.before,
                             "after": MASK if secret else change.after})


def _local(url: str) -> str:
    """Only a path of this site (a Referer from elsewhere must not send the browser there)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    path = parts.path if parts.path.startswith("/") and not parts.path.startswith("//") else "/"
    return path + (f"?{parts.query}" if parts.query else "")


_LOGIN_FORM = ('<form method="post" action="/login"><p>User <input name="user" id="user" autofocus></p>'
               '<p>Password <input type="password" name="password" id="password"></p>'
               '<p><button type="submit" id="login">Log in</button></p></form>')


def create_app(engine: Engine, *, on_change: Callable[[], None] | None = None, https: bool = False) -> WebApp:
    """The web application of ``engine``'s root; ``on_change`` runs after every saved change."""
    return WebApp(engine, on_change=on_change, https=https)


__all__ = ["WebApp", "create_app"]
