"""Workers: one event loop per thread (`workers = N | "auto"`, `--workers`).

  * with 2 workers both serve (each connection record names its worker), and /stats,
    /stats/recent and /metrics show the sum over workers, exactly what the clients did;
  * SIGHUP with a download in flight on each worker: both finish byte-exact, new
    connections on both workers get the new certificate;
  * SIGTERM: responses in flight finish, exit 0, every thread gone;
  * /metrics passes the strict parser (and promtool if installed) and its counters only
    grow;
  * `workers` errors name FILE:LINE; `auto` is the number of CPUs the process may use;
  * a combination: 2 workers, no file cache, HEAD and 304;
  * the workers' file caches share a quarter of the open-files limit;
  * max_connections counts the connections of all workers;
  * with socket activation every worker listens on the socket systemd passed.
"""
import hashlib
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ktlsd_test  # noqa: E402
from ktlsd_test import (KTLSD, Daemon, Skip, client_context, free_port, make_cert,  # noqa: E402
                        run_tests, sha256_file, tcp_connect, test, wait_until)
# the strict Prometheus reader of test_stats.py, without running its tests here too
_registered = len(ktlsd_test._tests)
from test_stats import parse_prometheus  # noqa: E402
del ktlsd_test._tests[_registered:]

ENV = dict(os.environ, ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "detect_leaks=1"))


def threads_of(pid):
    """The process's worker threads (named ktlsd-wN), and all its threads (a sanitizer
    runtime may add its own)."""
    tasks = os.listdir("/proc/%d/task" % pid)
    names = []
    for t in tasks:
        try:
            with open("/proc/%d/task/%s/comm" % (pid, t)) as f:
                names.append(f.read().strip())
        except FileNotFoundError:
            pass
    return sorted(n for n in names if re.match(r"ktlsd-w\d+$", n)), len(tasks)


def open_on_both_workers(d, want=2, most=40, **kw):
    """Open TLS connections until live records show one on each of `want` workers (the
    kernel spreads them by a hash of the 4-tuple). Returns (conns, {worker: [conn]})."""
    conns, by_worker = [], {}
    for _ in range(most):
        c = d.conn(**kw)
        conns.append(c)
        if len(conns) % 4 == 0 or len(conns) == most:
            port_to_worker = {int(r["peer"].rsplit(":", 1)[1]): r["worker"]
                              for r in d.stats()["connections"]}
            by_worker = {}
            for cc in conns:
                w = port_to_worker.get(cc.sock.getsockname()[1])
                if w is not None:
                    by_worker.setdefault(w, []).append(cc)
            if len(by_worker) >= want:
                return conns, by_worker
    raise AssertionError("%d connections never reached %d workers: %s" % (
        len(conns), want, sorted(by_worker)))


@test
def both_workers_serve_and_the_stats_sum_what_the_clients_did():
    with Daemon(stats=True, args=["--workers", "2"]) as d:
        d.put("small.txt", "small\n")
        big = d.put_random("big.bin", 1024 * 1024 + 17, seed=5)
        st = d.stats()
        assert st["workers"] == 2 and st["workers_answered"] == 2, st
        conns, by_worker = open_on_both_workers(d)
        assert set(by_worker) == {0, 1}, by_worker
        requests, bodies = 0, 0
        for i, c in enumerate(conns):
            r = c.request("GET", "/small.txt" if i % 2 else "/big.bin")
            assert r.status == 200
            requests += 1
            bodies += len(r.body)
            if i % 3 == 0:
                r = c.request("GET", "/missing")
                assert r.status == 404
                requests += 1
                bodies += len(r.body)
        assert conns[0].request("GET", "/big.bin").body == open(big, "rb").read()
        requests += 1
        bodies += os.path.getsize(big)
        live = d.stats()["connections"]
        assert {r["worker"] for r in live} == {0, 1}, live
        assert len({r["id"] for r in live}) == len(live), "connection ids not unique"
        for c in conns:
            c.close()
        wait_until(lambda: d.stats()["totals"]["connections_open"] == 0, 5)
        st = d.stats()
        t = st["totals"]
        assert t["accepted"] == len(conns) and t["closed"] == len(conns), t
        assert t["requests"] == requests, (t["requests"], requests)
        recent = d.recent()
        assert len(recent) == len(conns), len(recent)
        assert {r["worker"] for r in recent} == {0, 1}
        assert sum(r["bytes_body"] for r in recent) == bodies
        assert t["bytes_sent"] == sum(r["bytes_body"] + r["bytes_head"] for r in recent)
        assert sum(r["requests"] for r in recent) == requests
        text = d.stats("/stats/text", raw=True).decode()
        assert re.search(r"^workers 2$", text, re.M), text
        assert re.search(r"^\s+id\s+worker\s+peer", text, re.M), text


