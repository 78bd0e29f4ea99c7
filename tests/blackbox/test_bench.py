"""ktlsd-bench against a real daemon: --verify and --discard counts agree with what the
server says it sent, a wrong checksum is caught, and a tiny --matrix prints a table, JSON
and an SVG that parse; --runs gives medians and spreads and verdicts that follow from them;
--path veth,... works where this host can make network namespaces (probed) and exits 2
with the reason where it cannot, and leaves no namespace behind."""
import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ktlsd_test import KTLSD, Daemon, Skip, run_tests, sha256_file, test, wait_until  # noqa: E402

BENCH = os.environ.get("KTLSD_BENCH") or os.path.join(os.path.dirname(KTLSD), "ktlsd-bench")


def bench(*args, timeout=120, env=None):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([BENCH] + [str(a) for a in args], capture_output=True,
                          timeout=timeout, env=e)


def body_bytes_sent(d):
    wait_until(lambda: d.stats()["totals"]["connections_open"] == 0, 10)
    return sum(r["bytes_body"] for r in d.recent())


@test
def verify_and_discard_counts_match_the_server():
    size = 3 * 1024 * 1024 + 5
    for mode in ("--verify", "--discard"):
        with Daemon(stats=True) as d:
            f = d.put_random("f.bin", size, seed=11)
            url = "https://127.0.0.1:%d/f.bin" % d.port
            args = ["-c", 3, "-n", 30, "--format", "json", url]
            args += ["--file", f] if mode == "--verify" else ["--discard"]
            p = bench(*args)
            assert p.returncode == 0, (p.stdout, p.stderr)
            r = json.loads(p.stdout)
            assert r["requests"] == 30 and r["errors"] == 0, r
            assert r["bytes_body"] == 30 * size, r
            assert r["mode"] == mode[2:]
            assert r["gib_per_s"] > 0 and r["requests_per_s"] > 0
            assert 0 < r["latency_ms"]["p50"] <= r["latency_ms"]["p90"] <= r["latency_ms"]["p99"] \
                <= r["latency_ms"]["max"], r
            st = d.stats()
            # --discard opens each connection with a HEAD (decrypted: tickets, head length)
            assert st["totals"]["requests"] == 30 + (3 if mode == "--discard" else 0), st["totals"]
            assert body_bytes_sent(d) == 30 * size
            if mode == "--discard":
                # the wire carries more than the plaintext: 22 bytes per TLS record at least
                assert r["bytes_wire"] > r["bytes_body"], r


@test
def discard_never_issues_more_than_n_requests():
    """-n N is N GETs even when a connection's opening HEAD ends after the other
    connections have used up the budget (it issued a GET regardless: 9 of 8 in a
    bench/compare run)."""
    with Daemon(stats=True) as d:
        d.put_random("s.bin", 20000, seed=13)
        url = "https://127.0.0.1:%d/s.bin" % d.port
        for i in range(12):
            p = bench("-c", 16, "-n", 16, "--discard", "--format", "json", url)
            assert p.returncode == 0, (p.stdout, p.stderr)
            r = json.loads(p.stdout)
            assert r["requests"] == 16 and r["errors"] == 0, (i, r)
            assert r["bytes_body"] == 16 * 20000, (i, r)
        st = d.stats()
        # each connection opens with a HEAD; the GETs are exactly 12 x 16
        assert st["totals"]["requests"] == 12 * (16 + 16), st["totals"]


@test
def a_wrong_checksum_fails_and_table_output_says_so():
    with Daemon() as d:
        d.put_random("f.bin", 100000, seed=12)
        url = "https://127.0.0.1:%d/f.bin" % d.port
        p = bench("-n", 2, "--sha256", "00" * 32, url)
        assert p.returncode == 1, p.stdout
        assert b"MISMATCH" in p.stdout and b"SHA-256 mismatch" in p.stdout, p.stdout
        p = bench("-n", 2, "--format", "csv", url)
        assert p.returncode == 0, p.stderr
        head, row = p.stdout.decode().strip().split("\n")
        assert dict(zip(head.split(","), row.split(",")))["requests"] == "2"
        p = bench("-n", 1, "https://127.0.0.1:%d/missing" % d.port, "--format", "json")
        assert p.returncode == 1 and "HTTP status: 404" in json.loads(p.stdout)["first_error"]


