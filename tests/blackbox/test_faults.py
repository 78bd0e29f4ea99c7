"""Rare outcomes of system and OpenSSL calls, made to happen on demand by a library
preloaded into the daemon (tests/helpers/fault-inject.so):

  - a signal interrupting a call (EINTR) on a socket read or write (OpenSSL's during the
    handshake, the record layer's after it: src/tlsrec.c reads and writes the socket
    itself), or on the pread() of a copying sender: the call is made again. The daemon's
    events are edge-triggered, so waiting for readiness instead would wait for an edge
    that may never come (the socket was ready all along), until the state's timeout;
  - out of memory for a configuration string, and an OpenSSL error without a reason
    string: a clear error, never a crash or "(null)".
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ktlsd_test import (KTLSD, SANITIZER_RE, TOP_BUILDDIR, Daemon, Skip,  # noqa: E402
                        run_tests, test)

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
            # and some of them in the record layer's own read()/write() after the
            # handshake: the request reads always (there is no kTLS RX), the response
            # records too when they are sealed in userspace (~400 writes here)
            assert seen["eintr_records"] >= 1, (mode, seen)
            if mode == "userspace":
                assert seen["eintr_records"] >= 50, (mode, seen)


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
