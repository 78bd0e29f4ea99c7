"""The stats endpoint and stall detection without kTLS: /stats JSON, /stats/recent,
/metrics in strict Prometheus text format, totals that add up with what clients got, and
a zero-window stall (a client that stops reading) detected within threshold + 1 s."""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ktlsd_test import TOP_SRCDIR, Daemon, run_tests, sha256_file, test, wait_until  # noqa: E402

METRIC_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
SAMPLE_RE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*",?)*)\})?'
    r' (-?(?:[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?|\+Inf|-Inf|NaN))$')


def parse_prometheus(text):
    """A strict reader of the text exposition format 0.0.4: returns {name: {labels: value}}
    and raises AssertionError on anything a scraper would reject or warn about."""
    assert text.endswith("\n"), "exposition must end with a newline"
    types, helps, samples, seen_families = {}, {}, {}, []
    for line in text.split("\n")[:-1]:
        if line.startswith("#"):
            parts = line.split(" ", 3)
            assert len(parts) >= 3 and parts[1] in ("HELP", "TYPE"), "bad comment %r" % line
            name = parts[2]
            assert METRIC_RE.match(name), line
            table = helps if parts[1] == "HELP" else types
            assert name not in table, "second %s for %s" % (parts[1], name)
            assert name not in samples, "%s after samples of %s" % (parts[1], name)
            table[name] = parts[3] if len(parts) > 3 else ""
            if parts[1] == "TYPE":
                assert table[name] in ("counter", "gauge", "histogram", "summary", "untyped")
                if table[name] == "counter":
                    assert name.endswith("_total"), "counter %s lacks _total" % name
            continue
        assert line, "empty line"
        m = SAMPLE_RE.match(line)
        assert m, "bad sample line %r" % line
        name = m.group(1)
        assert name in types, "sample %s without TYPE" % name
        if name not in seen_families:
            seen_families.append(name)
        else:
            assert seen_families[-1] == name, "samples of %s not contiguous" % name
        labels = m.group(3) or ""
        assert labels not in samples.setdefault(name, {}), "duplicate series %s{%s}" % (name, labels)
        value = float(m.group(4))
        if types[name] == "counter":
            assert value >= 0, line
        samples[name][labels] = value
    return samples


@test
def stats_json_and_metrics_add_up():
    with Daemon(stats=True) as d:
        big = d.put_random("big.bin", 3 * 1024 * 1024, seed=3)
        d.put("small.txt", "small\n")
        out = os.path.join(d.tmp, "dl")
        total_body = 0
        for path, size in (("/big.bin", os.path.getsize(big)), ("/small.txt", 6), ("/big.bin", 3145728)):
            r = d.curl(path, out=out)
            assert r.returncode == 0, r.stderr
            total_body += size
        assert sha256_file(out) == sha256_file(big)
        c = d.conn()
        for _ in range(3):
            assert c.request("GET", "/small.txt").status == 200
        nf = c.request("GET", "/missing")
        assert nf.status == 404
        c.close()
        wait_until(lambda: d.stats()["totals"]["connections_open"] == 0, 5)
        st = d.stats()
        assert d.stats_content_type.startswith("application/json")
        t = st["totals"]
        assert t["accepted"] == 4 and t["closed"] == 4, t
        assert t["requests"] == 7, t
        assert st["ktls_kernel"]["available"] in (True, False)
        recent = d.recent()
        assert len(recent) == 4
        body_sum = sum(r["bytes_body"] for r in recent)
        head_sum = sum(r["bytes_head"] for r in recent)
        # every body byte a client received, the 404 page included
        assert body_sum == total_body + 3 * 6 + len(nf.body), (body_sum, total_body)
        assert t["bytes_sent"] == body_sum + head_sum, (t["bytes_sent"], body_sum, head_sum)
        assert recent[0]["requests"] == 4, recent[0]      # newest first: the keep-alive one
        for r in recent:
            for k in ("id", "peer", "mode", "sender", "tls_tx", "tls_tx_reason", "cipher",
                      "snd_mss", "send_calls", "eagain", "longest_call_ms", "longest_wait_ms",
                      "stalls", "stall_ms_total", "duration_s", "throughput_bps"):
                assert k in r, k
            assert r["cipher"].startswith("TLS_")
            assert r["snd_mss"] > 0
            if not st["ktls_kernel"]["available"]:
                assert r["tls_tx"] == "userspace" and r["tls_tx_reason"], r
        text = d.stats("/metrics", raw=True).decode()
        assert d.stats_content_type.startswith("text/plain; version=0.0.4")
        m = parse_prometheus(text)
        assert m["ktlsd_connections"][""] == 0
        assert m["ktlsd_requests_total"][""] == 7
        assert m["ktlsd_connections_accepted_total"][""] == 4
        by_mode = m["ktlsd_bytes_sent_total"]
        assert sum(by_mode.values()) == t["bytes_sent"], (by_mode, t["bytes_sent"])
        assert set(m["ktlsd_stalls_total"]) == {'cause="corked-record"', 'cause="persist-crawl"',
                                                'cause="zero-window"', 'cause="congestion"',
                                                'cause="unknown"'}
        if shutil.which("promtool"):
            p = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                               capture_output=True, timeout=30)
            assert p.returncode == 0, p.stdout + p.stderr
        # the admin listener refuses what it does not serve
        import urllib.request
        import urllib.error
        try:
            urllib.request.urlopen("http://127.0.0.1:%d/nope" % d.stats_port, timeout=5)
            raise AssertionError("404 expected")
        except urllib.error.HTTPError as e:
            assert e.code == 404
        try:
            urllib.request.urlopen(urllib.request.Request(
                "http://127.0.0.1:%d/stats" % d.stats_port, data=b"x", method="POST"), timeout=5)
            raise AssertionError("405 expected")
        except urllib.error.HTTPError as e:
            assert e.code == 405


