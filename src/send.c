/* send.c — see send.h. */
#include "autoconf.h"
#include "send.h"
#include "conn.h"
#include "log.h"
#include "server.h"
#include "stall.h"
#include "stats.h"
#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

void send_set_sender(struct conn *c, const struct body_sender *s, size_t chunk)
{
	if (c->sender != NULL && c->sender != s && c->rec.requests > 0)
		c->rec.switched_from = c->sender->name;
	c->sender = s;
	c->chunk = chunk;
	c->rec.sender = s->name;
	c->rec.chunk = chunk;
}

/* A short read or a 0 from sendfile/splice while the response promised more bytes:
 * the file shrank under us. Nothing correct can follow; close (nginx does the same). */
static enum io_result truncated(struct conn *c)
{
	log_msg(LOG_LEVEL_ERROR, "conn %llu: file truncated while sending \"%s\" at offset %llu",
		(unsigned long long)c->id, c->reqline, (unsigned long long)c->resp.off);
	return IO_ERROR;
}

/* Count bytes of the response that the kernel (or OpenSSL) took. */
static void account(struct conn *c, uint64_t head, uint64_t body)
{
	c->resp.head_bytes += head;
	c->resp.body_bytes += body;
	c->rec.bytes_head += head;
	c->rec.bytes_body += body;
	stats_count(CTR_BYTES_BY_SENDER + c->sender->mode, head + body);
}

/* Every send system call goes through here: its duration and an EAGAIN are what the
 * stall statistics are made of. */
static enum io_result timed(struct conn *c, uint64_t t0, enum io_result r)
{
	stall_note_call(c, t0, stall_now_us(), r == IO_AGAIN);
	return r;
}

static enum io_result transport_write(struct conn *c, const char *p, size_t len, bool more,
				      size_t *sent)
{
	uint64_t t0 = stall_now_us();
	ssize_t n;

	if (!c->ktls.tx)
		return timed(c, t0, tlsrec_write(&c->tls, c->fd, p, len, sent));
	n = SEND_RETRY(send(c->fd, p, len, MSG_NOSIGNAL | (more ? MSG_MORE : 0)));
	if (n >= 0) {
		*sent = (size_t)n;
		return timed(c, t0, IO_OK);
	}
	return timed(c, t0, io_from_errno(errno));
}

enum io_result send_flush_out(struct conn *c, bool more, size_t *sent)
{
	struct response_buf *o = &c->resp.out;
	enum io_result r;

	*sent = 0;
	o->sealed = true;
	r = transport_write(c, o->buf + o->off, o->len - o->off, more, sent);
	if (r == IO_OK) {
		size_t h = *sent < c->resp.head_left ? *sent : c->resp.head_left;
		c->resp.head_left -= h;
		account(c, h, *sent - h);
		o->off += *sent;
		if (o->off == o->len) {
			o->off = o->len = 0;
			o->sealed = false;
		}
	}
	return r;
}

size_t send_copy_size(const struct conn *c)
{
	return c->chunk < SEND_COPY_MAX ? c->chunk : SEND_COPY_MAX;
}

bool send_pending(const struct conn *c)
{
	return c->resp.out.len > c->resp.out.off || c->pipe_len > 0 || c->resp.left > 0;
}

/* Append up to max file bytes to c->resp.out (copying senders). */
static enum io_result fill_out(struct conn *c, size_t max)
{
	struct response *r = &c->resp;
	struct response_buf *o = &r->out;
	size_t room = o->cap - o->len;
	ssize_t n;

	if (o->sealed || r->left == 0 || room == 0)
		return IO_OK;
	if (room > max)
		room = max;
	if (room > r->left)
		room = (size_t)r->left;
	n = SEND_RETRY(pread(r->fd, o->buf + o->len, room, (off_t)r->off));
	if (n == -1) {
		log_msg(LOG_LEVEL_ERROR, "conn %llu: read error on \"%s\": %s",
			(unsigned long long)c->id, c->reqline, strerror(errno));
		return IO_ERROR;
	}
	if (n == 0)
		return truncated(c);
	o->len += (size_t)n;
	r->off += (uint64_t)n;
	r->left -= (uint64_t)n;
	return IO_OK;
}

/* write and userspace: pread into c->resp.out, then write(2) on the kTLS socket or the
 * record layer's — the transport is what differs, and transport_write() picks it. */
static enum io_result send_copy(struct conn *c, size_t max, size_t *sent)
{
	struct response_buf *o = &c->resp.out;
	enum io_result r;

