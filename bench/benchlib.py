"""benchlib — shared pieces of bench/compare, bench/idle-rss and bench/uml_guest.py.

Start ktlsd, nginx and lighttpd with generated configurations on free loopback ports (each
in its own process group, stopped and reaped on exit whatever happens), make the test
files and the certificate, read a server's CPU time and RSS from /proc, and summarise
repeated measurements. Python 3 standard library only; everything talks to 127.0.0.1.
"""
import atexit
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP_SRCDIR = os.path.dirname(HERE)
CIPHER = "TLS_AES_128_GCM_SHA256"
CLK_TCK = os.sysconf("SC_CLK_TCK")
MIB = 1 << 20
GIB = 1 << 30

_live = []          # servers still running: stopped at exit / on a signal


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def die(msg):
    log("bench: " + msg)
    sys.exit(1)


# ---- process hygiene ---------------------------------------------------------------
def _stop_all():
    for s in list(_live):
        try:
            s.stop()
        except Exception as e:  # noqa: BLE001 - best effort at exit
            log("bench: stopping %s: %s" % (s.name, e))


def _on_signal(signum, frame):
    _stop_all()
    log("bench: interrupted by signal %d" % signum)
    os._exit(128 + signum)


atexit.register(_stop_all)
for _sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(_sig, _on_signal)


def raise_nofile(want=65536):
    """Raise RLIMIT_NOFILE (children inherit it): root may lift the hard limit too."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), max(hard, want)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def run(cmd, timeout, **kw):
    """subprocess.run with a hard timeout that also kills the child's process group."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, start_new_session=True, **kw)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        return subprocess.CompletedProcess(cmd, -9, out, err + b"\n[killed: timeout]")
    return subprocess.CompletedProcess(cmd, p.returncode, out, err)


# ---- files ---------------------------------------------------------------------------
def make_file(path, size):
    """size bytes of incompressible-looking data, quickly (1 MiB random block, varied)."""
    block = bytearray(os.urandom(MIB))
    with open(path, "wb") as f:
        left, i = size, 0
        while left > 0:
            block[0:8] = i.to_bytes(8, "little")
            n = min(left, MIB)
            f.write(block[:n] if n < MIB else block)
            left -= n
            i += 1
    return path


def make_cert(d):
    crt, key = os.path.join(d, "server.crt"), os.path.join(d, "server.key")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", key, "-out", crt, "-days", "7", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return crt, key


# ---- /proc -----------------------------------------------------------------------------
def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def tree(pid):
    out = [pid]
    for c in children(pid):
        out += tree(c)
    return out


def group_members(pgid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[2]) == pgid and fields[0] != "Z":
                    out.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return out


def cpu_seconds(pids):
    """utime + stime of these processes, seconds."""
    t = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            t += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return t / CLK_TCK


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        m = re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M)
    return int(m.group(1)) if m else 0


