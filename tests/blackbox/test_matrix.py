"""A differential matrix under ASan: the same requests against every combination of file
cache (on, off) and send mode (sendfile, splice, write, userspace, auto) must give the
same answers — status, every header but Date, and body bytes — and leave no sanitizer
report. On a host without kTLS every mode falls back to userspace TLS; the combinations
still differ in the daemon's paths (copy buffer sizes, the sender picked, the file kept
open or not), which is where a response could read something already let go.

The requests: GET, HEAD, If-None-Match, If-Modified-Since, Range, If-Range (fresh and
stale), several ranges (multipart/byteranges), 416, an empty file, the gzip variant
(gzip_static), and a file bigger than one send call; each on one keep-alive connection,
twice (a cache that is on answers the second round from open files).

All daemons serve one document root (--root), so ETag and Last-Modified agree. The one
part of an answer that is random by design, the multipart boundary, is replaced by a
placeholder before comparing (after checking it is used consistently).
"""
import gzip
import os
import re
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ktlsd_test import (Daemon, make_file, parse_byteranges, run_tests,  # noqa: E402
                        test)

MODES = ("sendfile", "splice", "write", "userspace", "auto")
CACHES = (("cache-on", "file_cache = { entries = 64; valid = 30; };\n"),
          ("cache-off", "file_cache = { entries = 0; };\n"))
BIG = 1536 * 1024 + 7       # several send calls and copy buffers, not a round number


def make_root():
    root = tempfile.mkdtemp(prefix="ktlsd-matrix-")
    with open(os.path.join(root, "a.txt"), "wb") as f:
        f.write(b"".join(b"line %04d of a.txt\n" % i for i in range(300)))
    open(os.path.join(root, "empty.txt"), "wb").close()
    page = b"<html><body>" + b"compressible text " * 400 + b"</body></html>\n"
    with open(os.path.join(root, "page.html"), "wb") as f:
        f.write(page)
    with open(os.path.join(root, "page.html.gz"), "wb") as f:
        f.write(gzip.compress(page, mtime=0))
    make_file(os.path.join(root, "big.bin"), BIG, seed=21)
    return root


def requests(etag, last_modified):
    """(name, method, path, headers, expected status)."""
    gz = {"Accept-Encoding": "gzip"}
    return [
        ("get", "GET", "/a.txt", {}, 200),
        ("head", "HEAD", "/a.txt", {}, 200),
        ("if-none-match", "GET", "/a.txt", {"If-None-Match": etag}, 304),
        ("head if-none-match", "HEAD", "/a.txt", {"If-None-Match": etag}, 304),
        ("if-none-match other", "GET", "/a.txt", {"If-None-Match": '"x"'}, 200),
        ("if-modified-since", "GET", "/a.txt", {"If-Modified-Since": last_modified}, 304),
        ("range", "GET", "/a.txt", {"Range": "bytes=10-99"}, 206),
        ("suffix range", "GET", "/a.txt", {"Range": "bytes=-7"}, 206),
        ("head range", "HEAD", "/a.txt", {"Range": "bytes=10-99"}, 206),
        ("if-range fresh", "GET", "/a.txt", {"Range": "bytes=5-9", "If-Range": etag}, 206),
        ("if-range stale", "GET", "/a.txt", {"Range": "bytes=5-9", "If-Range": '"old"'}, 200),
        ("if-range date", "GET", "/a.txt", {"Range": "bytes=5-9", "If-Range": last_modified},
         206),
        ("multipart", "GET", "/a.txt", {"Range": "bytes=0-9,100-199,-5"}, 206),
        ("head multipart", "HEAD", "/a.txt", {"Range": "bytes=0-9,100-199"}, 206),
        ("416", "GET", "/a.txt", {"Range": "bytes=999999-"}, 416),
        ("head 416", "HEAD", "/a.txt", {"Range": "bytes=999999-"}, 416),
        ("empty", "GET", "/empty.txt", {}, 200),
        ("head empty", "HEAD", "/empty.txt", {}, 200),
        ("empty range", "GET", "/empty.txt", {"Range": "bytes=0-"}, 416),
        ("gzip", "GET", "/page.html", gz, 200),
        ("head gzip", "HEAD", "/page.html", gz, 200),
        ("gzip range", "GET", "/page.html", dict(gz, Range="bytes=0-99"), 206),
        ("gzip multipart", "GET", "/page.html", dict(gz, Range="bytes=0-1,-2"), 206),
        ("gzip if-none-match", "GET", "/page.html", {"Accept-Encoding": "gzip",
                                                     "If-None-Match": "*"}, 304),
        ("no gzip", "GET", "/page.html", {}, 200),
        ("big", "GET", "/big.bin", {}, 200),
        ("big multipart", "GET", "/big.bin",
         {"Range": "bytes=0-0,65536-300000,%d-" % (BIG - 100)}, 206),
        ("missing", "GET", "/nope.txt", {}, 404),
    ]


