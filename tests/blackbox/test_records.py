"""The TLS 1.3 record layer after the handshake (src/tlsrec.c): OpenSSL does the
handshake, then its SSL object is freed and the daemon reads and writes the records
itself. Here, against the real daemon (no kTLS on the host: every send mode seals its
records in userspace):

  - KeyUpdate from `openssl s_client` (K: update_requested, k: not), between requests,
    several in a row, and while a large response is in flight: the daemon's read key
    follows, it answers a requested one with its own KeyUpdate before its next data,
    and bodies stay byte-exact;
  - bytes a client shapes itself (ssl.SSLObject over memory BIOs, the TCP socket written
    by hand): a flipped byte (bad record MAC), an unprotected record, a record header
    over the limit, EOF inside a record -> closed with an alert and a log line, and the
    daemon serves on; a request one byte per record, a record one byte per TCP send, a
    request in the Finished's segment, pipelining across records -> answered in order;
  - close_notify both ways;
  - tls.ciphersuites (and --ciphersuites): only the three suites with a record layer are
    accepted, each works end to end with curl;
  - HEAD, Range, 304 and idle keep-alive (the record layer frees its buffers and AEAD
    contexts when idle) with AES-256-GCM and ChaCha20-Poly1305.
"""
import hashlib
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ktlsd_test import (KTLSD, SANITIZER_RE, Daemon, client_context,  # noqa: E402
                        run_tests, sha256_file, test, wait_until)

SUITES = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")


def parse_response(buf, off, head_only=False):
    """One HTTP/1.1 response at buf[off:]: (status, headers, body, end offset), or None
    while incomplete."""
    i = buf.find(b"\r\n\r\n", off)
    if i < 0:
        return None
    lines = bytes(buf[off:i]).decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.1 (\d{3}) ", lines[0])
    assert m, "not a status line: %r" % lines[0]
    headers = {}
    for line in lines[1:]:
        k, v = line.split(":", 1)
        headers[k.strip().lower()] = v.strip()
    status = int(m.group(1))
    n = 0 if head_only or status in (204, 304) else int(headers.get("content-length", 0))
    if len(buf) < i + 4 + n:
        return None
    return status, headers, bytes(buf[i + 4:i + 4 + n]), i + 4 + n


def suite_of(d, port):
    """The suite the daemon's log names for the connection from client port `port`."""
    m = d.wait_log(r"127\.0\.0\.1:%d: TLSv1\.3 (\S+)," % port)
    return m.group(1)


def with_suite(d, suite):
    """tls.ciphersuites = suite in d's configuration (before start)."""
    d.edit_conf('private_key = "%s";' % d.key,
                'private_key = "%s"; ciphersuites = "%s";' % (d.key, suite))


# ---- openssl s_client ------------------------------------------------------------------

