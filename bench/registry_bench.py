#!/usr/bin/env python3
# Vendored verbatim from the shared benchmark kit (../shared/bench/registry_bench.py); see bench/compare_mlflow.py.
"""Model-registry benchmark: the seed "Model Version Registry" vs the MLflow Model Registry.

Stdlib only (http.client, one keep-alive connection per client thread).  Every workload prints
one JSON line.  Run `--help` for flags; see README.md next to this file for the full recipe.

  W0  physical limits of this machine (sha256/core, disk write+fsync, loopback HTTP)
  W1  write throughput: 1 model + N versions (4 KiB file each) with C concurrent clients
  W2  read latency under load: C clients for T s, mix of get-version / list-50 / default / list-models
  W3  scale: single-client latency with 100 vs 10,000 versions in a model and with 1,000 models
  W4  one large artifact (default 1 GiB) upload + download: MB/s, server peak RSS (--server-pid)

Adapters do the same logical work on both sides:
  seed   : POST /models; POST /models/{m}/versions (multipart, 1 request); GET ... (see SeedAdapter)
  mlflow : registered-models/create + one run per model (artifact root); per version:
           PUT mlflow-artifacts file into the run's artifact dir + model-versions/create(source, run_id)
           (2 requests: MLflow refuses a mlflow-artifacts source that is not inside a run/logged model).
           "default" = registered-model alias "default"; deploy = alias + model-version tag.
"""
import argparse, hashlib, http.client, io, json, os, random, socket, statistics, subprocess, sys
import tempfile, threading, time, uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, urlencode, urlsplit

MiB = 1 << 20


# ----------------------------------------------------------------------------- HTTP client
class HTTPError(Exception):
    pass


class Client:
    """Thread-local keep-alive http.client connections to one base URL."""

    keepalive = True  # --no-keepalive: new TCP connection per request

    def __init__(self, base):
        u = urlsplit(base)
        self.host, self.port, self.prefix = u.hostname, u.port or 80, u.path.rstrip("/")
        self.local = threading.local()

    def _conn(self):
        c = getattr(self.local, "c", None)
        if c is None:
            c = self.local.c = http.client.HTTPConnection(self.host, self.port, timeout=900, blocksize=MiB)
        return c

    def request(self, method, path, body=None, headers=None, json_body=None, sink=None, ok=(200, 201)):
        """Returns (status, parsed-JSON-or-bytes).  sink(chunk) streams the response body."""
        headers = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        for attempt in (0, 1):
            c = self._conn()
            try:
                c.request(method, self.prefix + path, body=body, headers=headers)
                r = c.getresponse()
                if sink is not None and r.status in ok:
                    while chunk := r.read(MiB):
                        sink(chunk)
                    data = b""
                else:
                    data = r.read()
                if not self.keepalive:
                    c.close()
                    self.local.c = None
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                c.close()
                self.local.c = None
                if attempt or (body is not None and not isinstance(body, bytes)):
                    raise
        if r.status not in ok:
            raise HTTPError(f"{method} {path} -> {r.status}: {data[:300]!r}")
        if r.headers.get("Content-Type", "").startswith("application/json"):
            return r.status, (json.loads(data) if data else {})
        return r.status, data


