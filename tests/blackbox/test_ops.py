"""Operations: reload on SIGHUP, the systemd notification protocol, privileges, the open
files limit, the systemd unit and the man pages.

  * SIGHUP swaps configuration and certificate for new connections while a download in
    flight finishes byte-exact; a broken certificate or configuration is rejected, named
    in the log, and the running one stays.
  * NOTIFY_SOCKET (path and abstract "@name"): READY=1, RELOADING=1 ... READY=1 (also
    when the reload fails), STOPPING=1, in that order, from the main process, which
    does not detach.
  * As root: bind (port 443 too when free), drop to user/group, no capability left;
    root without `user` is refused unless run_as_root is set.
  * limits.nofile is applied and running out of files pauses accepting, no crash.
  * systemd-analyze verify passes on the generated unit; the man pages render without
    warnings.
"""
import glob
import grp
import hashlib
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ktlsd_test import (KTLSD, TOP_SRCDIR, Daemon, PacedDownload, Skip,  # noqa: E402
                        client_context, free_port, make_cert, run_tests, sha256_file, tcp_connect, test,
                        wait_until)

ENV = dict(os.environ, ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "detect_leaks=1"))
IS_ROOT = os.geteuid() == 0


def run(*args, timeout=30, env=None):
    return subprocess.run([KTLSD] + list(args), capture_output=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env=env or ENV, text=True,
                          errors="replace")


def serial_of_der(der):
    out = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-serial"],
                         input=der, capture_output=True, check=True, timeout=10).stdout
    return out.decode().strip().split("=", 1)[1].upper()


def serial_of_file(path):
    out = subprocess.run(["openssl", "x509", "-in", path, "-noout", "-serial"],
                         capture_output=True, check=True, timeout=10).stdout
    return out.decode().strip().split("=", 1)[1].upper()


def peer_serial(d):
    """The serial of the certificate a new handshake with d presents."""
    raw = tcp_connect(d, timeout=10)
    s = client_context().wrap_socket(raw, server_hostname="localhost")
    try:
        return serial_of_der(s.getpeercert(binary_form=True))
    finally:
        s.close()


def without_run_as_root(conf_text):
    return "".join(l for l in conf_text.splitlines(True) if not l.startswith("run_as_root"))


# ---- reload ------------------------------------------------------------------------

@test
def reload_new_certificate_while_a_download_finishes_byte_exact():
    size = 64 * 1024 * 1024
    rate = 10 * 1024 * 1024          # bytes/s the client reads at: ~6 s in flight
    with Daemon(timeouts={"send_idle": 20, "shutdown": 10}) as d:
        path = d.put_random("big.bin", size, seed=21)
        want = sha256_file(path)
        old = peer_serial(d)
        assert old == serial_of_file(d.crt), (old, serial_of_file(d.crt))

        c = d.conn(timeout=10)
        dl = PacedDownload(c, "/big.bin", size, rate)
        dl.read_until(4 * 1024 * 1024)

        # replace certificate and key in place (as certbot & co. do), then SIGHUP
        newdir = tempfile.mkdtemp(dir=d.tmp)
        new_crt, new_key = make_cert(newdir, name="renewed")
        new = serial_of_file(new_crt)
        assert new != old
        good_crt = shutil.copy(new_crt, os.path.join(newdir, "good.crt"))
        os.replace(new_key, d.key)
        os.replace(new_crt, d.crt)
        d.signal(signal.SIGHUP)
        d.wait_log(r"reloaded .*new connections use the new configuration", timeout=10)
        assert re.search(r"certificate: .*serial %s" % new, d.log()), d.log()[-2000:]
        assert peer_serial(d) == new, "new handshakes do not present the new certificate"
        assert dl.got < size / 2, "too fast: the download was not in flight across the reload"

        # the download started under the old site finishes, to the byte
        dl.read_until(size)
        assert dl.hexdigest() == want, "download across a reload is not byte-exact"
        # and the connection is still good for another request (keep-alive)
        r = c.request("GET", "/big.bin", {"Range": "bytes=0-9"})
        assert r.status == 206 and len(r.body) == 10, r
        c.close()

        # a broken certificate: rejected, the file named, the running one kept
        with open(d.crt, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nthis is not base64 !!!\n"
                    "-----END CERTIFICATE-----\n")
        n_failed = d.log().count("reload failed")
        d.signal(signal.SIGHUP)
        m = d.wait_log(r"\[error\] \d+: reload failed, keeping the running configuration: "
                       r".*%s.*" % re.escape(d.crt), timeout=10)
        assert d.log().count("reload failed") == n_failed + 1, m.group(0)
        assert peer_serial(d) == new, "a broken certificate replaced the running one"
        assert d.get("/big.bin", headers={"Range": "bytes=0-3"}).status == 206
        p = run("-t", "-c", d.conf_path)
        assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
        assert d.crt in p.stderr and "test failed" in p.stderr, p.stderr

        # a configuration syntax error: FILE:LINE in the log, the running one kept
        shutil.copy(good_crt, d.crt)       # only the configuration is wrong this time
        lines = d.conf_text.splitlines()
        lines.insert(2, "index = ;")
        with open(d.conf_path, "w") as f:
            f.write("\n".join(lines) + "\n")
        d.signal(signal.SIGHUP)
        m = d.wait_log(r"reload failed, keeping the running configuration: %s:3: .*syntax"
                       % re.escape(d.conf_path), timeout=10)
        assert peer_serial(d) == new
        assert d.get("/big.bin", headers={"Range": "bytes=0-3"}).status == 206
        assert d.proc.poll() is None