def fd_count(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return -1


def tls_stat():
    try:
        with open("/proc/net/tls_stat") as f:
            return {k: int(v) for k, v in (line.split() for line in f if line.strip())}
    except OSError:
        return None


# ---- servers ---------------------------------------------------------------------------
class Server:
    """One server under test. start() picks a free port; stop() is idempotent."""
    name = "?"

    def __init__(self, workdir, root, crt, key, cipher=CIPHER, idle_timeout=None,
                 max_conns=20000):
        self.dir = os.path.join(workdir, self.name)
        os.makedirs(self.dir, exist_ok=True)
        self.root, self.crt, self.key = root, crt, key
        self.cipher = cipher
        self.idle_timeout = idle_timeout    # seconds a connection may sit idle (memory test)
        self.max_conns = max_conns
        self.proc = None
        self.port = None
        self.stderr_path = os.path.join(self.dir, "stderr.log")

    def nofile(self):
        """fd limit to configure: two per connection and some, within the hard limit"""
        return min(2 * self.max_conns + 200, resource.getrlimit(resource.RLIMIT_NOFILE)[1])

    # subclasses: write_config(port) -> argv; optionally ready()
    def start(self, tries=3):
        for _ in range(tries):
            self.port = free_port()
            argv = self.write_config(self.port)
            self._stderr = open(self.stderr_path, "wb")
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._stderr,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         cwd=self.dir)
            _live.append(self)
            if wait_port(self.port, self.proc) and self.ready():
                return self
            self.stop()
        die("%s did not start; its log:\n%s" % (self.name, self.logs()))

    def ready(self):
        return True

    def logs(self):
        out = []
        for p in [self.stderr_path] + self.extra_logs():
            try:
                with open(p, errors="replace") as f:
                    out.append("== %s\n%s" % (p, f.read()[-3000:]))
            except OSError:
                pass
        return "\n".join(out)

    def extra_logs(self):
        return []

    def pids(self):
        return tree(self.proc.pid) if self.proc and self.proc.poll() is None else []

    def worker_pid(self):
        """The process that holds the connections (nginx: the one worker)."""
        return self.proc.pid

    def stop(self, timeout=10):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        # a worker may outlive its master for a moment: kill what is left of the group
        # (only processes still in it: the group id is ours as long as one member lives)
        for pid in group_members(self.proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._stderr.close()
        self.proc = None
        if self in _live:
            _live.remove(self)

    def url(self, path):
        return "https://127.0.0.1:%d%s" % (self.port, path)

    def check(self, path, size):
        """GET path once with Python's ssl: TLS 1.3, our cipher, 200, the right length."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(("GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
                           % path).encode())
                data = b""
                while True:
                    chunk = s.recv(1 << 16)
                    if not chunk:
                        break
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                if not head.startswith(b"HTTP/1.1 200") or len(body) != size:
                    die("%s: GET %s: %r, %d body bytes (want %d)" % (
                        self.name, path, head[:100], len(body), size))
                return s.version(), s.cipher()[0]


class Ktlsd(Server):
    name = "ktlsd"

    def __init__(self, binary, *a, send_mode="sendfile", chunk=None, name=None, lowat=None,
                 workers=1, **kw):
        if name:
            self.name = name        # a second ktlsd with other settings: its own dir
        self.binary = binary
        self.send_mode = send_mode
        self.chunk = chunk          # send.chunk (None: ktlsd's default)
        self.lowat = lowat          # send.notsent_lowat (None: the kernel's default)
        # event loops: 1 compares one loop with nginx's one worker (ktlsd's default is one
        # per CPU); "auto" or N to compare more
        self.workers = workers
        super().__init__(*a, **kw)

    def write_config(self, port):
        self.errlog = os.path.join(self.dir, "error.log")
        t = self.idle_timeout
        timeouts = ("timeouts = { handshake = %d; header = %d; keepalive = %d; };\n"
                    % (t, t, t)) if t else ""
        conf = (
            'listen = [ "127.0.0.1:%d" ];\n' % port +
            'document_root = "%s";\n' % self.root +
            'max_connections = %d;\n' % self.max_conns +
            ('workers = "auto";\n' if self.workers == "auto" else
             'workers = %d;\n' % self.workers) +
            'tls = { certificate = "%s"; private_key = "%s"; ciphersuites = "%s"; };\n'
            % (self.crt, self.key, self.cipher) +
            'log = { error = "%s"; access = "off"; level = "notice"; };\n' % self.errlog +
            'send = { mode = "%s";%s%s };\n' % (
                self.send_mode, " chunk = %d;" % self.chunk if self.chunk else "",
                " notsent_lowat = %d;" % self.lowat if self.lowat else "") +
            timeouts +
            ("run_as_root = true;\n" if os.geteuid() == 0 else ""))
        path = os.path.join(self.dir, "ktlsd.conf")
        with open(path, "w") as f:
            f.write(conf)
        if os.path.exists(self.errlog):
            os.unlink(self.errlog)
        return [self.binary, "-c", path, "--foreground"]

    def ready(self):
        deadline = time.time() + 5
        while time.time() < deadline:
            if "ready:" in self.error_log():
                return True
            time.sleep(0.05)
        return False

    def error_log(self):
        try:
            with open(self.errlog, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def extra_logs(self):
        return [self.errlog]

    def ktls_line(self):
        m = re.search(r"kTLS: .*", self.error_log())
        return m.group(0) if m else "?"


class Nginx(Server):
    name = "nginx"

    def __init__(self, binary, *a, **kw):
        self.binary = binary
        super().__init__(*a, **kw)

    def write_config(self, port):
        d = self.dir
        t = self.idle_timeout
        extra = ("keepalive_timeout %ds; client_header_timeout %ds;\n" % (t, t)) if t else ""
        conf = """# generated by bench/benchlib.py
worker_processes 1;
worker_rlimit_nofile %(nofile)d;
daemon off;
master_process on;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log notice;
events { worker_connections %(conns)d; }
http {
    access_log off;
    sendfile on;
    types { application/octet-stream bin; text/html html; }
    default_type application/octet-stream;
    client_body_temp_path %(d)s/tmp-body;
    proxy_temp_path %(d)s/tmp-proxy;
    fastcgi_temp_path %(d)s/tmp-fastcgi;
    uwsgi_temp_path %(d)s/tmp-uwsgi;
    scgi_temp_path %(d)s/tmp-scgi;
    %(extra)s
    server {
        listen 127.0.0.1:%(port)d ssl;
        ssl_certificate %(crt)s;
        ssl_certificate_key %(key)s;
        ssl_protocols TLSv1.3;
        ssl_conf_command Ciphersuites %(cipher)s;
        ssl_conf_command Options KTLS;
        root %(root)s;
    }
}
""" % dict(d=d, port=port, crt=self.crt, key=self.key, cipher=self.cipher, root=self.root,
           conns=self.max_conns + 100, nofile=self.nofile(), extra=extra)
        path = os.path.join(d, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        return [self.binary, "-c", path, "-p", d + "/", "-e", d + "/error.log"]

    def extra_logs(self):
        return [os.path.join(self.dir, "error.log")]

    def worker_pid(self):
        deadline = time.time() + 5
        while time.time() < deadline:
            kids = children(self.proc.pid)
            if kids:
                return kids[0]
            time.sleep(0.05)
        die("nginx: no worker process")


class Lighttpd(Server):
    name = "lighttpd"

    def __init__(self, binary, *a, **kw):
        self.binary = binary
        super().__init__(*a, **kw)

    def write_config(self, port):
        d = self.dir
        pem = os.path.join(d, "server.pem")
        with open(pem, "w") as f:
            f.write(open(self.crt).read() + open(self.key).read())
        t = self.idle_timeout
        extra = ("server.max-keep-alive-idle = %d\nserver.max-read-idle = %d\n" % (t, t)
                 if t else "")
        conf = """# generated by bench/benchlib.py
server.document-root = "%(root)s"
server.bind = "127.0.0.1"
server.port = %(port)d
server.errorlog = "%(d)s/error.log"
server.modules += ( "mod_openssl" )
server.max-fds = %(nofile)d
server.max-connections = %(conns)d
mimetype.assign = ( ".bin" => "application/octet-stream", ".html" => "text/html" )
ssl.engine = "enable"
ssl.pemfile = "%(pem)s"
ssl.openssl.ssl-conf-cmd = ( "MinProtocol" => "TLSv1.3", "Ciphersuites" => "%(cipher)s",
                             "Options" => "KTLS" )
%(extra)s""" % dict(d=d, port=port, pem=pem, cipher=self.cipher, root=self.root,
                    conns=self.max_conns + 100, nofile=self.nofile(), extra=extra)
        path = os.path.join(d, "lighttpd.conf")
        with open(path, "w") as f:
            f.write(conf)
        return [self.binary, "-D", "-f", path]

    def extra_logs(self):
        return [os.path.join(self.dir, "error.log")]


def make_servers(names, bins, workdir, root, crt, key, **kw):
    out = []
    for n in names:
        if n == "ktlsd":
            out.append(Ktlsd(bins["ktlsd"], workdir, root, crt, key, **kw))
        elif n == "nginx":
            out.append(Nginx(bins["nginx"], workdir, root, crt, key, **kw))
        elif n == "lighttpd":
            out.append(Lighttpd(bins["lighttpd"], workdir, root, crt, key, **kw))
        else:
            die("unknown server %r (ktlsd, nginx, lighttpd)" % n)
    return out


# ---- binaries and versions ----------------------------------------------------------------
def find_builddir(opt):
    for d in [opt, os.environ.get("TOP_BUILDDIR"), "/tmp/bench-build", TOP_SRCDIR]:
        if d and os.access(os.path.join(d, "src", "ktlsd"), os.X_OK) and \
                os.access(os.path.join(d, "src", "ktlsd-bench"), os.X_OK):
            return os.path.abspath(d)
    die("no built src/ktlsd and src/ktlsd-bench: give --builddir DIR "
        "(mkdir -p /tmp/bench-build && cd /tmp/bench-build && %s/configure && make)"
        % TOP_SRCDIR)


def has_sanitizers(binary):
    with open(binary, "rb") as f:
        data = f.read()
    return b"__asan_init" in data or b"__ubsan_handle" in data


def helper(builddir, name, libs=()):
    """bench/NAME from the build dir (automake builds it); else compile it there now."""
    out = os.path.join(builddir, "bench", name)
    src = os.path.join(HERE, name + ".c")
    if os.access(out, os.X_OK) and os.path.getmtime(out) >= os.path.getmtime(src):
        return out
    os.makedirs(os.path.dirname(out), exist_ok=True)
    cc = os.environ.get("CC", "cc")
    r = run([cc, "-O2", "-g", "-Wall", "-Wextra", "-o", out, src] + list(libs), timeout=120)
    if r.returncode != 0:
        die("compiling %s failed:\n%s" % (src, r.stderr.decode(errors="replace")))
    return out


def which(name, *alts):
    for n in (name,) + alts:
        p = shutil.which(n) or (n if os.access(n, os.X_OK) else None)
        if p:
            return p
        for d in ("/usr/sbin", "/sbin"):
            if os.access(os.path.join(d, n), os.X_OK):
                return os.path.join(d, n)
    return None


def version_of(argv, rx=r".*"):
    try:
        r = run(argv, timeout=10)
    except OSError:
        return "?"
    text = (r.stdout + r.stderr).decode(errors="replace")
    m = re.search(rx, text)
    return m.group(0).strip() if m else text.strip().splitlines()[0] if text.strip() else "?"


def machine():
    """The facts BENCHMARKS.md records."""
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"^model name\s*:\s*(.*)$", f.read(), re.M)
            cpu = m.group(1) if m else "?"
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "kernel": platform.release(), "cpu": cpu,
            "loadavg": load, "ktls": os.path.exists("/proc/net/tls_stat") or
            _ktls_loadable()}


def _ktls_loadable():
    try:
        s = socket.socket()
        s.setsockopt(socket.IPPROTO_TCP, 31, b"tls")     # TCP_ULP on an unconnected socket
    except OSError as e:
        return e.errno not in (2, 92)   # ENOENT / ENOPROTOOPT: no tls ULP
    finally:
        s.close()
    return True


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# ---- statistics ---------------------------------------------------------------------------
def summary(values):
    """median, min, max and the spread (max-min)/median in percent."""
    v = [x for x in values if x is not None]
    if not v:
        return {"median": None, "min": None, "max": None, "spread_pct": None, "n": 0,
                "values": []}
    med = statistics.median(v)
    return {"median": med, "min": min(v), "max": max(v), "n": len(v), "values": v,
            "spread_pct": (max(v) - min(v)) / med * 100 if med else None}


def table(rows, header):
    """Plain aligned text table (also valid Markdown)."""
    cols = [header] + [[str(c) for c in r] for r in rows]
    w = [max(len(r[i]) for r in cols) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(c.ljust(w[i]) for i, c in enumerate(r)) + " |"  # noqa: E731
    out = [line(header), "|" + "|".join("-" * (x + 2) for x in w) + "|"]
    out += [line(r) for r in cols[1:]]
    return "\n".join(out)


def tmpdir(prefix):
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o755)      # nginx's workers run as nobody when started as root
    return d


def dump_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
