/* fault-inject.so — LD_PRELOAD into ktlsd to make rare outcomes happen on demand, for
 * tests/blackbox/test_faults.py. Environment:
 *
 *   KTLSD_FAULT_EINTR=N   every Nth read()/write() on a socket and every Nth pread()
 *                         fails with EINTR before doing anything, as if a signal had
 *                         arrived during the call (the counter is shared). The socket
 *                         read()/write() calls are OpenSSL's socket BIO during the
 *                         handshake and the record layer's (src/tlsrec.c) after it;
 *                         those of the record layer are counted apart.
 *   KTLSD_FAULT_STRDUP=S  strdup(S) fails (NULL, ENOMEM): out of memory for that string.
 *   KTLSD_FAULT_ERR_REASON=null
 *                         ERR_reason_error_string() returns NULL, as it does for an
 *                         error code without a string (or an empty error queue).
 *   KTLSD_FAULT_LOG=FILE  at exit, write "eintr=N eintr_records=M" (faults injected;
 *                         M of the N were in socket reads/writes after the handshake,
 *                         of the record layer) there, so a test can tell that its faults
 *                         happened where it meant them to.
 *
 * Only calls through the dynamic symbol table are seen (ktlsd's own, OpenSSL's socket
 * BIO); the real functions are found with dlsym(RTLD_NEXT). Under ASan run ktlsd with
 * ASAN_OPTIONS=verify_asan_link_order=0 (this library comes before the runtime). */
#define _GNU_SOURCE	/* RTLD_NEXT, dl_iterate_phdr */
#include <dlfcn.h>
#include <link.h>
#include <stdint.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <openssl/err.h>

static unsigned long n_eintr, n_eintr_records;

__attribute__((destructor)) static void report(void)
{
	const char *path = getenv("KTLSD_FAULT_LOG");
	FILE *f = path ? fopen(path, "w") : NULL;

	if (f != NULL) {
		fprintf(f, "eintr=%lu eintr_records=%lu\n", n_eintr, n_eintr_records);
		fclose(f);
	}
}

static bool is_socket(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* Is it this call's turn to fail with EINTR? */
static bool interrupt_now(void)
{
	static long every = -1;
	static unsigned long calls;

	if (every == -1) {
		const char *s = getenv("KTLSD_FAULT_EINTR");
		every = s ? atol(s) : 0;
	}
	if (every <= 0 || ++calls % (unsigned long)every != 0)
		return false;
	n_eintr++;
	errno = EINTR;
	return true;
}

/* Is addr in the executable's code (ktlsd's own call, not a library's such as OpenSSL's
 * socket BIO)? The first object dl_iterate_phdr() reports is the executable. */
static int in_main_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	uintptr_t addr = *(uintptr_t *)arg;

	(void)size;
	*(uintptr_t *)arg = 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
		if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X) && addr >= lo &&
		    addr < lo + ph->p_memsz)
			*(uintptr_t *)arg = 1;
	}
	return 1;	/* the first object only */
}

static bool called_from_main(const void *caller)
{
	uintptr_t arg = (uintptr_t)caller;

	dl_iterate_phdr(in_main_cb, &arg);
	return arg == 1;
}

/* An EINTR for a socket call of the record layer (src/tlsrec.c): after the handshake
 * ktlsd reads and writes the socket itself; during it, OpenSSL does. */
static bool interrupt_socket_call(const void *caller)
{
	if (!interrupt_now())
		return false;
	if (called_from_main(caller))
		n_eintr_records++;
	return true;
}

ssize_t write(int fd, const void *buf, size_t len)
{
	static ssize_t (*real)(int, const void *, size_t);

	if (real == NULL)
		real = (ssize_t (*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
	if (is_socket(fd) && interrupt_socket_call(__builtin_return_address(0)))
		return -1;
	return real(fd, buf, len);
}

ssize_t read(int fd, void *buf, size_t len)
{
	static ssize_t (*real)(int, void *, size_t);

	if (real == NULL)
		real = (ssize_t (*)(int, void *, size_t))dlsym(RTLD_NEXT, "read");
	if (is_socket(fd) && interrupt_socket_call(__builtin_return_address(0)))
		return -1;
	return real(fd, buf, len);
}

ssize_t pread(int fd, void *buf, size_t len, off_t off)
{
	static ssize_t (*real)(int, void *, size_t, off_t);

	if (real == NULL)
		real = (ssize_t (*)(int, void *, size_t, off_t))dlsym(RTLD_NEXT, "pread");
	if (interrupt_now())
		return -1;
	return real(fd, buf, len, off);
}

char *strdup(const char *s)
{
	static char *(*real)(const char *);
	const char *fail = getenv("KTLSD_FAULT_STRDUP");

	if (real == NULL)
		real = (char *(*)(const char *))dlsym(RTLD_NEXT, "strdup");
	if (fail != NULL && strcmp(s, fail) == 0) {
		errno = ENOMEM;
		return NULL;
	}
	return real(s);
}

const char *ERR_reason_error_string(unsigned long e)
{
	static const char *(*real)(unsigned long);
	const char *mode = getenv("KTLSD_FAULT_ERR_REASON");

	if (real == NULL)
		real = (const char *(*)(unsigned long))dlsym(RTLD_NEXT, "ERR_reason_error_string");
	if (mode != NULL && strcmp(mode, "null") == 0)
		return NULL;
	return real(e);
}
