"""manage.py deliver_webhooks [--once]"""

import signal

from django.conf import settings

from registry_site import webhooks
from registry_site.commands import RegistryCommand


class Command(RegistryCommand):
    help = (
        "Send the webhook deliveries that are due (registry_site.webhooks), with retries and backoff, until "
        "stopped (SIGTERM or SIGINT end it after the attempt in flight). Run one or more next to the web "
        "server; `make run` and the Docker stack do. With --once, send what is due now and exit (cron, tests)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="send what is due now, then exit")

    def handle(self, *args, **options):
        stopping = []

        def stop(signum, frame):
            stopping.append(signum)

        if not options["once"]:
            signal.signal(signal.SIGTERM, stop)
            signal.signal(signal.SIGINT, stop)
            self.stdout.write("Delivering webhooks (SIGTERM or Ctrl-C to stop).")
            self.stdout.flush()
        made = webhooks.run_worker(
            once=options["once"],
            poll_seconds=settings.REGISTRY_WEBHOOK_POLL_SECONDS,
            should_stop=lambda: bool(stopping),
            log=lambda line: self.stdout.write(line),
        )
        self.stdout.write(f"Made {made} webhook delivery attempt(s).")