@test
def sighup_with_a_download_in_flight_on_each_worker_is_byte_exact():
    size = 24 * 1024 * 1024
    with Daemon(stats=True, args=["--workers", "2"],
                timeouts={"send_idle": 30, "shutdown": 10}) as d:
        path = d.put_random("big.bin", size, seed=9)
        want = sha256_file(path)
        conns, by_worker = open_on_both_workers(d, timeout=30)
        flying = [by_worker[0][0], by_worker[1][0]]
        for c in conns:
            if c not in flying:
                c.close()
        hashes = []
        for c in flying:
            c.send("GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            status, _, headers, _ = c.read_head()
            assert status == 200 and int(headers["content-length"]) == size
            h = hashlib.sha256(c.buf)
            got = len(c.buf)
            c.buf = b""
            while got < 1024 * 1024:
                chunk = c.sock.recv(1 << 16)
                assert chunk
                h.update(chunk)
                got += len(chunk)
            hashes.append([h, got])
        live = {r["worker"]: r for r in d.stats()["connections"]}
        assert {0, 1} <= set(live) and all(
            live[w]["state"] == "send_body" for w in (0, 1)), live

        newdir = tempfile.mkdtemp(dir=d.tmp)
        new_crt, new_key = make_cert(newdir, name="renewed")
        new_der = ssl.PEM_cert_to_DER_cert(open(new_crt).read())
        os.replace(new_key, d.key)
        os.replace(new_crt, d.crt)
        d.signal(signal.SIGHUP)
        d.wait_log(r"reloaded .*new connections use the new configuration", timeout=10)

        # new connections, on both workers, present the new certificate
        seen = set()
        for _ in range(40):
            raw = tcp_connect(d, timeout=10)
            s = client_context().wrap_socket(raw, server_hostname="localhost")
            assert s.getpeercert(binary_form=True) == new_der, "old certificate after reload"
            s.sendall(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
            s.recv(100)
            port = s.getsockname()[1]
            seen |= {r["worker"] for r in d.stats()["connections"]
                     if r["peer"].endswith(":%d" % port)}
            s.close()
            if seen == {0, 1}:
                break
        assert seen == {0, 1}, seen

        # the downloads started before the reload finish, to the byte
        for c, (h, got) in zip(flying, hashes):
            while got < size:
                chunk = c.sock.recv(min(1 << 18, size - got))
                assert chunk, "download cut at %d of %d bytes" % (got, size)
                h.update(chunk)
                got += len(chunk)
            assert h.hexdigest() == want, "download across a reload is not byte-exact"
            c.close()


@test
def a_reloaded_send_mss_reaches_the_listening_socket_of_every_worker():
    """Each worker has its own SO_REUSEPORT socket: a reload that sets send.mss must set
    it on all of them, or the connections the kernel hashes to one worker keep the old."""
    with Daemon(stats=True, args=["--workers", "2"]) as d:
        with open(d.conf_path, "w") as f:
            f.write(d.conf_text + "send = { mss = 1000; };\n")
        d.signal(signal.SIGHUP)
        d.wait_log(r"reloaded .*new connections use the new configuration", timeout=10)
        conns, by_worker = open_on_both_workers(d)
        try:
            for w, cs in by_worker.items():
                for c in cs:
                    mss = c.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)
                    assert 900 <= mss <= 1000, (w, mss)
        finally:
            for c in conns:
                c.close()


@test
def sigterm_finishes_in_flight_responses_on_every_worker_and_exits_0():
    size = 16 * 1024 * 1024
    with Daemon(stats=True, args=["--workers", "3"],
                timeouts={"send_idle": 30, "shutdown": 20}) as d:
        path = d.put_random("big.bin", size, seed=2)
        want = sha256_file(path)
        # the main thread and one per worker, named
        workers, _ = threads_of(d.proc.pid)
        assert workers == ["ktlsd-w0", "ktlsd-w1", "ktlsd-w2"], threads_of(d.proc.pid)
        conns, by_worker = open_on_both_workers(d, want=3, most=60, timeout=30)
        flying = [by_worker[w][0] for w in (0, 1, 2)]
        for c in conns:
            if c not in flying:
                c.close()
        for c in flying:
            c.send("GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            assert c.read_head()[0] == 200
        d.signal(signal.SIGTERM)
        d.wait_log(r"stopping \(3 connection", timeout=5)
        for c in flying:
            h = hashlib.sha256(c.buf)
            got = len(c.buf)
            while got < size:
                chunk = c.sock.recv(1 << 18)
                assert chunk, "cut at %d" % got
                h.update(chunk)
                got += len(chunk)
            assert h.hexdigest() == want
            assert c.closed_by_server(5)
            c.close()
        pid = d.proc.pid
        d.proc.wait(15)
        assert not os.path.exists("/proc/%d" % pid)
        d.stop()        # exit code 0, no sanitizer report, no leak (threads joined)


@test
def metrics_sum_over_workers_strictly_and_only_grow():
    with Daemon(stats=True, args=["--workers", "2"]) as d:
        d.put("a.txt", "a" * 1000)
        previous = None
        for round_ in range(3):
            conns, _ = open_on_both_workers(d)
            for c in conns:
                assert c.request("GET", "/a.txt").status == 200
                c.close()
            wait_until(lambda: d.stats()["totals"]["connections_open"] == 0, 5)
            text = d.stats("/metrics", raw=True).decode()
            m = parse_prometheus(text)
            assert m["ktlsd_workers"][""] == 2
            st = d.stats()["totals"]
            assert m["ktlsd_connections_accepted_total"][""] == st["accepted"]
            assert m["ktlsd_requests_total"][""] == st["requests"] == st["accepted"]
            if previous is not None:
                for name, series in previous.items():
                    if not name.endswith("_total"):
                        continue
                    for labels, value in series.items():
                        assert m[name][labels] >= value, (name, labels, value)
                assert m["ktlsd_requests_total"][""] > previous["ktlsd_requests_total"][""]
            previous = m
            if shutil.which("promtool"):
                p = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                                   capture_output=True, timeout=30)
                assert p.returncode == 0, p.stdout + p.stderr


@test
def workers_setting_errors_name_file_and_line():
    tmp = tempfile.mkdtemp(prefix="ktlsd-workers-")
    try:
        crt, key = make_cert(tmp)
        root = os.path.join(tmp, "root")
        os.mkdir(root)
        as_root = "run_as_root = true;\n" if os.geteuid() == 0 else ""
        for bad in ("workers = 0;", "workers = -1;", 'workers = "lots";', "workers = 257;",
                    "workers = 1.5;", "worker_cpu_affinity = 2;"):
            conf = os.path.join(tmp, "k.conf")
            with open(conf, "w") as f:
                f.write('listen = "127.0.0.1:0";\ndocument_root = "%s";\n'
                        'tls = { certificate = "%s"; private_key = "%s"; };\n%s\n%s'
                        % (root, crt, key, bad, as_root))
            p = subprocess.run([KTLSD, "-t", "-c", conf], capture_output=True, text=True,
                               timeout=20, env=ENV)
            assert p.returncode == 1, (bad, p.stdout, p.stderr)
            assert re.search(r"%s:4: (workers|worker_cpu_affinity)" % re.escape(conf),
                             p.stderr), (bad, p.stderr)
        for good in ("workers = 3;", 'workers = "auto";', "worker_cpu_affinity = true;"):
            with open(conf, "w") as f:
                f.write('listen = "127.0.0.1:0";\ndocument_root = "%s";\n'
                        'tls = { certificate = "%s"; private_key = "%s"; };\n%s\n%s'
                        % (root, crt, key, good, as_root))
            p = subprocess.run([KTLSD, "-t", "-c", conf], capture_output=True, text=True,
                               timeout=20, env=ENV)
            assert p.returncode == 0, (good, p.stderr)
        for bad in ("0", "-1", "lots", "257", ""):
            p = subprocess.run([KTLSD, "-t", "-c", conf, "--workers", bad],
                               capture_output=True, text=True, timeout=20, env=ENV)
            assert p.returncode == 1 and "--workers" in p.stderr, (bad, p.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@test
def workers_auto_is_the_number_of_cpus_the_process_may_use():
    with Daemon(stats=True, args=["--workers", "auto"]) as d:
        n = len(os.sched_getaffinity(0))
        assert d.stats()["workers"] == n
        workers, _ = threads_of(d.proc.pid)
        assert len(workers) == n, workers
    # the default is auto too, and it follows an affinity mask set from outside
    if not shutil.which("taskset"):
        raise Skip("no taskset")
    cpu = sorted(os.sched_getaffinity(0))[0]
    with Daemon(stats=True, wrapper=["taskset", "-c", str(cpu)]) as d:
        assert d.stats()["workers"] == 1
    with Daemon(stats=True, conf_extra="workers = 2;\nworker_cpu_affinity = true;\n") as d:
        assert d.stats()["workers"] == 2
        if len(os.sched_getaffinity(0)) >= 2:
            d.wait_log(r"worker 1: pinned to CPU \d+")


@test
def two_workers_without_file_cache_answer_head_and_304():
    with Daemon(stats=True, args=["--workers", "2"],
                conf_extra="file_cache = { entries = 0; };\n") as d:
        body = os.urandom(300000)
        d.put("f.bin", body)
        conns, by_worker = open_on_both_workers(d)
        assert set(by_worker) == {0, 1}
        etag = None
        for i, c in enumerate(conns):
            h = c.request("HEAD", "/f.bin")
            assert h.status == 200 and h.body == b"" and \
                int(h.header("content-length")) == len(body), h
            etag = etag or h.header("etag")
            assert h.header("etag") == etag
            r = c.request("GET", "/f.bin", {"If-None-Match": etag})
            assert r.status == 304 and r.body == b"", r
            r = c.request("GET", "/f.bin", {"If-Modified-Since": h.header("last-modified")})
            assert r.status == 304, r
            r = c.request("GET", "/f.bin", {"Range": "bytes=%d-" % i})
            assert r.status == 206 and r.body == body[i:], r.status
            r = c.request("GET", "/f.bin")
            assert r.body == body
        for c in conns:
            c.close()
        wait_until(lambda: d.stats()["totals"]["connections_open"] == 0, 5)
        st = d.stats()
        assert st["totals"]["requests"] == 5 * len(conns)
        assert st["file_cache"]["entries"] == 0 and st["file_cache"]["hits"] == 0


@test
def the_file_caches_of_all_workers_share_a_quarter_of_the_open_files_limit():
    # nofile 64: a quarter is 16 descriptors for the process, 8 per worker's cache;
    # /stats shows the sum of the capacities
    with Daemon(stats=True, args=["--workers", "2"],
                conf_extra="limits = { nofile = 64; };\n") as d:
        assert d.stats()["file_cache"]["capacity"] == 16, d.stats()["file_cache"]
    with Daemon(stats=True, args=["--workers", "2"],
                conf_extra="file_cache = { entries = 5; };\n") as d:
        assert d.stats()["file_cache"]["capacity"] == 10, d.stats()["file_cache"]


@test
def max_connections_is_for_all_workers_together():
    with Daemon(stats=True, args=["--workers", "2"], conf_extra="max_connections = 4;\n",
                timeouts={"handshake": 30, "header": 30}) as d:
        held = []
        for _ in range(4):
            held.append(d.conn())
            time.sleep(0.1)     # the worker that reaches the limit tells the other
        assert d.stats()["totals"]["connections_open"] == 4
        # more clients wait in the backlog, whichever worker's socket they land on (they
        # send nothing: an accepted one would sit in its handshake, counted)
        waiting = [tcp_connect(d, timeout=10) for _ in range(6)]
        time.sleep(1.0)
        assert d.stats()["totals"]["connections_open"] == 4, d.stats()["totals"]
        assert d.stats()["totals"]["accepted"] == 4
        d.wait_log(r"max_connections \(4\) reached; pausing accept on this worker")
        # one closes: accepting resumes until the limit again (both workers wake; if both
        # accept in the same instant the sum passes the limit by one, workers - 1)
        held.pop().close()
        wait_until(lambda: d.stats()["totals"]["accepted"] >= 5, 5, what="an accept")
        time.sleep(0.5)
        t = d.stats()["totals"]
        assert t["accepted"] in (5, 6) and t["connections_open"] in (4, 5), t
        for c in held:
            c.close()
        for w in waiting:
            w.close()


def listening_inode(port):
    """The inode of the IPv4 socket listening on 127.0.0.1:port (from /proc/net/tcp)."""
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1] == "0100007F:%04X" % port and fields[3] == "0A":
                return fields[9]
    return None


@test
def socket_activation_every_worker_listens_on_the_passed_socket():
    port = free_port()
    with Daemon(start=False, stats=True) as d:
        d.put("a.txt", "activated\n")
        d.start_socket_activated(port, ["--workers", "2"])
        inode = listening_inode(port)
        assert inode, "no listening socket on %d" % port
        # the first connection starts ktlsd (systemd-socket-activate execs it on demand)
        first = d.conn(timeout=20)
        assert first.request("GET", "/a.txt").body == b"activated\n"
        d.find_stats_port()
        assert d.stats()["workers"] == 2
        # each worker listens on a descriptor of its own for the one socket (a dup); the
        # descriptor systemd passed is closed once both have theirs
        fds = [os.readlink("/proc/%d/fd/%s" % (d.proc.pid, fd))
               for fd in os.listdir("/proc/%d/fd" % d.proc.pid)]
        assert fds.count("socket:[%s]" % inode) == 2, fds
        conns = [d.conn() for _ in range(16)]
        for c in conns:
            assert c.request("GET", "/a.txt").status == 200
            c.close()
        first.close()


if __name__ == "__main__":
    run_tests()
