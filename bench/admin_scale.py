#!/usr/bin/env python3
"""The console at scale (issue #15): how long each admin page and each API read takes with 1k, 100k or
1M versions, in one model or spread over 10,000 models, with as many audit events and stored-file rows.

The rows are inserted by the database itself (a recursive CTE on SQLite, generate_series on PostgreSQL),
not through the API: a million versions (with their files and a million audit events) took 5-6
minutes on the shared 2-core machine, not hours. Each page is then loaded in
process with Django's test Client, logged in as a superuser: 2 loads to warm up, then --loads timed
ones; the table gives the 95th percentile, the median, the page's size and its number of queries.

    .venv/bin/python bench/admin_scale.py                              # SQLite and PostgreSQL, 1k and 100k
    .venv/bin/python bench/admin_scale.py --db sqlite --sizes 1000000  # one database, 1M versions
    make bench-admin BENCH_ARGS="--sizes 1000,100000,1000000"

PostgreSQL: --pg-url (default postgresql://postgres@127.0.0.1:5432/h15bench, created if missing; its
tables are emptied and refilled). SQLite: a temporary file, removed at the end. Results also go to
bench/results/admin_scale-<db>.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/h15bench"
SPREAD_MODELS = 10_000
TARGET_MS = 300
TARGET_KIB = 1024


# --- Filling -------------------------------------------------------------------------------------------
def _sequence_sql(vendor: str, count_param: str) -> tuple[str, str]:
    """(prefix, FROM clause) that yield rows i = 0..count-1."""
    if vendor == "postgresql":
        return "", f"FROM generate_series(0, {count_param} - 1) AS seq(i)"
    prefix = f"WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < {count_param}) "
    return prefix, "FROM seq"


def _sha_sql(vendor: str, expr: str) -> str:
    """A 64-hex-digit digest that differs for each integer `expr`, spread over the hex alphabet."""
    if vendor == "postgresql":
        return f"md5(({expr})::text) || md5((({expr}) + 1000000007)::text)"
    multipliers = (2654435761, 2246822519, 3266489917, 668265263, 374761393, 1103515245, 2891336453, 1597334677)
    parts = ", ".join(f"(({expr}) * {m} + {m // 7}) % 4294967296" for m in multipliers)
    return f"printf('{'%08x' * len(multipliers)}', {parts})"


def _ago_sql(vendor: str, seconds_expr: str) -> str:
    if vendor == "postgresql":
        return f"now() - make_interval(secs => {seconds_expr})"
    return f"strftime('%Y-%m-%d %H:%M:%f', 'now', '-' || ({seconds_expr}) || ' seconds')"


def _insert(cursor, vendor: str, table: str, columns: dict[str, str], count: int, params: list | None = None) -> None:
    prefix, source = _sequence_sql(vendor, "%s")
    names = ", ".join(f'"{name}"' for name in columns)
    values = ", ".join(columns.values())
    statement = f'{prefix}INSERT INTO "{table}" ({names}) SELECT {values} {source}'
    # Both drivers take %s for a parameter, so every other % (modulo, printf, strftime) is doubled.
    statement = re.sub(r"%(?!s)", "%%", statement)
    # The count's placeholder comes first on SQLite (in the WITH), last on PostgreSQL (in the FROM).
    ordered = [count, *(params or [])] if prefix else [*(params or []), count]
    cursor.execute(statement, ordered)


def _defaults(model, columns: dict[str, str], connection) -> tuple[dict[str, str], list]:
    """Columns the bench does not set (added by later changes, say) get their field's default."""
    extra, params = {}, []
    for field in model._meta.concrete_fields:
        if field.column in columns or field.primary_key and field.column == "id":
            continue
        extra[field.column] = "%s"
        params.append(field.get_db_prep_save(field.get_default(), connection))
    return extra, params


def empty(connection) -> None:
    tables = ["model_deployments", "model_versions", "artifacts", "models", "audit_events"]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
        else:
            for table in tables:
                cursor.execute(f'DELETE FROM "{table}"')
            cursor.execute("DELETE FROM sqlite_sequence WHERE name IN (%s)" % ", ".join(f"'{t}'" for t in tables))


