"""HTML of the web interface: server-rendered, escaped, no JavaScript build (one small static script pings
the session while a page is open). The chart is SVG drawn here from the stored readings."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from html import escape
from typing import Any

# the guide's tabs (chapter 4), with the right that shows each one (sonocli.engine.users.TABS)
NAV = (("general", "/general", "General"), ("meter", "/meter", "Meter"), ("config", "/configuration", "Configuration"),
       ("server", "/server", "Server"), ("security", "/security", "Security"), ("user", "/user", "User"),
       ("service", "/service", "Service"))

STYLE = """body{font-family:sans-serif;margin:0;font-size:14px}header{background:#234;color:#fff;padding:6px 12px;
display:flex;justify-content:space-between;align-items:center}nav a{color:#fff;margin-right:12px}
nav a.on{font-weight:bold;text-decoration:none}main{padding:12px}table{border-collapse:collapse}
td,th{border:1px solid #bbb;padding:2px 6px;text-align:left}th{background:#eee}.warn{background:#fd8;padding:6px}
.error{background:#f99;padding:6px}.info{background:#9e9;padding:6px}tr.value td:first-child{padding-left:18px}
form.inline{display:inline}header form{display:inline}"""


def e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def csrf_field(token: str) -> str:
    return f'<input type="hidden" name="csrf" value="{e(token)}">'


def button(action: str, label: str, csrf: str, fields: dict[str, str] | None = None, ident: str = "") -> str:
    hidden = "".join(f'<input type="hidden" name="{e(k)}" value="{e(v)}">' for k, v in (fields or {}).items())
    id_attr = f' id="{e(ident)}"' if ident else ""
    return (f'<form class="inline" method="post" action="{e(action)}">{csrf_field(csrf)}{hidden}'
            f'<button type="submit"{id_attr}>{e(label)}</button></form>')


def layout(title: str, body: str, *, user: Any = None, csrf: str = "", active: str = "",
           flash: Sequence[tuple[str, str]] = (), warnings: Sequence[str] = (), refresh: int | None = None) -> str:
    nav = ""
    top = ""
    if user is not None:
        links = [f'<a href="{href}" class="{"on" if key == active else ""}">{label}</a>'
                 for key, href, label in NAV if (user.can("user", True) if key == "user" else user.can(key))]
        links.append('<a href="/print" target="_blank">Print</a>')
        nav = "<nav>" + "".join(links) + "</nav>"
        top = (f'<span>{e(user.name)} <a href="/password" style="color:#fff">password</a> '
               f'{button("/logout", "Logout", csrf, ident="logout")}</span>')
    notes = "".join(f'<div class="warn">{e(w)}</div>' for w in warnings)
    notes += "".join(f'<div class="{e(kind)}" id="{e(kind)}">{e(text)}</div>' for kind, text in flash)
    meta = f'<meta http-equiv="refresh" content="{refresh}">' if refresh else ""
    script = '<script src="/static/app.js"></script>' if user is not None else ""
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8">{meta}<title>{e(title)} - sonocli</title>'
            f'<link rel="stylesheet" href="/static/style.css">{script}</head><body><header>{nav}{top}</header>'
            f"<main>{notes}<h1>{e(title)}</h1>{body}</main></body></html>")


def table(header: Iterable[str], rows: Iterable[Iterable[str]], ident: str = "") -> str:
    """Cells are HTML already (escape what comes from data with :func:`e`)."""
    id_attr = f' id="{e(ident)}"' if ident else ""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table{id_attr}><tr>{head}</tr>{body}</table>"


def field_input(param: Any, text: str, writable: bool, secret: bool) -> str:
    """One chip.ini parameter as a form field: a select for choices and switches, text otherwise."""
    name = e(param.name)
    disabled = "" if writable else " disabled"
    if param.type in ("bool", "choice"):
        choices = ["0", "1"] if param.type == "bool" else [str(c) for c in param.choices]
        options = "".join(f'<option value="{e(c)}"{" selected" if c == text else ""}>{e(c or "(empty)")}</option>'
                          for c in choices)
        return f'<select name="{name}" id="f-{name}"{disabled}>{options}</select>'
    kind = "password" if secret else "text"
    return f'<input type="{kind}" name="{name}" id="f-{name}" value="{e(text)}" size="40"{disabled}>'


def svg_chart(points: Sequence[tuple[datetime, float]], unit: str, width: int = 640, height: int = 240) -> str:
    """A line chart of (time, value) as inline SVG; an empty note when there is nothing to draw."""
    if not points:
        return "<p>No stored readings of this value yet.</p>"
    left, right, top, bottom = 70, 10, 10, 30
    t0, t1 = points[0][0].timestamp(), points[-1][0].timestamp()
    values = [v for _, v in points]
    lo, hi = min(values), max(values)
    if hi == lo:
        lo, hi = lo - 1, hi + 1
    span_t = (t1 - t0) or 1.0

    def xy(moment: datetime, value: float) -> tuple[float, float]:
        x = left + (moment.timestamp() - t0) / span_t * (width - left - right)
        y = top + (hi - value) / (hi - lo) * (height - top - bottom)
        return x, y

    coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(t, v) for t, v in points))
    dots = "".join(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2"/>' for x, y in (xy(t, v) for t, v in points[-200:]))
    labels = (f'<text x="2" y="{top + 10}">{e(f"{hi:g}")}</text>'
              f'<text x="2" y="{height - bottom}">{e(f"{lo:g}")}</text>'
              f'<text x="{left}" y="{height - 8}">{e(points[0][0].strftime("%Y-%m-%d %H:%M"))}</text>'
              f'<text x="{width - right}" y="{height - 8}" text-anchor="end">'
              f'{e(points[-1][0].strftime("%Y-%m-%d %H:%M"))} UTC</text>'
              f'<text x="2" y="{height / 2:.0f}">{e(unit)}</text>')
    return (f'<svg id="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'font-size="11" role="img"><rect x="{left}" y="{top}" width="{width - left - right}" '
            f'height="{height - top - bottom}" fill="none" stroke="#999"/>'
            f'<polyline fill="none" stroke="#24a" stroke-width="1.5" points="{coords}"/>'
            f'<g fill="#24a">{dots}</g>{labels}</svg>')


APP_JS = """// keeps the session alive while a page is open (the session ends WEBCOM_TIMEOUT after the last request)
(function () {
  var period = Math.max(2000, (window.SONOCLI_TIMEOUT || 30000) / 3);
  setInterval(function () { fetch('/api/status', {credentials: 'same-origin'}); }, period);
})();
"""