@test
def zero_window_stall_detected_within_threshold_plus_one_second():
    threshold = 1.0
    with Daemon(stats=True, conf_extra="stall = { threshold_ms = 1000; };\n",
                timeouts={"send_idle": 30}) as d:
        d.put_random("huge.bin", 48 * 1024 * 1024, seed=4)
        c = d.conn(sockopts=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)])
        c.send("GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        got = 0
        while got < 256 * 1024:
            got += len(c.sock.recv(65536))
        t_stop = time.time()         # from here on the client does not read
        st = None

        def stalled():
            nonlocal st
            st = d.stats()
            return st["connections"] and st["connections"][0]["stalls"] >= 1

        # bytes still drain into socket buffers for a moment after we stop reading, so the
        # stall begins a little after t_stop; detection must follow within threshold + 1 s
        wait_until(stalled, threshold + 4)
        detected = time.time() - t_stop
        conn = st["connections"][0]
        assert conn["last_stall"]["cause"] == "zero-window", conn
        assert conn["last_stall"]["snd_wnd"] == 0 or conn["last_stall"]["probes"] > 0, conn
        assert conn["stalled_now_ms"] >= threshold * 1000 - 50, conn
        assert detected <= threshold + 1 + 1.5, "detected after %.2f s" % detected
        text = d.stats("/metrics", raw=True).decode()
        m = parse_prometheus(text)
        assert m["ktlsd_stalls_total"]['cause="zero-window"'] == 1
        assert m["ktlsd_connections_stalled"][""] == 1
        assert "stall: no progress for" in d.log() and "cause zero-window" in d.log()
        c.close()
        wait_until(lambda: d.stats()["totals"]["connections_open"] == 0, 5)
        rec = d.recent()[0]
        assert rec["stalls"] == 1 and rec["stall_ms_total"] >= 1000, rec
        assert re.search(r"stalls=1 stall_ms=\d{4,}", d.access_log()), d.access_log()
        m = parse_prometheus(d.stats("/metrics", raw=True).decode())
        assert m["ktlsd_stall_seconds_total"][""] >= 1.0


def counter_table():
    """The rows of src/counters.h: (json key, Prometheus family, labels, unit, [names])."""
    src = open(os.path.join(TOP_SRCDIR, "src", "counters.h")).read()
    src = re.sub(r"[ \t]+", " ", re.sub(r"\\\n\s*", " ", src))    # macro lines joined
    rows = []
    for m in re.finditer(r'\b(COUNTER|FAMILY)\((\w+), (?:(\w+), )?"(\w+)", "(\w+)", '
                         r'"((?:[^"\\]|\\.)*)", (\w+)?', src):
        kind, _, _, key, fam, labels, unit = m.groups()
        rows.append((kind, key, fam, labels.replace('\\"', '"'), unit))
    assert len(rows) >= 15, rows
    return rows


@test
def every_counter_agrees_in_json_text_and_prometheus():
    # one table generates the three views: each of its rows shows the same numbers in
    # /stats, /stats/text and /metrics, and no view has a counter the table lacks
    with Daemon(stats=True, files={"a.txt": "a" * 5000}) as d:
        assert d.get("/a.txt").status == 200
        assert d.get("/missing").status == 404
        s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
        s.sendall(b"not a TLS hello\r\n\r\n")         # a failed handshake
        s.recv(100)
        s.close()
        wait_until(lambda: d.stats()["totals"]["connections_open"] == 0, 5)
        t = d.stats()["totals"]
        text = d.stats("/stats/text", raw=True).decode()
        prom = parse_prometheus(d.stats("/metrics", raw=True).decode())
    rows = counter_table()
    assert t["handshakes_failed"] == 1 and t["requests"] == 2 and t["bytes_sent"] > 5000, t
    keys = set()
    for kind, key, fam, labels, unit in rows:
        keys.add(key)
        if kind == "COUNTER":
            v = t[key]
            assert re.search(r"(^|  )%s %d(  |\n)" % (key, v), text, re.M), (key, v, text)
            want = v / 1000 if unit == "UNIT_MS" else v
            assert prom[fam][labels] == want, (key, fam, labels, prom[fam], v)
        else:
            group = t[key]
            line = re.search(r"^%s: (.*)$" % key, text, re.M)
            assert line, (key, text)
            assert line.group(1) == ", ".join("%s %d" % kv for kv in group.items()), line.group(1)
            label = {k.split("=")[0] for k in prom[fam]}
            assert len(label) == 1, prom[fam]
            label = label.pop()
            assert prom[fam] == {'%s="%s"' % (label, k): v for k, v in group.items()}, \
                (fam, prom[fam], group)
    assert set(t) - {"connections_open", "auto_learned_cap"} == keys, set(t) ^ keys
    ours = {f for _, _, f, _, _ in rows}
    for fam in prom:
        if fam.endswith("_total") and not fam.startswith(("ktlsd_file_cache", "ktlsd_kernel_tls")):
            assert fam in ours, "counter %s is not in the table" % fam


@test
def ktlsd_stats_command_shows_live_connections():
    from ktlsd_test import KTLSD
    with Daemon(stats=True, timeouts={"send_idle": 30}) as d:
        d.put_random("huge.bin", 16 * 1024 * 1024, seed=5)
        c = d.conn(sockopts=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)])
        c.send("GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        c.sock.recv(65536)
        addr = "127.0.0.1:%d" % d.stats_port
        p = subprocess.run([KTLSD, "stats", "--stats-listen", addr], capture_output=True, timeout=20)
        assert p.returncode == 0, p.stderr
        out = p.stdout.decode()
        assert out.startswith("ktlsd ") and "connections 1 open" in out, out
        row = [l for l in out.splitlines() if l.split()[:1] == ["1"]]
        assert row and "send_body" in row[0], out
        p = subprocess.run([KTLSD, "stats", "--stats-listen", addr, "--json"], capture_output=True,
                           timeout=20)
        assert __import__("json").loads(p.stdout)["totals"]["connections_open"] == 1
        c.close()
        p = subprocess.run([KTLSD, "stats", "--stats-listen", "127.0.0.1:1"], capture_output=True,
                           timeout=20)
        assert p.returncode == 1 and b"127.0.0.1:1" in p.stderr, p.stderr
        nostats = os.path.join(d.tmp, "nostats.conf")
        with open(nostats, "w") as f:
            f.write(d.conf_text.replace('stats = { listen = "127.0.0.1:0"; };\n', ""))
        p = subprocess.run([KTLSD, "stats", "-c", nostats], capture_output=True, timeout=20)
        assert p.returncode == 1 and b"has no stats" in p.stderr, p.stderr


@test
def prometheus_checker_rejects_bad_exposition():
    # the checker itself must be able to fail, or the tests above prove nothing
    for bad in ("x 1\n", "# TYPE x counter\nx 1\n", "# TYPE x_total counter\nx_total one\n",
                "# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na 2\n", "# TYPE a gauge\na 1"):
        try:
            parse_prometheus(bad)
        except AssertionError:
            continue
        raise AssertionError("accepted %r" % bad)


@test
def ktls_disabled_is_counted_in_every_view():
    # send mode userspace turns kTLS off by choice: "disabled", not "fallback"; the JSON
    # and the text view used to miss the count that /metrics had
    with Daemon(stats=True, send_mode="userspace", files={"a.txt": "a\n"}) as d:
        for _ in range(2):
            assert d.get("/a.txt").status == 200
        t = d.stats()["totals"]
        assert t["ktls_disabled"] == 2 and t["ktls_fallback"] == 0 and t["ktls_tx"] == 0, t
        text = d.stats("/stats/text", raw=True).decode()
        assert re.search(r"\bktls_tx 0  ktls_fallback 0  ktls_disabled 2\b", text), text
        m = parse_prometheus(d.stats("/metrics", raw=True).decode())
        assert m["ktlsd_ktls_tx_total"]['result="disabled"'] == 2, m["ktlsd_ktls_tx_total"]
        from ktlsd_test import KTLSD
        p = subprocess.run([KTLSD, "stats", "--stats-listen", "127.0.0.1:%d" % d.stats_port],
                           capture_output=True, timeout=20)
        assert p.returncode == 0 and b"ktls_disabled 2" in p.stdout, p.stdout + p.stderr
    with Daemon(stats=True, send_mode="sendfile", files={"a.txt": "a\n"}) as d:
        assert d.get("/a.txt").status == 200
        t = d.stats()["totals"]
        if t["ktls_tx"] == 0:      # no kTLS here: the sendfile mode fell back
            assert t["ktls_fallback"] == 1 and t["ktls_disabled"] == 0, t


@test
def ktlsd_stats_command_prints_answers_over_64_kib_whole():
    # /stats with 120 live connections and /stats/recent with 300 records are each well
    # over 64 KiB, where `ktlsd stats` used to cut its output without a word
    from ktlsd_test import KTLSD
    d = Daemon(stats=True, start=False, timeouts={"keepalive": 60}, files={"a.txt": "a\n"})
    d.edit_conf('stats = { listen = "127.0.0.1:0"; };',
                'stats = { listen = "127.0.0.1:0"; recent = 1000; };')
    with d:
        d.start()
        addr = "127.0.0.1:%d" % d.stats_port
        for _ in range(300):
            assert d.get("/a.txt").status == 200
        held = [d.conn() for _ in range(120)]
        for c in held:
            assert c.request("GET", "/a.txt").status == 200
        p = subprocess.run([KTLSD, "stats", "--stats-listen", addr, "--json"],
                           capture_output=True, timeout=30)
        assert p.returncode == 0, p.stderr
        assert len(p.stdout) > 65536, len(p.stdout)
        live = json.loads(p.stdout)["connections"]
        assert len(live) == 120, len(live)
        wait_until(lambda: len(d.recent()) >= 300, 5)
        p = subprocess.run([KTLSD, "stats", "--stats-listen", addr, "--recent"],
                           capture_output=True, timeout=30)
        assert p.returncode == 0, p.stderr
        assert len(p.stdout) > 65536, len(p.stdout)
        recent = json.loads(p.stdout)["recent"]
        assert len(recent) == 300 and all(r["requests"] == 1 for r in recent), len(recent)
        p = subprocess.run([KTLSD, "stats", "--stats-listen", addr], capture_output=True,
                           timeout=30)
        assert p.returncode == 0 and p.stdout.decode().count(" keepalive ") == 120, p.stdout
        for c in held:
            c.close()


def fake_stats_listener(answer_parts):
    """A one-shot stats listener on a free port that answers with the byte strings
    answer_parts (a generator is fine) and closes. Returns (address, thread)."""
    import threading
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)

    def serve():
        c, _ = ls.accept()
        try:
            c.recv(4096)
            for part in answer_parts:
                c.sendall(part)
        except OSError:
            pass        # the client gave up: that is what some cases test
        finally:
            c.close()
            ls.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return "127.0.0.1:%d" % ls.getsockname()[1], t


@test
def ktlsd_stats_command_refuses_cut_and_oversized_answers():
    from ktlsd_test import KTLSD
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
    # fewer bytes than announced: an error, not a silent half
    addr, t = fake_stats_listener([head + b"Content-Length: 100\r\n\r\n" + b"x" * 40])
    p = subprocess.run([KTLSD, "stats", "--stats-listen", addr], capture_output=True,
                       timeout=30)
    t.join(5)
    assert p.returncode == 1 and p.stdout == b"", p
    assert b"cut short (40 of 100 bytes)" in p.stderr, p.stderr
    # beyond the bound (256 MiB): a clear error, nothing printed
    block = b"y" * (1 << 20)
    addr, t = fake_stats_listener(
        part for part in [head + b"\r\n"] + [block] * 260)
    p = subprocess.run([KTLSD, "stats", "--stats-listen", addr], capture_output=True,
                       timeout=60)
    t.join(10)
    assert p.returncode == 1 and p.stdout == b"", (p.returncode, len(p.stdout))
    assert b"larger than 256 MiB" in p.stderr, p.stderr


if __name__ == "__main__":
    run_tests()
