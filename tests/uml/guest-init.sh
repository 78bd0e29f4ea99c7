#!/bin/sh
# guest-init.sh -- PID 1 of the User-Mode Linux guest of the kTLS test tier.
#
# Started by tests/uml/ktls-tier.sh as
#   linux.uml ... hostfs=/ init=<results>/guest-init.sh ktlsd_uml_results=<results>
# The kernel passes unknown key=value boot arguments to init's environment
# (keys containing a '.' are not passed), so the only parameter that travels
# on the command line is the results directory; everything else is in
# <results>/params.sh, written by the host.
#
# Contract with the host:
#   <results>/params.sh    in:  shell assignments (TOP_SRCDIR, KTLSD, ...)
#   <results>/commands.sh  in:  one `ktlsd_uml_run '<shell command>'` per test
#   <results>/guest.log    out: everything the guest tests print
#   <results>/status       out: aggregated exit status, written last
#
# This script must never leave the guest running: every path ends in
# ktlsd_uml_halt (poweroff -f, then fallbacks).  If even that fails, init
# exits, the kernel panics and `panic=1 noreboot` make linux.uml exit.
# POSIX sh only (it runs under the host's /bin/sh, dash on Debian).

PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
umask 022

# ---- runner mode: /bin/sh guest-init.sh --run-tests ---------------------------
# Runs <results>/commands.sh.  Each command runs in /bin/sh with
# stdin=/dev/null.  Aggregate like automake: the first failing status wins;
# 77 only if every command skipped.
if [ "${1:-}" = --run-tests ]; then
	agg=
	ktlsd_uml_run() {
		printf 'guest-init: === run: %s\n' "$1"
		t0=$(date +%s.%N)
		sh -c "$1" </dev/null
		rc=$?
		t1=$(date +%s.%N)
		printf 'guest-init: === exit %s after %s s: %s\n' "$rc" \
			"$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')" "$1"
		case $rc in
		0) case $agg in '' | 77) agg=0 ;; esac ;;
		77) [ -z "$agg" ] && agg=77 ;;
		*) case $agg in '' | 0 | 77) agg=$rc ;; esac ;;
		esac
		return 0
	}
	. "$KTLSD_UML_RESULTS/commands.sh"
	exit "${agg:-0}"
fi

res=${ktlsd_uml_results:-}
halting=0

say() { printf 'guest-init: [%s] %s\n' "$(cut -d' ' -f1 /proc/uptime 2>/dev/null)" "$*"; }

ktlsd_uml_halt() {
	[ "$halting" = 1 ] && return
	halting=1
	sync
	poweroff -f >/dev/null 2>&1
	# poweroff missing (no systemd-sysv / busybox) or it returned
	busybox poweroff -f >/dev/null 2>&1
	python3 -c 'import ctypes; ctypes.CDLL(None, use_errno=True).reboot(0x4321fedc)' \
		>/dev/null 2>&1
	[ -w /proc/sysrq-trigger ] && echo o >/proc/sysrq-trigger
	sleep 5
	say "could not power off; exiting init (kernel panic, panic=1 ends UML)"
	exit 1
}
trap ktlsd_uml_halt EXIT

# Written once, at the very end (or on a setup error).  The host treats a
# missing status file as "guest died".
write_status() {
	if [ -n "$res" ] && [ -d "$res" ]; then
		printf '%s\n' "$1" >"$res/status.tmp" && mv -f "$res/status.tmp" "$res/status"
	fi
	sync
}

logging=0
fatal() {
	say "FATAL: $*"
	[ "$logging" = 0 ] && [ -n "$res" ] && [ -d "$res" ] && [ -w "$res" ] &&
		printf 'guest-init: FATAL: %s\n' "$*" >>"$res/guest.log"
	write_status 1
	ktlsd_uml_halt
}

# ---- basic mounts -------------------------------------------------------
mount -t proc proc /proc 2>/dev/null || [ -r /proc/self/stat ] || fatal "cannot mount /proc"
mount -t sysfs sysfs /sys 2>/dev/null
# CONFIG_DEVTMPFS_MOUNT normally did this already; harmless if it did.
grep -q ' /dev devtmpfs ' /proc/mounts || mount -t devtmpfs devtmpfs /dev 2>/dev/null
[ -d /dev/pts ] && mount -t devpts devpts /dev/pts 2>/dev/null
[ -d /dev/shm ] && mount -t tmpfs -o mode=1777 tmpfs /dev/shm 2>/dev/null