@test
def reload_applies_settings_to_new_connections_and_names_restart_only_ones():
    with Daemon(files={"a.txt": "a\n"}) as d:
        assert d.get("/a.txt").status == 200
        other = os.path.join(d.tmp, "other")
        os.mkdir(other)
        with open(os.path.join(other, "a.txt"), "w") as f:
            f.write("other\n")
        idle = d.conn(timeout=5)        # a keep-alive connection from before the reload
        assert idle.request("GET", "/a.txt").body == b"a\n"
        mss_before = idle.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)
        assert mss_before > 1000, mss_before  # loopback: tens of KiB
        text = d.conf_text.replace('document_root = "%s"' % d.root,
                                   'document_root = "%s"' % other)
        text += ("send = { mss = 1000; };\nlimits = { nofile = 4096; };\n"
                 "stats = { recent = 7; };\n")
        with open(d.conf_path, "w") as f:
            f.write(text)
        d.signal(signal.SIGHUP)
        d.wait_log(r"reloaded ", timeout=10)
        m = d.wait_log(r"reload: changed (.*): takes effect only after a restart")
        assert "limits.nofile" in m.group(1), m.group(0)
        assert "stats.recent" in m.group(1), m.group(0)
        # the reloadable ones are not named: only the schema's restart rows are
        assert "listen" not in m.group(1) and "document_root" not in m.group(1), m.group(0)
        assert "send.mss" not in m.group(1), m.group(0)
        assert d.get("/a.txt").body == b"other\n"          # new connection, new root
        assert idle.request("GET", "/a.txt").body == b"a\n"  # old connection, old site
        # send.mss is set again on the listening socket: a new connection negotiates
        # 1000 (988 with TCP timestamps), the one from before keeps its MSS
        c = d.conn(timeout=5)
        try:
            assert c.request("GET", "/a.txt").body == b"other\n"
            mss = c.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)
            assert 900 <= mss <= 1000, mss
        finally:
            c.close()
        assert idle.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG) == mss_before
        idle.close()
        # and back to the kernel's choice when the setting goes
        with open(d.conf_path, "w") as f:
            f.write(text.replace("send = { mss = 1000; };\n", ""))
        d.signal(signal.SIGHUP)
        wait_until(lambda: d.log().count("reloaded ") >= 2, 10, what="the second reload")
        c = d.conn(timeout=5)
        try:
            assert c.request("GET", "/a.txt").body == b"other\n"
            assert c.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG) == mss_before
        finally:
            c.close()


