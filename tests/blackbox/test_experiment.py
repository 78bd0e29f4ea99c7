"""Experiment mode without kTLS (every connection falls back to userspace TLS, which is
all the counting needs): arms spread by weight, per-arm counters that add up to the
totals, a consistent Prometheus histogram, the verdict's "not enough data", every bad
input a configuration error with FILE:LINE, a reload that changes the arms under a
download in flight, and experiment mode combined with other settings."""
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ktlsd_test import (KTLSD, Daemon, PacedDownload, client_context, run_tests,  # noqa: E402
                        sha256_file, test, wait_until)

MIB = 1024 * 1024
CAUSES = ("corked-record", "persist-crawl", "zero-window", "congestion", "unknown")

THREE_ARMS = """experiment = { arms = (
  { name = "sendfile"; send = { mode = "sendfile"; }; weight = 1; },
  { name = "capped"; send = { mode = "sendfile"; chunk = 16384; }; weight = 1; },
  { name = "write"; send = { mode = "write"; }; weight = 1; } ); };
"""

SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def metrics(d):
    """/metrics as {name: {frozenset(label items): value}}, with a TYPE for every family
    (histogram series under the family's name) checked on the way."""
    text = d.stats("/metrics", raw=True).decode()
    types, out = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ")
            types[name] = typ
            continue
        if line.startswith("#"):
            continue
        m = SAMPLE_RE.match(line)
        assert m, "bad sample line %r" % line
        name = m.group(1)
        family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in types else name
        assert family in types, "sample %s without TYPE" % name
        labels = frozenset(LABEL_RE.findall(m.group(2) or ""))
        out.setdefault(name, {})[labels] = float(m.group(3))
    return text, types, out


def by_arm(series, **more):
    """{arm: value} of a family's series whose other labels are `more`."""
    res = {}
    for labels, v in series.items():
        lab = dict(labels)
        if all(lab.get(k) == val for k, val in more.items()):
            res[lab["arm"]] = v
    return res


def promtool_ok(text):
    if shutil.which("promtool"):
        p = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                           capture_output=True, timeout=30)
        assert p.returncode == 0, p.stdout + p.stderr


