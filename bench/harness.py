#!/usr/bin/env python3
"""SaferLink against Mosquitto, side by side, on this machine (shared/SPEC.md section 6).

    bench/harness.py --build DIR [--scale full|quick|smoke] [--md FILE] [--json FILE]

Starts every server itself on loopback ports it picks (the SaferLink hub from DIR/server, Debian's
mosquitto with a generated configuration), both over mutual TLS 1.3 with certificates from one CA
(DIR/bench/bench-certs), runs the load clients (DIR/bench/saferlink_load, DIR/bench/mqtt_load),
samples each server's CPU and resident memory from /proc, stops everything, and writes the
results: a Markdown report and the raw JSON. Exit status 0 when every workload ran and reported;
it never judges a time. Python standard library only.
"""

import argparse
import datetime
import json
import os
import platform
import queue
import re
import resource
import shutil
import signal
import socket
import sqlite3
import statistics
import struct
import subprocess
import sys
import threading
import time
import zlib

# What each scale runs. `full` is what docs/benchmarks.md quotes (under 10 minutes on 2 cores),
# `quick` under 2 minutes, `smoke` is the CTest check that everything runs and reports.
SCALES = {
    "full": dict(fanout_handsets=1000, rate=5, rate_spec=50, spec_s=3, spec_drain_s=20, fanout_s=8, warmup_s=2, reps=3, tput_s=5,
                 window=32, conn_handsets=10000, conn_reps=2, photo_handsets=500,
                 photo_bytes=5 * 1024 * 1024, photo_base_s=5, forms_s=5, forms_conns=8,
                 forms_window=64, incidents=1_000_000, profiles=20_000, query_reps=5),
    "quick": dict(fanout_handsets=200, rate=5, rate_spec=50, spec_s=2, spec_drain_s=10, fanout_s=4, warmup_s=1, reps=2, tput_s=3,
                  window=32, conn_handsets=1000, conn_reps=2, photo_handsets=100,
                  photo_bytes=5 * 1024 * 1024, photo_base_s=3, forms_s=3, forms_conns=8,
                  forms_window=64, incidents=100_000, profiles=5_000, query_reps=3),
    "smoke": dict(fanout_handsets=20, rate=5, rate_spec=50, spec_s=1, spec_drain_s=5, fanout_s=1, warmup_s=0.5, reps=1, tput_s=1,
                  window=8, conn_handsets=30, conn_reps=1, photo_handsets=5,
                  photo_bytes=1024 * 1024, photo_base_s=1, forms_s=1, forms_conns=2,
                  forms_window=16, incidents=5_000, profiles=500, query_reps=2),
}
TOWN = "chatham"
FD_LIMIT = 65536
LOAD_PROCS = 2  # load generators for the connection workloads (see one_storm)


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raise_fd_limit():
    """Raises RLIMIT_NOFILE for us and every process we start (they inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# ---- /proc sampling --------------------------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def proc_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Sampler:
    """Samples a process's CPU and RSS every 100 ms on a thread until stop()."""

    def __init__(self, pid):
        self.pid, self.samples, self._stop = pid, [], threading.Event()
        self.t0, self.cpu0 = time.monotonic(), self._cpu()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _cpu(self):
        try:
            return proc_cpu_s(self.pid)
        except OSError:
            return None

    def _run(self):
        while not self._stop.wait(0.1):
            try:
                self.samples.append(proc_rss_kib(self.pid))
            except OSError:
                return

    def stop(self):
        cpu1 = self._cpu()
        self._stop.set()
        self.thread.join()
        wall = time.monotonic() - self.t0
        cpu = (cpu1 - self.cpu0) if (cpu1 is not None and self.cpu0 is not None) else None
        return {"cpu_s": cpu, "wall_s": wall,
                "cpu_pct": (100.0 * cpu / wall) if cpu is not None and wall > 0 else None,
                "rss_max_kib": max(self.samples) if self.samples else None}


# ---- servers -----------------------------------------------------------------------------------

class Server:
    def __init__(self, name, argv, port, log_path, ready_line=None):
        self.name, self.argv, self.port, self.log_path = name, argv, port, log_path
        self.ready_line, self.proc = ready_line, None

    def start(self):
        self.log = open(self.log_path, "ab")
        self.started_ns = time.monotonic_ns()
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=self.log)
        deadline = time.monotonic() + 60
        if self.ready_line:
            line = self.proc.stdout.readline().decode()
            if not line.startswith(self.ready_line):
                raise RuntimeError(f"{self.name} did not start (see {self.log_path})")
        while time.monotonic() < deadline:  # accepting connections?
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited at start (see {self.log_path})")
                time.sleep(0.02)
        return self

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()
        self.log.close()