# ---- NOTIFY_SOCKET -------------------------------------------------------------------

class NotifySocket:
    """The service manager's end: a unix datagram socket that records who sent what."""

    def __init__(self, abstract):
        self.tmp = None
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = "ktlsd-test-%d-%s" % (os.getpid(), secrets.token_hex(4))
            self.sock.bind("\0" + name)
            self.addr = "@" + name
        else:
            self.tmp = tempfile.mkdtemp(prefix="ktlsd-notify-")
            self.addr = os.path.join(self.tmp, "notify")
            self.sock.bind(self.addr)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.messages = []          # (dict, sender pid)

    def recv(self, timeout):
        self.sock.settimeout(timeout)
        data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        pid = None
        for level, kind, cdata in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("iII", cdata[:12])[0]
        fields = dict(l.split("=", 1) for l in data.decode().splitlines() if "=" in l)
        self.messages.append((fields, pid))
        return fields, pid

    def until(self, key, timeout=10):
        """Receive until a message carries key=...; return that message and sender."""
        deadline = time.time() + timeout
        while True:
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError("no %s= within %ss; got %r" % (key, timeout, self.messages))
            try:
                fields, pid = self.recv(left)
            except socket.timeout:
                continue
            if key in fields:
                return fields, pid

    def states(self):
        return [k for fields, _ in self.messages for k in ("READY", "RELOADING", "STOPPING")
                if k in fields]

    def close(self):
        self.sock.close()
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)


@test
def notify_socket_ready_reloading_stopping_in_order():
    for abstract in (True, False):
        ns = NotifySocket(abstract)
        try:
            with Daemon(env={"NOTIFY_SOCKET": ns.addr}, files={"a.txt": "a\n"}) as d:
                fields, pid = ns.until("READY")
                assert fields["READY"] == "1" and pid == d.proc.pid, (fields, pid, d.proc.pid)
                assert "serving" in fields.get("STATUS", ""), fields
                assert d.get("/a.txt").status == 200       # READY=1 means serving
                # a good reload
                d.signal(signal.SIGHUP)
                fields, _ = ns.until("RELOADING")
                assert fields["RELOADING"] == "1" and int(fields["MONOTONIC_USEC"]) > 0, fields
                fields, _ = ns.until("READY")
                assert "reloaded" in fields.get("STATUS", ""), fields
                # a failed reload ends with READY=1 too, and says why
                with open(d.conf_path, "a") as f:
                    f.write("bogus_setting = 1;\n")
                d.signal(signal.SIGHUP)
                ns.until("RELOADING")
                fields, _ = ns.until("READY")
                assert "reload failed" in fields.get("STATUS", "") and \
                    "bogus_setting" in fields["STATUS"], fields
                assert d.get("/a.txt").status == 200
                d.stop()
            fields, pid = ns.until("STOPPING")
            assert fields["STOPPING"] == "1", fields
            assert ns.states() == ["READY", "RELOADING", "READY", "RELOADING", "READY",
                                   "STOPPING"], (abstract, ns.states())
        finally:
            ns.close()


@test
def notify_socket_keeps_the_daemon_in_the_foreground():
    # Type=notify: the manager waits for READY=1 from the process it started, so ktlsd
    # must not fork away even without --foreground
    ns = NotifySocket(abstract=True)
    d = Daemon(start=False, files={"a.txt": "a\n"})
    p = None
    try:
        err = open(os.path.join(d.tmp, "stderr.log"), "wb")
        p = subprocess.Popen([KTLSD, "-c", d.conf_path], stdin=subprocess.DEVNULL,
                             stdout=err, stderr=err, env=dict(ENV, NOTIFY_SOCKET=ns.addr))
        fields, pid = ns.until("READY", timeout=15)
        assert pid == p.pid and p.poll() is None, (pid, p.pid, p.poll())
        assert "staying in the foreground" in d.log(), d.log()
        p.send_signal(signal.SIGTERM)
        ns.until("STOPPING")
        assert p.wait(15) == 0
        err.close()
        d.check_clean()
    finally:
        if p is not None and p.poll() is None:
            p.kill()
            p.wait()
        ns.close()
        d.cleanup()