def get_on(d, port, path, method="GET"):
    """One request on a fresh TLS connection to listener port `port`: (status, headers, body)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    s = client_context().wrap_socket(raw, server_hostname="localhost")
    try:
        s.sendall(("%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % (method, path)).encode())
        buf = b""
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            buf += chunk
    finally:
        s.close()
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict((k.strip().lower(), v.strip()) for k, v in
                   (ln.split(":", 1) for ln in lines[1:]))
    return int(lines[0].split()[1]), headers, body


def experiment(d):
    return d.stats("/stats/experiment")


# ---- assignment and counting ---------------------------------------------------------

@test
def three_arms_balanced_and_counters_add_up_to_the_totals():
    with Daemon(stats=True, conf_extra=THREE_ARMS) as d:
        big = d.put_random("big.bin", MIB + 4096, seed=5)
        want = sha256_file(big)
        d.put("small.txt", "small\n")
        n = 90
        for i in range(n):
            c = d.conn()
            r = c.request("GET", "/big.bin")
            assert r.status == 200 and hashlib.sha256(r.body).hexdigest() == want, r
            if i % 3 == 0:      # some small responses on the same connections
                assert c.request("GET", "/small.txt").status == 200
            if i % 9 == 0:
                assert c.request("GET", "/missing").status == 404
            c.close()
        wait_until(lambda: d.stats()["totals"]["connections_open"] == 0, 10)
        st = d.stats()
        t = st["totals"]
        x = st["experiment"]
        assert x == experiment(d), "/stats and /stats/experiment disagree"
        arms = {a["name"]: a for a in x["arms"]}
        assert list(arms) == ["sendfile", "capped", "write"], list(arms)
        for a in arms.values():
            assert abs(a["connections"] - n / 3) <= 1, (a["name"], a["connections"])
            assert a["configured"] and a["weight"] == 1
            # one large response per connection: every one of them in the window
            assert a["large_responses"] == a["connections"] == a["window"]["n"], a
        tot = lambda k: sum(a[k] for a in arms.values())  # noqa: E731
        assert tot("connections") == t["accepted"] == n, (tot("connections"), t)
        assert tot("responses") + tot("aborted") == t["requests"], t
        assert tot("aborted") == t["aborted"] == 0
        assert tot("bytes") == t["bytes_sent"], (tot("bytes"), t["bytes_sent"])
        for cause in CAUSES:
            assert sum(a["stalls"][cause] for a in arms.values()) == t["stalls"][cause], cause
        assert abs(tot("stall_seconds") - t["stall_ms_total"] / 1000) < 0.01
        assert tot("mitigations") == t["mitigations"]
        # each arm's settings went with its connections
        recent = d.recent()
        assert recent and all(r["arm"] in arms for r in recent), recent[:2]
        want_mode = {"sendfile": ("sendfile", 2 * MIB), "capped": ("sendfile", 16384),
                     "write": ("write", 2 * MIB)}
        for r in recent:
            assert (r["mode"], r["chunk"]) == want_mode[r["arm"]], r
        log = d.access_log()
        seen = re.findall(r"^.*\"GET /big\.bin .* conn=(\d+) arm=(\S+)$", log, re.M)
        assert len(seen) == n, log[-2000:]
        counts = {name: sum(1 for _, a in seen if a == name) for name in arms}
        assert all(abs(v - n / 3) <= 1 for v in counts.values()), counts
        # the rotation is deterministic: connection k gets arm (k - 1) mod 3
        for conn_id, arm in seen:
            assert arm == list(arms)[(int(conn_id) - 1) % 3], (conn_id, arm)

        text, types, m = metrics(d)
        promtool_ok(text)
        assert types["ktlsd_experiment_goodput_bytes_per_second"] == "histogram"
        assert by_arm(m["ktlsd_experiment_connections_total"]) == {
            k: a["connections"] for k, a in arms.items()}
        assert by_arm(m["ktlsd_experiment_responses_total"]) == {
            k: a["responses"] for k, a in arms.items()}
        assert by_arm(m["ktlsd_experiment_bytes_sent_total"]) == {
            k: a["bytes"] for k, a in arms.items()}
        assert sum(by_arm(m["ktlsd_experiment_responses_total"]).values()) + sum(
            by_arm(m["ktlsd_experiment_responses_aborted_total"]).values()) == \
            m["ktlsd_requests_total"][frozenset()]
        for cause in CAUSES:
            assert set(by_arm(m["ktlsd_experiment_stalls_total"], cause=cause)) == set(arms)
        h = "ktlsd_experiment_goodput_bytes_per_second"
        for name, a in arms.items():
            buckets = sorted(((float(dict(lab)["le"]), v) for lab, v in m[h + "_bucket"].items()
                              if dict(lab)["arm"] == name), key=lambda kv: kv[0])
            assert buckets[-1][0] == float("inf"), buckets
            counts = [v for _, v in buckets]
            assert counts == sorted(counts), "buckets not cumulative: %s" % buckets
            count = by_arm(m[h + "_count"])[name]
            total = by_arm(m[h + "_sum"])[name]
            assert counts[-1] == count == a["large_responses"], (counts, count, a)
            # the mean lies within the buckets that hold samples
            mean = total / count
            lo = max([le for le, v in buckets if v == 0] + [0.0])
            hi = min(le for le, v in buckets if v == count)
            assert lo < mean <= hi, (name, mean, lo, hi, buckets)
            # and agrees with the window's median to within the spread of the samples
            assert a["window"]["goodput_p10"] <= a["window"]["goodput_median"]
        assert re.match(r"(\w+: no stalls in \d+ responses|no single winner: |not enough data "
                        r"yet: no difference so far; 30 more large responses needed$)",
                        x["verdict"]), x["verdict"]


@test
def ktlsd_bench_drives_an_experiment_and_prints_the_servers_verdict():
    # one request per connection, so the rotation gives each arm its share; the verdict is
    # the server's, fetched from its stats listener after the run
    bench = os.path.join(os.path.dirname(KTLSD), "ktlsd-bench")
    with Daemon(stats=True, conf_extra=THREE_ARMS, args=["--workers", "2"]) as d:
        big = d.put_random("big.bin", MIB + 4096, seed=6)
        url = "https://127.0.0.1:%d/big.bin" % d.port
        stats = "127.0.0.1:%d" % d.stats_port
        p = subprocess.run([bench, url, "-n", "30", "-c", "3", "-q", "--file", big,
                            "--experiment", stats], capture_output=True, timeout=120)
        out = p.stdout.decode()
        assert p.returncode == 0, out + p.stderr.decode()
        assert "requests     30 ok, 0 errors" in out and "sha256 ok" in out, out
        view = out.split("server's experiment view (%s):\n" % stats, 1)
        assert len(view) == 2, out
        # the "resp" column: the responses each arm served (the daemon's own readiness
        # probe may add a connection without one)
        rows = {m.group(1): int(m.group(2)) for m in
                re.finditer(r"^(sendfile|capped|write) +1 +\d+ +(\d+) ", view[1], re.M)}
        # two workers take connections in their own order, so the rotation's 1:1:1 holds
        # to within one (the daemon's readiness probe also takes a turn)
        assert set(rows) == {"sendfile", "capped", "write"} and sum(rows.values()) == 30, view[1]
        assert all(9 <= n <= 11 for n in rows.values()), view[1]
        # the server's verdict line, whatever the speeds say; nothing stalled here, so it
        # claims no stall difference
        verdict = re.search(r"^verdict: (.+)$", view[1], re.M)
        assert verdict and "stalled in" not in verdict.group(1), view[1]
        assert sum(a["responses"] for a in experiment(d)["arms"]) == 30
        # json: the run, then the server's document
        p = subprocess.run([bench, url, "-n", "3", "-q", "--format", "json", "--experiment",
                            stats], capture_output=True, timeout=60)
        assert p.returncode == 0, p.stderr
        docs = p.stdout.decode().strip().split("\n")
        assert json.loads(docs[0])["requests"] == 3, docs[0]
        assert sum(a["responses"] for a in json.loads(docs[1])["arms"]) == 33, docs[1]
        # a stats listener that is not there: said, and a failed run
        p = subprocess.run([bench, url, "-n", "1", "-q", "--experiment", "127.0.0.1:1"],
                           capture_output=True, timeout=60)
        assert p.returncode == 1 and b"--experiment 127.0.0.1:1: connect" in p.stderr, p


@test
def a_small_sample_is_not_enough_data_in_every_view():
    with Daemon(stats=True, conf_extra=THREE_ARMS) as d:
        d.put_random("big.bin", 2 * MIB, seed=6)
        for _ in range(6):
            assert d.get("/big.bin").status == 200
        wait_until(lambda: d.stats()["totals"]["connections_open"] == 0, 10)
        x = experiment(d)
        # 2 large responses per arm, 10 wanted per arm before any claim
        assert x["verdict"] == "not enough data yet: 24 more large responses needed", x
        for a in x["arms"]:
            w = a["window"]
            assert w["n"] == 2 and w["stalled"] == 0 and w["stall_rate_ci95"][0] == 0, a
            assert w["goodput_median_ci95"] is None and w["goodput_p10_ci95"] is None, a
        addr = "127.0.0.1:%d" % d.stats_port
        p = subprocess.run([KTLSD, "stats", "--stats-listen", addr, "--experiment"],
                           capture_output=True, timeout=20)
        assert p.returncode == 0, p.stderr
        out = p.stdout.decode()
        assert re.search(r"^sendfile +1 +2 +2 +2 +0  0\.0 % \[0\.0, \d+\.\d\]", out, re.M), out
        assert "verdict: not enough data yet: 24 more large responses needed\n" in out, out
        p = subprocess.run([KTLSD, "stats", "--stats-listen", addr, "--experiment", "--json"],
                           capture_output=True, timeout=20)
        assert p.returncode == 0 and json.loads(p.stdout) == experiment(d), p.stdout[:300]
        p = subprocess.run([KTLSD, "stats", "--stats-listen", addr, "--experiment", "--recent"],
                           capture_output=True, timeout=20)
        assert p.returncode == 2, p


@test
def without_an_experiment_nothing_changes_shape():
    with Daemon(stats=True) as d:
        d.put("a.txt", "a\n")
        assert d.get("/a.txt").status == 200
        st = d.stats()
        assert "experiment" not in st
        text, _, m = metrics(d)
        assert "ktlsd_experiment_" not in text
        assert d.recent()[0]["arm"] is None
        assert " arm=" not in d.access_log()
        assert experiment(d)["arms"] == [] and experiment(d)["verdict"] == \
            "no experiment arms configured"


@test
def weights_are_honoured_and_the_json_access_log_names_the_arm():
    conf = """experiment = { arms = ( { name = "a"; weight = 3; }, { name = "b"; weight = 1; } ); };