[ -n "$res" ] || fatal "ktlsd_uml_results= missing from the kernel command line"
case $res in /*) ;; *) fatal "results dir '$res' is not absolute" ;; esac

# The guest gets its own /tmp (tmpfs).  The results dir, the source and
# build trees, the daemon and the module dir may live under the host's /tmp;
# keep them reachable at the same path by bind-mounting their top-level
# /tmp/<dir> back over the new tmpfs.
mount -t tmpfs -o mode=0755 tmpfs /run || fatal "cannot mount tmpfs on /run"
mkdir -p /run/host-tmp
mount --bind /tmp /run/host-tmp || fatal "cannot bind-mount host /tmp"

[ -r "$res/params.sh" ] || fatal "$res/params.sh not readable through hostfs"
. "$res/params.sh"

mount -t tmpfs -o mode=1777 tmpfs /tmp || fatal "cannot mount tmpfs on /tmp"
for p in "$res" ${TOP_SRCDIR:+"$TOP_SRCDIR"} ${TOP_BUILDDIR:+"$TOP_BUILDDIR"} \
	${KTLSD:+"$KTLSD"} ${KTLSD_UML_MODDIR:+"$KTLSD_UML_MODDIR"}; do
	case $p in
	/tmp/*)
		rel=${p#/tmp/}
		top=/tmp/${rel%%/*}
		[ -e "$top" ] && continue # already bound (nested paths)
		mkdir -p "$top" && mount --bind "/run/host-tmp/${rel%%/*}" "$top" ||
			fatal "cannot re-expose $top inside the guest"
		;;
	esac
done
[ -w "$res" ] || fatal "results dir $res not writable from the guest"

log=$res/guest.log
: >"$log" || fatal "cannot create $log"
say "logging to $log"
exec >>"$log" 2>&1 </dev/null
logging=1

say "kernel $(uname -r), $(grep -c ^processor /proc/cpuinfo) cpu, $(awk '/MemTotal/ {print $2 " kB"}' /proc/meminfo)"

# ---- kernel modules --------------------------------------------------------
# The kernels tests/uml/build-kernel makes have kTLS and its ciphers built in: nothing to
# load (and the module tree of another kernel must not be tried: "Exec format error").
# Debian's modular linux.uml needs them loaded from its module tree (the block below,
# not indented for its here-document).
if [ -r /proc/net/tls_stat ]; then
	KTLSD_UML_CHACHA=0
	zcat /proc/config.gz 2>/dev/null | grep -q '^CONFIG_CRYPTO_CHACHA20POLY1305=y' &&
		KTLSD_UML_CHACHA=1
	say "kTLS built into the kernel, no modules to load; chacha20=$KTLSD_UML_CHACHA"
	export KTLSD_UML_CHACHA
else
moddir=${KTLSD_UML_MODDIR:-/usr/lib/uml/modules/$(uname -r)}
[ -d "$moddir" ] || fatal "no kTLS built in, and no module dir $moddir (uname -r: $(uname -r))"

# Modules, in dependency order.  R: required, O: optional (ChaCha20-Poly1305;
# after the first optional failure the other optional ones are not tried).
# insmod (kmod) is often absent from minimal images (CI containers): then
# use finit_module(2) from python3, one interpreter start for the lot
# (a python3 start costs ~1 s in the guest).
mods="R:crypto/gf128mul R:crypto/ghash-generic R:crypto/ctr R:crypto/gcm
O:lib/crypto/libchacha O:lib/crypto/libpoly1305 O:crypto/chacha_generic
O:crypto/poly1305_generic O:crypto/chacha20poly1305 R:net/tls/tls"
list='' opt_missing=0
for spec in $mods; do
	kind=${spec%%:*} m=${spec#?:}
	[ "$kind" = O ] && [ "$opt_missing" = 1 ] && continue
	name=$(printf '%s' "${m##*/}" | tr - _)
	[ -d "/sys/module/$name" ] && continue # built in or already loaded
	f=
	for ext in .ko .ko.xz .ko.zst .ko.gz; do
		[ -e "$moddir/kernel/$m$ext" ] && { f=$moddir/kernel/$m$ext; break; }
	done
	if [ -z "$f" ]; then
		[ "$kind" = R ] && fatal "required module $m not found under $moddir/kernel"
		say "WARNING: optional module $m not found under $moddir/kernel"
		opt_missing=1
		continue
	fi
	list="$list $kind:$f"