class Multipart:
    """multipart/form-data body with a known Content-Length; the file part is streamed via read()."""

    def __init__(self, fields, fileobj, size, filename="model.onnx", file_field="file"):
        b = uuid.uuid4().hex
        self.content_type = f"multipart/form-data; boundary={b}"
        pre = "".join(f'--{b}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n' for k, v in fields.items())
        pre += (f'--{b}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{filename}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n")
        post = f"\r\n--{b}--\r\n".encode()
        self.parts = [io.BytesIO(pre.encode()), fileobj, io.BytesIO(post)]
        self.length = len(pre.encode()) + size + len(post)

    def read(self, n=-1):
        while self.parts:
            d = self.parts[0].read(n)
            if d:
                return d
            self.parts.pop(0)
        return b""


# ----------------------------------------------------------------------------- adapters
class SeedAdapter:
    """The project's spec (Django + DRF).  Paths are relative to --url (e.g. http://127.0.0.1:8000/api)."""

    def __init__(self, url, a):
        self.c, self.a, self.s = Client(url), a, ("/" if a.seed_slash else "")

    def p(self, path, **q):
        q = {k: v for k, v in q.items() if v is not None}
        return path + self.s + ("?" + urlencode(q) if q else "")

    def create_model(self, name):
        self.c.request("POST", self.p("/models"), json_body={"name": name, "description": "bench",
                                                             "model_type": "classification"})

    def prepare_model(self, name):  # nothing to prepare
        pass

    def create_version(self, name, label, fileobj, size, shapes=("[1,3,224,224]", "[1,1000]")):
        mp = Multipart({"version": label, "format": "onnx", "accuracy": "0.9",
                        "input_shape": shapes[0], "output_shape": shapes[1]}, fileobj, size)
        body = b"".join(iter(mp.read, b"")) if size <= MiB else mp
        self.c.request("POST", self.p(f"/models/{quote(name)}/versions"), body=body,
                       headers={"Content-Type": mp.content_type, "Content-Length": str(mp.length)})
        return label

    def set_default(self, name, vid):
        self.c.request("POST", self.p("/deploy"), json_body={"model_name": name, "version": vid,
                       "deployment_target": "production", "deployed_by": "bench"})

    def get_model(self, name):
        return self.c.request("GET", self.p(f"/models/{quote(name)}"))[1]

    def get_version(self, name, vid):
        return self.c.request("GET", self.p(f"/models/{quote(name)}/versions/{quote(vid)}"))[1]

    def get_default(self, name):
        return self.c.request("GET", self.p(f"/models/{quote(name)}/versions/default"))[1]

    def _page_q(self, n):
        return dict(x.split("=", 1) for x in self.a.seed_page_query.format(n=n).split("&"))

    def list_models(self, n=50):
        return self.c.request("GET", self.p("/models", **self._page_q(n)))[1]

    def list_versions(self, name, n=50, next_token=None):
        """Returns (items, next_token)."""
        if next_token:
            u = urlsplit(next_token)
            path = u.path[len(self.c.prefix):] + ("?" + u.query if u.query else "")
        else:
            path = self.p(f"/models/{quote(name)}/versions", **self._page_q(n))
        d = self.c.request("GET", path)[1]
        if isinstance(d, list):
            return d, None
        return d.get("results", []), d.get("next")

    def version_ids(self, items):
        return [str(x.get("version")) for x in items]

    def download(self, name, vid, sink):
        self.c.request("GET", self.a.seed_download.format(name=quote(name), version=quote(vid)), sink=sink)


class MlflowAdapter:
    API = "/api/2.0/mlflow"
    ART = "/api/2.0/mlflow-artifacts/artifacts/"

    def __init__(self, url, a):
        self.c, self.a, self.runs, self.lock = Client(url), a, {}, threading.Lock()

    def create_model(self, name):
        self.c.request("POST", f"{self.API}/registered-models/create", json_body={"name": name, "description": "bench",
                       "tags": [{"key": "model_type", "value": "classification"}]})
        self.prepare_model(name)

    def prepare_model(self, name):
        """One run per model whose artifact dir holds all version files (source must be inside a run)."""
        with self.lock:
            if name in self.runs:
                return
        r = self.c.request("POST", f"{self.API}/runs/create", json_body={"experiment_id": "0", "run_name": f"store-{name}"})[1]
        info = r["run"]["info"]
        with self.lock:
            self.runs[name] = (info["run_id"], info["artifact_uri"])

    def _art_path(self, name, label):
        uri = self.runs[name][1]  # mlflow-artifacts:/<exp>/<run>/artifacts
        return uri.split(":", 1)[1].lstrip("/") + f"/v/{label}/model.onnx"

    def create_version(self, name, label, fileobj, size, shapes=("[1,3,224,224]", "[1,1000]")):
        if name not in self.runs:
            self.prepare_model(name)
        run_id, uri = self.runs[name]
        body = fileobj.read() if size <= MiB else fileobj
        self.c.request("PUT", self.ART + quote(self._art_path(name, label)), body=body,
                       headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)})
        tags = {"version_label": label, "format": "onnx", "accuracy": "0.9",
                "input_shape": shapes[0], "output_shape": shapes[1]}
        r = self.c.request("POST", f"{self.API}/model-versions/create", json_body={
            "name": name, "source": f"{uri}/v/{label}", "run_id": run_id,
            "tags": [{"key": k, "value": v} for k, v in tags.items()]})[1]
        return r["model_version"]["version"]

    def set_default(self, name, vid):
        self.c.request("POST", f"{self.API}/registered-models/alias", json_body={"name": name, "alias": "default", "version": vid})
        self.c.request("POST", f"{self.API}/model-versions/set-tag", json_body={"name": name, "version": vid,
                       "key": "deployment_target", "value": "production"})

    def get_model(self, name):
        return self.c.request("GET", f"{self.API}/registered-models/get?" + urlencode({"name": name}))[1]

    def get_version(self, name, vid):
        return self.c.request("GET", f"{self.API}/model-versions/get?" + urlencode({"name": name, "version": vid}))[1]

    def get_default(self, name):
        return self.c.request("GET", f"{self.API}/registered-models/alias?" + urlencode({"name": name, "alias": "default"}))[1]

    def list_models(self, n=50):
        return self.c.request("GET", f"{self.API}/registered-models/search?" + urlencode({"max_results": n}))[1]

    def list_versions(self, name, n=50, next_token=None):
        q = {"filter": f"name='{name}'", "max_results": n}
        if next_token:
            q["page_token"] = next_token
        d = self.c.request("GET", f"{self.API}/model-versions/search?" + urlencode(q))[1]
        return d.get("model_versions", []), d.get("next_page_token")

    def version_ids(self, items):
        return [str(x["version"]) for x in items]

    def download(self, name, vid, sink):
        mv = self.get_version(name, vid)["model_version"]
        path = mv["source"].split(":", 1)[1].lstrip("/") + "/model.onnx"
        self.c.request("GET", self.ART + quote(path), sink=sink)


