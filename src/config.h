/* config.h — the configuration snapshot: libconfig file + command-line overrides,
 * validated once, then read-only. A reload builds a new snapshot; connections keep
 * a reference to the one they started with. */
#ifndef KTLSD_CONFIG_H
#define KTLSD_CONFIG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "common.h"
#include "proxy.h"

#define CONFIG_MAX_LISTEN 16
#define CONFIG_MAX_SNI 16
/* autoindex_max_entries at most: a listing holds its entries in memory to sort them */
#define CONFIG_MAX_AUTOINDEX_ENTRIES 100000
#define CONFIG_MAX_TRUSTED 64	/* proxy_trusted blocks per listener */
#define CONFIG_MAX_WORKERS 256	/* event loops (threads); bounds the per-worker tables */

enum send_mode {
	SEND_MODE_SENDFILE,	/* kTLS + sendfile(): the product's reason to exist */
	SEND_MODE_SPLICE,	/* kTLS + file → pipe → socket splice() */
	SEND_MODE_WRITE,	/* kTLS + pread() + write(): the known workaround */
	SEND_MODE_USERSPACE,	/* no kTLS: ktlsd's record layer seals (tlsrec.h) */
	SEND_MODE_AUTO,		/* sendfile, switching a stalled response to write */
	SEND_MODE_MAX
};

/* "sendfile", "splice", "write", "userspace", "auto"; returns -1 for anything else. */
int send_mode_parse(const char *s);
const char *send_mode_name(enum send_mode m);

/* How bodies are sent: globally (config "send") and per listener. */
struct send_settings {
	enum send_mode mode;
	size_t chunk;		/* max bytes per sendfile/splice/write call */
	int mss;		/* TCP_MAXSEG on the listener; 0 = kernel default */
	int notsent_lowat;	/* TCP_NOTSENT_LOWAT on accepted sockets; 0 = default */
};

/* Bits of send_settings set explicitly (per listener in the file, or on the command line). */
enum {
	SEND_SET_MODE = 1, SEND_SET_CHUNK = 2, SEND_SET_MSS = 4, SEND_SET_LOWAT = 8,
};

/* Experiment mode (experiment.h): connections are spread over arms, each with its own
 * send settings, and compared. */
#define CONFIG_MAX_ARMS 8		/* arms per experiment */
#define CONFIG_ARM_NAME_MAX 32		/* an arm's name with its NUL: [A-Za-z0-9_.-]{1,31} */
#define CONFIG_MAX_ARM_WEIGHT 1000

struct experiment_arm {
	char name[CONFIG_ARM_NAME_MAX];
	unsigned weight;		/* share of new connections, 1..CONFIG_MAX_ARM_WEIGHT */
	struct send_settings send;	/* the arm's own "send" group (never mss) ... */
	unsigned set;			/* ... and which of its fields it sets (SEND_SET_*) */
};

struct experiment_config {
	struct experiment_arm arm[CONFIG_MAX_ARMS];
	size_t narms;			/* 0: no experiment here */
};

struct listen_addr {
	struct sockaddr_storage ss;
	socklen_t len;
	char text[64];		/* as given, for logs */
	struct send_settings send;	/* effective for this listener: global "send", then the
					 * listener's own "send" group, then the command line */
	struct send_settings own;	/* the listener's own group ... */
	unsigned own_set;		/* ... and which of its fields it sets */
	bool autoindex;			/* effective: the listener's own "autoindex", else the
					 * global one */
	bool own_autoindex, own_autoindex_set;
	/* proxy_protocol: every connection starts with a PROXY header (v1 or v2) from a
	 * balancer in trusted[]; connections from elsewhere are closed at accept */
	bool proxy;
	struct proxy_cidr trusted[CONFIG_MAX_TRUSTED];
	size_t ntrusted;
	struct experiment_config experiment;	/* the listener's own; none: the global one */
};

