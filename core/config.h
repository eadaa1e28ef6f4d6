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
 * message "FILE:LINE: message" (no trailing newline) into err. LINE is
 * 1-based. Exceptions and conventions:
 *   - A file that cannot be opened or read has no line:
 *     "FILE: cannot open: No such file or directory" (strerror text).
 *   - A block left open is reported at the file's last line, naming the
 *     opening line: "FILE:12: <source> not closed (opened at line 9)".
 *   - A bad value quotes it (control characters shown as '?', long values
 *     cut with "..."): "FILE:7: invalid duration "15x" for retry-after".
 *   - Unknown names: `unknown directive "foo"` (at top level and inside a
 *     block alike), `unknown block directive <foo>`; a known directive in
 *     the wrong place: `"retry-after" is only valid inside <domain>`,
 *     `"host-name" is only valid at top level`.
 *
 * The language, as implemented (config_parse.c):
 *   - A `#` starts a comment at the start of a line or after whitespace
 *     (so `route [::1]:25#x` keeps its `#`). Leading and trailing
 *     whitespace (including a CR of CRLF files) is ignored.
 *   - A directive is NAME VALUE: the value is the rest of the line, trimmed.
 *     Directive and block names are case-insensitive. Every directive
 *     needs a value. Repeating a directive in the same block (or at top
 *     level) replaces the earlier value: the later one wins. smtp-listener
 *     and http-listener are the exception: each adds a listener, and the
 *     file's listeners replace the built-in one.
 *   - Blocks do not nest. `<domain NAME>` takes an exact domain name
 *     (stored lower-case) or `*`; a second block for the same name is an
 *     error. `<source CIDR>` likewise (same network after masking).
 *   - `<domain *>` overrides the built-in defaults for what it sets; every
 *     other block inherits what it does not set from the resulting `*`,
 *     wherever `<domain *>` appears in the file.
 *   - Sources: config_defaults() installs `<source 127.0.0.1/32>` and
 *     `<source ::1/128>` with always-allow-relaying yes. config_load()
 *     keeps them unless the file has at least one <source> block, in
 *     which case only the file's sources exist.
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
	bool has_route;             /* a `route` applies (either form below) */
	struct config_addr route;   /* `route [127.0.0.1]:2600`, `route [::1]`: an IP
				     * literal (port 25 when omitted); when route_host is
				     * set only route.text ("host:port") is filled */
	char *route_host;           /* non-NULL when the route names a host to resolve:
				     * `route mx.example.net:2525` (lower-case) */
	uint16_t route_port;        /* the route's port, either form */
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

	char *postmaster;           /* `postmaster ADDR`; NULL when not set */
	char *bounce_domain;        /* `bounce-domain NAME` (lower-case); NULL when not set */
	char *tls_certificate;      /* `tls-certificate PATH`; NULL when not set (not opened here) */
	char *tls_private_key;      /* `tls-private-key PATH`; NULL when not set (not opened here) */

	struct config_source *sources;
	size_t n_sources;
	/* domains[0] is always "*"; domains[1..] are sorted by name (strcmp
	 * order) so config_domain_for() is a binary search. */
	struct config_domain *domains;
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

/* "30s", "15m", "4h", "4d12h", "500ms", "90" (seconds). Units ms s m h d w,
 * lower-case, largest first, each once. Returns 0 or -1 (also on overflow). */
int config_parse_duration(const char *s, uint64_t *out_ms);
/* "1000/h", "50/m", "10/s", "83/10m", "5/2h". Returns 0 or -1. */
int config_parse_rate(const char *s, struct config_rate *out);
/* "10M", "512k", "1G", "123" (bytes). Returns 0 or -1. */
int config_parse_size(const char *s, uint64_t *out);
/* "127.0.0.1", "10/8", "10.0.0.0/8", "0/0", "::1", "2001:db8::/32". Host
 * bits are cleared; an IPv4-mapped IPv6 network (prefix >= 96) is stored
 * as the IPv4 network it denotes. Returns 0 or -1. */
int config_parse_cidr(const char *s, struct config_cidr *out);
/* "127.0.0.1:2525", "[::1]:2525", "*:25" -> 0.0.0.0. Numeric hosts only;
 * the port may be omitted only when default_port is not 0 ("::1" then
 * reads as a bare IPv6 address). Returns 0 or -1. */
int config_parse_addr(const char *s, uint16_t default_port, struct config_addr *out);
/* An IPv4-mapped IPv6 addr (::ffff:a.b.c.d) matches as IPv4. */
bool config_cidr_match(const struct config_cidr *net, const struct sockaddr *addr);
/* "yes"/"no"/"true"/"false"/"on"/"off"/"1"/"0", case-insensitive. */
int config_parse_bool(const char *s, bool *out);
/* Decimal digits only (no sign, no spaces), min <= value <= max. */
int config_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out);
/* "10.0.0.0/8", "2001:db8::/32" into buf. Returns 0, or -1 if it does not fit. */
int config_cidr_format(const struct config_cidr *net, char *buf, size_t len);

#endif