# ----------------------------------------------------------------------------- helpers
def pct(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def lat_summary(xs):
    return {"n": len(xs), "p50_ms": round(pct(xs, 50) * 1e3, 2) if xs else None,
            "p99_ms": round(pct(xs, 99) * 1e3, 2) if xs else None,
            "mean_ms": round(statistics.fmean(xs) * 1e3, 2) if xs else None}


def emit(d):
    print(json.dumps(d), flush=True)


def proc_tree(root):
    kids, pids = {}, [root]
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(p))
            except (OSError, IndexError, ValueError):
                pass
    i = 0
    while i < len(pids):
        pids += kids.get(pids[i], [])
        i += 1
    return pids


def proc_status(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_cpu_s(root):
    """utime+stime (s) of the server process tree (incl. reaped children), or None."""
    if not root:
        return None
    tot, hz = 0, os.sysconf("SC_CLK_TCK")
    for p in proc_tree(root):
        try:
            with open(f"/proc/{p}/stat") as f:
                v = f.read().rsplit(")", 1)[1].split()
            tot += sum(int(x) for x in v[11:15])
        except (OSError, ValueError):
            pass
    return tot / hz


class RssSampler(threading.Thread):
    """Samples the summed VmRSS of the server process tree every `dt` s; tracks the peak."""

    def __init__(self, root, dt=0.05):
        super().__init__(daemon=True)
        self.root, self.dt, self.stop_ev = root, dt, threading.Event()
        self.peak_sum = self.peak_one = 0
        self.base_sum = sum(proc_status(p, "VmRSS") for p in proc_tree(root))

    def run(self):
        while not self.stop_ev.is_set():
            rss = [proc_status(p, "VmRSS") for p in proc_tree(self.root)]
            self.peak_sum, self.peak_one = max(self.peak_sum, sum(rss)), max(self.peak_one, max(rss or [0]))
            self.stop_ev.wait(self.dt)

    def result(self):
        self.stop_ev.set()
        self.join()
        return {"server_tree_rss_base_mb": round(self.base_sum / MiB, 1), "server_tree_rss_peak_mb": round(self.peak_sum / MiB, 1),
                "server_tree_rss_delta_mb": round((self.peak_sum - self.base_sum) / MiB, 1),
                "server_max_single_proc_rss_mb": round(self.peak_one / MiB, 1)}


def run_threads(n, fn):
    errs, ts = [], []

    def wrap(i):
        try:
            fn(i)
        except Exception as e:  # noqa: BLE001 - recorded and reported
            errs.append(repr(e)[:300])
    for i in range(n):
        t = threading.Thread(target=wrap, args=(i,))
        t.start()
        ts.append(t)
    for t in ts:
        t.join()
    return errs


def fill_versions(ad, name, n, clients, start=0, size=4096):
    """Creates versions start..start+n-1 of `name` with C clients; returns (ids, latencies, errors, wall_s)."""
    nxt, lock, ids, lats, errs = [start], threading.Lock(), [], [], []

    def worker(_):
        while True:
            with lock:
                i = nxt[0]
                if i >= start + n:
                    return
                nxt[0] += 1
            t0 = time.perf_counter()
            try:
                vid = ad.create_version(name, f"1.{i // 1000}.{i % 1000}", io.BytesIO(os.urandom(size)), size)
            except Exception as e:  # noqa: BLE001
                errs.append(repr(e)[:300])
                continue
            lats.append(time.perf_counter() - t0)
            ids.append(vid)
    t0 = time.perf_counter()
    errs += run_threads(clients, worker)
    return ids, lats, errs, time.perf_counter() - t0


def walk_versions(ad, name, page=50):
    ids, tok = [], None
    while True:
        items, tok = ad.list_versions(name, page, tok)
        ids += ad.version_ids(items)
        if not tok or not items:
            return ids


def timed(reps, fn):
    lats = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        lats.append(time.perf_counter() - t0)
    return lat_summary(lats)


# ----------------------------------------------------------------------------- workloads
def w0(a):
    buf, n = os.urandom(MiB), a.w0_mb
    t0 = time.perf_counter()
    h = hashlib.sha256()
    for _ in range(n):
        h.update(buf)
    sha = n / (time.perf_counter() - t0)
    path = os.path.join(a.scratch, f"w0-disk-{os.getpid()}.bin")
    t0 = time.perf_counter()
    with open(path, "wb") as f:
        for _ in range(n):
            f.write(buf)
        f.flush()
        os.fsync(f.fileno())
    disk = n / (time.perf_counter() - t0)
    os.unlink(path)
    srv = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--target", "sink", "--url", "http://127.0.0.1:0"],
                           stdout=subprocess.PIPE, text=True)
    port = int(srv.stdout.readline())
    c = Client(f"http://127.0.0.1:{port}")
    try:
        small = []
        for _ in range(1000):
            t0 = time.perf_counter()
            c.request("GET", "/small")
            small.append(time.perf_counter() - t0)

        def gen():
            for _ in range(n):
                yield buf
        t0 = time.perf_counter()
        c.request("PUT", "/up", body=gen(), headers={"Content-Length": str(n * MiB)})
        up = n / (time.perf_counter() - t0)
        got = [0]
        t0 = time.perf_counter()
        c.request("GET", f"/down?mb={n}", sink=lambda ch: got.__setitem__(0, got[0] + len(ch)))
        down = n / (time.perf_counter() - t0)
        assert got[0] == n * MiB
    finally:
        srv.terminate()
        srv.wait()
    emit({"workload": "W0", "mb": n, "sha256_MBps_1core": round(sha), "disk_write_fsync_MBps": round(disk),
          "loopback_http_upload_MBps": round(up), "loopback_http_download_MBps": round(down),
          "loopback_http_small_get": lat_summary(small), "cpu_count": os.cpu_count()})


