"""TLS edge cases: what clients say in and around the handshake.

Hostile-input checklist covered here (test_basic.py has the `openssl s_client -tls1_2`
refusal, test_timeouts.py plain HTTP on the TLS port and handshakes that never finish,
test_robust_load.py thousands of idle TCP connections, test_robust_testssl.py testssl.sh):
  23. Only TLS 1.3 negotiates: clients capped at TLS 1.2, 1.1 or 1.0 are refused with an
      alert. SNI (selection among tls.sni certificates: test_sni.py): without tls.sni
      entries every server name (none, unknown, long, IDN, trailing dot, an IP) gets the
      one certificate and is served; no name makes a handshake fail. Mutated ClientHellos (bytes flipped, lengths broken, truncated, garbage
      records) are answered with an alert or a close within the handshake timeout, never
      a crash.
  10a. A request typed into `openssl s_client -quiet` with bare LF line ends (the README's
      example) is answered.
"""
import hashlib
import os
import random
import re
import select
import ssl
import subprocess
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ktlsd_test import Daemon, client_context, run_tests, test  # noqa: E402


def der_of(pem_path):
    with open(pem_path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def client_hello(server_hostname="localhost"):
    """The bytes of a real TLS 1.3 ClientHello (memory BIO, nothing sent)."""
    ctx = client_context()
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=server_hostname)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


@test
def tls12_and_older_clients_are_refused():
    with Daemon(files={"a.txt": "a\n"}) as d:
        for top in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1):
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            try:
                with warnings.catch_warnings():     # TLS 1.0/1.1 are deprecated: the point
                    warnings.simplefilter("ignore", DeprecationWarning)
                    ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
                    ctx.maximum_version = top
                ctx.set_ciphers("ALL:@SECLEVEL=0")
            except (ValueError, ssl.SSLError):
                continue        # this OpenSSL cannot even offer it
            raw = d.tcp(timeout=5)
            try:
                s = ctx.wrap_socket(raw, server_hostname="localhost")
            except (ssl.SSLError, ConnectionResetError, OSError) as e:
                # a protocol_version alert (or, for what OpenSSL cannot parse, a close)
                assert "timed out" not in str(e), (top, e)
            else:
                v = s.version()
                s.close()
                raise AssertionError("a client capped at %s negotiated %s" % (top, v))
            finally:
                raw.close()
        c = d.conn()
        assert c.sock.version() == "TLSv1.3"
        assert c.request("GET", "/a.txt").body == b"a\n"
        c.close()
        d.wait_log(r"TLS handshake failed")
        d.wait_fds_baseline()


@test
def without_sni_entries_any_server_name_gets_the_certificate():
    with Daemon(files={"a.txt": "a\n"}) as d:
        want = der_of(d.crt)
        names = [None, "localhost", "unknown.example", "www.example.com.", "127.0.0.1",
                 "xn--bcher-kva.example", ".".join(["a" * 63] * 3) + ".example",
                 "UPPER.Example", "x"]
        for name in names:
            ctx = client_context()
            raw = d.tcp(timeout=5)
            s = ctx.wrap_socket(raw, server_hostname=name)
            try:
                assert s.getpeercert(binary_form=True) == want, name
                assert s.version() == "TLSv1.3"
                s.sendall(b"GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                data = b""
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"\r\n\r\na\n"), \
                    (name, data[:100])
            finally:
                s.close()
        # and through openssl s_client with an explicit -servername
        p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % d.port,
                            "-tls1_3", "-servername", "other.example", "-quiet"],
                           input=b"GET /a.txt HTTP/1.0\r\n\r\n", capture_output=True,
                           timeout=20)
        assert p.stdout.startswith(b"HTTP/1.1 200 "), p.stdout[:200] + p.stderr[-300:]
        d.wait_fds_baseline()


