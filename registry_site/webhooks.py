"""Signed webhooks (issue #10 §6): subscriptions, the outbox, signing and delivery.

- Events come from the audit trail: `audit.record` calls `enqueue` for every change it records, inside
  the change's own transaction, and `enqueue` writes one outbox row (WebhookDelivery) per matching
  enabled subscription. So a change that rolls back leaves no event, and one that commits has its
  events stored before anyone is told it happened; nothing waits on a process that may die.
- What an event says about its object (the `data.object` of the payload) comes from the apps, which
  register a describer per audit object type (`describes`): the core imports no app.
- Each delivery is signed following the Standard Webhooks specification (webhook-id, webhook-timestamp,
  webhook-signature: "v1," + base64 HMAC-SHA256 of "id.timestamp.body" keyed with the secret's bytes).
- `manage.py deliver_webhooks` claims due deliveries (row locks with SKIP LOCKED on PostgreSQL, plus a
  lease so a worker that died mid-attempt loses its claim), POSTs each, logs the attempt, and retries on
  REGISTRY_WEBHOOK_RETRY_SCHEDULE (27 h by default) with jitter. Deliveries for one subscription and one
  model go out in order: a later one waits while an earlier one is pending. A subscription failing for
  REGISTRY_WEBHOOK_DISABLE_AFTER_SECONDS with at least REGISTRY_WEBHOOK_DISABLE_AFTER_FAILURES failures
  in a row is disabled, and that is audited.
- Server-side request forgery: outside local mode a URL whose host resolves to a loopback, private,
  link-local, multicast or reserved address is refused, when the subscription is saved and again at
  every delivery (the connection goes to the very address that was checked, so a DNS answer that
  changes in between cannot redirect it), unless REGISTRY_WEBHOOK_ALLOW_PRIVATE or
  REGISTRY_WEBHOOK_ALLOWED_NETWORKS lets it.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import hmac
import ipaddress
import json
import logging
import random
import secrets
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import urllib3
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, close_old_connections, transaction
from django.db.models import Case, Exists, OuterRef, Q, Value, When
from django.utils import timezone

from registry_site import audit
from registry_site.errors import Conflict, InvalidInput, NotFound
from registry_site.models import (
    AuditEvent,
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookSubscription,
)
from registry_site.prepared import PreparedQuery
from registry_site.validators import clean_fields

logger = logging.getLogger(__name__)

# (audit object type, audit action) -> the event type it is published as.
AUDITED_EVENTS: dict[tuple[str, str], str] = {
    ("model", "create"): "model.created",
    ("model", "update"): "model.updated",
    ("model", "delete"): "model.deleted",
    ("version", "create"): "version.created",
    ("version", "update"): "version.updated",
    ("version", "archive"): "version.updated",
    ("version", "upload"): "version.updated",
    ("version", "set_default"): "version.default_changed",
    ("version", "delete"): "version.deleted",
    ("deployment", "deploy"): "deployment.created",
    ("deployment", "rollback"): "deployment.rolled_back",
    ("target", "create_target"): "target.created",
    ("target", "update_target"): "target.updated",
    ("target", "delete_target"): "target.deleted",
    ("experiment", "create_experiment"): "experiment.created",
    ("experiment", "start_experiment"): "experiment.started",
    ("experiment", "pause_experiment"): "experiment.paused",
    ("experiment", "resume_experiment"): "experiment.resumed",
    ("experiment", "stop_experiment"): "experiment.stopped",
    ("experiment", "set_experiment_weights"): "experiment.weights_changed",
    ("experiment", "conclude_experiment"): "experiment.concluded",
    ("alert", "fire_alert"): "alert.fired",
    ("alert", "resolve_alert"): "alert.resolved",
    ("alert", "acknowledge_alert"): "alert.acknowledged",
}
EVENT_TYPES: tuple[str, ...] = tuple(dict.fromkeys(AUDITED_EVENTS.values()))
ALL_EVENTS = "*"
RESPONSE_EXCERPT_BYTES = 1024
CLAIM_BATCH = 20
LEASE_MARGIN_SECONDS = 5
PURGE_EVERY_SECONDS = 3600

Describer = Callable[[AuditEvent], dict[str, Any] | None]
_describers: dict[str, Describer] = {}


def describes(object_type: str) -> Callable[[Describer], Describer]:
    """Register how an app describes the object of an audit event of `object_type` (its fields as the
    API shows them, read inside the change's transaction); None when the object is gone (deleted)."""

    def register(describer: Describer) -> Describer:
        _describers[object_type] = describer
        return describer

    return register


# --- Events into the outbox ---------------------------------------------------------------------------
def event_types_for(event: AuditEvent) -> list[str]:
    """The event types an audited change is published as. Registering the model's first version with a
    file (or giving it its file) also makes it the default: that is a default change too."""
    published = AUDITED_EVENTS.get((event.object_type, event.action))
    if published is None:
        return []
    types = [published]
    if event.object_type == "version" and event.action in ("create", "upload") and event.changes.get("is_default"):
        types.append("version.default_changed")
    return types


def subscribes_to(subscription: WebhookSubscription, event_type: str, model_name: str) -> bool:
    if ALL_EVENTS not in subscription.events and event_type not in subscription.events:
        return False
    if subscription.model_filter:
        return bool(model_name) and fnmatch.fnmatchcase(model_name, subscription.model_filter)
    return True


# Every audited write asks which subscriptions are enabled: the SQL compiled once (issue #12).
_ENABLED_SUBSCRIPTIONS = PreparedQuery(
    lambda: WebhookSubscription.objects.filter(enabled=True).only("id", "events", "model_filter")
)


def enqueue(event: AuditEvent) -> None:
    """Write the outbox rows for an audited change, in its transaction (audit.record calls this)."""
    types = event_types_for(event)
    if not types:
        return
    subscriptions = _ENABLED_SUBSCRIPTIONS.all()
    wanted = [(s, t) for t in types for s in subscriptions if subscribes_to(s, t, event.model_name)]
    if not wanted:
        return
    describer = _describers.get(event.object_type)
    described = describer(event) if describer is not None else None
    data = {
        "object": described if described is not None else {"repr": event.object_repr, "deleted": True},
        "model": event.model_name or None,
        "changes": event.changes,
        "actor": event.actor,
        "via": event.via,
        "audit_event_id": event.pk,
    }
    bodies = {
        event_type: json.dumps(
            {"type": event_type, "timestamp": event.at.isoformat(), "data": data},
            cls=DjangoJSONEncoder,
            ensure_ascii=False,
            separators=(",", ":"),
        )
        for event_type in types
    }
    now = timezone.now()
    ordering_key = f"model:{event.model_name}" if event.model_name else f"{event.object_type}:{event.object_repr}"
    WebhookDelivery.objects.bulk_create(
        WebhookDelivery(
            subscription=subscription,
            message_id=new_message_id(),
            event_type=event_type,
            ordering_key=ordering_key[:160],
            body=bodies[event_type],
            created_at=now,
            next_attempt_at=now,
        )
        for subscription, event_type in wanted
    )


def new_message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


# --- Signing (Standard Webhooks) -------------------------------------------------------------------------
SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(secret: str, *, message_id: str, timestamp: int, body: str) -> str:
    """The webhook-signature header's value."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    mac = hmac.new(key, f"{message_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signed_headers(secret: str, *, message_id: str, body: str, timestamp: int | None = None) -> dict[str, str]:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, message_id=message_id, timestamp=timestamp, body=body),
        "content-type": "application/json",
        "user-agent": "model-version-registry-webhooks",
    }


# --- Server-side request forgery ----------------------------------------------------------------------
class UnsafeURL(InvalidInput):
    """A webhook URL the registry will not send to."""


class Unresolvable(UnsafeURL):
    """A webhook URL whose host does not resolve."""


def _address_allowed(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if settings.LOCAL_MODE or settings.REGISTRY_WEBHOOK_ALLOW_PRIVATE:
        return True
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in network for network in settings.REGISTRY_WEBHOOK_ALLOWED_NETWORKS):
        return True
    return address.is_global and not (address.is_multicast or address.is_reserved or address.is_loopback)


def _url_parts(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeURL("A webhook URL must be an http or https URL with a host.", field="url")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeURL("The URL's port is not a number between 0 and 65535.", field="url") from None
    return parts.scheme, parts.hostname, port


def resolve_allowed(url: str) -> str:
    """The address to connect to for `url`: its host resolved, every address it resolves to allowed
    (one disallowed address refuses the URL: which one a client picks is not ours to know)."""
    scheme, host, port = _url_parts(url)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Unresolvable(f"The URL's host '{host}' cannot be resolved ({exc}).", field="url") from None
    addresses = list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos))
    refused = [str(a) for a in addresses if not _address_allowed(a)]
    if refused or not addresses:
        raise UnsafeURL(
            f"The URL's host '{host}' resolves to {', '.join(refused) or 'nothing'}: a loopback, private, "
            "link-local, multicast or reserved address, which webhooks may not reach unless the operator "
            "allows it (REGISTRY_WEBHOOK_ALLOW_PRIVATE or REGISTRY_WEBHOOK_ALLOWED_NETWORKS).",
            field="url",
        )
    return str(addresses[0])


def check_url(url: str) -> None:
    """A subscription's URL, when it is saved: refused if it reaches inside (production). A host that
    does not resolve (yet) is let through: each attempt checks again, and fails while it does not."""
    _url_parts(url)
    if settings.LOCAL_MODE:
        return
    try:
        resolve_allowed(url)
    except Unresolvable:
        pass


# --- Subscriptions -----------------------------------------------------------------------------------
EDITABLE_SUBSCRIPTION_FIELDS = frozenset({"url", "description", "secret", "events", "model_filter", "enabled"})


def _audit_subscription(action: str, subscription: WebhookSubscription, changes: dict[str, Any]) -> None:
    shown = {key: ("(changed)" if key == "secret" else value) for key, value in changes.items()}
    audit.record(action, object_type="webhook", object_repr=f"#{subscription.pk} {subscription.url}", changes=shown)


def _clean_subscription(values: dict[str, Any]) -> dict[str, Any]:
    if "events" in values and isinstance(values["events"], list):
        values["events"] = list(dict.fromkeys(values["events"]))
    cleaned = clean_fields(WebhookSubscription, values)
    if "url" in cleaned:
        check_url(cleaned["url"])
    return cleaned


def create_subscription(
    *,
    url: str,
    events: list[str],
    model_filter: str = "",
    description: str = "",
    secret: str | None = None,
    enabled: bool = True,
) -> WebhookSubscription:
    """A new subscription. Without a secret, one is generated (the caller shows it once)."""
    values = _clean_subscription(
        {
            "url": url,
            "events": events,
            "model_filter": model_filter,
            "description": description,
            "secret": secret or new_secret(),
            "enabled": enabled,
        }
    )
    with transaction.atomic():
        subscription = WebhookSubscription.objects.create(**values)
        _audit_subscription("create_webhook", subscription, {k: v for k, v in values.items() if k != "secret"})
    return subscription


def update_subscription(*, subscription: WebhookSubscription, changes: dict[str, Any]) -> WebhookSubscription:
    """Change a subscription. Enabling a disabled one clears its failure streak, and what was pending for
    it goes out again."""
    unknown = sorted(set(changes) - EDITABLE_SUBSCRIPTION_FIELDS)
    if unknown:
        raise InvalidInput(f"'{unknown[0]}' cannot be changed.", field=unknown[0])
    cleaned = _clean_subscription(dict(changes))
    with transaction.atomic():
        locked = WebhookSubscription.objects.select_for_update().filter(pk=subscription.pk).first()
        if locked is None:
            raise NotFound(f"Webhook subscription {subscription.pk} no longer exists.")
        before = {field: getattr(locked, field) for field in cleaned}
        for field, value in cleaned.items():
            setattr(locked, field, value)
        changed = {k: [before[k], v] for k, v in cleaned.items() if before[k] != v}
        if cleaned.get("enabled") and not before.get("enabled", True):
            locked.consecutive_failures, locked.failing_since = 0, None
            locked.disabled_at, locked.disabled_reason = None, ""
        if changed:
            locked.save()
            _audit_subscription("update_webhook", locked, changed)
    return locked


@transaction.atomic
def delete_subscription(*, subscription: WebhookSubscription) -> None:
    """Delete a subscription with its deliveries and their log."""
    locked = WebhookSubscription.objects.select_for_update().filter(pk=subscription.pk).first()
    if locked is None:
        raise NotFound(f"Webhook subscription {subscription.pk} no longer exists.")
    _audit_subscription("delete_webhook", locked, {"url": locked.url, "events": locked.events})
    locked.delete()


@transaction.atomic
def redeliver(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send a delivery again (delivered, failed or pending): due now, with a fresh retry schedule and
    the same webhook-id, so a receiver that already has it can tell."""
    locked = WebhookDelivery.objects.select_for_update().select_related("subscription").filter(pk=delivery.pk).first()
    if locked is None:
        raise NotFound(f"Webhook delivery {delivery.pk} no longer exists.")
    if not locked.subscription.enabled:
        raise Conflict(
            f"Webhook subscription {locked.subscription_id} is disabled; enable it before redelivering.",
            field="enabled",
        )
    locked.status = DeliveryStatus.PENDING
    locked.attempts = 0
    locked.next_attempt_at = timezone.now()
    locked.claimed_until = None
    locked.save(update_fields=["status", "attempts", "next_attempt_at", "claimed_until"])
    _audit_subscription("redeliver_webhook", locked.subscription, {"delivery": locked.message_id})
    return locked


# --- Delivery -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    latency_ms: int
    excerpt: str
    error: str

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _attempt_lease() -> timedelta:
    """How long one attempt may hold its delivery: the connect and the read timeouts, and a margin."""
    return timedelta(seconds=settings.REGISTRY_WEBHOOK_TIMEOUT * 2 + LEASE_MARGIN_SECONDS)


def claim_due(*, limit: int = CLAIM_BATCH, now: datetime | None = None) -> list[tuple[int, datetime]]:
    """Claim up to `limit` deliveries that are due: pending, their time come, not claimed by a live
    worker, their subscription enabled, and no earlier delivery for the same subscription and model
    still pending (ordering per model). Returns each with its lease: the n-th is held for n attempts'
    time (they are sent one after the other), so a worker that dies loses its claims once it could no
    longer be sending them, and another sends them again (at least once)."""
    now = now or timezone.now()
    earlier_pending = WebhookDelivery.objects.filter(
        subscription=OuterRef("subscription"),
        ordering_key=OuterRef("ordering_key"),
        status=DeliveryStatus.PENDING,
        id__lt=OuterRef("id"),
    )
    with transaction.atomic():
        due = (
            WebhookDelivery.objects.filter(
                status=DeliveryStatus.PENDING, next_attempt_at__lte=now, subscription__enabled=True
            )
            .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
            .exclude(Exists(earlier_pending))
            .order_by("id")
            .select_for_update(skip_locked=True, of=("self",))
        )
        ids = list(due.values_list("id", flat=True)[:limit])
        per_attempt = timedelta(seconds=settings.REGISTRY_WEBHOOK_TIMEOUT * 2)
        leases = [
            (pk, now + timedelta(seconds=LEASE_MARGIN_SECONDS) + per_attempt * (n + 1)) for n, pk in enumerate(ids)
        ]
        if leases:
            WebhookDelivery.objects.filter(id__in=ids).update(
                claimed_until=Case(*(When(pk=pk, then=Value(lease)) for pk, lease in leases))
            )
    return leases


def post(url: str, *, headers: dict[str, str], body: bytes) -> Outcome:
    """POST `body` to `url`, connecting to the address resolve_allowed checked (TLS still verifies the
    URL's host name). No redirects, no proxies from the environment, a timeout on connect and read."""
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        address = resolve_allowed(url)
    except UnsafeURL as exc:
        return Outcome(None, elapsed(), "", exc.message[:500])
    scheme, host, port = _url_parts(url)
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    timeout = urllib3.Timeout(connect=settings.REGISTRY_WEBHOOK_TIMEOUT, read=settings.REGISTRY_WEBHOOK_TIMEOUT)
    pool: urllib3.HTTPConnectionPool
    if scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            address, port, timeout=timeout, retries=False, server_hostname=host, assert_hostname=host
        )
    else:
        pool = urllib3.HTTPConnectionPool(address, port, timeout=timeout, retries=False)
    host_header = parts.netloc.rsplit("@", 1)[-1]
    try:
        response = pool.urlopen(
            "POST",
            target,
            body=body,
            headers={**headers, "host": host_header},
            redirect=False,
            preload_content=False,
            assert_same_host=False,
        )
        try:
            excerpt = response.read(RESPONSE_EXCERPT_BYTES, decode_content=False).decode("utf-8", "replace")
        finally:
            response.release_conn()
        return Outcome(response.status, elapsed(), excerpt, "")
    except urllib3.exceptions.HTTPError as exc:
        return Outcome(None, elapsed(), "", f"{type(exc).__name__}: {exc}"[:500])
    finally:
        pool.close()