def fill(connection, *, versions: int, models: int, events: int) -> dict:
    """`versions` versions over `models` models (version k of model m is row k * models + m), each with
    its own stored-file row; the first version of each model is its default and is active on
    production, with a superseded deployment before it on production and one on staging; `events`
    audit events."""
    from deployments_app.models import Deployment
    from models_app.models import Artifact, ModelVersion, RegisteredModel
    from registry_site.models import AuditEvent

    vendor = connection.vendor
    json_empty = "'{}'::jsonb" if vendor == "postgresql" else "'{}'"
    true, false = ("true", "false") if vendor == "postgresql" else ("1", "0")
    timings = {}
    with connection.cursor() as cursor:
        start = time.perf_counter()
        columns = {
            "id": "i + 1",
            "name": "'model-' || lpad(CAST(i AS TEXT), 5, '0')"
            if vendor == "postgresql"
            else "printf('model-%05d', i)",
            "description": "''",
            "model_type": "'classification'",
            "is_active": true,
            "created_at": _ago_sql(vendor, "i"),
            "updated_at": _ago_sql(vendor, "i"),
        }
        extra, params = _defaults(RegisteredModel, columns, connection)
        _insert(cursor, vendor, "models", {**columns, **extra}, models, params)

        columns = {
            "sha256": _sha_sql(vendor, "i"),
            "size": "4096 + i % 1000",
            "storage_key": "'objects/' || " + _sha_sql(vendor, "i"),
            "created_at": _ago_sql(vendor, f"{versions} - i"),
        }
        extra, params = _defaults(Artifact, columns, connection)
        _insert(cursor, vendor, "artifacts", {**columns, **extra}, versions, params)
        timings["artifacts_s"] = time.perf_counter() - start

        statuses = (
            "CASE i % 4 WHEN 0 THEN 'approved' WHEN 1 THEN 'testing' WHEN 2 THEN 'training' ELSE 'deprecated' END"
        )
        columns = {
            "id": "i + 1",
            "model_id": f"i % {models} + 1",
            "version": f"'1.0.' || CAST(i / {models} AS TEXT)",
            "format": "'onnx'",
            "status": statuses,
            "checksum": _sha_sql(vendor, "i"),
            "file_name": "'model.onnx'",
            "format_check": "'passed'",
            "format_check_detail": "''",
            "accuracy": "0.5 + (i % 500) / 1000.0",
            "f1_score": "0.5 + (i % 400) / 1000.0",
            "training_config": json_empty,
            "deployment_config": json_empty,
            "release_notes": "''",
            "is_default": f"CASE WHEN i < {models} THEN {true} ELSE {false} END",
            "created_at": _ago_sql(vendor, f"{versions} - i"),
            "updated_at": _ago_sql(vendor, f"{versions} - i"),
        }
        extra, params = _defaults(ModelVersion, columns, connection)
        start = time.perf_counter()
        _insert(cursor, vendor, "model_versions", {**columns, **extra}, versions, params)
        timings["versions_s"] = time.perf_counter() - start

        start = time.perf_counter()
        # Per model: staging (superseded), production (superseded), production (active), oldest first.
        columns = {
            "model_id": "i / 3 + 1",
            "model_version_id": "i / 3 + 1",
            "deployment_target": "CASE WHEN i % 3 = 0 THEN 'staging' ELSE 'production' END",
            "deployed_at": _ago_sql(vendor, f"{3 * models} - i"),
            "deployed_by": "'ci'",
            "deployment_status": "CASE WHEN i % 3 = 2 THEN 'active' ELSE 'superseded' END",
            "deployment_config": json_empty,
            "rollback_reason": "''",
        }
        extra, params = _defaults(Deployment, columns, connection)
        _insert(cursor, vendor, "model_deployments", {**columns, **extra}, 3 * models, params)

        columns = {
            "at": _ago_sql(vendor, f"{events} - i"),
            "actor": "CASE WHEN i % 10 = 0 THEN 'alice' ELSE 'ci' END",
            "via": "CASE WHEN i % 10 = 0 THEN 'admin' ELSE 'api' END",
            "action": "CASE WHEN i % 50 = 0 THEN 'deploy' ELSE 'upload' END",
            "object_type": "'version'",
            "object_repr": "'model-' || CAST(i % " + str(models) + " AS TEXT) || ':1.0.' || CAST(i AS TEXT)",
            "model_name": "'model-' || CAST(i % " + str(models) + " AS TEXT)",
            "changes": json_empty,
        }
        extra, params = _defaults(AuditEvent, columns, connection)
        _insert(cursor, vendor, "audit_events", {**columns, **extra}, events, params)
        timings["deployments_and_audit_s"] = time.perf_counter() - start

        if vendor == "postgresql":
            # Explicit ids above: move the sequences past them, as a real history would have.
            for table in ("models", "model_versions"):
                cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))")
            start = time.perf_counter()
            cursor.execute("ANALYZE")  # what autovacuum does after a bulk load
            timings["analyze_s"] = time.perf_counter() - start
    return timings


