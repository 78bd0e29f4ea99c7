"""Directory listings (autoindex): a directory without index file answers with an HTML
(or JSON) listing when autoindex is on, 403 as before when it is off.

What is checked, against the real daemon:
  - off by default (403), on per configuration, per listener, after a reload, in --demo;
  - the page byte for byte (every entry's mtime is pinned): directories first, then
    files, each by name bytewise; names with markup, quotes, '&', spaces, '%', '#', '?',
    UTF-8 escaped in the text and percent-encoded in the link, and every link followed
    serves exactly that file (or lists that directory);
  - what the server would refuse is left out: symlinks leading out of the root (with and
    without openat2), FIFOs, sockets, unreadable entries, and names that no request path
    can carry: the path parser answers 400 to invalid UTF-8, control bytes and '\\', so
    those names are left out and a request for them stays 400;
  - dot files only with autoindex_hidden;
  - JSON (Accept: application/json or ?format=json) has the same entries, parses, and
    says Content-Type application/json; both say Vary: Accept;
  - ETag/Last-Modified from the directory, 304 for If-None-Match and If-Modified-Since,
    HEAD with GET's headers and no body;
  - 10 000 entries: truncated (with a note, "truncated": true) at autoindex_max_entries
    = 100, all listed with the default while VmRSS stays bounded;
  - the same bytes in every send mode with the file cache on and off (the listing goes
    out through the response buffer, also for sendfile and splice);
  - the access log and /stats count listings like any response.
"""
import html
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ktlsd_test import (KTLSD, NO_OPENAT2, Daemon, Skip, client_context,  # noqa: E402
                        run_tests, test, wait_until)

ON = "autoindex = true;\n"
MTIME = 1700000000                  # every listed entry's mtime: the page is predictable
MTIME_ISO = "2023-11-14T22:13:20Z"
MODES = ("sendfile", "splice", "write", "userspace", "auto")
CACHES = (("cache-on", "file_cache = { entries = 64; valid = 30; };\n"),
          ("cache-off", "file_cache = { entries = 0; };\n"))
ROW_RE = re.compile(r'<tr><td><a href="([^"]*)">([^<]*)</a></td><td>([^<]*)</td>'
                    r'<td>([^<]*)</td></tr>\n')

# Names that must be listed (escaped) and served through their links.
HOSTILE_FILES = [
    b"<img src=x onerror=alert(1)>.html", b'a"quote.txt', b"it's.txt", b"R&D.txt",
    b"&amp;.txt", b"with space.txt", b"  two leading spaces", b"100%.txt", b"%41.txt",
    b"A.txt", b"%2e%2e", b"hash#frag.txt", b"what?.txt", b"q?format=json",
    b"semi;colon:.txt", b"plus+eq=,!*().txt", b"-dash", b"~tilde", b"a`{|}^[]",
    "caf\u00e9.txt".encode(), "\u65e5\u672c\u8a9e.txt".encode(),
    "\U0001f600.txt".encode(), "\ufffd.txt".encode(), b"javascript:alert(1)",
]
HOSTILE_DIRS = [b"dir <&> \"'", b"%2e", "r\u00e9pertoire".encode()]
# Names no request path can carry (the path parser answers 400): left out.
UNLINKABLE = [b"bad\xff.txt", b"caf\xe9-latin1.txt", b"\xc0\xae\xc0\xae", b"ctl\x01.txt",
              b"tab\there", b"new\nline", b"back\\slash"]


# ---- helpers ----------------------------------------------------------------------

def content_of(name):
    return b"content of " + name + b"\n"


def put(root, rel, data):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    os.utime(path, (MTIME, MTIME))
    return path


def mkdir(root, rel):
    path = os.path.join(root, rel)
    os.makedirs(path, exist_ok=True)
    return path


def pin_mtime(path):
    os.utime(path, (MTIME, MTIME))


def esc_html(name):
    return html.escape(name.decode(), quote=True).replace("&#x27;", "&#39;")


def esc_uri(name):
    return urllib.parse.quote(name, safe="")