def sink_server():
    """Trivial stdlib HTTP/1.1 server for W0: PUT discards the body, GET /down?mb=N streams N MiB."""
    buf = os.urandom(MiB)

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def setup(self):  # without TCP_NODELAY, headers+body in 2 writes hit the 40 ms delayed-ACK stall
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            super().setup()

        def do_PUT(self):
            left = int(self.headers["Content-Length"])
            while left:
                left -= len(self.rfile.read(min(left, MiB)))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self):
            mb = int(self.path.split("mb=")[1]) if "mb=" in self.path else 0
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(mb * MiB if mb else 2))
            self.end_headers()
            if not mb:
                self.wfile.write(b"ok")
            for _ in range(mb):
                self.wfile.write(buf)
    s = ThreadingHTTPServer(("127.0.0.1", 0), H)
    print(s.server_address[1], flush=True)
    s.serve_forever()


def w1(a, ad, st):
    name = st["model"] = f"{a.prefix}-w1-{uuid.uuid4().hex[:6]}"
    ad.create_model(name)
    cpu0 = tree_cpu_s(a.server_pid)
    ids, lats, errs, wall = fill_versions(ad, name, a.n, a.clients)
    cpu1 = tree_cpu_s(a.server_pid)
    st["ids"] = ids
    t0 = time.perf_counter()
    ad.set_default(name, ids[-1] if ids else "1")
    dep = time.perf_counter() - t0
    emit({"workload": "W1", "target": a.target, "keepalive": Client.keepalive, "model": name, "n": a.n, "clients": a.clients, "ok": len(ids),
          "errors": len(errs), "error_sample": errs[:3], "wall_s": round(wall, 2),
          "versions_per_s": round(len(ids) / wall, 1), "latency": lat_summary(lats),
          "set_default_ms": round(dep * 1e3, 1),
          "server_cpu_ms_per_version": round((cpu1 - cpu0) * 1e3 / max(1, len(ids)), 2) if cpu0 is not None else None})