# ---- privileges ----------------------------------------------------------------------

def proc_status(pid):
    with open("/proc/%d/status" % pid) as f:
        return dict(l.split(":", 1) for l in f.read().splitlines() if ":" in l)


def check_dropped(d, user, group):
    pw = pwd.getpwnam(user)
    gid = grp.getgrnam(group).gr_gid if group else pw.pw_gid
    st = proc_status(d.proc.pid)
    assert st["Uid"].split() == [str(pw.pw_uid)] * 4, st["Uid"]
    assert st["Gid"].split() == [str(gid)] * 4, st["Gid"]
    groups = st["Groups"].split()
    assert "0" not in groups and str(gid) in groups, groups
    for k in ("CapEff", "CapPrm", "CapAmb"):
        assert int(st[k].strip(), 16) == 0, (k, st[k])
    assert st["NoNewPrivs"].strip() == "1", st["NoNewPrivs"]
    assert re.search(r"running as %s \(uid %d, gid %d\), no capabilities" % (
        user, pw.pw_uid, gid), d.log()), d.log()


def free_low_port():
    for port in (443, 853, 1023, 990):
        s = socket.socket()
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    return None


@test
def root_binds_then_drops_to_user_and_group_with_no_capabilities():
    if not IS_ROOT:
        raise Skip("not running as root: nothing to drop")
    group = "daemon"
    d = Daemon(start=False, conf_extra='user = "nobody";\ngroup = "%s";\n' % group,
               files={"a.txt": "a\n"})
    with d:
        os.chmod(d.tmp, 0o711)      # the logs' directory: reopened by path as nobody
        d.start()
        check_dropped(d, "nobody", group)
        assert d.get("/a.txt").body == b"a\n"
        # the log files were handed over: SIGUSR1 reopens them as nobody
        d.signal(signal.SIGUSR1)
        d.wait_log(r"SIGUSR1: log files reopened")
        # a reload runs as nobody too: it works when the key is readable by it
        os.chmod(d.key, 0o644)
        d.signal(signal.SIGHUP)
        d.wait_log(r"reloaded ", timeout=10)
        assert d.get("/a.txt").body == b"a\n"
        check_dropped(d, "nobody", group)

    port = free_low_port()
    if port is None:
        print("note: ports 443, 853, 1023 and 990 are all busy: privileged port case skipped")
        return
    d = Daemon(start=False, listen=("127.0.0.1:%d" % port,), conf_extra='user = "nobody";\n',
               files={"a.txt": "a\n"})
    with d:
        d.start()
        assert d.port == port, (d.port, port)
        check_dropped(d, "nobody", None)
        assert d.get("/a.txt").body == b"a\n"


@test
def root_with_only_the_units_capabilities_starts_drops_and_reopens_logs():
    # what the unit leaves ktlsd (CapabilityBoundingSet=, NoNewPrivileges=) must be
    # enough to bind, hand over the logs and drop; setpriv(1) imposes the same here
    if not IS_ROOT:
        raise Skip("not running as root")
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise Skip("setpriv (util-linux) is missing")
    text, _ = generated_unit()
    caps = re.search(r"^CapabilityBoundingSet=(.*)$", text, re.M).group(1).split()
    bounding = "-all," + ",".join("+" + c[len("CAP_"):].lower() for c in caps)
    import ktlsd_test
    d = Daemon(start=False, conf_extra='user = "nobody";\n', files={"a.txt": "a\n"})
    wrapper = os.path.join(d.tmp, "ktlsd-sandboxed")
    with open(wrapper, "w") as f:
        f.write('#!/bin/sh\nexec %s --bounding-set %s --inh-caps=-all --no-new-privs %s "$@"\n'
                % (setpriv, bounding, os.path.abspath(KTLSD)))
    os.chmod(wrapper, 0o755)
    saved = ktlsd_test.KTLSD
    with d:
        os.chmod(d.tmp, 0o711)
        ktlsd_test.KTLSD = wrapper
        try:
            d.start()
        finally:
            ktlsd_test.KTLSD = saved
        check_dropped(d, "nobody", None)
        assert "cannot hand log file" not in d.log(), d.log()
        assert d.get("/a.txt").body == b"a\n"
        d.signal(signal.SIGUSR1)
        d.wait_log(r"SIGUSR1: log files reopened")
        assert "SIGUSR1: cannot" not in d.log(), d.log()


