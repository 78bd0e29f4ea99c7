"""bench/stall_matrix_guest.py — runs INSIDE a User-Mode Linux guest (a kTLS kernel), started
by bench/stall-matrix through tests/uml/ktls-tier.sh, once per kernel.

Runs `ktlsd-bench --matrix --format json` with the arguments given after `--` (paths,
modes, low-water marks, size, runs, bound), prints a short table per path for the guest
log and one line "STALL-MATRIX-JSON {...}" (kernel, release, the matrix) for the host.
Exit 77 on a kernel without kTLS, 1 if ktlsd-bench failed.
"""
import argparse
import json
import os
import subprocess
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", required=True, help="ktlsd-bench (a build without ASan)")
    ap.add_argument("--ktlsd", required=True, help="ktlsd (a build without ASan)")
    ap.add_argument("--timeout", type=int, default=1500)
    ap.add_argument("args", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    if not os.path.exists("/proc/net/tls_stat"):
        print("stall_matrix_guest: no /proc/net/tls_stat: not a kTLS kernel")
        sys.exit(77)
    kernel = os.environ.get("KTLSD_UML_KERNEL") or os.uname().release
    args = [x for x in a.args if x != "--"]
    cmd = [a.bench, "--matrix", "--format", "json"] + args
    print("stall_matrix_guest: %s: %s" % (kernel, " ".join(cmd[1:])), flush=True)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=dict(os.environ, KTLSD=a.ktlsd), timeout=a.timeout)
    sys.stderr.write(p.stderr.decode(errors="replace"))
    try:
        m = json.loads(p.stdout)
    except ValueError:
        print("stall_matrix_guest: ktlsd-bench exit %d, no JSON: %r" % (p.returncode,
                                                                       p.stdout[-500:]))
        sys.exit(1)
    for path in m["paths"]:
        print("\n## %s, path %s (MiB/s median of %d)" % (kernel, path, m["runs"]))
        for c in m["cells"]:
            if c["path"] != path:
                continue
            print("  %-18s lowat %-5d %8.1f  [%.1f..%.1f]  stalls c%d/s%d %-13s mit %d  %s" % (
                c["mode"] + (":%d" % c["chunk"] if c["chunk"] else ""), c["lowat"],
                c["mib_per_s_median"], c["mib_per_s_min"], c["mib_per_s_max"],
                c["client_stalls"], c["server_stalls"], c["cause"], c["mitigations"],
                c["verdict"]))
    print("STALL-MATRIX-JSON " + json.dumps({"kernel": kernel, "release": os.uname().release,
                                            "matrix": m}), flush=True)
    sys.exit(0 if p.returncode == 0 else 1)


if __name__ == "__main__":
    main()
