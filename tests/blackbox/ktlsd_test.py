"""Black-box test support: start the real ktlsd on a free port with a temporary
configuration, talk to it over real TLS sockets, and check after each test that it left
no trace of trouble (no [alert]/[crit] line, no sanitizer report, fds back to baseline,
clean exit 0 on SIGTERM).

Python 3 standard library only. Each test file is an automake test: exit 0 pass,
1 fail, 77 skip. Environment (set by `make check`): KTLSD (binary), TOP_SRCDIR.
"""
import contextlib
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
import tempfile
import time
import traceback

KTLSD = os.environ.get("KTLSD") or os.path.join(
    os.path.dirname(__file__), "..", "..", "src", "ktlsd")
TOP_SRCDIR = os.environ.get("TOP_SRCDIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))

TOP_BUILDDIR = os.environ.get("TOP_BUILDDIR") or os.path.abspath(
    os.path.join(os.path.dirname(KTLSD), ".."))
# tests/helpers/no-openat2 ERRNO CMD...: CMD runs with openat2() failing (seccomp)
NO_OPENAT2 = os.path.join(TOP_BUILDDIR, "tests", "helpers", "no-openat2")



def use_build_without_sanitizers():
    """For the UML tier's tests: ASan cannot map its shadow memory under User-Mode Linux,
    so there the daemon is the build without sanitizers (KTLSD_NOSAN), when given, for
    the Daemon class and for the subprocesses that read KTLSD from the environment."""
    global KTLSD
    if os.environ.get("KTLSD_NOSAN"):
        KTLSD = os.environ["KTLSD"] = os.environ["KTLSD_NOSAN"]


SANITIZER_RE = re.compile(r"(ERROR: (Address|Leak)Sanitizer|runtime error:|SUMMARY: \w+Sanitizer)")
BAD_LOG_RE = re.compile(r"\[(alert|crit)\]")

_certs = {}


def make_cert(dirpath, name="server", cn="localhost"):
    """A self-signed ECDSA P-256 certificate for localhost/127.0.0.1/::1 (openssl CLI)."""
    crt = os.path.join(dirpath, name + ".crt")
    key = os.path.join(dirpath, name + ".key")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", key, "-out", crt, "-days", "30", "-subj", "/CN=" + cn,
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1",
         "-set_serial", str(int(time.time() * 1000) % 2**62)],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return crt, key


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def make_file(path, size, seed=0):
    """A file of `size` pseudo-random bytes (deterministic by seed); fast for MiBs."""
    block = hashlib.sha256(str(seed).encode()).digest() * 2048   # 64 KiB
    with open(path, "wb") as f:
        left = size
        i = 0
        while left > 0:
            chunk = block[: min(left, len(block))]
            # vary each block so offsets matter
            f.write(bytes([i & 0xFF]) + chunk[1:] if chunk else b"")
            left -= len(chunk)
            i += 1
    return path


class Response:
    def __init__(self, status, reason, headers, body, raw_head):
        self.status = status
        self.reason = reason
        self.headers = headers      # dict: lower-case name -> value (last wins)
        self.body = body
        self.raw_head = raw_head

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)

    def __repr__(self):
        return "<Response %d %s, %d body bytes>" % (self.status, self.reason, len(self.body))


