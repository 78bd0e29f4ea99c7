"""Stopping, dying clients and the access log.

Hostile-input checklist covered here:
  5.  A client going away mid-body -> no crash, no SIGPIPE (the daemon is started with the
      default SIGPIPE disposition: subprocess restores it), fd released.
  25. SIGTERM -> stop accepting, finish or close in-flight responses within the shutdown
      timeout, exit 0.
And: the access log has one line per request, combined-like:
  ADDR - - [DATE] "REQUEST LINE" STATUS BODY-BYTES "REFERER" "USER-AGENT" ...
"""
import fcntl
import hashlib
import json
import os
import re
import signal
import socket
import struct
import sys
import termios
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ktlsd_test import Daemon, run_tests, sha256_file, test, wait_until  # noqa: E402


def refused(d):
    try:
        s = socket.create_connection(("127.0.0.1", d.port), timeout=1)
    except (ConnectionRefusedError, ConnectionResetError):
        # reset: the listener closed while this connect was in its backlog (a race
        # with the stop itself); refused all the same
        return True
    s.close()
    return False


def recv_queued(sock):
    """Bytes waiting in the kernel receive queue of a (TLS-wrapped) socket."""
    buf = bytearray(4)
    fcntl.ioctl(sock.fileno(), termios.FIONREAD, buf)
    return int.from_bytes(buf, sys.byteorder)


