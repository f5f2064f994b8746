"""Model files through the registry on S3, against boto3 moving the same file to the same server.

    .venv/bin/python bench/s3_transfer.py [--size-mib 1024] [--rounds 3] [--part-mib 64] [--concurrency 8]
    .venv/bin/python bench/s3_transfer.py --sweep            (direct boto3 only: part size x concurrency)
    .venv/bin/python bench/s3_transfer.py --verify-files 10  (verify_artifacts, full and --fast)

The S3 server is moto's, started on loopback as the test suite starts it, or the one named by
--endpoint (with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in the environment). The registry runs under
gunicorn (one worker, as `make run` serves it) with REGISTRY_S3_* pointing at a fresh bucket. Each round:

  direct upload      boto3 upload_file of the file, with the registry's part size and concurrency
  registry upload    POST /models/{m}/versions with the seed's form: the worker stages and hashes the
                     body, then sends it to S3 (the same managed transfer, with per-part SHA-256)
  direct download    boto3 download_fileobj of the object (ranged GETs in parallel) into /dev/null
  registry download  GET /models/{m}/versions/{v}/file, the object's body streamed through the worker

Goal (issue 14): the registry's rate >= 0.8 of direct, each way; the worker's peak RSS growth < 64 MiB.
`--verify-files N` stores N files of --size-mib through the registry, then times `manage.py
verify_artifacts` (every byte read and hashed) and `verify_artifacts --fast` (a HEAD per file).
Results go to bench/results/s3_transfer.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import boto3  # noqa: E402
import requests  # noqa: E402
from boto3.s3.transfer import TransferConfig  # noqa: E402
from botocore.config import Config  # noqa: E402
from file_transfer import (  # noqa: E402  (sets up Django for tests.live)
    CHUNK,
    MIB,
    download,
    memory_kib,
    multipart_upload,
    rate,
    reset_peak,
    settle,
    worker_pid,
)

from tests.live import free_port, running_registry, stop  # noqa: E402


def start_moto(work: Path) -> tuple[str, subprocess.Popen]:
    port = free_port()
    log = open(work / "moto.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            requests.get(url, timeout=1)
            return url, server
        except requests.RequestException:
            time.sleep(0.1)
    stop(server)
    raise RuntimeError("moto did not start")


def s3_client(endpoint: str):
    config = Config(
        s3={"addressing_style": "path"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        max_pool_connections=32,
    )
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", config=config)


def transfer_config(part_mib: int, concurrency: int) -> TransferConfig:
    return TransferConfig(
        multipart_threshold=part_mib * MIB,
        multipart_chunksize=part_mib * MIB,
        max_concurrency=concurrency,
        use_threads=concurrency > 1,
    )


def direct_upload(client, bucket: str, path: Path, config: TransferConfig) -> float:
    started = time.perf_counter()
    client.upload_file(
        str(path), bucket, f"direct/{uuid.uuid4().hex}", ExtraArgs={"ChecksumAlgorithm": "SHA256"}, Config=config
    )
    return time.perf_counter() - started


def direct_download(client, bucket: str, key: str, config: TransferConfig) -> float:
    started = time.perf_counter()
    with open(os.devnull, "wb") as sink:
        client.download_fileobj(bucket, key, sink, Config=config)
    return time.perf_counter() - started


def make_file(path: Path, size_mib: int, tag: str) -> None:
    block = os.urandom(CHUNK)
    with open(path, "wb") as handle:
        for i in range(size_mib):
            handle.write(block[:-8] + i.to_bytes(8, "little"))
        handle.seek(0)
        handle.write(tag.encode())  # distinct content, or the registry would store it once


def sweep(client, bucket: str, path: Path, size: int) -> dict:
    results = {}
    key = f"direct/sweep-{uuid.uuid4().hex}"
    client.upload_file(str(path), bucket, key, Config=transfer_config(64, 8))
    for part_mib in (16, 32, 64, 128):
        for concurrency in (2, 4, 8):
            config = transfer_config(part_mib, concurrency)
            settle()
            up = rate(size, direct_upload(client, bucket, path, config))
            down = rate(size, direct_download(client, bucket, key, config))
            results[f"part {part_mib} MiB x {concurrency}"] = {"upload_MBps": up, "download_MBps": down}
            print(
                f"  part {part_mib:>3} MiB x {concurrency:>2}: upload {up:6.0f} MB/s, download {down:6.0f} MB/s",
                flush=True,
            )
    return results


def manage(env: dict[str, str], *args: str) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    return elapsed, (done.stdout + done.stderr).strip().splitlines()[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--part-mib", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--endpoint", help="an S3 endpoint of your own (default: moto on loopback)")
    parser.add_argument("--sweep", action="store_true", help="direct boto3 only, over part sizes and concurrency")
    parser.add_argument("--verify-files", type=int, default=0, help="time verify_artifacts over this many files")
    args = parser.parse_args()
    size = args.size_mib * MIB
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    results: dict = {"size_MiB": args.size_mib, "part_MiB": args.part_mib, "concurrency": args.concurrency}

    with tempfile.TemporaryDirectory(dir=ROOT / "data" if (ROOT / "data").exists() else None) as tmp:
        work = Path(tmp)
        moto = None
        endpoint = args.endpoint
        if not endpoint:
            endpoint, moto = start_moto(work)
        try:
            client = s3_client(endpoint)
            bucket = f"registry-bench-{uuid.uuid4().hex[:8]}"
            client.create_bucket(Bucket=bucket)
            source = work / "model.bin"
            print(f"writing a {args.size_mib} MiB test file ...", flush=True)
            make_file(source, args.size_mib, "base")
            if args.sweep:
                results["sweep"] = sweep(client, bucket, source, size)
                write(results, "s3_transfer_sweep.json")
                return 0
            env = {
                "REGISTRY_S3_BUCKET": bucket,
                "REGISTRY_S3_ENDPOINT_URL": endpoint,
                "REGISTRY_S3_REGION": "us-east-1",
                "REGISTRY_S3_PART_SIZE_MB": str(args.part_mib),
                "REGISTRY_S3_CONCURRENCY": str(args.concurrency),
            }
            with running_registry(work, workers=1, extra_env=env) as base:
                pid = worker_pid(int(base.rsplit(":", 1)[1]))
                assert requests.post(f"{base}/models", json={"name": "bench", "model_type": "classification"}).ok
                if args.verify_files:
                    return verify_times(results, base, work, source, args, {**os.environ, **env, **registry_env(work)})
                config = transfer_config(args.part_mib, args.concurrency)
                samples: dict[str, list[float]] = {}
                rss: dict[str, list[float]] = {}
                for round_no in range(args.rounds):
                    print(f"round {round_no + 1}/{args.rounds} ...", flush=True)
                    make_file(source, args.size_mib, f"round{round_no}")
                    key = f"direct/{uuid.uuid4().hex}"
                    settle()
                    samples.setdefault("direct_upload_MBps", []).append(
                        rate(size, direct_upload(client, bucket, source, config))
                    )
                    client.upload_file(str(source), bucket, key, Config=config)
                    settle()
                    baseline = reset_peak(pid)
                    elapsed = multipart_upload(base, "bench", f"v{round_no}", source)
                    samples.setdefault("registry_upload_MBps", []).append(rate(size, elapsed))
                    rss.setdefault("registry_upload", []).append((memory_kib(pid, "VmHWM") - baseline) / 1024)
                    samples.setdefault("direct_download_MBps", []).append(
                        rate(size, direct_download(client, bucket, key, config))
                    )
                    baseline = reset_peak(pid)
                    samples.setdefault("registry_download_MBps", []).append(
                        rate(size, download(base, "bench", f"v{round_no}", size))
                    )
                    rss.setdefault("registry_download", []).append((memory_kib(pid, "VmHWM") - baseline) / 1024)
                    for name, values in samples.items():
                        print(f"  {name:<24} {values[-1]:7.0f} MB/s", flush=True)
        finally:
            if moto is not None:
                stop(moto)

    median = {name: statistics.median(values) for name, values in samples.items()}
    ratios = {
        "upload_vs_direct": median["registry_upload_MBps"] / median["direct_upload_MBps"],
        "download_vs_direct": median["registry_download_MBps"] / median["direct_download_MBps"],
    }
    worst_rss = max(max(values) for values in rss.values())
    print(f"\nfile: {args.size_mib} MiB, part {args.part_mib} MiB x {args.concurrency}, median of {args.rounds} rounds")
    for name, values in samples.items():
        print(f"  {name:<24} {median[name]:7.0f} MB/s   ({' '.join(f'{v:.0f}' for v in values)})")
    for name, value in ratios.items():
        print(f"  {name:<24} {value:7.2f}  (>= 0.80) {'ok' if value >= 0.8 else 'MISSED'}")
    print(f"  {'worker peak RSS growth':<24} {worst_rss:7.1f} MiB (< 64) {'ok' if worst_rss < 64 else 'MISSED'}")
    results.update(rounds=samples, median=median, ratios=ratios, rss_growth_MiB=rss)
    write(results, "s3_transfer.json")
    return 0 if all(v >= 0.8 for v in ratios.values()) and worst_rss < 64 else 1


def registry_env(work: Path) -> dict[str, str]:
    """The running registry's database and data folder (as tests.live makes them), for manage.py."""
    return {
        "DATABASE_URL": f"sqlite:///{work / 'registry.sqlite3'}",
        "REGISTRY_DATA_DIR": str(work / "data"),
        "REGISTRY_STORAGE_DIR": str(work / "storage"),
    }


def verify_times(results: dict, base: str, work: Path, source: Path, args, env: dict[str, str]) -> int:
    env.pop("DJANGO_SETTINGS_MODULE", None)
    for i in range(args.verify_files):
        make_file(source, args.size_mib, f"verify{i}")
        multipart_upload(base, "bench", f"f{i}", source)
        print(f"  stored {i + 1}/{args.verify_files}", flush=True)
    full, full_line = manage(env, "verify_artifacts")
    fast, fast_line = manage(env, "verify_artifacts", "--fast")
    total = args.verify_files * args.size_mib
    print(f"verify_artifacts over {args.verify_files} files, {total} MiB:")
    print(f"  full read  {full:8.1f} s   {full_line}")
    print(f"  --fast     {fast:8.1f} s   {fast_line}")
    results["verify"] = {"files": args.verify_files, "MiB": total, "full_seconds": full, "fast_seconds": fast}
    write(results, "s3_transfer_verify.json")
    return 0


def write(results: dict, name: str) -> None:
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / name).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    sys.exit(main())
