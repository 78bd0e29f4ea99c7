"""bench/uml_guest.py — runs INSIDE the User-Mode Linux guest (kTLS kernel), started by
bench/uml-compare through tests/uml/ktls-tier.sh. Not meant to be run by hand on a host
without kTLS (it exits 77 there).

Measures, interleaved over --runs rounds, one download of the same file of --size bytes
(64–256 MiB: UML's kernel AES-GCM is software and slow, 0.04–0.1 GiB/s):
  raw       bench/raw-ktls: kTLS TX with a fixed key + sendfile() to a discarding reader,
            no server, no handshake: the kernel's ceiling
  ktlsd     send mode sendfile (kTLS)
  nginx     sendfile on + ssl_conf_command Options KTLS
  lighttpd  ssl-conf-cmd Options KTLS
The servers' client is bench/tls-discard (one connection; a decrypted 4 KiB warm-up
request, then the big response read as raw records with 1 MiB recv() calls — as cheap as
raw-ktls's reader). The guest has ONE CPU, so client, server and kernel crypto share it and
a costly client would be measured as a slow server: `ktlsd-bench --discard -c 1 -n 1`
decrypts the whole (first) response, two read() calls per 16 KiB record, and each guest
syscall is slow; it is run once per server for reference.
Each run also records CPU seconds: the server's (its sendfile() calls do the kernel's
encryption, so they are charged to it) and raw-ktls's sender's.
Checks that each server really used kTLS: /proc/net/tls_stat TlsTxSw must grow by one
per connection. Prints a table and one line "UML-BENCH-JSON {...}" for the host.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=128 * B.MIB)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--servers", default="ktlsd,nginx,lighttpd")
    ap.add_argument("--builddir", required=True)
    ap.add_argument("--raw", required=True, help="the raw-ktls binary")
    ap.add_argument("--client", required=True, help="the tls-discard binary")
    ap.add_argument("--cipher", default=B.CIPHER)
    ap.add_argument("--ktlsd-chunk", type=int, action="append", default=[],
                    help="also measure ktlsd with send.chunk = N (a diagnosis: the default "
                    "is 65536); repeatable")
    a = ap.parse_args()
    if B.tls_stat() is None:
        print("uml_guest: no /proc/net/tls_stat: not a kTLS kernel")
        sys.exit(77)
    raw_cipher = {"TLS_AES_128_GCM_SHA256": "aes128", "TLS_AES_256_GCM_SHA384": "aes256"}[
        a.cipher]
    bench = os.path.join(a.builddir, "src", "ktlsd-bench")
    bins = {"ktlsd": os.path.join(a.builddir, "src", "ktlsd"), "nginx": B.which("nginx"),
            "lighttpd": B.which("lighttpd")}
    names = [n for n in a.servers.split(",") if n]
    work = B.tmpdir("uml-bench.")
    root = os.path.join(work, "root")
    os.makedirs(root)
    t0 = time.time()
    big = B.make_file(os.path.join(root, "big.bin"), a.size)
    B.make_file(os.path.join(root, "4k.bin"), 4096)
    print("uml_guest: %d MiB file made in %.1f s" % (
        a.size // B.MIB, time.time() - t0), flush=True)
    crt, key = B.make_cert(work)
    servers = B.make_servers(names, bins, work, root, crt, key, cipher=a.cipher)
    for c in a.ktlsd_chunk:
        n = "ktlsd-chunk%dK" % (c // 1024)
        servers.append(B.Ktlsd(bins["ktlsd"], work, root, crt, key, cipher=a.cipher, chunk=c,
                               name=n))
        names.append(n)
    for s in servers:
        s.start()
        ver, cipher = s.check("/4k.bin", 4096)
        print("uml_guest: %-8s port %d %s %s %s" % (
            s.name, s.port, ver, cipher, s.ktls_line() if isinstance(s, B.Ktlsd) else ""),
            flush=True)

    def raw_run(chunk=0, cipher=raw_cipher):
        r = B.run([a.raw, "--cipher", cipher, "--chunk", str(chunk), "--json", big],
                  timeout=300)
        if r.returncode != 0:
            return {"value": None, "error": r.stderr.decode(errors="replace")[-300:]}
        j = json.loads(r.stdout.decode().strip().splitlines()[-1])
        return {"value": j["gib_per_s"], "seconds": j["seconds"], "records": j["records"],
                "calls": j["sendfile_calls"], "server_cpu_s": j["sender_cpu_s"],
                "client_cpu_s": j["reader_cpu_s"]}

    def server_run(s, client="tls-discard"):
        st0, pids = B.tls_stat(), s.pids()
        cpu0 = B.cpu_seconds(pids)
        if client == "tls-discard":
            argv = [a.client, "--json", "127.0.0.1", str(s.port), "/big.bin"]
        else:
            argv = [bench, s.url("/big.bin"), "--discard", "-c", "1", "-n", "1",
                    "--timeout", "600", "--format", "json", "-q"]
        r = B.run(argv, timeout=630)
        cpu = B.cpu_seconds(pids) - cpu0
        st1 = B.tls_stat()
        try:
            j = json.loads(r.stdout.decode().strip().splitlines()[-1])
        except (ValueError, IndexError):
            return {"value": None, "error": (r.stdout + r.stderr).decode(errors="replace")[-300:]}
        if client == "tls-discard":
            ok = r.returncode == 0 and j["ok"] == 1 and j["bytes_body"] == a.size
            err = j.get("error")
        else:
            ok = r.returncode == 0 and j["errors"] == 0 and j["requests"] == 1
            err = j.get("first_error")
        return {"value": j["gib_per_s"] if ok else None, "seconds": j["seconds"],
                "server_cpu_s": cpu, "client_cpu_s": j.get("client_cpu_s"),
                "tls_tx_sw": st1["TlsTxSw"] - st0["TlsTxSw"],
                "error": None if ok else err or "exit %d" % r.returncode}

    # warm-up (guest memory for socket buffers, page cache): one untimed run each
    raw_run()
    for s in servers:
        server_run(s)

    extra = {}
    for s in servers:
        extra["%s, client ktlsd-bench --discard -n 1" % s.name] = [server_run(s, "ktlsd-bench")]
    extra["raw chunk 65536"] = [raw_run(65536)]
    if raw_cipher == "aes128":
        extra["raw aes256"] = [raw_run(0, "aes256")]
    extra["raw plain TCP"] = [raw_run(0, "plain")]

    targets = ["raw"] + names
    results = {t: [] for t in targets}
    for r in range(a.runs):
        order = targets[r % len(targets):] + targets[:r % len(targets)]
        for t in order:
            res = raw_run() if t == "raw" else server_run(servers[names.index(t)])
            res["round"] = r + 1
            results[t].append(res)
            print("uml_guest: run %d %-8s %s GiB/s%s%s" % (
                r + 1, t, "%.4f" % res["value"] if res["value"] is not None else "FAILED",
                "  TlsTxSw +%d" % res["tls_tx_sw"] if "tls_tx_sw" in res else "",
                "  (%s)" % res["error"] if res.get("error") else ""), flush=True)
    for s in servers:
        s.stop()

    print("\n## UML kTLS: one %d MiB download, median of %d (GiB/s, higher is better)\n" % (
        a.size // B.MIB, a.runs))
    rows = []
    med, cpu_med = {}, {}
    for t in targets:
        st = B.summary([x["value"] for x in results[t]])
        med[t] = st["median"]
        ktls = ""
        if t != "raw":
            grew = [x.get("tls_tx_sw", 0) for x in results[t]]
            ktls = "yes (TlsTxSw +%s)" % ",".join(map(str, grew)) if all(
                g >= 1 for g in grew) else "NO (TlsTxSw +%s)" % ",".join(map(str, grew))
        cpu = B.summary([x["server_cpu_s"] / (a.size / B.GIB) for x in results[t]
                         if x.get("value")])
        cpu_med[t] = cpu["median"]
        rows.append([t, "%.4f" % st["median"] if st["median"] else "FAILED",
                     "%.4f – %.4f" % (st["min"], st["max"]) if st["n"] else "-",
                     "%.0f%%" % st["spread_pct"] if st["spread_pct"] is not None else "-",
                     "%.1f s/GiB" % cpu["median"] if cpu["median"] else "-",
                     ktls or "(kernel loop)"])
    print(B.table(rows, ["target", "median GiB/s", "min – max", "spread",
                         "sender CPU (median)", "kTLS engaged"]))
    print("(sender CPU: the server's processes, or raw-ktls's sending process; it includes "
          "the kernel's encryption)\n")
    for k, v in extra.items():
        x = v[0]
        print("%-46s %.4f GiB/s (1 run; sender CPU %s)" % (
            k, x["value"] or 0, "%.1f s/GiB" % (x["server_cpu_s"] / (a.size / B.GIB))
            if x.get("server_cpu_s") is not None else "-"))
    if med.get("ktlsd"):
        print()
        for t in targets:
            if t != "ktlsd" and med.get(t):
                print("ratio ktlsd/%s: %.2f× throughput, %s CPU per GiB (%s/ktlsd)" % (
                    t, med["ktlsd"] / med[t],
                    "%.2f×" % (cpu_med[t] / cpu_med["ktlsd"]) if cpu_med.get(t) and
                    cpu_med.get("ktlsd") else "-", t))
    print("UML-BENCH-JSON " + json.dumps({"size": a.size, "runs": a.runs, "cipher": a.cipher,
                                         "results": results, "extra": extra,
                                         "uname": os.uname().release}), flush=True)


if __name__ == "__main__":
    main()