@test
def usage_errors_exit_2():
    for args in ([], ["http://x/"], ["https://127.0.0.1:1/", "--verify", "--discard"],
                 ["https://127.0.0.1:1/", "--format", "xml"], ["--matrix", "--file", "0"],
                 ["https://127.0.0.1:1/", "--sha256", "abc"]):
        p = bench(*args)
        assert p.returncode == 2, (args, p.stdout, p.stderr)
    p = bench("https://127.0.0.1:1/", "-n", 1, "--timeout", 5)
    assert p.returncode == 1 and b"connect" in p.stdout + p.stderr, p.stdout


def matrix(*args, timeout=300):
    return bench("--matrix", *args, timeout=timeout, env={"KTLSD": KTLSD})


def median(v):
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


HAVE_KTLS = os.path.exists("/proc/net/tls_stat")
BANNER = "every cell fell back to userspace TLS: the send modes do not differ here"


@test
def tiny_matrix_table_json_and_svg():
    tmp = Daemon(start=False)     # only for its temp dir and cleanup
    try:
        svg = os.path.join(tmp.tmp, "m.svg")
        p = matrix("--modes", "sendfile,userspace", "--file", "2M", "--seconds", 30,
                   "--runs", 2, "--format", "json", "--svg", svg)
        assert p.returncode == 0, (p.stdout, p.stderr)
        m = json.loads(p.stdout)
        cells = m["cells"]
        assert [c["mode"] for c in cells] == ["sendfile", "userspace"], cells
        assert m["paths"] == ["lo"] and all(c["path"] == "lo" for c in cells), m
        for c in cells:
            assert c["complete"] and c["mib_per_s"] > 0 and len(c["runs"]) == 2, c
            assert c["server_stalls"] == 0 and c["client_stalls"] == 0, c
            assert c["verdict"] in ("best", "same within noise") or \
                c["verdict"].startswith("slower than best by "), c
            if not HAVE_KTLS:
                assert c["tls_tx"] == "userspace", c
        assert [c["verdict"] for c in cells].count("best") == 1, cells
        root = ET.parse(svg).getroot()
        ns = "{http://www.w3.org/2000/svg}"
        assert root.tag == ns + "svg"
        bars = [r for r in root.iter(ns + "rect") if r.get("class") == "bar"]
        dots = [c for c in root.iter(ns + "circle") if c.get("class") == "run"]
        assert len(bars) == 2 and len(dots) == 4, (len(bars), len(dots))
        panels = [g for g in root.iter(ns + "g") if g.get("class") == "panel"]
        assert len(panels) == 1 and "path lo" in "".join(panels[0].itertext())
        p = matrix("--modes", "write", "--lowat", "0,16384", "--file", "1M", "--runs", 1)
        assert p.returncode == 0, p.stderr
        lines = [l for l in p.stdout.decode().strip().split("\n") if not l.startswith("NOTE")]
        assert lines[1] == "path lo", lines
        assert lines[2].split()[:4] == ["mode", "chunk", "mss", "lowat"], lines
        assert len(lines) == 5 and lines[3].split()[:4] == ["write", "0", "0", "0"] and \
            lines[4].split()[:4] == ["write", "0", "0", "16384"], lines
    finally:
        tmp.cleanup()