def order(entries):
    """Listing order: directories first, then files, each by name, bytewise."""
    return sorted(entries, key=lambda e: (not e[1], e[0]))


def expected_html(path, entries, truncated=False):
    """The page for the directory `path` ("/", "/a/"), entries (name bytes, is_dir, size)
    in listing order, all with mtime MTIME."""
    title = esc_html(path.encode())
    out = ('<!DOCTYPE html>\n<html>\n<head><meta charset="utf-8"><title>Index of %s</title>'
           '</head>\n<body>\n<h1>Index of %s</h1>\n<table>\n<tr><th>Name</th><th>Size</th>'
           '<th>Last modified</th></tr>\n' % (title, title))
    if path != "/":
        out += '<tr><td><a href="../">../</a></td><td>-</td><td>-</td></tr>\n'
    for name, is_dir, size in entries:
        slash = "/" if is_dir else ""
        out += '<tr><td><a href="%s%s">%s%s</a></td><td>%s</td><td>%s</td></tr>\n' % (
            esc_uri(name), slash, esc_html(name), slash, "-" if is_dir else size, MTIME_ISO)
    out += "</table>\n"
    if truncated:
        out += ('<p class="truncated">Truncated: only the first %d entries are listed.</p>\n'
                % len(entries))
    out += "<hr><address>ktlsd</address>\n</body>\n</html>\n"
    return out.encode()


def expected_json(path, entries, truncated=False):
    rows = ['{"name":%s,"type":"%s","size":%s,"mtime":"%s"}' % (
        json.dumps(name.decode(), ensure_ascii=False), "directory" if is_dir else "file",
        "null" if is_dir else size, MTIME_ISO) for name, is_dir, size in entries]
    return ('{"path":%s,"entries":[' % json.dumps(path, ensure_ascii=False) +
            "".join(("\n" if i == 0 else ",\n") + r for i, r in enumerate(rows)) +
            '\n],"truncated":%s}\n' % ("true" if truncated else "false")).encode()


def rows_of(body):
    """(href, text, size, mtime) of every row of an HTML listing, "../" included."""
    text = body.decode("utf-8")
    rows = ROW_RE.findall(text)
    assert text.count("<tr><td>") == len(rows), "a row the pattern missed:\n" + text[:2000]
    return rows


def fetch(d, target, method="GET", headers=None, port=None):
    """One request with a raw target on a new connection: the Response."""
    old = d.port
    if port is not None:
        d.port = port
    try:
        c = d.conn(timeout=20)
    finally:
        d.port = old
    try:
        h = "".join("%s: %s\r\n" % kv for kv in (headers or {}).items())
        c.send(b"%s %s HTTP/1.1\r\nHost: localhost\r\n%s\r\n" % (
            method.encode(), target if isinstance(target, bytes) else target.encode(),
            h.encode()))
        return c.read_response(head_only=(method == "HEAD"))
    finally:
        c.close()


def make_hostile_tree(root):
    """The hostile names (and the unlinkable ones) in root, mtimes pinned. Returns the
    expected entries of "/" in listing order."""
    entries = []
    for name in HOSTILE_FILES:
        put(root, name.decode("utf-8"), content_of(name))
        entries.append((name, False, len(content_of(name))))
    for name in HOSTILE_DIRS:
        sub = os.fsdecode(name)
        inner = b"inner #1 <" + name + b">.txt"
        put(root, os.path.join(sub, os.fsdecode(inner)), content_of(inner))
        pin_mtime(mkdir(root, sub))
        entries.append((name, True, 0))
    for name in UNLINKABLE:
        with open(os.path.join(os.fsencode(root), name), "wb") as f:
            f.write(b"never listed\n")
    return order(entries)


def vm_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def ports_of(d):
    """Every IPv4 port the daemon listens on, in configuration order."""
    return [int(p) for p in re.findall(r"listening on \S+ \(bound [\d.]+:(\d+)\)", d.log())]


# ---- tests ------------------------------------------------------------------------