def normalized(resp):
    """(status, header lines but Date, body) with the multipart boundary made constant."""
    lines = resp.raw_head.decode("latin-1").split("\r\n")
    headers = [l for l in lines[1:] if not l.lower().startswith("date:")]
    body = resp.body
    m = re.search(r"boundary=([0-9a-f]{16})", resp.header("content-type") or "")
    if m:
        b = m.group(1)
        assert sum(h.count(b) for h in headers) == 1, headers
        if body:
            assert body.count(b.encode()) >= 2, body[:200]
        headers = [h.replace(b, "BOUNDARY") for h in headers]
        body = body.replace(b.encode(), b"BOUNDARY")
    return resp.status, [lines[0]] + headers, body


def check_reference(root, name, method, resp):
    """The first combination's answers are right, not merely equal to each other."""
    path = {"big": "big.bin", "big multipart": "big.bin"}.get(name, "a.txt")
    if name == "no gzip":
        path = "page.html"
    elif "gzip" in name:
        path = "page.html.gz"
    elif "empty" in name:
        path = "empty.txt"
    with open(os.path.join(root, path), "rb") as f:
        data = f.read()
    if method == "HEAD" or resp.status in (304, 404, 416):
        if method == "HEAD" or resp.status == 304:
            assert resp.body == b"", (name, resp)
        return
    ctype = resp.header("content-type")
    if resp.status == 206 and ctype.startswith("multipart/byteranges"):
        for headers, part in parse_byteranges(resp):
            first, last, total = map(int, re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)",
                                                       headers["content-range"]).groups())
            assert total == len(data) and part == data[first:last + 1], (name, headers)
    elif resp.status == 206:
        first, last, total = map(int, re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)",
                                                   resp.header("content-range")).groups())
        assert total == len(data) and resp.body == data[first:last + 1], name
    else:
        assert resp.body == data, (name, len(resp.body), len(data))
    if "gzip" in name and name != "no gzip":
        assert resp.header("content-encoding") == "gzip", (name, resp.headers)
        if name == "gzip":
            with open(os.path.join(root, "page.html"), "rb") as f:
                assert gzip.decompress(resp.body) == f.read()


@test
def every_cache_and_send_mode_gives_the_same_answers():
    root = make_root()
    reference = None
    seen = []
    try:
        for cache_name, cache_conf in CACHES:
            for mode in MODES:
                combo = "%s/%s" % (cache_name, mode)
                answers = []
                with Daemon(send_mode=mode, args=["--root", root],
                            conf_extra=cache_conf + "gzip_static = true;\n") as d:
                    c = d.conn()
                    first = c.request("GET", "/a.txt")
                    etag, lm = first.header("etag"), first.header("last-modified")
                    assert etag and lm, first.headers
                    for rnd in range(2):
                        for name, method, path, headers, status in requests(etag, lm):
                            r = c.request(method, path, headers)
                            assert r.status == status, (combo, rnd, name, r.status, r.headers)
                            if reference is None:
                                check_reference(root, name, method, r)
                            answers.append((rnd, name, normalized(r)))
                    c.close()
                if reference is None:
                    reference = answers
                    seen.append(combo)
                    continue
                for (rnd, name, got), (_, _, want) in zip(answers, reference):
                    assert got[0] == want[0], (combo, rnd, name, got[0], want[0])
                    assert got[1] == want[1], (combo, rnd, name, "headers differ from %s" %
                                               seen[0], got[1], want[1])
                    assert got[2] == want[2], (combo, rnd, name, "body differs from %s" %
                                               seen[0], len(got[2]), len(want[2]))
                assert len(answers) == len(reference)
                seen.append(combo)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    assert len(seen) == len(MODES) * len(CACHES), seen


if __name__ == "__main__":
    run_tests()