def check_verdicts(cells):
    """The verdicts follow from the runs in the JSON: recompute them."""
    for path in {c["path"] for c in cells}:
        row = [c for c in cells if c["path"] == path]
        free = [c for c in row if c["stall_free"]]
        best = max(free, key=lambda c: c["mib_per_s_median"]) if free else None

        def spread(c):
            return (c["mib_per_s_max"] - c["mib_per_s_min"]) / c["mib_per_s_median"]
        for c in row:
            if c is best:
                assert c["verdict"] == "best", c
            elif c["stall_free"]:
                sep = (c["mib_per_s_max"] < best["mib_per_s_min"] and
                       1 - c["mib_per_s_median"] / best["mib_per_s_median"] >
                       max(spread(c), spread(best)))
                if sep:
                    assert c["verdict"].startswith("slower than best by "), (c, best)
                else:
                    assert c["verdict"] == "same within noise", (c, best)


@test
def matrix_runs_give_median_spread_and_honest_verdicts():
    """--runs 5: every cell has 5 runs, median and min..max of them; a verdict says "slower"
    only when the runs separate. Without kTLS every mode is the same userspace TLS path:
    the banner says so and no cell is called slower."""
    p = matrix("--modes", "sendfile,write,userspace", "--file", "4M", "--runs", 5,
               "--format", "json")
    assert p.returncode == 0, (p.stdout, p.stderr)
    m = json.loads(p.stdout)
    assert m["runs"] == 5
    for c in m["cells"]:
        v = [r["mib_per_s"] for r in c["runs"]]
        assert len(v) == 5 and all(r["started"] and r["complete"] for r in c["runs"]), c
        assert c["mib_per_s_min"] == min(v) and c["mib_per_s_max"] == max(v), c
        assert abs(c["mib_per_s_median"] - median(v)) < 0.02, c
        assert c["mib_per_s"] == c["mib_per_s_median"]
    check_verdicts(m["cells"])
    tls = {r["tls_tx"] for c in m["cells"] for r in c["runs"]}
    if "kernel" in tls:
        assert m["ktls"] is True and m["banner"] is None, m
        return
    assert tls == {"userspace"}, tls
    assert m["ktls"] is False and m["banner"] == BANNER, m
    verdicts = sorted(c["verdict"] for c in m["cells"])
    assert verdicts == ["best", "same within noise", "same within noise"], m["cells"]
    p = matrix("--modes", "sendfile,write", "--file", "1M", "--runs", 3)
    assert p.returncode == 0 and ("NOTE: " + BANNER).encode() in p.stdout, p.stdout


def netns_probe():
    """Can this host make a network namespace? (None, or the reason it cannot.)"""
    if os.geteuid() != 0:
        return "not root"
    name = "ktlsdprobe-%d" % os.getpid()
    r = subprocess.run(["ip", "netns", "add", name], capture_output=True)
    if r.returncode != 0:
        return r.stderr.decode().strip() or "ip netns add failed"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return None


def qdisc_probe(kind):
    """Does this kernel have the qdisc? (tried in a scratch namespace)"""
    name = "ktlsdprobe-%d" % os.getpid()
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        args = {"netem": ["netem", "delay", "1ms"],
                "tbf": ["tbf", "rate", "1gbit", "burst", "64kb", "latency", "1s"]}[kind]
        r = subprocess.run(["tc", "-n", name, "qdisc", "add", "dev", "lo", "root"] + args,
                           capture_output=True)
        return r.returncode == 0
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def our_namespaces():
    r = subprocess.run(["ip", "netns", "list"], capture_output=True)
    return [l.split()[0] for l in r.stdout.decode().splitlines() if l.startswith("ktlsdb-")]