class Conn:
    """One TLS connection with a buffered HTTP/1.1 response reader."""

    def __init__(self, daemon, timeout=10, alpn=("http/1.1",), family=socket.AF_INET,
                 server_hostname="localhost", ciphers=None, ctx=None, sockopts=()):
        """sockopts: (level, option, value) tuples set on the TCP socket before connect()
        (e.g. a tiny SO_RCVBUF, which only shapes the window if set before the SYN)."""
        if ctx is None:
            ctx = client_context(alpn=alpn, ciphers=ciphers)
        raw = tcp_connect(daemon, timeout=timeout, family=family, sockopts=sockopts)
        try:
            self.sock = ctx.wrap_socket(raw, server_hostname=server_hostname)
        except BaseException:
            raw.close()
            raise
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise EOFError("connection closed by server")
        self.buf += chunk

    def read_head(self):
        """Read one response head: (status, reason, headers, raw head). self.buf keeps what
        follows it (body bytes)."""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        m = re.match(r"HTTP/1\.1 (\d{3}) ?(.*)", lines[0])
        if not m:
            raise AssertionError("bad status line %r" % lines[0])
        headers = {}
        for line in lines[1:]:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
        return int(m.group(1)), m.group(2), headers, head

    def read_response(self, head_only=False):
        status, reason, headers, head = self.read_head()
        n = 0 if head_only or status in (204, 304) else int(headers.get("content-length", 0))
        while len(self.buf) < n:
            self._fill()
        body, self.buf = self.buf[:n], self.buf[n:]
        return Response(status, reason, headers, body, head)

    def request(self, method="GET", path="/", headers=None, version="HTTP/1.1"):
        h = {"Host": "localhost"}
        h.update(headers or {})
        req = "%s %s %s\r\n" % (method, path, version)
        req += "".join("%s: %s\r\n" % (k, v) for k, v in h.items() if v is not None)
        self.send(req + "\r\n")
        return self.read_response(head_only=(method == "HEAD"))

    def closed_by_server(self, timeout=5):
        """True if the server closes the connection (EOF) within timeout, with nothing more."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (ConnectionResetError, ssl.SSLError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self):
        with contextlib.suppress(OSError):
            self.sock.close()


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


def tcp_connect(daemon, timeout=10, family=socket.AF_INET, sockopts=()):
    """A plain TCP connection to the daemon's port (no TLS)."""
    host = "127.0.0.1" if family == socket.AF_INET else "::1"
    port = daemon.port if family == socket.AF_INET else daemon.port6
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        for level, opt, value in sockopts:
            s.setsockopt(level, opt, value)
        s.settimeout(timeout)
        s.connect((host, port))
    except BaseException:
        s.close()
        raise
    return s


def parse_byteranges(resp):
    """The parts of a multipart/byteranges response, read strictly by RFC 2046/9110:
    [(headers dict with lower-case names, data bytes)]. Raises AssertionError when the body
    is not exactly preamble, delimited parts and the close delimiter, or its length is
    not Content-Length."""
    ct = resp.header("content-type") or ""
    m = re.fullmatch(r"multipart/byteranges;\s*boundary=(\"?)([0-9A-Za-z'()+_,./:=?-]{1,70})\1", ct)
    assert m, "Content-Type %r" % ct
    body = resp.body
    assert resp.header("content-length") == str(len(body)), (resp.header("content-length"),
                                                            len(body))
    delim = b"\r\n--" + m.group(2).encode()
    if body.startswith(delim[2:]):
        body = b"\r\n" + body         # the first delimiter may open the body
    i = body.find(delim)
    assert i >= 0, "no delimiter"
    rest, parts = body[i + len(delim):], []
    while not rest.startswith(b"--"):
        assert rest.startswith(b"\r\n"), rest[:20]
        j = rest.find(delim)
        assert j >= 0, "part %d not closed" % len(parts)
        head, sep, data = rest[2:j].partition(b"\r\n\r\n")
        assert sep, "part %d without its blank line" % len(parts)
        headers = {}
        for line in head.split(b"\r\n"):
            name, colon, value = line.partition(b":")
            assert colon, line
            headers[name.decode().strip().lower()] = value.decode().strip()
        parts.append((headers, data))
        rest = rest[j + len(delim):]
    assert rest in (b"--", b"--\r\n"), "after the close delimiter: %r" % rest[:40]
    return parts


def tcp_closed_within(sock, timeout):
    """Wait for EOF or RST on a plain TCP socket, discarding data. Returns the time it
    took, or None if it stayed open for `timeout` seconds."""
    t0 = time.time()
    deadline = t0 + timeout
    while True:
        left = deadline - time.time()
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except socket.timeout:
            return None
        except (ConnectionResetError, BrokenPipeError):
            return time.time() - t0
        if not data:
            return time.time() - t0


