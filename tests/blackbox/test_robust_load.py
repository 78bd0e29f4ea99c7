"""Robustness under connection floods: many slow or idle clients, and running out of file
descriptors. Each flood is bounded so that the file stays well under a minute under ASan.

Hostile-input checklist covered here (tests/blackbox/test_timeouts.py has the single-client
versions of 3 and 23):
  3.  1000 slowloris connections (partial headers, one more byte every ~1.5 s) -> each is
      closed at the header timeout, counted from the end of its own handshake, although
      bytes keep coming; a normal GET is answered quickly meanwhile.
  22. Out of file descriptors (the daemon's RLIMIT_NOFILE lowered to 64): connections
      beyond what the daemon can hold are closed at once (or wait in the backlog); the
      connections it holds keep being served, files included (it keeps a reserve of fds);
      no busy loop; it recovers when fds free up.
  23. Idle TCP connections that never start a handshake (up to 10000, fewer if the fd
      limits here do not allow it) -> all closed at the handshake timeout; a normal GET is
      answered meanwhile; fds back to baseline.
Also: a client that keeps sending after an error response is cut after the linger time.
"""
import errno
import os
import resource
import select
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ktlsd_test import cpu_seconds, Daemon, Skip, run_tests, test, wait_until  # noqa: E402

EARLY = 0.15     # timer granularity: how early a close may come