@test
def matrix_veth_paths_work_or_exit_2_with_the_reason():
    why = netns_probe()
    args = ["--modes", "write", "--file", "1M", "--runs", 1, "--format", "json",
            "--path", "lo", "--path", "veth,mtu=1500", "--path", "veth,mtu=9000"]
    p = matrix(*args)
    if why is not None:
        assert p.returncode == 2 and p.stdout == b"", (why, p.stdout, p.stderr)
        assert b"root" in p.stderr or b"namespace" in p.stderr or b"netns" in p.stderr, \
            (why, p.stderr)
        return
    before = our_namespaces()
    assert p.returncode == 0, (p.stdout, p.stderr)
    m = json.loads(p.stdout)
    assert m["paths"] == ["lo", "veth,mtu=1500", "veth,mtu=9000"], m["paths"]
    mss = {c["path"]: c["snd_mss"] for c in m["cells"]}
    # the MSS follows each path's MTU (40 bytes of headers, 12 of TCP timestamps): the
    # connection really went over that veth, not loopback
    assert mss["veth,mtu=1500"] == 1448 and mss["veth,mtu=9000"] == 8948, mss
    assert mss["lo"] > 9000, mss
    for c in m["cells"]:
        assert c["complete"] and c["verdict"] == "best", c
    assert our_namespaces() == before, our_namespaces()
    # netem and tbf: made where the kernel has them, else exit 2 naming the qdisc
    for kind, spec in (("netem", "veth,mtu=1500,delay=2ms,loss=0.01%"),
                       ("tbf", "veth,mtu=9000,rate=400mbit")):
        p = matrix("--modes", "write", "--file", "1M", "--runs", 1, "--format", "json",
                   "--path", spec)
        if qdisc_probe(kind):
            assert p.returncode == 0, (kind, p.stdout, p.stderr)
            c = json.loads(p.stdout)["cells"][0]
            assert c["path"] == spec and c["complete"], c
        else:
            assert p.returncode == 2 and kind.encode() in p.stderr, (kind, p.stderr)
        assert our_namespaces() == before, (kind, our_namespaces())


@test
def matrix_veth_namespaces_removed_on_sigterm_and_after_a_killed_run():
    if netns_probe() is not None:
        raise Skip("no network namespaces here: " + netns_probe())
    before = our_namespaces()
    # a stale pair from a run that was SIGKILLed (its pid is gone): removed at the next start
    dead = next(pid for pid in range(4000000, 3000000, -1) if not os.path.exists("/proc/%d" % pid))
    stale = ["ktlsdb-%d-0s" % dead, "ktlsdb-%d-0c" % dead]
    for n in stale:
        subprocess.run(["ip", "netns", "add", n], check=True)
    proc = subprocess.Popen([BENCH, "--matrix", "--modes", "write", "--file", "64M",
                             "--runs", "25", "--path", "veth,mtu=1500"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ, KTLSD=KTLSD))
    try:
        mine = ["ktlsdb-%d-0s" % proc.pid, "ktlsdb-%d-0c" % proc.pid]
        wait_until(lambda: set(mine) <= set(our_namespaces()), 10, what="namespaces made")
        wait_until(lambda: not set(stale) & set(our_namespaces()), 10, what="stale removed")
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for n in stale:
            subprocess.run(["ip", "netns", "del", n], capture_output=True)
    assert proc.returncode == 128 + signal.SIGTERM, (proc.returncode, err)
    assert b"removed namespace ktlsdb-%d-0s" % dead in err, err
    assert our_namespaces() == before, our_namespaces()


@test
def matrix_killed_with_sigkill_leaves_no_ktlsd_running():
    """ktlsd-bench cannot clean up after SIGKILL: its ktlsd must die with it anyway."""
    scratch = Daemon(start=False)     # its temp dir: ktlsd-bench's TMPDIR, removed after
    proc = subprocess.Popen([BENCH, "--matrix", "--modes", "write", "--file", "64M",
                             "--runs", "25"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                            env=dict(os.environ, KTLSD=KTLSD, TMPDIR=scratch.tmp))

    def children():
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(proc.pid)],
                             capture_output=True).stdout.split()
        return [int(x) for x in out]
    try:
        wait_until(lambda: children(), 10, what="a ktlsd started")
        kids = children()
    finally:
        proc.kill()
        proc.wait()

    def alive(pid):
        try:
            with open("/proc/%d/stat" % pid) as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False
    try:
        wait_until(lambda: not any(alive(k) for k in kids), 5, what="ktlsd gone")
    finally:
        for k in kids:
            if alive(k):
                os.kill(k, signal.SIGKILL)
        scratch.cleanup()