def retry_delay(attempts: int) -> float | None:
    """Seconds before the next attempt after `attempts` failed ones, with ±10% jitter so that the
    deliveries of one outage do not come back all at once; None when the schedule is over."""
    schedule = settings.REGISTRY_WEBHOOK_RETRY_SCHEDULE
    if attempts > len(schedule):
        return None
    return schedule[attempts - 1] * random.uniform(0.9, 1.1)


def deliver(delivery_id: int, *, lease: datetime, send: Callable[..., Outcome] = post) -> Outcome | None:
    """One attempt at a delivery claimed until `lease`, then its result recorded (the log, the next
    attempt or the end, the subscription's failure streak). None when there was nothing to send any more,
    or when the claim was lost (another worker took the delivery over once the lease was over)."""
    renewed = WebhookDelivery.objects.filter(pk=delivery_id, claimed_until=lease).update(
        claimed_until=timezone.now() + _attempt_lease()
    )
    if not renewed:
        return None
    delivery = WebhookDelivery.objects.select_related("subscription").filter(pk=delivery_id).first()
    if delivery is None or delivery.status != DeliveryStatus.PENDING or not delivery.subscription.enabled:
        return None
    subscription = delivery.subscription
    headers = signed_headers(subscription.secret, message_id=delivery.message_id, body=delivery.body)
    try:
        outcome = send(subscription.url, headers=headers, body=delivery.body.encode())
    except Exception as exc:  # a failed attempt, logged like any other: one bad message never stops the worker
        logger.exception("webhook delivery %s: unexpected error", delivery.message_id)
        outcome = Outcome(None, 0, "", f"{type(exc).__name__}: {exc}"[:500])
    _record(delivery_id, outcome)
    return outcome


