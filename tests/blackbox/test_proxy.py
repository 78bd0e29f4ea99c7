"""Behind an L4 balancer: listeners with proxy_protocol read a PROXY header (v1 text or v2
binary) before the TLS handshake, which stays end-to-end on ktlsd; the client the header
names is what the access log, the error log and /stats show, the balancer is kept as
"via".

Every header here is written by hand and sent on a real socket, then Python's ssl wraps
the same socket: a real TLS request over it must be answered 200. Broken headers, an
oversized v2 length, a header that never ends and a source outside proxy_trusted are
closed and counted (/stats totals, /metrics); a listener without proxy_protocol is not
affected. With Debian's haproxy installed, haproxy in TCP mode with send-proxy-v2 spreads
connections over two ktlsd instances (skipped without it).

Addresses inside headers and trusted blocks are documentation ranges (192.0.2.0/24,
203.0.113.0/24, 2001:db8::/32): they are data here, never connected to. All traffic is
on loopback.
"""
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ktlsd_test import (KTLSD, tcp_closed_within, Daemon, Skip, client_context, free_port, make_cert, run_tests,  # noqa: E402
                        test, wait_until)

TRUST_LOCAL = '[ "127.0.0.0/8", "::1/128" ]'
V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"
SLACK = 1.5     # how late after its timeout a close may come (timer + ASan + CI jitter)
EARLY = 0.15


def proxy_listener(address="127.0.0.1:0", trusted=TRUST_LOCAL, extra=""):
    return '{ address = "%s"; proxy_protocol = true; proxy_trusted = %s; %s }' % (
        address, trusted, extra)


def v1(proto, src=None, dst=None, sport=None, dport=None):
    if proto == "UNKNOWN":
        return b"PROXY UNKNOWN\r\n"
    return ("PROXY %s %s %s %d %d\r\n" % (proto, src, dst, sport, dport)).encode()


def v2(command=1, family=0x11, src=None, dst=None, sport=0, dport=0, tlvs=b"", block=None):
    """A v2 header; block (bytes) replaces the address block built from src/dst."""
    if block is None:
        if family == 0x11:
            block = socket.inet_pton(socket.AF_INET, src) + socket.inet_pton(socket.AF_INET, dst)
        elif family == 0x21:
            block = (socket.inet_pton(socket.AF_INET6, src) +
                     socket.inet_pton(socket.AF_INET6, dst))
        else:
            block = b""
        if block:
            block += struct.pack("!HH", sport, dport)
    body = block + tlvs
    return V2_SIG + bytes([0x20 | command, family]) + struct.pack("!H", len(body)) + body


def tlv(kind, value):
    return bytes([kind]) + struct.pack("!H", len(value)) + value


def connect(port, family=socket.AF_INET, timeout=10):
    host = "127.0.0.1" if family == socket.AF_INET else "::1"
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.connect((host, port))
    return s


def read_response(tls):
    """One response of a Connection: close request: (status, body)."""
    data = b""
    while True:
        try:
            chunk = tls.recv(65536)
        except ssl.SSLZeroReturnError:
            break
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    m = re.match(rb"HTTP/1\.1 (\d{3})", head)
    assert m, data[:200]
    return int(m.group(1)), body


def request_after_header(port, header, path="/a.txt", family=socket.AF_INET, chunks=None,
                         keep=False):
    """Send header (in one write, or split into pieces of `chunks` bytes with pauses),
    then TLS over the same socket and GET path. Returns (status, body, the client's local
    "addr:port", the TLS socket if keep else None)."""
    s = connect(port, family)
    local = s.getsockname()
    if chunks:
        for i in range(0, len(header), chunks):
            s.sendall(header[i:i + chunks])
            time.sleep(0.005)
    else:
        s.sendall(header)
    tls = client_context().wrap_socket(s, server_hostname="localhost")
    tls.sendall(("GET %s HTTP/1.1\r\nHost: localhost\r\n%s\r\n" % (
        path, "" if keep else "Connection: close\r\n")).encode())
    if keep:      # read exactly one response, the connection stays open
        data = b""
        while b"\r\n\r\n" not in data:
            data += tls.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        n = int(re.search(rb"(?im)^content-length: *(\d+)", head).group(1))
        while len(body) < n:
            body += tls.recv(65536)
        return int(data[9:12]), body, fmt_addr(local), tls
    status, body = read_response(tls)
    tls.close()
    return status, body, fmt_addr(local), None