def w2(a, ad, st):
    name = st.get("model") or a.model
    if not name:
        sys.exit("W2 needs W1 in the same run or --model NAME")
    ids = st.get("ids") or walk_versions(ad, name)
    ops = {"get_version": lambda r: ad.get_version(name, r.choice(ids)),
           "list_versions_50": lambda r: ad.list_versions(name, 50),
           "get_default": lambda r: ad.get_default(name),
           "list_models_50": lambda r: ad.list_models(50)}
    weights = [0.4, 0.3, 0.2, 0.1]
    lats = {k: [] for k in ops}
    errs, deadline = [], time.perf_counter() + a.seconds
    names = list(ops)

    def worker(i):
        r = random.Random(i)
        while time.perf_counter() < deadline:
            op = r.choices(names, weights)[0]
            t0 = time.perf_counter()
            try:
                ops[op](r)
            except Exception as e:  # noqa: BLE001
                errs.append(f"{op}: {e!r}"[:300])
                continue
            lats[op].append(time.perf_counter() - t0)
    cpu0 = tree_cpu_s(a.server_pid)
    t0 = time.perf_counter()
    errs += run_threads(a.clients, worker)
    wall = time.perf_counter() - t0
    cpu1 = tree_cpu_s(a.server_pid)
    total = sum(len(v) for v in lats.values())
    emit({"workload": "W2", "target": a.target, "keepalive": Client.keepalive, "model": name, "versions_in_model": len(ids), "clients": a.clients,
          "seconds": round(wall, 1), "req_per_s": round(total / wall, 1), "errors": len(errs), "error_sample": errs[:3],
          "ops": {k: lat_summary(v) for k, v in lats.items()},
          "server_cpu_ms_per_req": round((cpu1 - cpu0) * 1e3 / max(1, total), 2) if cpu0 is not None else None})