@transaction.atomic
def _record(delivery_id: int, outcome: Outcome) -> None:
    delivery = WebhookDelivery.objects.select_for_update().filter(pk=delivery_id).first()
    if delivery is None:  # its subscription was deleted meanwhile
        return
    subscription = WebhookSubscription.objects.select_for_update().get(pk=delivery.subscription_id)
    now = timezone.now()
    WebhookAttempt.objects.create(
        delivery=delivery,
        number=delivery.attempt_log.count() + 1,
        at=now,
        status_code=outcome.status_code,
        latency_ms=outcome.latency_ms,
        response_excerpt=outcome.excerpt,
        error=outcome.error or ("" if outcome.succeeded else f"HTTP {outcome.status_code}"),
    )
    delivery.attempts += 1
    delivery.last_attempt_at = now
    delivery.claimed_until = None
    if outcome.succeeded:
        delivery.status, delivery.delivered_at = DeliveryStatus.DELIVERED, now
        subscription.consecutive_failures, subscription.failing_since = 0, None
    else:
        delay = retry_delay(delivery.attempts)
        if delay is None:
            delivery.status = DeliveryStatus.FAILED
        else:
            delivery.next_attempt_at = now + timedelta(seconds=delay)
        subscription.consecutive_failures += 1
        subscription.failing_since = subscription.failing_since or now
        _disable_if_failing(subscription, now)
    delivery.save(
        update_fields=["attempts", "last_attempt_at", "claimed_until", "status", "delivered_at", "next_attempt_at"]
    )
    subscription.save(
        update_fields=["consecutive_failures", "failing_since", "enabled", "disabled_at", "disabled_reason"]
    )


