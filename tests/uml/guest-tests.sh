#!/bin/sh
# guest-tests.sh -- the test cases of the UML (real kTLS) tier.
#
# Runs INSIDE the UML guest (started by guest-init.sh, itself booted by
# ktls-tier.sh), cwd = the results dir, TMPDIR=/tmp (guest tmpfs),
# KTLSD_IN_UML=1, and TOP_SRCDIR / TOP_BUILDDIR / KTLSD as on the host.
# Host binaries (python3, curl, the built ktlsd) are visible through hostfs.
#
# To add a case: add a `run_case NAME COMMAND...` line below.  A case exits
# 0 (pass), 77 (skip) or anything else (fail).  Keep guest workloads to tens
# of MiB: guest syscalls and software AES are slow.
# The script's status: first failure's status, else 77 if every case
# skipped, else 0.

PY=${PYTHON3:-python3}
# inside the guest, a pyenv shim (bash + pyenv per call) is slow and may not
# work; prefer the system interpreter
case $(command -v "$PY" 2>/dev/null) in */shims/*) PY=/usr/bin/python3 ;; esac
UML=$TOP_SRCDIR/tests/uml
K=${KTLSD_UML_KERNEL:-$(uname -r)}	# every result line names the kernel

pass=0 fail=0 skip=0 first_fail=
run_case() {
	name=$1
	shift
	echo "--- case $name: $*"
	"$@"
	rc=$?
	case $rc in
	0) pass=$((pass + 1)); echo "--- PASS [$K] $name" ;;
	77) skip=$((skip + 1)); echo "--- SKIP [$K] $name" ;;
	*) fail=$((fail + 1)); echo "--- FAIL [$K] $name (exit $rc)"; [ -n "$first_fail" ] || first_fail=$rc ;;
	esac
}

# ---- cases ---------------------------------------------------------------------
run_case ktls_probe "$PY" "$UML/ktls_probe.py"
run_case ktlsd_ktls "$PY" "$UML/test_ktls.py"
run_case ktlsd_robust "$PY" "$UML/test_robust_ktls.py"
run_case ktlsd_experiment "$PY" "$UML/test_experiment_ktls.py"
# the kernel's own tls selftest, on the kernels ktls-tier.sh names (KTLSD_UML_SELFTEST)
[ -n "${KTLSD_UML_SELFTEST:-}" ] && run_case kernel_tls_selftest "$PY" "$UML/kernel_tls_selftest.py"
# ---- end of cases ------------------------------------------------------------

echo "--- guest-tests [$K]: $pass passed, $fail failed, $skip skipped"
[ -n "$first_fail" ] && exit "$first_fail"
[ "$pass" = 0 ] && [ "$skip" -gt 0 ] && exit 77
exit 0