def request_with_hello_in_the_same_write(port, header, path="/a.txt"):
    """The header and the ClientHello in one write, as a balancer sends them: whatever
    the server reads past the header would break the handshake."""
    s = connect(port)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = client_context().wrap_bio(inc, out, server_hostname="localhost")
    prefix = header
    deadline = time.time() + 10     # every loop here is bounded
    try:
        while True:
            assert time.time() < deadline, "handshake not done in 10 s"
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                pass
            s.sendall(prefix + out.read())
            prefix = b""
            chunk = s.recv(65536)
            assert chunk, "closed during the handshake"
            inc.write(chunk)
        obj.write(("GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n" %
                   path).encode())
        s.sendall(out.read())
        data = b""
        while time.time() < deadline:
            try:
                chunk = obj.read(65536)
                if not chunk:
                    break
                data += chunk
                continue
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLZeroReturnError:
                break
            chunk = s.recv(65536)
            if not chunk:
                break
            inc.write(chunk)
        return int(data[9:12]), data.partition(b"\r\n\r\n")[2]
    finally:
        s.close()


def fmt_addr(sockname):
    host, port = sockname[0], sockname[1]
    return ("[%s]:%d" if ":" in host else "%s:%d") % (host, port)


def send_and_expect_close(port, data, within=2.0, family=socket.AF_INET):
    s = connect(port, family)
    try:
        try:
            s.sendall(data)
        except (ConnectionResetError, BrokenPipeError):
            return
        elapsed = tcp_closed_within(s, within)
        assert elapsed is not None, "%r: still open after %.1fs" % (data[:40], within)
    finally:
        s.close()


def access_line(d, path):
    wait_until(lambda: path + " " in d.access_log(), what="the access log line of " + path)
    return [x for x in d.access_log().splitlines() if path + " " in x][-1]


def totals(d):
    return d.stats()["totals"]


def metric(d, name):
    text = d.stats("/metrics", raw=True).decode()
    m = re.search(r"^%s (\d+)$" % re.escape(name), text, re.M)
    assert m, "%s not in /metrics" % name
    return int(m.group(1))


