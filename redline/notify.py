"""Area subscriptions and their deliveries after each nightly run (webhook, e-mail).

A subscription is an area (admin-unit codes, or a polygon in lon/lat), filters (minimum
severity, activities; new flags and/or new observations of open flags) and one channel: a
webhook (URL + secret) or an e-mail address. It belongs to a principal (name, role,
jurisdiction) and never carries a flag that principal may not see (:meth:`Principal.may_see`).

Delivery is idempotent, in two steps:

1. :func:`plan` turns a night's digest into one ``pending`` delivery per subscription with
   something new, keyed ``<subscription id>:<run id>`` (unique in the store) and holding the
   exact payload. The nightly batch writes them in the transaction that marks the night's
   ledger entries reported, so a night's deliveries are planned exactly once.
2. :func:`deliver` sends pending deliveries and marks each ``sent`` (or ``failed`` after
   ``notify_attempts`` tries with exponential backoff). A run killed in between leaves
   ``pending`` rows that the next run (or ``redline notify --run ID``) sends; rows already
   sent are never sent again. A process killed after the receiver got a message but before
   the row was marked sent sends it once more with the same ``X-Redline-Delivery`` key
   (webhook) / ``Message-ID`` (e-mail), for receivers to drop the repeat.

Webhook: ``POST`` of a JSON body, ``X-Redline-Signature: sha256=<hex HMAC-SHA256 of the raw body
with the secret>``; only http/https URLs, redirects are not followed (a 3xx is a failure).
E-mail: SMTP (``REDLINE_SMTP_*`` settings), an HTML digest of the area with the CSV attached.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import smtplib
import socket
import ssl
import time
import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate
from html import escape
from urllib.parse import urlsplit

import shapely
from shapely.geometry import mapping, shape

from . import __version__, vocab
from .auth import Principal
from .clock import now
from .config import DEFAULTS, Settings
from .errors import InputError, NotFoundError, PermissionDeniedError
from .faults import checkpoint
from .store import FlagFilter, Store

DEFAULT_KINDS = ("new", "observed")  # new flags; new observations of open flags
KINDS = (*DEFAULT_KINDS, "overdue")  # and, daily, open ledger entries past their deadline
CHANNELS = ("webhook", "email")
SUBSCRIBER_ROLES = ("inspector", "admin")
CLOSED = ("closed", "false_positive", "permitted")  # not "open": their new observations are not sent
_EMAIL = re.compile(r"^[^@\s<>,;\"']+@[^@\s<>,;\"']+\.[^@\s<>,;\"']+$")


# --- subscriptions ---------------------------------------------------------------------------


def require_subscriber(principal: Principal) -> None:
    if principal.role not in SUBSCRIBER_ROLES:
        raise PermissionDeniedError(f"role {principal.role} may not subscribe")


def check_webhook_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"webhook URL {url!r}: only http:// or https:// URLs with a host")
    if parts.username or parts.password:
        raise InputError("webhook URL: no credentials in the URL; use --secret for the signature")
    return url.strip()


def check_email(address: str) -> str:
    address = address.strip()
    if not _EMAIL.match(address):
        raise InputError(f"{address!r} is not an e-mail address")
    return address


def new_subscription(
    principal: Principal,
    name: str,
    *,
    admin_codes: list[str] | None = None,
    region=None,
    min_severity: str | None = None,
    activities: list[str] | None = None,
    kinds: list[str] | None = None,
    webhook: str | None = None,
    secret: str | None = None,
    email: str | None = None,
) -> dict:
    """A checked subscription row for ``principal`` (``region``: a lon/lat shapely geometry).
    A webhook without a secret gets a generated one (shown once by the caller)."""
    require_subscriber(principal)
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise InputError("a subscription needs a name (at most 100 characters)")
    codes = [c.strip() for c in admin_codes or [] if c and c.strip()]
    if bool(codes) == (region is not None):
        raise InputError("a subscription's area is admin-unit codes (--admin) or a polygon (--region), one of them")
    if codes:
        principal.scope(FlagFilter(admin_code=codes))  # an inspector: only units of the jurisdiction
    if min_severity is not None and min_severity not in vocab.SEVERITIES:
        raise InputError(f"unknown severity {min_severity!r}; expected one of {', '.join(vocab.SEVERITIES)}")
    acts = sorted({vocab.activity(a) for a in activities or []})
    kinds = list(dict.fromkeys(kinds or DEFAULT_KINDS))
    if any(k not in KINDS for k in kinds):
        raise InputError(f"unknown kind in {kinds}; expected {', '.join(KINDS)}")
    if bool(webhook) == bool(email):
        raise InputError("a subscription's channel is a webhook URL (--webhook) or an e-mail address (--email), one")
    if webhook:
        channel, target = "webhook", check_webhook_url(webhook)
        secret = secret or secrets.token_urlsafe(32)
    else:
        if secret:
            raise InputError("--secret signs webhook bodies; an e-mail subscription has none")
        channel, target = "email", check_email(email or "")
    return {
        "name": name,
        "owner_name": principal.name,
        "owner_role": principal.role,
        "owner_jurisdiction": list(principal.jurisdiction),
        "admin_codes": codes,
        "region": mapping(region) if region is not None else None,
        "min_severity": min_severity,
        "activities": acts,
        "kinds": kinds,
        "channel": channel,
        "target": target,
        "secret": secret,
    }


def public(sub: dict) -> dict:
    """A subscription as listed: the webhook secret is never shown again."""
    return {k: v for k, v in sub.items() if k != "secret"} | {"has_secret": bool(sub.get("secret"))}


def visible_subscriptions(store: Store, principal: Principal) -> list[dict]:
    """An admin sees every subscription; anyone else only their own."""
    require_subscriber(principal)
    return store.subscriptions(None if principal.role == "admin" else principal.name)


def remove_subscription(store: Store, principal: Principal, name: str) -> None:
    require_subscriber(principal)
    sub = store.subscription(name)
    if principal.role != "admin" and sub["owner_name"] != principal.name:
        raise NotFoundError(f"subscription {name!r} does not exist")  # not theirs: not even its existence
    store.remove_subscription(name)


# --- matching --------------------------------------------------------------------------------


def _owner(sub: dict) -> Principal | None:
    try:
        return Principal(sub["owner_name"], sub["owner_role"], tuple(sub["owner_jurisdiction"] or ()))
    except PermissionDeniedError:  # an inspector bound to no unit: carries nothing, never everything
        return None


def matches(sub: dict, flag: dict, geometry, kind: str, owner: Principal | None) -> bool:
    """Whether ``flag`` (a brief row; ``kind`` new | observed) goes to subscription ``sub``."""
    if owner is None or not owner.may_see(flag) or kind not in sub["kinds"]:
        return False
    if kind == "observed" and flag.get("status") in CLOSED:
        return False
    if sub["min_severity"] and vocab.severity_rank(flag.get("severity")) < vocab.severity_rank(sub["min_severity"]):
        return False
    if sub["activities"] and flag.get("activity") not in sub["activities"]:
        return False
    if sub["admin_codes"]:
        return flag.get("admin_code") in sub["admin_codes"]
    return geometry is not None and shapely.intersects(shape(sub["region"]), geometry)


def _link(settings: Settings, flag_id: int) -> str:
    return f"{(settings.public_url or '').rstrip('/')}/flags/{flag_id}"


def flag_item(flag: dict, geometry, kind: str, settings: Settings) -> dict:
    """One flag in a webhook body."""
    c = geometry.centroid if geometry is not None else None
    return {
        "id": flag["id"],
        "kind": kind,
        "status": flag.get("status"),
        "severity": flag.get("severity"),
        "activity": flag.get("activity"),
        "zone": {"layer": flag.get("zone_layer"), "name": flag.get("zone_name"), "regime": flag.get("zone_regime")},
        "admin": {"code": flag.get("admin_code"), "name": flag.get("admin_name")},
        "ha": round(flag.get("area_ha") or 0.0, 4),
        "mu": round(flag.get("area_mu") or 0.0, 2),
        "centroid": {"lon": round(c.x, 7), "lat": round(c.y, 7)} if c is not None else None,
        "first_seen": flag.get("first_seen"),
        "last_seen": flag.get("last_seen"),
        "link": _link(settings, flag["id"]),
    }


def _area_digest(digest: dict, new: list[dict], observed: list[dict]) -> dict:
    """The night's digest narrowed to one subscription's flags (for the e-mail)."""
    from .digest import _group

    d = {k: digest.get(k) for k in ("run_id", "started_at", "finished_at")}
    d.update(
        status="ok",
        scans=[],
        failures=[],
        known_failures=[],
        not_settled=[],
        recovery=[],
        new_flags=_group(new),
        new_observations=_group(observed),
    )
    d["totals"] = {
        **{k: 0 for k in (digest.get("totals") or {})},
        "new_flags": len(new),
        "new_observations": len(observed),
    }
    return d


def _record(store: Store, sub: dict, run_id: str, key: str, items: list, payload: dict, written: list) -> None:
    """Write one pending delivery (once: ``key`` is unique); append it to ``written`` if new."""
    row, new = store.add_delivery(
        {
            "subscription_id": sub["id"],
            "run_id": run_id,
            "key": key,
            "flags": len(items),
            "payload": payload,
            "payload_sha256": hashlib.sha256(body(payload)).hexdigest(),
        }
    )
    if new:
        written.append(row)


def body(payload: dict) -> bytes:
    """A webhook's raw body: the payload as compact UTF-8 JSON (what is signed)."""
    return json.dumps(payload["body"], ensure_ascii=False, separators=(",", ":")).encode()