log = { error = "%s"; access = "%s"; access_format = "json"; level = "info"; };
"""
    with Daemon(stats=True, start=False) as d:
        d.edit_conf('log = { error = "%s"; access = "%s"; level = "info"; };\n' % (
            d.log_path, d.access_path), conf % (d.log_path, d.access_path))
        d.start()
        d.put("a.txt", "a\n")
        for _ in range(8):
            assert d.get("/a.txt").status == 200
        wait_until(lambda: len(d.access_log().splitlines()) == 8, 5, what="8 log lines")
        lines = [json.loads(ln) for ln in d.access_log().splitlines()]
        # smooth weighted rotation of 3:1: a a b a, again
        assert [ln["arm"] for ln in lines] == ["a", "a", "b", "a"] * 2, lines
        arms = {a["name"]: a for a in experiment(d)["arms"]}
        assert arms["a"]["connections"] == 6 and arms["b"]["connections"] == 2, arms


@test
def a_large_response_cut_short_counts_in_its_arms_window():
    with Daemon(stats=True, conf_extra=THREE_ARMS) as d:
        d.put_random("big.bin", 64 * MIB, seed=7)
        d.put_random("one.bin", 2 * MIB, seed=8)
        c = d.conn(timeout=10)
        c.send("GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        c.read_head()
        got = len(c.buf)
        while got < 2 * MIB:
            got += len(c.sock.recv(1 << 18))
        c.close()       # the client goes away with most of the body unsent
        assert d.conn().request("HEAD", "/big.bin").status == 200       # arm capped
        assert d.get("/one.bin").status == 200                          # arm write
        wait_until(lambda: d.stats()["totals"]["connections_open"] == 0, 15)
        st = d.stats()
        arms = {a["name"]: a for a in st["experiment"]["arms"]}
        cut = arms["sendfile"]
        assert cut["aborted"] == 1 and cut["responses"] == 0, cut
        assert st["totals"]["aborted"] == 1
        # in the window, with the goodput of what it sent
        assert cut["large_responses"] == 1 and cut["window"]["n"] == 1, cut
        assert cut["window"]["goodput_median"] > 0, cut
        # the HEAD answer carried no body: not large, whatever its Content-Length
        assert arms["capped"]["responses"] == 1 and arms["capped"]["large_responses"] == 0
        assert arms["write"]["large_responses"] == 1
        _, _, m = metrics(d)
        h = "ktlsd_experiment_goodput_bytes_per_second_count"
        assert by_arm(m[h]) == {"sendfile": 1, "capped": 0, "write": 1}, m[h]


# ---- configuration errors -------------------------------------------------------------

# (what, the experiment text (a line with "@" marks where the error must point; the "@" is
#  dropped), a regex for the message)
BAD = [
    ("empty arms", 'experiment = {\n@  arms = ( );\n};', r"1 to 8 arms"),
    ("no arms", '@experiment = { };', r"needs arms"),
    ("arms not a list", 'experiment = {\n@  arms = "a";\n};', r"must be a list"),
    ("arm not a group", 'experiment = { arms = (\n@  "a" ); };', r"arm 1 must be a group"),
    ("unknown key in an arm", 'experiment = { arms = (\n  { name = "a";\n@    wieght = 2; } ); };',
     r'unknown setting "wieght"'),
    ("unknown key in experiment", 'experiment = {\n  arms = ( { name = "a"; } );\n@  seed = 1;\n};',
     r'unknown setting "seed"'),
    ("unknown key in an arm's send", 'experiment = { arms = (\n  { name = "a"; send = {\n@  mdoe = "write"; }; } ); };',
     r'unknown setting "mdoe"'),
    ("bad mode", 'experiment = { arms = (\n  { name = "a"; send = {\n@  mode = "fast"; }; } ); };',
     r"mode: must be one of"),
    ("chunk too small", 'experiment = { arms = (\n  { name = "a"; send = {\n@  chunk = 10; }; } ); };',
     r"chunk: 10 is out of range"),
    ("mss in an arm", 'experiment = { arms = (\n  { name = "a"; send = {\n@  mss = 1000; }; } ); };',
     r"mss cannot differ per arm"),
    ("duplicate names", 'experiment = { arms = (\n  { name = "a"; },\n  {\n@ name = "a"; } ); };',
     r'a second arm named "a"'),
    ("weight 0", 'experiment = { arms = ( { name = "a";\n@  weight = 0; } ); };',
     r"weight: 0 is out of range \[1, 1000\]"),
    ("negative weight", 'experiment = { arms = ( { name = "a";\n@  weight = -3; } ); };',
     r"weight: -3 is out of range"),
    ("huge weight", 'experiment = { arms = ( { name = "a";\n@  weight = 100000; } ); };',
     r"weight: 100000 is out of range"),
    ("64-bit weight", 'experiment = { arms = ( { name = "a";\n@  weight = 9999999999L; } ); };',
     r"weight: 9999999999 is out of range"),
    ("weight not a number", 'experiment = { arms = ( { name = "a";\n@  weight = "2"; } ); };',
     r"weight: must be an integer"),
    ("name with a space", 'experiment = { arms = ( {\n@ name = "a b"; } ); };', r"arm name: 1 to 31"),
    ("name with a quote", 'experiment = { arms = ( {\n@ name = "a\\"b"; } ); };', r"arm name"),
    ("empty name", 'experiment = { arms = ( {\n@ name = ""; } ); };', r"arm name"),
    ("name too long", 'experiment = { arms = ( {\n@ name = "%s"; } ); };' % ("n" * 32), r"arm name"),
    ("no name", 'experiment = { arms = (\n@  { weight = 2; } ); };', r"arm 1 needs a name"),
    ("name not a string", 'experiment = { arms = ( {\n@ name = 5; } ); };', r"name: must be a string"),
    ("nine arms", 'experiment = {\n@ arms = ( %s ); };' % ", ".join(
        '{ name = "a%d"; }' % i for i in range(9)), r"1 to 8 arms"),
]


@test
def every_bad_experiment_is_a_configuration_error_with_file_and_line():
    for what, text, rx in BAD + [("in a listener: " + w, t, r) for w, t, r in BAD[:6]]:
        listener = what.startswith("in a listener")
        with Daemon(start=False, listen=("{ address = \"127.0.0.1:0\"; " +
                                         ("@@" if listener else "") + " }",)) as d:
            if listener:
                d.edit_conf("@@", text.replace("experiment = ", "experiment = ", 1))
            else:
                d.edit_conf(d.conf_text, d.conf_text + text + "\n")
            lines = d.conf_text.split("\n")
            want = next(i + 1 for i, ln in enumerate(lines) if "@" in ln)
            d.edit_conf(d.conf_text, d.conf_text.replace("@", "", 1))
            p = subprocess.run([KTLSD, "-t", "-c", d.conf_path], capture_output=True,
                               timeout=20, text=True, errors="replace")
            err = p.stdout + p.stderr
            assert p.returncode == 1, (what, p.returncode, err)
            assert "Sanitizer" not in err and "runtime error" not in err, err
            m = re.search(r"%s:(\d+): (.*)" % re.escape(d.conf_path), err)
            assert m, (what, err)
            assert int(m.group(1)) == want, (what, m.group(1), want, err, d.conf_text)
            assert re.search(rx, m.group(2)), (what, err)


@test
def good_experiments_pass_the_check():
    good = [
        THREE_ARMS,
        'experiment = { arms = ( { name = "only"; } ); };',
        'experiment = { arms = ( { name = "A-1_x.y"; weight = 1000; send = { notsent_lowat = 16384; '
        'chunk = 4096; mode = "auto"; }; }, { name = "b"; } ); };',
    ]
    for text in good:
        with Daemon(start=False, conf_extra=text) as d:
            p = subprocess.run([KTLSD, "-t", "-c", d.conf_path], capture_output=True,
                               timeout=20, text=True)
            assert p.returncode == 0, (text, p.stdout + p.stderr)


# ---- reload ---------------------------------------------------------------------------

@test
def reload_changes_the_arms_while_a_download_keeps_its_own():
    size = 48 * MIB
    rate = 8 * MIB       # bytes/s the client reads at: ~6 s in flight
    arms_ab = ('experiment = { arms = ( { name = "old-write"; send = { mode = "write"; }; }, '
               '{ name = "old-sendfile"; send = { mode = "sendfile"; }; } ); };\n')
    arms_cd = ('experiment = { arms = ( { name = "new-capped"; send = { chunk = 16384; }; }, '
               '{ name = "new-write"; send = { mode = "write"; }; weight = 2; } ); };\n')
    with Daemon(stats=True, conf_extra=arms_ab, timeouts={"send_idle": 20}) as d:
        path = d.put_random("big.bin", size, seed=8)
        want = sha256_file(path)
        d.put("a.txt", "a\n")
        c = d.conn(timeout=10)
        dl = PacedDownload(c, "/big.bin", size, rate)
        dl.read_until(4 * MIB)
        live = [r for r in d.stats()["connections"] if r["state"] == "send_body"]
        assert len(live) == 1 and live[0]["arm"] == "old-write" and live[0]["mode"] == "write", live

        d.edit_conf(arms_ab, arms_cd)
        d.signal(signal.SIGHUP)
        d.wait_log(r"reloaded .*new connections use the new configuration", timeout=10)
        for _ in range(3):
            assert d.get("/a.txt").status == 200
        # once per configuration, at its first connection
        assert d.log().count("experiment: new connections spread over old-write (weight 1), "
                             "old-sendfile (weight 1)") == 1, d.log()
        assert d.log().count("experiment: new connections spread over new-capped (weight 1), "
                             "new-write (weight 2)") == 1, d.log()
        assert dl.got < size / 2, "too fast: the download was not in flight across the reload"
        live = [r for r in d.stats()["connections"] if r["state"] == "send_body"]
        assert len(live) == 1 and live[0]["arm"] == "old-write", live
        dl.read_until(size)
        assert dl.hexdigest() == want, "download across a reload is not byte-exact"
        c.close()
        wait_until(lambda: d.stats()["totals"]["connections_open"] == 0, 10)
        arms = {a["name"]: a for a in experiment(d)["arms"]}
        assert set(arms) == {"old-write", "old-sendfile", "new-capped", "new-write"}, arms
        # the in-flight connection's response counts for its own arm, after the reload
        assert arms["old-write"]["responses"] == 1 and arms["old-write"]["large_responses"] == 1
        assert arms["old-write"]["bytes"] > size
        assert not arms["old-write"]["configured"] and arms["old-write"]["weight"] == 0
        # new connections: the new rotation from its start (weights 1 and 2)
        assert arms["new-capped"]["connections"] == 1 and arms["new-write"]["connections"] == 2
        log = d.access_log()
        assert re.search(r'"GET /big\.bin HTTP/1\.1" 200 %d .* arm=old-write$' % size, log, re.M), log
        text, _, m = metrics(d)
        promtool_ok(text)
        # the removed arms stay in /metrics (counters never go back), weight 0
        assert by_arm(m["ktlsd_experiment_arm_weight"]) == {
            "old-write": 0, "old-sendfile": 0, "new-capped": 1, "new-write": 2}
        assert by_arm(m["ktlsd_experiment_responses_total"])["old-write"] == 1
        # the verdict is about the arms configured now
        assert experiment(d)["verdict"] == "not enough data yet: 20 more large responses needed"


# ---- combinations ---------------------------------------------------------------------

@test
def experiment_with_the_file_cache_off_and_head_requests():
    conf = THREE_ARMS + "file_cache = { entries = 0; };\n"
    with Daemon(stats=True, conf_extra=conf) as d:
        big = d.put_random("big.bin", 3 * MIB, seed=9)
        want = sha256_file(big)
        for _ in range(3):
            c = d.conn()
            r = c.request("HEAD", "/big.bin")
            assert r.status == 200 and r.header("content-length") == str(3 * MIB) and not r.body
            r = c.request("GET", "/big.bin")
            assert hashlib.sha256(r.body).hexdigest() == want
            r = c.request("GET", "/big.bin", {"Range": "bytes=0-99"})
            assert r.status == 206 and len(r.body) == 100
            c.close()
        wait_until(lambda: d.stats()["totals"]["connections_open"] == 0, 10)
        st = d.stats()
        assert st["file_cache"]["capacity"] == 0 and st["file_cache"]["hits"] == 0
        arms = st["experiment"]["arms"]
        for a in arms:
            # HEAD, GET and a range per connection; only the GET's body is large
            assert a["connections"] == 1 and a["responses"] == 3, a
            assert a["large_responses"] == 1 and a["window"]["n"] == 1, a
        assert sum(a["responses"] for a in arms) == st["totals"]["requests"] == 9
        assert sum(a["bytes"] for a in arms) == st["totals"]["bytes_sent"]


@test
def experiment_with_per_listener_send_overrides_and_a_listener_experiment():
    listen = (
        '{ address = "127.0.0.1:0"; send = { mode = "write"; chunk = 65536; '
        'notsent_lowat = 32768; }; }',
        '{ address = "127.0.0.1:0"; experiment = { arms = ( { name = "own-a"; send = { '
        'mode = "splice"; }; }, { name = "own-b"; } ); }; }',
    )
    conf = ('experiment = { arms = ( { name = "plain"; }, '
            '{ name = "lowat"; send = { notsent_lowat = 16384; }; } ); };\n')
    with Daemon(stats=True, listen=listen, conf_extra=conf) as d:
        d.put("a.txt", "a\n" * 1000)
        p1, p2 = d.ports
        conns = []
        for port in (p1, p1, p2, p2):
            raw = socket.create_connection(("127.0.0.1", port), timeout=10)
            s = client_context().wrap_socket(raw, server_hostname="localhost")
            s.sendall(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            buf = b""
            while b"\r\n\r\n" not in buf or len(buf.split(b"\r\n\r\n", 1)[1]) < 2000:
                buf += s.recv(65536)
            conns.append(s)     # kept open: the records are live in /stats
        live = {r["arm"]: r for r in d.stats()["connections"]}
        assert set(live) == {"plain", "lowat", "own-a", "own-b"}, live
        # listener 1's settings, and the arm's notsent_lowat on top
        assert (live["plain"]["mode"], live["plain"]["chunk"]) == ("write", 65536), live["plain"]
        assert (live["lowat"]["mode"], live["lowat"]["chunk"]) == ("write", 65536), live["lowat"]
        assert live["plain"]["notsent_lowat"] == 32768, live["plain"]
        assert live["lowat"]["notsent_lowat"] == 16384, live["lowat"]
        # listener 2 runs its own experiment over the global send settings
        assert live["own-a"]["mode"] == "splice" and live["own-b"]["mode"] == "sendfile", live
        for s in conns:
            s.close()
        wait_until(lambda: d.stats()["totals"]["connections_open"] == 0, 10)
        x = experiment(d)
        assert [a["name"] for a in x["arms"]] == ["plain", "lowat", "own-a", "own-b"], x
        assert all(a["connections"] == 1 and a["responses"] == 1 for a in x["arms"]), x
        text, _, m = metrics(d)
        promtool_ok(text)
        status, _, body = get_on(d, p2, "/a.txt")
        assert status == 200 and len(body) == 2000


if __name__ == "__main__":
    run_tests()
