"""Rare outcomes of system and OpenSSL calls, made to happen on demand by a library
preloaded into the daemon (tests/helpers/fault-inject.so):

  - a signal interrupting a call (EINTR) on a socket read or write, or on the pread() of
    a copying sender: the call is made again. The daemon's events are edge-triggered, so
    waiting for readiness instead would wait for an edge that may never come (the socket
    was ready all along), until the state's timeout;
  - SSL_write_ex() wanting to read before it can write (SSL_ERROR_WANT_READ): the
    response waits for the read edge, not for writability;
  - out of memory for a configuration string, and an OpenSSL error without a reason
    string: a clear error, never a crash or "(null)".
"""
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ktlsd_test import (KTLSD, SANITIZER_RE, TOP_BUILDDIR, Daemon, Skip,  # noqa: E402
                        run_tests, test, wait_until)

FAULT = os.path.join(TOP_BUILDDIR, "tests", "helpers", "fault-inject.so")
MODES = ("sendfile", "splice", "write", "userspace", "auto")


def fault_env(tmp, **faults):
    if not os.path.exists(FAULT):
        raise Skip("%s not built" % FAULT)
    env = {"LD_PRELOAD": FAULT, "KTLSD_FAULT_LOG": os.path.join(tmp, "faults"),
           # the library comes before the ASan runtime in the preload list
           "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:verify_asan_link_order=0"}
    env.update({"KTLSD_FAULT_" + k.upper(): str(v) for k, v in faults.items()})
    return env


def faults_seen(path):
    with open(path) as f:
        return dict((k, int(v)) for k, v in (w.split("=") for w in f.read().split()))


@test
def interrupted_calls_are_made_again_in_every_mode():
    for mode in MODES:
        d = Daemon(send_mode=mode, start=False, timeouts={"send_idle": 30})
        d.env = fault_env(d.tmp, eintr=3)
        with d:
            d.start()
            big = os.path.join(d.root, "big.bin")
            d.put_random("big.bin", 3 * 1024 * 1024 + 5, seed=31)
            d.put("a.txt", "interrupted\n")
            with open(big, "rb") as f:
                data = f.read()
            # every third socket read/write and pread fails with EINTR: the handshake,
            # request reads and every send path meet several; waiting for an edge
            # instead would time out here (5 s), long before send_idle
            c = d.conn(timeout=5)
            for _ in range(2):
                r = c.request("GET", "/big.bin")
                assert r.status == 200 and r.body == data, (mode, r)
                r = c.request("GET", "/a.txt")
                assert r.status == 200 and r.body == b"interrupted\n", (mode, r)
                r = c.request("GET", "/big.bin", {"Range": "bytes=1000-300000"})
                assert r.status == 206 and r.body == data[1000:300001], (mode, r)
            c.close()
            assert "Interrupted system call" not in d.log(), d.log()[-3000:]
            d.stop()    # the library reports at exit
            seen = faults_seen(os.path.join(d.tmp, "faults"))
            assert seen["eintr"] >= 10, (mode, seen)


@test
def ssl_write_wanting_a_read_is_retried_on_the_read_edge():
    size = 2 * 1024 * 1024 + 3
    # TCP_NOTSENT_LOWAT 1: the socket is writable only when nothing is unsent, so while
    # the client does not read, nothing (not even the client's own segments) makes it
    # writable again: an edge that arrives now is a read edge alone
    d = Daemon(send_mode="userspace", stats=True, start=False, args=["--notsent-lowat", "1"],
               timeouts={"send_idle": 30, "header": 30})
    d.env = fault_env(d.tmp, want_read=1)
    with d:
        d.start()
        big = d.put_random("big.bin", size, seed=32)
        d.put("small.txt", "small\n")
        with open(big, "rb") as f:
            data = f.read()
        # SSL_write_ex fails on the full socket; the library reports it as wanting a read
        c = d.conn(timeout=10, sockopts=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)])
        c.send("GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        state = {}

        def settled():
            conn = d.stats()["connections"][0]
            calls = conn["send_calls"]
            if conn["eagain"] >= 1 and state.get("calls") == calls:
                return calls
            state["calls"] = calls
            time.sleep(0.3)
            return None

        calls = wait_until(settled, 15, what="the response to wait with a full socket")
        # the bytes OpenSSL "wants": a record from the client, which begins the next
        # request. The daemon must try SSL_write_ex again at this read edge.
        c.send("G")
        wait_until(lambda: d.stats()["connections"][0]["send_calls"] > calls, 3,
                   what="a send call after the read edge (waited for writability instead?)")
        c.sock.settimeout(20)
        status, _, headers, _ = c.read_head()
        assert status == 200 and headers["content-length"] == str(size), headers
        while len(c.buf) < size:
            c._fill()
        assert c.buf[:size] == data, "body differs"
        c.buf = c.buf[size:]
        c.send("ET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response()
        assert r.status == 200 and r.body == b"small\n", r
        c.close()
        d.stop()    # the library reports at exit
        seen = faults_seen(os.path.join(d.tmp, "faults"))
        assert seen["want_read"] >= 1, seen


def config_test(d, env):
    p = subprocess.run([KTLSD, "-t", "-c", d.conf_path], capture_output=True, timeout=20,
                       env=dict(os.environ, **env))
    err = p.stderr.decode(errors="replace")
    assert not SANITIZER_RE.search(err), err
    return p.returncode, err


@test
def out_of_memory_for_a_config_string_is_an_error_not_a_crash():
    d = Daemon(start=False)
    try:
        # the default index name, then strings read from the file and the command line
        for s in ("index.html", "/etc/mime.types", d.root, d.crt, d.conf_path):
            code, err = config_test(d, fault_env(d.tmp, strdup=s))
            assert code == 1 and "out of memory" in err, (s, code, err)
        code, err = config_test(d, fault_env(d.tmp))
        assert code == 0, err
    finally:
        d.cleanup()


@test
def openssl_errors_without_a_reason_string_are_named():
    d = Daemon(start=False)
    try:
        with open(d.crt, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot base64 !\n-----END CERTIFICATE-----\n")
        code, err = config_test(d, fault_env(d.tmp, err_reason="null"))
        assert code == 1 and "cannot load certificate" in err, err
        assert "(null)" not in err and "unknown OpenSSL error" in err, err
    finally:
        d.cleanup()


if __name__ == "__main__":
    run_tests()
