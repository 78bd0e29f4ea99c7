"""Experiment mode on a kernel with kTLS (run inside User-Mode Linux by ktls-tier.sh, once
per kernel of the tier; skipped where /proc/net/tls_stat is absent).

Three arms, sendfile, capped (sendfile in one-record calls) and write, under
TCP_NOTSENT_LOWAT 16384, 30 downloads of 8 MiB, each given DOWNLOAD_S seconds: what the
kernel does to each sender (test_ktls.py's EXPECT and STALLS.md: sendfile stalls on 6.1
and crawls on 6.12, write with large calls crawls there too, one record per call never
stalls, nothing stalls with the patch) must show in the arms' counters, and the verdict
must follow the intervals — name a stall-free arm where sendfile stalls every time, and
never claim a stall difference where there is none.
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
import ktlsd_test  # noqa: E402
from ktlsd_test import Daemon, Skip, run_tests, test, wait_until  # noqa: E402

ktlsd_test.use_build_without_sanitizers()

MIB = 1024 * 1024
SIZE = 8 * MIB
DOWNLOADS = 30
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
        '{ name = "capped"; send = { mode = "sendfile"; chunk = 16384; }; }, '
        '{ name = "write"; send = { mode = "write"; }; } ); };\n')
NAMES = ("sendfile", "capped", "write")                 # the rotation's order
SENDER = {"sendfile": "sendfile", "capped": "sendfile", "write": "write"}
PER_ARM = DOWNLOADS // len(NAMES)


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
def sendfile_capped_and_write_arms_under_lowat_and_a_verdict_that_follows_the_intervals():
    need_ktls()
    if PROFILE not in SENDFILE:
        raise Skip("no recorded expectations for kernel %s (%s)" % (KERNEL, RELEASE))
    kind, cause = SENDFILE[PROFILE]
    with Daemon(stats=True, args=["--notsent-lowat", "16384"], conf_extra=ARMS,
                timeouts={"send_idle": 20}) as d:
        d.put_random("f.bin", SIZE, seed=11)
        t0 = time.time()
        done = {name: 0 for name in NAMES}
        for i in range(DOWNLOADS):
            arm = NAMES[i % len(NAMES)]             # the rotation: 1:1:1, in order
            ok, got = download(d, DOWNLOAD_S)
            done[arm] += ok and got == SIZE
        wait_until(lambda: d.stats()["totals"]["connections_open"] == 0, 30)
        x = d.stats("/stats/experiment")
        arms = {a["name"]: a for a in x["arms"]}
        for name in NAMES:
            a, w = arms[name], arms[name]["window"]
            print("   %-10s %-8s %2d conns, %2d completed (client: %2d), %2d aborted, window n %2d, "
                  "stalled %2d, median %.2f MiB/s, stalls %s" % (
                      PROFILE, name, a["connections"], a["responses"], done[name], a["aborted"],
                      w["n"], w["stalled"], (w["goodput_median"] or 0) / MIB,
                      {k: v for k, v in a["stalls"].items() if v}))
        print("   %-10s verdict after %.0f s: %s" % (PROFILE, time.time() - t0, x["verdict"]))
        assert all(arms[n]["connections"] == PER_ARM for n in NAMES), arms
        # every download is large, completed or cut short: all in the windows
        for name, a in arms.items():
            assert a["window"]["n"] == PER_ARM, (name, a)
            assert a["responses"] + a["aborted"] == PER_ARM, (name, a)
            assert a["responses"] >= done[name], (name, a, done)
        for rec in d.recent():
            assert rec["tls_tx"] == "kernel" and rec["notsent_lowat"] == 16384, rec
            assert rec["sender"] == SENDER[rec["arm"]], rec     # each arm's sender, no switch
            if rec["arm"] == "capped":
                assert rec["chunk"] == 16384, rec
        st = d.stats()
        t = st["totals"]
        for c in t["stalls"]:
            assert sum(a["stalls"][c] for a in arms.values()) == t["stalls"][c], (c, t, arms)
        sf, cp = arms["sendfile"]["window"], arms["capped"]["window"]
        # one record per call never stalls, on any kernel of the tier
        assert cp["stalled"] == 0 and done["capped"] == PER_ARM, cp
        if kind == "ok":
            assert sf["stalled"] == 0 and done["sendfile"] == PER_ARM, sf
            assert "stalled in" not in x["verdict"], x["verdict"]
        else:
            # every sendfile download stalls (or crawls), and is counted under its cause
            assert sf["stalled"] == PER_ARM and done["sendfile"] == 0, sf
            assert arms["sendfile"]["stalls"][cause] >= PER_ARM, arms["sendfile"]
            # 0 of 10 against 10 of 10: the intervals separate, so a stall-free arm is
            # named the winner and sendfile's rate is given
            m = re.match(r"(\w+): ", x["verdict"])
            assert m and m.group(1) in ("capped", "write"), x["verdict"]
            assert arms[m.group(1)]["window"]["stalled"] == 0, (x["verdict"], arms)
            assert re.search(r"sendfile stalled in 100\.0 % \[72\.2, 100\.0\]", x["verdict"]), \
                x["verdict"]
        text = d.stats("/metrics", raw=True).decode()
        if shutil.which("promtool"):
            p = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                               capture_output=True, timeout=60)
            assert p.returncode == 0, p.stdout + p.stderr
        assert re.search(r'^ktlsd_experiment_goodput_bytes_per_second_count\{arm="sendfile"\} %d$'
                         % PER_ARM, text, re.M), text[-3000:]


if __name__ == "__main__":
    run_tests()