def wait_until(pred, timeout=5, interval=0.02, what="condition"):
    """Poll pred() until it returns something true (returned) or raise AssertionError."""
    deadline = time.time() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.time() >= deadline:
            raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(interval)


def client_context(alpn=("http/1.1",), ciphers=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


class Daemon:
    """A running ktlsd with its own temp dir: root/ (document root), conf, certs, log."""

    def __init__(self, conf_extra="", args=(), listen=("127.0.0.1:0",), ipv6=False,
                 send_mode=None, timeouts=None, files=None, start=True, env=None,
                 stats=False, wrapper=()):
        self.tmp = tempfile.mkdtemp(prefix="ktlsd-test-")
        self.root = os.path.join(self.tmp, "root")
        os.mkdir(self.root)
        self.crt, self.key = make_cert(self.tmp)
        self.log_path = os.path.join(self.tmp, "error.log")
        self.access_path = os.path.join(self.tmp, "access.log")
        self.conf_path = os.path.join(self.tmp, "ktlsd.conf")
        # an element starting with "{" is a listener group as written (proxy_protocol,
        # send, ...): then the list is libconfig's ( ), which may hold groups
        listen = list(listen) + (["[::1]:0"] if ipv6 else [])
        items = [l if l.startswith("{") else '"%s"' % l for l in listen]
        groups = any(l.startswith("{") for l in listen)
        t = {"handshake": 5, "header": 5, "keepalive": 5, "send_idle": 10, "shutdown": 5}
        t.update(timeouts or {})
        self.conf_text = (
            ('listen = %s %s %s;\n' % ("(" if groups else "[", ", ".join(items),
                                        ")" if groups else "]")) +
            'document_root = "%s";\n' % self.root +
            'tls = { certificate = "%s"; private_key = "%s"; };\n' % (self.crt, self.key) +
            'timeouts = { %s };\n' % " ".join("%s = %s;" % kv for kv in t.items()) +
            'log = { error = "%s"; access = "%s"; level = "info"; };\n' % (
                self.log_path, self.access_path) +
            (('send = { mode = "%s"; };\n' % send_mode) if send_mode else "") +
            ('stats = { listen = "127.0.0.1:0"; };\n' if stats else "") +
            # CI runs as root; ktlsd refuses to serve as root unless told to
            ("run_as_root = true;\n" if os.geteuid() == 0 else "") +
            conf_extra)
        with open(self.conf_path, "w") as f:
            f.write(self.conf_text)
        for name, content in (files or {}).items():
            self.put(name, content)
        self.args = list(args)
        self.wrapper = list(wrapper)    # a command ktlsd is run under (e.g. no-openat2)
        self.env = env
        self.proc = None
        self.port = self.port6 = None
        self.ports = []     # every listener's bound port, in the order of listen
        self.fd_baseline = None
        if start:
            self.start()

    # -- files
    def put(self, name, content):
        path = os.path.join(self.root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(content.encode() if isinstance(content, str) else content)
        return path

    def put_random(self, name, size, seed=0):
        path = os.path.join(self.root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return make_file(path, size, seed)

    def edit_conf(self, old, new):
        """Replace the text old (which must be there) in the configuration file; the
        daemon reads it at start() or at the next SIGHUP."""
        assert old in self.conf_text, "%r not in the configuration" % old
        self.conf_text = self.conf_text.replace(old, new, 1)
        with open(self.conf_path, "w") as f:
            f.write(self.conf_text)

    # -- life cycle
    def start_socket_activated(self, port, args=()):
        """Start ktlsd the way a systemd .socket unit does: systemd-socket-activate
        listens on 127.0.0.1:port and execs ktlsd at the first connection, passing the
        socket (sd_listen_fds protocol). Returns once it listens; then the first d.conn()
        starts the daemon, and find_stats_port() can follow."""
        ssa = shutil.which("systemd-socket-activate")
        assert ssa, "systemd-socket-activate not installed (Debian package systemd)"
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        self.stderr_path = os.path.join(self.tmp, "stderr.log")
        self.stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            [ssa, "-l", "127.0.0.1:%d" % port, "-E", "ASAN_OPTIONS", "-E", "PATH",
             KTLSD, "-c", self.conf_path, "--foreground"] + list(args),
            stdin=subprocess.DEVNULL, stdout=self.stderr, stderr=self.stderr, env=env)
        self.port = port
        wait_until(lambda: b"Listening on" in open(self.stderr_path, "rb").read(), 5,
                   what="systemd-socket-activate listening")

    def find_stats_port(self):
        """The stats port a started daemon logged (for a start not through start())."""
        m = re.search(r"stats on http://\S+ \(bound [^:]+:(\d+)\)", self.log())
        assert m, self.log()
        self.stats_port = int(m.group(1))

    def start(self, timeout=10):
        self.stderr_path = os.path.join(self.tmp, "stderr.log")
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        env.update(self.env or {})
        self.stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            self.wrapper + [KTLSD, "-c", self.conf_path, "--foreground"] + self.args,
            stdin=subprocess.DEVNULL, stdout=self.stderr, stderr=self.stderr, env=env)
        deadline = time.time() + timeout
        ports = []
        while time.time() < deadline:
            log = self.log()
            ports = re.findall(r"listening on \S+ \(bound (\S+):(\d+)\)", log)
            if "ready:" in log and ports:
                break
            if self.proc.poll() is not None:
                raise AssertionError("ktlsd exited with %s at start:\n%s%s" % (
                    self.proc.returncode, log, self.stderr_text()))
            time.sleep(0.02)
        else:
            raise AssertionError("ktlsd did not start:\n" + self.log() + self.stderr_text())
        self.ports = [int(port) for _, port in ports]
        for host, port in ports:
            if host.startswith("["):
                self.port6 = int(port)
            else:
                self.port = int(port)
        m = re.search(r"stats on http://\S+ \(bound [^:]+:(\d+)\)", self.log())
        self.stats_port = int(m.group(1)) if m else None
        self.fd_baseline = self.fd_count()

    def log(self):
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def access_log(self):
        try:
            with open(self.access_path, "r", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stderr_text(self):
        try:
            with open(self.stderr_path, "r", errors="replace") as f:
                return f.read()
        except (FileNotFoundError, AttributeError):
            return ""

    def fd_count(self):
        return len(os.listdir("/proc/%d/fd" % self.proc.pid))

    def wait_fds_baseline(self, timeout=5):
        """Wait until the daemon's open fds are back to the count right after start."""
        deadline = time.time() + timeout
        n = self.fd_count()
        while n > self.fd_baseline and time.time() < deadline:
            time.sleep(0.05)
            n = self.fd_count()
        assert n <= self.fd_baseline, "fd count %d, baseline %d: a leak?\n%s" % (
            n, self.fd_baseline, os.listdir("/proc/%d/fd" % self.proc.pid))

    def wait_log(self, regex, timeout=5, access=False):
        """Wait until the error (or access) log matches regex; return the match."""
        rx = re.compile(regex, re.M)
        return wait_until(lambda: rx.search(self.access_log() if access else self.log()),
                          timeout, what="log line /%s/" % regex)

    def tcp(self, timeout=10, **kw):
        """A plain TCP connection (no TLS) to the daemon."""
        return tcp_connect(self, timeout=timeout, **kw)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=15, expect_code=0):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("ktlsd did not exit within %ss of SIGTERM" % timeout)
        self.stderr.close()
        code = self.proc.returncode
        self.proc = None
        self.check_clean()
        assert code == expect_code, "ktlsd exited with %s, expected %s\n%s" % (
            code, expect_code, self.stderr_text())

    def check_clean(self):
        text = self.log() + self.stderr_text()
        m = SANITIZER_RE.search(text)
        assert not m, "sanitizer report:\n" + text[-6000:]
        m = BAD_LOG_RE.search(text)
        assert not m, "alert/crit in the error log:\n" + text[-4000:]

    def cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- clients
    def conn(self, **kw):
        return Conn(self, **kw)

    def get(self, path="/", method="GET", headers=None, **kw):
        c = self.conn(**kw)
        try:
            return c.request(method, path, headers)
        finally:
            c.close()

    def raw(self, data, timeout=5, **kw):
        """Send raw bytes on a fresh TLS connection, return everything until the server
        closes (or timeout)."""
        c = self.conn(timeout=timeout, **kw)
        try:
            c.send(data)
            c.closed_by_server(timeout)
            return c.buf
        finally:
            c.close()

    def stats(self, path="/stats", raw=False):
        """GET the stats endpoint (plain HTTP); parsed JSON unless raw."""
        import urllib.request
        assert self.stats_port, "Daemon(stats=True) needed"
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.stats_port, path),
                                    timeout=10) as r:
            body = r.read()
            self.stats_content_type = r.headers.get("Content-Type")
        return body if raw else json.loads(body)

    def recent(self):
        """Records of the recently closed connections, newest first."""
        return self.stats("/stats/recent")["recent"]

    def curl(self, path, *args, out=None, timeout=60):
        cmd = ["curl", "-sSk", "--max-time", str(timeout), "--tlsv1.3",
               "https://127.0.0.1:%d%s" % (self.port, path)] + list(args)
        if out:
            cmd += ["-o", out]
        return subprocess.run(cmd, capture_output=True, timeout=timeout + 10)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            if exc[0] is None:
                self.stop()
        finally:
            if exc[0] is not None:
                sys.stderr.write("---- ktlsd error log ----\n" + self.log()[-8000:] +
                                 "---- ktlsd stderr ----\n" + self.stderr_text()[-8000:])
            self.cleanup()
        return False


