"""Core serving: byte-exact downloads, HEAD, keep-alive, pipelining, 404, IPv6, ALPN,
TLS 1.3 only, clean shutdown."""
import hashlib
import os
import socket
import ssl
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ktlsd_test import Daemon, run_tests, sha256_file, test, status_of  # noqa: E402


@test
def small_and_large_files_are_byte_exact_with_curl():
    with Daemon() as d:
        d.put("hello.txt", "hello, world\n")
        big = d.put_random("big.bin", 5 * 1024 * 1024 + 123, seed=1)
        out = os.path.join(d.tmp, "dl")
        r = d.curl("/hello.txt", out=out)
        assert r.returncode == 0, r.stderr
        assert open(out, "rb").read() == b"hello, world\n"
        r = d.curl("/big.bin", out=out)
        assert r.returncode == 0, r.stderr
        assert sha256_file(out) == sha256_file(big)
        d.wait_fds_baseline()


@test
def head_has_get_headers_and_no_body():
    with Daemon() as d:
        d.put_random("f.bin", 100000)
        c = d.conn()
        g = c.request("GET", "/f.bin")
        h = c.request("HEAD", "/f.bin")
        # the connection is still in sync: a body after HEAD would break this request
        g2 = c.request("GET", "/f.bin")
        c.close()
        assert g.status == h.status == g2.status == 200
        for k in ("content-length", "content-type", "etag", "last-modified", "accept-ranges"):
            assert g.header(k) == h.header(k), k
        assert h.body == b"" and g.body == g2.body and len(g.body) == 100000


@test
def keepalive_and_pipelining_in_order():
    with Daemon() as d:
        for i in range(3):
            d.put("f%d.txt" % i, ("file %d\n" % i) * (i * 1000 + 1))
        c = d.conn()
        c.send("".join("GET /f%d.txt HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(3)))
        for i in range(3):
            resp = c.read_response()
            assert resp.status == 200
            assert resp.body == (("file %d\n" % i) * (i * 1000 + 1)).encode()
            assert resp.header("connection") == "keep-alive"
        c.close()


@test
def request_sent_while_a_large_response_is_in_flight_is_answered():
    """The next request arrives while the socket is full of the previous response (the
    daemon waits for writability then, and ignores the read edge): once the first response
    is out, the second is read and answered, in every send mode, with no stall."""
    for mode in ("sendfile", "write", "userspace"):
        with Daemon(send_mode=mode) as d:
            big = d.put_random("big.bin", 8 * 1024 * 1024, seed=3)
            d.put("small.txt", "second\n")
            c = d.conn(timeout=10)
            c.send("GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            status, _, headers, _ = c.read_head()
            assert status == 200
            got, h = len(c.buf), hashlib.sha256(c.buf)
            c.buf = b""
            while got < 1024 * 1024:                # the rest is queued or on its way
                chunk = c.sock.recv(65536)
                assert chunk
                h.update(chunk)
                got += len(chunk)
            c.send("GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            size = int(headers["content-length"])
            while got < size:
                chunk = c.sock.recv(min(1 << 20, size - got))
                assert chunk
                h.update(chunk[:size - got])
                if len(chunk) > size - got:        # the second response's start
                    c.buf = chunk[size - got:]
                got += len(chunk[:size - got])
            assert h.hexdigest() == sha256_file(big), mode
            r = c.read_response()
            assert r.status == 200 and r.body == b"second\n", (mode, r)
            c.close()


@test
def not_found_and_date_server_headers():
    with Daemon() as d:
        r = d.get("/nope")
        assert r.status == 404
        assert r.header("server") == "ktlsd"
        assert r.header("date", "").endswith("GMT")
        assert b"404" in r.body


@test
def ipv6_listener():
    with Daemon(ipv6=True) as d:
        d.put("a.txt", "v6\n")
        r = d.get("/a.txt", family=socket.AF_INET6)
        assert r.status == 200 and r.body == b"v6\n"


@test
def tls12_is_refused_by_openssl_s_client():
    with Daemon() as d:
        p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % d.port,
                            "-tls1_2"], input=b"", capture_output=True, timeout=20)
        assert p.returncode != 0, p.stdout
        p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % d.port,
                            "-tls1_3", "-quiet"], input=b"GET / HTTP/1.0\r\n\r\n",
                           capture_output=True, timeout=20)
        assert status_of(p.stdout) in (403, 404), p.stdout[:200]


@test
def alpn_h2_only_is_refused_http11_selected():
    with Daemon() as d:
        c = d.conn()
        assert c.sock.selected_alpn_protocol() == "http/1.1"
        assert c.sock.version() == "TLSv1.3"
        c.close()
        try:
            d.conn(alpn=("h2",))
        except (ssl.SSLError, ConnectionResetError, OSError):
            pass
        else:
            raise AssertionError("a client offering only h2 was accepted")


@test
def sigterm_exits_zero():
    d = Daemon()
    try:
        d.put("x", "x")
        assert d.get("/x").status == 200
        d.stop()
    finally:
        d.cleanup()


if __name__ == "__main__":
    run_tests()
