/* fault-inject.so — LD_PRELOAD into ktlsd to make rare outcomes happen on demand, for
 * tests/blackbox/test_faults.py. Environment:
 *
 *   KTLSD_FAULT_EINTR=N   every Nth read()/write() on a socket and every Nth pread()
 *                         fails with EINTR before doing anything, as if a signal had
 *                         arrived during the call (the counter is shared).
 *   KTLSD_FAULT_WANT_READ=1
 *                         an SSL_write_ex() that failed for a full socket buffer
 *                         (SSL_ERROR_WANT_WRITE) while no byte from the peer is waiting
 *                         reports SSL_ERROR_WANT_READ instead: OpenSSL asking to read
 *                         before it can write. Once the peer's bytes are there, the
 *                         write's real outcome is reported.
 *   KTLSD_FAULT_STRDUP=S  strdup(S) fails (NULL, ENOMEM): out of memory for that string.
 *   KTLSD_FAULT_ERR_REASON=null
 *                         ERR_reason_error_string() returns NULL, as it does for an
 *                         error code without a string (or an empty error queue).
 *   KTLSD_FAULT_LOG=FILE  at exit, write "eintr=N want_read=M" (faults injected) there,
 *                         so a test can tell that its faults happened.
 *
 * Only calls through the dynamic symbol table are seen (ktlsd's own, OpenSSL's socket
 * BIO); the real functions are found with dlsym(RTLD_NEXT). Under ASan run ktlsd with
 * ASAN_OPTIONS=verify_asan_link_order=0 (this library comes before the runtime). */
#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

static unsigned long n_eintr, n_want_read;

__attribute__((destructor)) static void report(void)
{
	const char *path = getenv("KTLSD_FAULT_LOG");
	FILE *f = path ? fopen(path, "w") : NULL;

	if (f != NULL) {
		fprintf(f, "eintr=%lu want_read=%lu\n", n_eintr, n_want_read);
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

ssize_t write(int fd, const void *buf, size_t len)
{
	static ssize_t (*real)(int, const void *, size_t);

	if (real == NULL)
		real = (ssize_t (*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
	if (is_socket(fd) && interrupt_now())
		return -1;
	return real(fd, buf, len);
}

ssize_t read(int fd, void *buf, size_t len)
{
	static ssize_t (*real)(int, void *, size_t);

	if (real == NULL)
		real = (ssize_t (*)(int, void *, size_t))dlsym(RTLD_NEXT, "read");
	if (is_socket(fd) && interrupt_now())
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

/* The SSL whose last SSL_write_ex() is to be reported as wanting a read. */
static const SSL *wants_read;

static int (*real_get_error)(const SSL *, int);

int SSL_get_error(const SSL *ssl, int ret)
{
	if (real_get_error == NULL)
		real_get_error = (int (*)(const SSL *, int))dlsym(RTLD_NEXT, "SSL_get_error");
	if (ssl == wants_read) {
		wants_read = NULL;
		return SSL_ERROR_WANT_READ;
	}
	return real_get_error(ssl, ret);
}

int SSL_write_ex(SSL *ssl, const void *buf, size_t num, size_t *written)
{
	static int (*real)(SSL *, const void *, size_t, size_t *);
	static int on = -1;
	int r, waiting = 0;

	if (real == NULL)
		real = (int (*)(SSL *, const void *, size_t, size_t *))dlsym(RTLD_NEXT, "SSL_write_ex");
	if (on == -1)
		on = getenv("KTLSD_FAULT_WANT_READ") != NULL;
	wants_read = NULL;
	r = real(ssl, buf, num, written);
	if (on && r != 1) {
		if (real_get_error == NULL)
			real_get_error = (int (*)(const SSL *, int))dlsym(RTLD_NEXT, "SSL_get_error");
		if (real_get_error(ssl, r) == SSL_ERROR_WANT_WRITE &&
		    ioctl(SSL_get_fd(ssl), FIONREAD, &waiting) == 0 && waiting == 0) {
			wants_read = ssl;
			n_want_read++;
		}
	}
	return r;
}
