"""``/admin``: the report, open hand-offs, the learned-answers queue and channel settings.

Server-rendered HTML (aiohttp, no scripts, no build step). Behind ``SUPPORTBOT_ADMIN_TOKEN``:
an ``Authorization: Bearer`` header, or the login form, which sets an HttpOnly, SameSite=Strict
cookie holding an HMAC of the token (never the token). Every POST also carries a CSRF field.
Without a token configured every /admin path is 404, so the page does not exist.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from html import escape
from pathlib import Path
from typing import Any

from aiohttp import web

from bot import learning
from bot.channels import ChannelPolicy, validate
from bot.report import build_report, parse_since
from bot.report_html import render_page, report_sections
from bot.runtime import Runtime
from storage import activity, channel_settings, learned

log = logging.getLogger(__name__)

ADMIN_PATH = "/admin"
COOKIE = "sb_admin"
RUNTIME_KEY: web.AppKey[Runtime] = web.AppKey("admin_runtime", Runtime)
BOOLEAN_FIELDS = ("auto_answer", "ephemeral", "archive_on_resolve")
TEXT_FIELDS = ("knowledge_filter", "escalation_target", "refusal_language", "unanswered_reaction")


def mount_admin(app: web.Application, runtime: Runtime) -> None:
    """Add the /admin routes to ``app`` (one call from the server that owns it)."""
    app[RUNTIME_KEY] = runtime
    app.router.add_get(ADMIN_PATH, _page)
    app.router.add_post(f"{ADMIN_PATH}/login", _login)
    app.router.add_post(f"{ADMIN_PATH}/logout", _logout)
    app.router.add_post(
        f"{ADMIN_PATH}/learned/{{learned_id:\\d+}}/{{action:approve|reject}}", _review
    )
    app.router.add_post(f"{ADMIN_PATH}/channels", _set_channel)


# ---- authentication ----------------------------------------------------------------------------


def _token(request: web.Request) -> str:
    secret = request.app[RUNTIME_KEY].settings.admin_token
    token = secret.get_secret_value() if secret is not None else ""
    if not token:
        raise web.HTTPNotFound()
    return token


def _derived(token: str, purpose: str) -> str:
    return hmac.new(token.encode(), purpose.encode(), hashlib.sha256).hexdigest()


def _authenticated(request: web.Request, token: str) -> bool:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer ") and hmac.compare_digest(header[7:].strip(), token):
        return True
    cookie = request.cookies.get(COOKIE, "")
    return bool(cookie) and hmac.compare_digest(cookie, _derived(token, "session"))


def _require(request: web.Request) -> str:
    token = _token(request)
    if not _authenticated(request, token):
        raise web.HTTPUnauthorized(
            text=render_page("supportbot admin: sign in", _login_form()), content_type="text/html"
        )
    return token


async def _check_csrf(request: web.Request, token: str) -> dict[str, Any]:
    form = dict(await request.post())
    bearer = request.headers.get("Authorization", "").startswith("Bearer ")
    if not bearer and not hmac.compare_digest(str(form.get("csrf", "")), _derived(token, "csrf")):
        raise web.HTTPForbidden(text="stale form; reload the page")
    return form


def _login_form(error: str = "") -> str:
    note = f'<p style="color:#c62828">{escape(error)}</p>' if error else ""
    return (
        f'<section><h2>Sign in</h2>{note}<form method="post" action="{ADMIN_PATH}/login">'
        '<label>Admin token <input type="password" name="token" id="token" autofocus></label> '
        '<button type="submit" id="sign-in">Sign in</button></form></section>'
    )


async def _login(request: web.Request) -> web.Response:
    token = _token(request)
    form = await request.post()
    if not hmac.compare_digest(str(form.get("token", "")), token):
        log.warning("admin sign-in refused from %s", request.remote)
        page = render_page("supportbot admin: sign in", _login_form("That token is not right."))
        return web.Response(status=401, text=page, content_type="text/html")
    response = web.HTTPSeeOther(ADMIN_PATH)
    response.set_cookie(
        COOKIE,
        _derived(token, "session"),
        httponly=True,
        samesite="Strict",
        path=ADMIN_PATH,
        secure=request.secure,
        max_age=12 * 3600,
    )
    raise response


async def _logout(request: web.Request) -> web.Response:
    token = _require(request)
    await _check_csrf(request, token)
    response = web.HTTPSeeOther(ADMIN_PATH)
    response.del_cookie(COOKIE, path=ADMIN_PATH)
    raise response


# ---- actions -------------------------------------------------------------------------------------


async def _review(request: web.Request) -> web.Response:
    token = _require(request)
    await _check_csrf(request, token)
    runtime = request.app[RUNTIME_KEY]
    learned_id = int(request.match_info["learned_id"])
    try:
        if request.match_info["action"] == "approve":
            source = await learning.approve(
                runtime.db,
                runtime.knowledge,
                learned_id=learned_id,
                reviewed_by="admin page",
                learned_root=Path(runtime.settings.learned_dir),
            )
            note = f"Approved #{learned_id}: {source} is in the knowledge base."
        else:
            await learning.reject(runtime.db, learned_id=learned_id, reviewed_by="admin page")
            note = f"Rejected #{learned_id}."
    except learning.ReviewError as exc:
        note = str(exc)
    raise web.HTTPSeeOther(f"{ADMIN_PATH}?note={_quote(note)}")


async def _set_channel(request: web.Request) -> web.Response:
    token = _require(request)
    form = await _check_csrf(request, token)
    runtime = request.app[RUNTIME_KEY]
    key = {k: str(form.get(k, "")).strip() for k in ("platform", "workspace_id", "channel_id")}
    values: dict[str, Any] = {name: form.get(name) == "on" for name in BOOLEAN_FIELDS}
    values.update({name: str(form.get(name, "")) for name in TEXT_FIELDS})
    try:
        if key["platform"] not in ("slack", "discord", "console") or not key["channel_id"]:
            raise ValueError("platform and channel are required")
        await channel_settings.upsert_setting(runtime.db, **key, **validate(values))
        runtime.responder.channels.invalidate()
        note = f"Saved {key['platform']}:{key['workspace_id']}:{key['channel_id']}."
    except ValueError as exc:
        note = f"Not saved: {exc}"
    raise web.HTTPSeeOther(f"{ADMIN_PATH}?note={_quote(note)}")


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text[:300])


# ---- the page ------------------------------------------------------------------------------------


async def _page(request: web.Request) -> web.Response:
    token = _require(request)
    runtime = request.app[RUNTIME_KEY]
    try:
        window = parse_since(request.query.get("since", "7d"))
    except ValueError:
        window = parse_since("7d")
    sources = await asyncio.to_thread(_sources, runtime)
    embed = runtime.knowledge.embedder.embed if runtime.knowledge.embedder is not None else None
    report = await build_report(runtime.db, since=window, kb_sources=sources, embed=embed)
    escalations = await activity.open_escalations(runtime.db)
    drafts = await learned.list_answers(runtime.db, status=learned.DRAFT)
    channels = await channel_settings.list_settings(runtime.db)
    csrf = _derived(token, "csrf")
    note = request.query.get("note", "")
    body = [
        f'<section class="note" id="note"><p>{escape(note)}</p></section>' if note else "",
        report_sections(report),
        _escalations_section(escalations),
        _learned_section(drafts, csrf),
        _channels_section(channels, csrf),
        f'<form method="post" action="{ADMIN_PATH}/logout"><input type="hidden" name="csrf" '
        f'value="{csrf}"><button type="submit">Sign out</button></form>',
    ]
    return web.Response(
        text=render_page("supportbot admin", "".join(body)),
        content_type="text/html",
        headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"},
    )


def _sources(runtime: Runtime) -> list[str] | None:
    try:
        return runtime.knowledge.sources()
    except Exception:
        log.warning("knowledge base unavailable for the admin report", exc_info=True)
        return None


def _escalations_section(rows: list[Any]) -> str:
    out = [f'<section id="escalations"><h2>Open hand-offs ({len(rows)})</h2>']
    if not rows:
        return out[0] + '<p class="muted">none</p></section>'
    out.append(
        "<table><tr><th>#</th><th>opened</th><th>where</th><th>asked by</th><th>reason</th></tr>"
    )
    for e in rows:
        where = f"{e.platform}:{e.channel_id}" + (f" thread {e.thread_id}" if e.thread_id else "")
        out.append(
            f"<tr><td>{e.id}</td><td>{escape(e.created_at.strftime('%Y-%m-%d %H:%M'))}</td>"
            f"<td>{escape(where)}</td><td>{escape(e.requested_by)}</td>"
            f"<td>{escape((e.reason or '')[:200])}</td></tr>"
        )
    return "".join(out) + "</table></section>"


def _learned_section(drafts: list[Any], csrf: str) -> str:
    out = [f'<section id="learned"><h2>Learned answers to review ({len(drafts)})</h2>']
    if not drafts:
        return out[0] + '<p class="muted">nothing to review</p></section>'
    out.append("<table><tr><th>#</th><th>question</th><th>team's answer</th><th></th></tr>")
    for d in drafts:
        buttons = "".join(
            f'<form class="inline" method="post" action="{ADMIN_PATH}/learned/{d.id}/{action}">'
            f'<input type="hidden" name="csrf" value="{csrf}">'
            f'<button type="submit" id="{action}-{d.id}">{action.title()}</button></form> '
            for action in ("approve", "reject")
        )
        link = _thread_link(d.thread_link)
        out.append(
            f"<tr><td>{d.id}</td><td>{escape(d.question)}</td>"
            f"<td>{escape(d.answer[:600])}{link}</td><td>{buttons}</td></tr>"
        )
    return "".join(out) + "</table></section>"


def _channels_section(rows: list[Any], csrf: str) -> str:
    out = ['<section id="channels"><h2>Channel settings</h2><table><tr><th>channel</th>']
    out += [f"<th>{name.replace('_', ' ')}</th>" for name in (*BOOLEAN_FIELDS, *TEXT_FIELDS)]
    out.append("</tr>")
    for row in rows:
        policy = ChannelPolicy.from_row(row)
        cells = [("yes" if getattr(policy, n) else "no") for n in BOOLEAN_FIELDS]
        cells += [getattr(policy, n) or "" for n in TEXT_FIELDS]
        channel = f"{row.platform}:{row.workspace_id}:{row.channel_id}"
        out.append(f"<tr><td>{escape(channel)}</td>")
        out += [f"<td>{escape(str(c))}</td>" for c in cells]
        out.append("</tr>")
    out.append("</table><h2>Change a channel</h2>")
    out.append(
        f'<form method="post" action="{ADMIN_PATH}/channels" id="channel-form">'
        f'<input type="hidden" name="csrf" value="{csrf}">'
        '<select name="platform"><option>slack</option><option>discord</option></select> '
        '<input name="workspace_id" placeholder="workspace / guild id"> '
        '<input name="channel_id" placeholder="channel id" required> '
    )
    out += [
        f'<label><input type="checkbox" name="{n}"> {n.replace("_", " ")}</label> '
        for n in BOOLEAN_FIELDS
    ]
    out += [f'<input name="{n}" placeholder="{n.replace("_", " ")}"> ' for n in TEXT_FIELDS]
    out.append('<button type="submit" id="save-channel">Save</button></form></section>')
    return "".join(out)


def _thread_link(url: str | None) -> str:
    """The draft's thread, clickable only when it is a web link (the text is the platform's)."""
    if not url:
        return ""
    if url.startswith("https://"):
        return f'<br><a class="muted" href="{escape(url)}" rel="noreferrer">thread</a>'
    return f'<br><span class="muted">{escape(url)}</span>'