def w3(a, ad, st):
    reps, tag = a.reps, uuid.uuid4().hex[:6]
    out = {"workload": "W3", "target": a.target, "keepalive": Client.keepalive, "reps": a.reps, "points": {}}

    def measure(label, name, ids):
        r = random.Random(1)
        pt = {"versions": len(ids),
              "get_model": timed(reps, lambda: ad.get_model(name)),
              "get_version": timed(reps, lambda: ad.get_version(name, r.choice(ids))),
              "get_default": timed(reps, lambda: ad.get_default(name)),
              "list_versions_first50": timed(reps, lambda: ad.list_versions(name, 50)),
              "list_models_first50": timed(reps, lambda: ad.list_models(50))}
        t0 = time.perf_counter()
        n = len(walk_versions(ad, name, 50))
        pt["walk_all_versions_pages50"] = {"s": round(time.perf_counter() - t0, 2), "seen": n}
        out["points"][label] = pt
        emit({"workload": "W3-point", "target": a.target, "point": label, **pt})

    fill_s = {}
    for label, nv in (("small", a.small), ("big", a.big)):
        name = f"{a.prefix}-w3{label}-{tag}"
        ad.create_model(name)
        ids, _, errs, wall = fill_versions(ad, name, nv, a.clients, size=a.w3_file)
        fill_s[label] = {"versions": len(ids), "errors": len(errs), "wall_s": round(wall, 1),
                         "versions_per_s": round(len(ids) / wall, 1), "error_sample": errs[:2]}
        ad.set_default(name, ids[-1])
        measure(f"{label}_model_{nv}_versions", name, ids)
        st[label] = (name, ids)
    # many models: create a.models bare models (each with 1 version), then re-measure on the small model
    names = [f"{a.prefix}-w3m-{tag}-{i:05d}" for i in range(a.models)]
    nxt, lock = [0], threading.Lock()

    def mk(_):
        while True:
            with lock:
                if nxt[0] >= len(names):
                    return
                nm = names[nxt[0]]
                nxt[0] += 1
            ad.create_model(nm)
            ad.create_version(nm, "1.0.0", io.BytesIO(os.urandom(a.w3_file)), a.w3_file)
    t0 = time.perf_counter()
    errs = run_threads(a.clients, mk)
    fill_s["models"] = {"models": a.models, "errors": len(errs), "wall_s": round(time.perf_counter() - t0, 1), "error_sample": errs[:2]}
    name, ids = st["small"]
    measure(f"small_model_after_{a.models}_more_models", name, ids)
    out["fill"] = fill_s
    emit(out)


