"""The open-file cache (src/fcache.h): a file served again is not opened again, and what
clients get still follows the files:

  - repeated requests are hits (/stats and /metrics count them); entries expire and their
    descriptors are closed (the daemon's fd count returns to its baseline);
  - a file rewritten in place (bigger, or same size), renamed over, or deleted is noticed
    within 0.1 s even when entries are trusted for 30 s;
  - a change fstat() cannot see (a symlink swapped to another file) is seen after `valid`;
  - `entries = 0` turns it off; the table never holds more than `entries` (eviction), nor
    more than a quarter of the open-files limit;
  - a reload (new document root) empties it at once.
"""
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ktlsd_test import Daemon, run_tests, test, wait_until  # noqa: E402

# The cache is per worker: these tests are about what one cache does (its capacity, when
# one entry expires), so they run one worker; test_workers.py runs the cache with two.
ONE = "workers = 1;\n"
SETTLE = 0.25   # > FCACHE_RECHECK_MS (0.1 s) + the coarse clock's tick


def fc(d):
    return d.stats()["file_cache"]


def metrics(d):
    text = d.stats("/metrics", raw=True).decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("ktlsd_file_cache"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


@test
def repeated_requests_are_hits_and_entries_expire():
    with Daemon(stats=True, conf_extra=ONE + "file_cache = { entries = 64; valid = 0.5; };\n") as d:
        d.put("a.txt", "alpha\n")
        d.put("dir/index.html", "index\n")
        c = d.conn()
        for _ in range(20):
            r = c.request("GET", "/a.txt")
            assert r.status == 200 and r.body == b"alpha\n", r
        for _ in range(5):
            r = c.request("GET", "/dir/")
            assert r.status == 200 and r.body == b"index\n", r
        c.close()
        s = fc(d)
        assert s["capacity"] == 64, s
        # within 0.5 s most requests find the file open (a slow sanitizer build may see
        # an entry expire in between: then it is a miss and a new entry)
        assert s["hits"] >= 15 and s["misses"] >= 2, s
        assert s["hits"] + s["misses"] == 25, s
        assert 1 <= s["entries"] <= 2, s
        m = metrics(d)
        assert m['ktlsd_file_cache_lookups_total{result="hit"}'] == s["hits"], m
        assert m['ktlsd_file_cache_lookups_total{result="miss"}'] == s["misses"], m
        # expired entries are swept: their descriptors close without further requests
        wait_until(lambda: fc(d)["entries"] == 0, 5, what="the sweep of expired entries")
        d.wait_fds_baseline()
        assert "file cache 0 of 64 files" in d.stats("/stats/text", raw=True).decode()


@test
def changed_files_are_seen_within_a_tenth_of_a_second():
    # entries trusted for 30 s: only the per-entry fstat() check can notice these
    with Daemon(stats=True, conf_extra=ONE + "file_cache = { valid = 30; };\n") as d:
        path = d.put("f.txt", "version one\n")
        c = d.conn()

        def get():
            r = c.request("GET", "/f.txt")
            assert r.status in (200, 404), r
            return r

        r1 = get()
        assert r1.body == b"version one\n"
        assert get().body == b"version one\n"          # a hit

        # rewritten in place, bigger: length, ETag and body all follow
        with open(path, "r+b") as f:
            f.write(b"version two, longer\n")
        time.sleep(SETTLE)
        r2 = get()
        assert r2.body == b"version two, longer\n", r2.body
        assert r2.header("Content-Length") == "20"
        assert r2.header("ETag") != r1.header("ETag")

        # rewritten in place, same size: mtime changes
        time.sleep(0.01)
        with open(path, "r+b") as f:
            f.write(b"VERSION TWO")
        time.sleep(SETTLE)
        r3 = get()
        assert r3.body == b"VERSION TWO, longer\n", r3.body
        assert r3.header("ETag") != r2.header("ETag")

        # replaced by a rename, as rsync and deploy scripts do
        tmp = os.path.join(d.root, ".f.tmp")
        with open(tmp, "wb") as f:
            f.write(b"renamed over\n")
        os.replace(tmp, path)
        time.sleep(SETTLE)
        assert get().body == b"renamed over\n"

        # deleted: 404, and the descriptor is not kept
        os.unlink(path)
        time.sleep(SETTLE)
        assert get().status == 404
        c.close()
        s = fc(d)
        assert s["reopened"] >= 3 and s["hits"] >= 1, s
        d.wait_fds_baseline()


def link_two_files(d):
    """one.txt, two.txt and the symlink cur -> one.txt; returns a function that swaps cur
    atomically to two.txt (a change fstat() of the cached one.txt cannot see)."""
    d.put("one.txt", "one\n")
    d.put("two.txt", "two\n")
    link = os.path.join(d.root, "cur")
    os.symlink("one.txt", link)

    def swap():
        tmp = os.path.join(d.root, ".cur")
        os.symlink("two.txt", tmp)
        os.replace(tmp, link)
    return swap


@test
def a_swapped_symlink_is_seen_after_valid():
    with Daemon(stats=True, conf_extra=ONE + "file_cache = { valid = 0.4; };\n") as d:
        swap = link_two_files(d)
        assert d.get("/cur").body == b"one\n"
        swap()
        t0 = time.time()
        # served from the cache until the entry is 0.4 s old, never later
        wait_until(lambda: d.get("/cur").body == b"two\n", 5, what="the new link target")
        # 0.4 s plus a few handshakes of slack for a loaded sanitizer build (without
        # expiry the old file would be served for as long as requests keep coming)
        assert time.time() - t0 < 0.4 + 1.2, "took %.2f s" % (time.time() - t0)
        assert d.get("/cur").body == b"two\n"


@test
def entries_0_turns_the_cache_off():
    with Daemon(stats=True, conf_extra=ONE + "file_cache = { entries = 0; };\n") as d:
        swap = link_two_files(d)
        c = d.conn()
        assert c.request("GET", "/cur").body == b"one\n"
        swap()
        assert c.request("GET", "/cur").body == b"two\n"   # at once: nothing cached
        # no file stays open between requests: the fd count is the baseline + the socket
        # (within 0.5 s, as the daemon closes it just after the last byte went out; a
        # cached file would stay open for the 1 s of `valid` and until the sweep)
        wait_until(lambda: d.fd_count() == d.fd_baseline + 1, 0.5,
                   what="only the socket open (%s)" % os.listdir("/proc/%d/fd" % d.proc.pid))
        c.close()
        s = fc(d)
        assert s["capacity"] == 0 and s["hits"] == 0 and s["entries"] == 0, s


@test
def without_the_cache_heads_304s_and_empty_files_are_answered_cleanly():
    # Uncached, the request's reference is the file's last one: a response head that
    # still pointed into the file (its ETag) after the file was let go was a
    # heap-use-after-free (ASan) in exactly these answers without a body.
    with Daemon(conf_extra=ONE + "file_cache = { entries = 0; };\n") as d:
        d.put("a.txt", "alpha\n")
        d.put("empty.txt", "")
        c = d.conn()
        get = c.request("GET", "/a.txt")
        etag = get.header("etag")
        assert get.status == 200 and etag and etag.startswith('"'), get.headers
        head = c.request("HEAD", "/a.txt")
        assert head.status == 200 and head.header("etag") == etag, head.headers
        assert head.header("content-length") == "6", head.headers
        nm = c.request("GET", "/a.txt", {"If-None-Match": etag})
        assert nm.status == 304 and nm.header("etag") == etag and nm.body == b"", nm.headers
        ims = c.request("GET", "/a.txt", {"If-Modified-Since": get.header("last-modified")})
        assert ims.status == 304 and ims.header("etag") == etag, ims.headers
        empty = c.request("GET", "/empty.txt")
        assert empty.status == 200 and empty.body == b"", empty
        assert empty.header("etag", "").startswith('"'), empty.headers
        for r in (head, nm, ims, empty):
            assert re.fullmatch(r'"[0-9a-f]+\.[0-9a-f]+-[0-9a-f]+"', r.header("etag")), \
                r.headers
        c.close()


@test
def no_more_entries_than_configured_nor_than_a_quarter_of_nofile():
    with Daemon(stats=True, conf_extra=ONE + "file_cache = { entries = 3; valid = 30; };\n") as d:
        for i in range(10):
            d.put("f%d.txt" % i, "file %d\n" % i)
        c = d.conn()
        for i in range(10):
            r = c.request("GET", "/f%d.txt" % i)
            assert r.body == ("file %d\n" % i).encode(), r
        c.close()
        s = fc(d)
        assert s["entries"] == 3 and s["evicted"] == 7 and s["misses"] == 10, s
        # 3 cached descriptors beyond the baseline, no more
        wait_until(lambda: d.fd_count() == d.fd_baseline + 3, 5, what="3 cached fds")
    with Daemon(stats=True, conf_extra=ONE + "limits = { nofile = 64; };\n"
                "file_cache = { entries = 1000; };\n") as d:
        assert fc(d)["capacity"] == 16, fc(d)


@test
def a_reload_empties_the_cache():
    with Daemon(stats=True, conf_extra=ONE + "file_cache = { valid = 30; };\n") as d:
        d.put("a.txt", "old root\n")
        assert d.get("/a.txt").body == b"old root\n"
        assert fc(d)["entries"] == 1
        root2 = os.path.join(d.tmp, "root2")
        os.mkdir(root2)
        with open(os.path.join(root2, "a.txt"), "wb") as f:
            f.write(b"new root\n")
        d.edit_conf('document_root = "%s"' % d.root, 'document_root = "%s"' % root2)
        d.signal(signal.SIGHUP)
        d.wait_log(r"reloaded ")
        assert d.get("/a.txt").body == b"new root\n"


if __name__ == "__main__":
    run_tests()
