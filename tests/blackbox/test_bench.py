"""ktlsd-bench against a real daemon: --verify and --discard counts agree with what the
server says it sent, a wrong checksum is caught, and a tiny --matrix prints a table, JSON
and an SVG that parse."""
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ktlsd_test import KTLSD, Daemon, run_tests, sha256_file, test, wait_until  # noqa: E402

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


@test
def tiny_matrix_table_json_and_svg():
    tmp = Daemon(start=False)     # only for its temp dir and cleanup
    try:
        svg = os.path.join(tmp.tmp, "m.svg")
        env = {"KTLSD": KTLSD}
        p = bench("--matrix", "--modes", "sendfile,userspace", "--file", "2M", "--seconds", 30,
                  "--format", "json", "--svg", svg, env=env)
        assert p.returncode == 0, (p.stdout, p.stderr)
        m = json.loads(p.stdout)
        cells = m["cells"]
        assert [c["mode"] for c in cells] == ["sendfile", "userspace"], cells
        kernel = os.path.exists("/proc/net/tls_stat")
        for c in cells:
            assert c["complete"] and c["mib_per_s"] > 0, c
            assert c["server_stalls"] == 0 and c["client_stalls"] == 0, c
            assert c["verdict"] == "ok" or c["verdict"].startswith("slower than best"), c
            if not kernel:
                assert c["tls_tx"] == "userspace", c
        root = ET.parse(svg).getroot()
        assert root.tag.endswith("svg") and len(root.findall("{http://www.w3.org/2000/svg}rect")) == 3
        p = bench("--matrix", "--modes", "write", "--lowat", "0,16384", "--file", "1M", env=env)
        assert p.returncode == 0, p.stderr
        lines = p.stdout.decode().strip().split("\n")
        assert lines[1].split()[:3] == ["mode", "mss", "lowat"], lines
        assert len(lines) == 4 and lines[2].split()[:3] == ["write", "0", "0"] and \
            lines[3].split()[:3] == ["write", "0", "16384"], lines
    finally:
        tmp.cleanup()


if __name__ == "__main__":
    run_tests()
