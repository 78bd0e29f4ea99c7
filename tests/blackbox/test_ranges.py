"""Range requests and conditional requests (RFC 9110 sections 13 and 14), checked byte-exact
against the file on disk.

Hostile-input checklist covered here:
  14. "bytes=0-8" on 1000 bytes -> 206, "Content-Range: bytes 0-8/1000", Content-Length 9.
  15. "bytes=-5000" on 1000 bytes -> 206 for 0-999; "bytes=990-1990" -> 206 for 990-999.
  16. "bytes=100000-", or any range on an empty file -> 416 with "Content-Range: bytes */N".
  17. Invalid Range ("bytes=alpha", "bytes=10-5", "items=0-1") -> ignored, 200.
  18. "bytes=0-18446744073709551615", 20+ digit numbers -> no overflow; treated as to-EOF
      or invalid, never a wrong slice.
  19. Several ranges -> 206 multipart/byteranges, one part per range in the order asked,
      each with its Content-Type and Content-Range, byte-exact; more than 16 ranges, or
      ranges adding up to more than the file (overlap abuse, CVE-2011-3192) -> 200 in full.
  20. If-None-Match / If-Modified-Since -> 304 when matching; If-Range with a matching
      strong ETag (or the Last-Modified date) -> 206, stale -> 200.
"""
import calendar
import email.utils
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ktlsd_test import Daemon, parse_byteranges, run_tests, test  # noqa: E402

DATA = bytes((i * 7 + 3) % 251 for i in range(1000))
MTIME = calendar.timegm((2020, 1, 2, 3, 4, 5))      # a fixed Last-Modified
U64 = 2**64 - 1

# (Range header value, expected status, (first, last) for 206)
CASES = [
    # 14
    ("bytes=0-8", 206, (0, 8)),
    ("bytes=0-0", 206, (0, 0)),
    ("bytes=999-999", 206, (999, 999)),
    ("bytes=500-", 206, (500, 999)),
    ("bytes=0-", 206, (0, 999)),
    ("bytes=0-999", 206, (0, 999)),
    ("BYTES=0-8", 206, (0, 8)),                 # the unit is case-insensitive
    # 15
    ("bytes=-5", 206, (995, 999)),
    ("bytes=-1000", 206, (0, 999)),
    ("bytes=-5000", 206, (0, 999)),
    ("bytes=990-1990", 206, (990, 999)),
    ("bytes=999-1000", 206, (999, 999)),
    # 16
    ("bytes=100000-", 416, None),
    ("bytes=1000-", 416, None),
    ("bytes=1000-1000", 416, None),
    ("bytes=1000-2000", 416, None),
    ("bytes=-0", 416, None),
    # 17
    ("bytes=alpha", 200, None),
    ("bytes=10-5", 200, None),
    ("items=0-1", 200, None),
    ("bytes 0-1", 200, None),
    ("bytes=", 200, None),
    ("bytes=-", 200, None),
    ("bytes=1-2-3", 200, None),
    ("bytes=--1", 200, None),
    ("bytes=+1-2", 200, None),
    ("bytes=0x10-0x20", 200, None),
    ("bytes=1.5-2", 200, None),
    ("bytes=0-8;x", 200, None),
    ("bytes=5-1,0-1", 200, None),              # one invalid spec spoils the whole header
    ("bytes=0-1,5-1", 200, None),
    # 18
    ("bytes=0-%d" % U64, 206, (0, 999)),
    ("bytes=0-%d" % (U64 + 1), 206, (0, 999)),
    ("bytes=0-" + "9" * 30, 206, (0, 999)),
    ("bytes=100-%d" % (2**64 + 100), 206, (100, 999)),
    ("bytes=%d-" % U64, 416, None),
    ("bytes=%d-" % (U64 + 1), 416, None),
    ("bytes=%d-" % (2**64 + 5), 416, None),     # must not wrap around to 5
    ("bytes=" + "9" * 30 + "-", 416, None),
    ("bytes=%d-%d" % (U64 - 1, U64), 416, None),
    ("bytes=%s-%s" % ("9" * 25, "9" * 26), 416, None),
    ("bytes=-%d" % (U64 + 1), 206, (0, 999)),
    ("bytes=-" + "9" * 30, 206, (0, 999)),
    ("bytes=-%d" % (2**64 + 5), 206, (0, 999)),  # must not wrap around to the last 5
    ("bytes=%s5-%s9" % ("0" * 30, "0" * 30), 206, (5, 9)),
    ("bytes=%d-5" % (2**64 + 1), 200, None),   # last < first, also when first overflows
    ("bytes=%s-%s" % ("9" * 26, "9" * 25), 200, None),
    # 19
    ("bytes=0-1,5-6", 206, [(0, 1), (5, 6)]),
    ("bytes=0-0,-1", 206, [(0, 0), (999, 999)]),
    ("bytes=500-599, 0-9 ,990-", 206, [(500, 599), (0, 9), (990, 999)]),
    ("bytes=0-1,5000-6000,7-8", 206, [(0, 1), (7, 8)]),
    ("bytes=" + ",".join("%d-%d" % (i * 10, i * 10 + 4) for i in range(16)), 206,
     [(i * 10, i * 10 + 4) for i in range(16)]),
    ("bytes=0-999,0-999", 200, None),
    ("bytes=0-,0-,0-,0-,0-", 200, None),
    ("bytes=" + ",".join("0-%d" % i for i in range(100)), 200, None),
    ("bytes=" + ",".join("%d-%d" % (i, i) for i in range(40)), 200, None),
    ("bytes=" + ",".join(["-1"] * 1000), 200, None),
    # one satisfiable range among unsatisfiable ones: that one range (RFC 9110 14.2)
    ("bytes=0-1,5000-6000", 206, (0, 1)),
]