@test
def root_without_user_is_refused_unless_run_as_root():
    if not IS_ROOT:
        raise Skip("not running as root")
    d = Daemon(start=False, files={"a.txt": "a\n"})
    try:
        with open(d.conf_path, "w") as f:
            f.write(without_run_as_root(d.conf_text))
        for args in (("-t", "-c", d.conf_path), ("-f", "-c", d.conf_path)):
            p = run(*args)
            assert p.returncode == 1, (args, p.returncode, p.stderr)
            assert re.search(r"started as root and no \"user\" is set.*run_as_root = true",
                             p.stderr), p.stderr
            assert "ready" not in d.log() + p.stderr, d.log()
        # a user that does not exist is caught by -t, before anything is bound
        with open(d.conf_path, "a") as f:
            f.write('user = "no-such-user-ktlsd";\n')
        p = run("-t", "-c", d.conf_path)
        assert p.returncode == 1 and 'user "no-such-user-ktlsd" does not exist' in p.stderr, \
            p.stderr
        # group without user makes no sense
        with open(d.conf_path, "w") as f:
            f.write(d.conf_text + 'group = "daemon";\n')
        p = run("-t", "-c", d.conf_path)
        assert p.returncode == 1 and "group: needs user" in p.stderr, p.stderr
    finally:
        d.cleanup()
    # run_as_root = true (the framework's default as root): runs, and says so
    with Daemon(files={"a.txt": "a\n"}) as d:
        assert re.search(r"\[warn\] \d+: running as root \(run_as_root = true\)", d.log())
        assert proc_status(d.proc.pid)["Uid"].split()[0] == "0"
    # --demo as root: runs, with a warning
    demo_root = tempfile.mkdtemp(prefix="ktlsd-demo-")
    err = tempfile.TemporaryFile()
    p = subprocess.Popen([KTLSD, "--demo", demo_root, "--listen", "127.0.0.1:0"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                         env=ENV)
    try:
        def text():
            err.seek(0)
            return err.read().decode(errors="replace")
        wait_until(lambda: "ready" in text() or p.poll() is not None, 15, what="demo start")
        assert p.poll() is None, text()
        assert re.search(r"\[warn\] \d+: --demo started as root", text()), text()
        p.send_signal(signal.SIGTERM)
        assert p.wait(15) == 0, text()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        shutil.rmtree(demo_root, ignore_errors=True)


# ---- open files limit ------------------------------------------------------------------

@test
def nofile_limit_is_applied_and_running_out_pauses_accept():
    with Daemon(conf_extra="limits = { nofile = 64; };\n", files={"a.txt": "a\n"},
                timeouts={"handshake": 10}) as d:
        d.wait_log(r"open files limit: soft 64, hard \S+ \(was ")
        with open("/proc/%d/limits" % d.proc.pid) as f:
            m = re.search(r"Max open files\s+(\d+)", f.read())
        assert m and int(m.group(1)) == 64, m
        socks = []
        try:
            for _ in range(100):            # more than 64 fds' worth of clients
                socks.append(tcp_connect(d, timeout=5))
            # either accept() fails (EMFILE: accepting pauses a second at a time) or
            # the daemon turns new clients away to keep fds for responses in flight
            d.wait_log(r"accept: Too many open files; pausing accept|"
                       r"out of file descriptors", 10)
            assert d.proc.poll() is None, "ktlsd died when out of files"
        finally:
            for s in socks:
                s.close()
        # once the clients are gone, it serves again (accept resumes within a second)
        r = wait_until(lambda: _try_get(d), 20, interval=0.3, what="serving again")
        assert r.body == b"a\n"
        d.wait_fds_baseline(timeout=15)
    # a limit below what the daemon itself needs is a configuration error
    d = Daemon(start=False)
    try:
        with open(d.conf_path, "a") as f:
            f.write("limits = { nofile = 10; };\n")
        p = run("-t", "-c", d.conf_path)
        assert p.returncode == 1 and re.search(r"ktlsd.conf:\d+: nofile", p.stderr), p.stderr
    finally:
        d.cleanup()


def _try_get(d):
    try:
        return d.get("/a.txt", timeout=3)
    except (OSError, EOFError):
        return None


# ---- systemd unit, man pages -------------------------------------------------------

def ensure_systemd_analyze():
    """systemd-analyze, installing Debian's systemd package if needed; or why not."""
    exe = shutil.which("systemd-analyze")
    if exe:
        return exe, None
    if not IS_ROOT or not shutil.which("apt-get"):
        return None, "systemd-analyze is missing and apt-get cannot be used (not root)"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        for cmd in (["apt-get", "update", "-qq"],
                    ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "systemd"]):
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
            if p.returncode != 0:
                return None, "%s failed: %s" % (" ".join(cmd), (p.stderr or p.stdout)[-300:])
    except subprocess.TimeoutExpired:
        return None, "apt-get took too long"
    exe = shutil.which("systemd-analyze")
    return exe, None if exe else "systemd installed but no systemd-analyze"


