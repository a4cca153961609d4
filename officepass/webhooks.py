"""Webhooks (contract §10): each stored event of the types a webhook asked for is POSTed to it at
least once, signed as Standard Webhooks says (`webhook-id`, `webhook-timestamp`, `webhook-signature`).

What is owed lives in the database, so nothing is lost to a restart or a receiver that is down:
- a webhook follows the events feed by its position; the events it has not yet seen become
  delivery rows in the same transaction that moves its position (`WebhookSender.hand_out`);
- a delivery due is leased (its `due` moved ahead) before it is posted, so instances share the work
  and a sender that dies mid-post leaves it to be sent again (at least once: receivers drop
  duplicates by `webhook-id`);
- a failure (no 2xx within 10 s) is retried with backoff for 24 hours, then given up and shown.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from officepass.feed import event_object
from officepass.models import EventRecord, FeedCounter, Webhook, WebhookDelivery, stored_time
from wire.vocab import EventType

log = logging.getLogger("officepass.webhooks")

SECRET_PREFIX = "whsec_"  # Standard Webhooks: the key is the base64 after it
POST_TIMEOUT_SECONDS = 10.0
LEASE = timedelta(seconds=60)  # a leased delivery is someone's for this long (> the post's timeout)
RETRY_FOR = timedelta(hours=24)
BACKOFF_SECONDS = (5, 30, 120, 600, 1800, 3600)  # then hourly until RETRY_FOR has passed
LOOK_SECONDS = 1.0
HAND_OUT_ROWS = 500  # events turned into deliveries per webhook per round
SEND_ROWS = 50  # deliveries leased per round
SENDERS = 4  # posts at once (one slow receiver does not hold up the others)


class WebhookProblem(ValueError):
    """Why a webhook cannot be added or removed."""


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def signature(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header's value: `v1,` and the base64 HMAC-SHA256 of id.timestamp.body,
    keyed by the secret's base64 part."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def parse_types(text: str | Iterable[str]) -> list[str]:
    names = [t.strip() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
    known = {t.value for t in EventType}
    unknown = sorted(set(names) - known)
    if unknown:
        raise WebhookProblem(f"unknown event type {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    if not names:
        raise WebhookProblem("name at least one event type (--types check_in,checkout,...)")
    return sorted(set(names))


def add_webhook(db: Session, url: str, types: str | Iterable[str]) -> Webhook:
    """A new webhook, for events stored from now on (the feed's current position)."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 2000:
        raise WebhookProblem(f"{url!r} is not an http(s) URL")
    start = db.execute(select(FeedCounter.position).where(FeedCounter.id == 1)).scalar_one()
    hook = Webhook(url=url, types={"types": parse_types(types)}, secret=new_secret(), position=start,
                   created=datetime.now(UTC))
    db.add(hook)
    db.flush()
    return hook


def remove_webhook(db: Session, hook_id: int) -> Webhook:
    hook = db.get(Webhook, hook_id)
    if hook is None or hook.removed is not None:
        raise WebhookProblem(f"no webhook {hook_id}")
    hook.removed = datetime.now(UTC)
    db.execute(update(WebhookDelivery)
               .where(WebhookDelivery.webhook == hook_id, WebhookDelivery.done.is_(False))
               .values(done=True, last_error="webhook removed"))
    return hook


def webhooks(db: Session) -> list[Webhook]:
    return list(db.execute(select(Webhook).where(Webhook.removed.is_(None)).order_by(Webhook.id)).scalars())


def wait_after(attempts: int) -> float:
    return float(BACKOFF_SECONDS[min(attempts, len(BACKOFF_SECONDS)) - 1]) if attempts else 0.0


@dataclass(frozen=True)
class Post:
    """One leased delivery, ready to post (read in the lease's transaction, posted outside it)."""

    delivery: int
    url: str
    webhook_id: str
    body: bytes
    secret: str


def post(target: Post) -> str | None:
    """POST it; None on a 2xx answer, else what went wrong (a redirect is not followed: a receiver
    that moved should be updated, not guessed at)."""
    timestamp = int(time.time())
    request = urllib.request.Request(target.url, data=target.body, method="POST", headers={
        "content-type": "application/json",
        "user-agent": "officepass-webhooks",
        "webhook-id": target.webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(target.secret, target.webhook_id, timestamp, target.body),
    })
    try:
        with _OPENER.open(request, timeout=POST_TIMEOUT_SECONDS) as answer:
            status = int(answer.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError) as exc:  # refused, timed out, unreachable, a bad TLS certificate
        return f"{type(exc).__name__}: {exc}"[:500]
    return None if 200 <= status < 300 else f"HTTP {status}"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


class WebhookSender:
    """One per instance: hands new events out to the webhooks and sends what is due."""

    def __init__(self, sessions: Callable[[], Session]) -> None:
        self._sessions = sessions
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._pool = ThreadPoolExecutor(SENDERS, thread_name_prefix="webhook-post")
        self._thread = threading.Thread(target=self._run, name="webhooks", daemon=True)
        self.sent = 0  # successful posts by this instance, for the curious (tests, benches)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(POST_TIMEOUT_SECONDS + 5)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def nudge(self) -> None:
        """New events were stored: look now rather than at the next round."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.hand_out()
                busy = self.send_due(datetime.now(UTC))
            except Exception:
                log.exception("webhook round failed; trying again")
                busy = False
            if not busy:
                self._wake.wait(LOOK_SECONDS)
                self._wake.clear()

    def hand_out(self) -> int:
        """Turn the events each webhook has not seen into its deliveries; how many were made."""
        made = 0
        with self._sessions() as db, db.begin():
            hooks = db.execute(select(Webhook).where(Webhook.removed.is_(None))
                               .with_for_update(skip_locked=True)).scalars().all()
            now = datetime.now(UTC)
            for hook in hooks:
                rows = db.execute(select(EventRecord.id, EventRecord.type, EventRecord.position)
                                  .where(EventRecord.position > hook.position)
                                  .order_by(EventRecord.position).limit(HAND_OUT_ROWS)).all()
                if not rows:
                    continue
                wanted = set(hook.types.get("types", []))
                owed = [{"webhook": hook.id, "event": event_id, "created": now, "due": now, "attempts": 0,
                         "done": False} for event_id, kind, _ in rows if kind in wanted]
                if owed:
                    db.execute(insert(WebhookDelivery), owed)
                hook.position = rows[-1][2]
                made += len(owed)
        return made

    def send_due(self, now: datetime) -> bool:
        """Lease and post the deliveries due; True when there were any (there may be more)."""
        with self._sessions() as db, db.begin():
            due = db.execute(select(WebhookDelivery).where(WebhookDelivery.done.is_(False),
                                                           WebhookDelivery.due <= now)
                             .order_by(WebhookDelivery.due).limit(SEND_ROWS)
                             .with_for_update(skip_locked=True)).scalars().all()
            if not due:
                return False
            hooks = {h.id: h for h in db.execute(select(Webhook).where(
                Webhook.id.in_({d.webhook for d in due}))).scalars()}
            events = {e.id: e for e in db.execute(select(EventRecord).where(
                EventRecord.id.in_({d.event for d in due}))).scalars()}
            posts = []
            for delivery in due:
                delivery.due, delivery.attempts = now + LEASE, delivery.attempts + 1
                hook, event = hooks.get(delivery.webhook), events.get(delivery.event)
                if hook is None or event is None or hook.removed is not None:
                    delivery.done, delivery.last_error = True, "webhook removed"
                    continue
                body = json.dumps(event_object(event), separators=(",", ":"), ensure_ascii=False).encode()
                posts.append(Post(delivery.id, hook.url, event.id, body, hook.secret))
        outcomes = list(self._pool.map(self._send_guarded, posts))
        with self._sessions() as db, db.begin():
            for target, problem in zip(posts, outcomes, strict=True):
                leased = db.get(WebhookDelivery, target.delivery)
                if leased is None:
                    continue
                delivery = leased
                finished = datetime.now(UTC)
                if problem is None:
                    delivery.done, delivery.delivered, delivery.last_error = True, finished, None
                    self.sent += 1
                elif finished - stored_time(delivery.created) >= RETRY_FOR:
                    delivery.done, delivery.gave_up, delivery.last_error = True, finished, problem
                    log.warning("webhook delivery %d of event %s given up after %d attempts: %s",
                                delivery.id, delivery.event, delivery.attempts, problem)
                else:
                    delivery.due = finished + timedelta(seconds=wait_after(delivery.attempts))
                    delivery.last_error = problem
        return True

    def _send_guarded(self, target: Post) -> str | None:
        try:
            return post(target)
        except Exception as exc:  # a bug in sending is a failed attempt, never a dead sender
            log.exception("posting webhook delivery %d failed", target.delivery)
            return f"{type(exc).__name__}: {exc}"[:500]
