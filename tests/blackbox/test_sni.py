"""SNI selects the certificate (ROBUSTNESS 23): tls.sni lists more certificates, each
served to clients whose server name matches one of its names; anything else gets the
default one."""
import os
import re
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ktlsd_test import (KTLSD, SANITIZER_RE, Daemon, client_context, run_tests,  # noqa: E402
                        test, wait_until)


def cert_with_names(d, name, sans):
    crt = os.path.join(d.tmp, name + ".crt")
    key = os.path.join(d.tmp, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", crt, "-days", "2",
                    "-subj", "/CN=" + name, "-addext", "subjectAltName=" + sans],
                   check=True, capture_output=True)
    return crt, key


def served_cn(d, server_hostname):
    import socket
    raw = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    s = client_context().wrap_socket(raw, server_hostname=server_hostname)
    der = s.getpeercert(binary_form=True)
    s.close()
    p = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-subject"], input=der,
                       capture_output=True, check=True)
    return p.stdout.decode().strip().split("CN", 1)[1].strip(" =")


@test
def sni_selects_the_certificate():
    d = Daemon(start=False)
    try:
        b_crt, b_key = cert_with_names(d, "b-cert", "DNS:b.test,DNS:*.wild.test")
        c_crt, c_key = cert_with_names(d, "c-cert", "DNS:c.test")
        d.edit_conf(
            "tls = { certificate",
            'tls = { sni = ( { certificate = "%s"; private_key = "%s"; },\n'
            '               { certificate = "%s"; private_key = "%s"; } );\n certificate'
            % (b_crt, b_key, c_crt, c_key))
        d.start()
        for name, want in (("b.test", "b-cert"), ("B.TEST", "b-cert"), ("x.wild.test", "b-cert"),
                           ("c.test", "c-cert"), ("localhost", "localhost"),
                           ("other.test", "localhost"), ("a.b.wild.test", "localhost"),
                           ("wild.test", "localhost"), (None, "localhost")):
            assert served_cn(d, name) == want, (name, served_cn(d, name))
        # a request over an SNI-selected context works end to end
        d.put("x.txt", "sni\n")
        r = d.get("/x.txt", server_hostname="c.test")
        assert r.status == 200 and r.body == b"sni\n"
        d.stop()
    finally:
        d.cleanup()


@test
def sni_config_errors_name_the_line():
    d = Daemon(start=False)
    try:
        for bad, what in (('sni = ( { certificate = "/nonexistent.crt"; } );', "needs certificate and private_key"),
                          ('sni = ( { certificate = "a"; private_key = "b"; color = 1; } );', 'unknown setting "color"'),
                          ('sni = "x";', "must be a list")):
            path = os.path.join(d.tmp, "bad.conf")
            with open(path, "w") as f:
                f.write(d.conf_text.replace("tls = { certificate", "tls = {\n" + bad + "\ncertificate"))
            p = subprocess.run([KTLSD, "-t", "-c", path], capture_output=True, timeout=20)
            assert p.returncode == 1, p.stderr
            assert ("bad.conf:" in p.stderr.decode()) and what in p.stderr.decode(), p.stderr
        path = os.path.join(d.tmp, "missing.conf")
        with open(path, "w") as f:
            f.write(d.conf_text.replace(
                "tls = { certificate",
                'tls = { sni = ( { certificate = "/nonexistent.crt"; private_key = "/nonexistent.key"; } );\n certificate'))
        p = subprocess.run([KTLSD, "-t", "-c", path], capture_output=True, timeout=20)
        assert p.returncode == 1 and b"/nonexistent.crt" in p.stderr, p.stderr
    finally:
        d.cleanup()


def sni_line(crt, key):
    return "tls = { sni = ( { certificate = \"%s\";\n private_key = %s; } );\n certificate" % (
        crt, key)


@test
def sni_bad_private_key_is_reported_without_leaks():
    # the certificate path, read before the bad private_key, used to be leaked
    d = Daemon(start=False)
    try:
        b_crt, _ = cert_with_names(d, "b-cert", "DNS:b.test")
        garbage = os.path.join(d.tmp, "garbage.key")
        with open(garbage, "w") as f:
            f.write("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
        for key, what in (("5", r"bad\.conf:\d+: private_key: must be a string"),
                          ("[ \"x\" ]", r"bad\.conf:\d+: private_key: must be a string"),
                          ('"%s"' % garbage, r"cannot load private key \"%s\": \S" %
                           re.escape(garbage)),
                          ('"%s"' % d.key, r"key values mismatch|does not match")):
            path = os.path.join(d.tmp, "bad.conf")
            with open(path, "w") as f:
                f.write(d.conf_text.replace("tls = { certificate", sni_line(b_crt, key)))
            p = subprocess.run([KTLSD, "-t", "-c", path], capture_output=True, timeout=20,
                               env=dict(os.environ, ASAN_OPTIONS="detect_leaks=1"))
            err = p.stderr.decode(errors="replace")
            assert not SANITIZER_RE.search(err), err
            assert p.returncode == 1 and re.search(what, err), (key, p.returncode, err)
            assert "(null)" not in err, err
    finally:
        d.cleanup()


@test
def failed_reloads_with_a_bad_sni_key_leak_nothing():
    d = Daemon(start=False)
    with d:
        d.start()
        d.put("a.txt", "still here\n")
        b_crt, b_key = cert_with_names(d, "b-cert", "DNS:b.test")
        good = d.conf_text
        for n, key in enumerate(("5", '"%s"' % d.key, '"/nonexistent.key"'), 1):
            d.edit_conf("tls = { certificate", sni_line(b_crt, key))
            d.signal(signal.SIGHUP)
            wait_until(lambda: len(re.findall("reload failed", d.log())) >= n, 10,
                       what="reload %d to fail" % n)
            assert d.get("/a.txt").body == b"still here\n"
            d.conf_text = good
        # and a good one still works after them
        d.edit_conf("tls = { certificate", sni_line(b_crt, '"%s"' % b_key))
        d.signal(signal.SIGHUP)
        d.wait_log(r"reloaded ", 10)
        assert served_cn(d, "b.test") == "b-cert"
        # stop() fails on a LeakSanitizer report at exit


if __name__ == "__main__":
    run_tests()
