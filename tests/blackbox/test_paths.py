"""Paths: nothing outside the document root is ever served, and directories, symlinks,
special and unreadable files get the right status.

Hostile-input checklist covered here:
  11. "/../", "%2e%2e", ".%2e", "%252e", "%2f", backslash, "%00", overlong UTF-8 "%c0%ae",
      absolute-form targets -> 400 or 404; nothing outside the document root is served.
  12. A symlink to a file outside the root, a symlinked directory that escapes, a symlink
      swapped in during the request -> 403/404 (kernel-enforced: openat2 RESOLVE_BENEATH).
  13. Directory without index -> 403; directory without trailing slash -> 301.

Layout of the Daemon's temp dir:
  secret.txt        outside the root: its bytes must never appear in any response
  root/pub.txt      plain file
  root/sub/         with index.html
  root/noindex/     without index
  root/...          symlinks, a FIFO, an unreadable file (made per test)
"""
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ktlsd_test import NO_OPENAT2, Daemon, Skip, run_tests, test  # noqa: E402

SECRET = b"TOP-SECRET-7f3a9c1e-outside-the-root\n"
PUB = b"public file\n"
INDEX = b"<html><body>sub index</body></html>\n"


def setup_tree(d):
    with open(os.path.join(d.tmp, "secret.txt"), "wb") as f:
        f.write(SECRET)
    d.put("pub.txt", PUB)
    d.put("sub/index.html", INDEX)
    d.put("sub/inner.txt", b"inner\n")
    d.put("noindex/file.txt", b"x\n")


def fetch(d, target, method="GET"):
    """One request with a raw target (sent as is); returns (status, headers, raw bytes)."""
    c = d.conn(timeout=5)
    try:
        c.send(b"%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n" % (
            method.encode(), target if isinstance(target, bytes) else target.encode()))
        c.closed_by_server(timeout=5)
        raw = c.buf
        r = c.read_response(head_only=(method == "HEAD"))
        return r.status, r, raw
    finally:
        c.close()


TRAVERSALS = [
    b"/../secret.txt",
    b"/../../../../../../../../etc/passwd",
    b"/./../secret.txt",
    b"//../secret.txt",
    b"/sub/../../secret.txt",
    b"/sub/./../../secret.txt",
    b"/%2e%2e/secret.txt",
    b"/%2E%2E/secret.txt",
    b"/.%2e/secret.txt",
    b"/%2e./secret.txt",
    b"/sub/%2e%2e/%2e%2e/secret.txt",
    b"/%252e%252e/secret.txt",
    b"/%25252e%25252e/secret.txt",
    b"/..%2fsecret.txt",
    b"/%2e%2e%2fsecret.txt",
    b"/sub%2f..%2f..%2fsecret.txt",
    b"/%2F..%2F..%2Fsecret.txt",
    b"/..\\secret.txt",
    b"/sub\\..\\..\\secret.txt",
    b"/%5c..%5csecret.txt",
    b"/pub.txt%00",
    b"/../secret.txt%00.html",
    b"/%00/../secret.txt",
    b"/%c0%ae%c0%ae/secret.txt",
    b"/%c0%2e%c0%2e/secret.txt",
    b"/%e0%80%ae%e0%80%ae/secret.txt",
    b"/%c0%af..%c0%afsecret.txt",
    b"/%c1%9c..%c1%9csecret.txt",
    b"/..;/secret.txt",
    b"/%2e%2e;/secret.txt",
    b"/...//secret.txt",
    b"/../secret.txt?x=/pub.txt",
    b"http://localhost/../secret.txt",
    b"https://localhost/%2e%2e/secret.txt",
    b"https://localhost/sub/../../secret.txt",
    b"https://localhost/..%2fsecret.txt",
]


