"""bench/stall_guest.py — runs INSIDE a User-Mode Linux guest (a kTLS kernel), started by
bench/stall-matrix through tests/uml/ktls-tier.sh, once per kernel.

The levers against the TLS_SW stall, measured as throughput on this kernel: one download of
the same file per cell, interleaved over --runs rounds, the client bench/tls-discard (one
connection, the body read as raw records: cheap, so the server and the kernel's encryption
are what is measured on the guest's one CPU). Cells:

  sendfile                        the baseline: no low-water mark
  sendfile lowat 16384            the trigger (stalls on 6.1, crawls on 6.12; bounded)
  sendfile lowat 65536            lever "raise the low-water mark" (auto's step 1)
  sendfile 16K calls, lowat 16384 lever "one record per call" (auto's step 2)
  write 8K calls, lowat 16384     lever "copy with write()" (auto's step 3)
  auto                            auto without a trigger
  auto lowat 16384                auto under the trigger (it must mitigate where needed)

A cell that does not finish within --cell-timeout seconds counts as stalled (0). The
server's error log tells how many auto mitigations and stalls each run had. Prints a table
and one line "STALL-BENCH-JSON {...}" for the host.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402

CELLS = (
    # name, send mode, chunk, lowat
    ("sendfile", "sendfile", None, None),
    ("sendfile lowat 16384", "sendfile", None, 16384),
    ("sendfile lowat 65536", "sendfile", None, 65536),
    ("sendfile 16K calls, lowat 16384", "sendfile", 16384, 16384),
    ("write 8K calls, lowat 16384", "write", 8192, 16384),
    ("auto", "auto", None, None),
    ("auto lowat 16384", "auto", None, 16384),
)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=32 * B.MIB)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--builddir", required=True)
    ap.add_argument("--client", required=True, help="the tls-discard binary")
    ap.add_argument("--cell-timeout", type=int, default=20)
    a = ap.parse_args()
    if B.tls_stat() is None:
        print("stall_guest: no /proc/net/tls_stat: not a kTLS kernel")
        sys.exit(77)
    kernel = os.environ.get("KTLSD_UML_KERNEL") or os.uname().release
    work = B.tmpdir("stall-bench.")
    root = os.path.join(work, "root")
    os.makedirs(root)
    B.make_file(os.path.join(root, "big.bin"), a.size)
    B.make_file(os.path.join(root, "4k.bin"), 4096)
    crt, key = B.make_cert(work)
    servers = {}
    for name, mode, chunk, lowat in CELLS:
        s = B.Ktlsd(os.path.join(a.builddir, "src", "ktlsd"), work, root, crt, key,
                    send_mode=mode, chunk=chunk, lowat=lowat,
                    name="ktlsd-" + name.replace(" ", "_").replace(",", ""))
        s.start()
        s.check("/4k.bin", 4096)
        servers[name] = s

    def one(name):
        s = servers[name]
        log0 = s.error_log()
        r = B.run([a.client, "--json", "127.0.0.1", str(s.port), "/big.bin"],
                  timeout=a.cell_timeout)
        log1 = s.error_log()[len(log0):]
        res = {"mitigations": log1.count("auto mitigation"), "stalls": log1.count(" stall: ")}
        try:
            j = json.loads(r.stdout.decode().strip().splitlines()[-1])
            ok = r.returncode == 0 and j["ok"] == 1 and j["bytes_body"] == a.size
        except (ValueError, IndexError, KeyError):
            ok, j = False, {}
        res["value"] = j.get("gib_per_s") if ok else 0.0
        res["complete"] = ok
        return res

    for name in servers:        # warm-up: socket buffers, page cache
        if servers[name].lowat != 16384 or servers[name].send_mode != "sendfile":
            one(name)
    results = {name: [] for name in servers}
    names = list(servers)
    for r in range(a.runs):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            res = one(name)
            results[name].append(res)
            print("stall_guest: %s run %d %-32s %s  mitigations %d, stalls %d" % (
                kernel, r + 1, name, "%.4f GiB/s" % res["value"] if res["complete"]
                else "not done in %d s" % a.cell_timeout, res["mitigations"], res["stalls"]),
                flush=True)
    for s in servers.values():
        s.stop()
    med = {n: B.summary([x["value"] for x in v])["median"] for n, v in results.items()}
    base = med["sendfile"] or 0
    print("\n## %s: one %d MiB download, median of %d (MiB/s; ratio to sendfile)\n" % (
        kernel, a.size // B.MIB, a.runs))
    rows = []
    for n in names:
        v = results[n]
        rows.append([n, "%.1f" % ((med[n] or 0) * 1024),
                     "%.2f" % (med[n] / base) if base and med[n] else "-",
                     "%d/%d" % (sum(x["complete"] for x in v), len(v)),
                     str(sum(x["mitigations"] for x in v)), str(sum(x["stalls"] for x in v))])
    print(B.table(rows, ["cell", "MiB/s", "x sendfile", "done", "mitigations", "stalls"]))
    print("STALL-BENCH-JSON " + json.dumps({"kernel": kernel, "release": os.uname().release,
                                           "size": a.size, "runs": a.runs,
                                           "results": results}), flush=True)


if __name__ == "__main__":
    main()