EMPTY_CASES = [
    ("bytes=0-0", 416, None),
    ("bytes=0-", 416, None),
    ("bytes=-5", 416, None),
    ("bytes=0-%d" % U64, 416, None),
    ("bytes=alpha", 200, None),
]


def check_case(r, rng, status, span, data, method="GET"):
    """Problems with response r to Range rng (empty list: ok)."""
    n = len(data)
    p = []
    if r.status != status:
        return ["%s %r: status %d, expected %d" % (method, rng, r.status, status)]
    if status == 206 and isinstance(span, list):
        if r.header("content-range") is not None:
            p.append("%r: multipart with a top-level Content-Range" % rng)
        if method == "HEAD":
            return p
        try:
            parts = parse_byteranges(r)
        except AssertionError as e:
            return p + ["%r: bad multipart body: %s" % (rng, e)]
        if len(parts) != len(span):
            p.append("%r: %d parts, expected %d" % (rng, len(parts), len(span)))
        for (headers, body), (first, last) in zip(parts, span):
            if headers.get("content-range") != "bytes %d-%d/%d" % (first, last, n):
                p.append("%r: part Content-Range %r" % (rng, headers.get("content-range")))
            if not headers.get("content-type"):
                p.append("%r: part without Content-Type" % rng)
            if body != data[first:last + 1]:
                p.append("%r: part %d-%d: WRONG SLICE" % (rng, first, last))
    elif status == 206:
        first, last = span
        want_cr = "bytes %d-%d/%d" % (first, last, n)
        if r.header("content-range") != want_cr:
            p.append("%r: Content-Range %r, expected %r" % (rng, r.header("content-range"),
                                                          want_cr))
        if r.header("content-length") != str(last - first + 1):
            p.append("%r: Content-Length %r" % (rng, r.header("content-length")))
        if method == "GET" and r.body != data[first:last + 1]:
            p.append("%r: WRONG SLICE (%d bytes, starts %r)" % (rng, len(r.body), r.body[:8]))
    elif status == 416:
        if r.header("content-range") != "bytes */%d" % n:
            p.append("%r: 416 with Content-Range %r" % (rng, r.header("content-range")))
    elif status == 200:
        if r.header("content-range") is not None:
            p.append("%r: 200 with Content-Range %r" % (rng, r.header("content-range")))
        if r.header("content-length") != str(n):
            p.append("%r: 200 with Content-Length %r" % (rng, r.header("content-length")))
        if method == "GET" and r.body != data:
            p.append("%r: 200 with a body that is not the file" % rng)
    return p