struct config {
	atomic_int refs;		/* snapshot reference count, see config_ref(); workers share it */
	char *file;			/* NULL for --demo without -c */
	bool demo;			/* in-memory self-signed certificate */
	struct listen_addr listen[CONFIG_MAX_LISTEN];
	size_t nlisten;
	char *document_root;
	char *index;			/* directory index file name */
	char *mime_types;		/* path; NULL = built-in table */
	char *user, *group;		/* drop to these after binding; NULL = stay */
	bool run_as_root;		/* started as root without user: go on anyway */
	bool gzip_static;		/* serve FILE.gz for FILE to clients accepting gzip */
	struct {			/* directory listings, see autoindex.h */
		bool enabled;		/* "autoindex": list a directory without its index file */
		bool hidden;		/* "autoindex_hidden": list dot files too */
		unsigned max_entries;	/* "autoindex_max_entries": more are cut off, with a note */
		bool set;		/* "autoindex" is in the file: --demo then leaves it */
	} autoindex;
	unsigned max_connections;	/* for the whole process, all workers together */
	unsigned workers;		/* event loops, one thread each; 0 = "auto" (CPUs we may use) */
	bool workers_set;		/* "workers" is in the file or on the command line */
	bool worker_cpu_affinity;	/* pin worker i to the i-th CPU of our affinity mask */
	struct {
		char *certificate, *private_key;
		char *ciphersuites;	/* OpenSSL TLS 1.3 list; NULL = OpenSSL default */
		struct {		/* more certificates, chosen by SNI against their names */
			char *certificate, *private_key;
		} sni[CONFIG_MAX_SNI];
		size_t nsni;
	} tls;
	struct {			/* all in milliseconds */
		unsigned handshake, header, keepalive, send_idle, shutdown;
	} timeouts;
	struct {
		size_t request_line, header_bytes, headers;
		unsigned keepalive_requests;
		unsigned long nofile;	/* RLIMIT_NOFILE set at start; 0 = soft to hard */
	} limits;
	struct {
		char *error, *access;
		int level;
		bool access_json;	/* access_format "json": one JSON object per line */
	} log;
	struct send_settings send;	/* defaults for every listener */
	unsigned cli_send_set;		/* SEND_SET_* given on the command line */
	struct {
		unsigned threshold_ms;	/* no progress this long with data to send = a stall */
	} stall;
	struct {
		unsigned entries;	/* open files kept (0: no cache), see fcache.h */
		unsigned valid_ms;	/* how long an entry is trusted for its path */
	} file_cache;
	struct {
		bool enabled;
		struct listen_addr listen;	/* plain HTTP admin endpoint */
		unsigned recent;	/* closed connections kept for /stats/recent */
	} stats;
	struct experiment_config experiment;	/* for listeners without their own */
};

#define CONFIG_MAX_OVERRIDES 32

/* Command-line settings that beat the file. A flag that names a setting of the file
 * (--mss, --root, ...) is kept as text and loaded through the file's schema row, with the
 * same type and range checks; --listen, --demo and its directory are special. */
struct config_overrides {
	const char *listen[CONFIG_MAX_LISTEN];
	size_t nlisten;
	struct {
		const char *flag;	/* long option name, without "--" */
		const char *value;
	} set[CONFIG_MAX_OVERRIDES];
	size_t nset;
	bool demo;
	const char *demo_dir;
};

void config_overrides_init(struct config_overrides *ov);

/* Record --flag VALUE for the setting whose schema row has that command-line flag.
 * -1 with a message in err: no setting has that flag, or too many overrides. A later
 * one for the same flag wins (it is applied later). */
int config_overrides_add(struct config_overrides *ov, const char *flag, const char *value,
			 char *err, size_t errlen);

/* Settings a reload reads but cannot apply (the schema rows marked restart: they act on
 * the listening sockets, on the process, or on the stats listener, all set up once at
 * start): their names in out, ", "-separated ("" if none changed from o to n). */
void config_restart_only_changes(const struct config *o, const struct config *n, char *out,
				 size_t len);

/* Build a snapshot from file (NULL: defaults only, as --demo uses) and ov (may be NULL).
 * On error returns NULL and writes "FILE:LINE: what is wrong" (or just the message when
 * no line applies) into err. The result has refs == 1. */
struct config *config_load(const char *file, const struct config_overrides *ov,
			   char *err, size_t errlen);

/* Parse "ADDR:PORT", "[V6ADDR]:PORT", "*:PORT" or "PORT" into la. Returns 0 or -1 with err. */
int config_parse_listen(const char *s, struct listen_addr *la, char *err, size_t errlen);

struct config *config_ref(struct config *c);
/* Drop a reference; frees the snapshot at zero. NULL allowed. */
void config_unref(struct config *c);

#endif