def _disable_if_failing(subscription: WebhookSubscription, now: datetime) -> None:
    assert subscription.failing_since is not None
    failing_for = (now - subscription.failing_since).total_seconds()
    if (
        not subscription.enabled
        or subscription.consecutive_failures < settings.REGISTRY_WEBHOOK_DISABLE_AFTER_FAILURES
        or failing_for < settings.REGISTRY_WEBHOOK_DISABLE_AFTER_SECONDS
    ):
        return
    subscription.enabled = False
    subscription.disabled_at = now
    subscription.disabled_reason = (
        f"{subscription.consecutive_failures} failed attempts in a row over {int(failing_for)} s."
    )[:255]
    _audit_subscription("disable_webhook", subscription, {"reason": subscription.disabled_reason})


def deliver_due(*, limit: int = CLAIM_BATCH, send: Callable[..., Outcome] = post) -> int:
    """Claim what is due and attempt each once; the number of attempts made."""
    made = 0
    for delivery_id, lease in claim_due(limit=limit):
        if deliver(delivery_id, lease=lease, send=send) is not None:
            made += 1
    return made


def run_worker(
    *,
    once: bool = False,
    poll_seconds: float = 1.0,
    should_stop: Callable[[], bool] = lambda: False,
    log: Callable[[str], None] = logger.info,
) -> int:
    """The worker's loop: deliver what is due, sleep `poll_seconds` when nothing was; with `once`, until
    nothing more is due right now (what waits for a later retry is left for later). A database that
    goes away (a restart) is waited for, not fatal. Returns the number of attempts made."""
    total = 0
    purged_at = -float(PURGE_EVERY_SECONDS)
    while not should_stop():
        if time.monotonic() - purged_at >= PURGE_EVERY_SECONDS:
            purged_at = time.monotonic()
            removed = purge_finished(older_than=timezone.now() - timedelta(days=settings.REGISTRY_WEBHOOK_KEEP_DAYS))
            if removed:
                log(
                    f"{removed} finished webhook deliveries older than {settings.REGISTRY_WEBHOOK_KEEP_DAYS} days removed"
                )
        if not once:  # a long-running loop: drop a connection the database closed or that got too old
            close_old_connections()
        try:
            made = deliver_due()
        except DatabaseError:
            if once:
                raise
            logger.exception("webhook delivery: database error; retrying in %s s", poll_seconds)
            made = 0
        if made:
            total += made
            log(f"{made} webhook attempt(s) made")
            continue
        if once:
            break
        _sleep(poll_seconds, should_stop)
    return total


def purge_finished(*, older_than: datetime) -> int:
    """Delete the delivered and failed deliveries (with their log) made before `older_than`: the log is
    for looking into recent trouble, and the audit trail keeps the changes themselves. Pending ones stay."""
    _, deleted = WebhookDelivery.objects.filter(
        status__in=[DeliveryStatus.DELIVERED, DeliveryStatus.FAILED], created_at__lt=older_than
    ).delete()
    return deleted.get(WebhookDelivery._meta.label, 0)


def _sleep(seconds: float, should_stop: Callable[[], bool]) -> None:
    deadline = time.monotonic() + seconds
    while not should_stop() and time.monotonic() < deadline:
        time.sleep(min(0.2, seconds))
