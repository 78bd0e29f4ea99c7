"""testssl.sh against the running daemon: nothing at MEDIUM severity or above.

Hostile-input checklist, case 23 (the last part): testssl.sh reports nothing at MEDIUM or
above.

What runs: protocols (-p: SSLv2 … TLS 1.3, NPN, ALPN), cipher categories (-s), and the
vulnerability checks that concern a server's TLS stack (Heartbleed, CCS injection,
renegotiation, CRIME, BREACH, POODLE, TLS_FALLBACK_SCSV, SWEET32, FREAK, DROWN, BEAST,
LUCKY13, RC4). Not run, on purpose:
  -S  server defaults: its findings are about the certificate, and this one is the
      test's own self-signed, 30-day one (chain of trust, expiry, revocation URIs);
  -h  HTTP security headers (HSTS …): site policy, and ktlsd has no header settings;
  -f, Ticketbleed, ROBOT, LOGJAM: 20-30 s more for what -p/-s already rule out (TLS 1.3
      only: no RSA key transport, no finite-field DH below TLS 1.3, no TLS 1.2 tickets).
testssl.sh is a large bash script: its own start-up takes 10-30 s, the whole run 40-110 s
on a 2-CPU machine depending on load — the one test file over a minute. Bounded by
KTLSD_TESTSSL_TIMEOUT (default 300 s).

testssl.sh (Debian package testssl.sh) is installed with apt-get when missing, but only as
root with CI=true; otherwise the test is skipped (77). Offline it needs nothing:
--nodns none, and the target is 127.0.0.1.
"""
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ktlsd_test import Daemon, Skip, run_tests, test  # noqa: E402

CHECKS = ["-p", "-s", "-H", "-I", "-R", "-C", "-B", "-O", "-Z", "-W", "-F", "-D", "-A",
          "-L", "-4"]
BAD = ("MEDIUM", "HIGH", "CRITICAL", "FATAL")


def find_testssl():
    for name in ("testssl", "testssl.sh"):
        path = shutil.which(name)
        if path:
            return path
    if os.geteuid() == 0 and os.environ.get("CI") == "true":
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        cmd = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "testssl.sh"]
        p = subprocess.run(cmd, env=env, capture_output=True, timeout=600)
        if p.returncode != 0:       # maybe the package lists are stale or absent
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True,
                           timeout=600)
            p = subprocess.run(cmd, env=env, capture_output=True, timeout=600)
        if p.returncode != 0:
            raise Skip("cannot install testssl.sh: %s" % p.stderr.decode()[-300:])
        return shutil.which("testssl") or shutil.which("testssl.sh")
    raise Skip("testssl.sh not installed (installed automatically only as root with CI=true)")


@test
def testssl_reports_nothing_at_medium_or_above():
    exe = find_testssl()
    if exe is None:
        raise Skip("testssl.sh installed but not found in PATH")
    limit = float(os.environ.get("KTLSD_TESTSSL_TIMEOUT", "300"))
    with Daemon(files={"index.html": "<html><body>ktlsd</body></html>\n"}) as d:
        out = os.path.join(d.tmp, "testssl.json")
        cmd = [exe, "--quiet", "--color", "0", "--warnings", "off", "--nodns", "none",
               "--connect-timeout", "10", "--openssl-timeout", "10",
               "--jsonfile", out] + CHECKS + ["127.0.0.1:%d" % d.port]
        t0 = time.time()
        try:
            p = subprocess.run(cmd, capture_output=True, timeout=limit, cwd=d.tmp)
        except subprocess.TimeoutExpired:
            raise Skip("testssl.sh did not finish within %.0f s (KTLSD_TESTSSL_TIMEOUT)" % limit)
        took = time.time() - t0
        text = p.stdout.decode(errors="replace")
        if not os.path.exists(out):
            raise AssertionError("testssl.sh wrote no JSON (exit %d):\n%s\n%s" % (
                p.returncode, text[-3000:], p.stderr.decode(errors="replace")[-2000:]))
        with open(out) as f:
            findings = json.load(f)
        ids = {x["id"] for x in findings}
        # it did test what we asked: the protocol list and some vulnerabilities
        for want in ("SSLv2", "SSLv3", "TLS1", "TLS1_1", "TLS1_2", "TLS1_3", "heartbleed",
                     "CCS", "POODLE_SSL"):
            assert want in ids, "testssl.sh did not report %s:\n%s" % (want, text[-3000:])
        byid = {x["id"]: x["finding"] for x in findings}
        assert byid["TLS1_3"].startswith("offered"), byid["TLS1_3"]
        for old in ("SSLv2", "SSLv3", "TLS1", "TLS1_1", "TLS1_2"):
            assert byid[old].startswith("not offered"), (old, byid[old])
        bad = ["%s %s: %s" % (x["severity"], x["id"], x["finding"]) for x in findings
               if x["severity"] in BAD]
        assert not bad, "testssl.sh findings at MEDIUM or above:\n  " + "\n  ".join(bad)
        d.wait_fds_baseline()
        print("   testssl.sh %s: %d findings, none at MEDIUM or above, in %.0fs" % (
            " ".join(CHECKS), len(findings), took))


if __name__ == "__main__":
    run_tests()