# --- Timing --------------------------------------------------------------------------------------------
def pages(*, versions: int) -> list[tuple[str, str, str, dict]]:
    """(kind, label, path, query) for every page timed; kind "post" is the deploy action's form."""
    from deployments_app.models import Deployment
    from models_app.models import ModelVersion, RegisteredModel
    from registry_site.models import AuditEvent

    model = RegisteredModel.objects.get(pk=1)
    version = ModelVersion.objects.filter(model=model).order_by("-id").first()
    deployment = Deployment.objects.filter(deployment_status="active").order_by("-id").first()
    event = AuditEvent.objects.order_by("-id").first()
    sha = version.artifact_id
    admin = "/admin/"
    # The last page the console offers: the paginator pages the first CappedCountPaginator.cap rows.
    last_page = math.ceil(min(versions, 10_000) / 50)
    return [
        ("get", "admin index", admin, {}),
        ("get", "model list", f"{admin}models_app/registeredmodel/", {}),
        ("get", "model list, search name prefix", f"{admin}models_app/registeredmodel/", {"q": "model-0001"}),
        ("get", "**model page** (the biggest model)", f"{admin}models_app/registeredmodel/{model.pk}/change/", {}),
        ("get", "version list", f"{admin}models_app/modelversion/", {}),
        ("get", "version list, last page", f"{admin}models_app/modelversion/", {"p": str(last_page)}),
        ("get", "version list, search `1.0.5`", f"{admin}models_app/modelversion/", {"q": "1.0.5"}),
        ("get", "version list, search name:version", f"{admin}models_app/modelversion/", {"q": f"{model.name}:1.0.7"}),
        ("get", "version list, search sha256 prefix", f"{admin}models_app/modelversion/", {"q": sha[:10]}),
        ("get", "version list of one model (link)", f"{admin}models_app/modelversion/", {"model__id__exact": model.pk}),
        ("get", "version list, filter model name", f"{admin}models_app/modelversion/", {"model_name": model.name}),
        ("get", "version list, filter status", f"{admin}models_app/modelversion/", {"status__exact": "deprecated"}),
        ("get", "version page", f"{admin}models_app/modelversion/{version.pk}/change/", {}),
        ("get", "version add page", f"{admin}models_app/modelversion/add/", {}),
        (
            "post",
            "deploy form (action)",
            f"{admin}models_app/modelversion/",
            {"action": "deploy_to_target", "_selected_action": [version.pk], "index": 0},
        ),
        ("get", "deployment list", f"{admin}deployments_app/deployment/", {}),
        ("get", "deployment list, filter target", f"{admin}deployments_app/deployment/", {"target": "staging"}),
        ("get", "deployment page", f"{admin}deployments_app/deployment/{deployment.pk}/change/", {}),
        ("get", "audit list", f"{admin}registry_site/auditevent/", {}),
        ("get", "audit list, filter action", f"{admin}registry_site/auditevent/", {"action": "deploy"}),
        ("get", "audit list, search actor", f"{admin}registry_site/auditevent/", {"q": "alice"}),
        ("get", "audit event page", f"{admin}registry_site/auditevent/{event.pk}/change/", {}),
        ("get", "artifact list", f"{admin}models_app/artifact/", {}),
        ("get", "artifact list, search sha256 prefix", f"{admin}models_app/artifact/", {"q": sha[:10]}),
        ("get", "artifact page", f"{admin}models_app/artifact/{sha}/change/", {}),
        ("get", "API GET /models", "/models", {}),
        ("get", "API GET /models/{name}", f"/models/{model.name}", {}),
        ("get", "API GET /models/{name}/versions", f"/models/{model.name}/versions", {}),
        ("get", "API GET /models/{name}/versions/{v}", f"/models/{model.name}/versions/{version.version}", {}),
        ("get", "API GET .../versions/default", f"/models/{model.name}/versions/default", {}),
        ("get", "API GET .../versions/latest", f"/models/{model.name}/versions/latest", {}),
        ("get", "API GET /deployments", "/deployments", {}),
        ("get", "API GET /deployments/{id}", f"/deployments/{deployment.pk}", {}),
        ("get", "API GET /audit", "/audit", {}),
        ("get", "API GET /audit/{id}", f"/audit/{event.pk}", {}),
    ]


def time_pages(client, *, versions: int, loads: int) -> list[dict]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    rows = []
    for kind, label, path, query in pages(versions=versions):
        send = client.post if kind == "post" else client.get

        def load(send=send, path=path, query=query):
            return send(path, query)

        with CaptureQueriesContext(connection) as captured:
            response = load()
        queries = len(captured.captured_queries)  # now: the next request's start clears the log
        if response.status_code != 200:
            raise SystemExit(f"{label}: {path} answered {response.status_code}")
        load()
        times = []
        for _ in range(loads):
            start = time.perf_counter()
            load()
            times.append((time.perf_counter() - start) * 1000)
        times.sort()
        rows.append(
            {
                "page": label,
                "p95_ms": times[max(0, math.ceil(0.95 * len(times)) - 1)],
                "median_ms": statistics.median(times),
                "kib": len(response.content) / 1024,
                "queries": queries,
            }
        )
    return rows