def cpu_seconds(pid):
    """User + system CPU seconds a process has used (from /proc/PID/stat)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_of(raw):
    m = re.match(rb"HTTP/1\.1 (\d{3})", raw)
    return int(m.group(1)) if m else None


_tests = []


def test(fn):
    """Register a test function; run_tests() runs them in order."""
    _tests.append(fn)
    return fn


class PacedDownload:
    """GET path on conn (a Conn) and read the body at most `rate` bytes/s, so that the
    response stays in flight while a test reloads or stops the daemon; `got` bytes so far,
    hashed as they arrive."""

    def __init__(self, conn, path, size, rate):
        self.c, self.size, self.rate = conn, size, rate
        conn.send("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path)
        status, _, headers, _ = conn.read_head()
        assert status == 200 and int(headers["content-length"]) == size, (status, headers)
        self.h = hashlib.sha256()
        self.got = 0
        self.t0 = time.time()
        self._take(conn.buf)
        conn.buf = b""

    def _take(self, chunk):
        self.h.update(chunk)
        self.got += len(chunk)

    def read_until(self, upto):
        """Read on, paced, until upto body bytes have arrived (AssertionError if cut)."""
        while self.got < upto:
            chunk = self.c.sock.recv(min(1 << 18, upto - self.got))
            assert chunk, "download cut at %d of %d bytes" % (self.got, self.size)
            self._take(chunk)
            ahead = self.got / self.rate - (time.time() - self.t0)
            if ahead > 0:
                time.sleep(ahead)

    def hexdigest(self):
        return self.h.hexdigest()


class Skip(Exception):
    pass


def run_tests():
    """Run the registered tests; print one line per test and a summary; exit as automake
    expects (0 pass, 1 fail, 77 all skipped)."""
    only = os.environ.get("KTLSD_TEST_ONLY")
    passed = failed = skipped = 0
    for fn in _tests:
        if only and only not in fn.__name__:
            continue
        t0 = time.time()
        try:
            fn()
        except Skip as e:
            skipped += 1
            print("SKIP %s: %s" % (fn.__name__, e), flush=True)
        except Exception:
            failed += 1
            print("FAIL %s (%.1fs)\n%s" % (fn.__name__, time.time() - t0,
                                          traceback.format_exc()), flush=True)
        else:
            passed += 1
            print("ok   %s (%.1fs)" % (fn.__name__, time.time() - t0), flush=True)
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    if failed:
        sys.exit(1)
    if passed == 0 and skipped > 0:
        sys.exit(77)
    sys.exit(0)
