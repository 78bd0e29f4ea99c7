"""Every connection state has a timeout, and clients that misbehave at the transport level
(stall, dribble, reset, speak plain HTTP) cost the daemon nothing lasting.

Hostile-input checklist covered here:
  2.  Keep-alive idle past the timeout -> server closes; fd count returns to baseline.
  3.  Slowloris (partial headers, one byte at a time) -> closed at the header timeout even
      though bytes keep coming; a normal GET is served meanwhile.
  4.  Slow reader / zero window on a large file -> dropped after the send-idle timeout.
  5.  Client RST mid-download -> no crash, no SIGPIPE, fd released, abort logged.
  23. Plain HTTP on the TLS port closes cleanly; a handshake that never finishes times out.

Timeouts are short here (about 1 s) so that each is measured, not just observed: a close
must come after the timeout (so it is the timeout that closed it) and not long after it.
"""
import os
import socket
import ssl
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ktlsd_test import (Daemon, client_context, run_tests, tcp_closed_within, test,  # noqa: E402
                        wait_until)

T = {"handshake": 1, "header": 1, "keepalive": 1, "send_idle": 1.5, "shutdown": 5}
SLACK = 1.5     # how late after its timeout a close may come (timer + ASan + CI jitter)
EARLY = 0.15    # how early (timer granularity)


def assert_timed(elapsed, limit, what):
    assert elapsed is not None, "%s: still open %.1fs after its %.1fs timeout" % (
        what, SLACK + 1, limit)
    assert elapsed >= limit - EARLY, "%s: closed after %.2fs, before its %.1fs timeout" % (
        what, elapsed, limit)
    assert elapsed <= limit + SLACK, "%s: closed after %.2fs, timeout %.1fs" % (
        what, elapsed, limit)


def client_hello():
    """The bytes of a real TLS 1.3 ClientHello, made with a memory BIO."""
    ctx = client_context()
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = out.read()
    assert hello[:1] == b"\x16" and len(hello) > 100, hello[:10]
    return hello


@test
def keepalive_idle_is_closed_and_fds_return():
    with Daemon(timeouts=T, files={"a.txt": "a\n"}) as d:
        c = d.conn(timeout=5)
        assert c.request("GET", "/a.txt").status == 200
        t0 = time.time()
        closed = c.closed_by_server(timeout=T["keepalive"] + SLACK + 1)
        elapsed = time.time() - t0 if closed else None
        assert_timed(elapsed, T["keepalive"], "idle keep-alive connection")
        assert c.buf == b"", c.buf[:80]
        c.close()
        d.wait_fds_baseline()
        # a second request just before the timeout keeps the connection (timer restarts)
        c = d.conn(timeout=5)
        for _ in range(3):
            assert c.request("GET", "/a.txt").status == 200
            time.sleep(T["keepalive"] * 0.6)
        assert c.request("GET", "/a.txt").status == 200
        c.close()