def signature(secret: str, raw: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def plan(store: Store, digest: dict, settings: Settings = DEFAULTS) -> list[dict]:
    """Write one pending delivery per subscription with something new in ``digest`` (a night's,
    redline.digest.build_digest); existing ones (same subscription and run) are left alone.
    Returns the deliveries written now."""
    run_id = digest["run_id"]
    groups = {"new": digest["new_flags"]["flags"], "observed": digest["new_observations"]["flags"]}
    if not any(groups.values()):
        return []
    subs = store.subscriptions()
    if not subs:
        return []
    geoms: dict[int, object] = {}
    for flags in groups.values():
        for f in flags:
            try:
                geoms[f["id"]] = store.flag(f["id"])["geometry"]
            except NotFoundError:  # pragma: no cover - flags are never deleted
                geoms[f["id"]] = None
    written: list[dict] = []
    with store.transaction():
        for sub in subs:
            owner = _owner(sub)
            chosen = {k: [f for f in flags if matches(sub, f, geoms[f["id"]], k, owner)] for k, flags in groups.items()}
            if not any(chosen.values()):
                continue
            items = [flag_item(f, geoms[f["id"]], k, settings) for k, flags in chosen.items() for f in flags]
            key = f"{sub['id']}:{run_id}"
            payload = {
                "body": {
                    "event": "redline.flags",
                    "run_id": run_id,
                    "subscription": sub["name"],
                    "delivery": key,
                    "flags": items,
                }
            }
            if sub["channel"] == "email":
                payload["digest"] = _area_digest(digest, chosen["new"], chosen["observed"])
            _record(store, sub, run_id, key, items, payload, written)
    return written


# --- overdue ledger deadlines (daily) ----------------------------------------------------------


def today() -> date:
    """Today (UTC) by the engine's clock (redline.clock)."""
    return date.fromisoformat(now()[:10])


def overdue_run_id(day: date) -> str:
    """The run id of one day's overdue deliveries (``redline notify --run`` takes it too)."""
    return f"overdue-{day.isoformat()}"


def overdue_rows(store: Store, sub: dict, day: date) -> list[tuple[dict, dict]]:
    """(ledger row, flag) of each problem of ``sub``'s area and owner's jurisdiction whose
    deadline has passed on ``day`` and that is not closed (overdue days: redline.ledger)."""
    from .ledger import ledger_rows

    owner = _owner(sub)
    if owner is None or "overdue" not in sub["kinds"]:
        return []
    flt = FlagFilter(admin_code=list(sub["admin_codes"])) if sub["admin_codes"] else None
    try:  # ledger_rows narrows to the owner's jurisdiction
        rows = ledger_rows(store, owner, day, flt)
    except PermissionDeniedError:  # an area wholly outside the owner's jurisdiction
        return []
    out = []
    for r in rows:
        if r["status"] == "closed" or r["overdue_days"] <= 0:
            continue
        flag = store.flag(r["id"])
        geometry = flag.pop("geometry", None)
        if matches(sub, flag, geometry, "overdue", owner):
            out.append((r, {**flag, "geometry": geometry}))
    return out


def overdue_item(row: dict, flag: dict, settings: Settings) -> dict:
    """One overdue problem in a webhook body: the flag's fields and its ledger entry's."""
    item = flag_item({k: v for k, v in flag.items() if k != "geometry"}, flag.get("geometry"), "overdue", settings)
    return item | {
        "deadline": row["deadline"],
        "overdue_days": row["overdue_days"],
        "responsible": row["responsible"],
        "responsible_person": row["person"],
        "measures": row["measures"],
    }


def plan_overdue(store: Store, day: date | None = None, settings: Settings = DEFAULTS) -> list[dict]:
    """Write one pending delivery per subscription of the ``overdue`` kind that has overdue
    problems on ``day`` (default: today), keyed ``<subscription id>:overdue-<day>``: planning the
    same day again writes nothing. Returns the deliveries written now."""
    day = day or today()
    run_id = overdue_run_id(day)
    written: list[dict] = []
    for sub in store.subscriptions():
        if "overdue" not in sub["kinds"]:
            continue
        found = overdue_rows(store, sub, day)
        if not found:
            continue
        key = f"{sub['id']}:{run_id}"
        items = [overdue_item(r, f, settings) for r, f in found]
        payload: dict = {
            "body": {
                "event": "redline.overdue",
                "run_id": run_id,
                "date": day.isoformat(),
                "subscription": sub["name"],
                "delivery": key,
                "flags": items,
            }
        }
        if sub["channel"] == "email":
            payload["ledger"] = [r for r, _ in found]
        _record(store, sub, run_id, key, items, payload, written)
    return written


def notify_overdue(store: Store, day: date | None = None, settings: Settings = DEFAULTS, **kw) -> list[dict]:
    """``redline notify --overdue [--on DAY]``: plan the day's overdue deliveries (once per day)
    and send those of the day that are pending or failed."""
    day = day or today()
    plan_overdue(store, day, settings)
    return deliver(store, settings, run_id=overdue_run_id(day), retry_failed=True, **kw)


def _overdue_email(sub: dict, delivery: dict, msg: EmailMessage) -> None:
    """The body and CSV of an overdue delivery's e-mail (the ledger rows of its problems)."""
    from .ledger import to_csv

    rows = delivery["payload"].get("ledger") or []
    day = delivery["payload"]["body"]["date"]
    msg["Subject"] = f"[redline] {sub['name']}: {len(rows)} rectification deadlines overdue ({day})"
    lines = [
        f"#{r['id']} {r['admin_code'] or ''} {r['zone'] or ''} deadline {r['deadline']}: "
        f"{r['overdue_days']} days overdue"
        for r in rows
    ]
    msg.set_content(f"redline, subscription {sub['name']}, {day}: overdue deadlines\n\n" + "\n".join(lines) + "\n")
    links = {f["id"]: f["link"] for f in delivery["payload"]["body"].get("flags", [])}
    td = 'style="border:1px solid #bbb;padding:3px 6px;text-align:left"'
    columns = {
        "id": "flag 图斑",
        "admin_name": "admin unit 行政区",
        "zone": "zone 管控区",
        "activity": "activity 活动",
        "responsible": "responsible 责任单位",
        "deadline": "deadline 整改期限",
        "overdue_days": "overdue days 逾期天数",
        "status": "status 状态",
    }

    def cell(r: dict, c: str) -> str:
        text = escape(str(r[c] if r[c] is not None else ""))
        if c == "id" and r["id"] in links:
            return f'<td {td}><a href="{escape(links[r["id"]])}">#{text}</a></td>'
        return f"<td {td}><b>{text}</b></td>" if c == "overdue_days" else f"<td {td}>{text}</td>"

    cells = "".join("<tr>" + "".join(cell(r, c) for c in columns) + "</tr>" for r in rows)
    head = "".join(f'<th {td} bgcolor="#eeeeee">{h}</th>' for h in columns.values())
    msg.add_alternative(
        '<!doctype html><html lang="zh-CN"><meta charset="utf-8">'
        '<body style="font-family:sans-serif;font-size:14px">'
        f"<h2>{escape(sub['name'])}: overdue rectification deadlines 整改逾期, {escape(day)}</h2>"
        f"<p>{len(rows)} problems on the rectification ledger (台账) of this area are past their deadline and"
        " not closed. The CSV attached holds their ledger rows.</p>"
        f'<table style="border-collapse:collapse"><tr>{head}</tr>{cells}</table></body></html>',
        subtype="html",
    )
    msg.add_attachment(
        to_csv(rows).decode(),
        subtype="csv",
        charset="utf-8",
        filename=f"redline-{sub['name']}-overdue-{day}.csv".replace("/", "_"),
    )


# --- sending ---------------------------------------------------------------------------------


class Permanent(Exception):
    """A failure that retrying will not fix (a 4xx answer, a refused address)."""


def _send_webhook(sub: dict, delivery: dict, settings: Settings, client=None) -> None:
    import httpx

    raw = body(delivery["payload"])
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"redline/{__version__}",
        "X-Redline-Signature": signature(sub["secret"] or "", raw),
        "X-Redline-Delivery": delivery["key"],
        "X-Redline-Event": delivery["payload"]["body"].get("event", "redline.flags"),
    }
    url = check_webhook_url(sub["target"])
    own = client is None
    client = client or httpx.Client(follow_redirects=False, timeout=settings.notify_timeout_s, trust_env=False)
    try:
        r = client.post(url, content=raw, headers=headers)
    except httpx.HTTPError as exc:
        raise ConnectionError(f"{type(exc).__name__}: {exc}") from None
    finally:
        if own:
            client.close()
    if r.is_redirect or 300 <= r.status_code < 400:
        raise Permanent(f"HTTP {r.status_code}: redirects are not followed")
    if r.status_code in (408, 425, 429) or r.status_code >= 500:
        raise ConnectionError(f"HTTP {r.status_code}")
    if r.status_code >= 400:
        raise Permanent(f"HTTP {r.status_code}")


