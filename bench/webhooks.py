#!/usr/bin/env python3
"""What webhooks cost (issue #10 §6), as ratios measured in one run against the database of DATABASE_URL
(which it migrates; its webhook tables and the benchmark's models are emptied):

1. The write path: `services.update_model` with no subscription, then with --subscriptions enabled
   subscriptions that all match (each change then writes that many outbox rows and describes its object
   once). Median per change, and the ratio.
2. The worker: one `deliver_webhooks` loop (in process, --once) sending --deliveries messages to a
   receiver on loopback that answers 200 at once, against the same number of bare POSTs to it made with
   the same HTTP library (a connection each, as the worker): deliveries per second, and what the claim,
   signing and logging add per message.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/bench .venv/bin/python bench/webhooks.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "registry_site.settings")

import django  # noqa: E402

django.setup()

import urllib3  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from models_app import services  # noqa: E402
from models_app.models import RegisteredModel  # noqa: E402
from registry_site import webhooks  # noqa: E402
from registry_site.models import WebhookDelivery, WebhookSubscription  # noqa: E402

PREFIX = "bench-webhooks-"


class Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def per_change_ms(model: RegisteredModel, changes: int) -> float:
    times = []
    for n in range(changes):
        started = time.perf_counter()
        services.update_model(model=model, changes={"description": f"change {n} {time.time()}"})
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--changes", type=int, default=300)
    parser.add_argument("--subscriptions", type=int, default=3)
    parser.add_argument("--deliveries", type=int, default=500)
    args = parser.parse_args()

    call_command("migrate", verbosity=0)
    WebhookSubscription.objects.all().delete()
    RegisteredModel.objects.filter(name__startswith=PREFIX).delete()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"

    model = services.create_model(name=f"{PREFIX}writes", model_type="classification")
    bare = per_change_ms(model, args.changes)
    for _ in range(args.subscriptions):
        webhooks.create_subscription(url=url, events=["*"])
    with_hooks = per_change_ms(model, args.changes)
    print(
        json.dumps(
            {
                "what": "update_model, median ms per change",
                "database": connection.vendor,
                "no_subscription": round(bare, 3),
                f"{args.subscriptions}_subscriptions": round(with_hooks, 3),
                "ratio": round(with_hooks / bare, 2),
            }
        )
    )

    WebhookDelivery.objects.all().delete()
    subscriptions = list(WebhookSubscription.objects.all())
    for subscription in subscriptions[1:]:
        subscription.delete()
    for n in range(args.deliveries):  # one model each: no ordering wait between them
        services.create_model(name=f"{PREFIX}{n}", model_type="classification")
    pending = WebhookDelivery.objects.filter(status="pending").count()
    started = time.perf_counter()
    webhooks.run_worker(once=True, log=lambda line: None)
    worker_s = time.perf_counter() - started
    delivered = WebhookDelivery.objects.filter(status="delivered").count()

    body = WebhookDelivery.objects.first().body.encode()
    started = time.perf_counter()
    for _ in range(pending):  # a connection each, as the worker opens one per attempt
        with urllib3.HTTPConnectionPool("127.0.0.1", server.server_address[1], retries=False) as pool:
            pool.urlopen("POST", "/hook", body=body, headers={"content-type": "application/json"}).read()
    bare_s = time.perf_counter() - started
    print(
        json.dumps(
            {
                "what": "deliver_webhooks --once, one worker",
                "database": connection.vendor,
                "messages": pending,
                "delivered": delivered,
                "per_second": round(delivered / worker_s, 1),
                "bare_posts_per_second": round(pending / bare_s, 1),
                "added_ms_per_message": round((worker_s - bare_s) / pending * 1000, 2),
            }
        )
    )
    WebhookSubscription.objects.all().delete()
    RegisteredModel.objects.filter(name__startswith=PREFIX).delete()
    server.shutdown()


if __name__ == "__main__":
    main()