@test
def traversal_encodings_never_leave_the_root():
    with Daemon() as d:
        setup_tree(d)
        # the tree is right: these are served
        assert fetch(d, "/pub.txt")[0] == 200
        assert fetch(d, "/sub/../pub.txt")[1].body == PUB
        assert fetch(d, "/%70ub.txt")[1].body == PUB          # %70 = 'p'
        problems = []
        for target in TRAVERSALS:
            for method in ("GET", "HEAD"):
                status, r, raw = fetch(d, target, method)
                if status not in (400, 404):
                    problems.append("%s %r: %d, expected 400 or 404" % (method, target, status))
                if SECRET.strip() in raw or b"root:" in raw:
                    problems.append("%s %r: SERVED CONTENT FROM OUTSIDE THE ROOT" % (
                        method, target))
        assert not problems, "\n  ".join(problems)
        # literal "%2e%2e" as a name inside the root is a normal (missing) file, not ".."
        os.makedirs(os.path.join(d.root, "%2e%2e"))
        d.put("%2e%2e/here.txt", b"literal\n")
        assert fetch(d, "/%252e%252e/here.txt")[1].body == b"literal\n"
        d.wait_fds_baseline()


@test
def symlinks_escaping_the_root_are_refused():
    with Daemon() as d:
        setup_tree(d)
        secret = os.path.join(d.tmp, "secret.txt")
        os.symlink(secret, os.path.join(d.root, "abs_out"))            # absolute, outside
        os.symlink("../secret.txt", os.path.join(d.root, "rel_out"))    # relative, outside
        os.symlink(d.tmp, os.path.join(d.root, "dir_abs"))             # dir escaping
        os.symlink("..", os.path.join(d.root, "dir_rel"))
        os.symlink("/etc", os.path.join(d.root, "etc"))
        os.symlink("/proc/self/root", os.path.join(d.root, "proc_root"))
        os.symlink(os.path.join(d.root, "pub.txt"), os.path.join(d.root, "abs_in"))
        os.symlink("pub.txt", os.path.join(d.root, "rel_in"))
        os.symlink("sub", os.path.join(d.root, "sub_link"))
        os.symlink("../pub.txt", os.path.join(d.root, "sub", "up_in"))
        problems = []
        for target in ("/abs_out", "/rel_out", "/dir_abs/secret.txt", "/dir_rel/secret.txt",
                       "/etc/passwd", "/proc_root/etc/passwd", "/dir_abs/",
                       "/sub_link/../dir_rel/secret.txt"):
            status, r, raw = fetch(d, target)
            if status not in (403, 404):
                problems.append("%s: %d, expected 403 or 404" % (target, status))
            if SECRET.strip() in raw or b"root:" in raw:
                problems.append("%s: SERVED CONTENT FROM OUTSIDE THE ROOT" % target)
        # links that stay inside the root are followed
        for target, body in (("/rel_in", PUB), ("/sub/up_in", PUB), ("/sub_link/inner.txt",
                                                                       b"inner\n"),
                             ("/sub_link/", INDEX)):
            status, r, raw = fetch(d, target)
            if status != 200 or r.body != body:
                problems.append("%s: %d %r, expected 200 %r" % (target, status, r.body[:40],
                                                                body))
        # an absolute link naming a file inside the root: its path leaves the root first,
        # so RESOLVE_BENEATH refuses it; 200 with the right content is fine too
        status, r, raw = fetch(d, "/abs_in")
        if not (status in (403, 404) or (status == 200 and r.body == PUB)):
            problems.append("/abs_in: %d" % status)
        assert not problems, "\n  ".join(problems)
        d.wait_fds_baseline()