def _envelope(sub: dict, delivery: dict, settings: Settings) -> dict[str, str]:
    return {
        "From": settings.smtp_from,
        "To": sub["target"],
        "Date": formatdate(localtime=False),
        "Message-ID": f"<{delivery['key'].replace(':', '.')}@redline>",
        "X-Redline-Delivery": delivery["key"],
    }


def email_message(sub: dict, delivery: dict, settings: Settings, store: Store | None = None) -> EmailMessage:
    from .reports.digestreport import digest_csv, digest_html

    if delivery["payload"]["body"].get("event") == "redline.overdue":
        msg = EmailMessage()
        for k, v in _envelope(sub, delivery, settings).items():
            msg[k] = v
        _overdue_email(sub, delivery, msg)
        return msg
    d = delivery["payload"]["digest"]
    n_new, n_obs = d["totals"]["new_flags"], d["totals"]["new_observations"]
    csv_name = f"redline-{sub['name']}-{delivery['run_id']}.csv".replace("/", "_")
    msg = EmailMessage()
    msg["Subject"] = f"[redline] {sub['name']}: {n_new} new flags, {n_obs} re-observed (night {delivery['run_id']})"
    for k, v in _envelope(sub, delivery, settings).items():
        msg[k] = v
    lines = [
        f"#{f['id']} {f['severity'] or '-'} {f['activity']} {f['ha']} ha {f['admin']['code'] or ''} {f['link']}"
        for f in delivery["payload"]["body"]["flags"]
    ]
    msg.set_content(f"redline, subscription {sub['name']}, night {delivery['run_id']}\n\n" + "\n".join(lines) + "\n")
    msg.add_alternative(digest_html(store, d, csv_name, basemap_url=settings.basemap_url), subtype="html")
    msg.add_attachment(digest_csv(d), subtype="csv", charset="utf-8", filename=csv_name)
    return msg