	*sent = 0;
	/* the buffer may have been sized for another sender (auto switched from sendfile,
	 * whose buffer holds only the head): grow it, or every call moves only what fits */
	if (o->len == 0 && o->cap < send_copy_size(c))
		(void)response_reserve(&c->resp, send_copy_size(c));
	r = fill_out(c, max);
	if (r != IO_OK)
		return r;
	if (o->len == o->off)
		return IO_OK;
	return send_flush_out(c, false, sent);
}

static enum io_result send_sendfile(struct conn *c, size_t max, size_t *sent)
{
	struct response *r = &c->resp;
	off_t off = (off_t)r->off;
	size_t len = max < r->left ? max : (size_t)r->left;
	ssize_t n;

	uint64_t t0 = stall_now_us();

	*sent = 0;
	n = SEND_RETRY(sendfile(c->fd, r->fd, &off, len));
	if (n == -1) {
		enum io_result res = timed(c, t0, io_from_errno(errno));
		if (res == IO_ERROR)
			log_msg(LOG_LEVEL_ERROR, "conn %llu: sendfile: %s", (unsigned long long)c->id,
				strerror(errno));
		return res;
	}
	timed(c, t0, IO_OK);
	if (n == 0)
		return truncated(c);
	r->off += (uint64_t)n;
	r->left -= (uint64_t)n;
	account(c, 0, (uint64_t)n);
	*sent = (size_t)n;
	return IO_OK;
}

static enum io_result send_splice(struct conn *c, size_t max, size_t *sent)
{
	struct response *r = &c->resp;
	ssize_t n;

	*sent = 0;
	if (c->pipe[0] == -1) {
		if (pipe2(c->pipe, O_NONBLOCK | O_CLOEXEC) == -1) {
			log_msg(LOG_LEVEL_ERROR, "conn %llu: pipe2: %s", (unsigned long long)c->id,
				strerror(errno));
			c->pipe[0] = c->pipe[1] = -1;
			return IO_ERROR;
		}
	}
	if (c->pipe_len == 0 && r->left > 0) {
		loff_t off = (loff_t)r->off;
		size_t len = max < r->left ? max : (size_t)r->left;
		n = SEND_RETRY(splice(r->fd, &off, c->pipe[1], NULL, len, SPLICE_F_NONBLOCK));
		if (n == -1) {
			log_msg(LOG_LEVEL_ERROR, "conn %llu: splice from file: %s",
				(unsigned long long)c->id, strerror(errno));
			return IO_ERROR;
		}
		if (n == 0)
			return truncated(c);
		c->pipe_len = (size_t)n;
		r->off += (uint64_t)n;
		r->left -= (uint64_t)n;
	}
	uint64_t t0 = stall_now_us();
	n = SEND_RETRY(splice(c->pipe[0], NULL, c->fd, NULL, c->pipe_len,
			      SPLICE_F_NONBLOCK | (r->left > 0 ? SPLICE_F_MORE : 0)));
	if (n == -1) {
		enum io_result res = timed(c, t0, io_from_errno(errno));
		if (res == IO_ERROR)
			log_msg(LOG_LEVEL_ERROR, "conn %llu: splice to socket: %s",
				(unsigned long long)c->id, strerror(errno));
		return res;
	}
	timed(c, t0, IO_OK);
	c->pipe_len -= (size_t)n;
	account(c, 0, (uint64_t)n);
	*sent = (size_t)n;
	return IO_OK;
}

static const struct body_sender senders[SEND_MODE_MAX] = {
	[SEND_MODE_SENDFILE] = { "sendfile", SEND_MODE_SENDFILE, true, false, send_sendfile },
	[SEND_MODE_SPLICE] = { "splice", SEND_MODE_SPLICE, true, false, send_splice },
	[SEND_MODE_WRITE] = { "write", SEND_MODE_WRITE, true, true, send_copy },
	[SEND_MODE_USERSPACE] = { "userspace", SEND_MODE_USERSPACE, false, true, send_copy },
};

const struct body_sender *send_pick(enum send_mode mode, bool ktls_tx)
{
	if (mode == SEND_MODE_AUTO)	/* auto starts with sendfile; stall.c may switch */
		mode = SEND_MODE_SENDFILE;
	if (mode >= SEND_MODE_MAX || (senders[mode].needs_ktls && !ktls_tx))
		return &senders[SEND_MODE_USERSPACE];
	return &senders[mode];
}

void send_release(struct conn *c)
{
	if (c->pipe_len > 0) {
		/* bytes left in the pipe belong to an aborted response: drop the pipe */
		close(c->pipe[0]);
		close(c->pipe[1]);
		c->pipe[0] = c->pipe[1] = -1;
		c->pipe_len = 0;
	}
}