@test
def sigterm_lets_a_download_in_flight_finish():
    size = 64 * 1024 * 1024
    rate = 12 * 1024 * 1024          # bytes/s the client reads at
    with Daemon(timeouts={"shutdown": 30}) as d:
        path = d.put_random("big.bin", size, seed=11)
        want = sha256_file(path)
        d.put("a.txt", "a\n")
        idle = d.conn(timeout=5)          # an idle keep-alive connection
        assert idle.request("GET", "/a.txt").status == 200
        c = d.conn(timeout=10)
        c.send("GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, headers, _ = c.read_head()
        assert status == 200 and int(headers["content-length"]) == size
        h = hashlib.sha256()
        got = 0
        t0 = time.time()

        def take(chunk):
            nonlocal got
            h.update(chunk)
            got += len(chunk)
        take(c.buf)
        c.buf = b""
        while got < 4 * 1024 * 1024:
            take(c.sock.recv(1 << 18))
        d.signal(signal.SIGTERM)
        t_term = time.time()
        # stops accepting at once; idle keep-alive connections are closed at once
        wait_until(lambda: refused(d), 2, what="new connections to be refused")
        assert idle.closed_by_server(timeout=2), "idle connection kept open after SIGTERM"
        idle.close()
        # the download goes on, at the client's pace, to the last byte
        while got < size:
            chunk = c.sock.recv(min(1 << 18, size - got))
            assert chunk, "download cut at %d of %d bytes" % (got, size)
            take(chunk)
            ahead = got / rate - (time.time() - t0)
            if ahead > 0:
                time.sleep(ahead)
        assert time.time() - t_term > 1, "too fast: the download was not in flight"
        assert h.hexdigest() == want, "download after SIGTERM is not byte-exact"
        # then the connection is closed and the daemon exits 0
        assert c.closed_by_server(timeout=5), "connection kept open after the last byte"
        assert c.buf == b""
        c.close()
        d.proc.wait(5)
        assert d.proc.returncode == 0, d.proc.returncode
        assert refused(d)


@test
def sigterm_answers_requests_pipelined_behind_a_response_in_flight():
    # the first response was promised keep-alive before SIGTERM: the request the client
    # pipelined behind it is still answered (with Connection: close), not dropped
    size = 8 * 1024 * 1024
    with Daemon(timeouts={"shutdown": 30}) as d:
        d.put_random("big.bin", size, seed=12)
        d.put("small.txt", "second\n")
        c = d.conn(timeout=10, sockopts=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)])
        c.send("GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\nGET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, headers, _ = c.read_head()
        assert status == 200 and headers["connection"] == "keep-alive"
        d.signal(signal.SIGTERM)
        time.sleep(0.3)
        while len(c.buf) < size:
            c._fill()
        c.buf = c.buf[size:]
        second = c.read_response()
        assert second.status == 200 and second.body == b"second\n", second
        assert second.header("connection") == "close"
        assert c.closed_by_server(timeout=5)
        c.close()


@test
def sigterm_answers_a_request_on_its_way_with_close():
    with Daemon(timeouts={"shutdown": 10}, files={"a.txt": "a\n"}) as d:
        c = d.conn(timeout=5)
        c.send("GET /a.txt HTTP/1.1\r\nHost: x\r\n")     # head not complete yet
        wait_until(lambda: "conn 1:" in d.log(), what="the connection to be accepted")
        # make sure the daemon has read those bytes before the signal: a TLS round trip
        # on another connection is served after them by the single event loop
        assert d.get("/a.txt").status == 200
        d.signal(signal.SIGTERM)
        wait_until(lambda: refused(d), 2, what="new connections to be refused")
        c.send("\r\n")
        r = c.read_response()
        assert r.status == 200 and r.body == b"a\n", r
        assert r.header("connection") == "close", r.header("connection")
        assert c.closed_by_server(timeout=3)
        c.close()
        d.proc.wait(5)
        assert d.proc.returncode == 0


@test
def sigterm_with_a_stalled_client_exits_within_the_shutdown_timeout():
    shutdown = 1
    with Daemon(timeouts={"shutdown": shutdown, "send_idle": 60}) as d:
        d.put_random("big.bin", 50 * 1024 * 1024, seed=12)
        c = d.conn(timeout=5, sockopts=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)])
        c.send("GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        # the response has started and the client reads nothing
        wait_until(lambda: recv_queued(c.sock) > 0, what="the response to start")
        t0 = time.time()
        d.signal(signal.SIGTERM)
        try:
            d.proc.wait(shutdown + 2 + 2)
        except Exception:
            raise AssertionError("still running %.1fs after SIGTERM (shutdown = %ss)" % (
                time.time() - t0, shutdown))
        elapsed = time.time() - t0
        assert elapsed <= shutdown + 2, "exited %.2fs after SIGTERM" % elapsed
        assert elapsed >= shutdown - 0.15, "exited %.2fs after SIGTERM: before the timeout" % (
            elapsed)
        assert d.proc.returncode == 0, d.proc.returncode
        assert re.search(r"shutdown timeout", d.log()), d.log()[-2000:]
        c.close()


@test
def client_closing_mid_body_never_kills_the_daemon():
    # SIGPIPE would kill a daemon that writes to a closed socket without ignoring it;
    # every send mode is tried (without kTLS in the kernel they all fall back to userspace)
    for mode in ("sendfile", "splice", "write", "userspace", "auto"):
        with Daemon(send_mode=mode) as d:
            d.put_random("big.bin", 8 * 1024 * 1024, seed=13)
            d.put("a.txt", "a\n")
            for how in ("close", "shutdown", "rst"):
                c = d.conn(timeout=5)
                c.send("GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
                got = 0
                while got < 256 * 1024:
                    chunk = c.sock.recv(1 << 16)
                    assert chunk
                    got += len(chunk)
                raw = c.sock
                if how == "shutdown":       # FIN both ways, then the server writes on
                    socket.socket.shutdown(raw, socket.SHUT_RDWR)
                elif how == "rst":
                    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                c.close()
                assert d.get("/a.txt").body == b"a\n", (mode, how)
                assert d.proc.poll() is None, "ktlsd died (%s, %s): %s" % (
                    mode, how, d.proc.returncode)
            d.wait_fds_baseline()
            assert d.proc.poll() is None
            assert d.proc.returncode is None


ACCESS_RE = re.compile(
    r'^(?P<addr>\S+) - - \[(?P<date>\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4})\] '
    r'"(?P<req>(?:[^"\\]|\\.)*)" (?P<status>\d{3}) (?P<bytes>\d+) '
    r'"(?P<ref>(?:[^"\\]|\\.)*)" "(?P<ua>(?:[^"\\]|\\.)*)"')


@test
def access_log_one_combined_line_per_request():
    body = b"x" * 1000
    with Daemon(files={"a.txt": body}) as d:
        c = d.conn()
        expect = []     # (request line, status, body bytes, referer, user agent)
        r = c.request("GET", "/a.txt", {"Referer": "https://ref.example/p",
                                        "User-Agent": "agent/1.0"})
        etag = r.header("etag")
        expect.append(("GET /a.txt HTTP/1.1", 200, 1000, "https://ref.example/p", "agent/1.0"))
        c.request("HEAD", "/a.txt")
        expect.append(("HEAD /a.txt HTTP/1.1", 200, 0, "-", "-"))
        c.request("GET", "/a.txt", {"Range": "bytes=0-8"})
        expect.append(("GET /a.txt HTTP/1.1", 206, 9, "-", "-"))
        c.request("GET", "/a.txt", {"If-None-Match": etag})
        expect.append(("GET /a.txt HTTP/1.1", 304, 0, "-", "-"))
        r = c.request("GET", "/missing?q=1")
        expect.append(("GET /missing?q=1 HTTP/1.1", 404, len(r.body), "-", "-"))
        c.request("GET", "/a.txt", {"User-Agent": 'evil" 200 999 "x\\'})
        expect.append(("GET /a.txt HTTP/1.1", 200, 1000, "-", None))
        c.request("GET", "/a.txt", {"User-Agent": "caf\xe9"})   # é, sent as UTF-8
        expect.append(("GET /a.txt HTTP/1.1", 200, 1000, "-", None))
        c.close()
        c = d.conn()
        c.send("GET /a.txt HTTP/1.11\r\nHost: x\r\n\r\n")
        r = c.read_response()
        assert r.status == 400
        c.close()
        expect.append(("GET /a.txt HTTP/1.11", 400, len(r.body), "-", "-"))
        c = d.conn()
        c.send("GET /a.txt HTTP/1.1\r\nHost: x\r\nX: \x01\r\n\r\n")
        r = c.read_response()
        assert r.status == 400
        c.close()
        expect.append(("GET /a.txt HTTP/1.1", 400, len(r.body), "-", "-"))

        wait_until(lambda: len(d.access_log().splitlines()) >= len(expect),
                   what="%d access log lines" % len(expect))
        lines = d.access_log().splitlines()
        assert len(lines) == len(expect), "\n".join(lines)
        for line, (req, status, nbytes, ref, ua) in zip(lines, expect):
            m = ACCESS_RE.match(line)
            assert m, "not combined format: %r" % line
            assert m["addr"] == "127.0.0.1", line
            assert m["req"] == req, (line, req)
            assert int(m["status"]) == status, (line, status)
            assert int(m["bytes"]) == nbytes, (line, nbytes)
            assert m["ref"] == ref, (line, ref)
            if ua is not None:
                assert m["ua"] == ua, (line, ua)
            else:   # quotes, backslashes and non-ASCII are escaped, never raw
                assert '"' not in m["ua"].replace('\\"', "") and "\xe9" not in line, line
                assert "\\x" in m["ua"], line
        t = time.strptime(ACCESS_RE.match(lines[0])["date"], "%d/%b/%Y:%H:%M:%S %z")
        assert abs(time.mktime(t) - time.time()) < 3600 * 24, lines[0]



@test
def access_log_json_one_object_per_request():
    body = b"y" * 777
    # access_format belongs in the Daemon's own log group: rewrite that line
    with Daemon(files={"a.txt": body}, start=False) as d:
        d.edit_conf('level = "info";', 'level = "info"; access_format = "json";')
        d.start()
        c = d.conn()
        r = c.request("GET", "/a.txt", {"Referer": "https://ref.example/p",
                                        "User-Agent": "agent/1.0"})
        assert r.status == 200
        c.request("GET", "/a.txt", {"Range": "bytes=10-19"})
        c.request("GET", "/a.txt", {"User-Agent": 'evil" } \\ {"x'})
        c.request("GET", "/a.txt", {"User-Agent": "caf\xe9"})   # é, sent as UTF-8
        c.request("GET", "/nope")
        c.close()
        c = d.conn()
        c.send("GET /\x01\xff HTTP/1.1\r\nHost: x\r\n\r\n")
        r400 = c.read_response()
        c.close()
        wait_until(lambda: len(d.access_log().splitlines()) >= 6, what="6 access log lines")
        lines = d.access_log().splitlines()
        assert len(lines) == 6, lines
        recs = []
        for line in lines:
            assert line.isascii(), line
            recs.append(json.loads(line))      # every line is one valid JSON object
        want = [("GET /a.txt HTTP/1.1", 200, 777), ("GET /a.txt HTTP/1.1", 206, 10),
                ("GET /a.txt HTTP/1.1", 200, 777), ("GET /a.txt HTTP/1.1", 200, 777),
                ("GET /nope HTTP/1.1", 404, None), (None, r400.status, None)]
        for rec, (req, status, nbytes) in zip(recs, want):
            assert rec["remote_addr"] == "127.0.0.1", rec
            assert rec["status"] == status, rec
            if req is not None:
                assert rec["request"] == req, rec
            if nbytes is not None:
                assert rec["body_bytes"] == nbytes, rec
            assert rec["bytes"] > rec["body_bytes"] and rec["mode"] and rec["conn"] >= 1, rec
            assert rec["tls_tx"] in ("kernel", "userspace") and rec["rt"] >= 0, rec
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", rec["time"]), rec
            t = time.strptime(rec["time"], "%Y-%m-%dT%H:%M:%S%z")
            assert abs(time.mktime(t) - time.time()) < 3600 * 24, rec
        assert recs[0]["referer"] == "https://ref.example/p"
        assert recs[0]["user_agent"] == "agent/1.0" and recs[1]["user_agent"] == ""  # absent: empty
        assert recs[1]["referer"] == ""
        # quotes, backslashes and bytes outside printable ASCII arrive escaped as \xHH
        assert recs[2]["user_agent"] == "evil\\x22 } \\x5C {\\x22x", recs[2]
        assert recs[3]["user_agent"] == "caf\\xC3\\xA9", recs[3]   # UTF-8 bytes
        assert r400.status == 400 and "\\x01\\xC3\\xBF" in recs[5]["request"], recs[5]


if __name__ == "__main__":
    run_tests()