@test
def symlink_swapped_during_requests_never_leaks():
    with Daemon() as d:
        setup_tree(d)
        good = os.path.join(d.root, ".swap_good")
        evil = os.path.join(d.root, ".swap_evil")
        link = os.path.join(d.root, "swap")
        stop = threading.Event()

        def swapper():
            i = 0
            while not stop.is_set():
                tmp = good if i % 2 == 0 else evil
                if os.path.lexists(tmp):
                    os.unlink(tmp)
                os.symlink("pub.txt" if i % 2 == 0 else "../secret.txt", tmp)
                os.replace(tmp, link)      # atomic swap under the daemon's feet
                i += 1

        t = threading.Thread(target=swapper, daemon=True)
        t.start()
        seen = {}
        try:
            deadline = time.time() + 1.5
            for i in range(600):       # a bounded number, on connections of 100 requests
                if time.time() > deadline:
                    break
                if i % 100 == 0:
                    if i:
                        c.close()
                    c = d.conn(timeout=5)
                r = c.request("GET", "/swap")
                seen[r.status] = seen.get(r.status, 0) + 1
                assert SECRET.strip() not in r.body, "secret served through a swapped link"
                assert r.status in (200, 403, 404), r
                if r.status == 200:
                    assert r.body == PUB, r.body[:80]
            c.close()
        finally:
            stop.set()
            t.join(5)
        assert seen.get(200, 0) > 0, seen   # the inside target was served sometimes
        d.wait_fds_baseline()


@test
def directories_index_redirect_and_trailing_slash():
    with Daemon() as d:
        setup_tree(d)
        c = d.conn()
        r = c.request("GET", "/noindex/")
        assert r.status == 403, r
        r = c.request("GET", "/")          # the root has no index.html either
        assert r.status == 403, r
        r = c.request("GET", "/sub")
        assert r.status == 301, r
        assert r.header("location", "").endswith("/sub/"), r.header("location")
        r = c.request("GET", "/sub/")
        assert r.status == 200 and r.body == INDEX, r
        assert r.header("content-type", "").startswith("text/html"), r.header("content-type")
        r = c.request("HEAD", "/sub/")
        assert r.status == 200 and r.header("content-length") == str(len(INDEX))
        r = c.request("GET", "/sub/index.html")
        assert r.status == 200 and r.body == INDEX
        r = c.request("GET", "/noindex")
        assert r.status == 301 and r.header("location", "").endswith("/noindex/"), r
        r = c.request("GET", "/pub.txt/")  # a file is no directory
        assert r.status == 404, r
        r = c.request("GET", "/sub/inner.txt/")
        assert r.status == 404, r
        r = c.request("GET", "/pub.txt/.")
        assert r.status == 404, r
        r = c.request("GET", "/pub.txt")
        assert r.status == 200 and r.body == PUB
        # an index.html that is itself a directory is no index
        os.makedirs(os.path.join(d.root, "weird", "index.html"))
        r = c.request("GET", "/weird/")
        assert r.status in (403, 404), r
        c.close()
        d.wait_fds_baseline()


@test
def fifo_is_refused_quickly():
    with Daemon() as d:
        setup_tree(d)
        os.mkfifo(os.path.join(d.root, "fifo"))
        t0 = time.time()
        status, r, raw = fetch(d, "/fifo")
        assert status == 403, status
        assert time.time() - t0 < 2, "a FIFO took %.1fs" % (time.time() - t0)
        # with a writer attached it is still no regular file
        fd = os.open(os.path.join(d.root, "fifo"), os.O_RDWR | os.O_NONBLOCK)
        try:
            os.write(fd, b"fifo data\n")
            status, r, raw = fetch(d, "/fifo")
            assert status == 403 and b"fifo data" not in raw, status
        finally:
            os.close(fd)
        # a UNIX socket in the root is no file either
        s = socket.socket(socket.AF_UNIX)
        try:
            s.bind(os.path.join(d.root, "sock"))
            status, r, raw = fetch(d, "/sock")
            assert status in (403, 404), status
        finally:
            s.close()
        assert fetch(d, "/pub.txt")[1].body == PUB
        d.wait_fds_baseline()


