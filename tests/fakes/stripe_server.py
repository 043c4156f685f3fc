"""A local stand-in for the Stripe API that the official `stripe` client talks to.

Serves real Stripe object shapes (API 2025+: the billing period lives on subscription items,
an invoice's subscription under ``parent.subscription_details``) for customers, Checkout
sessions, subscriptions, invoices, billing portal sessions, accounts, account links,
events, Billing Meters (meters, meter events unique by identifier, cancel adjustments
within 24 hours of the event, event summaries), invoice items (negative amounts are credits)
and off-session payment intents. ``clock`` (seconds since the epoch) is what the meters'
24-hour rule reads: a test moves it with the app's clock. Objects created with a
``Stripe-Account`` header belong to that connected account and are invisible from any other.
Tests drive the lifecycle with helpers (complete a checkout, change a subscription, emit and
sign events) and can script failures (``fail_next``) to exercise the client's retries.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import stripe


@dataclass
class Call:
    method: str
    path: str
    headers: dict[str, str]
    params: dict[str, Any]
    status: int


def _nest(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding (a[b][0][c]=v) back into nested dicts and lists."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = re.findall(r"[^\[\]]+", key)
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return _lists(root)


def _lists(node: Any) -> Any:
    if isinstance(node, dict):
        if node and all(k.isdigit() for k in node):
            return [_lists(node[k]) for k in sorted(node, key=int)]
        return {k: _lists(v) for k, v in node.items()}
    return node


def _int(value: Any, default: int | None = None) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


@dataclass
class FakeStripe:
    server: ThreadingHTTPServer
    # Objects by account ("" is the platform) then id.
    objects: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    prices: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: list[tuple[str, str, int]] = field(default_factory=list)
    # Customers whose saved card is declined (an off-session payment answers a card_error).
    declining: set[str] = field(default_factory=set)
    # (account, Idempotency-Key) → a payment intent's first answer, replayed as Stripe does.
    replies: dict[tuple[str, str], tuple[int, dict[str, Any]]] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    clock: Any = time.time  # meter events' "created" and the 24-hour adjustment rule
    _counter: int = 0

    # ---- plumbing -------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _id(self, prefix: str) -> str:
        with self.lock:
            self._counter += 1
            return f"{prefix}_{self._counter:06d}{secrets.token_hex(6)}"

    def store(self, account: str | None) -> dict[str, dict[str, Any]]:
        return self.objects.setdefault(account or "", {})

    def get(self, object_id: str, account: str | None = None) -> dict[str, Any]:
        return self.store(account)[object_id]

    def fail_next(self, method: str, path_prefix: str, *statuses: int) -> None:
        """The next matching requests answer these statuses, in order (then normally)."""
        with self.lock:
            self.failures.extend((method.upper(), path_prefix, s) for s in statuses)

    def calls_to(self, method: str, path_prefix: str) -> list[Call]:
        return [c for c in self.calls if c.method == method and c.path.startswith(path_prefix)]

    # ---- test-side lifecycle ----------------------------------------------------------------
    def add_price(self, unit_amount: int = 1900, currency: str = "usd",
                  interval: str = "month", price_id: str | None = None) -> str:
        price_id = price_id or self._id("price")
        self.prices[price_id] = {
            "id": price_id, "object": "price", "active": True, "currency": currency,
            "unit_amount": unit_amount, "type": "recurring", "livemode": False,
            "recurring": {"interval": interval, "interval_count": 1, "usage_type": "licensed"},
            "product": "prod_albedo", "metadata": {}, "created": int(time.time())}
        return price_id

    def create_account(self, charges_enabled: bool = False) -> str:
        account = self._new_account({})
        account["charges_enabled"] = account["payouts_enabled"] = charges_enabled
        account["details_submitted"] = charges_enabled
        return account["id"]

    def complete_checkout(self, session_id: str, account: str | None = None,
                          email: str = "payer@example.test",
                          invoice_status: str = "paid") -> dict[str, Any]:
        """What paying on Stripe's page does: customer, subscription, first invoice."""
        with self.lock:
            session = self.get(session_id, account)
            customer = session.get("customer") or self._new_customer(
                {"email": email}, account)["id"]
            price_id = session["_line_items"][0]["price"]
            subscription = self.create_subscription(
                customer, price_id, account, metadata=session["_subscription_metadata"],
                application_fee_percent=session["_application_fee_percent"])
            session.update(status="complete", payment_status="paid", customer=customer,
                           subscription=subscription["id"])
            invoice = self.create_invoice(subscription["id"], account, status=invoice_status,
                                          email=email)
            return {"session": session, "subscription": subscription, "invoice": invoice}

    def complete_payment(self, session_id: str, account: str | None = None,
                         email: str = "payer@example.test") -> dict[str, Any]:
        """What paying a payment-mode session does: a customer, the session paid."""
        with self.lock:
            session = self.get(session_id, account)
            customer = session.get("customer") or self._new_customer(
                {"email": email}, account)["id"]
            total = sum(_int(item["price_data"]["unit_amount"], 0) * _int(
                item.get("quantity"), 1) for item in session["_line_items"])
            session.update(status="complete", payment_status="paid", customer=customer,
                           amount_total=total,
                           currency=session["_line_items"][0]["price_data"]["currency"])
            return session

    def create_subscription(self, customer: str, price_id: str, account: str | None = None,
                            metadata: dict[str, str] | None = None, status: str = "active",
                            application_fee_percent: Any = None) -> dict[str, Any]:
        now = int(time.time())
        sub_id = self._id("sub")
        price = self.prices.get(price_id) or {"id": price_id, "object": "price",
                                              "currency": "usd", "unit_amount": 0}
        subscription = {
            "id": sub_id, "object": "subscription", "customer": customer, "status": status,
            "metadata": dict(metadata or {}), "livemode": False, "created": now,
            "cancel_at_period_end": False, "canceled_at": None, "ended_at": None,
            "currency": price.get("currency", "usd"), "start_date": now,
            "application_fee_percent": _float(application_fee_percent),
            "collection_method": "charge_automatically", "latest_invoice": None,
            "items": {"object": "list", "has_more": False, "url": "/v1/subscription_items",
                      "data": [{"id": self._id("si"), "object": "subscription_item",
                                "price": price, "quantity": 1, "subscription": sub_id,
                                "current_period_start": now,
                                "current_period_end": now + 30 * 86400,
                                "metadata": {}, "created": now}]},
        }
        self.store(account)[sub_id] = subscription
        return subscription

    def update_subscription(self, sub_id: str, account: str | None = None,
                            **changes: Any) -> dict[str, Any]:
        with self.lock:
            subscription = self.get(sub_id, account)
            if "price" in changes:
                price_id = changes.pop("price")
                subscription["items"]["data"][0]["price"] = self.prices[price_id]
            if changes.get("status") == "canceled":
                subscription["canceled_at"] = subscription["ended_at"] = int(time.time())
            subscription.update(changes)
            return subscription

    def create_invoice(self, sub_id: str, account: str | None = None, status: str = "paid",
                       email: str = "payer@example.test") -> dict[str, Any]:
        with self.lock:
            subscription = self.get(sub_id, account)
            price = subscription["items"]["data"][0]["price"]
            amount = price.get("unit_amount") or 0
            invoice_id = self._id("in")
            number = f"INV-{len(self.store(account)):04d}"
            invoice = {
                "id": invoice_id, "object": "invoice", "customer": subscription["customer"],
                "customer_email": email, "number": number, "status": status,
                "currency": price.get("currency", "usd"), "amount_due": amount,
                "amount_paid": amount if status == "paid" else 0,
                "amount_remaining": 0 if status == "paid" else amount,
                "total": amount, "subtotal": amount, "created": int(time.time()),
                "livemode": False, "metadata": {}, "billing_reason": "subscription_create",
                "hosted_invoice_url": f"https://invoice.stripe.test/i/{invoice_id}",
                "invoice_pdf": f"https://pay.stripe.test/invoice/{invoice_id}/pdf",
                "parent": {"type": "subscription_details", "quote_details": None,
                           "subscription_details": {"subscription": sub_id,
                                                    "metadata": dict(subscription["metadata"])}},
                "lines": {"object": "list", "data": [], "has_more": False, "url": "/v1/x"},
            }
            self.store(account)[invoice_id] = invoice
            subscription["latest_invoice"] = invoice_id
            return invoice

    def event(self, event_type: str, obj: dict[str, Any], account: str | None = None,
              created: int | None = None) -> dict[str, Any]:
        """A Stripe event about ``obj`` (a snapshot, as Stripe sends), also listed by the API."""
        event = {"id": self._id("evt"), "object": "event", "type": event_type,
                 "api_version": stripe.api_version, "created": created or int(time.time()),
                 "livemode": False, "pending_webhooks": 1,
                 "request": {"id": None, "idempotency_key": None},
                 "data": {"object": json.loads(json.dumps(obj))}}
        if account:
            event["account"] = account
        with self.lock:
            self.events.append(event)
        return event

    @staticmethod
    def sign(payload: str | bytes, secret: str, timestamp: int | None = None) -> str:
        text = payload.decode() if isinstance(payload, bytes) else payload
        return stripe.WebhookSignature.generate_signature_header(text, secret,
                                                                 timestamp=timestamp)

    # ---- the API -------------------------------------------------------------------------
    def _new_customer(self, params: dict[str, Any], account: str | None) -> dict[str, Any]:
        customer = {"id": self._id("cus"), "object": "customer", "email": params.get("email"),
                    "name": params.get("name"), "metadata": params.get("metadata") or {},
                    "created": int(time.time()), "livemode": False}
        self.store(account)[customer["id"]] = customer
        return customer

    def _new_account(self, params: dict[str, Any]) -> dict[str, Any]:
        account = {"id": self._id("acct"), "object": "account",
                   "type": params.get("type", "express"), "email": params.get("email"),
                   "country": params.get("country", "US"), "charges_enabled": False,
                   "payouts_enabled": False, "details_submitted": False,
                   "metadata": params.get("metadata") or {}, "created": int(time.time())}
        self.store(None)[account["id"]] = account
        return account

    def _new_checkout(self, params: dict[str, Any], account: str | None) -> dict[str, Any]:
        missing = [k for k in ("mode", "success_url", "line_items") if not params.get(k)]
        if missing:
            raise _Problem(400, f"Missing required param: {missing[0]}.", "parameter_missing")
        line_items = params["line_items"]
        for item in line_items:
            if params["mode"] == "payment" and item.get("price_data"):
                data = item["price_data"]  # an ad-hoc price (payment mode: credits top-ups)
                if _int(data.get("unit_amount"), -1) < 0 or not data.get("currency"):
                    raise _Problem(400, "Invalid price_data.", "parameter_invalid")
                continue
            if item.get("price") not in self.prices:
                raise _Problem(400, f"No such price: '{item.get('price')}'", "resource_missing")
        session_id = self._id("cs_test")
        subscription_data = params.get("subscription_data") or {}
        session = {
            "id": session_id, "object": "checkout.session", "mode": params["mode"],
            "status": "open", "payment_status": "unpaid", "livemode": False,
            "url": f"https://checkout.stripe.test/c/pay/{session_id}",
            "success_url": params["success_url"], "cancel_url": params.get("cancel_url"),
            "client_reference_id": params.get("client_reference_id"),
            "customer": params.get("customer"), "customer_email": params.get("customer_email"),
            "metadata": params.get("metadata") or {}, "subscription": None,
            "created": int(time.time()), "expires_at": int(time.time()) + 86400,
            "_line_items": line_items,
            "_subscription_metadata": subscription_data.get("metadata") or {},
            "_application_fee_percent": subscription_data.get("application_fee_percent"),
        }
        self.store(account)[session_id] = session
        return session

    def _list(self, kind: str, params: dict[str, Any], account: str | None) -> dict[str, Any]:
        items = [o for o in self.store(account).values() if o.get("object") == kind]
        for key in ("customer", "status"):
            if params.get(key):
                items = [o for o in items if o.get(key) == params[key]]
        items.sort(key=lambda o: o["created"], reverse=True)
        return self._page(items, params, f"/v1/{kind}s")

    def _page(self, items: list[dict[str, Any]], params: dict[str, Any],
              url: str) -> dict[str, Any]:
        after = params.get("starting_after")
        if after:
            ids = [o["id"] for o in items]
            items = items[ids.index(after) + 1:] if after in ids else []
        limit = _int(params.get("limit"), 10) or 10
        return {"object": "list", "url": url, "has_more": len(items) > limit,
                "data": items[:limit]}

    def _events(self, params: dict[str, Any], account: str | None) -> dict[str, Any]:
        items = [e for e in self.events if (e.get("account") or "") == (account or "")]
        created = params.get("created") or {}
        if isinstance(created, dict) and created.get("gte"):
            items = [e for e in items if e["created"] >= int(created["gte"])]
        types = params.get("types")
        if types:
            items = [e for e in items if e["type"] in types]
        items = sorted(items, key=lambda e: e["created"], reverse=True)
        return self._page(items, params, "/v1/events")

    def handle(self, method: str, path: str, params: dict[str, Any],
               account: str | None) -> tuple[int, dict[str, Any]]:
        with self.lock:
            return self._route(method, path, params, account)

    def _route(self, method: str, path: str, params: dict[str, Any],
               account: str | None) -> tuple[int, dict[str, Any]]:
        parts = path.strip("/").split("/")[1:]  # drop "v1"
        collections = {"customers": "customer", "subscriptions": "subscription",
                       "invoices": "invoice", "accounts": "account"}
        public = {k: v for k, v in params.items() if not k.startswith("_")}
        if parts == ["checkout", "sessions"] and method == "POST":
            return 200, self._public(self._new_checkout(public, account))
        if parts[:2] == ["checkout", "sessions"] and len(parts) == 3 and method == "GET":
            return 200, self._public(self._find(parts[2], account))
        if parts == ["billing_portal", "sessions"] and method == "POST":
            if not params.get("customer"):
                raise _Problem(400, "Missing required param: customer.", "parameter_missing")
            self._find(params["customer"], account)
            session_id = self._id("bps")
            return 200, {"id": session_id, "object": "billing_portal.session",
                         "customer": params["customer"], "return_url": params.get("return_url"),
                         "url": f"https://billing.stripe.test/p/session/{session_id}",
                         "created": int(time.time()), "livemode": False}
        if parts == ["account_links"] and method == "POST":
            self._find(params.get("account", ""), None)
            return 200, {"object": "account_link", "created": int(time.time()),
                         "expires_at": int(time.time()) + 300,
                         "url": f"https://connect.stripe.test/setup/e/{params['account']}"}
        if parts == ["events"] and method == "GET":
            return 200, self._events(params, account)
        if parts[:1] == ["billing"] and parts[1:2] in (["meters"], ["meter_events"],
                                                       ["meter_event_adjustments"]):
            return self._billing(method, parts[1:], public, account)
        if parts == ["invoiceitems"] and method == "POST":
            return 200, self._invoice_item(public, account)
        if parts == ["invoiceitems"] and method == "GET":
            return 200, self._list("invoiceitem", params, account)
        if parts == ["payment_intents"] and method == "POST":
            return 200, self._payment_intent(public, account)
        if parts == ["customers"] and method == "POST":
            return 200, self._new_customer(public, account)
        if parts == ["accounts"] and method == "POST":
            return 200, self._new_account(public)
        if len(parts) == 1 and parts[0] in collections and method == "GET":
            return 200, self._list(collections[parts[0]], params, account)
        if len(parts) == 2 and parts[0] in collections and method == "GET":
            found = self._find(parts[1], None if parts[0] == "accounts" else account)
            if found.get("object") != collections[parts[0]]:
                raise _Problem(404, f"No such {collections[parts[0]]}: '{parts[1]}'",
                               "resource_missing")
            return 200, found
        raise _Problem(404, f"Unrecognized request URL ({method}: {path}).", None)

    # ---- Billing Meters: meters, meter events (unique identifier), adjustments, summaries --
    def meter_events(self, account: str | None = None) -> list[dict[str, Any]]:
        """Accepted meter events on ``account`` (cancelled ones excluded)."""
        return [e for e in self.store(account).values()
                if e.get("object") == "billing.meter_event" and not e.get("_cancelled")]

    def forget_meter_event(self, identifier: str, account: str | None = None) -> None:
        """Test helper: Stripe never received this one (a gap for reconciliation)."""
        with self.lock:
            self.store(account).pop(f"mev:{identifier}", None)

    def _meter_by_event(self, event_name: str, account: str | None) -> dict[str, Any]:
        for obj in self.store(account).values():
            if obj.get("object") == "billing.meter" and obj.get("event_name") == event_name \
                    and obj.get("status") == "active":
                return obj
        raise _Problem(400, f"No active meter was found for event_name {event_name}.",
                       "resource_missing")

    def _billing(self, method: str, parts: list[str], params: dict[str, Any],
                 account: str | None) -> tuple[int, dict[str, Any]]:
        now = int(self.clock())
        if parts == ["meters"] and method == "POST":
            if not params.get("event_name") or not params.get("display_name"):
                raise _Problem(400, "Missing required param: event_name.", "parameter_missing")
            if any(o.get("object") == "billing.meter" and o.get("event_name")
                   == params["event_name"] for o in self.store(account).values()):
                raise _Problem(400, "A meter with this event_name already exists.", None)
            meter = {"id": self._id("mtr"), "object": "billing.meter", "created": now,
                     "display_name": params["display_name"],
                     "event_name": params["event_name"], "status": "active",
                     "default_aggregation": params.get("default_aggregation")
                     or {"formula": "sum"},
                     "customer_mapping": {"event_payload_key": "stripe_customer_id",
                                          "type": "by_id"},
                     "value_settings": {"event_payload_key": "value"}, "livemode": False}
            self.store(account)[meter["id"]] = meter
            return 200, meter
        if parts[0] == "meters" and len(parts) == 2 and method == "GET":
            return 200, self._public(self._find(parts[1], account))
        if parts[0] == "meters" and len(parts) == 3 and parts[2] == "event_summaries":
            meter = self._find(parts[1], account)
            customer = params.get("customer")
            start, end = _int(params.get("start_time"), 0), _int(params.get("end_time"), now)
            total = sum(int(e["payload"]["value"]) for e in self.meter_events(account)
                        if e["event_name"] == meter["event_name"]
                        and e["payload"].get("stripe_customer_id") == customer
                        and start <= e["timestamp"] < end)
            summary = {"id": self._id("mtrusum"), "object": "billing.meter_event_summary",
                       "aggregated_value": total, "start_time": start, "end_time": end,
                       "meter": meter["id"], "livemode": False}
            return 200, {"object": "list", "url": f"/v1/billing/meters/{meter['id']}/"
                         "event_summaries", "has_more": False, "data": [summary]}
        if parts == ["meter_events"] and method == "POST":
            payload = params.get("payload") or {}
            self._meter_by_event(params.get("event_name", ""), account)
            if not payload.get("stripe_customer_id") or not str(
                    payload.get("value", "")).lstrip("-").isdigit():
                raise _Problem(400, "The payload needs stripe_customer_id and a whole "
                                    "number value.", "parameter_invalid")
            identifier = params.get("identifier") or self._id("mev")
            key = f"mev:{identifier}"
            if key in self.store(account):
                raise _Problem(400, f"An event already exists with identifier {identifier}.",
                               None)
            event = {"object": "billing.meter_event", "created": now,
                     "event_name": params["event_name"], "identifier": identifier,
                     "payload": payload, "livemode": False,
                     "timestamp": _int(params.get("timestamp"), now)}
            self.store(account)[key] = event
            return 200, self._public(event)
        if parts == ["meter_event_adjustments"] and method == "POST":
            identifier = ((params.get("cancel") or {}).get("identifier")) or ""
            event = self.store(account).get(f"mev:{identifier}")
            if event is None:
                raise _Problem(400, f"No meter event with identifier {identifier}.",
                               "resource_missing")
            if now - event["created"] > 24 * 3600:
                raise _Problem(400, "Meter events can only be cancelled within 24 hours of "
                                    "their creation.", "parameter_invalid")
            event["_cancelled"] = True
            return 200, {"object": "billing.meter_event_adjustment", "livemode": False,
                         "status": "pending", "event_name": params.get("event_name"),
                         "type": "cancel", "cancel": {"identifier": identifier}}
        raise _Problem(404, f"Unrecognized request URL ({method}: /v1/billing/"
                            f"{'/'.join(parts)}).", None)

    def _invoice_item(self, params: dict[str, Any], account: str | None) -> dict[str, Any]:
        """A pending invoice item: the customer's next invoice carries it (a negative amount
        is a credit)."""
        self._find(params.get("customer", ""), account)
        amount = params.get("amount")
        if not params.get("currency") or not str(amount or "").lstrip("-").isdigit():
            raise _Problem(400, "Missing required param: amount or currency.",
                           "parameter_missing")
        item = {"id": self._id("ii"), "object": "invoiceitem", "amount": int(amount),
                "currency": params["currency"], "customer": params["customer"],
                "description": params.get("description"),
                "metadata": params.get("metadata") or {}, "invoice": None,
                "date": int(self.clock()), "created": int(self.clock()), "livemode": False}
        self.store(account)[item["id"]] = item
        return item

    def _payment_intent(self, params: dict[str, Any], account: str | None) -> dict[str, Any]:
        self._find(params.get("customer", ""), account)
        if params.get("customer") in self.declining:
            raise _Problem(402, "Your card was declined.", "card_declined", "card_error")
        intent = {"id": self._id("pi"), "object": "payment_intent",
                  "amount": _int(params.get("amount"), 0), "currency": params.get("currency"),
                  "customer": params["customer"], "status": "succeeded",
                  "metadata": params.get("metadata") or {}, "created": int(time.time()),
                  "livemode": False}
        self.store(account)[intent["id"]] = intent
        return intent

    def _find(self, object_id: str, account: str | None) -> dict[str, Any]:
        found = self.store(account).get(object_id)
        if found is None:
            raise _Problem(404, f"No such object: '{object_id}'", "resource_missing")
        return found

    @staticmethod
    def _public(obj: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in obj.items() if not k.startswith("_")}


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


