/*
 * config.h - Salvo's configuration model and the PowerMTA-style parser.
 *
 * The file language: one directive per line, `#` starts a comment, block
 * directives `<name arg> ... </name>`, durations (`30s 15m 4h 4d12h`), rates
 * (`1000/h 50/m 10/s 83/10m`), CIDR sources (`127.0.0.1`, `10.0.0.0/8`,
 * `0/0`, `::1`, `::/0`). Unknown directives are errors, never ignored.
 *
 * Ownership: config_load()/config_defaults() fill a `struct config` that owns
 * every string and array in it; config_free() releases them all. A loaded
 * config is immutable and may be read from any thread.
 *
 * Diagnostics: on failure config_load() returns -1 and writes exactly one
 * message "FILE:LINE: message" (no trailing newline) into err.
 */
#ifndef SALVO_CONFIG_H
#define SALVO_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>

#define CONFIG_ERR_MAX 512

/* A socket address with its printable form, e.g. "127.0.0.1:2525". */
struct config_addr {
	struct sockaddr_storage sa;
	socklen_t salen;
	char text[64];
};

/* A CIDR network; family AF_INET or AF_INET6, addr in network order. */
struct config_cidr {
	int family;
	uint8_t addr[16];
	unsigned prefix; /* 0..32 or 0..128 */
};

/* A rate: `count` events per `per_ms` milliseconds (`83/10m` -> 83, 600000). */
struct config_rate {
	uint64_t count;
	uint64_t per_ms;
};

/* <source CIDR> ... </source>. The most specific (longest prefix) match wins. */
struct config_source {
	struct config_cidr net;
	bool always_allow_relaying;
	int line; /* where the block starts, for diagnostics */
};

/* <domain NAME> ... </domain>. NAME is an exact domain or "*". Values that a
 * block does not set are inherited from <domain *>, then from the built-in
 * defaults; config_domain_for() returns the fully resolved settings. */
struct config_domain {
	char *name;                 /* lower-case; "*" for the wildcard */
	uint64_t *retry_after_ms;   /* schedule; the last entry repeats */
	size_t n_retry_after;
	uint64_t bounce_after_ms;
	unsigned max_smtp_out;
	unsigned max_msg_per_connection;
	unsigned max_rcpt_per_message;
	bool has_route;
	struct config_addr route;   /* `route [127.0.0.1]:2600` or `route host:port` */
	char *route_host;           /* non-NULL when the route names a host to resolve */
	uint16_t route_port;
	uint64_t set_mask;          /* which CONFIG_DOM_* fields this block set */
	int line;
};

enum {
	CONFIG_DOM_RETRY_AFTER = 1u << 0,
	CONFIG_DOM_BOUNCE_AFTER = 1u << 1,
	CONFIG_DOM_MAX_SMTP_OUT = 1u << 2,
	CONFIG_DOM_MAX_MSG_PER_CONN = 1u << 3,
	CONFIG_DOM_ROUTE = 1u << 4,
	CONFIG_DOM_MAX_RCPT = 1u << 5,
};

struct config {
	char *path;                 /* file it came from; NULL for built-in defaults */
	char *host_name;            /* default: gethostname() */
	char *spool_dir;            /* default: "./salvo-spool" */
	struct config_addr *smtp_listeners; /* default: 127.0.0.1:2525 */
	size_t n_smtp_listeners;
	struct config_addr *http_listeners; /* default: 127.0.0.1:8025 (unused yet) */
	size_t n_http_listeners;
	bool has_dns_server;
	struct config_addr dns_server;      /* default: the system resolver */
	unsigned worker_threads;    /* default: number of online CPUs */
	uint64_t max_message_size;  /* bytes, SIZE; default 50 MiB */
	unsigned max_rcpt_per_session_message; /* intake: RCPTs per message, default 1000 */
	uint64_t smtp_command_timeout_ms; /* intake per-command timeout, default 5m */
	uint64_t smtp_data_timeout_ms;    /* intake DATA inactivity timeout, default 10m */
	uint16_t smtp_port;         /* remote port for MX deliveries, default 25 */

	struct config_source *sources;
	size_t n_sources;
	struct config_domain *domains; /* domains[0] is always "*" */
	size_t n_domains;
};

/* Fill cfg with the built-in defaults (what `salvod` runs on with no -c). */
int config_defaults(struct config *cfg);

/* Parse path into cfg (starting from the defaults). Returns 0, or -1 with
 * "FILE:LINE: message" in err. On failure cfg holds nothing to free. */
int config_load(struct config *cfg, const char *path, char err[CONFIG_ERR_MAX]);

/* Same, from a string; `name` is used as FILE in messages. For tests. */
int config_load_string(struct config *cfg, const char *name, const char *text,
		       char err[CONFIG_ERR_MAX]);

void config_free(struct config *cfg);

/* The resolved settings for a destination domain (lower-case): the exact
 * block if any, else "*". Every field is filled (inherits from "*" and the
 * built-in defaults). The pointer lives as long as cfg. */
const struct config_domain *config_domain_for(const struct config *cfg, const char *domain);

/* The most specific <source> matching addr, or NULL. */
const struct config_source *config_source_for(const struct config *cfg,
					      const struct sockaddr *addr);

/* --- value parsers (pure; exported for tests and other modules) --------- */

/* "30s", "15m", "4h", "4d12h", "500ms", "90" (seconds). Returns 0 or -1. */
int config_parse_duration(const char *s, uint64_t *out_ms);
/* "1000/h", "50/m", "10/s", "83/10m", "5/2h". Returns 0 or -1. */
int config_parse_rate(const char *s, struct config_rate *out);
/* "10M", "512k", "1G", "123" (bytes). Returns 0 or -1. */
int config_parse_size(const char *s, uint64_t *out);
/* "127.0.0.1", "10/8", "10.0.0.0/8", "0/0", "::1", "2001:db8::/32". */
int config_parse_cidr(const char *s, struct config_cidr *out);
/* "127.0.0.1:2525", "[::1]:2525", "*:25" -> 0.0.0.0. Returns 0 or -1. */
int config_parse_addr(const char *s, uint16_t default_port, struct config_addr *out);
bool config_cidr_match(const struct config_cidr *net, const struct sockaddr *addr);
/* "yes"/"no"/"true"/"false"/"on"/"off"/"1"/"0". */
int config_parse_bool(const char *s, bool *out);

#endif