def start(files=None):
    d = Daemon(files=files or {"f.bin": DATA, "empty": b""})
    for name in (files or {"f.bin": 0, "empty": 0}):
        os.utime(os.path.join(d.root, name), (MTIME, MTIME))
    return d


@test
def range_cases_are_byte_exact():
    with start() as d:
        c = d.conn()
        full = c.request("GET", "/f.bin")
        assert full.status == 200 and full.body == DATA
        assert full.header("accept-ranges") == "bytes"
        problems = []
        for data, path, cases in ((DATA, "/f.bin", CASES), (b"", "/empty", EMPTY_CASES)):
            for rng, status, span in cases:
                for method in ("GET", "HEAD"):
                    r = c.request(method, path, {"Range": rng})
                    problems += check_case(r, rng, status, span, data, method)
        assert not problems, "%d problem(s):\n  %s" % (len(problems), "\n  ".join(problems))
        # the connection survived all of it in sync
        assert c.request("GET", "/f.bin").body == DATA
        c.close()


@test
def two_range_fields_are_not_merged():
    with start() as d:
        c = d.conn()
        c.send("GET /f.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1\r\nRange: bytes=5-6\r\n\r\n")
        r = c.read_response()
        # either refused (400) or one of them ignored; never a mixture
        assert r.status in (400, 200), r
        if r.status == 200:
            assert r.body == DATA
        c.close()


@test
def conditional_requests():
    with start() as d:
        c = d.conn()
        full = c.request("GET", "/f.bin")
        etag, lm = full.header("etag"), full.header("last-modified")
        assert etag and etag.startswith('"') and etag.endswith('"'), etag
        assert lm == email.utils.formatdate(MTIME, usegmt=True), (lm, MTIME)
        older = email.utils.formatdate(MTIME - 86400, usegmt=True)
        newer = email.utils.formatdate(MTIME + 86400, usegmt=True)
        asctime_lm = "Thu Jan  2 03:04:05 2020"
        rfc850_lm = "Thursday, 02-Jan-20 03:04:05 GMT"
        # (request headers, expected status, Range span for 206 or None)
        cases = [
            ({"If-None-Match": etag}, 304, None),
            ({"If-None-Match": "*"}, 304, None),
            ({"If-None-Match": '"nope", %s' % etag}, 304, None),
            ({"If-None-Match": '"nope",%s,"other"' % etag}, 304, None),
            ({"If-None-Match": "W/" + etag}, 304, None),          # weak comparison
            ({"If-None-Match": '"nope"'}, 200, None),
            ({"If-None-Match": etag[:-2] + '"'}, 200, None),
            ({"If-None-Match": etag.strip('"')}, 200, None),      # unquoted: malformed
            ({"If-Modified-Since": lm}, 304, None),
            ({"If-Modified-Since": asctime_lm}, 304, None),
            ({"If-Modified-Since": rfc850_lm}, 304, None),
            ({"If-Modified-Since": newer}, 304, None),
            ({"If-Modified-Since": older}, 200, None),
            ({"If-Modified-Since": "yesterday"}, 200, None),
            ({"If-Modified-Since": lm.replace("GMT", "XYZ")}, 200, None),
            # If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2)
            ({"If-None-Match": '"nope"', "If-Modified-Since": lm}, 200, None),
            ({"If-None-Match": etag, "If-Modified-Since": older}, 304, None),
            # a 304 beats the Range
            ({"If-None-Match": etag, "Range": "bytes=0-8"}, 304, None),
            # If-Range
            ({"If-Range": etag, "Range": "bytes=0-8"}, 206, (0, 8)),
            ({"If-Range": etag, "Range": "bytes=-10"}, 206, (990, 999)),
            ({"If-Range": '"stale"', "Range": "bytes=0-8"}, 200, None),
            ({"If-Range": "W/" + etag, "Range": "bytes=0-8"}, 200, None),  # strong only
            ({"If-Range": lm, "Range": "bytes=10-19"}, 206, (10, 19)),
            ({"If-Range": older, "Range": "bytes=10-19"}, 200, None),
            ({"If-Range": newer, "Range": "bytes=10-19"}, 200, None),
            ({"If-Range": "garbage", "Range": "bytes=10-19"}, 200, None),
            ({"If-Range": etag}, 200, None),                     # no Range: ignored
            ({"If-Range": etag, "Range": "bytes=5000-"}, 416, None),
        ]
        problems = []
        for hdrs, status, span in cases:
            for method in ("GET", "HEAD"):
                r = c.request(method, "/f.bin", hdrs)
                if status == 304:
                    if r.status != 304:
                        problems.append("%s %r: %d, expected 304" % (method, hdrs, r.status))
                    elif r.body or r.header("etag") != etag:
                        problems.append("%s %r: 304 with body %r / ETag %r" % (
                            method, hdrs, r.body[:20], r.header("etag")))
                else:
                    problems += ["%r: %s" % (hdrs, p) for p in
                                 check_case(r, hdrs.get("Range"), status, span, DATA, method)]
        assert not problems, "%d problem(s):\n  %s" % (len(problems), "\n  ".join(problems))

        # the file changes: old validators stop matching, the new content is served
        new = DATA[::-1] + b"more"
        d.put("f.bin", new)
        time.sleep(0.25)    # the open-file cache notices a rewrite within 0.1 s (fcache.h)
        os.utime(os.path.join(d.root, "f.bin"), (MTIME + 100, MTIME + 100))
        r = c.request("GET", "/f.bin", {"If-None-Match": etag})
        assert r.status == 200 and r.body == new, r
        assert r.header("etag") != etag
        r = c.request("GET", "/f.bin", {"If-Range": etag, "Range": "bytes=0-8"})
        assert r.status == 200 and r.body == new, r
        r = c.request("GET", "/f.bin", {"If-Modified-Since": lm})
        assert r.status == 200 and r.body == new, r
        r = c.request("GET", "/f.bin", {"If-Range": r.header("etag"), "Range": "bytes=0-8"})
        assert r.status == 206 and r.body == new[:9], r
        c.close()