@test
def hand_written_v1_and_v2_headers_then_tls_show_the_client_everywhere():
    files = {"a.txt": "proxied\n"}
    with Daemon(listen=(proxy_listener(), proxy_listener("[::1]:0")), files=files,
                stats=True) as d:
        p4, p6 = d.ports
        cases = [
            # (name, header, family to connect with, client shown, via shown?)
            ("v1-tcp4", v1("TCP4", "203.0.113.7", "192.0.2.1", 40001, 443), socket.AF_INET,
             "203.0.113.7:40001"),
            ("v1-tcp6", v1("TCP6", "2001:db8::7", "2001:db8::1", 40002, 443), socket.AF_INET,
             "[2001:db8::7]:40002"),
            ("v1-unknown", v1("UNKNOWN"), socket.AF_INET, None),
            ("v2-tcp4", v2(src="203.0.113.8", dst="192.0.2.1", sport=40003, dport=443),
             socket.AF_INET, "203.0.113.8:40003"),
            ("v2-tcp6", v2(family=0x21, src="2001:db8::8", dst="2001:db8::1", sport=40004,
                           dport=443), socket.AF_INET, "[2001:db8::8]:40004"),
            ("v2-tlvs", v2(src="203.0.113.9", dst="192.0.2.1", sport=40005, dport=443,
                           tlvs=tlv(0x01, b"http/1.1") + tlv(0x02, b"localhost") +
                           tlv(0x05, b"unique-id-0123456789") + tlv(0x04, b"\0" * 40)),
             socket.AF_INET, "203.0.113.9:40005"),
            ("v2-local", v2(command=0, family=0x00), socket.AF_INET, None),
            ("v2-local-with-block", v2(command=0, family=0x11, src="203.0.113.66",
                                       dst="192.0.2.1", sport=1, dport=2), socket.AF_INET,
             None),
            ("v2-unspec", v2(family=0x00, block=b"\xff" * 4), socket.AF_INET, None),
            ("v1-tcp4-over-ipv6", v1("TCP4", "203.0.113.10", "192.0.2.1", 40006, 443),
             socket.AF_INET6, "203.0.113.10:40006"),
            ("v2-tcp6-over-ipv6", v2(family=0x21, src="2001:db8::10", dst="2001:db8::1",
                                     sport=40007, dport=443), socket.AF_INET6,
             "[2001:db8::10]:40007"),
        ]
        for name, header, family, client in cases:
            path = "/a.txt?case=" + name
            status, body, local, _ = request_after_header(
                p4 if family == socket.AF_INET else p6, header, path, family)
            assert (status, body) == (200, b"proxied\n"), (name, status, body)
            line = access_line(d, path)
            shown = client if client else local
            addr = shown.rsplit(":", 1)[0].strip("[]")
            assert line.startswith(addr + " - - ["), (name, line)
            if client:
                assert line.endswith(" peer=%s via=%s" % (client, local)), (name, line)
            else:      # the socket's own peer; no via
                assert " peer=" not in line and " via=" not in line, (name, line)
        # /stats/recent: the client as peer, the balancer (this socket) as via
        recent = {r["peer"]: r for r in d.recent()}
        for name, header, family, client in cases:
            if client:
                assert client in recent, (name, sorted(recent))
                assert recent[client]["via"].startswith("[::1]:" if family == socket.AF_INET6
                                                        else "127.0.0.1:"), recent[client]
        assert all(r["via"] is None for r in recent.values() if r["peer"].startswith(
            ("127.0.0.1:", "[::1]:"))), recent
        # a live connection: /stats shows its peer and via, the error log the mapping
        status, _, local, tls = request_after_header(
            p4, v2(src="203.0.113.11", dst="192.0.2.1", sport=40008, dport=443), keep=True)
        try:
            assert status == 200
            live = [c for c in d.stats()["connections"] if c["peer"] == "203.0.113.11:40008"]
            assert len(live) == 1 and live[0]["via"] == local, d.stats()["connections"]
        finally:
            tls.close()
        d.wait_log(r"conn \d+: 203\.0\.113\.11:40008 via %s \(PROXY v2\)" % re.escape(local))
        d.wait_log(r"conn \d+: \[2001:db8::7\]:40002: TLSv1\.3 ")
        t = totals(d)
        assert t["proxy_headers"] == {"proxy": len(cases) - 1, "local": 2}, t
        assert set(t["proxy_rejected"].values()) == {0}, t
        assert t["handshakes_failed"] == 0, t
        assert metric(d, 'ktlsd_proxy_headers_total{command="proxy"}') == len(cases) - 1
        assert metric(d, 'ktlsd_proxy_headers_total{command="local"}') == 2
        listeners = d.stats()["listeners"]
        assert listeners[0]["proxy_protocol"] is True, listeners
        assert listeners[0]["proxy_trusted"] == ["127.0.0.0/8", "::1/128"], listeners


@test
def local_health_check_closing_before_tls_is_no_failed_handshake():
    """A balancer's health check: LOCAL header, then close. Counted as LOCAL, never as a
    failed handshake (else every check interval adds one); a LOCAL connection that does
    send garbage instead of TLS still is one."""
    with Daemon(listen=(proxy_listener(),), stats=True) as d:
        port = d.ports[0]
        for _ in range(5):
            s = connect(port)
            s.sendall(v2(command=0, family=0x00))
            s.close()
        wait_until(lambda: totals(d)["proxy_headers"]["local"] == 5, what="5 LOCAL headers counted")
        d.wait_fds_baseline()
        t = totals(d)
        assert t["handshakes_failed"] == 0 and set(t["proxy_rejected"].values()) == {0}, t
        assert "handshake failed" not in d.log()
        send_and_expect_close(port, v2(command=0, family=0x00) + b"\x00" * 64)
        wait_until(lambda: totals(d)["handshakes_failed"] == 1, what="a failed handshake")