@test
def handshake_never_started_or_half_sent_times_out():
    with Daemon(timeouts=T) as d:
        hello = client_hello()
        for what, data in (("TCP connect, nothing sent", b""),
                           ("first 5 bytes of a ClientHello", hello[:5]),
                           ("half a ClientHello", hello[:len(hello) // 2])):
            s = d.tcp(timeout=5)
            try:
                if data:
                    s.sendall(data)
                assert_timed(tcp_closed_within(s, T["handshake"] + SLACK + 1),
                             T["handshake"], what)
            finally:
                s.close()
        d.wait_fds_baseline()
        d.wait_log(r"handshake timeout")
        # the daemon is fine
        d.put("ok", "ok")
        assert d.get("/ok").body == b"ok"


@test
def slowloris_header_is_cut_at_the_header_timeout():
    with Daemon(timeouts=T, files={"a.txt": "a\n"}) as d:
        head = b"GET /a.txt HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 100

        def dribble(c, t0):
            """One byte every 0.3 s; returns the time from t0 to the server's close."""
            c.sock.settimeout(0.3)
            for i, b in enumerate(head):
                if time.time() - t0 > T["header"] + SLACK + 1:
                    return None
                try:
                    c.sock.sendall(bytes([b]))
                    chunk = c.sock.recv(4096)
                    if not chunk:
                        return time.time() - t0
                    c.buf += chunk
                except socket.timeout:
                    pass
                except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
                    return time.time() - t0
                if i == 2:     # a normal client is served meanwhile
                    assert d.get("/a.txt").body == b"a\n"
            return None

        # on a new connection the header clock runs from the end of the handshake
        c = d.conn(timeout=5)
        elapsed = dribble(c, time.time())
        c.close()
        assert_timed(elapsed, T["header"], "slowloris on a new connection")
        # on a kept-alive connection it runs from the first byte of the next request
        c = d.conn(timeout=5)
        assert c.request("GET", "/a.txt").status == 200
        time.sleep(T["keepalive"] * 0.5)
        elapsed = dribble(c, time.time())
        c.close()
        assert_timed(elapsed, T["header"], "slowloris after a keep-alive request")
        d.wait_fds_baseline()
        d.wait_log(r"read_request timeout")


@test
def many_slowloris_connections_all_cut_normal_get_served():
    n = 100
    with Daemon(timeouts=T, files={"a.txt": "a\n"}) as d:
        conns = []
        try:
            for i in range(n):
                c = d.conn(timeout=5)
                c.send(b"GET /a.txt HTTP/1.1\r\nHost: x\r\nX-Slow-%d: " % i)
                conns.append(c)
            t_last = time.time()
            assert d.get("/a.txt").body == b"a\n"      # served while they hang
            wait_until(lambda: d.fd_count() <= d.fd_baseline, T["header"] + SLACK + 2,
                       what="all %d partial-header connections to be closed" % n)
            assert time.time() - t_last <= T["header"] + SLACK
            for c in conns:
                assert c.closed_by_server(timeout=1), "a slowloris client saw no close"
        finally:
            for c in conns:
                c.close()
        assert d.get("/a.txt").body == b"a\n"


@test
def plain_http_on_the_tls_port_closes_cleanly():
    with Daemon() as d:     # handshake timeout 5 s: the close must not be the timeout
        d.put("a.txt", "a\n")
        for data in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"GET / HTTP/1.0\r\n\r\n",
                     b"\r\n\r\n\r\n\r\n", b"\x00" * 64):
            s = d.tcp(timeout=5)
            try:
                s.sendall(data)
                got = b""
                t0 = time.time()
                s.settimeout(3)
                try:
                    while True:
                        chunk = s.recv(4096)
                        if not chunk:
                            break
                        got += chunk
                except (ConnectionResetError, BrokenPipeError):
                    pass
                except socket.timeout:
                    raise AssertionError("%r: not closed within 3 s" % data)
                assert time.time() - t0 < 3
                assert not got.startswith(b"HTTP/"), got[:100]
            finally:
                s.close()
        assert d.get("/a.txt").body == b"a\n"
        d.wait_fds_baseline()


@test
def client_reset_mid_download():
    with Daemon(timeouts=T) as d:
        size = 20 * 1024 * 1024
        d.put_random("big.bin", size, seed=3)
        d.put("a.txt", "a\n")
        for _ in range(2):
            c = d.conn(timeout=5)
            c.send("GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            got = 0
            while got < 1024 * 1024:
                chunk = c.sock.recv(1 << 16)
                assert chunk, "closed early"
                got += len(chunk)
            # RST instead of FIN
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()
        assert d.get("/a.txt").body == b"a\n"
        d.wait_fds_baseline()
        # logged: the abort in the error log, and an access log line with the partial size
        d.wait_log(r"conn \d+: .*(went away|reset|abort)")
        wait_until(lambda: d.access_log().count("/big.bin") >= 2, what="2 access log lines")
        lines = [line for line in d.access_log().splitlines() if "/big.bin" in line]
        assert len(lines) == 2, lines
        for line in lines:
            fields = line.split('"')
            status, nbytes = fields[2].split()[:2]
            assert status == "200" and 0 < int(nbytes) < size, line


@test
def stalled_reader_dropped_after_send_idle():
    with Daemon(timeouts=T) as d:
        size = 50 * 1024 * 1024
        d.put_random("big.bin", size, seed=4)
        c = d.conn(timeout=5, sockopts=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)])
        assert d.fd_count() > d.fd_baseline
        c.send("GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        t0 = time.time()
        # never read: the daemon must give up after send_idle (its fd count drops back)
        wait_until(lambda: d.fd_count() <= d.fd_baseline, T["send_idle"] + 2 + 1,
                   what="the stalled connection to be dropped")
        elapsed = time.time() - t0
        assert elapsed <= T["send_idle"] + 2, "dropped after %.2fs" % elapsed
        assert elapsed >= T["send_idle"] - EARLY, "dropped after %.2fs, before send_idle" % (
            elapsed)
        d.wait_log(r"send_(body|headers) timeout")
        # what the client still gets is a truncated body, then the end
        received = len(c.buf)
        c.sock.settimeout(5)
        try:
            while True:
                chunk = c.sock.recv(1 << 20)
                if not chunk:
                    break
                received += len(chunk)
        except (OSError, ssl.SSLError):
            pass
        c.close()
        assert received < size, received
        d.put("a.txt", "a\n")
        assert d.get("/a.txt").body == b"a\n"


if __name__ == "__main__":
    run_tests()