@test
def unreadable_file_is_forbidden():
    # root reads any file, so as root run the daemon as "nobody" (it drops privileges
    # after binding; its root dir, certificate and logs are opened before that)
    extra = ""
    if os.geteuid() == 0:
        try:
            import pwd
            pwd.getpwnam("nobody")
        except (ImportError, KeyError):
            raise Skip("running as root and there is no user nobody to drop to")
        extra = 'user = "nobody";\n'
    with Daemon(conf_extra=extra) as d:
        setup_tree(d)
        os.chmod(d.root, 0o755)
        path = d.put("locked.txt", b"locked\n")
        os.chmod(path, 0o000)
        os.makedirs(os.path.join(d.root, "lockeddir"))
        d.put("lockeddir/f.txt", b"f\n")
        os.chmod(os.path.join(d.root, "lockeddir"), 0o000)
        try:
            if extra:
                d.wait_log(r"running as nobody")
            status, r, raw = fetch(d, "/locked.txt")
            assert status == 403, status
            assert b"locked\n" not in r.body
            status, r, raw = fetch(d, "/lockeddir/f.txt")
            assert status in (403, 404), status
            assert fetch(d, "/pub.txt")[1].body == PUB
            d.wait_fds_baseline()
        finally:   # so that the temp dir can be removed
            os.chmod(os.path.join(d.root, "lockeddir"), 0o755)
            os.chmod(path, 0o644)


@test
def without_openat2_files_are_served_and_every_symlink_refused():
    """A kernel before 5.6, or a container's seccomp profile that predates openat2:
    openat2() fails with ENOSYS or EPERM. ktlsd says so once and resolves paths itself,
    one component at a time, following no symlink at all (403), inside the root or not."""
    assert os.access(NO_OPENAT2, os.X_OK), "build tests/helpers/no-openat2 (make check)"
    for err in ("ENOSYS", "EPERM"):
        with Daemon(wrapper=[NO_OPENAT2, err]) as d:
            d.wait_log(r"\[warn\].*openat2\(\) unavailable \(%s" % (
                "Function not implemented" if err == "ENOSYS" else "Operation not permitted"))
            setup_tree(d)
            os.symlink(os.path.join(d.tmp, "secret.txt"), os.path.join(d.root, "abs_out"))
            os.symlink("../secret.txt", os.path.join(d.root, "rel_out"))
            os.symlink("..", os.path.join(d.root, "dir_rel"))
            os.symlink("/proc/self/root", os.path.join(d.root, "proc_root"))
            os.symlink("pub.txt", os.path.join(d.root, "rel_in"))
            os.symlink("sub", os.path.join(d.root, "sub_link"))
            problems = []
            for target, want, body in (
                    ("/pub.txt", 200, PUB), ("/sub/", 200, INDEX), ("/", 403, None),
                    ("/sub", 301, None), ("/sub/inner.txt", 200, b"inner\n"),
                    ("/noindex/", 403, None), ("/missing.txt", 404, None),
                    ("/pub.txt/x", 404, None), ("/sub/nothing/x", 404, None),
                    ("/abs_out", 403, None), ("/rel_out", 403, None),
                    ("/dir_rel/secret.txt", 403, None), ("/proc_root/etc/passwd", 403, None),
                    ("/rel_in", 403, None), ("/sub_link/inner.txt", 403, None),
                    ("/sub_link/", 403, None)):
                status, r, raw = fetch(d, target)
                if status != want or (body is not None and r.body != body):
                    problems.append("%s %s: %d %r, expected %d" % (err, target, status,
                                                                   r.body[:40], want))
                if SECRET.strip() in raw or b"root:" in raw:
                    problems.append("%s %s: SERVED CONTENT FROM OUTSIDE THE ROOT" % (
                        err, target))
            for target in TRAVERSALS:
                status, r, raw = fetch(d, target)
                if status not in (400, 404) or SECRET.strip() in raw or b"root:" in raw:
                    problems.append("%s %r: %d" % (err, target, status))
            assert not problems, "\n  ".join(problems)
            d.wait_fds_baseline()


if __name__ == "__main__":
    run_tests()