class _Problem(Exception):
    def __init__(self, status: int, message: str, code: str | None,
                 kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.code, self.kind = status, message, code, kind


def start_stripe() -> FakeStripe:
    holder: dict[str, FakeStripe] = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            fake = holder["f"]
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            url = urlsplit(self.path)
            params = _nest(parse_qsl(url.query or body, keep_blank_values=True))
            account = self.headers.get("Stripe-Account")
            status, payload = 200, {}
            with fake.lock:
                for i, (method, prefix, fail_status) in enumerate(fake.failures):
                    if method == self.command and url.path.startswith(prefix):
                        del fake.failures[i]
                        status = fail_status
                        payload = {"error": {"type": "api_error",
                                             "message": "An unknown error occurred."}}
                        break
            # Payment intents replay their first answer for a repeated Idempotency-Key, as
            # Stripe does (a charge retried after a crash is the same charge); other objects
            # are created afresh, as the tests written before this expect.
            replay = (account or "", self.headers.get("Idempotency-Key") or "")
            if not url.path.startswith("/v1/payment_intents"):
                replay = (replay[0], "")
            if status == 200 and self.command == "POST" and replay[1] \
                    and replay in fake.replies:
                status, payload = fake.replies[replay]
            elif status == 200:
                try:
                    status, payload = fake.handle(self.command, url.path, params, account)
                except _Problem as problem:
                    status = problem.status
                    payload = {"error": {"type": problem.kind, "message": problem.message,
                                         "code": problem.code}}
                if self.command == "POST" and replay[1] and status < 500:
                    fake.replies[replay] = (status, payload)
            fake.calls.append(Call(self.command, url.path, dict(self.headers), params, status))
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Request-Id", f"req_{secrets.token_hex(8)}")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _answer

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    fake = FakeStripe(server)
    holder["f"] = fake
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return fake