def raise_nofile(want):
    """Raise this process's soft RLIMIT_NOFILE towards want (the daemon, started later,
    inherits it). Returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY:
        want = min(want, hard)
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def timed_get(d, path, body):
    t0 = time.time()
    r = d.get(path, timeout=10)
    assert r.status == 200 and r.body == body, r
    return time.time() - t0


@test
def thousand_slowloris_connections_cut_at_header_timeout_normal_get_served():
    n = 1000
    header = 4.0
    slack = 2.5          # late margin: the poll loop below runs between handshakes
    if raise_nofile(n + 200) < n + 100:
        raise Skip("RLIMIT_NOFILE too low for %d connections" % n)
    with Daemon(timeouts={"header": header, "handshake": 10, "keepalive": 10},
                files={"a.txt": "a\n"}) as d:
        conns = {}       # fileno -> [ssl socket, time its handshake ended, last byte sent]
        closed = []      # seconds from each one's handshake to the server's close
        latencies = []
        t_start = time.time()

        def poll_once():
            now = time.time()
            ready, _, _ = select.select(list(conns), [], [], 0) if conns else ([], [], [])
            for fd in ready:
                s, t_hs, _ = conns[fd]
                try:
                    data = s.recv(4096)
                except ssl.SSLWantReadError:
                    continue      # a post-handshake message (session ticket), no data
                except (OSError, ssl.SSLError):
                    data = b""
                assert not data, "a slowloris client got a response: %r" % data[:80]
                closed.append(now - t_hs)
                s.close()
                del conns[fd]
            for fd, entry in list(conns.items()):   # the next byte of the never-ending head
                if now - entry[2] >= 1.5:
                    try:
                        entry[0].send(b"s")
                        entry[2] = now
                    except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                        pass
                    except OSError:
                        pass      # closed under us: the next select() reports it

        try:
            for i in range(n):
                c = d.conn(timeout=10)
                c.send(b"GET /a.txt HTTP/1.1\r\nHost: x\r\nX-Slow-%d: " % i)
                s = c.sock
                s.setblocking(False)
                now = time.time()
                conns[s.fileno()] = [s, now, now]
                if i % 25 == 0:
                    poll_once()
                if i % 250 == 125:    # a normal client, while hundreds hang
                    latencies.append(timed_get(d, "/a.txt", b"a\n"))
            t_opened = time.time()
            latencies.append(timed_get(d, "/a.txt", b"a\n"))
            while conns and time.time() < t_opened + header + slack + 2:
                poll_once()
                time.sleep(0.05)
            assert not conns, "%d slowloris connections still open %.1fs after the last " \
                "one started (header timeout %.1fs)" % (len(conns), time.time() - t_opened,
                                                        header)
        finally:
            for s, _, _ in conns.values():
                s.close()
        early = [t for t in closed if t < header - EARLY]
        late = [t for t in closed if t > header + slack]
        assert len(closed) == n, (len(closed), n)
        assert not early, "%d closed before the header timeout: %s" % (len(early), early[:5])
        assert not late, "%d closed late: %s" % (len(late), sorted(late)[-5:])
        assert max(latencies) < 1.5, "normal GET took %s s during the flood" % latencies
        d.wait_fds_baseline()
        d.wait_log(r"read_request timeout")
        assert timed_get(d, "/a.txt", b"a\n") < 1.5
        print("   %d slowloris connections: opened in %.1fs, closed %.2f-%.2fs after their "
              "handshake; GET latency max %.3fs" % (n, t_opened - t_start, min(closed), max(closed),
                                                    max(latencies)))


@test
def ten_thousand_idle_tcp_connections_closed_at_handshake_timeout():
    want = 10000
    hs = 4.0
    slack = 3.0
    limit = raise_nofile(2 * want + 500)
    n = min(want, limit - 300)
    if n < 1000:
        raise Skip("RLIMIT_NOFILE %d allows too few connections" % limit)
    conf = "max_connections = %d;\n" % (n + 100)
    with Daemon(timeouts={"handshake": hs}, conf_extra=conf, files={"a.txt": "a\n"}) as d:
        ep = select.epoll()
        socks = {}         # fileno -> socket
        t_conn = {}        # fileno -> when connect() was called (the daemon's accept, and
                           # so its timer, can only come later)
        established = set()
        closed = {}        # fileno -> seconds from connect() to the server's close
        t0 = time.time()
        latency = None

        def poll(timeout):
            for fd, ev in ep.poll(timeout):
                now = time.time()
                if fd not in established:
                    established.add(fd)
                    if not ev & (select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLHUP |
                                 select.EPOLLERR):
                        ep.modify(fd, select.EPOLLIN | select.EPOLLRDHUP)
                        continue
                try:
                    data = socks[fd].recv(64)
                except ConnectionResetError:
                    data = b""
                except BlockingIOError:
                    continue
                assert not data, "an idle connection got data: %r" % data
                closed[fd] = now - t_conn[fd]
                ep.unregister(fd)

        try:
            # in batches, each one accepted by the daemon before the next: a burst of
            # thousands of SYNs would overflow the listen backlog (511), and the kernel
            # would complete those connections only seconds later, on a SYN-ACK retry
            batch = 250
            for i in range(0, n, batch):
                for _ in range(min(batch, n - i)):
                    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    s.setblocking(False)
                    t_conn[s.fileno()] = time.time()
                    err = s.connect_ex(("127.0.0.1", d.port))
                    assert err in (0, errno.EINPROGRESS), os.strerror(err)
                    socks[s.fileno()] = s
                    ep.register(s.fileno(), select.EPOLLOUT | select.EPOLLIN | select.EPOLLRDHUP)
                t_batch = time.time()
                while len(established) < len(socks) and time.time() < t_batch + 5:
                    poll(0.01)
                want_fds = d.fd_baseline + len(socks) - len(closed) - 50
                while d.fd_count() < want_fds and time.time() < t_batch + 5:
                    poll(0.01)
            latency = timed_get(d, "/a.txt", b"a\n")     # while thousands hang
            deadline = time.time() + hs + slack + 2
            while len(closed) < n and time.time() < deadline:
                poll(0.05)
            t_all = max(t_conn.values()) - t0 if t_conn else None
            assert len(established) == n, "only %d of %d connections established" % (
                len(established), n)
            assert len(closed) == n, "%d of %d idle connections still open" % (
                n - len(closed), n)
        finally:
            ep.close()
            for s in socks.values():
                s.close()
        early = [t for t in closed.values() if t < hs - EARLY]
        late = [t for t in closed.values() if t > hs + slack]
        assert not early, "%d closed before the handshake timeout: %s" % (len(early), early[:5])
        assert not late, "%d closed late: %s" % (len(late), sorted(late)[-5:])
        assert latency is not None and latency < 2, latency
        d.wait_fds_baseline(timeout=10)
        assert timed_get(d, "/a.txt", b"a\n") < 1.5
        print("   %d idle connections (rlimit %d): all connected in %.1fs, closed "
              "%.2f-%.2fs after; GET latency %.3fs" % (n, limit, t_all, min(closed.values()),
                                                        max(closed.values()), latency))


@test
def out_of_file_descriptors_existing_served_new_refused_then_recovery():
    files = {"a.txt": b"a\n" * 1000, "b.bin": os.urandom(300000)}
    for mode in ("sendfile", "splice", "userspace"):
        with Daemon(send_mode=mode, files=files, timeouts={"handshake": 5}) as d:
            # the daemon starts normally; then its limit drops to 64 descriptors
            soft, hard = resource.prlimit(d.proc.pid, resource.RLIMIT_NOFILE)
            resource.prlimit(d.proc.pid, resource.RLIMIT_NOFILE, (64, hard))
            base = d.fd_count()
            held, refused, waited = [], 0, 0
            try:
                # fill the table: keep connecting until 20 in a row are not served
                misses = 0
                while misses < 20 and len(held) < 64:
                    try:
                        c = d.conn(timeout=1.5)
                        r = c.request("GET", "/a.txt")
                    except socket.timeout:
                        waited += 1
                        misses += 1
                        c = None
                    except (OSError, ssl.SSLError, EOFError):
                        refused += 1        # closed by the daemon: "cleanly" refused
                        misses += 1
                        c = None
                    else:
                        assert r.status == 200 and r.body == files["a.txt"], (mode, r)
                        held.append(c)
                        misses = 0
                    if c is None:
                        continue
                assert 20 <= len(held) < 64 - base + 4, (mode, len(held), base)
                assert d.proc.poll() is None
                # every connection held is still served, files of every size included
                for i, c in enumerate(held):
                    name = "b.bin" if i % 2 else "a.txt"
                    r = c.request("GET", "/" + name)
                    assert r.status == 200 and r.body == files[name], (mode, i, r)
                assert d.proc.poll() is None
                # no busy loop at the limit: a client knocking meanwhile costs an accept,
                # and otherwise the daemon sleeps
                cpu0 = cpu_seconds(d.proc.pid)
                knock = d.tcp(timeout=2)
                time.sleep(1.5)
                knock.close()
                cpu = cpu_seconds(d.proc.pid) - cpu0
                nheld = len(held)
                # recovery: free the fds, new connections are served again
                for c in held:
                    c.close()
                held = []
                wait_until(lambda: d.fd_count() <= base, 5, what="fds to be released")
                wait_until(lambda: _served(d, files["a.txt"]), 5,
                           what="a new connection to be served after recovery")
            finally:
                for c in held:
                    c.close()
            assert refused + waited >= 20, (refused, waited)
            assert cpu < 0.5, "the daemon used %.2fs of CPU in 1.5s idle at the fd limit" % cpu
            if refused:
                d.wait_log(r"out of file descriptors|Too many open files")
            resource.prlimit(d.proc.pid, resource.RLIMIT_NOFILE, (soft, hard))
            d.wait_fds_baseline()
            print("   %s: held %d connections (fd base %d), %d refused, %d waited, "
                  "cpu %.2fs in 1.5s at the limit" % (mode, nheld, base, refused, waited, cpu))


@test
def client_flooding_after_an_error_is_cut_after_the_linger_time():
    # after a 400 the daemon closes its side and drains what the client still sends, so
    # that its close does not turn into an RST that destroys the response; a client that
    # never stops sending is cut after the linger time (2 s), not drained forever
    linger = 2.0
    with Daemon(files={"a.txt": "a\n"}) as d:
        c = d.conn(timeout=5)
        c.send(b"GET /a.txt HTTP/1.11\r\nHost: x\r\n\r\n")
        r = c.read_response()
        assert r.status == 400 and r.header("connection") == "close", r
        junk = b"x" * 16384
        t0 = time.time()
        cut = None
        c.sock.settimeout(1)
        while time.time() - t0 < linger + 5:
            try:
                c.sock.sendall(junk)
            except (OSError, ssl.SSLError):
                cut = time.time() - t0
                break
        c.close()
        assert cut is not None, "still accepting bytes %.1fs after the response" % (
            time.time() - t0)
        assert cut <= linger + 1.5, "cut after %.2fs" % cut
        assert d.get("/a.txt").body == b"a\n"
        d.wait_fds_baseline()
        print("   flooding client cut %.2fs after its 400" % cut)


def _served(d, body):
    try:
        r = d.get("/a.txt", timeout=2)
    except (OSError, ssl.SSLError, EOFError):
        return False
    return r.status == 200 and r.body == body


if __name__ == "__main__":
    run_tests()