@test
def header_and_client_hello_in_one_write_or_split_into_many_small_ones():
    with Daemon(listen=(proxy_listener(),), files={"a.txt": "a\n"}) as d:
        port = d.ports[0]
        # a balancer's usual segment: header and ClientHello together; not one byte of
        # the ClientHello may be read with the header
        for name, header in (("v1", v1("TCP4", "203.0.113.20", "192.0.2.1", 40020, 443)),
                             ("v2", v2(src="203.0.113.21", dst="192.0.2.1", sport=40021,
                                       dport=443, tlvs=tlv(0x01, b"http/1.1")))):
            status, body = request_with_hello_in_the_same_write(port, header,
                                                                "/a.txt?one-write-" + name)
            assert (status, body) == (200, b"a\n"), (name, status, body)
        assert access_line(d, "/a.txt?one-write-v1").startswith("203.0.113.20 ")
        assert access_line(d, "/a.txt?one-write-v2").startswith("203.0.113.21 ")
        # one byte per write (and a few bytes per write), with pauses
        for chunks in (1, 3):
            for name, header in (("v1", v1("TCP6", "2001:db8::22", "2001:db8::1", 40022, 443)),
                                 ("v2", v2(family=0x21, src="2001:db8::23", dst="2001:db8::1",
                                           sport=40023, dport=443,
                                           tlvs=tlv(0x04, b"\0" * 20)))):
                path = "/a.txt?split-%d-%s" % (chunks, name)
                status, body, _, _ = request_after_header(port, header, path, chunks=chunks)
                assert (status, body) == (200, b"a\n"), (path, status, body)
        assert access_line(d, "/a.txt?split-1-v1").startswith("2001:db8::22 ")
        assert access_line(d, "/a.txt?split-1-v2").startswith("2001:db8::23 ")
        d.wait_fds_baseline()


@test
def malformed_and_oversized_headers_are_closed_counted_and_logged_rate_limited():
    with Daemon(listen=(proxy_listener(),), files={"a.txt": "a\n"}, stats=True) as d:
        port = d.ports[0]
        hello = client_hello()
        malformed = [
            hello,                                              # TLS without a header
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            b"PROXY TCP4 203.0.113.7 192.0.2.1 5555\r\n",        # a field missing
            b"PROXY TCP5 203.0.113.7 192.0.2.1 5555 443\r\n",
            b"PROXY TCP4 203.0.113.7 192.0.2.1 5555 443\n",      # bare LF
            b"PROXY TCP4 2001:db8::7 192.0.2.1 5555 443\r\n",
            b"PROXY TCP4 203.0.113.7 192.0.2.1 65536 443\r\n",
            V2_SIG + b"\x31\x11\x00\x0c" + b"\0" * 12,           # version 3
            V2_SIG + b"\x23\x11\x00\x0c" + b"\0" * 12,           # command 3
            V2_SIG + b"\x21\x51\x00\x0c" + b"\0" * 12,           # family 5
            V2_SIG + b"\x21\x12\x00\x0c" + b"\0" * 12,           # UDP
            V2_SIG + b"\x21\x21\x00\x0c" + b"\0" * 12,           # TCP6 in 12 bytes
            V2_SIG + b"\x21\x11\x00\x0e" + b"\0" * 12 + b"\x01\x00",   # TLV cut
            b"\r\n\r\n\x00\n\nQUIT\n\x21\x11\x00\x0c" + b"\0" * 12,    # signature
        ]
        oversized = [
            V2_SIG + b"\x21\x11\xff\xff" + b"\0" * 12,           # length 65535
            V2_SIG + b"\x21\x11\x04\x01",                        # 1025, the fixed part only
            b"PROXY UNKNOWN " + b"x" * 120,                      # v1 without CRLF in 107
        ]
        t0 = time.time()
        for data in malformed + oversized:
            send_and_expect_close(port, data)
        took = time.time() - t0
        wait_until(lambda: totals(d)["proxy_rejected"]["malformed"] == len(malformed) and
                   totals(d)["proxy_rejected"]["oversized"] == len(oversized),
                   what="the rejections to be counted (%s)" % totals(d)["proxy_rejected"])
        assert metric(d, 'ktlsd_proxy_rejected_total{reason="malformed"}') == len(malformed)
        assert metric(d, 'ktlsd_proxy_rejected_total{reason="oversized"}') == len(oversized)
        assert totals(d)["proxy_headers"] == {"proxy": 0, "local": 0}
        # logged with the reason, but at most once a second per reason
        log = d.log()
        lines = re.findall(r"\[warn\] \d+: conn \d+: 127\.0\.0\.1:\d+: bad PROXY header: .*",
                           log)
        assert lines, log[-3000:]
        assert len(lines) <= 2 * (int(took) + 2), (took, lines)
        assert len(lines) < len(malformed) + len(oversized), lines
        # the daemon is fine, and a good header still works
        status, body, _, _ = request_after_header(port, v1("TCP4", "203.0.113.30",
                                                           "192.0.2.1", 1, 2))
        assert (status, body) == (200, b"a\n")
        d.wait_fds_baseline()