def w4(a, ad, st):
    path, size = a.big_file, a.big_mb * MiB
    if not (os.path.exists(path) and os.path.getsize(path) == size):
        with open(path, "wb") as f:
            for _ in range(a.big_mb):
                f.write(os.urandom(MiB))
    h = hashlib.sha256()
    with open(path, "rb") as f:  # also warms the page cache so the upload reads from RAM
        while chunk := f.read(MiB):
            h.update(chunk)
    want = h.hexdigest()
    name = f"{a.prefix}-w4-{uuid.uuid4().hex[:6]}"
    ad.create_model(name)
    res = {"workload": "W4", "target": a.target, "mb": a.big_mb, "model": name}
    samp = RssSampler(a.server_pid) if a.server_pid else None
    samp and samp.start()
    cpu0 = tree_cpu_s(a.server_pid)
    t0 = time.perf_counter()
    with open(path, "rb") as f:
        vid = ad.create_version(name, "9.9.9", f, size)
    up = time.perf_counter() - t0
    cpu1 = tree_cpu_s(a.server_pid)
    res.update({"upload_s": round(up, 2), "upload_MBps": round(a.big_mb / up, 1)})
    if samp:
        res["upload_rss"] = samp.result()
        res["upload_server_cpu_s"] = round(cpu1 - cpu0, 2)
        samp = RssSampler(a.server_pid)
        samp.start()
    h, got = hashlib.sha256(), [0]

    def sink(ch):
        got[0] += len(ch)
        a.no_verify or h.update(ch)
    t0 = time.perf_counter()
    ad.download(name, vid, sink)
    down = time.perf_counter() - t0
    res.update({"download_s": round(down, 2), "download_MBps": round(a.big_mb / down, 1), "download_bytes_ok": got[0] == size,
                "sha256_ok": None if a.no_verify else h.hexdigest() == want})
    if samp:
        res["download_rss"] = samp.result()
        res["server_max_VmHWM_mb"] = round(max(proc_status(p, "VmHWM") for p in proc_tree(a.server_pid)) / MiB, 1)
    emit(res)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", choices=["seed", "mlflow", "none", "sink"], default="none",
                    help="'none' = only W0 (no server needed)")
    ap.add_argument("--url", default="http://127.0.0.1:8000", help="base URL (seed: include any /api prefix)")
    ap.add_argument("--workloads", default="w1,w2,w3,w4", help="comma list of w0..w4")
    ap.add_argument("--server-pid", type=int, help="root PID of the server (RSS + CPU of its whole process tree)")
    ap.add_argument("-n", type=int, default=2000, help="W1 versions")
    ap.add_argument("-c", "--clients", type=int, default=4, help="concurrent client threads (W1/W2/W3 fill)")
    ap.add_argument("-t", "--seconds", type=float, default=15, help="W2 duration")
    ap.add_argument("--model", help="W2 without W1: existing model name")
    ap.add_argument("--small", type=int, default=100, help="W3 versions in the small model")
    ap.add_argument("--big", type=int, default=10000, help="W3 versions in the big model")
    ap.add_argument("--models", type=int, default=1000, help="W3 extra models")
    ap.add_argument("--reps", type=int, default=50, help="W3 sequential requests per op per point")
    ap.add_argument("--w3-file", type=int, default=4096, help="W3 fill file size (bytes)")
    ap.add_argument("--big-mb", type=int, default=1024, help="W4 file size (MiB)")
    ap.add_argument("--big-file", default=os.path.join(os.environ.get("PEER", tempfile.gettempdir()), "bench-big.bin"), help="W4 file (created from os.urandom if absent)")
    ap.add_argument("--no-verify", action="store_true", help="W4: skip sha256 of the download")
    ap.add_argument("--w0-mb", type=int, default=1024, help="W0 stream size (MiB)")
    ap.add_argument("--scratch", default=os.environ.get("PEER", tempfile.gettempdir()), help="W0 disk test directory")
    ap.add_argument("--no-keepalive", action="store_true",
                    help="new TCP connection per request (uvicorn --workers>1 lacks TCP_NODELAY: +40 ms/keep-alive req)")
    ap.add_argument("--prefix", default="bench", help="model name prefix")
    ap.add_argument("--seed-slash", action="store_true", help="seed: append '/' to paths (Django APPEND_SLASH style)")
    ap.add_argument("--seed-page-query", default="page_size={n}", help="seed: page-size query, e.g. 'limit={n}'")
    ap.add_argument("--seed-download", default="/models/{name}/versions/{version}/file", help="seed: download path template")
    a = ap.parse_args()
    if a.target == "sink":
        return sink_server()
    Client.keepalive = not a.no_keepalive
    wl = [w.strip().lower() for w in a.workloads.split(",") if w.strip()]
    if a.target == "none":
        wl = ["w0"]
    ad = {"seed": SeedAdapter, "mlflow": MlflowAdapter}.get(a.target)
    ad = ad(a.url, a) if ad else None
    st = {}
    for w in wl:
        {"w0": lambda: w0(a), "w1": lambda: w1(a, ad, st), "w2": lambda: w2(a, ad, st),
         "w3": lambda: w3(a, ad, st), "w4": lambda: w4(a, ad, st)}[w]()


if __name__ == "__main__":
    main()