@test
def large_file_range_is_exact():
    with Daemon() as d:
        size = 3 * 1024 * 1024 + 17
        path = d.put_random("big.bin", size, seed=7)
        with open(path, "rb") as f:
            data = f.read()
        c = d.conn()
        for rng, first, last in (("bytes=1048570-2097160", 1048570, 2097160),
                                 ("bytes=-65537", size - 65537, size - 1),
                                 ("bytes=3145728-", 3145728, size - 1)):
            r = c.request("GET", "/big.bin", {"Range": rng})
            assert r.status == 206, (rng, r)
            assert r.header("content-range") == "bytes %d-%d/%d" % (first, last, size)
            assert r.body == data[first:last + 1], rng
        c.close()



@test
def multipart_ranges_of_a_big_file_in_small_chunks_then_keepalive():
    # send.chunk 4096: every part takes many send calls, part headers land between them
    for mode in ("sendfile", "write", "userspace"):
        with Daemon(send_mode=mode, start=False) as d:
            d.edit_conf('send = { mode = "%s"; };' % mode,
                        'send = { mode = "%s"; chunk = 4096; };' % mode)
            d.start()
            path = d.put_random("big.bin", 3 * 1024 * 1024, seed=19)
            data = open(path, "rb").read()
            c = d.conn(timeout=20)
            spans = [(0, 99999), (1000000, 2500000), (len(data) - 5, len(data) - 1)]
            r = c.request("GET", "/big.bin", {"Range": "bytes=0-99999,1000000-2500000,-5"})
            assert r.status == 206, r
            parts = parse_byteranges(r)
            assert len(parts) == 3, len(parts)
            for (headers, body), (first, last) in zip(parts, spans):
                assert headers["content-range"] == "bytes %d-%d/%d" % (first, last, len(data))
                assert headers["content-type"] == "application/octet-stream", headers
                assert body == data[first:last + 1], (mode, first, last, len(body))
            h = c.request("HEAD", "/big.bin", {"Range": "bytes=0-99999,1000000-2500000,-5"})
            assert h.status == 206 and h.header("content-length") == r.header("content-length")
            assert h.header("content-type").startswith("multipart/byteranges; boundary=")
            assert c.request("GET", "/big.bin", {"Range": "bytes=7-9"}).body == data[7:10]
            c.close()
            line = [x for x in d.access_log().splitlines() if " 206 " in x][0]
            assert '" 206 %s "' % r.header("content-length") in line, line


if __name__ == "__main__":
    run_tests()
