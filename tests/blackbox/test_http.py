"""Request parsing through the running daemon (RFC 9110/9112): what is accepted, what is
answered with which status, and when the connection is closed afterwards.

Hostile-input checklist covered here:
  6.  Empty connection or lone CRLF -> silent close; one leading CRLF before a request
      is tolerated.
  7.  Request line over the limit -> 414; headers over the limit or too many fields ->
      431; the connection is closed.
  8.  NUL or control bytes, a bare CR, whitespace before the colon, obs-fold, missing or
      duplicate Host on HTTP/1.1, "HTTP/1.11", "#frag" in the target -> 400; unknown
      method -> 501; POST/PUT -> 405 with "Allow: GET, HEAD".
  9.  Transfer-Encoding with Content-Length, "chunked, chunked", differing
      Content-Length values, "Content-Length: +5" -> 400 and close; a request pipelined
      after it is never answered (no request smuggling).
  10. HEAD, with or without Range -> the same headers as GET, no body.
  10a. Lines ending in a bare LF are accepted (RFC 9112 section 2.2).
Plus: HTTP/1.0 closes by default and stays open with "Connection: keep-alive";
"Connection: close" on HTTP/1.1 closes after the response; absolute-form targets work.

Every case is data: (name, raw request bytes, expected status, expect close?). Each is sent
on a fresh TLS connection followed, in the same write, by a valid pipelined request for
/probe. If the connection must stay open that second request has to be answered with
200; if it must close, it must never be answered (that is what a smuggled request would
look like) and the server must close the connection.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ktlsd_test import Daemon, run_tests, test  # noqa: E402

PROBE = b"probe body\n"
FOLLOW = b"GET /probe HTTP/1.1\r\nHost: x\r\n\r\n"

# Default limits (etc/ktlsd.conf): request_line 8192, header_bytes 16384, headers 100.
MANY_FIELDS = b"".join(b"X-F%d: v\r\n" % i for i in range(101))     # + Host = 102 > 100
FIELDS_AT_LIMIT = b"".join(b"X-F%d: v\r\n" % i for i in range(99))  # + Host = 100
BIG_FIELDS = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"p" * 1000) for i in range(20))  # ~20 KB

G = b"GET /probe HTTP/1.1\r\nHost: x\r\n"     # a valid head without its final CRLF
SMUGGLED = b"0\r\n\r\n"                         # what a chunked body would end with

CASES = [
    # -- 6: one leading empty line is tolerated
    ("one leading CRLF", b"\r\n" + G + b"\r\n", 200, False),
    ("one leading bare LF", b"\n" + G + b"\r\n", 200, False),
    # -- 10a: bare LF line endings
    ("bare LF everywhere", b"GET /probe HTTP/1.1\nHost: x\n\n", 200, False),
    ("CRLF and LF mixed", b"GET /probe HTTP/1.1\r\nHost: x\n\r\n", 200, False),
    # -- 7: limits
    ("request line over 8192 bytes: 414",
     b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, True),
    ("head over 16384 bytes: 431", G + BIG_FIELDS + b"\r\n", 431, True),
    ("101+ header fields: 431", G + MANY_FIELDS + b"\r\n", 431, True),
    ("exactly 100 header fields is fine", G + FIELDS_AT_LIMIT + b"\r\n", 200, False),
    # -- 8: syntax
    ("NUL in a field value", G + b"X-A: a\x00b\r\n\r\n", 400, True),
    ("NUL in the target", b"GET /pro\x00be HTTP/1.1\r\nHost: x\r\n\r\n", 400, True),
    ("control byte 0x01 in a field value", G + b"X-A: a\x01b\r\n\r\n", 400, True),
    ("DEL in a field value", G + b"X-A: a\x7fb\r\n\r\n", 400, True),
    ("control byte in the method", b"G\x01T /probe HTTP/1.1\r\nHost: x\r\n\r\n", 400, True),
    ("bare CR inside a field value", G + b"X-A: a\rb\r\n\r\n", 400, True),
    ("bare CR as a line end", b"GET /probe HTTP/1.1\rHost: x\r\n\r\n", 400, True),
    ("bare CR ending a field", G + b"X-A: a\rX-B: b\r\n\r\n", 400, True),
    ("space before the colon", b"GET /probe HTTP/1.1\r\nHost : x\r\n\r\n", 400, True),
    ("tab before the colon", G + b"X-A\t: b\r\n\r\n", 400, True),
    ("obs-fold continuation line", G + b"X-A: a\r\n b\r\n\r\n", 400, True),
    ("obs-fold with a tab", G + b"X-A: a\r\n\tb\r\n\r\n", 400, True),
    ("whitespace before the first field",
     b"GET /probe HTTP/1.1\r\n Host: x\r\n\r\n", 400, True),
    ("field line without a colon", G + b"X-A b\r\n\r\n", 400, True),
    ("missing Host on HTTP/1.1", b"GET /probe HTTP/1.1\r\n\r\n", 400, True),
    ("duplicate Host on HTTP/1.1", G + b"Host: y\r\n\r\n", 400, True),
    ("empty Host on HTTP/1.1", b"GET /probe HTTP/1.1\r\nHost:\r\n\r\n", 400, True),
    ("HTTP/1.11", b"GET /probe HTTP/1.11\r\nHost: x\r\n\r\n", 400, True),
    ("lower-case http/1.1", b"GET /probe http/1.1\r\nHost: x\r\n\r\n", 400, True),
    ("HTTP/2.0 request line: 505", b"GET /probe HTTP/2.0\r\nHost: x\r\n\r\n", 505, True),
    ("no version (HTTP/0.9)", b"GET /probe\r\n\r\n", 400, True),
    ("two spaces after the method", b"GET  /probe HTTP/1.1\r\nHost: x\r\n\r\n", 400, True),
    ("fragment in the target", b"GET /probe#frag HTTP/1.1\r\nHost: x\r\n\r\n", 400, True),
    ("target without a leading slash", b"GET probe HTTP/1.1\r\nHost: x\r\n\r\n", 400, True),
    ("raw non-ASCII in the target", b"GET /pr\xc3\xa9be HTTP/1.1\r\nHost: x\r\n\r\n", 400, True),
    ("userinfo in an absolute-form target",
     b"GET https://u@localhost/probe HTTP/1.1\r\nHost: x\r\n\r\n", 400, True),
    ("unknown method: 501", b"FOO /probe HTTP/1.1\r\nHost: x\r\n\r\n", 501, True),
    ("methods are case-sensitive: 501", b"get /probe HTTP/1.1\r\nHost: x\r\n\r\n", 501, True),
    ("POST without a body: 405", b"POST /probe HTTP/1.1\r\nHost: x\r\n\r\n", 405, False),
    ("POST with a body: 405, close",
     b"POST /probe HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", 405, True),
    ("PUT with a body: 405, close",
     b"PUT /probe HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", 405, True),
    ("DELETE: 405", b"DELETE /probe HTTP/1.1\r\nHost: x\r\n\r\n", 405, False),
    # -- 9: body framing that cannot be trusted
    ("Transfer-Encoding with Content-Length",
     G + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n" + SMUGGLED, 400, True),
    ("Content-Length then Transfer-Encoding",
     G + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n" + SMUGGLED, 400, True),
    ("Transfer-Encoding: chunked, chunked",
     G + b"Transfer-Encoding: chunked, chunked\r\n\r\n" + SMUGGLED, 400, True),
    ("chunked twice on two lines",
     G + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n" + SMUGGLED,
     400, True),
    ("Transfer-Encoding not ending in chunked",
     G + b"Transfer-Encoding: chunked, gzip\r\n\r\n", 400, True),
    ("unknown transfer coding", G + b"Transfer-Encoding: identity\r\n\r\n", 400, True),
    ("differing Content-Length fields",
     G + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello", 400, True),
    ("differing Content-Length list", G + b"Content-Length: 5, 6\r\n\r\nhello", 400, True),
    ("Content-Length: +5", G + b"Content-Length: +5\r\n\r\nhello", 400, True),
    ("Content-Length: -5", G + b"Content-Length: -5\r\n\r\n", 400, True),
    ("Content-Length: 0x5", G + b"Content-Length: 0x5\r\n\r\nhello", 400, True),
    ("Content-Length: 2^64 overflow",
     G + b"Content-Length: 18446744073709551621\r\n\r\n", 400, True),
    # -- connection management
    ("HTTP/1.0 closes by default", b"GET /probe HTTP/1.0\r\n\r\n", 200, True),
    ("HTTP/1.0 with Connection: keep-alive",
     b"GET /probe HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 200, False),
    ("HTTP/1.1 with Connection: close", G + b"Connection: close\r\n\r\n", 200, True),
    ("Connection: CLOSE is case-insensitive", G + b"Connection: CLOSE\r\n\r\n", 200, True),
    ("Connection: close among other tokens",
     G + b"Connection: TE, close\r\n\r\n", 200, True),
    # -- absolute-form target (RFC 9112 section 3.2.2)
    ("absolute-form https target",
     b"GET https://localhost/probe HTTP/1.1\r\nHost: x\r\n\r\n", 200, False),
    ("absolute-form, scheme in upper case",
     b"GET HTTP://localhost:443/probe?q=1 HTTP/1.1\r\nHost: x\r\n\r\n", 200, False),
]


def run_case(d, name, raw, status, close):
    """Send raw + FOLLOW on a fresh connection; return a list of problems (empty: ok)."""
    problems = []
    c = d.conn(timeout=5)
    try:
        c.send(raw + FOLLOW)
        try:
            r = c.read_response(head_only=raw.startswith(b"HEAD "))
        except EOFError:
            return ["%s: connection closed without a response" % name]
        if r.status != status:
            problems.append("%s: status %d, expected %d" % (name, r.status, status))
        if r.status == 200 and r.body != PROBE:
            problems.append("%s: wrong body %r" % (name, r.body[:80]))
        if r.status == 405 and r.header("allow") != "GET, HEAD":
            problems.append("%s: 405 with Allow %r" % (name, r.header("allow")))
        if close:
            if r.header("connection") != "close":
                problems.append("%s: Connection: %r, expected close" % (
                    name, r.header("connection")))
            if not c.closed_by_server(timeout=3):
                problems.append("%s: connection not closed by the server" % name)
            if c.buf:
                problems.append("%s: more after the response (a pipelined request "
                                "was answered?): %r" % (name, c.buf[:80]))
        else:
            if r.header("connection") != "keep-alive":
                problems.append("%s: Connection: %r, expected keep-alive" % (
                    name, r.header("connection")))
            try:
                r2 = c.read_response()
            except (EOFError, OSError) as e:
                problems.append("%s: pipelined request not answered: %r" % (name, e))
            else:
                if r2.status != 200 or r2.body != PROBE:
                    problems.append("%s: pipelined request got %r" % (name, r2))
    except OSError as e:
        problems.append("%s: %r" % (name, e))
    finally:
        c.close()
    return problems


@test
def request_cases_status_and_connection_handling():
    with Daemon(files={"probe": PROBE}) as d:
        problems = []
        for name, raw, status, close in CASES:
            problems += run_case(d, name, raw, status, close)
        assert not problems, "%d case(s) wrong:\n  %s" % (len(problems),
                                                         "\n  ".join(problems))
        # 400s are answered (and logged), never crash or [alert]; all fds released
        d.wait_fds_baseline()
        assert d.get("/probe").body == PROBE


@test
def configured_limits_apply():
    conf = "limits = { request_line = 100; header_bytes = 512; headers = 5; };\n"
    with Daemon(conf_extra=conf, files={"probe": PROBE}) as d:
        cases = [
            ("line of 100 bytes is fine",
             b"GET /probe?" + b"q" * (100 - 20) + b" HTTP/1.1\r\nHost: x\r\n\r\n", 200, False),
            ("line of 101 bytes: 414",
             b"GET /probe?" + b"q" * (101 - 20) + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, True),
            ("5 fields are fine", G + b"A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", 200, False),
            ("6 fields: 431", G + b"A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n", 431, True),
            ("head over 512 bytes: 431", G + b"X: " + b"v" * 500 + b"\r\n\r\n", 431, True),
        ]
        assert len(cases[0][1].split(b"\r\n")[0]) == 100
        problems = []
        for name, raw, status, close in cases:
            problems += run_case(d, name, raw, status, close)
        assert not problems, "\n  ".join(problems)


@test
def long_request_line_rejected_before_it_ends():
    # 414 as soon as the limit is passed, without waiting for a line end that never comes
    with Daemon(files={"probe": PROBE}) as d:
        c = d.conn(timeout=5)
        c.send(b"GET /" + b"a" * 9000)
        r = c.read_response()
        assert r.status == 414, r
        assert c.closed_by_server(timeout=3)
        c.close()


@test
def empty_connection_and_lone_crlf_close_silently():
    with Daemon(timeouts={"header": 1}, files={"probe": PROBE}) as d:
        # connected, TLS done, nothing sent: closed at the header timeout, no 400/408 page
        c = d.conn(timeout=5)
        assert c.closed_by_server(timeout=4), "idle new connection not closed"
        assert c.buf == b"", c.buf[:100]
        c.close()
        # a lone CRLF, then nothing: the same
        c = d.conn(timeout=5)
        c.send(b"\r\n")
        assert c.closed_by_server(timeout=4), "lone CRLF connection not closed"
        assert c.buf == b"", c.buf[:100]
        c.close()
        # clients that go away with nothing or a lone CRLF: no response, no log noise
        for data in (b"", b"\r\n", b"\n"):
            c = d.conn(timeout=5)
            if data:
                c.send(data)
            c.close()
        t = d.tcp(timeout=5)
        t.close()
        d.wait_fds_baseline()
        assert d.get("/probe").body == PROBE
        # the only request that reached the access log is that last GET
        d.wait_log(r"GET /probe", access=True)
        lines = d.access_log().splitlines()
        assert len(lines) == 1, lines


@test
def head_has_get_headers_with_and_without_range():
    body = bytes(range(256)) * 40    # 10240 bytes
    with Daemon(files={"f.bin": body, "probe": PROBE}) as d:
        c = d.conn()
        for extra in ({}, {"Range": "bytes=100-199"}, {"Range": "bytes=-10"},
                      {"Range": "bytes=99999-"}):
            g = c.request("GET", "/f.bin", extra)
            h = c.request("HEAD", "/f.bin", extra)
            assert g.status == h.status, (extra, g, h)
            for k in ("content-length", "content-type", "etag", "last-modified",
                      "accept-ranges", "content-range", "connection"):
                assert g.header(k) == h.header(k), (extra, k, g.header(k), h.header(k))
            assert h.body == b""
        assert g.status == 416
        # HEAD of an error status has no body either, and the connection stays in sync
        h = c.request("HEAD", "/missing")
        assert h.status == 404 and int(h.header("content-length")) > 0
        # pipelined HEAD then GET: a body after the HEAD would show up as a bad status line
        c.send(b"HEAD /f.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9\r\n\r\n" + FOLLOW)
        h = c.read_response(head_only=True)
        assert h.status == 206 and h.header("content-length") == "10"
        r = c.read_response()
        assert r.status == 200 and r.body == PROBE, r
        g = c.request("GET", "/f.bin", {"Range": "bytes=100-199"})
        assert g.status == 206 and g.body == body[100:200]
        c.close()


@test
def gzip_static_serves_precompressed_twins_to_clients_that_accept_gzip():
    import gzip
    text = b"".join(b"line of text %d\n" % i for i in range(2000))
    with Daemon(conf_extra="gzip_static = true;\n") as d:
        d.put("t.txt", text)
        d.put("t.txt.gz", gzip.compress(text))
        d.put("plain.txt", "no twin\n")
        d.put("only.css.gz", gzip.compress(b"body{}"))
        os.mkdir(os.path.join(d.root, "dir.gz"))
        d.put("d.txt", "dir twin\n")
        c = d.conn()
        r = c.request("GET", "/t.txt", {"Accept-Encoding": "br, gzip"})
        assert r.status == 200 and r.header("content-encoding") == "gzip", r.raw_head
        assert gzip.decompress(r.body) == text
        assert r.header("content-type").startswith("text/plain"), r.header("content-type")
        assert r.header("vary") == "Accept-Encoding"
        assert r.header("content-length") == str(len(r.body))
        gz_etag = r.header("etag")
        for ae in (None, "identity", "gzip;q=0", "deflate", "*;q=0"):
            r = c.request("GET", "/t.txt", {"Accept-Encoding": ae} if ae else None)
            assert r.status == 200 and r.body == text, (ae, r)
            assert r.header("content-encoding") is None and r.header("vary") == "Accept-Encoding"
            assert r.header("etag") != gz_etag      # another representation, another tag
        r = c.request("GET", "/t.txt", {"Accept-Encoding": "*"})
        assert r.header("content-encoding") == "gzip"
        # ranges and validators apply to the compressed bytes
        r = c.request("GET", "/t.txt", {"Accept-Encoding": "gzip", "Range": "bytes=0-9"})
        on_disk = open(os.path.join(d.root, "t.txt.gz"), "rb").read()
        assert r.status == 206 and r.body == on_disk[:10], r
        assert r.header("content-range") == "bytes 0-9/%d" % len(on_disk)
        r = c.request("GET", "/t.txt", {"Accept-Encoding": "gzip", "If-None-Match": gz_etag})
        assert r.status == 304 and r.header("vary") == "Accept-Encoding", r
        # no twin, or a twin that is not a regular file: the file itself
        r = c.request("GET", "/plain.txt", {"Accept-Encoding": "gzip"})
        assert r.body == b"no twin\n" and r.header("content-encoding") is None
        r = c.request("GET", "/d.txt", {"Accept-Encoding": "gzip"})
        assert r.body == b"dir twin\n" and r.header("content-encoding") is None
        # a twin without its original (as nginx's gzip_static): served compressed, 404 else
        r = c.request("GET", "/only.css", {"Accept-Encoding": "gzip"})
        assert r.status == 200 and gzip.decompress(r.body) == b"body{}"
        assert r.header("content-type").startswith("text/css"), r.header("content-type")
        assert c.request("GET", "/only.css").status == 404
        c.close()
        # curl --compressed end to end
        out = os.path.join(d.tmp, "dl")
        p = d.curl("/t.txt", "--compressed", "-D", os.path.join(d.tmp, "h"), out=out)
        assert p.returncode == 0 and open(out, "rb").read() == text, p.stderr
        assert "content-encoding: gzip" in open(os.path.join(d.tmp, "h")).read().lower()
    # off (the default): never compressed, no Vary
    with Daemon(files={"t.txt": text, "t.txt.gz": gzip.compress(text)}) as d:
        r = d.get("/t.txt", headers={"Accept-Encoding": "gzip"})
        assert r.body == text and r.header("content-encoding") is None
        assert r.header("vary") is None


if __name__ == "__main__":
    run_tests()
