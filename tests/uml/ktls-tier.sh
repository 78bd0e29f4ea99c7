#!/bin/bash
# ktls-tier.sh -- run test commands inside User-Mode Linux guests that have kTLS (the host
# kernel may not), on each kernel of the tier.  Host side of the UML test tier.
#
# Usage: tests/uml/ktls-tier.sh [GUEST-COMMAND...]
#        tests/uml/ktls-tier.sh --build-only     build (or find cached) the kernels, exit
#   Each GUEST-COMMAND is one /bin/sh command line, run inside the guest in
#   order, with cwd = a scratch results dir and TMPDIR=/tmp (guest tmpfs).
#   Default: sh "$TOP_SRCDIR/tests/uml/guest-tests.sh".
#   The commands run once per kernel: by default the UML kernels that
#   tests/uml/build-kernel builds from Debian's sources (cached after the first build):
#     6.1                                  linux-source-6.1
#     6.12                                 linux-source-6.12
#     6.12+tls-sw-no-more-on-full-record   6.12 with contrib/kernel/<that>.patch
#   Every result line names the kernel; the guest sees it as $KTLSD_UML_KERNEL.
#   Exit: the first failing kernel's status, else 0 (77 only if every kernel skipped).
#   A kernel that cannot be built here (no sources, no apt-get): FAIL under CI=true,
#   otherwise SKIP (77) with the reason. The guest died, hung or never reported: FAIL.
#
# Environment (all optional):
#   TOP_SRCDIR, TOP_BUILDDIR, KTLSD   set by `make check`; else derived from
#                                     this script's location
#   KTLSD_UML_KERNELS  kernels to run on, blank-separated (default above); an entry is
#                      VERSION[+PATCHNAME...], PATCHNAME a file contrib/kernel/NAME.patch
#   KTLSD_UML_LINUX    one UML kernel binary to use instead (e.g. Debian's /usr/bin/linux.uml,
#                      which panics on hosts with AMX); no build
#   KTLSD_UML_MODDIR   module dir for a modular kernel (default: /usr/lib/uml/modules/<ver>
#                      when it exists; the built kernels have everything built in)
#   KTLSD_UML_TIMEOUT  wall-clock limit per kernel, seconds (default: 600)
#   KTLSD_UML_MEM      guest RAM                    (default: 1024M)
#   KTLSD_UML_MEMDIR   where UML puts its RAM file  (default: /dev/shm if big enough,
#                                                    else $TMPDIR, /tmp, /var/tmp)
#   KTLSD_UML_SELFTEST_KERNELS  kernels on which the kernel's own tls selftest runs
#                      (default: 6.12 and the patched 6.12, whose results must match)
#   KTLSD_UML_KEEP=1   keep the results dir
#   KTLSD_UML_VERBOSE=1  always print the UML console log
# Variables named KTLSD_*, CI, ASAN_*/UBSAN_*/LSAN_OPTIONS are passed to the guest.

if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -u

me=ktls-tier
say() { printf '%s: %s\n' "$me" "$*"; }