done
if command -v insmod >/dev/null 2>&1; then
	loader=insmod
	mod_rc=0
	for spec in $list; do
		kind=${spec%%:*} f=${spec#?:}
		[ "$kind" = O ] && [ "$mod_rc" = 2 ] && continue
		out=$(insmod "$f" 2>&1) && continue
		say "insmod $f failed: $out"
		[ "$kind" = R ] && { mod_rc=1; break; }
		mod_rc=2
	done
else
	loader="finit_module via python3"
	# shellcheck disable=SC2086 # module paths contain no blanks
	python3 - $list <<'EOF'
import ctypes, errno, os, sys
libc = ctypes.CDLL(None, use_errno=True)
rc = 0
for spec in sys.argv[1:]:
    kind, path = spec.split(":", 1)
    if kind == "O" and rc == 2:
        continue
    try:
        if not path.endswith(".ko"):
            raise OSError(errno.ENOEXEC, "compressed module, needs insmod (kmod)")
        fd = os.open(path, os.O_RDONLY)
        try:
            # finit_module(fd, params, flags): x86_64 syscall 313
            if libc.syscall(313, fd, b"", 0) != 0:
                e = ctypes.get_errno()
                if e != errno.EEXIST:
                    raise OSError(e, os.strerror(e))
        finally:
            os.close(fd)
    except OSError as e:
        print("guest-init: loading %s failed: %s" % (path, e.strerror), flush=True)
        if kind == "R":
            sys.exit(1)
        rc = 2
sys.exit(rc)
EOF
	mod_rc=$?
fi
[ "$mod_rc" = 0 ] && [ "$opt_missing" = 1 ] && mod_rc=2
case $mod_rc in
0) KTLSD_UML_CHACHA=1 ;;
2) KTLSD_UML_CHACHA=0
	say "WARNING: CHACHA20-POLY1305 modules did not load; those cases will be skipped" ;;
*) fatal "a required kernel module did not load (see above)" ;;
esac
[ -r /proc/net/tls_stat ] || fatal "tls loaded but /proc/net/tls_stat is missing"
say "modules loaded ($loader); chacha20=$KTLSD_UML_CHACHA"
export KTLSD_UML_CHACHA
fi # modules

# ---- loopback ----------------------------------------------------------------
if ip link set lo up 2>/dev/null; then :
elif ifconfig lo 127.0.0.1 up 2>/dev/null; then :
else
	python3 - <<'EOF' || fatal "cannot bring lo up (no ip, ifconfig, python3)"
import fcntl, socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
ifr = struct.pack("16sH", b"lo", 0)
flags = struct.unpack("16sH", fcntl.ioctl(s, 0x8913, ifr)[:18])[1]   # SIOCGIFFLAGS
fcntl.ioctl(s, 0x8914, struct.pack("16sH", b"lo", flags | 1))       # SIOCSIFFLAGS, IFF_UP
EOF
fi
lo_flags=$(cat /sys/class/net/lo/flags 2>/dev/null)
case $lo_flags in
*[13579bdf]) ;; # IFF_UP set
*) fatal "lo is not up (flags '$lo_flags')" ;;
esac

# ---- environment for the tests ---------------------------------------------
# The host's /tmp stays reachable at /run/host-tmp.  Python must not write
# __pycache__ into the source tree: hostfs writes go to the host, as root.
budget=${KTLSD_UML_GUEST_BUDGET:-0}
# (the kernel also put its leftover boot parameters in our environment)
unset mem hostfs uml_dir umid ktlsd_uml_results KTLSD_UML_GUEST_BUDGET
HOME=/tmp
TMPDIR=/tmp
LANG=C.UTF-8
TERM=dumb
PYTHONDONTWRITEBYTECODE=1
KTLSD_IN_UML=1
KTLSD_UML_RESULTS=$res
KTLSD_UML_HOST_TMP=/run/host-tmp
export HOME TMPDIR LANG TERM PYTHONDONTWRITEBYTECODE KTLSD_IN_UML KTLSD_UML_RESULTS KTLSD_UML_HOST_TMP

# ---- tests ---------------------------------------------------------------------
cd "$res" || fatal "cannot cd to $res"
# The runner is this same script in --run-tests mode (see the top), under
# timeout(1) so a hung test still yields a log and a status: the guest budget
# is a bit below the host's timeout.  timeout(1) kills the whole process group
# and exits 124.
case $budget in '' | *[!0-9]*) budget=0 ;; esac
if [ "$budget" -gt 0 ] && command -v timeout >/dev/null 2>&1; then
	timeout -k 5 "$budget" /bin/sh "$0" --run-tests
	status=$?
	[ "$status" = 124 ] && say "TIMEOUT: guest tests still running after ${budget}s, killed"
else
	/bin/sh "$0" --run-tests
	status=$?
fi

say "guest tests finished with status $status"
write_status "$status"
ktlsd_uml_halt