def generated_unit():
    builddir = os.environ.get("TOP_BUILDDIR") or os.path.dirname(
        os.path.dirname(os.path.abspath(KTLSD)))
    path = os.path.join(builddir, "systemd", "ktlsd.service")
    if os.path.exists(path):
        return open(path).read(), path
    # run by hand outside a build tree: substitute the way Makefile.am does
    with open(os.path.join(TOP_SRCDIR, "systemd", "ktlsd.service.in")) as f:
        text = f.read()
    return (text.replace("@sbindir@", "/usr/local/sbin")
            .replace("@sysconfdir@", "/usr/local/etc")), None


@test
def systemd_unit_passes_systemd_analyze_verify():
    text, path = generated_unit()
    if path is None:
        print("note: no generated unit next to %s; substituting the template here" % KTLSD)
    assert "@" not in re.sub(r"\$MAINPID|^#.*$", "", text, flags=re.M).replace(
        "@system-service", ""), "unsubstituted @VAR@ in the unit"
    m = re.search(r"^ExecStart=(\S+)/ktlsd -c (\S+)/ktlsd\.conf --foreground$", text, re.M)
    assert m, "ExecStart= not as expected:\n" + text
    sbindir = m.group(1)
    for want in (r"^Type=notify$", r"^ExecStartPre=\S+/ktlsd -t -c \S+/ktlsd\.conf$",
                 r"^ExecReload=/bin/kill -HUP \$MAINPID$", r"^ProtectSystem=strict$",
                 r"^NoNewPrivileges=yes$", r"^CapabilityBoundingSet=CAP_NET_BIND_SERVICE "
                 r"CAP_SETUID CAP_SETGID CAP_CHOWN$", r"^AmbientCapabilities=$",
                 r"^RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK$",
                 r"^SystemCallFilter=@system-service$", r"^LogsDirectory=ktlsd$",
                 r"^LimitNOFILE=\d+$", r"^TimeoutStopSec=\d+"):
        assert re.search(want, text, re.M), "unit lacks /%s/" % want

    exe, why = ensure_systemd_analyze()
    if exe is None:
        raise Skip(why)
    tmp = tempfile.mkdtemp(prefix="ktlsd-unit-")
    try:
        # The installed paths do not exist here: point them at this build (ExecStart
        # must be executable) and at this tree's man pages (Documentation= is checked).
        unit = os.path.join(tmp, "ktlsd.service")
        with open(unit, "w") as f:
            f.write(text.replace(sbindir + "/ktlsd", os.path.abspath(KTLSD)))
        # the socket unit beside it: it activates ktlsd.service by name
        sock = os.path.join(tmp, "ktlsd.socket")
        shutil.copy(os.path.join(TOP_SRCDIR, "systemd", "ktlsd.socket"), sock)
        assert re.search(r"^ListenStream=", open(sock).read(), re.M)
        args = [exe, "verify"]
        env = dict(os.environ)
        if shutil.which("man"):
            for page in glob.glob(os.path.join(TOP_SRCDIR, "man", "*.[158]")):
                sect = os.path.join(tmp, "man", "man" + page[-1])
                os.makedirs(sect, exist_ok=True)
                shutil.copy(page, sect)
            env["MANPATH"] = os.path.join(tmp, "man")
        else:
            print("note: man(1) missing: Documentation= not checked")
            args.append("--man=no")
        p = subprocess.run(args + [unit, sock], capture_output=True, text=True, timeout=120,
                           env=env)
        out = p.stdout + p.stderr
        ours = [l for l in out.splitlines() if "ktlsd" in l]
        assert p.returncode == 0 and not ours, "systemd-analyze verify (rc %d):\n%s" % (
            p.returncode, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@test
def man_pages_render_without_warnings():
    groff = shutil.which("groff")
    if groff is None:
        raise Skip("groff is missing (Debian package groff-base)")
    pages = sorted(glob.glob(os.path.join(TOP_SRCDIR, "man", "*.[158]")))
    names = [os.path.basename(p) for p in pages]
    assert names == ["ktlsd-bench.1", "ktlsd.8", "ktlsd.conf.5"], names
    for page in pages:
        p = subprocess.run([groff, "-ww", "-man", "-z", page], capture_output=True,
                           text=True, timeout=60)
        assert p.returncode == 0 and p.stderr == "", (page, p.stderr)
        with open(page, "rb") as f:
            assert all(b < 128 for b in f.read()), "%s: non-ASCII bytes" % page
    # every key of the example configuration is documented in ktlsd.conf(5)
    with open(os.path.join(TOP_SRCDIR, "man", "ktlsd.conf.5")) as f:
        man5 = f.read().replace("\\-", "-")
    with open(os.path.join(TOP_SRCDIR, "etc", "ktlsd.conf")) as f:
        conf = f.read()
    group = None
    keys = []
    for line in conf.splitlines():
        line = re.sub(r"^#\s?", "", line).strip()
        m = re.match(r"(\w+)\s*=\s*(\{)?", line)
        if m and m.group(2):
            group = m.group(1)
            continue
        if line.startswith("}"):
            group = None
            continue
        if m:
            keys.append(group + "." + m.group(1) if group else m.group(1))
    assert len(keys) > 20, keys
    missing = [k for k in keys if not re.search(r"^\.BR? %s\b" % re.escape(k), man5, re.M)]
    assert not missing, "not in ktlsd.conf.5: %s" % missing


@test
def systemd_socket_activation_serves_on_the_inherited_socket():
    """ktlsd started by systemd-socket-activate (the sd_listen_fds protocol of a .socket
    unit): it serves on the socket it was given, binds none of the configured listen
    addresses (one of them is held by this test, binding it would fail), and a configured
    entry with the socket's address lends it its send settings."""
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = free_port()
    with Daemon(start=False, stats=True) as d:
        d.edit_conf('listen = [ "127.0.0.1:0" ];',
                    'listen = ( { address = "127.0.0.1:%d"; send = { mode = "write"; }; }, '
                    '"127.0.0.1:%d" );' % (port, blocker.getsockname()[1]))
        d.put("a.txt", "activated\n")
        d.start_socket_activated(port)
        # the first connection starts ktlsd (systemd-socket-activate execs it on demand)
        c = d.conn(timeout=20)
        r = c.request("GET", "/a.txt")
        assert r.status == 200 and r.body == b"activated\n", r
        log = d.log()
        assert re.search(r"socket activation: 1 listening socket\(s\) from systemd", log), log
        assert not re.search(r"\[(alert|emerg)\]", log), log
        d.find_stats_port()
        conns = d.stats()["connections"]
        assert len(conns) == 1 and conns[0]["mode"] == "write", conns
        c.close()
    blocker.close()


if __name__ == "__main__":
    run_tests()