class Bench:
    def __init__(self, args):
        self.args = args
        self.s = SCALES[args.scale]
        self.build = os.path.abspath(args.build)
        self.work = os.path.abspath(args.work or os.path.join(self.build, "bench-work"))
        os.makedirs(self.work, exist_ok=True)
        self.pki = os.path.join(self.build, "bench-pki")  # kept: issuing is the slow part
        self.hub_bin = os.path.join(self.build, "server", "saferlink-hub")
        self.cli_bin = os.path.join(self.build, "client", "saferlink")
        self.sl_load = os.path.join(self.build, "bench", "saferlink_load")
        self.mq_load = os.path.join(self.build, "bench", "mqtt_load")
        self.mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.results = {}
        self.run_id = 0

    # -- set-up --

    def certs(self):
        need = max(self.s["conn_handsets"], self.s["fanout_handsets"], self.s["photo_handsets"])
        out = subprocess.run([os.path.join(self.build, "bench", "bench-certs"), "--dir", self.pki,
                              "--handsets", str(need), "--town", TOWN],
                             check=True, capture_output=True, text=True)
        log(f"certificates: {out.stdout.strip()}")

    def fresh_dir(self, name):
        self.run_id += 1
        d = os.path.join(self.work, f"{self.run_id:02d}-{name}")
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        return d

    def hub(self, d, db=None):
        port = free_port()
        cfg = os.path.join(d, "hub.toml")
        with open(cfg, "w") as f:
            # Alerts to the bench's shops are never acknowledged: no escalation during a run.
            # Queues are raised as Mosquitto's are, so that neither side drops under load.
            f.write("[alerts]\nescalation_interval_ms = 3600000\n"
                    "[limits]\nqueue_max_bytes = 268435456\nqueue_max_messages = 1000000\n"
                    "[timeouts]\nhandshake_ms = 30000\n")
        argv = [self.hub_bin, "--config", cfg, "--certs", self.pki, "--db", db or os.path.join(d, "hub.db"),
                "--listen", f"127.0.0.1:{port}"]
        return Server("saferlink-hub", argv, port, os.path.join(d, "hub.log"), ready_line="listening")

    def mosquitto_server(self, d):
        port = free_port()
        cfg = os.path.join(d, "mosquitto.conf")
        lines = [
            "per_listener_settings false", "persistence false", "log_dest stderr",
            "log_type error", "log_type warning",
            "max_queued_messages 1000000", "max_queued_bytes 0", "max_inflight_messages 20",
            "set_tcp_nodelay true", "allow_anonymous true", "max_keepalive 65535",
            f"listener {port} 127.0.0.1",
            f"cafile {self.pki}/ca.crt", f"certfile {self.pki}/issued/hub.crt",
            f"keyfile {self.pki}/issued/hub.key", f"crlfile {self.pki}/crl.pem",
            "require_certificate true", "tls_version tlsv1.3",
        ]
        if os.geteuid() == 0:
            lines.insert(0, "user root")  # the keys are root's; mosquitto would drop to its user
        with open(cfg, "w") as f:
            f.write("\n".join(lines) + "\n")
        return Server("mosquitto", [self.mosquitto, "-c", cfg], port, os.path.join(d, "mosquitto.log"))

    def load(self, argv, on_line=None, timeout=600):
        """Runs a load client; returns its final JSON (its last stdout line)."""
        log(" ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(argv)))
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=sys.stderr, text=True)
        last = None
        for line in proc.stdout:
            line = line.strip()
            if line.startswith("{"):
                last = json.loads(line)
            elif on_line:
                on_line(line)
        rc = proc.wait(timeout)
        if rc != 0 or last is None:
            raise RuntimeError(f"{os.path.basename(argv[0])} failed (exit {rc})")
        return last

    def sl_common(self, server):
        return ["--hub", f"127.0.0.1:{server.port}", "--certs", self.pki, "--timeout", "60"]

    def mq_common(self, server):
        return ["--broker", f"127.0.0.1:{server.port}", "--certs", self.pki, "--timeout", "60"]

    def with_server(self, server, fn):
        server.start()
        sampler = Sampler(server.pid)
        try:
            result = fn(server)
        finally:
            result_server = sampler.stop()
            server.stop()
        result["server"] = result_server
        return result

    # -- workloads --

    def fanout(self, mode, spec=False):
        """`fanout` at the sustainable rate (several repetitions), at the specification's rate
        (`spec`: one repetition, then as long as the backlog takes to drain), or `throughput`."""
        s = self.s
        flags = ["--handsets", str(s["fanout_handsets"]),
                 "--rate", str(s["rate_spec"] if spec else s["rate"]),
                 "--warmup", str(s["warmup_s"]), "--reps", "1" if spec else str(s["reps"]),
                 "--seconds", str(s["spec_s"] if spec else s["fanout_s"] if mode == "fanout" else s["tput_s"]),
                 "--drain", str(s["spec_drain_s"] if spec else 2),
                 "--window", str(s["window"]), "--payload", "200"]
        key = "fanout_spec" if spec else mode
        out = {}
        d = self.fresh_dir(f"{key}-saferlink")
        out["saferlink"] = self.with_server(self.hub(d), lambda srv: self.load(
            [self.sl_load, "--mode", mode] + self.sl_common(srv) + flags))
        d = self.fresh_dir(f"{key}-mosquitto")
        out["mosquitto"] = self.with_server(self.mosquitto_server(d), lambda srv: self.load(
            [self.mq_load, "--mode", mode] + self.mq_common(srv) + flags))
        self.results[key] = out

    def connect_storm(self):
        s = self.s
        out = {"saferlink": [], "mosquitto": []}
        for rep in range(s["conn_reps"]):
            for system in ("saferlink", "mosquitto"):
                d = self.fresh_dir(f"connect-{system}-{rep + 1}")
                out[system].append(self.one_storm(system, d))
        self.results["connect"] = out

    def one_storm(self, system, d):
        """Connects every handset, measures the server's memory, restarts the server under them and
        times their return. The handsets are split over LOAD_PROCS load generators (each one thread):
        a libmosquitto client holds three descriptors (its socket and a socket pair), and 10,000 of
        them would pass this machine's descriptor limit in one process. Both systems get the same
        split."""
        n = self.s["conn_handsets"]
        procs_n = LOAD_PROCS if n >= LOAD_PROCS else 1
        server = self.hub(d) if system == "saferlink" else self.mosquitto_server(d)
        server.start()
        time.sleep(0.5)
        rss_base = proc_rss_kib(server.pid)
        sampler = Sampler(server.pid)
        record = {"rss_base_kib": rss_base, "load_procs": procs_n}
        load_bin = self.sl_load if system == "saferlink" else self.mq_load
        common = self.sl_common(server) if system == "saferlink" else self.mq_common(server)
        common[common.index("--timeout") + 1] = "240"  # 10,000 handshakes on a busy machine
        lines = queue.Queue()
        procs = []
        share = n // procs_n
        try:
            for k in range(procs_n):
                count = share if k < procs_n - 1 else n - share * (procs_n - 1)
                argv = [load_bin, "--mode", "connect", "--handsets", str(count), "--first", str(k * share),
                        "--storms", "1", "--concurrency", str(512 // procs_n)] + common
                log(" ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(argv)))
                proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=sys.stderr, text=True)
                procs.append(proc)
                threading.Thread(target=lambda p=proc, k=k: [lines.put((k, l.strip())) for l in p.stdout]
                                 + [lines.put((k, None))], daemon=True).start()

            def wait_for(prefix):
                got = {}
                while len(got) < procs_n:
                    k, line = lines.get(timeout=600)
                    if line is None:
                        if k not in got:
                            raise RuntimeError(f"{system}: a load generator ended early")
                        continue
                    if line.startswith(prefix):
                        got[k] = json.loads(line.split(" ", 1)[1])
                    elif line.startswith("{"):
                        record.setdefault("final", {})[k] = json.loads(line)
                return [got[k] for k in sorted(got)]

            ready = wait_for("READY")
            record["connect_s"] = max(x["connect_s"] for x in ready)
            record["connect"] = ready
            time.sleep(1.0)  # let the last sessions settle
            record["rss_connected_kib"] = proc_rss_kib(server.pid)
            record["rss_per_conn_kib"] = (record["rss_connected_kib"] - rss_base) / n
            record["server_connect"] = sampler.stop()
            record["restart_at_ns"] = time.monotonic_ns()
            server.stop()
            new = self.hub(d) if system == "saferlink" else self.mosquitto_server(d)
            new.port = server.port
            if system == "saferlink":
                new.argv[new.argv.index("--listen") + 1] = f"127.0.0.1:{server.port}"
            else:
                new.argv = [self.mosquitto, "-c", self.rewrite_port(d, server.port)]
            server = new.start()
            record["server_up_ns"] = time.monotonic_ns()
            sampler = Sampler(server.pid)
            back = wait_for("BACK")
            last = max(x["all_back_mono_ns"] for x in back)
            record["storm"] = back
            record["on_air"] = sum(x["on_air"] for x in back)
            record["failed_attempts"] = sum(x["failed_attempts"] for x in back)
            record["back_s"] = (last - record["restart_at_ns"]) / 1e9
            record["back_after_up_s"] = (last - record["server_up_ns"]) / 1e9
            record["server_storm"] = sampler.stop()
            for proc in procs:
                if proc.wait(120) != 0:
                    raise RuntimeError(f"{os.path.basename(load_bin)} failed (exit {proc.returncode})")
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
            server.stop()
        if record["on_air"] < n:
            raise RuntimeError(f"{system}: only {record['on_air']} of {n} came back after the restart")
        record["load_cpu_pct"] = sum(x["load_cpu"]["cpu_pct"] for x in record["connect"])
        log(f"{system}: {n} connected in {record['connect_s']:.2f} s, "
            f"{record['rss_per_conn_kib']:.1f} KiB per connection, back {record['back_s']:.2f} s after the restart")
        return record

    def rewrite_port(self, d, port):
        cfg = os.path.join(d, "mosquitto.conf")
        with open(cfg) as f:
            text = f.read()
        text = re.sub(r"^listener \d+ ", f"listener {port} ", text, flags=re.M)
        with open(cfg, "w") as f:
            f.write(text)
        return cfg

    def cli(self, srv, who, *args):
        argv = [self.cli_bin, "--hub", f"127.0.0.1:{srv.port}", "--certs", self.pki, "--id", who] + list(args)
        out = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"saferlink {' '.join(args[:2])}: {out.stderr.strip()}")
        return out.stdout

    def photo_png(self, size):
        """A valid PNG of about `size` bytes of noise (so it does not compress)."""
        path = os.path.join(self.work, f"photo-{size}.png")
        if os.path.exists(path):
            return path
        width = 1024
        height = max(1, size // (3 * width + 1))
        rows = b"".join(b"\x00" + os.urandom(3 * width) for _ in range(height))

        def chunk(kind, data):
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

        png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
               + chunk(b"IDAT", zlib.compress(rows, 1)) + chunk(b"IEND", b""))
        with open(path, "wb") as f:
            f.write(png)
        return path

    def seed_gallery_photo(self, srv, d):
        """Puts a photo in every chatham handset's gallery the way a partnership does: upload,
        a form, a profile, a notice proposed by one coordinator, approved by another, served."""
        png = self.photo_png(self.s["photo_bytes"])
        up = json.loads(self.cli(srv, "bench-coord-1", "upload", png, "--json"))
        sha = up["stored_sha256"]
        form = os.path.join(d, "form.json")
        with open(form, "w") as f:
            json.dump({"form_id": "bench-photo-form", "occurred_at_ms": int(time.time() * 1000) - 3_600_000,
                       "town": TOWN, "premises": "Bench premises", "category": "theft_from_shop",
                       "description": "seeded for the photo benchmark"}, f)
        self.cli(srv, "bench-coord-1", "report", form, "--json")
        prof = json.loads(self.cli(srv, "bench-coord-1", "coord", "profiles", "create", "--name",
                                   "Bench Subject", "--from-form", "bench-photo-form", "--json"))
        notice = json.loads(self.cli(srv, "bench-coord-1", "coord", "notice", "propose", "--profile",
                                     str(prof["profile_id"]), "--incident", "bench-photo-form",
                                     "--conditions", "not to enter member premises", "--towns", "all",
                                     "--photo", sha, "--reason", "benchmark", "--json"))
        nid = str(notice["notice_id"])
        self.cli(srv, "bench-coord-2", "coord", "notice", "approve", nid, "--reason", "benchmark", "--json")
        self.cli(srv, "bench-coord-1", "coord", "notice", "serve", nid, "--reason", "benchmark", "--json")
        return sha, up.get("size", os.path.getsize(png))

    def photo(self):
        s = self.s
        flags = ["--handsets", str(s["photo_handsets"]), "--rate", str(s["rate"]),
                 "--warmup", str(s["warmup_s"]), "--reps", str(s["reps"]),
                 "--seconds", str(s["photo_base_s"]), "--payload", "200"]
        out = {}
        d = self.fresh_dir("photo-saferlink")

        def sl(srv):
            sha, size = self.seed_gallery_photo(srv, d)
            r = self.load([self.sl_load, "--mode", "photo", "--photo", sha] + self.sl_common(srv) + flags)
            r["photo_size"] = size
            return r

        out["saferlink"] = self.with_server(self.hub(d), sl)
        d = self.fresh_dir("photo-mosquitto")
        out["mosquitto"] = self.with_server(self.mosquitto_server(d), lambda srv: dict(self.load(
            [self.mq_load, "--mode", "photo", "--photo-bytes", str(s["photo_bytes"])]
            + self.mq_common(srv) + flags), photo_size=s["photo_bytes"]))
        self.results["photo"] = out

    def forms(self):
        s = self.s
        d = self.fresh_dir("forms-saferlink")
        self.results["forms"] = {"saferlink": self.with_server(self.hub(d), lambda srv: self.load(
            [self.sl_load, "--mode", "forms", "--conns", str(s["forms_conns"]), "--window",
             str(s["forms_window"]), "--warmup", str(s["warmup_s"]), "--seconds", str(s["forms_s"]),
             "--reps", str(s["reps"])] + self.sl_common(srv)))}

    def prolific_db(self):
        """A database with the hub's schema and `incidents` forms linked to `profiles` profiles
        over the last 12 months, kept between runs (seeding is the slow part)."""
        n, p = self.s["incidents"], self.s["profiles"]
        template = os.path.join(self.build, f"bench-prolific-{n}.db")
        if os.path.exists(template):
            return template
        d = self.fresh_dir("prolific-seed")
        tmp = os.path.join(d, "seed.db")
        srv = self.hub(d, db=tmp).start()  # the hub creates the schema
        srv.stop()
        t0 = time.monotonic()
        now = int(time.time() * 1000)
        year = 365 * 24 * 3600 * 1000
        con = sqlite3.connect(tmp)
        con.executescript(f"""
            PRAGMA synchronous=OFF;
            BEGIN;
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {p})
            INSERT INTO profiles (profile_id, name, description, violent, weapons, created_at_ms,
                                  created_by, updated_at_ms)
            SELECT i, 'Seeded Subject ' || i, '', i % 7 = 0, i % 11 = 0, {now}, 'bench-seed', {now} FROM n;
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n})
            INSERT INTO incident_forms (form_id, reporter_id, reporter_role, reporter_member, town,
                                        premises, occurred_at_ms, category, description, received_at_ms)
            SELECT printf('seed-%08d', i), printf('hs-%05d', i % 2000), 'shop',
                   printf('Seed Member %d', i % 400),
                   CASE i % 5 WHEN 0 THEN 'rochester' WHEN 1 THEN 'strood' WHEN 2 THEN 'chatham'
                              WHEN 3 THEN 'gillingham' ELSE 'rainham' END,
                   'Seeded premises', {now} - 60000 - ((i * 7919) % ({year} - 120000)),
                   CASE WHEN i % 10 = 0 THEN 'violence_or_threats' ELSE 'theft_from_shop' END,
                   'seeded incident', {now} FROM n;
            INSERT INTO form_profiles (form_id, profile_id, linked_at_ms, linked_by)
            SELECT form_id, ((rowid * 104729) % {p}) + 1, {now}, 'bench-seed' FROM incident_forms
            WHERE form_id LIKE 'seed-%';
            COMMIT;
            PRAGMA wal_checkpoint(TRUNCATE);
        """)
        con.close()
        shutil.move(tmp, template)
        log(f"seeded {n} incidents over {p} profiles in {time.monotonic() - t0:.1f} s")
        return template

    def prolific(self):
        template = self.prolific_db()
        d = self.fresh_dir("prolific-saferlink")
        db = os.path.join(d, "hub.db")
        shutil.copy(template, db)
        r = self.with_server(self.hub(d, db=db), lambda srv: self.load(
            [self.sl_load, "--mode", "query", "--reps", str(self.s["query_reps"])] + self.sl_common(srv)))
        r["incidents"] = self.s["incidents"]
        r["profiles"] = self.s["profiles"]
        self.results["prolific"] = {"saferlink": r}

    # -- the whole run --

    def run(self):
        t0 = time.monotonic()
        self.load_before = os.getloadavg()[0]
        self.fd_limit = raise_fd_limit()
        self.certs()
        steps = [("fanout", lambda: self.fanout("fanout")),
                 ("fanout_spec", lambda: self.fanout("fanout", spec=True)),
                 ("throughput", lambda: self.fanout("throughput")),
                 ("photo", self.photo), ("connect", self.connect_storm),
                 ("forms", self.forms), ("prolific", self.prolific)]
        only = set(self.args.only.split(",")) if self.args.only else None
        for name, step in steps:
            if only and name not in only:
                continue
            log(f"--- {name} ---")
            try:
                step()
            except (RuntimeError, subprocess.CalledProcessError, OSError, queue.Empty) as e:
                log(f"{name} failed: {e}")  # the report then lists it as missing; exit 1
        self.elapsed = time.monotonic() - t0
        return self.report()

    # -- the report --

    def machine(self):
        def cmd(*argv):
            try:
                return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
            except OSError:
                return ""

        mem_kib = 0
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem_kib = int(line.split()[1])
        cpu = ""
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        boost = ""
        try:
            with open("/usr/include/boost/version.hpp") as f:
                m = re.search(r'BOOST_LIB_VERSION "([\d_]+)"', f.read())
                boost = m.group(1).replace("_", ".") if m else ""
        except OSError:
            pass
        mosq = cmd(self.mosquitto, "-h").splitlines()
        db_fs = cmd("df", "-T", self.work).splitlines()
        return {
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "nproc": os.cpu_count(), "cpu": cpu, "memory_gib": round(mem_kib / 1048576, 1),
            "kernel": platform.release(),
            "os": cmd("sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"),
            "mosquitto": mosq[0] if mosq else "", "libmosquitto": cmd("dpkg-query", "-W", "-f=${Version}", "libmosquitto1"),
            "openssl": cmd("openssl", "version"), "boost": boost,
            "compiler": cmd("c++", "--version").splitlines()[0] if cmd("c++", "--version") else "",
            "sqlite": cmd("sqlite3", "--version").split(" ")[0],
            "fd_limit": self.fd_limit,
            "loadavg_before": round(self.load_before, 2), "loadavg_after": round(os.getloadavg()[0], 2),
            "db_filesystem": db_fs[-1].split()[1] if len(db_fs) > 1 else "",
        }

    def report(self):
        doc = {"scale": self.args.scale, "parameters": self.s, "machine": self.machine(),
               "elapsed_s": self.elapsed, "results": self.results}
        if self.args.json:
            os.makedirs(os.path.dirname(os.path.abspath(self.args.json)), exist_ok=True)
            with open(self.args.json, "w") as f:
                json.dump(doc, f, indent=1, sort_keys=True)
        absent = [w for w in WORKLOADS if w not in self.results]
        md = render(doc, self.args.json)
        if absent:
            md += f"\n**Incomplete run**: no results for {', '.join(absent)}.\n"
        if self.args.md:
            with open(self.args.md, "w") as f:
                f.write(md)
        missing = [w for w in WORKLOADS if w not in self.results and (not self.args.only or w in self.args.only.split(","))]
        if missing:
            log(f"workloads without results: {', '.join(missing)}")
            return 1
        if EMPTY_CELLS:
            log(f"{len(EMPTY_CELLS)} summary figures are empty: see the report")
            return 1
        log(f"done in {self.elapsed:.0f} s")
        return 0


WORKLOADS = ["fanout", "fanout_spec", "throughput", "photo", "connect", "forms", "prolific"]


# ---- rendering -------------------------------------------------------------------------------

NAMES = {"saferlink": "SaferLink", "mosquitto": "Mosquitto"}
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def json_label(path):
    path = os.path.abspath(path)
    return os.path.relpath(path, REPO) if path.startswith(REPO + os.sep) else os.path.basename(path)


def med(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None, None
    return statistics.median(values), min(values), max(values)


def fmt(x, digits=2):
    if x is None:
        return "—"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def mmm(values, digits=2, unit=""):
    m, lo, hi = med(values)
    if m is None:
        return "—"
    if len([v for v in values if v is not None]) == 1:
        return f"{fmt(m, digits)}{unit}"
    return f"{fmt(m, digits)}{unit} ({fmt(lo, digits)}–{fmt(hi, digits)})"


EMPTY_CELLS = []  # summary figures that came out empty (the run then fails)


def need(*values):
    for v in values:
        if v is None:
            EMPTY_CELLS.append(v)
    return values


def ratio(a, b, higher_better):
    if a is None or b is None or a == 0 or b == 0:
        return "—"
    r = (a / b) if higher_better else (b / a)
    return f"{r:.2f}×"


def health(res):
    lost, inc = res.get("connections_lost"), res.get("alerts_incomplete")
    parts = []
    if lost is not None:
        parts.append(f"handset connections lost {lost}")
    if inc is not None:
        parts.append(f"alerts not complete within the drain {inc}")
    return ("; " + ", ".join(parts)) if parts else ""


def cpu_line(server, load_cpus):
    s = f"server {fmt(server.get('cpu_pct'), 0)} % CPU, max RSS {fmt((server.get('rss_max_kib') or 0) / 1024, 1)} MiB"
    load = med([c.get("cpu_pct") for c in load_cpus])[0]
    return s + f"; load generator {fmt(load, 0)} % of one core"


def render(doc, json_path):
    m, p, r = doc["machine"], doc["parameters"], doc["results"]
    out = []
    w = out.append
    w("# Benchmarks: SaferLink and Mosquitto side by side\n")
    w("Written by `bench/harness.py` from the run described below (`./run bench`"
      + (", here at the `" + doc["scale"] + "` scale" if doc["scale"] != "full" else "") + "). "
      "Do not edit by hand: run it again. The raw figures are in "
      + (f"`{json_label(json_path)}`" if json_path else "the JSON file")
      + ". Targets are those of shared/SPEC.md section 6.\n")
    w("## The run\n")
    w("| | |\n|---|---|")
    w(f"| date | {m['date']} |")
    w(f"| machine | {m['nproc']} cores ({m['cpu']}), {m['memory_gib']} GiB, Linux {m['kernel']}, {m['os']} |")
    w(f"| versions | {m['mosquitto']} (libmosquitto {m['libmosquitto']}); {m['openssl']}; Boost {m['boost']}; {m['compiler']}; SQLite {m['sqlite']} |")
    w(f"| file descriptors | RLIMIT_NOFILE {m['fd_limit']} for the servers and the load generators |")
    w(f"| database | on {m['db_filesystem'] or 'disk'}, WAL, `synchronous=FULL` (every alert and form is fsynced before it is confirmed) |")
    w(f"| whole run | {doc['elapsed_s']:.0f} s; 1-minute load average {m['loadavg_before']} before, {m['loadavg_after']} after "
      "(anything above about 0 before means other work shared the two cores) |\n")
    w("Both servers run on this machine with the load generator, over loopback, with mutual TLS 1.3 "
      "(client certificates from the same CA, verified against it and its CRL), TCP_NODELAY on. "
      "Each load generator is one thread with every socket in one event loop (SaferLink: one "
      "Asio `io_context` with `core/connection.hpp`; Mosquitto: libmosquitto driven from one epoll "
      "loop). Every handset answers what it receives the way a real one does: a SaferLink handset "
      "sends `RecipientStatus(DELIVERED)` for each alert (and the hub reports it to the sender as an "
      "`AlertUpdate`), an MQTT subscriber at QoS 1 sends `PUBACK`. Mosquitto runs without persistence; "
      "the hub writes each alert to SQLite and fsyncs it before relaying it. Figures are the median "
      f"of {p['reps']} repetitions (connections: {p['conn_reps']}) with the range in brackets; "
      "latencies come from log-linear histograms (1.6 % resolution), measured from the intended "
      "send time (open loop) to the moment the last handset has the alert. A warm-up precedes "
      "every measured phase. Server CPU and resident memory are sampled from /proc every 100 ms; "
      "the load generator's own CPU share is shown so that a saturated generator is visible "
      "(100 % = one core of the two).\n")

    def lat(sys_res, key="latency", sub=None, q="p99_ms"):
        reps = sys_res.get("reps", [])
        vals = []
        for rep in reps:
            x = rep[sub] if sub else rep
            vals.append(x[key][q] if x[key]["count"] else None)
        return vals

    w("## Summary\n")
    w("| workload | SaferLink | Mosquitto | ratio | target |\n|---|---|---|---|---|")
    if "fanout" in r:
        sl, mq = r["fanout"]["saferlink"], r["fanout"]["mosquitto"]
        a, b = need(med(lat(sl))[0], med(lat(mq))[0])
        w(f"| alert fan-out to {p['fanout_handsets']:,}, {p['rate']}/s: p99 to last recipient | {fmt(a, 2)} ms | {fmt(b, 2)} ms | {ratio(a, b, False)} | ≤ 5 ms, ≥ 4× (at 50/s) |")
    if "fanout_spec" in r:
        sl, mq = r["fanout_spec"]["saferlink"], r["fanout_spec"]["mosquitto"]
        a, b = need(med(lat(sl))[0], med(lat(mq))[0])
        ca = f"{sum(x['complete'] for x in sl['reps'])}/{sum(x['alerts'] for x in sl['reps'])}"
        cb = f"{sum(x['complete'] for x in mq['reps'])}/{sum(x['alerts'] for x in mq['reps'])}"
        w(f"| the same at {p['rate_spec']}/s (the specification's rate): p99, alerts complete | {fmt(a, 0)} ms, {ca} | {fmt(b, 0)} ms, {cb} | {ratio(a, b, False)} | ≤ 5 ms, ≥ 4× |")
    if "throughput" in r:
        sl, mq = r["throughput"]["saferlink"], r["throughput"]["mosquitto"]
        a = med([x["deliveries_per_s"] for x in sl["reps"]])[0]
        b = med([x["deliveries_per_s"] for x in mq["reps"]])[0]
        need(a, b)
        w(f"| sustained deliveries/s, 1 → {p['fanout_handsets']:,} | {fmt(a, 0)} | {fmt(b, 0)} | {ratio(a, b, True)} | ≥ 2× |")
    if "connect" in r:
        sl, mq = r["connect"]["saferlink"], r["connect"]["mosquitto"]
        a, b = need(med([x["connect_s"] for x in sl])[0], med([x["connect_s"] for x in mq])[0])
        w(f"| {p['conn_handsets']:,} idle mutual-TLS handsets: time to connect all | {fmt(a, 2)} s | {fmt(b, 2)} s | {ratio(a, b, False)} | 10,000 on one hub |")
        a, b = need(med([x["rss_per_conn_kib"] for x in sl])[0], med([x["rss_per_conn_kib"] for x in mq])[0])
        w(f"| server memory per idle connection | {fmt(a, 1)} KiB | {fmt(b, 1)} KiB | {ratio(a, b, False)} | ≤ 30 KB |")
        a, b = need(med([x["back_s"] for x in sl])[0], med([x["back_s"] for x in mq])[0])
        w(f"| reconnect storm: all {p['conn_handsets']:,} back after a restart | {fmt(a, 2)} s | {fmt(b, 2)} s | {ratio(a, b, False)} | ≤ 10 s |")
    if "photo" in r:
        sl, mq = r["photo"]["saferlink"], r["photo"]["mosquitto"]
        for name, res in (("SaferLink", sl), ("Mosquitto", mq)):
            res["_added"] = [
                (x["with"]["latency"]["p99_ms"] - x["without"]["latency"]["p99_ms"]) if x["with"]["latency"]["count"] else None
                for x in res["reps"]]
        a, b = need(med(sl["_added"])[0], med(mq["_added"])[0])
        w(f"| alert p99 added by a {p['photo_bytes'] / 1048576:.0f} MB photo to {p['photo_handsets']} handsets | {fmt(a, 2)} ms | {fmt(b, 2)} ms | — | ≤ 5 ms |")
    if "forms" in r:
        a = med([x["forms_per_s"] for x in r["forms"]["saferlink"]["reps"]])[0]
        need(a or None)
        w(f"| durable incident forms/s (`synchronous=FULL`) | {fmt(a, 0)} | n/a | — | ≥ 5,000 |")
    if "prolific" in r:
        a = r["prolific"]["saferlink"]["latency"]["p50_ms"] if r["prolific"]["saferlink"]["latency"]["count"] else None
        need(a)
        w(f"| prolific ranking over {p['incidents']:,} incidents (median) | {fmt(a, 1)} ms | n/a | — | ≤ 100 ms |")
    w("\nRatios are Mosquitto's figure over SaferLink's for times and memory (so above 1× means "
      "SaferLink is better) and SaferLink's over Mosquitto's for rates.\n")

    if "fanout" in r:
        w(f"## Alert fan-out: 1 sender → {p['fanout_handsets']:,} handsets, 200-byte alert, open loop\n")
        w(f"{p['rate']} alerts/s, a tenth of the specification's rate, to see latency below saturation "
          f"(the next section has the specification's {p['rate_spec']}/s; a p50 that grows from one "
          "repetition to the next means the server or the generator is falling behind). {p['fanout_s']} s per repetition after {p['warmup_s']} s of warm-up. "
          "Latency from the press to the last of the handsets receiving it (ms).\n")
        w("| | p50 | p99 | p99.9 | max | alerts complete |\n|---|---|---|---|---|---|")
        for name in ("saferlink", "mosquitto"):
            res = r["fanout"][name]
            w(f"| {NAMES[name]} | {mmm(lat(res, q='p50_ms'))} | {mmm(lat(res, q='p99_ms'))} | "
              f"{mmm(lat(res, q='p999_ms'))} | {mmm(lat(res, q='max_ms'))} | "
              f"{sum(x['complete'] for x in res['reps'])} of {sum(x['alerts'] for x in res['reps'])} |")
        for name in ("saferlink", "mosquitto"):
            res = r["fanout"][name]
            w(f"\n{NAMES[name]}: {cpu_line(res['server'], [x['load_cpu'] for x in res['reps']])}{health(res)}.")
        w("")
    if "fanout_spec" in r:
        w(f"### At the specification's rate: {p['rate_spec']} alerts/s\n")
        w(f"{p['rate_spec']} alerts/s to {p['fanout_handsets']:,} handsets is {p['rate_spec'] * p['fanout_handsets']:,} deliveries per "
          "second, more than either server reaches on this machine with the load generator beside it "
          "(next section): both fall behind and latency grows with the backlog for as long as the "
          f"alerts keep coming. One repetition of {p['spec_s']} s, then up to {p['spec_drain_s']} s for the backlog; "
          "alerts not complete by then are counted as incomplete and are not in the latency figures.\n")
        w("| | p50 | p99 | max | alerts complete |\n|---|---|---|---|---|")
        for name in ("saferlink", "mosquitto"):
            res = r["fanout_spec"][name]
            w(f"| {NAMES[name]} | {mmm(lat(res, q='p50_ms'), 0)} | {mmm(lat(res, q='p99_ms'), 0)} | {mmm(lat(res, q='max_ms'), 0)} | "
              f"{sum(x['complete'] for x in res['reps'])} of {sum(x['alerts'] for x in res['reps'])} |")
        for name in ("saferlink", "mosquitto"):
            res = r["fanout_spec"][name]
            w(f"\n{NAMES[name]}: {cpu_line(res['server'], [x['load_cpu'] for x in res['reps']])}{health(res)}.")
        w("")
    if "throughput" in r:
        w(f"## Sustained deliveries: 1 sender → {p['fanout_handsets']:,} handsets, closed loop\n")
        w(f"{p['window']} alerts in flight (an alert is done when every handset has it), {p['tput_s']} s per repetition.\n")
        w("| | deliveries/s | alerts/s | p99 per alert |\n|---|---|---|---|")
        for name in ("saferlink", "mosquitto"):
            res = r["throughput"][name]
            w(f"| {NAMES[name]} | {mmm([x['deliveries_per_s'] for x in res['reps']], 0)} | "
              f"{mmm([x['alerts_per_s'] for x in res['reps']], 1)} | {mmm(lat(res))} ms |")
        for name in ("saferlink", "mosquitto"):
            res = r["throughput"][name]
            w(f"\n{NAMES[name]}: {cpu_line(res['server'], [x['load_cpu'] for x in res['reps']])}{health(res)}.")
        w("")
    if "connect" in r:
        w(f"## Connections and the reconnect storm: {p['conn_handsets']:,} handsets\n")
        w(f"Each repetition starts a fresh server, connects every handset from {LOAD_PROCS} load generators "
          "(each one thread, half the handsets; at most 512 handshakes under way at once in all; a handset counts once it can receive an alert: SaferLink's `Welcome`, "
          "MQTT's `SUBACK`), waits a second, reads the server's resident memory, then restarts the "
          "server (SIGTERM, start again on the same port) and times how long until every handset is "
          "back, measured from the moment the old server was told to stop. Handsets retry after a "
          "random 0–500 ms, then with jittered exponential backoff from 250 ms to 2 s, the same "
          "policy in both load generators.\n")
        w("| | connect all | server RSS idle → connected | per connection | back after restart | back after the new server accepts |\n|---|---|---|---|---|---|")
        for name in ("saferlink", "mosquitto"):
            res = r["connect"][name]
            w(f"| {NAMES[name]} | {mmm([x['connect_s'] for x in res])} s | "
              f"{mmm([x['rss_base_kib'] / 1024 for x in res], 1)} → {mmm([x['rss_connected_kib'] / 1024 for x in res], 1)} MiB | "
              f"{mmm([x['rss_per_conn_kib'] for x in res], 1)} KiB | {mmm([x['back_s'] for x in res])} s | "
              f"{mmm([x['back_after_up_s'] for x in res])} s |")
        for name in ("saferlink", "mosquitto"):
            res = r["connect"][name]
            w(f"\n{NAMES[name]}: while connecting, server {mmm([x['server_connect']['cpu_pct'] for x in res], 0)} % CPU, "
              f"load generators {mmm([x['load_cpu_pct'] for x in res], 0)} % of one core (together); "
              f"failed connection attempts during the storm {mmm([x['failed_attempts'] for x in res], 0)}.")
        w("")
    if "photo" in r:
        w(f"## Alert during photo distribution: {p['photo_bytes'] / 1048576:.0f} MB to {p['photo_handsets']} handsets\n")
        w(f"Alerts at {p['rate']}/s to the same {p['photo_handsets']} handsets, first for {p['photo_base_s']} s without "
          "the photo, then while every handset receives the photo; the second figure counts only alerts "
          "pressed before the last handset had the whole photo. SaferLink: the photo is the gallery "
          "photo of an active exclusion notice (uploaded, proposed, approved by a second coordinator "
          "and served through the hub's own commands), which each handset fetches with "
          "`PhotoRequest` windows of 256 KiB, two ahead, as 16 KiB bulk chunks (docs/protocol.md "
          "5.13). Mosquitto: one QoS 1 message of the same size published to the topic all handsets "
          "subscribe to.\n")
        w("| | alert p99 without | alert p99 with photo | added | alert max with photo | photo to all |\n|---|---|---|---|---|---|")
        for name in ("saferlink", "mosquitto"):
            res = r["photo"][name]
            w(f"| {NAMES[name]} | {mmm(lat(res, sub='without'))} ms | {mmm(lat(res, sub='with'))} ms | "
              f"{mmm(res['_added'])} ms | {mmm(lat(res, sub='with', q='max_ms'))} ms | "
              f"{mmm([x['photo_s'] for x in res['reps']])} s |")
        for name in ("saferlink", "mosquitto"):
            res = r["photo"][name]
            w(f"\n{NAMES[name]}: alerts measured during the photo {mmm([x['with']['latency']['count'] for x in res['reps']], 0)}; "
              f"{cpu_line(res['server'], [x['with']['load_cpu'] for x in res['reps']])}{health(res)}.")
        w("")
    if "forms" in r:
        res = r["forms"]["saferlink"]
        w("## Durable incident forms (SaferLink only)\n")
        w(f"{p['forms_conns']} shop connections, each keeping {p['forms_window']} forms in flight; a form counts "
          f"when its `FormConfirmed` arrives, which the hub sends only after the SQLite commit "
          f"(WAL, `synchronous=FULL`, group commit). {p['forms_s']} s per repetition. MQTT has no "
          "counterpart.\n")
        w("| confirmed forms/s | confirmation p50 | p99 |\n|---|---|---|")
        w(f"| {mmm([x['forms_per_s'] for x in res['reps']], 0)} | {mmm(lat(res, q='p50_ms'))} ms | {mmm(lat(res))} ms |")
        w(f"\n{cpu_line(res['server'], [x['load_cpu'] for x in res['reps']])}.\n")
    if "prolific" in r:
        res = r["prolific"]["saferlink"]
        w("## Prolific-offender ranking (SaferLink only)\n")
        w(f"A database of {p['incidents']:,} incident forms over the last 12 months, each linked to one of "
          f"{p['profiles']:,} offender profiles (seeded with SQL into the hub's own schema), then the "
          f"`prolific` query (`saferlink coord prolific`, top 50) asked {p['query_reps']} times after one "
          "warm-up, timed at the coordinator's end (request to answer, over TLS).\n")
        w("| median | min | max |\n|---|---|---|")
        w(f"| {fmt(res['latency']['p50_ms'], 1)} ms | {fmt(res['latency']['min_ms'], 1)} ms | {fmt(res['latency']['max_ms'], 1)} ms |\n")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True, help="build directory with the hub and the bench targets")
    ap.add_argument("--scale", choices=sorted(SCALES), default="full")
    ap.add_argument("--work", help="scratch directory (default BUILD/bench-work)")
    ap.add_argument("--md", help="write the Markdown report here")
    ap.add_argument("--json", help="write the raw results here")
    ap.add_argument("--only", help="comma-separated workloads (for development)")
    ap.add_argument("--render", metavar="JSON", help="only write --md again from an earlier run's JSON")
    args = ap.parse_args()
    if args.render:
        with open(args.render) as f:
            doc = json.load(f)
        with open(args.md, "w") as f:
            f.write(render(doc, args.render))
        return 0
    try:
        return Bench(args).run()
    except (RuntimeError, subprocess.CalledProcessError, OSError) as e:
        log(f"failed: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