def run_one_database(args: argparse.Namespace) -> None:
    """In this process: Django set up on one database, every (size, layout) filled and timed."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "registry_site.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    call_command("migrate", verbosity=0)
    user, _ = get_user_model().objects.get_or_create(
        username="bench-admin", defaults={"is_superuser": True, "is_staff": True}
    )
    client = Client(HTTP_HOST="localhost")
    results = []
    for size in args.sizes:
        for layout in args.layouts:
            models = 1 if layout == "one" else min(SPREAD_MODELS, size)
            events = args.events if args.events is not None else size
            empty(connection)
            start = time.perf_counter()
            timings = fill(connection, versions=size, models=models, events=events)
            fill_s = time.perf_counter() - start
            print(
                f"# {connection.vendor}: {size:,} versions in {models:,} model(s), {events:,} audit events: "
                f"filled in {fill_s:.1f} s {json.dumps({k: round(v, 1) for k, v in timings.items()})}",
                file=sys.stderr,
                flush=True,
            )
            client.force_login(user)
            rows = time_pages(client, versions=size, loads=args.loads)
            results.append(
                {
                    "db": connection.vendor,
                    "versions": size,
                    "models": models,
                    "events": events,
                    "fill_s": fill_s,
                    "pages": rows,
                }
            )
            slowest = max(rows, key=lambda r: r["p95_ms"])
            print(f"#   slowest: {slowest['page']} p95 {slowest['p95_ms']:.0f} ms", file=sys.stderr, flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"admin_scale-{connection.vendor}.json"
    out.write_text(json.dumps(results, indent=1))
    print(json.dumps(results))


def table(results: list[dict]) -> str:
    """One row per page; a column per database, size and layout: 'p95 ms / KiB'."""

    def short(n: int) -> str:
        return f"{n // 1_000_000}M" if n >= 1_000_000 else f"{n // 1000}k" if n >= 1000 else str(n)

    def column(r: dict) -> str:
        db = "SQLite" if r["db"] == "sqlite" else "PostgreSQL"
        models = "1 model" if r["models"] == 1 else f"{r['models']:,} models"
        return f"{db} {short(r['versions'])}, {models}"

    columns = [column(r) for r in results]
    lines = [
        "| page | " + " | ".join(columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    labels = [row["page"] for row in results[0]["pages"]]
    for i, label in enumerate(labels):
        cells = []
        for r in results:
            row = r["pages"][i]
            over = row["p95_ms"] > TARGET_MS or row["kib"] > TARGET_KIB
            cell = f"{row['p95_ms']:.0f} ms / {row['kib']:.0f} KiB"
            cells.append(f"**{cell}** ⚠" if over else cell)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    queries = [max(p["queries"] for p in r["pages"]) for r in results]
    lines.append("| (most queries on one page) | " + " | ".join(str(q) for q in queries) + " |")
    fills = [f"{r['fill_s']:.0f} s" for r in results]
    lines.append("| (time to fill the database) | " + " | ".join(fills) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--sizes", default="1000,100000", help="versions, comma-separated (e.g. 1000,100000,1000000)")
    parser.add_argument("--layouts", default="one,spread", help="one (a single model) and/or spread (10,000 models)")
    parser.add_argument("--events", type=int, default=None, help="audit events (default: as many as versions)")
    parser.add_argument("--loads", type=int, default=20, help="timed loads per page (after 2 warm-up loads)")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s]
    args.layouts = [s for s in args.layouts.split(",") if s]
    if args.child:
        run_one_database(args)
        return
    results = []
    databases = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    for db in databases:
        with tempfile.TemporaryDirectory(prefix="admin-scale-") as tmp:
            env = {**os.environ, "REGISTRY_DATA_DIR": tmp, "REGISTRY_ENV": "local"}
            env.pop("DJANGO_SECRET_KEY", None)
            if db == "sqlite":
                env["DATABASE_URL"] = f"sqlite:///{tmp}/bench.sqlite3"
            else:
                env["DATABASE_URL"] = args.pg_url
                ensure_postgres_database(args.pg_url)
            argv = [sys.executable, __file__, "--child", "--sizes", ",".join(map(str, args.sizes))]
            argv += ["--layouts", ",".join(args.layouts), "--loads", str(args.loads)]
            if args.events is not None:
                argv += ["--events", str(args.events)]
            out = subprocess.run(argv, env=env, cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True).stdout
            results.extend(json.loads(out.strip().splitlines()[-1]))
    print()
    print(table(results))


def ensure_postgres_database(url: str) -> None:
    import psycopg
    from psycopg import sql

    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


if __name__ == "__main__":
    main()