@test
def off_by_default_a_directory_without_index_is_403():
    with Daemon() as d:
        put(d.root, "sub/f.txt", b"f\n")
        put(d.root, "withindex/index.html", b"<p>index</p>\n")
        for target in ("/", "/sub/", "/?format=json"):
            r = fetch(d, target)
            assert r.status == 403 and b"<h1>403 Forbidden</h1>" in r.body, (target, r)
            assert r.header("vary") is None, r.headers
        r = fetch(d, "/", headers={"Accept": "application/json"})
        assert r.status == 403, r
        assert fetch(d, "/sub").status == 301
        assert fetch(d, "/withindex/").body == b"<p>index</p>\n"
        d.wait_fds_baseline()


@test
def hostile_names_are_escaped_and_every_link_serves_its_file():
    with Daemon(conf_extra=ON) as d:
        want = make_hostile_tree(d.root)
        r = fetch(d, "/")
        assert r.status == 200, r
        assert r.header("content-type") == "text/html; charset=utf-8", r.headers
        assert r.header("vary") == "Accept", r.headers
        assert r.header("content-length") == str(len(r.body))
        expect = expected_html("/", want)
        assert r.body == expect, "page differs:\n%s\n---- expected:\n%s" % (
            r.body.decode(errors="replace"), expect.decode())
        for bad in UNLINKABLE:      # left out because a request for it is refused
            assert esc_uri(bad).encode() not in r.body
            assert fetch(d, b"/" + esc_uri(bad).encode()).status == 400, bad
        # follow every link: the file's bytes, or that directory's listing whose links
        # work in turn
        rows = rows_of(r.body)
        assert len(rows) == len(want)
        for (href, text, size, mtime), (name, is_dir, length) in zip(rows, want):
            assert html.unescape(text) == name.decode() + ("/" if is_dir else ""), text
            got = fetch(d, "/" + href)
            assert got.status == 200, (href, got)
            if not is_dir:
                assert got.body == content_of(name), (href, got.body)
                assert size == str(length) and mtime == MTIME_ISO
                continue
            inner = b"inner #1 <" + name + b">.txt"
            path = "/" + name.decode() + "/"
            assert got.body == expected_html(path, [(inner, False, len(content_of(inner)))])
            sub_rows = rows_of(got.body)
            assert sub_rows[0][0] == "../" and fetch(d, "/" + href + "../").body == r.body
            assert fetch(d, "/" + href + sub_rows[1][0]).body == content_of(inner)
            # without its slash a directory is still redirected first
            assert fetch(d, "/" + href[:-1]).status == 301
        d.wait_fds_baseline()


@test
def a_link_longer_than_the_request_line_limit_is_left_out():
    # "GET /d/NAME HTTP/1.1" is 16 + len(NAME) bytes: 100 is the limit, 101 is 414
    with Daemon(conf_extra=ON + "limits = { request_line = 100; };\n") as d:
        fits, too_long = b"f" * 84, b"g" * 85
        dir_fits, dir_too_long = b"h" * 83, b"i" * 84      # the link ends in "/"
        for name in (fits, too_long):
            put(d.root, "d/" + name.decode(), content_of(name))
        for name in (dir_fits, dir_too_long):
            pin_mtime(mkdir(d.root, "d/" + name.decode()))
        r = fetch(d, "/d/")
        assert r.body == expected_html("/d/", [(dir_fits, True, 0), (fits, False,
                                                                   len(content_of(fits)))])
        assert fetch(d, "/d/" + fits.decode()).body == content_of(fits)
        assert fetch(d, "/d/" + too_long.decode()).status == 414
        assert fetch(d, "/d/" + dir_fits.decode() + "/").status == 200
        assert fetch(d, "/d/" + dir_too_long.decode() + "/").status == 414


@test
def dot_files_are_listed_only_with_autoindex_hidden():
    for hidden in (False, True):
        extra = ON + ("autoindex_hidden = true;\n" if hidden else "")
        with Daemon(conf_extra=extra) as d:
            for name in (b".hidden", b"..dots", b"...", b".env"):
                put(d.root, name.decode(), content_of(name))
            pin_mtime(mkdir(d.root, ".git"))
            put(d.root, "visible.txt", content_of(b"visible.txt"))
            want = [(b"visible.txt", False, len(content_of(b"visible.txt")))]
            if hidden:
                want += [(n, False, len(content_of(n)))
                         for n in (b".hidden", b"..dots", b"...", b".env")]
                want.append((b".git", True, 0))
            want = order(want)
            assert fetch(d, "/").body == expected_html("/", want)
            assert fetch(d, "/?format=json").body == expected_json("/", want)
            # listed or not, a dot file is served as before
            assert fetch(d, "/.hidden").body == content_of(b".hidden")


