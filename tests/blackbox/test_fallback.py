"""Without kTLS in the kernel (the host of CI), every send mode falls back to userspace
TLS: downloads stay byte-exact, the start-up log says why once, and each connection's
record and the access log say what happened. Skipped on a kernel that has kTLS (the UML
tier covers that case)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ktlsd_test import Daemon, Skip, run_tests, sha256_file, test, wait_until  # noqa: E402

MODES = ("sendfile", "splice", "write", "userspace", "auto")


def kernel_has_ktls():
    return os.path.exists("/proc/net/tls_stat")


@test
def every_mode_falls_back_to_userspace_with_a_reason():
    if kernel_has_ktls():
        raise Skip("this kernel has kTLS")
    for mode in MODES:
        with Daemon(send_mode=mode, stats=True) as d:
            big = d.put_random("f.bin", 2 * 1024 * 1024 + 17, seed=7)
            out = os.path.join(d.tmp, "dl")
            r = d.curl("/f.bin", out=out)
            assert r.returncode == 0, r.stderr
            assert sha256_file(out) == sha256_file(big), mode
            log = d.log()
            assert log.count("kTLS: unavailable: kernel has no tls ULP") == 1, log
            assert "[warn]" in log.split("kTLS: unavailable")[0].splitlines()[-1]
            wait_until(lambda: d.stats()["totals"]["connections_open"] == 0, 5)
            st = d.stats()
            assert st["ktls_kernel"] == {"available": False, "reason": st["ktls_kernel"]["reason"]}
            assert "no tls ULP" in st["ktls_kernel"]["reason"]
            rec = d.recent()[0]
            assert rec["tls_tx"] == "userspace" and rec["sender"] == "userspace", rec
            assert rec["mode"] == mode, rec
            if mode == "userspace":
                assert rec["tls_tx_reason"] == "disabled by send mode userspace", rec
                assert st["totals"]["ktls_fallback"] == 0
            else:
                assert "no tls ULP" in rec["tls_tx_reason"], rec
                assert st["totals"]["ktls_fallback"] == 1, st["totals"]
            assert rec["bytes_body"] == os.path.getsize(big)
            assert " mode=userspace tls_tx=userspace " in d.access_log(), d.access_log()
            assert "tls_tx=userspace (kernel has no tls ULP" in log or mode == "userspace", log


@test
def send_settings_per_listener_and_command_line_precedence():
    # a listener group overrides the global "send"; --send-chunk on the command line beats both
    conf = ('listen = ( "127.0.0.1:0", { address = "127.0.0.1:0"; '
            'send = { mode = "write"; chunk = 16384; notsent_lowat = 32768; }; } );\n'
            'send = { mode = "splice"; chunk = 32768; };\n')
    d = Daemon(listen=(), stats=True, start=False, args=["--send-chunk", "8192"])
    d.edit_conf("listen = [  ];\n", conf)
    with d:
        d.start()
        lst = d.stats()["listeners"]
        assert [(l["send_mode"], l["chunk"], l["notsent_lowat"]) for l in lst] == \
            [("splice", 8192, 0), ("write", 8192, 32768)], lst
        ports = [int(p) for p in __import__("re").findall(r"listening on \S+ \(bound 127\.0\.0\.1:(\d+)\)", d.log())]
        assert len(ports) == 2, d.log()
        d.put("x.txt", "x" * 1000)
        for port in ports:
            d.port = port
            assert d.get("/x.txt").body == b"x" * 1000
        wait_until(lambda: d.stats()["totals"]["connections_open"] == 0, 5)
        modes = sorted(r["mode"] for r in d.recent())
        assert modes == ["splice", "write"], modes


if __name__ == "__main__":
    run_tests()