@test
def header_that_never_finishes_is_closed_at_the_handshake_timeout():
    T = {"handshake": 1, "header": 5, "keepalive": 5, "send_idle": 5, "shutdown": 5}
    with Daemon(listen=(proxy_listener(),), timeouts=T, files={"a.txt": "a\n"},
                stats=True) as d:
        port = d.ports[0]
        for what, data in (("nothing sent", b""),
                           ("half a v1 line", b"PROXY TCP4 203.0.113.7 19"),
                           ("v2 announcing 12 bytes, 8 sent", V2_SIG + b"\x21\x11\x00\x0c" +
                            b"\0" * 8)):
            s = connect(port)
            try:
                if data:
                    s.sendall(data)
                elapsed = tcp_closed_within(s, T["handshake"] + SLACK + 1)
                assert elapsed is not None, "%s: not closed" % what
                assert T["handshake"] - EARLY <= elapsed <= T["handshake"] + SLACK, (
                    what, elapsed)
            finally:
                s.close()
        t = totals(d)
        assert t["proxy_rejected"]["timeout"] == 3 and t["timeouts"] == 3, t
        d.wait_log(r"conn \d+: 127\.0\.0\.1:\d+: PROXY header timeout \(25 bytes of it\)")
        # a client that closes before its header ends is counted apart
        s = connect(port)
        s.sendall(b"PROXY TCP4 ")
        s.close()
        wait_until(lambda: totals(d)["proxy_rejected"]["closed"] == 1, what="closed counted")
        assert metric(d, 'ktlsd_proxy_rejected_total{reason="timeout"}') == 3
        d.wait_fds_baseline()


@test
def untrusted_source_is_closed_at_once_counted_and_logged_once_a_second():
    listen = (proxy_listener(trusted='[ "192.0.2.0/24", "2001:db8::/32" ]'),)
    with Daemon(listen=listen, files={"a.txt": "a\n"}, stats=True) as d:
        port = d.ports[0]
        n = 30
        t0 = time.time()
        for i in range(n):
            s = connect(port)
            try:
                if i % 2:       # with a perfect header: the source decides, not the header
                    try:
                        s.sendall(v1("TCP4", "192.0.2.5", "192.0.2.1", 1, 2))
                    except (ConnectionResetError, BrokenPipeError):
                        continue
                elapsed = tcp_closed_within(s, 2)
                assert elapsed is not None and elapsed < 1, "connection %d: %s" % (i, elapsed)
            finally:
                s.close()
        took = time.time() - t0
        wait_until(lambda: totals(d)["proxy_rejected"]["untrusted"] == n,
                   what="%d untrusted counted (%s)" % (n, totals(d)["proxy_rejected"]))
        assert metric(d, 'ktlsd_proxy_rejected_total{reason="untrusted"}') == n
        assert totals(d)["proxy_headers"] == {"proxy": 0, "local": 0}
        log = d.log()
        lines = re.findall(r"127\.0\.0\.1:\d+: not in proxy_trusted of the PROXY listener "
                           r"127\.0\.0\.1:0; closed.*", log)
        assert 1 <= len(lines) <= int(took) + 2, (took, lines)
        assert len(lines) < n
        # no connection was made for them: nothing in /stats/recent, no access log line
        assert d.recent() == [] and d.access_log() == ""
        d.wait_fds_baseline()