def symlink_tree(d):
    """Links of every kind in d.root; returns {name: serve it?} for openat2 resolution."""
    secret = os.path.join(d.tmp, "secret.txt")
    with open(secret, "wb") as f:
        f.write(b"TOP-SECRET outside the root\n")
    put(d.root, "pub.txt", content_of(b"pub.txt"))
    put(d.root, "sub/inner.txt", content_of(b"inner.txt"))
    pin_mtime(os.path.join(d.root, "sub"))
    links = {
        "abs_out": secret, "rel_out": "../secret.txt", "dir_out_abs": d.tmp,
        "dir_out_rel": "..", "etc": "/etc", "proc_root": "/proc/self/root",
        "dangling": "nowhere.txt", "loop": "loop",
        "rel_in": "pub.txt", "sub_link": "sub", "up_in_sub": "sub/../pub.txt",
    }
    for name, target in links.items():
        os.symlink(target, os.path.join(d.root, name))
    os.symlink("../pub.txt", os.path.join(d.root, "sub", "up_in"))     # leaves sub only
    return {"rel_in", "sub_link", "up_in_sub"}


@test
def symlinks_leaving_the_root_and_special_files_are_left_out():
    for wrapper in ((), (NO_OPENAT2, "ENOSYS")):
        if wrapper:
            assert os.access(NO_OPENAT2, os.X_OK), "build tests/helpers/no-openat2"
        with Daemon(conf_extra=ON, wrapper=list(wrapper)) as d:
            served = symlink_tree(d)
            os.mkfifo(os.path.join(d.root, "fifo"))
            s = socket.socket(socket.AF_UNIX)
            s.bind(os.path.join(d.root, "sock"))
            try:
                r = fetch(d, "/")
                names = {html.unescape(t).rstrip("/") for h, t, _, _ in rows_of(r.body)}
                assert b"TOP-SECRET" not in r.body
                # exactly what a request would be served, symlink or not
                for name in os.listdir(d.root):
                    status = fetch(d, "/" + esc_uri(name.encode())).status
                    if status == 301:
                        status = fetch(d, "/" + esc_uri(name.encode()) + "/").status
                    assert (name in names) == (status == 200), (wrapper, name, status, names)
                want = {"pub.txt", "sub"} | (set() if wrapper else served)
                assert names == want, (wrapper, names)
                # a link inside the root is listed as what it names
                if not wrapper:
                    js = json.loads(fetch(d, "/?format=json").body)
                    types = {e["name"]: (e["type"], e["size"]) for e in js["entries"]}
                    assert types["sub_link"] == ("directory", None), types
                    assert types["rel_in"] == ("file", len(content_of(b"pub.txt"))), types
                # "sub/up_in" climbs out of sub but stays inside the root: listed and
                # served with openat2 (RESOLVE_BENEATH is about the root), refused by
                # the walk that follows no symlink at all
                sub = {html.unescape(t) for h, t, _, _ in rows_of(fetch(d, "/sub/").body)}
                assert ("up_in" in sub) == (not wrapper), sub
                assert (fetch(d, "/sub/up_in").status == 200) == (not wrapper)
            finally:
                s.close()
            d.wait_fds_baseline()


