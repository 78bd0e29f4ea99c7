"""The kernel's own kTLS selftest (tools/testing/selftests/net/tls.c of the same source
tree, built by tests/uml/build-kernel next to the kernel as `tls-selftest`), run in the
guest: what a netdev reviewer asks first about a kernel patch.

Runs, by default, the AES-GCM and ChaCha20-Poly1305 variants (TLS 1.2 and 1.3) of the
`tls` and `tls_err` fixtures plus the `global` and `tls_basic` cases — about a quarter of
the 845 cases, ~1-2 min in the guest; KTLSD_UML_SELFTEST_FULL=1 runs every variant (CCM,
SM4, ARIA, 256-bit keys, nopad: ~5 min). Never the rekey cases (TLS 1.3 KeyUpdate: 6.12 has
no rekey support, and several of those cases wait for the harness's 30 s timeout each;
they fail the same way with and without the patch). Asserts that every AES-GCM and ChaCha20-Poly1305 case of
sendfile, splice and MSG_MORE passes, and writes the pass/fail list to
$KTLSD_UML_SELFTEST_OUT, which ktls-tier.sh compares across kernels (6.12 against the
patched 6.12 must be identical). Skips (77) when the kernel has no selftest binary.
"""
import os
import re
import subprocess
import sys
import time

binary = os.environ.get("KTLSD_UML_SELFTEST", "")
out = os.environ.get("KTLSD_UML_SELFTEST_OUT", "")
if not binary or not os.access(binary, os.X_OK):
    print("SKIP: no tls selftest binary for this kernel (%r)" % binary)
    sys.exit(77)

lp = subprocess.run([binary, "-l"], capture_output=True, text=True, timeout=60)
listing = lp.stdout + lp.stderr   # the harness lists on stderr
names = sorted({line.split()[-1] for line in listing.splitlines()[1:] if line.split()})
excluded = [n for n in names if "rekey" in n]
cmd = [binary]
for n in excluded:
    cmd += ["-T", n]
full = os.environ.get("KTLSD_UML_SELFTEST_FULL") == "1"
if not full:
    for v in ("12_aes_gcm", "13_aes_gcm", "12_chacha", "13_chacha"):
        cmd += ["-v", v]
    cmd += ["-f", "global", "-f", "tls_basic"]
t0 = time.time()
p = subprocess.run(cmd, capture_output=True, text=True, cwd=os.environ.get("TMPDIR", "/tmp"),
                   timeout=int(os.environ.get("KTLSD_UML_SELFTEST_TIMEOUT", "900" if full else "300")))
took = time.time() - t0
results = {}
for line in p.stdout.splitlines():
    m = re.match(r"^(ok|not ok) \d+ (\S+)", line)
    if m:
        results[m.group(2)] = m.group(1) == "ok"
passed = sorted(n for n, ok in results.items() if ok)
failed = sorted(n for n, ok in results.items() if not ok)
print("kernel tls selftest on %s (%s): %d of %d pass in %.0f s (rekey cases excluded: %s)" % (
    os.environ.get("KTLSD_UML_KERNEL", "?"), "every variant" if full else "GCM and ChaCha",
    len(passed), len(results), took, ", ".join(excluded)))
by_variant = {}
for n in failed:
    v = n.split(".")[1] if n.count(".") >= 2 else n
    by_variant[v] = by_variant.get(v, 0) + 1
print("failures by variant:", ", ".join("%s %d" % kv for kv in sorted(by_variant.items())))
if out:
    with open(out, "w") as f:
        for n in sorted(results):
            f.write("%s %s\n" % ("ok" if results[n] else "FAIL", n))

bad = []
for n in failed:
    parts = n.split(".")
    if len(parts) == 3 and parts[0] == "tls" and re.match(r"1[23]_(aes_gcm|chacha)", parts[1]) \
            and re.search(r"sendfile|splice|msg_more", parts[2]):
        bad.append(n)
if not results:
    print(p.stdout[-3000:], p.stderr[-2000:])
    print("FAIL: no results from the selftest (exit %d)" % p.returncode)
    sys.exit(1)
if bad:
    print("FAIL: GCM/ChaCha sendfile/splice/msg_more cases failed: %s" % ", ".join(bad))
    sys.exit(1)
print("every AES-GCM and ChaCha20-Poly1305 sendfile/splice/msg_more case passes")
sys.exit(0)
