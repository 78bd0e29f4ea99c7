"""Robustness cases that need kernel TLS (run inside User-Mode Linux by ktls-tier.sh through
guest-tests.sh; skipped where /proc/net/tls_stat is absent). The host suite runs the same
cases with userspace TLS (tests/blackbox/test_robust_files.py).

  21. A 5 GiB sparse file (guest tmpfs) over kTLS with sendfile, splice and write: ranges
      crossing 2^31 and 2^32 and the last bytes are byte-exact (64-bit offsets through
      sendfile()/splice()/pread() on the kTLS socket). The full 5 GiB download is not
      tried here: software AES in the guest runs at ~80 MiB/s.
  22. A file truncated while it is sent over kTLS, in each kernel mode: the connection is
      closed early, "file truncated" is logged, the daemon does not spin, and another
      download at the same time completes byte-exact.

Small on purpose (a few MiB per mode): the whole file takes about 20-30 s in the guest.
"""
import hashlib
import os
import socket
import ssl
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "blackbox"))
import ktlsd_test  # noqa: E402
from ktlsd_test import cpu_seconds, Daemon, Skip, run_tests, test, wait_until  # noqa: E402

ktlsd_test.use_build_without_sanitizers()

MIB = 1024 * 1024
GIB = 1024 * MIB
KERNEL_MODES = ("sendfile", "splice", "write")


def need_ktls():
    if not os.path.exists("/proc/net/tls_stat"):
        raise Skip("kernel without kTLS (no /proc/net/tls_stat)")


def sha256_of(path, off=0, length=None):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(off)
        left = length if length is not None else os.path.getsize(path) - off
        while left > 0:
            block = f.read(min(1 << 20, left))
            assert block
            h.update(block)
            left -= len(block)
    return h.hexdigest()


@test
def five_gib_sparse_file_ranges_across_4gib_over_ktls():
    need_ktls()
    size = 5 * GIB + 123
    two, four = 2**31, 2**32
    for mode in KERNEL_MODES:
        with Daemon(send_mode=mode, stats=True) as d:
            path = os.path.join(d.root, "five.bin")
            with open(path, "wb") as f:
                f.truncate(size)
                for off, length in ((two - 4096, 8192), (four - MIB, 2 * MIB),
                                    (size - 8192, 8192)):
                    f.seek(off)
                    f.write(hashlib.shake_256(b"%d" % off).digest(length))
            c = d.conn(timeout=60)
            for first, last in ((two - 1000, two + 999), (four - 100, four + 99),
                                (four, four), (size - 1000, size - 1)):
                r = c.request("GET", "/five.bin", {"Range": "bytes=%d-%d" % (first, last)})
                assert r.status == 206, (mode, first, r)
                assert r.header("content-range") == "bytes %d-%d/%d" % (first, last, size)
                with open(path, "rb") as f:
                    f.seek(first)
                    assert r.body == f.read(last - first + 1), (mode, first, last)
            c.close()
            # 2 MiB across 2^32 in many send calls, through curl (fast to decrypt)
            out = os.path.join(d.tmp, "dl")
            first, last = four - MIB, four + MIB - 1
            p = d.curl("/five.bin", "-r", "%d-%d" % (first, last), out=out, timeout=120)
            assert p.returncode == 0, (mode, p.stderr)
            assert sha256_of(out) == sha256_of(path, first, last - first + 1), mode
            wait_until(lambda: d.stats()["totals"]["connections_open"] == 0, 10)
            for rec in d.recent():
                assert rec["tls_tx"] == "kernel" and rec["sender"] == mode, rec
            d.wait_fds_baseline()


@test
def file_truncated_while_sent_over_ktls_closes_early():
    need_ktls()
    size, new_size = 8 * MIB, 2 * MIB
    for mode in KERNEL_MODES:
        with Daemon(send_mode=mode, stats=True, timeouts={"send_idle": 10}) as d:
            path = d.put_random("t.bin", size, seed=31)
            other = d.put_random("other.bin", MIB, seed=32)
            d.put("a.txt", "a\n")
            # a small receive buffer keeps the daemon from racing ahead of the truncation
            c = d.conn(timeout=20, sockopts=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)])
            c.send("GET /t.bin HTTP/1.1\r\nHost: x\r\n\r\n"
                   "GET /a.txt?after HTTP/1.1\r\nHost: x\r\n\r\n")
            status, _, headers, _ = c.read_head()
            assert status == 200 and headers["content-length"] == str(size)
            got = len(c.buf)
            while got < 256 * 1024:
                got += len(c.sock.recv(1 << 16))
            os.truncate(path, new_size)
            cpu0 = cpu_seconds(d.proc.pid)
            result = {}

            def fetch_other():
                out = os.path.join(d.tmp, "other.dl")
                r = d.curl("/other.bin", out=out, timeout=60)
                result["ok"] = r.returncode == 0 and sha256_of(out) == sha256_of(other)
            t = threading.Thread(target=fetch_other)
            t.start()
            time.sleep(1.0)
            eof = False
            c.sock.settimeout(20)
            try:
                while got <= size:
                    chunk = c.sock.recv(1 << 20)
                    if not chunk:
                        eof = True
                        break
                    got += len(chunk)
            except (ConnectionResetError, ssl.SSLError):
                eof = True
            except socket.timeout:
                pass
            t.join(60)
            cpu = cpu_seconds(d.proc.pid) - cpu0
            c.close()
            assert eof, "%s: still open after the truncation" % mode
            assert got < size, (mode, got)
            assert result.get("ok"), "%s: the other download failed" % mode
            d.wait_log(r'file truncated while sending "GET /t\.bin HTTP/1\.1" at offset \d+')
            wait_until(lambda: "/t.bin" in d.access_log(), what="the access log line")
            assert "/a.txt?after" not in d.access_log(), d.access_log()
            # (the guest is slow: 1 MiB through curl costs ~0.3 s; a spin would take all)
            assert cpu < 2.0, "%s: %.2fs CPU after the truncation" % (mode, cpu)
            wait_until(lambda: d.stats()["totals"]["connections_open"] == 0, 10)
            rec = [r for r in d.recent() if r["bytes_body"] < size and r["requests"] == 1
                   and r["bytes_body"] > MIB + 1][0]
            assert rec["tls_tx"] == "kernel" and rec["sender"] == mode, rec
            assert d.get("/a.txt").body == b"a\n"
            d.wait_fds_baseline()
            print("   %-8s truncated 8 -> 2 MiB at ~%d KiB sent: closed after %d bytes, "
                  "CPU %.2fs" % (mode, 256, got, cpu))


if __name__ == "__main__":
    run_tests()