@test
def unreadable_entries_are_left_out():
    # root reads anything: as root the daemon drops to "nobody" (like test_paths.py)
    extra = ON
    if os.geteuid() == 0:
        try:
            import pwd
            pwd.getpwnam("nobody")
        except (ImportError, KeyError):
            raise Skip("running as root and there is no user nobody to drop to")
        extra += 'user = "nobody";\n'
    with Daemon(conf_extra=extra) as d:
        os.chmod(d.root, 0o755)
        put(d.root, "open.txt", content_of(b"open.txt"))
        locked = put(d.root, "locked.txt", b"locked\n")
        os.chmod(locked, 0o000)
        lockeddir = mkdir(d.root, "lockeddir")
        put(d.root, "lockeddir/f.txt", b"f\n")
        os.chmod(lockeddir, 0o000)
        try:
            if os.geteuid() == 0:
                d.wait_log(r"running as nobody")
            r = fetch(d, "/")
            assert r.body == expected_html("/", [(b"open.txt", False,
                                                  len(content_of(b"open.txt")))]), r.body
            assert fetch(d, "/locked.txt").status == 403
            assert fetch(d, "/lockeddir/").status == 403
        finally:
            os.chmod(lockeddir, 0o755)
            os.chmod(locked, 0o644)


@test
def json_has_the_same_entries_and_the_format_is_negotiated():
    with Daemon(conf_extra=ON) as d:
        want = make_hostile_tree(d.root)
        page = fetch(d, "/").body
        rows = [r for r in rows_of(page)]
        for how in ({"headers": {"Accept": "application/json"}}, {"target": "/?format=json"},
                    {"headers": {"Accept": "text/html;q=0.5, application/json"}},
                    {"target": "/?x=1&format=json&format=html"},
                    {"headers": {"Accept": "application/*"}}):
            r = fetch(d, how.get("target", "/"), headers=how.get("headers"))
            assert r.status == 200, (how, r)
            assert r.header("content-type") == "application/json", (how, r.headers)
            assert r.header("vary") == "Accept", r.headers
            assert r.body == expected_json("/", want), (how, r.body.decode())
            doc = json.loads(r.body)
            assert doc["path"] == "/" and doc["truncated"] is False
            assert len(doc["entries"]) == len(rows)
            for e, (href, text, size, mtime) in zip(doc["entries"], rows):
                assert e["name"] + ("/" if e["type"] == "directory" else "") == \
                    html.unescape(text), (e, text)
                assert urllib.parse.unquote(href.rstrip("/")) == e["name"], (e, href)
                assert (e["size"] is None and size == "-") or str(e["size"]) == size
                assert e["mtime"] == mtime == MTIME_ISO
        # HTML: no Accept, browsers, */*, equal weights, or format=html beating Accept
        for how in ({}, {"headers": {"Accept": "text/html,application/xhtml+xml,"
                                                "application/xml;q=0.9,*/*;q=0.8"}},
                    {"headers": {"Accept": "*/*"}},
                    {"headers": {"Accept": "application/json, text/html"}},
                    {"headers": {"Accept": "application/json"}, "target": "/?format=html"},
                    {"headers": {"Accept": "application/json;q=0, */*"}}):
            r = fetch(d, how.get("target", "/"), headers=how.get("headers"))
            assert r.status == 200 and r.body == page, how
            assert r.header("content-type") == "text/html; charset=utf-8"
        # a subdirectory's path is in the document, escaped
        sub = HOSTILE_DIRS[0]
        r = fetch(d, "/%s/?format=json" % esc_uri(sub))
        inner = b"inner #1 <" + sub + b">.txt"
        assert json.loads(r.body)["path"] == "/" + sub.decode() + "/"
        assert r.body == expected_json("/" + sub.decode() + "/",
                                       [(inner, False, len(content_of(inner)))])