t_start=$(date +%s.%N)
elapsed() { awk -v a="$t_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# ---- locate things ---------------------------------------------------------------
here=$(cd "$(dirname "$0")" && pwd -P) || { say "cannot locate myself"; exit 1; }
TOP_SRCDIR=${TOP_SRCDIR:-$(cd "$here/../.." && pwd -P)}
TOP_BUILDDIR=${TOP_BUILDDIR:-$TOP_SRCDIR}
KTLSD=${KTLSD:-$TOP_BUILDDIR/src/ktlsd}
# make check passes absolute paths; make sure hand-set relative ones work too.
abspath() { case $1 in /*) printf '%s' "$1" ;; *) printf '%s/%s' "$(pwd -P)" "$1" ;; esac; }
TOP_SRCDIR=$(abspath "$TOP_SRCDIR")
TOP_BUILDDIR=$(abspath "$TOP_BUILDDIR")
KTLSD=$(abspath "$KTLSD")
export TOP_SRCDIR TOP_BUILDDIR KTLSD

if [ "${KTLSD_SKIP_UML:-}" = 1 ]; then
	say "SKIP: KTLSD_SKIP_UML=1 (make distcheck: the tier already ran in the main build)"
	exit 77
fi
# The guest cannot run ASan builds (UML gives processes too little address space for its
# shadow memory): prefer the sanitizer-free build of the daemon when there is one.
if [ -z "${KTLSD_NOSAN:-}" ] && [ -x "$TOP_BUILDDIR/tests/uml/ktlsd-nosan" ]; then
	KTLSD_NOSAN=$TOP_BUILDDIR/tests/uml/ktlsd-nosan
	export KTLSD_NOSAN
fi

# ---- several kernels: build each (cached), then run this script once per kernel -----
default_kernels="6.1 6.12 6.12+tls-sw-no-more-on-full-record"
build_only=0
[ "${1:-}" = --build-only ] && { build_only=1; shift; }
if [ -z "${KTLSD_UML_LINUX:-}" ]; then
	kernels=${KTLSD_UML_KERNELS:-$default_kernels}
	agg= paths=()
	for k in $kernels; do
		ver=${k%%+*} bk_args=()
		rest=${k#"$ver"}
		while [ -n "$rest" ]; do
			rest=${rest#+}
			pn=${rest%%+*}
			rest=${rest#"$pn"}
			pf=$TOP_SRCDIR/contrib/kernel/$pn.patch
			[ -r "$pf" ] || { say "FAIL [$k]: no patch $pf"; exit 1; }
			bk_args+=(--patch "$pf")
		done
		say "kernel $k: building or finding it in the cache (a first build takes ~7 min on 2 idle cores)"
		kout=$("$here/build-kernel" "$ver" ${bk_args[@]+"${bk_args[@]}"} </dev/null)
		krc=$?
		kpath=$(printf '%s\n' "$kout" | tail -n 1)
		if [ "$krc" != 0 ] || [ ! -x "$kpath" ]; then
			if [ "$krc" = 3 ] && [ "${CI:-}" != true ]; then
				say "SKIP [$k]: tests/uml/build-kernel cannot build it here (reason above)"
				[ -z "$agg" ] && agg=77
				continue
			fi
			say "FAIL [$k]: tests/uml/build-kernel $ver failed (exit $krc, reason above)"
			agg=${agg:-1}; [ "$agg" = 0 ] || [ "$agg" = 77 ] && agg=1
			continue
		fi
		paths+=("$k=$kpath")
	done
	if [ "$build_only" = 1 ]; then
		for kp in ${paths[@]+"${paths[@]}"}; do say "kernel ${kp%%=*}: ${kp#*=}"; done
		case $agg in '' | 77) exit 0 ;; *) exit "$agg" ;; esac
	fi
	st_dir=$TOP_BUILDDIR/tests/uml
	rm -f "$st_dir"/tls-selftest.*.txt 2>/dev/null
	for kp in ${paths[@]+"${paths[@]}"}; do
		KTLSD_UML_LINUX=${kp#*=} KTLSD_UML_KERNEL=${kp%%=*} "$here/ktls-tier.sh" "$@"
		rc=$?
		case $rc in
		0) case $agg in '' | 77) agg=0 ;; esac ;;
		77) [ -z "$agg" ] && agg=77 ;;
		*) case $agg in '' | 0 | 77) agg=$rc ;; esac ;;
		esac
	done
	# The kernel's own tls selftest must give the same result with and without the patch.
	for kp in ${paths[@]+"${paths[@]}"}; do
		k=${kp%%=*}
		case $k in *+*) ;; *) continue ;; esac
		base=${k%%+*} fa=$st_dir/tls-selftest.${k%%+*}.txt fb=$st_dir/tls-selftest.$k.txt
		[ -f "$fa" ] && [ -f "$fb" ] || continue
		na=$(grep -c '^ok' "$fa") nb=$(grep -c '^ok' "$fb") ta=$(wc -l <"$fa") tb=$(wc -l <"$fb")
		if cmp -s "$fa" "$fb"; then
			say "kernel tls selftest: $base and $k give the same result ($na of $ta pass on both)"
		else
			say "FAIL: kernel tls selftest differs between $base ($na of $ta pass) and $k ($nb of $tb pass):"
			diff "$fa" "$fb" | sed 's/^/    /'
			case $agg in '' | 0 | 77) agg=1 ;; esac
		fi
	done
	say "kernels: $kernels; tier status ${agg:-77}, $(elapsed) s in all"
	exit "${agg:-77}"
fi
[ "$build_only" = 1 ] && { say "KTLSD_UML_LINUX is set: nothing to build"; exit 0; }

uml=$KTLSD_UML_LINUX
uml_path=$(command -v "$uml" 2>/dev/null)
[ -z "$uml_path" ] && [ -x "$uml" ] && uml_path=$uml
if [ -z "$uml_path" ]; then
	say "FAIL: KTLSD_UML_LINUX=$uml not found or not executable"
	exit 1
fi
KTLSD_UML_KERNEL=${KTLSD_UML_KERNEL:-$(basename "$uml_path")}
export KTLSD_UML_KERNEL
# The kernel's own tls selftest, built next to it: run on the kernels whose result is
# compared (KTLSD_UML_SELFTEST_KERNELS; about 2-3 min each in the guest).
selftest_kernels=${KTLSD_UML_SELFTEST_KERNELS-6.12 6.12+tls-sw-no-more-on-full-record}
case " $selftest_kernels " in
*" $KTLSD_UML_KERNEL "*)
	if [ -x "$(dirname "$uml_path")/tls-selftest" ]; then
		KTLSD_UML_SELFTEST=$(dirname "$uml_path")/tls-selftest
		KTLSD_UML_SELFTEST_OUT=$TOP_BUILDDIR/tests/uml/tls-selftest.$KTLSD_UML_KERNEL.txt
		export KTLSD_UML_SELFTEST KTLSD_UML_SELFTEST_OUT
	fi
	;;
esac
me="ktls-tier [$KTLSD_UML_KERNEL]"

for f in guest-init.sh guest-tests.sh; do
	[ -r "$here/$f" ] || { say "FAIL: $here/$f missing"; exit 1; }
done

uml_ver=$("$uml_path" --version </dev/null 2>/dev/null | tail -n 1 | tr -d '[:space:]')
# A modular kernel (Debian's linux.uml) needs its module tree; the kernels build-kernel
# makes have kTLS and its ciphers built in and need none.
moddir=${KTLSD_UML_MODDIR:-}
if [ -z "$moddir" ] && [ -n "$uml_ver" ] && [ -d "/usr/lib/uml/modules/$uml_ver" ]; then
	moddir=/usr/lib/uml/modules/$uml_ver
fi
if [ -n "$moddir" ] && [ ! -d "$moddir/kernel" ]; then
	say "FAIL: $moddir/kernel is not a directory"
	exit 1
fi

timeout_s=${KTLSD_UML_TIMEOUT:-600}
case $timeout_s in '' | *[!0-9]*) say "FAIL: KTLSD_UML_TIMEOUT='$timeout_s' is not a number of seconds"; exit 1 ;; esac
# the guest stops its tests a bit earlier so that a hang still gives a log
guest_budget=$((timeout_s > 60 ? timeout_s - 30 : timeout_s / 2))

mem=${KTLSD_UML_MEM:-1024M}
case $mem in
*[0-9][kK]) mem_kb=${mem%?} ;;
*[0-9][mM]) mem_kb=$((${mem%?} * 1024)) ;;
*[0-9][gG]) mem_kb=$((${mem%?} * 1024 * 1024)) ;;
*) say "FAIL: KTLSD_UML_MEM='$mem' (want e.g. 512M)"; exit 1 ;;
esac
case $mem_kb in '' | *[!0-9]*) say "FAIL: KTLSD_UML_MEM='$mem' (want e.g. 512M)"; exit 1 ;; esac

# UML keeps guest RAM in an unlinked, sparse file in $TMPDIR (else /dev/shm,
# else /tmp) and mmaps it PROT_EXEC.  A small /dev/shm (64 MiB in Docker)
# makes the guest die with SIGBUS once it touches more; noexec makes UML
# refuse to start.  Pick a directory explicitly.
usable_dir() { # dir -> prints free kB if usable
	local d=$1 opts avail
	[ -n "$d" ] && [ -d "$d" ] && [ -w "$d" ] || return 1
	if command -v findmnt >/dev/null 2>&1; then
		opts=$(findmnt -n -o OPTIONS --target "$d" 2>/dev/null)
		case ",$opts," in *,noexec,*) return 1 ;; esac
	fi
	avail=$(df -Pk "$d" 2>/dev/null | awk 'NR == 2 { print $4 }')
	case $avail in '' | *[!0-9]*) return 1 ;; esac
	printf '%s' "$avail"
}
memdir=${KTLSD_UML_MEMDIR:-}
if [ -z "$memdir" ]; then
	best='' best_kb=0
	for d in /dev/shm "${TMPDIR:-}" /tmp /var/tmp; do
		kb=$(usable_dir "$d") || continue
		if [ "$kb" -ge "$mem_kb" ]; then memdir=$d; break; fi
		[ "$kb" -gt "$best_kb" ] && { best=$d; best_kb=$kb; }
	done
	if [ -z "$memdir" ]; then
		[ -n "$best" ] || { say "FAIL: no writable, exec-mountable directory for UML's RAM file"; exit 1; }
		memdir=$best
		say "WARNING: only $((best_kb / 1024)) MiB free in $memdir for $mem of guest RAM"
	fi
fi

# ---- results dir -----------------------------------------------------------------
# Its path goes on the kernel command line: keep it free of odd characters.
safe_path() { case $1 in *[!A-Za-z0-9._/-]*) return 1 ;; *) return 0 ;; esac; }
base=${TMPDIR:-/tmp}
safe_path "$base" && [ -d "$base" ] && [ -w "$base" ] || base=/tmp
res=$(mktemp -d "$base/ktlsd-uml.XXXXXX") || { say "FAIL: mktemp -d in $base failed"; exit 1; }
res=$(cd "$res" && pwd -P)
safe_path "$res" || { say "FAIL: results dir '$res' has characters unusable on a kernel command line"; rm -rf "$res"; exit 1; }
chmod 755 "$res"

uml_pid=
umid=ktlsd-$$
# If UML dies abnormally (SIGKILL, or SIGTERM mid-run) some of its host
# processes can survive it: helpers, or ptrace-stopped guest-process stubs,
# holding the RAM file and inherited fds.  Kill exactly those: their command
# line carries our unique init= path.
reap_uml() { # reads /proc with builtins only: no procps in minimal images, no forks
	local d parts state n=0
	for d in /proc/[0-9]*; do
		mapfile -d '' -t parts 2>/dev/null <"$d/cmdline" || continue
		case " ${parts[*]} " in *linux*" init=$res/guest-init.sh "*) ;; *) continue ;; esac
		read -r state 2>/dev/null <"$d/stat" || continue
		state=${state##*) }
		[ "${state:0:1}" = Z ] && continue
		kill -KILL "${d#/proc/}" 2>/dev/null && n=$((n + 1))
	done
	[ "$n" = 0 ] || say "killed $n leftover UML host process(es)"
}
cleanup() {
	reap_uml
	if [ "${KTLSD_UML_KEEP:-0}" = 1 ]; then
		say "keeping $res (KTLSD_UML_KEEP=1)"
	else
		rm -rf "$res"
	fi
}
on_signal() {
	say "interrupted by SIG$1; stopping UML"
	[ -n "$uml_pid" ] && kill -TERM "$uml_pid" 2>/dev/null && wait "$uml_pid" 2>/dev/null
	cleanup
	trap - EXIT
	exit 1
}
trap cleanup EXIT
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM
trap 'on_signal HUP' HUP

shq() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }

cp "$here/guest-init.sh" "$res/guest-init.sh" && chmod 755 "$res/guest-init.sh" ||
	{ say "FAIL: cannot copy guest-init.sh"; exit 1; }
{
	echo "# written by ktls-tier.sh on the host; sourced by guest-init.sh"
	for v in TOP_SRCDIR TOP_BUILDDIR KTLSD; do
		printf '%s=%s; export %s\n' "$v" "$(shq "${!v}")" "$v"
	done
	printf 'KTLSD_UML_MODDIR=%s; export KTLSD_UML_MODDIR\n' "$(shq "$moddir")"
	printf 'KTLSD_UML_KERNEL=%s; export KTLSD_UML_KERNEL\n' "$(shq "$KTLSD_UML_KERNEL")"
	printf 'KTLSD_UML_GUEST_BUDGET=%s\n' "$guest_budget"
	while IFS= read -r v; do
		case $v in
		KTLSD_UML_MODDIR | KTLSD_UML_RESULTS | KTLSD_IN_UML | KTLSD_UML_GUEST_BUDGET | KTLSD_UML_KERNEL) ;;
		KTLSD_* | CI | ASAN_OPTIONS | UBSAN_OPTIONS | LSAN_OPTIONS | PYTHON3 | V | VERBOSE)
			printf '%s=%s; export %s\n' "$v" "$(shq "${!v}")" "$v"
			;;
		esac
	done < <(compgen -e)
} >"$res/params.sh"
{
	echo "# written by ktls-tier.sh; sourced by guest-init.sh --run-tests"
	if [ $# -eq 0 ]; then
		printf 'ktlsd_uml_run %s\n' "$(shq "sh $(shq "$here/guest-tests.sh")")"
	else
		for c in "$@"; do printf 'ktlsd_uml_run %s\n' "$(shq "$c")"; done
	fi
} >"$res/commands.sh"

# ---- boot ----------------------------------------------------------------------------
# con=null ssl=null: this UML's defaults are an xterm per console and a pty per
# serial line.  con0=null,fd:1: console output to our stdout (redirected to a
# file), console input from nowhere, so UML never reads or reconfigures the
# caller's stdin/tty (which may be closed, /dev/null or a terminal).
# panic=1 noreboot: a guest panic (e.g. init dying) ends the process.
# shellcheck disable=SC2054 # commas are part of UML options
args=(
	"mem=$mem" root=/dev/root rootfstype=hostfs hostfs=/ rw
	"init=$res/guest-init.sh" "ktlsd_uml_results=$res"
	con=null ssl=null con0=null,fd:1 quiet panic=1 noreboot
	"uml_dir=$res/uml" "umid=$umid"
)
mkdir -p "$res/uml"
say "booting $uml_path ${uml_ver:-?} (mem=$mem, RAM file in $memdir, modules ${moddir:-built in}, timeout ${timeout_s}s)"
TMPDIR=$memdir timeout -k 10 "$timeout_s" "$uml_path" "${args[@]}" \
	</dev/null >"$res/console.log" 2>&1 &
uml_pid=$!
wait "$uml_pid"
uml_rc=$?
uml_pid=
reap_uml

# ---- report ---------------------------------------------------------------------------
show() { # title file
	echo "---- $1 ----"
	if [ -s "$2" ]; then cat "$2"; else echo "(empty)"; fi
	echo "---- end $1 ----"
}
status=
if [ -f "$res/status" ]; then
	status=$(tr -d '[:space:]' <"$res/status")
	case $status in '' | *[!0-9]*) status= ;; esac
fi

if [ -n "$status" ]; then
	if [ "$status" = 0 ]; then verdict=PASS
	elif [ "$status" = 77 ]; then verdict=SKIP
	else verdict=FAIL; fi
	show "guest log" "$res/guest.log"
	if [ "$verdict" = FAIL ] || [ "${KTLSD_UML_VERBOSE:-0}" = 1 ]; then
		show "UML console" "$res/console.log"
	fi
	[ "$status" = 124 ] && say "guest tests exceeded their ${guest_budget}s budget (KTLSD_UML_TIMEOUT=${timeout_s} minus boot slack)"
	say "$verdict: guest status $status, $(elapsed) s, kernel $KTLSD_UML_KERNEL ${uml_ver:-?} (uml exit $uml_rc)"
	exit "$status"
fi

t_boot_end=$(elapsed)
if [ "$uml_rc" = 124 ] || { [ "$uml_rc" = 137 ] && [ "${t_boot_end%.*}" -ge "$timeout_s" ]; }; then
	why="UML timed out after ${timeout_s}s (KTLSD_UML_TIMEOUT)"
elif [ "$uml_rc" -gt 128 ]; then
	why="UML was killed by signal $((uml_rc - 128))"
else
	why="UML exited with status $uml_rc"
fi
show "guest log" "$res/guest.log"
show "UML console" "$res/console.log"
if grep -q 'Bus error - the host' "$res/console.log" 2>/dev/null; then
	say "hint: the guest RAM file in $memdir ran out of space; set KTLSD_UML_MEMDIR" \
		"to a bigger exec-mountable dir or lower KTLSD_UML_MEM"
elif grep -q 'Checking PROT_EXEC mmap' "$res/console.log" 2>/dev/null &&
	grep -q 'failed' "$res/console.log" 2>/dev/null; then
	say "hint: $memdir does not allow PROT_EXEC mappings (noexec?); set KTLSD_UML_MEMDIR"
fi
say "FAIL: $why without writing a guest status; $(elapsed) s, kernel $KTLSD_UML_KERNEL ${uml_ver:-?}"
exit 1
