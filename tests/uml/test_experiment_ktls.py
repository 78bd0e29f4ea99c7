"""Experiment mode on a kernel with kTLS (run inside User-Mode Linux by ktls-tier.sh, once
per kernel of the tier; skipped where /proc/net/tls_stat is absent).

Two arms, sendfile and write, under TCP_NOTSENT_LOWAT 16384, 20 downloads of 8 MiB, each
given DOWNLOAD_S seconds: what the kernel does to each sender (test_ktls.py's EXPECT: a
stall on 6.1, a crawl on 6.12, nothing with the patch) must show in the arms' counters,
and the verdict must follow the intervals — name write the winner where sendfile stalls
every time and write rarely, and never claim a stall difference where there is none.
"""
import os
import platform
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "blackbox"))
if os.environ.get("KTLSD_NOSAN"):
    # ASan cannot map its shadow memory under UML: use the build without sanitizers
    os.environ["KTLSD"] = os.environ["KTLSD_NOSAN"]
import ktlsd_test  # noqa: E402
from ktlsd_test import Daemon, Skip, run_tests, test, wait_until  # noqa: E402

if os.environ.get("KTLSD_NOSAN"):
    ktlsd_test.KTLSD = os.environ["KTLSD_NOSAN"]

MIB = 1024 * 1024
SIZE = 8 * MIB
DOWNLOADS = 20
DOWNLOAD_S = 4          # a crawl (~75 KB/s) or a stall is seen within 2.5 s

RELEASE = platform.release()
GENERATION = ".".join(RELEASE.split(".")[:2])
KERNEL = os.environ.get("KTLSD_UML_KERNEL") or GENERATION
PATCHED = "+tls-sw-no-more-on-full-record" in KERNEL
PROFILE = GENERATION + ("+patch" if PATCHED else "")

# sendfile under TCP_NOTSENT_LOWAT 16384, as test_ktls.py measured it per kernel
SENDFILE = {"6.1": ("stall", "corked-record"), "6.12": ("crawl", "persist-crawl"),
            "6.12+patch": ("ok", None)}

ARMS = ('experiment = { arms = ( { name = "sendfile"; send = { mode = "sendfile"; }; }, '
        '{ name = "write"; send = { mode = "write"; }; } ); };\n')


def need_ktls():
    if not os.path.exists("/proc/net/tls_stat"):
        raise Skip("kernel without kTLS (no /proc/net/tls_stat)")


def download(d, seconds):
    """curl /f.bin with a hard client timeout: (completed, bytes received)."""
    out = os.path.join(d.tmp, "dl")
    if os.path.exists(out):
        os.unlink(out)
    r = d.curl("/f.bin", out=out, timeout=seconds)
    return r.returncode == 0, os.path.getsize(out) if os.path.exists(out) else 0


@test
def sendfile_and_write_arms_under_lowat_and_a_verdict_that_follows_the_intervals():
    need_ktls()
    if PROFILE not in SENDFILE:
        raise Skip("no recorded expectations for kernel %s (%s)" % (KERNEL, RELEASE))
    kind, cause = SENDFILE[PROFILE]
    with Daemon(stats=True, args=["--notsent-lowat", "16384"], conf_extra=ARMS,
                timeouts={"send_idle": 20}) as d:
        d.put_random("f.bin", SIZE, seed=11)
        t0 = time.time()
        done = {"sendfile": 0, "write": 0}
        for i in range(DOWNLOADS):
            arm = ("sendfile", "write")[i % 2]       # the rotation: 1:1, sendfile first
            ok, got = download(d, DOWNLOAD_S)
            done[arm] += ok and got == SIZE
        wait_until(lambda: d.stats()["totals"]["connections_open"] == 0, 30)
        x = d.stats("/stats/experiment")
        arms = {a["name"]: a for a in x["arms"]}
        for name in ("sendfile", "write"):
            a, w = arms[name], arms[name]["window"]
            print("   %-10s %-8s %2d conns, %2d completed (client: %2d), %2d aborted, window n %2d, "
                  "stalled %2d, median %.2f MiB/s, stalls %s" % (
                      PROFILE, name, a["connections"], a["responses"], done[name], a["aborted"],
                      w["n"], w["stalled"], (w["goodput_median"] or 0) / MIB,
                      {k: v for k, v in a["stalls"].items() if v}))
        print("   %-10s verdict after %.0f s: %s" % (PROFILE, time.time() - t0, x["verdict"]))
        assert arms["sendfile"]["connections"] == arms["write"]["connections"] == DOWNLOADS // 2
        # every download is large, completed or cut short: all in the windows
        for name, a in arms.items():
            assert a["window"]["n"] == DOWNLOADS // 2, (name, a)
            assert a["responses"] + a["aborted"] == DOWNLOADS // 2, (name, a)
            assert a["responses"] >= done[name], (name, a, done)
        for rec in d.recent():
            assert rec["tls_tx"] == "kernel" and rec["notsent_lowat"] == 16384, rec
            assert rec["sender"] == rec["arm"], rec       # each arm's sender, no switch
        st = d.stats()
        t = st["totals"]
        for c in t["stalls"]:
            assert sum(a["stalls"][c] for a in arms.values()) == t["stalls"][c], (c, t, arms)
        sf, wr = arms["sendfile"]["window"], arms["write"]["window"]
        if kind == "ok":
            assert sf["stalled"] == 0 and done["sendfile"] == DOWNLOADS // 2, sf
            assert "stalled in" not in x["verdict"], x["verdict"]
        else:
            # every sendfile download stalls (or crawls), and is counted under its cause
            assert sf["stalled"] == DOWNLOADS // 2 and done["sendfile"] == 0, sf
            assert arms["sendfile"]["stalls"][cause] >= DOWNLOADS // 2, arms["sendfile"]
            assert not x["verdict"].startswith("sendfile:"), x["verdict"]
            if wr["stall_rate_ci95"][1] < sf["stall_rate_ci95"][0]:
                # the intervals separate: write is named, sendfile's rate given
                assert x["verdict"].startswith("write: "), x["verdict"]
                assert re.search(r"sendfile stalled in 100\.0 % \[72\.2, 100\.0\]", x["verdict"]), \
                    x["verdict"]
            else:
                assert "sendfile stalled in" not in x["verdict"], x["verdict"]
        text = d.stats("/metrics", raw=True).decode()
        if shutil.which("promtool"):
            p = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                               capture_output=True, timeout=60)
            assert p.returncode == 0, p.stdout + p.stderr
        assert re.search(r'^ktlsd_experiment_goodput_bytes_per_second_count\{arm="sendfile"\} %d$'
                         % (DOWNLOADS // 2), text, re.M), text[-3000:]


if __name__ == "__main__":
    run_tests()