def _send_email(sub: dict, delivery: dict, settings: Settings, store: Store | None = None) -> None:
    if not settings.smtp_host:
        raise Permanent("no SMTP server configured (REDLINE_SMTP_HOST)")
    msg = email_message(sub, delivery, settings, store)
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.notify_timeout_s) as smtp:
            if settings.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_user:
                password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
                smtp.login(settings.smtp_user, password)
            smtp.send_message(msg)
    except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPAuthenticationError) as exc:
        raise Permanent(f"{type(exc).__name__}: {exc}") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise ConnectionError(f"{type(exc).__name__}: {exc}") from None


def sender_id() -> str:
    """A name for one sender (a ``deliver`` call): host, process and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def _lease(settings: Settings) -> tuple[str, str]:
    """(now, the end of a lease taken now) as ISO timestamps."""
    at = now()
    return at, (datetime.fromisoformat(at) + timedelta(seconds=settings.notify_lease_s)).isoformat()


def _dead(sender: str | None) -> bool:
    """Whether ``sender`` (a :func:`sender_id`) was a process of this host that is gone (killed
    while it held a lease): its lease need not be waited out."""
    host, _, rest = (sender or "").partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def claim(store: Store, delivery: dict, owner: str, settings: Settings = DEFAULTS, states=("pending",)) -> bool:
    """Take ``owner``'s lease on a delivery still in one of ``states``: whether it is ours to send.
    Another sender's lease is respected until it runs out, or until that sender is known dead
    (a process of this host that is gone: a run killed while sending)."""
    at, until = _lease(settings)
    held = delivery.get("claimed_by")
    take_from = held if held and held != owner and _dead(held) else None
    return store.claim_delivery(delivery["id"], owner, until, at, tuple(states), take_from)


def send_one(
    store: Store,
    sub: dict,
    delivery: dict,
    settings: Settings = DEFAULTS,
    sleep: Callable[[float], None] = time.sleep,
    client=None,
    owner: str | None = None,
) -> dict:
    """Send one delivery with bounded retries; its row is updated after every attempt (and,
    with ``owner``, the sender's lease on it renewed; it is let go when the delivery ends)."""
    attempts = delivery["attempts"]
    for i in range(settings.notify_attempts):
        checkpoint("delivery-sending")
        try:
            if sub["channel"] == "webhook":
                _send_webhook(sub, delivery, settings, client)
            else:
                _send_email(sub, delivery, settings, store)
        except (Permanent, ConnectionError) as exc:
            attempts += 1
            last = i == settings.notify_attempts - 1 or isinstance(exc, Permanent)
            fields = {"attempts": attempts, "last_error": str(exc)[:500], **({"state": "failed"} if last else {})}
            if owner is not None:
                fields["claimed_until"] = None if last else _lease(settings)[1]
            store.update_delivery(delivery["id"], fields)
            if last:
                return {**delivery, **fields}
            sleep(settings.notify_backoff_s * 2**i)
            continue
        checkpoint("delivery-sent")
        fields = {"attempts": attempts + 1, "state": "sent", "sent_at": now()}
        if owner is not None:
            fields["claimed_until"] = None
        store.update_delivery(delivery["id"], fields)
        return {**delivery, **fields}
    raise AssertionError("unreachable")  # pragma: no cover


def deliver(
    store: Store,
    settings: Settings = DEFAULTS,
    run_id: str | None = None,
    retry_failed: bool = False,
    sleep: Callable[[float], None] = time.sleep,
    client=None,
) -> list[dict]:
    """Send the pending deliveries (of ``run_id``, else of every run: what a killed run left),
    and the failed ones too with ``retry_failed``. Returns those this call sent (or failed), as
    they ended: each is claimed first (:func:`claim`), so a delivery that another sender is
    sending meanwhile (``redline notify`` during a nightly run, a second server) is left to it."""
    states = ("pending", "failed") if retry_failed else ("pending",)
    todo = store.deliveries(run_id=run_id, states=states)
    subs = {s["id"]: s for s in store.subscriptions()}
    owner = sender_id()
    out = []
    for d in todo:
        if not claim(store, d, owner, settings, states):
            continue  # another sender's, or sent since it was listed
        sub = subs.get(d["subscription_id"])
        if sub is None:  # removed since it was planned: nothing is sent
            fields = {"state": "failed", "last_error": "subscription removed", "claimed_until": None}
            store.update_delivery(d["id"], fields)
            out.append({**d, **fields})
            continue
        out.append(send_one(store, sub, d, settings, sleep=sleep, client=client, owner=owner))
    return out


def notify_run(store: Store, run_id: str, settings: Settings = DEFAULTS, **kw) -> list[dict]:
    """``redline notify --run RUN_ID``: send the run's deliveries that are pending or failed
    (those sent stay sent). Deliveries are planned only by the nightly run itself, with its
    ledger entries: a night that never got that far is digested, and planned, again next run."""
    if not store.deliveries(run_id=run_id):
        raise NotFoundError(f"no deliveries for run {run_id!r}")
    return deliver(store, settings, run_id=run_id, retry_failed=True, **kw)