@test
def matrix_usage_errors_exit_2():
    before = our_namespaces() if netns_probe() is None else []
    for args in (["--path", "eth0"], ["--path", "veth,mtu=70000"], ["--path", "veth,mtu"],
                 ["--path", "veth,delay=5;rm"], ["--runs", "0"], ["--runs", "x"],
                 ["--modes", "sendfile:"], ["--modes", "sendfile:-5"]):
        p = matrix("--file", "1M", *args)
        assert p.returncode == 2 and p.stdout == b"", (args, p.stdout, p.stderr)
    if netns_probe() is None:
        assert our_namespaces() == before, our_namespaces()

@test
def stall_matrix_report_reads_guest_lines_and_writes_json_and_heat_map():
    """bench/stall-matrix's host side on a real matrix (here, lo, this kernel): one row per
    (kernel, path, setting), the row's best, auto against it, an SVG that parses."""
    p = matrix("--modes", "write,auto", "--lowat", "0,16384", "--file", "1M", "--runs", 2,
               "--format", "json")
    assert p.returncode == 0, p.stderr
    m = json.loads(p.stdout)
    tmp = Daemon(start=False)
    try:
        log = os.path.join(tmp.tmp, "log")
        with open(log, "w") as f:
            f.write("guest-init: noise\n")
            for k in ("kA", "kB"):
                f.write("STALL-MATRIX-JSON " + json.dumps({"kernel": k, "release": "r",
                                                           "matrix": m}) + "\n")
        out = os.path.join(tmp.tmp, "sm")
        top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        r = subprocess.run([sys.executable, os.path.join(top, "bench", "stall_matrix_report.py"),
                            log, "--json", out + ".json", "--svg", out + ".svg"],
                           capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr
        res = json.load(open(out + ".json"))
        assert res["kernels"] == ["kA", "kB"] and len(res["cells"]) == 8, res["kernels"]
        for c in res["cells"]:
            src = [x for x in m["cells"] if (x["mode"], x["lowat"]) == (c["mode"], c["lowat"])][0]
            assert abs(c["gib_per_s"] - src["mib_per_s_median"] / 1024) < 1e-3, (c, src)
            assert len(c["runs"]) == 2 and c["verdict"] == src["verdict"], c
        assert len(res["rows"]) == 2
        for row in res["rows"]:
            # The report's speeds are rounded (GiB/s, 4 places): two cells can tie there,
            # so the best is any stall-free cell at the fastest speed after rounding.
            free = [x for x in m["cells"] if x["stall_free"]]
            top_speed = max(round(x["mib_per_s_median"] / 1024, 4) for x in free)
            tied = ["%s lowat %d" % (x["mode"], x["lowat"]) for x in free
                    if round(x["mib_per_s_median"] / 1024, 4) == top_speed]
            assert row["best"]["setting"] in tied, (row, tied)
            assert abs(row["best"]["gib_per_s"] - top_speed) < 1e-9, (row, top_speed)
            assert [a["lowat"] for a in row["auto"]] == [0, 16384], row
            for a in row["auto"]:
                assert a["status"] in ("meets goal", "within noise", "below goal", "stalls"), a
                assert a["goal_met"] == (a["ratio"] is not None and a["ratio"] >= 0.9), a
        root = ET.parse(out + ".svg").getroot()
        cells = [x for x in root.iter("{http://www.w3.org/2000/svg}rect")
                 if x.get("class") == "cell"]
        assert len(cells) == 8, len(cells)
        assert b"| kA | lo |" in r.stdout, r.stdout
    finally:
        tmp.cleanup()


if __name__ == "__main__":
    run_tests()
