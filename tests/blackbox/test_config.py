"""Configuration and command line: `ktlsd -t` accepts good files and rejects bad ones with
FILE:LINE, command-line options beat the file, and --demo serves a directory with no
configuration at all.
"""
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ktlsd_test import (KTLSD, TOP_SRCDIR, Daemon, client_context, make_cert,  # noqa: E402
                        run_tests, test, wait_until)

ENV = dict(os.environ, ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "detect_leaks=1"))


def run(*args, timeout=20):
    return subprocess.run([KTLSD] + list(args), capture_output=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env=ENV, text=True, errors="replace")


class Conf:
    """A temp dir with a certificate, a document root and a config built from lines."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="ktlsd-conf-")
        self.crt, self.key = make_cert(self.tmp)
        self.root = os.path.join(self.tmp, "root")
        os.mkdir(self.root)

    def base(self):
        return [
            'listen = [ "127.0.0.1:0" ];',
            'document_root = "%s";' % self.root,
            'tls = {',
            '  certificate = "%s";' % self.crt,
            '  private_key = "%s";' % self.key,
            '};',
            'timeouts = { handshake = 5; header = 5.5; };',
            'log = { error = "stderr"; level = "info"; };',
        ] + (["run_as_root = true;"] if os.geteuid() == 0 else [])

    def write(self, lines, name="ktlsd.conf"):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def cleanup(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


def check_output_clean(p):
    text = p.stdout + p.stderr
    assert not re.search(r"(ERROR: (Address|Leak)Sanitizer|runtime error:)", text), text


# (name, bad line, the base line it replaces (index; None: appended), 
#  a regex the error message must match besides FILE:LINE)
BAD = [
    ("unknown top-level key", "bogus_setting = 1;", None, r"bogus_setting"),
    ("unknown key in a group", "limits = { headers = 50; max_body = 10; };", None,
     r"max_body"),
    ("misspelt timeout", "timeouts = { handshak = 5; };", 6, r"handshak"),
    ("wrong type: string for a number", 'max_connections = "ten";', None,
     r"max_connections"),
    ("wrong type: number for a string", "document_root = 42;", 1, r"document_root"),
    ("wrong type: string for seconds", 'timeouts = { keepalive = "60s"; };', 6,
     r"keepalive"),
    ("wrong type: group expected", 'send = "sendfile";', None, r"send"),
    ("out of range: max_connections 0", "max_connections = 0;", None, r"max_connections"),
    ("out of range: negative timeout", "timeouts = { send_idle = -1; };", 6,
     r"send_idle"),
    ("out of range: limits.headers", "limits = { headers = 1; };", None, r"headers"),
    ("out of range: send.chunk", "send = { chunk = 100; };", None, r"chunk"),
    ("out of range: mss", "send = { mss = 10; };", None, r"mss"),
    ("bad listen address", 'listen = [ "1.2.3.4.5:443" ];', 0, r"1\.2\.3\.4\.5"),
    ("bad listen port", 'listen = [ "127.0.0.1:99999" ];', 0, r"99999"),
    ("listen: v6 without brackets", 'listen = [ "::1:443" ];', 0, r"::1:443"),
    ("listen: not a string", "listen = [ 443 ];", 0, r"listen"),
    ("bad send mode", 'send = { mode = "turbo"; };', None, r"mode"),
    ("file_cache: negative entries", "file_cache = { entries = -1; };", None, r"entries"),
    ("file_cache: valid 0", "file_cache = { valid = 0; };", None, r"valid"),
    ("file_cache: unknown key", "file_cache = { size = 10; };", None, r"size"),
    ("file_cache: not a group", "file_cache = 100;", None, r"file_cache"),
    ("bad log level", 'log = { level = "loud"; };', 7, r"level"),
    ("gzip_static: not a boolean", 'gzip_static = "yes";', None, r"gzip_static"),
    ("bad access_format", 'log = { access_format = "xml"; };', 7, r"access_format"),
    ("autoindex: not a boolean", 'autoindex = "on";', None, r"autoindex"),
    ("autoindex_hidden: not a boolean", "autoindex_hidden = 1;", None, r"autoindex_hidden"),
    ("out of range: autoindex_max_entries 0", "autoindex_max_entries = 0;", None,
     r"autoindex_max_entries: 0 is out of range \[1, 100000\]"),
    ("out of range: autoindex_max_entries 100001", "autoindex_max_entries = 100001;", None,
     r"autoindex_max_entries: 100001 is out of range"),
    ("autoindex_max_entries: not an integer", 'autoindex_max_entries = "many";', None,
     r"autoindex_max_entries"),
    ("listen group: autoindex not a boolean",
     'listen = ( { address = "127.0.0.1:0"; autoindex = "yes"; } );', 0, r"autoindex"),
    ("listen group: unknown key", 'listen = ( { address = "127.0.0.1:0"; autoindx = true; } );',
     0, r"autoindx"),
    ("syntax error: missing value", "index = ;", None, r"syntax"),
    ("syntax error: unclosed group", "send = { mode = \"write\";", None, r"syntax"),
    ("syntax error: stray token", "index index;", None, r"syntax"),
    ("syntax error: unterminated string", "index = \"a;", None, r""),
]


@test
def config_test_good_file_exits_0():
    c = Conf()
    try:
        path = c.write(c.base())
        p = run("-t", "-c", path)
        assert p.returncode == 0, p.stderr
        assert path in p.stdout + p.stderr
        check_output_clean(p)
        # the shipped example is a good file too, once its paths point at ours
        example = os.path.join(TOP_SRCDIR, "etc", "ktlsd.conf")
        if os.path.exists(example):
            subst = {
                "listen": '[ "127.0.0.1:0" ]', "document_root": '"%s"' % c.root,
                "certificate": '"%s"' % c.crt, "private_key": '"%s"' % c.key,
                "error": '"stderr"', "access": '"off"',
            }
            lines = []
            for line in open(example).read().splitlines():
                m = re.match(r"(\s*)(\w+)(\s*=\s*)([^;]*);(.*)", line)
                if m and m.group(2) in ("user", "group"):
                    continue       # the test may run as root: no privilege drop here
                if m and m.group(2) in subst:
                    line = "%s%s%s%s;" % (m.group(1), m.group(2), m.group(3),
                                          subst[m.group(2)])
                lines.append(line)
            if os.geteuid() == 0:
                lines.append("run_as_root = true;")
            p = run("-t", "-c", c.write(lines, "example.conf"))
            assert p.returncode == 0, p.stderr
            check_output_clean(p)
    finally:
        c.cleanup()


@test
def config_test_bad_files_name_file_and_line():
    c = Conf()
    problems = []
    try:
        for name, line, at, rx in BAD:
            lines = c.base()
            if at is None:
                lines.append(line)
                lineno = len(lines)
            else:
                lines[at] = line
                lineno = at + 1
            path = c.write(lines, "bad.conf")
            p = run("-t", "-c", path)
            check_output_clean(p)
            err = p.stderr
            if p.returncode != 1:
                problems.append("%s: exit %s, expected 1 (stderr %r)" % (
                    name, p.returncode, err))
                continue
            # the syntax errors of libconfig may be reported on the line after an
            # unclosed construct (end of file): allow lineno or later
            m = re.search(re.escape(path) + r":(\d+)", err)
            if not m:
                problems.append("%s: stderr does not name %s:LINE: %r" % (name, path, err))
            elif not (int(m.group(1)) == lineno or
                      (name.startswith("syntax") and int(m.group(1)) >= lineno)):
                problems.append("%s: line %s reported, expected %d: %r" % (
                    name, m.group(1), lineno, err))
            if rx and not re.search(rx, err):
                problems.append("%s: message does not mention /%s/: %r" % (name, rx, err))
        assert not problems, "\n  ".join(problems)
    finally:
        c.cleanup()


@test
def missing_files_are_named():
    c = Conf()
    try:
        # missing certificate
        lines = c.base()
        missing = os.path.join(c.tmp, "no-such-cert.pem")
        lines[3] = '  certificate = "%s";' % missing
        p = run("-t", "-c", c.write(lines))
        assert p.returncode == 1 and missing in p.stderr, p.stderr
        # missing key
        lines = c.base()
        missing = os.path.join(c.tmp, "no-such-key.pem")
        lines[4] = '  private_key = "%s";' % missing
        p = run("-t", "-c", c.write(lines))
        assert p.returncode == 1 and missing in p.stderr, p.stderr
        # a certificate file that is no certificate
        junk = os.path.join(c.tmp, "junk.pem")
        with open(junk, "w") as f:
            f.write("not a certificate\n")
        lines = c.base()
        lines[3] = '  certificate = "%s";' % junk
        p = run("-t", "-c", c.write(lines))
        assert p.returncode == 1 and junk in p.stderr, p.stderr
        # a key that does not belong to the certificate
        crt2, key2 = make_cert(c.tmp, name="other")
        lines = c.base()
        lines[4] = '  private_key = "%s";' % key2
        p = run("-t", "-c", c.write(lines))
        assert p.returncode == 1 and key2 in p.stderr, p.stderr
        # missing document root
        lines = c.base()
        missing = os.path.join(c.tmp, "no-such-root")
        lines[1] = 'document_root = "%s";' % missing
        p = run("-t", "-c", c.write(lines))
        assert p.returncode == 1 and missing in p.stderr, p.stderr
        # missing config file
        missing = os.path.join(c.tmp, "no-such.conf")
        p = run("-t", "-c", missing)
        assert p.returncode == 1 and missing in p.stderr, p.stderr
        # and the same without -t: the daemon does not start
        p = run("-f", "-c", missing)
        assert p.returncode == 1 and missing in p.stderr, p.stderr
        check_output_clean(p)
    finally:
        c.cleanup()


@test
def version_help_and_bad_options():
    p = run("--version")
    assert p.returncode == 0 and re.match(r"ktlsd \d", p.stdout), p.stdout
    assert "OpenSSL" in p.stdout, p.stdout
    p = run("-V")
    assert p.returncode == 0 and p.stdout.startswith("ktlsd "), p.stdout
    p = run("--help")
    assert p.returncode == 0 and "Usage" in p.stdout and "--demo" in p.stdout, p.stdout
    p = run("-h")
    assert p.returncode == 0 and "Usage" in p.stdout
    for bad in (["--no-such-option"], ["-Z"], ["--config"], ["extra-argument"],
                ["--send-chunk", "lots"], ["--cert", "x.pem"]):
        p = run(*bad)
        assert p.returncode == 1, (bad, p.returncode, p.stderr)
        assert p.stderr.strip(), bad
        check_output_clean(p)
    c = Conf()
    try:
        path = c.write(c.base())
        for bad in (["--send-mode", "turbo"], ["--listen", "1.2.3.4.5:1"],
                    ["--log-level", "loud"], ["--mss", "10"]):
            p = run("-t", "-c", path, *bad)
            assert p.returncode == 1, (bad, p.returncode, p.stderr)
            assert bad[0] in p.stderr, (bad, p.stderr)
    finally:
        c.cleanup()


@test
def command_line_values_are_checked_like_the_files():
    # a flag and its setting share one schema row: the same type, range and message
    c = Conf()
    try:
        base = c.base()
        cases = [("--stall-threshold", "5", "stall = { threshold_ms = 5; };",
                  "5 is out of range [100, 3600000]"),
                 ("--send-chunk", "1024", "send = { chunk = 1024; };",
                  "1024 is out of range [4096, 67108864]"),
                 ("--mss", "50", "send = { mss = 50; };", "0 (kernel default) or 88..65535"),
                 ("--notsent-lowat", "x", 'send = { notsent_lowat = "x"; };',
                  "must be an integer"),
                 ("--log-level", "loud", 'log = { level = "loud"; };', "must be one of debug")]
        base = [line for line in base if not line.startswith("log = ")]
        for flag, value, setting, why in cases:
            p = run("-t", "-c", c.write(base), flag, value)
            assert p.returncode == 1 and ("ktlsd: %s: %s" % (flag, why)) in p.stderr, \
                (flag, p.stderr)
            p = run("-t", "-c", c.write(base + [setting]))
            assert p.returncode == 1 and why in p.stderr and re.search(r":\d+: ", p.stderr), \
                (setting, p.stderr)
        # and a good value from the command line is what the daemon runs with
        p = run("-t", "-c", c.write(base), "--stall-threshold", "250", "--send-chunk", "16384")
        assert p.returncode == 0, p.stderr
    finally:
        c.cleanup()


@test
def command_line_beats_the_file():
    other = tempfile.mkdtemp(prefix="ktlsd-root2-")
    try:
        with open(os.path.join(other, "b.txt"), "w") as f:
            f.write("from the command line root\n")
        # the file says: listen on [::1], send mode splice, its own root
        with Daemon(listen=("[::1]:0",), send_mode="splice",
                    args=["--listen", "127.0.0.1:0", "--root", other,
                          "--send-mode", "write"]) as d:
            d.put("a.txt", "from the file root\n")
            log = d.log()
            assert "listening on 127.0.0.1:0 " in log, log
            assert "[::1]" not in log, log
            ready = re.search(r"ready: (.*)", log).group(1)
            assert "send mode write" in ready, ready
            assert d.get("/b.txt").body == b"from the command line root\n"
            assert d.get("/a.txt").status == 404
    finally:
        shutil.rmtree(other, ignore_errors=True)


def read_until(p, rx, timeout=5):
    """Read p.stdout (without blocking past the deadline) until rx matches; return all."""
    out = b""
    deadline = time.time() + timeout
    fd = p.stdout.fileno()
    while not re.search(rx, out):
        left = deadline - time.time()
        if left <= 0:
            raise AssertionError("no /%s/ on stdout within %ss: %r" % (rx, timeout, out))
        r, _, _ = select.select([fd], [], [], left)
        if r:
            chunk = os.read(fd, 4096)
            if not chunk:
                raise AssertionError("stdout closed without /%s/: %r" % (rx, out))
            out += chunk
    return out


def start_demo(dirpath, extra=()):
    errf = tempfile.TemporaryFile()
    p = subprocess.Popen([KTLSD, "--demo", dirpath, "--listen", "127.0.0.1:0"] + list(extra),
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errf,
                         env=ENV)

    def err():
        errf.seek(0)
        return errf.read().decode(errors="replace")

    def port():
        if p.poll() is not None:
            raise AssertionError("ktlsd --demo exited with %s:\n%s" % (p.returncode, err()))
        m = re.search(r"bound 127\.0\.0\.1:(\d+)", err())
        return int(m.group(1)) if m and "ready" in err() else None
    return p, err, wait_until(port, 10, what="ktlsd --demo to listen")


def stop_demo(p, err):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(15)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        raise AssertionError("ktlsd --demo did not exit on SIGTERM")
    text = err()
    assert p.returncode == 0, (p.returncode, text)
    assert not re.search(r"(Sanitizer|runtime error:|\[(alert|crit)\])", text), text


@test
def demo_serves_a_directory_over_tls13():
    dirpath = tempfile.mkdtemp(prefix="ktlsd-demo-")
    p = None
    try:
        with open(os.path.join(dirpath, "hello.txt"), "wb") as f:
            f.write(b"hello from demo\n")
        p, err, port = start_demo(dirpath)
        # a curl command on stdout
        out = read_until(p, rb"curl -k https://\S+\n").decode()
        # fetch over TLS 1.3 with curl and with Python
        r = subprocess.run(["curl", "-sSk", "--max-time", "10", "--tlsv1.3",
                            "https://127.0.0.1:%d/hello.txt" % port],
                           capture_output=True, timeout=20)
        assert r.returncode == 0 and r.stdout == b"hello from demo\n", r
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        s = client_context().wrap_socket(raw, server_hostname="localhost")
        assert s.version() == "TLSv1.3"
        der = s.getpeercert(binary_form=True)
        s.close()
        x = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-subject",
                            "-issuer"], input=der, capture_output=True, timeout=10)
        subj, iss = x.stdout.decode().splitlines()[:2]
        assert subj.split("=", 1)[1] == iss.split("=", 1)[1], (subj, iss)   # self-signed
        stop_demo(p, err)
        p = None
    finally:
        if p is not None:
            p.kill()
            p.wait()
        shutil.rmtree(dirpath, ignore_errors=True)


@test
def demo_printed_curl_command_works():
    # the command printed on stdout must be runnable as is, including with --listen :0
    dirpath = tempfile.mkdtemp(prefix="ktlsd-demo-")
    p = None
    try:
        with open(os.path.join(dirpath, "hello.txt"), "wb") as f:
            f.write(b"hello from demo\n")
        p, err, port = start_demo(dirpath)
        out = read_until(p, rb"curl -k https://\S+\n")
        m = re.search(rb"(curl -k https://\S+)", out)
        assert m, out
        cmd = m.group(1).decode().split() + ["-sS", "--max-time", "10"]
        r = subprocess.run(cmd, capture_output=True, timeout=20)
        assert r.returncode == 0 and r.stdout == b"hello from demo\n", (
            "printed %r (bound port %d): curl exit %d %s" % (
                m.group(1), port, r.returncode, r.stderr.decode().strip()))
        stop_demo(p, err)
        p = None
    finally:
        if p is not None:
            p.kill()
            p.wait()
        shutil.rmtree(dirpath, ignore_errors=True)


if __name__ == "__main__":
    run_tests()