@test
def a_listener_without_proxy_protocol_is_not_affected():
    with Daemon(listen=(proxy_listener(), "127.0.0.1:0"), files={"a.txt": "a\n"},
                stats=True) as d:
        proxy_port, plain_port = d.ports
        # a PROXY header on the plain listener is just a failed handshake
        for header in (v1("TCP4", "203.0.113.40", "192.0.2.1", 1, 2),
                       v2(src="203.0.113.41", dst="192.0.2.1", sport=1, dport=2)):
            s = connect(plain_port)
            try:
                s.sendall(header)
                try:
                    client_context().wrap_socket(s, server_hostname="localhost")
                    raise AssertionError("handshake after a PROXY header on a plain listener")
                except (ssl.SSLError, ConnectionResetError, BrokenPipeError, OSError):
                    pass
            finally:
                s.close()
        wait_until(lambda: totals(d)["handshakes_failed"] == 2, what="2 failed handshakes")
        assert totals(d)["proxy_headers"] == {"proxy": 0, "local": 0}
        assert set(totals(d)["proxy_rejected"].values()) == {0}
        # plain TLS there: served, the socket's peer, no via
        s = connect(plain_port)
        local = fmt_addr(s.getsockname())
        tls = client_context().wrap_socket(s, server_hostname="localhost")
        tls.sendall(b"GET /a.txt?plain HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert read_response(tls) == (200, b"a\n")
        tls.close()
        line = access_line(d, "/a.txt?plain")
        assert line.startswith("127.0.0.1 - - [") and " via=" not in line, line
        rec = [r for r in d.recent() if r["peer"] == local]
        assert rec and rec[0]["via"] is None, d.recent()
        assert d.stats()["listeners"][1]["proxy_protocol"] is False
        # while the proxy listener keeps wanting its header
        send_and_expect_close(proxy_port, client_hello())
        status, _, _, _ = request_after_header(proxy_port, v1("UNKNOWN"))
        assert status == 200


@test
def reload_applies_proxy_settings_to_new_connections_and_restarts_for_none():
    trusting_local = proxy_listener()
    with Daemon(listen=(trusting_local,), files={"a.txt": "a\n"}, stats=True) as d:
        port = d.ports[0]
        assert request_after_header(port, v1("UNKNOWN"))[0] == 200
        # keep a connection that started under the old settings
        status, _, _, kept = request_after_header(
            port, v1("TCP4", "203.0.113.50", "192.0.2.1", 1, 2), keep=True)
        assert status == 200
        try:
            d.edit_conf(trusting_local, proxy_listener(trusted='[ "192.0.2.0/24" ]'))
            d.signal(signal.SIGHUP)
            d.wait_log(r"reloaded .*ktlsd\.conf")
            assert not re.search(r"reload: changed .*proxy", d.log()), d.log()[-2000:]
            send_and_expect_close(port, v1("UNKNOWN"), within=1)
            wait_until(lambda: totals(d)["proxy_rejected"]["untrusted"] == 1,
                       what="untrusted after the reload")
            # the kept connection goes on
            kept.sendall(b"GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            status, body = read_response(kept)
            assert (status, body) == (200, b"a\n")
        finally:
            kept.close()
        # proxy_protocol off: plain TLS on the same socket
        d.edit_conf(proxy_listener(trusted='[ "192.0.2.0/24" ]'), '{ address = "127.0.0.1:0"; }')
        d.signal(signal.SIGHUP)
        wait_until(lambda: len(re.findall(r"reloaded .*ktlsd\.conf", d.log())) == 2,
                   what="the second reload")
        assert d.get("/a.txt", timeout=5) is not None
        assert not re.search(r"reload: changed", d.log()), d.log()[-2000:]


CONF_BASE = """document_root = "%(root)s";
tls = { certificate = "%(crt)s"; private_key = "%(key)s"; };
log = { error = "stderr"; };
""" + ("run_as_root = true;\n" if os.geteuid() == 0 else "")


@test
def config_errors_name_the_file_and_line():
    tmp = tempfile.mkdtemp(prefix="ktlsd-proxy-conf-")
    try:
        crt, key = make_cert(tmp)
        root = os.path.join(tmp, "root")
        os.mkdir(root)
        base = CONF_BASE % {"root": root, "crt": crt, "key": key}
        good = [
            'listen = ( { address = "127.0.0.1:0"; proxy_protocol = true;\n'
            '  proxy_trusted = [ "127.0.0.0/8", "::1/128", "192.0.2.7" ]; } );',
            'listen = ( { address = "[::1]:0"; proxy_protocol = true;\n'
            '  proxy_trusted = ( "0.0.0.0/0", "::/0" ); }, "127.0.0.1:0" );',
            'listen = ( { address = "127.0.0.1:0"; proxy_protocol = false; } );',
        ]
        bad = [  # (listen text, line of the error, what it must say)
            ('listen = ( { address = "127.0.0.1:0";\n  proxy_protocol = true; } );', 2,
             r"proxy_protocol = true needs proxy_trusted"),
            ('listen = ( { address = "127.0.0.1:0";\n  proxy_trusted = [ "10.0.0.0/8" ]; } );',
             2, r"proxy_trusted needs proxy_protocol = true"),
            ('listen = ( { address = "127.0.0.1:0"; proxy_protocol = false;\n'
             '  proxy_trusted = [ "10.0.0.0/8" ]; } );', 2,
             r"proxy_trusted needs proxy_protocol = true"),
            ('listen = ( { address = "127.0.0.1:0"; proxy_protocol = true;\n'
             '  proxy_trusted = [ "10.0.0.1/8" ]; } );', 2,
             r'"10\.0\.0\.1/8": address has bits set beyond the prefix length'),
            ('listen = ( { address = "127.0.0.1:0"; proxy_protocol = true;\n'
             '  proxy_trusted = ( "10.0.0.0/8",\n    "::1/129" ); } );', 3,
             r'"::1/129": prefix length over 128'),
            ('listen = ( { address = "127.0.0.1:0"; proxy_protocol = true;\n'
             '  proxy_trusted = [ "10.0.0.0/33" ]; } );', 2, r"prefix length over 32"),
            ('listen = ( { address = "127.0.0.1:0"; proxy_protocol = true;\n'
             '  proxy_trusted = [ "lb.example/8" ]; } );', 2, r"not an IPv4 or IPv6 address"),
            ('listen = ( { address = "127.0.0.1:0"; proxy_protocol = true;\n'
             '  proxy_trusted = [ ]; } );', 2, r"give 1 to 64"),
            ('listen = ( { address = "127.0.0.1:0"; proxy_protocol = true;\n'
             '  proxy_trusted = "10.0.0.0/8"; } );', 2, r"must be a list"),
            ('listen = ( { address = "127.0.0.1:0"; proxy_protocol = true;\n'
             '  proxy_trusted = ( "10.0.0.0/8", 7 ); } );', 2, r"element 2 must be a string"),
            ('listen = ( { address = "127.0.0.1:0";\n  proxy_protocol = "yes";\n'
             '  proxy_trusted = [ "10.0.0.0/8" ]; } );', 2, r"proxy_protocol: must be true"),
            ('listen = ( { address = "127.0.0.1:0";\n  proxy_protocl = true; } );', 2,
             r'unknown setting "proxy_protocl"'),
        ]
        path = os.path.join(tmp, "ktlsd.conf")
        env = dict(os.environ, ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "detect_leaks=1"))
        for text in good:
            with open(path, "w") as f:
                f.write(text + "\n" + base)
            p = subprocess.run([KTLSD, "-t", "-c", path], capture_output=True, text=True,
                               env=env, timeout=30)
            assert p.returncode == 0, (text, p.stdout, p.stderr)
        for text, line, rx in bad:
            with open(path, "w") as f:
                f.write(text + "\n" + base)
            p = subprocess.run([KTLSD, "-t", "-c", path], capture_output=True, text=True,
                               env=env, timeout=30)
            out = p.stdout + p.stderr
            assert p.returncode == 1, (text, out)
            assert re.search(r"%s:%d: .*%s" % (re.escape(path), line, rx), out), (text, out)
            assert "Sanitizer" not in out, out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def client_hello():
    """The bytes of a real TLS 1.3 ClientHello, made with a memory BIO."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = client_context().wrap_bio(inc, out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def listening(port):
    """Is a TCP socket listening on 127.0.0.1:port (from /proc/net/tcp, state 0A)?"""
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and local == "0100007F:%04X" % port:
                return True
    return False


@test
def haproxy_send_proxy_v2_spreads_over_two_instances_logs_show_the_client():
    haproxy = shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if os.access("/usr/sbin/haproxy", os.X_OK) else None)
    if haproxy is None:
        raise Skip("haproxy is not installed (Debian: apt-get install haproxy)")
    files = {"a.txt": "balanced\n"}
    with Daemon(listen=(proxy_listener(),), files=files, stats=True) as d1, \
            Daemon(listen=(proxy_listener(),), files=files, stats=True) as d2:
        front = free_port()
        cfg = os.path.join(d1.tmp, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write("""global
    maxconn 100
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend tls_in
    bind 127.0.0.1:%d
    default_backend ktlsd
backend ktlsd
    balance roundrobin
    server k1 127.0.0.1:%d send-proxy-v2 check inter 200ms
    server k2 127.0.0.1:%d send-proxy-v2 check inter 200ms
""" % (front, d1.ports[0], d2.ports[0]))
        check = subprocess.run([haproxy, "-c", "-f", cfg], capture_output=True, text=True,
                               timeout=30)
        assert check.returncode == 0, check.stdout + check.stderr
        log_path = os.path.join(d1.tmp, "haproxy.log")
        with open(log_path, "wb") as log:
            hp = subprocess.Popen([haproxy, "-db", "-f", cfg], stdin=subprocess.DEVNULL,
                                  stdout=log, stderr=log)
        try:
            # a probe connection would be forwarded (and counted): look, don't touch
            wait_until(lambda: listening(front), 10, what="haproxy to listen")
            clients = []
            for i in range(8):
                s = connect(front)
                local = fmt_addr(s.getsockname())
                tls = client_context().wrap_socket(s, server_hostname="localhost")
                path = "/a.txt?via-haproxy-%d" % i
                tls.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" %
                             path).encode())
                assert read_response(tls) == (200, b"balanced\n"), i
                tls.close()
                clients.append((path, local))
            for d in (d1, d2):
                wait_until(lambda d=d: d.access_log().count("via-haproxy") >= 4,
                           what="4 requests on each instance (round robin)")
            for path, local in clients:
                d = d1 if path + " " in d1.access_log() else d2
                line = access_line(d, path)
                # the client's own address and source port, through haproxy
                assert line.startswith("127.0.0.1 - - ["), line
                assert re.search(r" peer=%s via=127\.0\.0\.1:\d+$" % re.escape(local), line), (
                    local, line)
                assert not line.endswith("via=" + local), line
            # its health checks (LOCAL headers, then a close) are no failed handshakes
            for d in (d1, d2):
                wait_until(lambda d=d: totals(d)["proxy_headers"]["local"] >= 2, what="health checks")
                t = totals(d)
                assert t["proxy_headers"]["proxy"] == 4, t
                assert t["handshakes_failed"] == 0 and t["proxy_rejected"]["closed"] == 0, t
        finally:
            hp.terminate()
            try:
                hp.wait(10)
            except subprocess.TimeoutExpired:
                hp.kill()
                hp.wait()


if __name__ == "__main__":
    run_tests()