@test
def head_etag_304_and_last_modified_come_from_the_directory():
    with Daemon(conf_extra=ON) as d:
        put(d.root, "d/a.txt", b"a\n")
        c = d.conn()
        get = c.request("GET", "/d/")
        head = c.request("HEAD", "/d/")
        assert get.status == head.status == 200 and head.body == b""
        drop = ("date",)
        assert {k: v for k, v in get.headers.items() if k not in drop} == \
            {k: v for k, v in head.headers.items() if k not in drop}, (get.headers, head.headers)
        etag, lm = get.header("etag"), get.header("last-modified")
        st = os.stat(os.path.join(d.root, "d"))
        assert re.fullmatch(r'"d%x-%x\.%x-%x-h2710"' % (
            st.st_ino, st.st_mtime_ns // 10**9, st.st_mtime_ns % 10**9, st.st_size),
            etag), etag
        assert lm == time.strftime("%a, %d %b %Y %H:%M:%S GMT",
                                   time.gmtime(st.st_mtime_ns // 10**9))
        for h in ({"If-None-Match": etag}, {"If-None-Match": '"x", ' + etag},
                  {"If-None-Match": "*"}, {"If-Modified-Since": lm}):
            for method in ("GET", "HEAD"):
                r = c.request(method, "/d/", h)
                assert r.status == 304 and r.body == b"", (h, r)
                assert r.header("etag") == etag and r.header("vary") == "Accept"
                assert r.header("content-type") is None
        assert c.request("GET", "/d/", {"If-None-Match": '"other"'}).status == 200
        # JSON is another representation: another tag, and HTML's does not match it
        js = c.request("GET", "/d/", {"Accept": "application/json"})
        assert js.header("etag") not in (None, etag), js.headers
        assert c.request("GET", "/d/", {"Accept": "application/json",
                                        "If-None-Match": etag}).status == 200
        assert c.request("GET", "/d/", {"Accept": "application/json",
                                        "If-None-Match": js.header("etag")}).status == 304
        # an entry added: the directory changed, so does the tag; the old one is stale
        time.sleep(0.05)
        put(d.root, "d/b.txt", b"b\n")
        r = c.request("GET", "/d/", {"If-None-Match": etag})
        assert r.status == 200 and r.header("etag") != etag and b"b.txt" in r.body, r
        c.close()


# ASan keeps freed memory in a quarantine (256 MiB by default) before reusing it, so the
# daemon's VmRSS would grow with every listing up to that size whatever the daemon holds;
# with a small quarantine VmRSS shows what is really held.
SMALL_QUARANTINE = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:quarantine_size_mb=1"}


@test
def ten_thousand_entries_truncated_at_the_limit_all_listed_by_default_memory_bounded():
    n = 10000
    with Daemon(conf_extra=ON + "autoindex_max_entries = 100;\n", env=SMALL_QUARANTINE) as d:
        big = mkdir(d.root, "big")
        names = [b"f%05d-%s.txt" % (i, b"x" * (i % 7)) for i in range(n)]
        # created in a shuffled order: the page must still be sorted
        for i in range(n):
            put(big, names[(i * 7919) % n].decode(), b"")
        want = order([(nm, False, 0) for nm in names])

        # autoindex_max_entries = 100: the first 100, said to be cut short
        assert fetch(d, "/").status == 200      # the first connection's own cost, not counted
        rss0 = vm_rss_kib(d.proc.pid)
        for _ in range(5):
            r = fetch(d, "/big/")
            assert r.body == expected_html("/big/", want[:100], truncated=True), r.body[-400:]
            assert b"Truncated: only the first 100 entries are listed." in r.body
            js = fetch(d, "/big/?format=json")
            assert js.body == expected_json("/big/", want[:100], truncated=True)
            assert json.loads(js.body)["truncated"] is True
        growth_100 = (vm_rss_kib(d.proc.pid) - rss0) / 1024
        d.wait_log(r'listing of "big" truncated at 100 entries')

        # the default (10000): all of them
        d.edit_conf("autoindex_max_entries = 100;\n", "")
        d.signal(signal.SIGHUP)
        d.wait_log(r"reloaded ")
        rss0 = vm_rss_kib(d.proc.pid)
        t0 = time.time()
        r = fetch(d, "/big/")
        took = time.time() - t0
        assert r.body == expected_html("/big/", want), r.body[-400:]
        assert b"Truncated" not in r.body
        for _ in range(5):
            js = fetch(d, "/big/?format=json")
            assert js.body == expected_json("/big/", want)
            assert fetch(d, "/big/").body == r.body
        doc = json.loads(js.body)
        assert doc["truncated"] is False and len(doc["entries"]) == n
        growth = (vm_rss_kib(d.proc.pid) - rss0) / 1024
        print("   %d entries: %.0f KiB HTML, %.0f KiB JSON, %.2f s per listing; VmRSS +%.1f "
              "MiB over 11 listings of all, +%.1f MiB over 10 of the first 100" % (
                  n, len(r.body) / 1024, len(js.body) / 1024, took, growth, growth_100))
        # what a listing holds: its entries (10000 x about 70 bytes) and its page (1 MB),
        # given back piece by piece as it is sent; measured about 3 MiB
        assert growth < 16, "VmRSS grew by %.1f MiB over listings of %d entries" % (growth, n)
        # at 100 entries the directory's size does not matter
        assert growth_100 < 4, "VmRSS grew by %.1f MiB listing 100 of %d" % (growth_100, n)
        d.wait_fds_baseline()


@test
def listing_is_the_same_in_every_send_mode_with_the_file_cache_on_and_off():
    root = tempfile.mkdtemp(prefix="ktlsd-autoindex-")
    try:
        want = make_hostile_tree(root)
        many = mkdir(root, "many")      # a page of several 64 KiB pieces
        names = [b"%04d-%s.bin" % (i, b"long-name-" * 8) for i in range(1500)]
        for nm in names:
            put(many, nm.decode(), b"x" * (len(nm) % 13))
        pin_mtime(many)
        want = order(want + [(b"many", True, 0)])
        many_want = order([(nm, False, len(nm) % 13) for nm in names])
        big_page = expected_html("/many/", many_want)
        assert len(big_page) > 3 * 65536
        requests = [
            ("GET", "/", {}, expected_html("/", want)),
            ("GET", "/", {"Accept": "application/json"}, expected_json("/", want)),
            ("HEAD", "/", {}, b""),
            ("GET", "/many/", {}, big_page),
            ("GET", "/many/?format=json", {}, expected_json("/many/", many_want)),
        ]
        answers = {}
        for cache_name, cache in CACHES:
            for mode in MODES:
                with Daemon(conf_extra=ON + cache, send_mode=mode, args=["--root", root]) as d:
                    c = d.conn()
                    got = []
                    for rnd in range(2):    # a cache that is on answers round 2 itself
                        for method, target, headers, body in requests:
                            r = c.request(method, target, headers)
                            assert r.status == 200 and r.body == body, (
                                cache_name, mode, target, r, r.body[:300])
                            got.append((r.status, sorted((k, v) for k, v in r.headers.items()
                                                         if k != "date"), r.body))
                        etag = r.header("etag")
                        r = c.request("GET", "/many/?format=json", {"If-None-Match": etag})
                        assert r.status == 304, (cache_name, mode, r)
                        # a file behind a listing on the same connection
                        name = HOSTILE_FILES[0]
                        r = c.request("GET", "/" + esc_uri(name))
                        assert r.body == content_of(name), (cache_name, mode)
                    c.close()
                    answers[(cache_name, mode)] = got
                    if cache_name == "cache-off":   # else the file stays open, cached
                        d.wait_fds_baseline()
        first = next(iter(answers.values()))
        for combo, got in answers.items():
            assert got == first, "%s answers differently" % (combo,)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@test
def access_log_and_stats_count_a_listing_like_any_response():
    with Daemon(conf_extra=ON, stats=True) as d:
        put(d.root, "d/a.txt", b"a\n")
        s0 = d.stats()
        r = fetch(d, "/d/")
        h = fetch(d, "/d/", method="HEAD")
        nm = fetch(d, "/d/", headers={"If-None-Match": r.header("etag")})
        assert (r.status, h.status, nm.status) == (200, 200, 304)
        d.wait_log(r'"GET /d/ HTTP/1\.1" 200 %d ' % len(r.body), access=True)
        d.wait_log(r'"HEAD /d/ HTTP/1\.1" 200 0 ', access=True)
        d.wait_log(r'"GET /d/ HTTP/1\.1" 304 0 ', access=True)
        s1 = wait_until(lambda: (lambda s: s if s["totals"]["requests"] >=
                                 s0["totals"]["requests"] + 3 else None)(d.stats()),
                        what="3 more requests in /stats")
        t0, t1 = s0["totals"], s1["totals"]
        assert t1["requests"] - t0["requests"] == 3, (t0, t1)
        assert t1["bytes_sent"] - t0["bytes_sent"] >= len(r.body), (t0, t1)


@test
def per_listener_setting_and_reload():
    # one listener lists, the other follows the global setting (off); then the reverse
    conf = ('listen = ( "127.0.0.1:0", { address = "127.0.0.1:0"; autoindex = %s; } );\n')
    for glob, own in (("false", "true"), ("true", "false")):
        d = Daemon(start=False, conf_extra="autoindex = %s;\n" % glob)
        try:
            d.edit_conf(d.conf_text.splitlines(True)[0], conf % own)
            d.start()
            plain, grouped = ports_of(d)
            put(d.root, "d/a.txt", b"a\n")
            want = {plain: glob == "true", grouped: own == "true"}
            for port, lists in want.items():
                r = fetch(d, "/d/", port=port)
                assert r.status == (200 if lists else 403), (glob, own, port, r)
            d.stop()
        finally:
            d.cleanup()
    # a reload turns it on for new connections; a connection already open keeps the
    # configuration it started with (as every setting does)
    with Daemon() as d:
        put(d.root, "d/a.txt", b"a\n")
        old = d.conn()
        assert old.request("GET", "/d/").status == 403
        d.edit_conf("log = {", ON + "log = {")
        d.signal(signal.SIGHUP)
        d.wait_log(r"reloaded ")
        r = fetch(d, "/d/")
        assert r.status == 200 and b'<a href="a.txt">a.txt</a>' in r.body, r
        assert old.request("GET", "/d/").status == 403
        old.close()
        # and off again
        d.edit_conf(ON, "autoindex = false;\n")
        d.signal(signal.SIGHUP)
        wait_until(lambda: len(re.findall(r"reloaded ", d.log())) >= 2, what="second reload")
        assert fetch(d, "/d/").status == 403


@test
def demo_lists_a_directory_without_index_html():
    dirpath = tempfile.mkdtemp(prefix="ktlsd-demo-")
    errf = tempfile.TemporaryFile()
    p = None
    try:
        put(dirpath, "hello.txt", b"hello from demo\n")
        put(dirpath, "site/index.html", b"<p>site</p>\n")
        pin_mtime(os.path.join(dirpath, "site"))
        env = dict(os.environ, ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "detect_leaks=1"))
        p = subprocess.Popen([KTLSD, "--demo", dirpath, "--listen", "127.0.0.1:0"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errf,
                             env=env)

        def port():
            errf.seek(0)
            text = errf.read().decode(errors="replace")
            if p.poll() is not None:
                raise AssertionError("ktlsd --demo exited with %s:\n%s" % (p.returncode, text))
            m = re.search(r"bound 127\.0\.0\.1:(\d+)", text)
            return int(m.group(1)) if m and "ready" in text else None
        port = wait_until(port, 10, what="ktlsd --demo to listen")
        out = subprocess.run(["curl", "-sSk", "--max-time", "10", "--tlsv1.3", "-i",
                              "https://127.0.0.1:%d/" % port], capture_output=True, timeout=20)
        head, _, body = out.stdout.partition(b"\r\n\r\n")
        assert out.returncode == 0 and head.startswith(b"HTTP/1.1 200"), out
        assert body == expected_html("/", [(b"site", True, 0), (b"hello.txt", False, 16)]), body
        out = subprocess.run(["curl", "-sSk", "--max-time", "10", "--tlsv1.3",
                              "https://127.0.0.1:%d/site/" % port], capture_output=True,
                             timeout=20)
        assert out.stdout == b"<p>site</p>\n", out      # an index still wins
        p.send_signal(signal.SIGTERM)
        assert p.wait(15) == 0
        errf.seek(0)
        text = errf.read().decode(errors="replace")
        assert not re.search(r"(Sanitizer|runtime error:|\[(alert|crit)\])", text), text
        p = None
    finally:
        if p is not None:
            p.kill()
            p.wait()
        shutil.rmtree(dirpath, ignore_errors=True)


if __name__ == "__main__":
    run_tests()