@test
def mutated_client_hellos_get_an_alert_or_a_close():
    rnd = random.Random(23)     # fixed seed: the same 150 inputs every run
    handshake_timeout = 2
    with Daemon(timeouts={"handshake": handshake_timeout}, files={"a.txt": "a\n"}) as d:
        hellos = [client_hello(), client_hello("x" * 60 + ".example"), client_hello(None)]
        inputs = []
        for i in range(150):
            h = bytearray(rnd.choice(hellos))
            kind = i % 6
            if kind == 0:           # flip a few random bytes
                for _ in range(rnd.randint(1, 8)):
                    h[rnd.randrange(len(h))] ^= 1 << rnd.randrange(8)
            elif kind == 1:         # break a length field near the front (record/handshake)
                pos = rnd.choice([3, 4, 6, 7, 8, 43, 44, 76, 77])
                h[pos] = rnd.choice([0x00, 0xff, h[pos] + 1 & 0xff])
            elif kind == 2:         # truncated, then the client waits
                h = h[:rnd.randrange(1, len(h))]
            elif kind == 3:         # random bytes after a valid record header
                h = h[:5] + bytearray(rnd.getrandbits(8) for _ in range(len(h) - 5))
            elif kind == 4:         # a record of the maximum length announced, little sent
                h = bytearray(b"\x16\x03\x01\xff\xff") + h[5:40]
            else:                   # the hello twice, or an alert/application record first
                h = rnd.choice([h + h, bytearray(b"\x15\x03\x03\x00\x02\x02\x28") + h,
                                bytearray(b"\x17\x03\x03\x00\x10") + bytes(16) + h])
            inputs.append(bytes(h))
        # all at once: the inputs that leave the server waiting for more bytes take the
        # handshake timeout, in parallel
        t_all = time.time()
        socks = {}
        for i, data in enumerate(inputs):
            s = d.tcp(timeout=5)
            try:
                s.sendall(data)
            except (ConnectionResetError, BrokenPipeError):
                pass
            s.setblocking(False)
            socks[s] = (i, time.time())
        waited = 0
        try:
            while socks and time.time() < t_all + handshake_timeout + 4:
                ready, _, _ = select.select(list(socks), [], [], 0.1)
                for s in ready:
                    try:
                        chunk = s.recv(65536)
                    except (ConnectionResetError, BrokenPipeError):
                        chunk = b""
                    except BlockingIOError:
                        continue
                    if chunk and chunk[:1] != b"\x16":
                        continue        # e.g. an alert; the close follows
                    # closed, or the server answered: that hello was still valid
                    i, t0 = socks.pop(s)
                    if time.time() - t0 > handshake_timeout - 0.5:
                        waited += 1
                    s.close()
            assert d.proc.poll() is None, "ktlsd died"
            assert not socks, "%d inputs not closed within the handshake timeout: %s" % (
                len(socks), [inputs[i][:40] for i, _ in list(socks.values())[:3]])
        finally:
            for s in socks:
                s.close()
        assert d.get("/a.txt").body == b"a\n"
        d.wait_fds_baseline(timeout=handshake_timeout + 3)
        print("   %d mutated ClientHellos in %.1fs, %d waited for the handshake timeout" % (
            len(inputs), time.time() - t_all, waited))


@test
def s_client_quiet_with_bare_lf_lines_works():
    body = b"readme\n" * 100
    with Daemon(timeouts={"keepalive": 1}, files={"README.md": body}) as d:
        # exactly the README's example: printf '...\n' | openssl s_client -quiet ...
        t0 = time.time()
        p = subprocess.run(["openssl", "s_client", "-quiet", "-connect",
                            "127.0.0.1:%d" % d.port, "-tls1_3"],
                           input=b"GET /README.md HTTP/1.1\nHost: x\n\n",
                           capture_output=True, timeout=20)
        head, _, rest = p.stdout.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 "), p.stdout[:200] + p.stderr[-300:]
        assert re.search(rb"(?i)content-length: %d\b" % len(body), head), head
        assert rest == body, rest[:100]
        # -quiet ignores EOF on stdin: the keep-alive timeout ends it
        assert time.time() - t0 < 1 + 5, time.time() - t0
        assert hashlib.sha256(rest).digest() == hashlib.sha256(body).digest()
        d.wait_fds_baseline()


if __name__ == "__main__":
    run_tests()