class SClient:
    """`openssl s_client` on one connection. stdout is the raw application data (-quiet;
    -no_ign_eof keeps the K/k commands that -quiet alone turns off), the protocol
    messages go to a file (-msg -msgfile). s_client looks only at the first byte of each
    read from stdin for a command, so every step waits for its effect before the next."""

    def __init__(self, d, name):
        self.msgfile = os.path.join(d.tmp, name + ".msg")
        self.p = subprocess.Popen(
            ["openssl", "s_client", "-connect", "127.0.0.1:%d" % d.port, "-tls1_3",
             "-servername", "localhost", "-quiet", "-no_ign_eof", "-msg", "-msgfile",
             self.msgfile],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.out, self.err = bytearray(), bytearray()
        self.off = 0                    # responses before it are parsed
        self.reading = threading.Event()
        self.reading.set()              # clear it to stop reading stdout (a slow client)
        self.threads = [threading.Thread(target=self._pump, args=(self.p.stdout, self.out, True)),
                        threading.Thread(target=self._pump, args=(self.p.stderr, self.err, False))]
        for t in self.threads:
            t.daemon = True
            t.start()
        try:
            wait_until(lambda: b"verify return:1" in self.err, 10, what="s_client's handshake")
        except BaseException:
            self.kill()
            raise

    def _pump(self, f, buf, paced):
        fd = f.fileno()
        while True:
            if paced:
                self.reading.wait()
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return
            buf += chunk

    def send(self, data):
        self.p.stdin.write(data.encode() if isinstance(data, str) else data)
        self.p.stdin.flush()

    def key_update(self, requested):
        n = self.err.count(b"KEYUPDATE")
        self.send(b"K\n" if requested else b"k\n")
        wait_until(lambda: self.err.count(b"KEYUPDATE") > n, 5, what="s_client's KEYUPDATE")
        time.sleep(0.05)    # a later line must come in a read of its own

    def response(self, timeout=20, head_only=False):
        r = wait_until(lambda: parse_response(self.out, self.off, head_only), timeout,
                       what="a response from s_client (%d bytes so far)" % len(self.out))
        self.off = r[3]
        return r[:3]

    def get(self, path, close=False, timeout=20):
        self.send("GET %s HTTP/1.1\r\nHost: localhost\r\n%s\r\n" % (
            path, "Connection: close\r\n" if close else ""))
        return self.response(timeout)

    def finish(self, timeout=10):
        """Wait for s_client to end (the daemon closed); its KeyUpdates as a list of
        (direction ">>>" sent or "<<<" received, request_update byte)."""
        try:
            self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            raise AssertionError("s_client still running after %ss" % timeout)
        for t in self.threads:
            t.join(5)
        with open(self.msgfile, errors="replace") as f:
            msgs = f.read()
        return [(m.group(1), int(m.group(2), 16)) for m in re.finditer(
            r"^(<<<|>>>) TLS 1\.3, Handshake \[length 0005\], KeyUpdate\n\s+18 00 00 01 (\w\w)",
            msgs, re.M)]

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


@test
def key_updates_from_s_client_between_requests():
    size = 3 * 1024 * 1024 + 11
    for mode in ("userspace", "auto"):
        with Daemon(send_mode=mode, files={"a.txt": "key update\n"}) as d:
            data = open(d.put_random("big.bin", size, seed=41), "rb").read()
            s = SClient(d, "ku-" + mode)
            try:
                small = (200, b"key update\n")
                for step in ("GET", "K", "GET", "k", "GET", "K", "K", "K", "GET", "BIG",
                             "k", "GET"):
                    if step in ("K", "k"):
                        s.key_update(step == "K")
                    elif step == "GET":
                        status, _, body = s.get("/a.txt")
                        assert (status, body) == small, (mode, step, status, body)
                    else:
                        status, h, body = s.get("/big.bin")
                        assert status == 200 and h["content-length"] == str(size), (mode, h)
                        assert body == data, "%s: the body differs after KeyUpdates" % mode
                status, h, body = s.get("/a.txt", close=True)
                assert (status, body) == small and h["connection"] == "close", (mode, h)
                kus = s.finish()
            finally:
                s.kill()
            sent = [req for way, req in kus if way == ">>>"]
            got = [req for way, req in kus if way == "<<<"]
            # s_client sent what it was told; the daemon answered each K (three in a row
            # may be answered by one, RFC 8446 §4.6.3: before its next data) and never
            # asked for one itself
            assert sent == [1, 0, 1, 1, 1, 0], (mode, kus)
            assert 2 <= len(got) <= 4 and set(got) == {0}, (mode, kus)
            assert kus.index(("<<<", 0)) > kus.index((">>>", 1)), (mode, kus)
            assert not re.search(r"TLS: .*; closed", d.log()), d.log()[-2000:]
            assert s.p.returncode == 0, s.err[-500:]


@test
def a_stream_of_key_updates_without_data_is_cut_at_33():
    # a client may update its key as often as it likes, but 33 records in a row that carry
    # no data (here KeyUpdates) end the connection: otherwise a client streaming them
    # keeps the worker in one read for as long as it likes
    with Daemon(send_mode="userspace", files={"a.txt": "ok\n"}) as d:
        s = SClient(d, "flood")
        try:
            assert s.get("/a.txt")[::2] == (200, b"ok\n")
            for _ in range(32):
                s.key_update(False)
            assert s.get("/a.txt")[::2] == (200, b"ok\n")     # data: the count starts again
            for _ in range(33):
                if s.p.poll() is not None:
                    break
                s.key_update(False)
            s.finish()
        finally:
            s.kill()
        wait_until(lambda: "TLS: too many records without data; closed" in d.log(), 5,
                   what="the log line of the cut")
        assert d.get("/a.txt").status == 200      # the daemon goes on


@test
def key_update_while_a_large_response_is_in_flight():
    # larger than what the loopback socket buffers can hold: the daemon is still sending
    # when the KeyUpdate comes, however it is scheduled
    size = 24 * 1024 * 1024 + 5
    with Daemon(send_mode="userspace", stats=True, files={"a.txt": "after\n"},
                timeouts={"send_idle": 30}) as d:
        path = d.put_random("big.bin", size, seed=42)
        want = sha256_file(path)
        s = SClient(d, "inflight")
        try:
            s.send("GET /big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
            wait_until(lambda: len(s.out) >= 1 << 20, 20, what="the first MiB")
            s.reading.clear()           # the client stops reading: the response waits
            time.sleep(0.5)
            conn = wait_until(lambda: d.stats()["connections"], 5, what="the connection")[0]
            assert conn["state"] == "send_body", conn
            s.key_update(True)
            time.sleep(0.3)
            s.reading.set()
            status, h, body = s.response(timeout=60)
            assert status == 200 and h["content-length"] == str(size), h
            assert hashlib.sha256(body).hexdigest() == want, "the body differs"
            status, _, body = s.get("/a.txt", close=True)
            assert (status, body) == (200, b"after\n"), (status, body)
            kus = s.finish()
        finally:
            s.kill()
        # the daemon's own KeyUpdate came (before the data that followed it)
        assert (">>>", 1) in kus and ("<<<", 0) in kus, kus
        assert not re.search(r"TLS: .*; closed", d.log()), d.log()[-2000:]


# ---- records shaped by hand -------------------------------------------------------------

class RawTLS:
    """A TLS 1.3 client whose records the test sees and shapes: ssl.SSLObject over memory
    BIOs, the TCP socket written by hand."""

    def __init__(self, d, timeout=5, send_finished=True):
        self.sock = d.tcp(timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.port = self.sock.getsockname()[1]
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = client_context().wrap_bio(self.inc, self.out, server_hostname="localhost")
        self.plain = b""
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.flush()
                self._recv()
        # the client's Finished is in self.out; kept there, it goes with the first send
        if send_finished:
            self.flush()

    def flush(self):
        data = self.out.read()
        if data:
            self.sock.sendall(data)

    def _recv(self):
        chunk = self.sock.recv(1 << 16)
        if chunk:
            self.inc.write(chunk)
        else:
            self.inc.write_eof()
        return chunk

    def seal(self, data):
        """The bytes of data as records (one write, one record up to 16 KiB), unsent."""
        self.obj.write(data.encode() if isinstance(data, str) else data)
        return self.out.read()

    def send(self, data):
        self.sock.sendall(self.seal(data))

    def read_more(self):
        """Decrypt what comes: True with bytes added to self.plain, False at close_notify.
        ssl.SSLError for an alert, SSLEOFError for a close without close_notify."""
        while True:
            try:
                got = self.obj.read(1 << 16)
            except ssl.SSLWantReadError:
                self._recv()
                continue
            if not got:
                return False
            self.plain += got
            return True

    def response(self, head_only=False):
        while True:
            r = parse_response(self.plain, 0, head_only)
            if r:
                self.plain = self.plain[r[3]:]
                return r[:3]
            if not self.read_more():
                raise AssertionError("close_notify before a whole response: %r" % self.plain)

    def request(self, path, method="GET", headers=""):
        self.send("%s %s HTTP/1.1\r\nHost: localhost\r\n%s\r\n" % (method, path, headers))
        return self.response(head_only=(method == "HEAD"))

    def alert(self, timeout=3):
        """The alert the daemon sends now (the SSLError OpenSSL makes of it), then EOF."""
        self.sock.settimeout(timeout)
        t0 = time.time()
        try:
            while self.read_more():
                pass
        except ssl.SSLError as e:
            err = e
        else:
            raise AssertionError("close_notify instead of an alert")
        assert time.time() - t0 < timeout, "slow"
        # and then the daemon closes
        while True:
            try:
                chunk = self.sock.recv(4096)
            except ConnectionResetError:
                break
            if not chunk:
                break
        return str(err)

    def close(self):
        self.sock.close()


def errors_of(d, port):
    return re.findall(r"127\.0\.0\.1:%d: TLS: (.*); closed" % port, d.log())


def bad_input_case(d, bystander, make_bad, alert_rx, log_line):
    """A connection answers one request, then sends make_bad(c) raw: the daemon sends an
    alert matching alert_rx, closes, logs log_line; the bystander (idle in keep-alive)
    and a new connection are served after."""
    c = RawTLS(d)
    try:
        assert c.request("/a.txt")[::2] == (200, b"a\n")
        c.sock.sendall(make_bad(c))
        err = c.alert()
        assert re.search(alert_rx, err, re.I), (log_line, err)
    finally:
        c.close()
    d.wait_log(r"127\.0\.0\.1:%d: TLS: %s; closed" % (c.port, re.escape(log_line)))
    assert errors_of(d, c.port) == [log_line], errors_of(d, c.port)
    assert bystander.request("/a.txt")[::2] == (200, b"a\n"), log_line
    n = RawTLS(d)
    assert n.request("/a.txt")[::2] == (200, b"a\n"), log_line
    n.close()


def flipped(c):
    rec = bytearray(c.seal(b"GET /a.txt HTTP/1.1\r\nHost: localhost\r\n\r\n"))
    rec[20] ^= 0x01
    return bytes(rec)


@test
def garbage_after_the_handshake_gets_an_alert_and_a_close():
    with Daemon(send_mode="userspace", files={"a.txt": "a\n"}) as d:
        bystander = RawTLS(d)
        try:
            bad_input_case(d, bystander, flipped, r"bad.record.mac", "bad record MAC")
            # the tag itself wrong: the last byte
            bad_input_case(d, bystander, lambda c: (lambda r: r[:-1] + bytes([r[-1] ^ 0x80]))(
                c.seal(b"GET / HTTP/1.1\r\n\r\n")), r"bad.record.mac", "bad record MAC")
            # unprotected records after the handshake: a handshake message, an alert, a
            # ChangeCipherSpec (allowed only during the handshake)
            for raw in (b"\x16\x03\x03\x00\x04\x18\x00\x00\x01" + b"\x00" * 0,
                        b"\x15\x03\x03\x00\x02\x02\x0a",
                        b"\x14\x03\x03\x00\x01\x01"):
                bad_input_case(d, bystander, lambda c, raw=raw: raw, r"unexpected.message",
                               "an unprotected record after the handshake")
            # a header claiming more than 2^14 + 256 bytes: refused at once, the bytes
            # are not waited for
            t0 = time.time()
            bad_input_case(d, bystander, lambda c: b"\x17\x03\x03" + (20000).to_bytes(2, "big"),
                           r"record.overflow", "record over 2^14 + 256 bytes")
            bad_input_case(d, bystander,
                           lambda c: b"\x17\x03\x03" + (16384 + 256 + 1).to_bytes(2, "big"),
                           r"record.overflow", "record over 2^14 + 256 bytes")
            assert time.time() - t0 < 4, "waited for the bytes? (header timeout is 5 s)"
            # exactly 2^14 + 256 is a size the daemon reads (then the MAC fails)
            bad_input_case(d, bystander,
                           lambda c: b"\x17\x03\x03" + (16640).to_bytes(2, "big") + b"\x55" * 16640,
                           r"bad.record.mac", "bad record MAC")
            # shorter than a tag
            bad_input_case(d, bystander, lambda c: b"\x17\x03\x03\x00\x05abcde",
                           r"bad.record.mac", "bad record MAC")
        finally:
            bystander.close()
        d.wait_fds_baseline()


@test
def eof_inside_a_record_closes_quietly():
    with Daemon(send_mode="userspace", files={"a.txt": "a\n"}) as d:
        for cut in (1, 4, 5, 30):
            c = RawTLS(d)
            assert c.request("/a.txt")[::2] == (200, b"a\n")
            rec = c.seal(b"GET /a.txt HTTP/1.1\r\nHost: localhost\r\n\r\n")
            c.sock.sendall(rec[:cut])
            time.sleep(0.1)
            c.sock.shutdown(socket.SHUT_WR)
            c.sock.settimeout(3)
            t0 = time.time()
            try:
                while c.sock.recv(4096):
                    pass
            except ConnectionResetError:
                pass
            assert time.time() - t0 < 2, "not closed at the EOF (cut %d)" % cut
            c.close()
            assert errors_of(d, c.port) == [], errors_of(d, c.port)
        assert RawTLS(d).request("/a.txt")[::2] == (200, b"a\n")
        d.wait_fds_baseline()


@test
def requests_in_small_pieces_are_answered():
    req = b"GET /a.txt HTTP/1.1\r\nHost: localhost\r\nUser-Agent: pieces\r\n\r\n"
    with Daemon(send_mode="userspace", files={"a.txt": "a\n"}) as d:
        # one byte per record, all records in one send, then one send each
        c = RawTLS(d)
        c.sock.sendall(b"".join(c.seal(req[i:i + 1]) for i in range(len(req))))
        assert c.response()[::2] == (200, b"a\n")
        for i in range(len(req)):
            c.send(req[i:i + 1])
            time.sleep(0.002)
        assert c.response()[::2] == (200, b"a\n")
        # one record, one byte per TCP send
        for b in c.seal(req):
            c.sock.send(bytes([b]))
            time.sleep(0.002)
        assert c.response()[::2] == (200, b"a\n")
        # empty records between (allowed: zero-length application data)
        c.sock.sendall(c.seal(req[:10]) + c.seal(b"") + c.seal(req[10:]))
        assert c.response()[::2] == (200, b"a\n")
        c.close()
        # the first request in the TCP segment of the client's Finished: OpenSSL must
        # not have read past the Finished when the record layer takes over
        c = RawTLS(d, send_finished=False)
        c.sock.sendall(c.out.read() + c.seal(req))
        assert c.response()[::2] == (200, b"a\n")
        c.close()
        assert not re.search(r"TLS: .*; closed", d.log()), d.log()[-2000:]
        d.wait_fds_baseline()


@test
def pipelined_requests_across_records_are_answered_in_order():
    with Daemon(send_mode="userspace", files={"a.txt": "a\n", "b.txt": "bb\n"}) as d:
        big = open(d.put_random("big.bin", 100000, seed=43), "rb").read()
        ra = b"GET /a.txt HTTP/1.1\r\nHost: localhost\r\n\r\n"
        rb = b"GET /b.txt HTTP/1.1\r\nHost: localhost\r\n\r\n"
        rbig = b"GET /big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n"
        c = RawTLS(d)
        # two requests in one record
        c.send(ra + rb)
        assert c.response()[::2] == (200, b"a\n")
        assert c.response()[::2] == (200, b"bb\n")
        # one request over three records, sent together and one by one
        c.sock.sendall(c.seal(rb[:7]) + c.seal(rb[7:20]) + c.seal(rb[20:]))
        assert c.response()[::2] == (200, b"bb\n")
        for part in (rb[:3], rb[3:30], rb[30:]):
            c.send(part)
            time.sleep(0.05)
        assert c.response()[::2] == (200, b"bb\n")
        # one request per record, the records in one TCP send: when the first response
        # is done nothing is left in the request buffer, the second record waits
        # (already read) in the record layer's, and no read edge will come for it
        c.sock.sendall(c.seal(ra) + c.seal(rbig) + c.seal(rb))
        assert c.response()[::2] == (200, b"a\n")
        assert c.response()[::2] == (200, big)
        assert c.response()[::2] == (200, b"bb\n")
        # three requests over records that split them anywhere, a large body between
        stream = ra + rbig + rb
        cuts = [0, 5, 41, 42, 60, 100, len(stream)]
        c.sock.sendall(b"".join(c.seal(stream[a:b]) for a, b in zip(cuts, cuts[1:])))
        assert c.response()[::2] == (200, b"a\n")
        assert c.response()[::2] == (200, big)
        assert c.response()[::2] == (200, b"bb\n")
        c.close()
        assert not re.search(r"TLS: .*; closed", d.log()), d.log()[-2000:]


@test
def close_notify_both_ways():
    with Daemon(send_mode="userspace", files={"a.txt": "a\n"}) as d:
        # the client's close_notify after a response: the daemon answers with its own
        # (RFC 8446 §6.1) and closes at once, no error line
        c = RawTLS(d)
        assert c.request("/a.txt")[::2] == (200, b"a\n")
        try:
            c.obj.unwrap()
        except ssl.SSLWantReadError:
            pass                        # sent; the answer is not here yet
        c.flush()
        c.sock.settimeout(3)
        t0 = time.time()
        raw = b""
        while True:
            chunk = c.sock.recv(4096)   # socket.timeout: the daemon did not close
            if not chunk:
                break
            raw += chunk
        assert time.time() - t0 < 2 and len(raw) == 24, (time.time() - t0, raw)
        c.inc.write(raw)                # one record: the daemon's close_notify
        c.obj.unwrap()
        c.close()
        time.sleep(0.2)
        assert errors_of(d, c.port) == [], errors_of(d, c.port)
        # the daemon's close_notify at Connection: close
        c = RawTLS(d)
        st, h, body = c.request("/a.txt", headers="Connection: close\r\n")
        assert (st, body, h["connection"]) == (200, b"a\n", "close")
        c.sock.settimeout(3)
        assert c.read_more() is False, "data after the response"     # SSLEOFError: none
        c.obj.unwrap()      # our answer; complete: theirs came
        c.flush()
        c.close()
        # also after a keep-alive request, and with a body in flight
        c = RawTLS(d)
        assert c.request("/a.txt")[::2] == (200, b"a\n")
        st, h, body = c.request("/a.txt", method="HEAD", headers="Connection: close\r\n")
        assert (st, body, h["content-length"]) == (200, b"", "2"), (st, h)
        assert c.read_more() is False
        c.close()
        assert not re.search(r"TLS: .*; closed", d.log()), d.log()[-2000:]
        d.wait_fds_baseline()


# ---- cipher suites -----------------------------------------------------------------------

def config_test(d, *args):
    p = subprocess.run([KTLSD, "-t", "-c", d.conf_path] + list(args), capture_output=True,
                       timeout=20, stdin=subprocess.DEVNULL, text=True, errors="replace")
    assert not SANITIZER_RE.search(p.stderr), p.stderr
    return p.returncode, p.stdout + p.stderr


@test
def ciphersuites_without_a_record_layer_are_refused():
    d = Daemon(start=False)
    try:
        for bad in ("TLS_AES_128_CCM_SHA256", "TLS_AES_128_CCM_8_SHA256",
                    "TLS_AES_128_GCM_SHA256:TLS_AES_128_CCM_SHA256"):
            suite = bad.split(":")[-1]
            # on the command line
            code, out = config_test(d, "--ciphersuites", bad)
            assert code == 1 and re.search(r"--ciphersuites: %s is not supported" % suite,
                                           out), (bad, code, out)
            # in the file: the message names the file and line of the setting
            d2 = Daemon(start=False)
            try:
                with_suite(d2, bad)
                code, out = config_test(d2)
                assert code == 1 and re.search(
                    r"\.conf:\d+: ciphersuites: %s is not supported \(ktlsd has "
                    r"TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384 and "
                    r"TLS_CHACHA20_POLY1305_SHA256\)" % suite, out), (bad, code, out)
            finally:
                d2.cleanup()
        for good in SUITES + (":".join(SUITES),):
            code, out = config_test(d, "--ciphersuites", good)
            assert code == 0, (good, out)
        # OpenSSL takes an empty list, and then every handshake fails: refused here
        for empty in ("", ":", "::"):
            code, out = config_test(d, "--ciphersuites", empty)
            assert code == 1 and "--ciphersuites: names no cipher suite" in out, (empty, out)
    finally:
        d.cleanup()


@test
def each_supported_suite_works_end_to_end_with_curl():
    size = 1024 * 1024 + 4099
    for suite in SUITES:
        for where in ("file", "command line"):
            d = Daemon(send_mode="userspace", start=False,
                       args=["--ciphersuites", suite] if where == "command line" else [])
            if where == "file":
                with_suite(d, suite)
            with d:
                d.start()
                path = d.put_random("big.bin", size, seed=44)
                out = os.path.join(d.tmp, "got.bin")
                p = d.curl("/big.bin", "--tls13-ciphers", suite, "-w", "%{http_code}",
                           out=out, timeout=30)
                assert p.returncode == 0 and p.stdout == b"200", (suite, where, p.stderr)
                assert sha256_file(out) == sha256_file(path), (suite, where)
                m = d.wait_log(r"TLSv1\.3 (\S+), tls_tx=")
                assert m.group(1) == suite, (suite, where, m.group(0))
                # a client that offers only another suite finds none in common
                other = [s for s in SUITES if s != suite][0]
                p = d.curl("/big.bin", "--tls13-ciphers", other, out=out, timeout=10)
                assert p.returncode != 0, (suite, other)


# ---- keep-alive, HEAD, Range, 304, idle ----------------------------------------------------

@test
def head_range_304_and_idle_keep_alive_with_each_suite():
    size = 300000
    for suite in ("TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"):
        d = Daemon(send_mode="userspace", start=False, timeouts={"keepalive": 10})
        with_suite(d, suite)
        with d:
            d.start()
            data = open(d.put_random("f.bin", size, seed=45), "rb").read()
            c = d.conn(timeout=10)
            assert suite_of(d, c.sock.getsockname()[1]) == suite
            for rnd in range(3):
                r = c.request("GET", "/f.bin")
                assert r.status == 200 and r.body == data, (suite, rnd, r)
                etag, lm = r.header("etag"), r.header("last-modified")
                r = c.request("HEAD", "/f.bin")
                assert r.status == 200 and r.header("content-length") == str(size) and \
                    r.body == b"", (suite, rnd, r)
                r = c.request("GET", "/f.bin", {"Range": "bytes=1000-70000"})
                assert r.status == 206 and r.body == data[1000:70001], (suite, rnd, r)
                r = c.request("GET", "/f.bin", {"Range": "bytes=-17"})
                assert r.status == 206 and r.body == data[-17:], (suite, rnd, r)
                r = c.request("GET", "/f.bin", {"If-None-Match": etag})
                assert r.status == 304 and r.body == b"", (suite, rnd, r)
                r = c.request("GET", "/f.bin", {"If-Modified-Since": lm})
                assert r.status == 304, (suite, rnd, r)
                # idle past a second: buffers and AEAD contexts given back; the next
                # record in either direction starts from the kept keys and sequences
                time.sleep(1.3)
                r = c.request("GET", "/f.bin", {"Range": "bytes=0-0"})
                assert r.status == 206 and r.body == data[:1], (suite, rnd, r)
                time.sleep(1.1)
            c.close()
            assert not re.search(r"TLS: .*; closed", d.log()), d.log()[-2000:]
            d.wait_fds_baseline()


if __name__ == "__main__":
    run_tests()
