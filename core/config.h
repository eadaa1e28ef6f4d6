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
 * Diagnostics: on failure config_load() returns -1 and writes the first
 * message "FILE:LINE: message" (no trailing newline) into err. LINE is
 * 1-based. config_load_report() gives every error of the file (the parser
 * goes on after each) and the warnings. Exceptions and conventions:
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
 *   - Blocks nest only as PowerMTA's do: `<domain>` inside `<virtual-mta>`
 *     and `<virtual-mta-pool>` (settings for that one), `<address-list>`
 *     inside the bounce and feedback-loop processors. `<domain NAME>`
 *     takes an exact domain name (stored lower-case), `*`, `*.example.com`,
 *     `[*.]example.com`, a queue name `{name}`, or a name with a
 *     `$macro` of `domain-macro` (one block per value); a second block for
 *     the same name (in the same scope) is an error. `<source CIDR>`
 *     likewise (same network after masking); `<source {name}>` is a named
 *     source.
 *   - PowerMTA directives Salvo does not have by design are refused with
 *     the reason and what to use instead (config_pmta.c, README); those it
 *     parses and stores without applying them yet give a warning.
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
#include <sys/types.h>
#include <netinet/in.h>

#define CONFIG_ERR_MAX 512

struct pcre_re; /* a compiled PCRE2 pattern (core/pcre_re.h) */

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

/* PowerMTA's 0 for a rate or a connection cap: send nothing, the queue
 * holds its mail (for backoff- ones: while in backoff). A rate of count 0
 * with a period is that; {0, 0} is unlimited. backoff_max_smtp_out takes
 * CONFIG_SMTP_OUT_NONE, since its 0 means "not set"; max_smtp_out takes 0. */
#define CONFIG_RATE_NONE ((struct config_rate){0, 1})
#define CONFIG_SMTP_OUT_NONE ((unsigned)-2)

static inline bool config_rate_none(const struct config_rate *r)
{
	return !r->count && r->per_ms;
}

/* <source CIDR> ... </source>. The most specific (longest prefix) match wins. */
struct config_source {
	char *name;                 /* `<source {name}>` / `<source name>`: a named source
				     * (for `source {name}` in <smtp-user> and `source=`
				     * of smtp-listener); NULL for a CIDR source */
	struct config_cidr net;     /* unset for a named source */
	bool always_allow_relaying;
	bool process_x_virtual_mta; /* honour X-Virtual-MTA: (pool or vmta name) */
	bool process_x_job;         /* honour X-Job: (campaign id) */
	bool require_auth;          /* relay only after SMTP AUTH */
	bool allow_unencrypted_auth; /* `allow-unencrypted-plain-auth`: AUTH without TLS */
	uint64_t max_message_size;  /* `max-message-size`: 0 = the default for this kind
				     * of source (see config_source_max_message_size) */
	unsigned max_connections_per_ip; /* `smtp-max-connections-per-ip`: 0 = not set */
	unsigned max_rcpt_per_message; /* `max-rcpt-per-message`: RCPTs per transaction; 0 = the server's */
	uint64_t command_timeout_ms; /* `smtp-command-timeout`: 0 = the server's */
	uint64_t data_timeout_ms;    /* `smtp-data-timeout`: 0 = the server's */
	bool bare_newline_normalize; /* `bare-newline normalize`: bare CR/LF in DATA -> CRLF (default reject) */
	bool no_smtp_service;       /* `smtp-service no`: a client from here gets 554 at connect */
	bool no_starttls;           /* `allow-starttls no`: STARTTLS neither offered nor taken */
	unsigned log_flags;         /* CONFIG_LOG_*: log-connections, log-commands, log-data (transcripts) */
	char *default_virtual_mta;  /* as written; NULL when not set */
	size_t default_pool;        /* resolved: index into cfg->pools (0 = default) */
	/* PowerMTA's intake settings (engine/intake.c applies them) */
	bool add_message_id;        /* `add-message-id-header yes`: one when the message has none */
	bool no_received_header;    /* `add-received-header no`: salvod's own Received: is left out */
	bool hide_message_source;   /* `hide-message-source yes`: salvod's Received: without the client */
	bool remove_received;       /* `remove-received-headers yes`: the message's own Received: go */
	bool retain_x_job;          /* `retain-x-job yes`: the job header stays in the message */
	bool retain_x_virtual_mta;  /* `retain-x-virtual-mta yes` */
	bool process_x_envid;       /* `process-x-envid yes`: X-Envid is the message's ENVID */
	bool no_verp;               /* `verp-default no`: return path as given unless MAIL has XVERP */
	char **remove_headers;      /* `remove-header A,B`: names the message's fields lose at intake */
	size_t n_remove_headers;
	bool header_edits;          /* any of add_message_id .. remove_headers (set at load) */
	char *jobid_header;         /* `jobid-header NAME`; NULL: X-Job */
	char *pattern_list;         /* `pattern-list NAME` as written; NULL when none */
	size_t intake_list;         /* resolved: 1 + index into cfg->intake_lists; 0 = none */
	int pattern_list_line;
	char *suppression_lists;    /* `suppression-lists A,B` as written; NULL when none */
	size_t *suppress;           /* resolved: indexes into cfg->address_lists */
	size_t n_suppress;
	int suppression_lists_line;
	struct config_rate auth_failure_rate; /* `smtp-max-auth-failure-rate`; count 0 = the built-in */
	bool default_by_source_ip;  /* `default-virtual-mta by-smtp-source-ip`:
				     * config_source_pool() chooses per session */
	int line; /* where the block starts, for diagnostics */
};

/* <pattern-list NAME> (PowerMTA's, not <smtp-pattern-list>): at intake,
 * the first rule that matches chooses a recipient's virtual MTA or pool
 * (config_intake_list.c; engine/intake.c applies it). */
enum config_intake_what { CONFIG_INTAKE_MAIL_FROM, CONFIG_INTAKE_RCPT_TO, CONFIG_INTAKE_HEADER };

struct config_intake_rule {
	enum config_intake_what what;
	char *header;               /* CONFIG_INTAKE_HEADER: the field's name */
	struct pcre_re *re;
	char *vmta;                 /* virtual-mta=NAME as written; NULL when the rule sets none */
	size_t pool;                /* resolved index into cfg->pools */
	int line;
};

/* <address-list [NAME]> (config_address_list.c): named at top level, or
 * unnamed inside a bounce or feedback-loop processor. */
enum { CONFIG_ALIST_NAMED, CONFIG_ALIST_BOUNCE, CONFIG_ALIST_FBL };
struct pcre_re;
struct config_address_list {
	char *name;                 /* NULL inside a processor */
	int owner;                  /* CONFIG_ALIST_* */
	char **locals;              /* `address LOCALPART` (lower case) */
	size_t n_locals;
	char **addrs;               /* `address USER@DOMAIN` (lower case) */
	size_t n_addrs;
	char **domains;             /* `domain NAME` (lower case; that domain only) */
	size_t n_domains;
	struct pcre_re **res;       /* `address /REGEX/` (anywhere in the address) */
	size_t n_res;
	int line;
};

struct config_intake_list {
	char *name;
	struct config_intake_rule *rules;
	size_t n_rules;
	bool has_rcpt_rules;        /* some rule looks at the recipient */
	int line;
};

/* SMTP transcripts (`log-connections`, `log-commands`, `log-data` in
 * <source> and <domain>; engine/trace.c). */
enum {
	CONFIG_LOG_CONNECTIONS = 1u << 0,
	CONFIG_LOG_COMMANDS = 1u << 1,
	CONFIG_LOG_DATA = 1u << 2,
	CONFIG_LOG_TLS = 1u << 3,   /* `log-tls`: the TLS line (protocol, cipher) alone */
};

/* Who may use the HTTP API (config_http.c). A request's role comes from a
 * valid API token when it carries one, else from the most specific
 * `http-access` rule matching the client's address; with no http-access
 * line at all, loopback clients are admin and others none. admin: every
 * endpoint; monitor: reads (GET/HEAD) only; none: nothing. */
enum config_http_role { CONFIG_HTTP_NONE, CONFIG_HTTP_MONITOR, CONFIG_HTTP_ADMIN };

struct config_http_access {
	struct config_cidr net;
	enum config_http_role role;
	int line;
};

struct config_http_token {
	char *token;                /* at least 16 characters, no spaces */
	enum config_http_role role; /* default admin */
	int line;
};

/* <virtual-mta NAME>: a source IP and the HELO name that goes with it. The
 * built-in "default" virtual MTA (when the file defines none by that name)
 * binds no source address and says the host-name. */
struct config_vmta {
	char *name;
	bool has_source;
	struct config_addr source;  /* `smtp-source-host IP HELO`: port 0 */
	char *helo;                 /* NULL: the host-name */
	/* `cold-virtual-mta NAME`: PowerMTA's IP warm-up. Mail for this vmta
	 * goes through the cold one first, up to the queue's
	 * max-cold-virtual-mta-msg (the cold vmta's settings) per day; the
	 * rest through this one (engine/egress_policy.c). */
	char *cold_name;
	bool has_cold;
	size_t cold;                /* resolved: index into cfg->vmtas */
	int cold_line;
	int line;
};

/* <virtual-mta-pool NAME>: virtual MTAs that connections rotate across.
 * pools[0] is always the default pool; each virtual MTA also forms an
 * implicit pool of its own name, so a header or default-virtual-mta may
 * name either. */
struct config_pool {
	char *name;
	size_t *vmtas;              /* indexes into cfg->vmtas */
	size_t n_vmtas;
	char **members;             /* `virtual-mta NAME` lines as written */
	size_t n_members;
	int line;
};

/* `mx PATTERN QUEUE` in <mx-rollup-list>: a domain whose MX hosts match
 * PATTERN (lower-case; `*` matches any run of characters) is delivered
 * through the queue named QUEUE. */
struct config_rollup {
	char *pattern;
	char *queue;
	int line;
};

/* Actions of a `reply /REGEX/ ACTIONS` rule. */
enum {
	CONFIG_PAT_MODE_BACKOFF = 1u << 0,
	CONFIG_PAT_MODE_NORMAL = 1u << 1,
	CONFIG_PAT_DISABLE_SOURCE_IP = 1u << 2,
	CONFIG_PAT_SKIP_MX = 1u << 3,
	CONFIG_PAT_BOUNCE_RCPT = 1u << 4,
	CONFIG_PAT_BOUNCE_QUEUE = 1u << 5, /* bounce every recipient queued for the domain */
	CONFIG_PAT_DEFER_QUEUE = 1u << 6,  /* defer the whole queue (retry later) */
};

struct config_pattern {
	struct pcre_re *re;         /* PCRE2, case-insensitive (pcre_re_match) */
	char *text;                 /* the regex as written */
	unsigned actions;           /* CONFIG_PAT_* */
	uint64_t reenable_after_ms; /* for disable-source-ip; default 1h */
	int line;
};

/* <smtp-pattern-list NAME>: rules matched against "CODE TEXT" of a reply. */
struct config_pattern_list {
	char *name;
	struct config_pattern *rules;
	size_t n_rules;
	int line;
};

struct config_webhook; /* core/config_webhook.h */

/* <smtp-user NAME>: an account for SMTP AUTH. password is as written:
 * plain text, or a crypt(3) hash ("$6$...", "$y$...") when it starts with '$'. */
struct config_smtp_user {
	char *name;
	char *password;
	char *source;               /* `source {name}`: the named source after AUTH; NULL none */
	int line;
};

/* `domain-key SELECTOR,DOMAIN,KEYFILE`: a DKIM signing key. */
struct config_domain_key {
	char *selector;
	char *domain;               /* lower-case */
	char *path;
	size_t vmta;                /* inside <virtual-mta>: its index (signs only its
				     * mail, before the top-level keys); SIZE_MAX: top level */
	int line;
};

/* `/REGEX/ CATEGORY` in <bounce-category-patterns>: operator overrides of
 * the bounce classifier, tried before its own rules. */
struct config_category_pattern {
	struct pcre_re *re;
	char *text;
	char *category;
	int line;
};

/* One host of `smtp-hosts` (PowerMTA: smarthosts instead of the MX
 * lookup). Hosts are tried in order; `;` starts a later group (a
 * fallback), `,` separates hosts of one group. A name is looked up as a
 * mail domain (MX, then its own address), so `lookup-mx:example.com` is
 * the same as `example.com`. */
struct config_smtp_host {
	char *host;                 /* lower-case name, or the address as text */
	uint16_t port;              /* 25 when not written */
	bool is_ip;                 /* addr is set: no lookup */
	struct config_addr addr;
	unsigned group;             /* 0, 1, ... in file order */
};

/* `source-ip-max-smtp-out IP N`, `source-ip-max-msg-rate IP RATE` in
 * <domain>: the limits of the sessions from that source address (a virtual
 * MTA's smtp-source-host) to the domain, instead of max-smtp-out and
 * max-msg-rate. One entry per address; a block's lines add up. */
struct config_source_limit {
	struct config_cidr ip;
	unsigned max_smtp_out;      /* 0: not set */
	bool has_rate;
	struct config_rate max_msg_rate; /* count 0: unlimited */
};

/* <domain NAME> ... </domain>. NAME is an exact domain or "*". Values that a
 * block does not set are inherited from <domain *>, then from the built-in
 * defaults; config_domain_for() returns the fully resolved settings. */
struct config_domain {
	char *name;                 /* lower-case; "*" for the wildcard; also `*.example.com`
				     * (subdomains only), `[*.]example.com` (the domain and its
				     * subdomains) and queue names such as `{sparkpost}` */
	char *scope;                /* vmta or pool the block is nested in (lower-case); NULL
				     * at top level */
	char **values;              /* every <domain> directive's value as written (index
				     * config_domain_key()), NULL when unset; resolved like
				     * the typed fields; what --show prints */
	uint64_t *retry_after_ms;   /* schedule; the last entry repeats */
	size_t n_retry_after;
	uint64_t bounce_after_ms;
	unsigned max_smtp_out;
	unsigned max_msg_per_connection;
	unsigned max_rcpt_per_message; /* also `max-rcpt-per-transaction` */
	struct config_rate max_msg_rate;      /* per virtual MTA; count 0 = unlimited */
	struct config_rate max_connect_rate;  /* per virtual MTA; count 0 = unlimited */
	uint64_t idle_timeout_ms;   /* an idle connection is kept this long for reuse */
	/* Backoff mode (entered by a pattern's mode=backoff, left after
	 * backoff_to_normal_after of quiet or by mode=normal): */
	struct config_rate backoff_max_msg_rate;
	unsigned backoff_max_smtp_out;
	uint64_t *backoff_retry_after_ms;
	size_t n_backoff_retry_after;
	uint64_t backoff_to_normal_after_ms;
	char *smtp_pattern_list;    /* name as written; NULL when none */
	ssize_t pattern_list;       /* resolved index into cfg->pattern_lists, or -1 */
	char *queue_to;             /* `queue-to NAME`: deliver through that queue */
	bool dkim_sign;             /* `dkim-sign` (default yes: sign when a key matches From) */
	bool use_starttls;          /* opportunistic STARTTLS outbound (default yes) */
	bool require_starttls;      /* defer rather than deliver in clear (default no) */
	bool has_route;             /* a `route` applies (either form below) */
	struct config_addr route;   /* `route [127.0.0.1]:2600`, `route [::1]`: an IP
				     * literal (port 25 when omitted); when route_host is
				     * set only route.text ("host:port") is filled */
	char *route_host;           /* non-NULL when the route names a host to resolve:
				     * `route mx.example.net:2525` (lower-case) */
	uint16_t route_port;        /* the route's port, either form */
	/* outbound SMTP deadlines (PowerMTA's names), each for the whole step on
	 * the monotonic clock; RFC 5321 4.5.3.2 defaults */
	uint64_t connect_timeout_ms;       /* `connect-timeout` (30s) */
	uint64_t smtp_greeting_timeout_ms; /* `smtp-greeting-timeout`: the banner (5m) */
	uint64_t data_send_timeout_ms;     /* `data-send-timeout`: sending the message (3m) */
	uint64_t smtp_data_termination_timeout_ms; /* `smtp-data-termination-timeout`:
				     * the reply to the end of data or BDAT LAST (10m) */
	struct config_smtp_host *smtp_hosts; /* `smtp-hosts`: deliver there instead of to the MX */
	size_t n_smtp_hosts;
	char *auth_username;        /* `auth-username`/`auth-password`: outbound AUTH PLAIN or */
	char *auth_password;        /* LOGIN, over TLS only unless auth_allow_clear; NULL: none */
	bool auth_allow_clear;      /* `allow-unencrypted-plain-auth` in <domain> */
	bool backoff_to_normal_after_delivery; /* `backoff-to-normal-after-delivery`: a delivery
				     * in backoff mode ends it (default no) */
	struct config_source_limit *source_limits;
	size_t n_source_limits;
	bool disable_mx_rollup;     /* `disable-mx-rollup`: never rolled up into an
				     * <mx-rollup-list> queue (default no) */
	bool bounce_upon_no_mx;     /* `bounce-upon-no-mx`: a domain without MX records bounces
				     * (5.1.2) instead of going to its A/AAAA (default no) */
	bool ignore_8bitmime;       /* `ignore-8bitmime`: never send BODY=8BITMIME (default no) */
	unsigned max_errors_per_connection; /* `max-errors-per-connection`: a session that got
				     * this many 4xx/5xx replies ends after its
				     * transaction; 0 = unlimited (default) */
	unsigned queue_priority;    /* `queue-priority` 0-100 (default 50): when sending
				     * capacity is scarce (the worker's turn, the outbound
				     * descriptors) higher-priority queues get it first */
	uint64_t retry_recipients_after_ms; /* `retry-recipients-after`: a recipient whose own
				     * RCPT or DATA got a 4xx on a working session waits
				     * this long instead of retry-after; 0 = unset */
	bool held_by_type;          /* `type` other than smtp (http-delivery, file, pipe,
				     * discard, ...): Salvo delivers by SMTP only, so the
				     * queue's mail is held, never sent (egress_max_out) */
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
	CONFIG_DOM_MAX_MSG_RATE = 1u << 6,
	CONFIG_DOM_MAX_CONNECT_RATE = 1u << 7,
	CONFIG_DOM_IDLE_TIMEOUT = 1u << 8,
	CONFIG_DOM_BACKOFF_MSG_RATE = 1u << 9,
	CONFIG_DOM_BACKOFF_SMTP_OUT = 1u << 10,
	CONFIG_DOM_BACKOFF_RETRY = 1u << 11,
	CONFIG_DOM_BACKOFF_TO_NORMAL = 1u << 12,
	CONFIG_DOM_PATTERN_LIST = 1u << 13,
	CONFIG_DOM_QUEUE_TO = 1u << 14,
	CONFIG_DOM_DKIM_SIGN = 1u << 15,
	CONFIG_DOM_USE_STARTTLS = 1u << 16,
	CONFIG_DOM_REQUIRE_STARTTLS = 1u << 17,
	CONFIG_DOM_CONNECT_TIMEOUT = 1u << 18,
	CONFIG_DOM_GREETING_TIMEOUT = 1u << 19,
	CONFIG_DOM_DATA_SEND_TIMEOUT = 1u << 20,
	CONFIG_DOM_DATA_TERM_TIMEOUT = 1u << 21,
	CONFIG_DOM_BOUNCE_NO_MX = 1u << 22,
	CONFIG_DOM_IGNORE_8BITMIME = 1u << 23,
	CONFIG_DOM_MAX_ERRORS = 1u << 24,
	CONFIG_DOM_SMTP_HOSTS = 1u << 25,
	CONFIG_DOM_AUTH_USER = 1u << 26,
	CONFIG_DOM_AUTH_PASS = 1u << 27,
	CONFIG_DOM_AUTH_CLEAR = 1u << 28,
	CONFIG_DOM_BACKOFF_NORMAL_DLV = 1u << 29,
	CONFIG_DOM_DISABLE_ROLLUP = 1u << 30,
};
#define CONFIG_DOM_SOURCE_LIMITS (1ULL << 31)
#define CONFIG_DOM_QUEUE_PRIORITY (1ULL << 32)
#define CONFIG_DOM_RETRY_RCPTS (1ULL << 33)
#define CONFIG_DOM_TYPE (1ULL << 34)
#define CONFIG_QUEUE_PRIORITY_DEFAULT 50

struct config {
	char *path;                 /* file it came from; NULL for built-in defaults */
	char *host_name;            /* default: gethostname() */
	char *spool_dir;            /* default: "./salvo-spool" */
	uint64_t spool_commit_delay_ms; /* a busy writer's wait for a fuller batch (1ms; 0 never) */
	struct config_addr *smtp_listeners; /* default: 127.0.0.1:2525 */
	size_t n_smtp_listeners;
	struct config_addr *http_listeners; /* default: 127.0.0.1:8025 */
	size_t n_http_listeners;
	bool *http_listener_tls;    /* `http-listener ADDR tls=yes`: parallel to
				     * http_listeners; NULL when none is TLS */
	struct config_http_access *http_access; /* `http-access CIDR ROLE`, in file order */
	size_t n_http_access;
	struct config_http_token *http_tokens;  /* `http-api-token TOKEN [ROLE]` */
	size_t n_http_tokens;
	uint64_t http_max_body_size; /* `http-max-body-size`, default 64 MiB */
	unsigned http_max_connections;        /* `http-max-connections` per listener (1000) */
	unsigned http_max_connections_per_ip; /* `http-max-connections-per-ip` (100) */
	bool has_dns_server;
	struct config_addr dns_server;      /* default: the system resolver */
	unsigned worker_threads;    /* default: number of online CPUs */
	uint64_t max_message_size;  /* bytes, SIZE; default 50 MiB */
	unsigned max_rcpt_per_session_message; /* intake: RCPTs per message, default 1000 */
	uint64_t smtp_command_timeout_ms; /* intake per-command timeout, default 5m */
	uint64_t smtp_data_timeout_ms;    /* intake DATA inactivity timeout, default 10m */
	unsigned smtp_max_connections;    /* inbound sessions in all (2000) */
	unsigned smtp_max_connections_per_ip; /* inbound sessions from one address (100) */
	unsigned smtp_max_errors;         /* protocol errors before 421 and close (10) */
	/* Sessions that may not relay (only the bounce domain's reports reach
	 * them) have their own limits: */
	uint64_t bounce_max_message_size; /* `bounce-max-message-size` (1 MiB) */
	struct config_rate bounce_max_reports_per_ip; /* `bounce-max-reports-per-ip` (1000/h) */
	uint64_t smtp_max_session_time_ms; /* `smtp-max-session-time` (10m) */
	uint16_t smtp_port;         /* remote port for MX deliveries, default 25 */

	char *postmaster;           /* `postmaster ADDR`; NULL when not set */
	char *bounce_domain;        /* `bounce-domain NAME` (lower-case); NULL when not set */
	unsigned soft_bounce_suppress_after; /* soft bounces before an address is suppressed (3) */
	uint64_t bounce_verp_retention_ms;   /* how long deliveries stay matchable (7d) */
	uint64_t queue_free_after_ms;        /* an empty queue idle this long is freed (60s) */
	char *tls_certificate;      /* `tls-certificate PATH`; NULL when not set (not opened here) */
	char *tls_private_key;      /* `tls-private-key PATH`; NULL when not set (not opened here) */
	char *tls_ciphers;          /* `tls-ciphers LIST`: inbound TLS 1.2 (OpenSSL syntax); NULL: forward-secret AEAD only */
	char *tls_ciphersuites;     /* `tls-ciphersuites LIST`: inbound TLS 1.3; NULL: OpenSSL's */

	struct config_source *sources;
	size_t n_sources;
	struct config_vmta *vmtas;  /* vmtas[0] is "default" */
	size_t n_vmtas;
	struct config_pool *pools;  /* pools[0] is "default"; then the file's
				     * pools, then one implicit pool per vmta */
	size_t n_pools;
	struct config_rollup *rollups;
	size_t n_rollups;
	struct config_pattern_list *pattern_lists;
	size_t n_pattern_lists;
	struct config_address_list *address_lists; /* <address-list> */
	size_t n_address_lists;
	struct config_intake_list *intake_lists; /* <pattern-list NAME> */
	size_t n_intake_lists;
	struct config_category_pattern *category_patterns;
	size_t n_category_patterns;
	struct config_domain_key *domain_keys;
	size_t n_domain_keys;
	struct config_smtp_user *smtp_users;
	size_t n_smtp_users;
	struct config_addr *smtps_listeners; /* `smtps-listener`: implicit TLS (port 465 style) */
	size_t n_smtps_listeners;
	/* domains[0] is always "*"; domains[1..] are sorted by name (strcmp
	 * order) so config_domain_for() is a binary search. */
	struct config_domain *domains;
	size_t n_domains;
	/* <domain> blocks nested in <virtual-mta>/<virtual-mta-pool>, as
	 * written (only what they set); config_domain_resolve() merges them */
	struct config_domain *vdomains;
	size_t n_vdomains;

	/* PowerMTA-compatibility settings (config_pmta.c) */
	char **smtp_listener_source; /* `smtp-listener ADDR source=NAME`: parallel to
				      * smtp_listeners, NULL entries; NULL when none */
	bool *smtp_listener_no_tls;  /* parallel to smtp_listeners (NULL: all false):
				     * `smtp-listener ADDR tls=no`, no STARTTLS offered there */
	struct config_addr *name_servers; /* `name-server IP`, in file order (dns_server is the first) */
	size_t n_name_servers;
	/* the bounce [0] and feedback-loop [1] processors: `deliver-unmatched-email
	 * no` (PowerMTA's default is yes) and `deliver-matched-email yes` set */
	bool proc_unmatched_no[2], proc_matched_yes[2];
	char **relay_domains;       /* `relay-domain`: lower case, as written (`x`, `*.x`, `[*.]x`) */
	size_t n_relay_domains;
	char *log_file;             /* `log-file PATH`: salvod's diagnostics go there; NULL stderr */
	bool run_as_root;           /* `run-as-root` (default no) */
	bool drop_root;             /* the file says `run-as-root no`: a salvod started as
				     * root becomes run_as_user once its listeners are
				     * bound (engine/privdrop.c) */
	char *run_as_user;          /* `run-as-user NAME`; NULL: "salvo" */
	struct config_acct_file *acct_files;
	size_t n_acct_files;
	struct config_webhook *webhooks; /* <acct-webhook NAME> blocks, file order (core/config_webhook.h) */
	size_t n_webhooks;
};

/* Record types of <acct-file> (`records d,b,...`). */
enum {
	CONFIG_ACCT_D = 1u << 0,  /* delivery */
	CONFIG_ACCT_B = 1u << 1,  /* bounce */
	CONFIG_ACCT_T = 1u << 2,  /* transient failure */
	CONFIG_ACCT_TQ = 1u << 3, /* transient queue-wide failure */
	CONFIG_ACCT_R = 1u << 4,  /* reception */
	CONFIG_ACCT_F = 1u << 5,  /* feedback-loop report */
	CONFIG_ACCT_RB = 1u << 6, /* remote bounce (asynchronous DSN) */
	CONFIG_ACCT_RS = 1u << 7, /* remote status */
	CONFIG_ACCT_N_TYPES = 8,
};

/* <acct-file PATH|"|PROGRAM">: PowerMTA's CSV accounting. */
struct config_acct_file {
	char *path;                 /* a file, or the command after '|' */
	bool pipe;
	unsigned records;           /* CONFIG_ACCT_* (default d,b) */
	char *record_fields[CONFIG_ACCT_N_TYPES]; /* `record-fields TYPE LIST` as written; NULL: the defaults */
	uint64_t move_interval_ms;  /* 0: never by time */
	char *move_to;              /* directory for rotated files; NULL: beside the file */
	uint64_t max_size;          /* bytes; 0: no limit */
	uint64_t delete_after_ms;   /* 0: never */
	int line;
};

/* Every error of a load and its warnings, each "FILE:LINE: message\n"
 * (warnings "FILE:LINE: warning: message\n"): the parser goes on after an
 * error (skipping the line, or the rest of a block whose opening tag is
 * bad) so one run reports them all. Owned by the caller: config_report_free(). */
struct config_report {
	char *errors;               /* NULL when none */
	unsigned n_errors;          /* also those past the first 200, which are not kept */
	char *warnings;
	unsigned n_warnings;
};

/* Like config_load(), with every message: returns 0 or -1; rep is filled
 * either way. */
int config_load_report(struct config *cfg, const char *path, struct config_report *rep);
int config_load_string_report(struct config *cfg, const char *name, const char *text,
			      struct config_report *rep);
void config_report_free(struct config_report *rep);

/* The settings a queue gets through one virtual MTA (or pool): blocks
 * nested in that <virtual-mta> (then the pools it belongs to) first, then
 * the top-level ones; within each, an exact name, then the longest
 * wildcard (`*.x`, `[*.]x`), then `*`; per directive, the first that sets
 * it. vmta NULL: top level only. out is the caller's (config_domain_release).
 * Returns 0, -1 on ENOMEM. */
int config_domain_resolve(const struct config *cfg, const char *domain, const char *vmta,
			  struct config_domain *out);
void config_domain_release(struct config_domain *d);
/* Does a <domain> block nested in vmta (or a pool listing it) apply to
 * domain? When not, config_domain_resolve() gives the top-level settings. */
bool config_domain_has_nested(const struct config *cfg, const char *domain, const char *vmta);
/* d's source-ip-max-* entry for the source address src (the most specific),
 * or NULL. */
const struct config_source_limit *config_domain_source_limit(const struct config_domain *d,
							     const struct sockaddr *src);

/* `--show QUEUE[/VMTA]`: the resolved settings, `directive value` per
 * line, into out (a FILE *; void * keeps stdio out of this header).
 * 0, or -1 with a message in err. */
int config_show(void *out, const struct config *cfg, const char *spec, char *err, size_t cap);
/* `--show source:ADDR|source:{name}`: that client's <source> settings
 * (config_show_source.c); config_show() hands such a spec here. */
int config_show_source(void *out, const struct config *cfg, const char *arg, char *err, size_t cap);

/* Names of the <domain> directives in --show order; NULL past the end. */
const char *config_domain_key_name(size_t i);

/* The named source (`<source {name}>`), or NULL. */
const struct config_source *config_source_named(const struct config *cfg, const char *name);

/* PowerMTA's named sources, for SMTP intake (engine/intake.c): the
 * <source> for a session that authenticated as user: the user's `source
 * {name}`, else `<source {auth}>`, else addr_src (the address's). */
const struct config_source *config_source_after_auth(const struct config *cfg, const char *user,
						     const struct config_source *addr_src);
/* The <source> for a connection on smtp_listeners[listener]: its
 * `source=NAME`, else the one matching addr. */
const struct config_source *config_source_for_listener(const struct config *cfg, size_t listener,
						       const struct sockaddr *addr);

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

/* The pool named `name` (a pool, or a virtual MTA's implicit pool; any
 * case), or -1. */
ssize_t config_pool_find(const struct config *cfg, const char *name);

/* A <domain> directive's value as the resolved settings d have it (as
 * written, or the built-in default), or NULL when unset. */
const char *config_domain_value(const struct config_domain *d, const char *name);

/* The pool a message from source src goes to without an X-Virtual-MTA:
 * its default-virtual-mta; with `by-smtp-source-ip`, PowerMTA's meaning:
 * the virtual MTA whose smtp-source-host is local, the address the client
 * connected to (the first in config order; none: the default pool).
 * local may be NULL (unknown: the default pool). */
size_t config_source_pool(const struct config *cfg, const struct config_source *src, const struct sockaddr *local);

/* The operator's category for a reply or report text from
 * <bounce-category-patterns> (first match), or NULL. */
const char *config_category_override(const struct config *cfg, const char *text);

/* The queue name an MX host rolls up into (<mx-rollup-list>), or NULL. */
const char *config_rollup_for(const struct config *cfg, const char *mx_host);

/* `*` matches any run of characters (also none); others compare
 * case-insensitively. */
bool config_glob_match(const char *pattern, const char *s);

/* The role `http-access` gives addr without a token (see enum
 * config_http_role). */
enum config_http_role config_http_role_for(const struct config *cfg, const struct sockaddr *addr);
/* The same over a bare http-access list (n entries). */
enum config_http_role config_http_role_in(const struct config_http_access *acc, size_t n,
					  const struct sockaddr *addr);
/* "admin", "monitor", "none". */
const char *config_http_role_name(enum config_http_role r);

/* The most specific <source> matching addr, or NULL. */
const struct config_source *config_source_for(const struct config *cfg,
					      const struct sockaddr *addr);

/* May a client at addr relay without authenticating (a trusted injector)? */
bool config_source_trusted(const struct config_source *src);

/* The pool the first rule of <pattern-list> l that matches chooses (the
 * sender, the recipient - NULL for none -, the message's header block), or
 * -1 when none does. *msg_first caches the message's own first hit (a
 * mail-from or header rule) across its recipients: SIZE_MAX before the
 * first call for a message. Any thread (config_intake_list.c). */
ssize_t config_intake_match(const struct config_intake_list *l, const char *sender, const char *rcpt,
			    const char *hdrs, size_t hdrs_len, size_t *msg_first);

/* Is domain one of the `relay-domain`s (PowerMTA's inbound relay: mail to
 * it is taken from any client)? `x` is x only, `*.x` its subdomains,
 * `[*.]x` both; case-insensitive. Any thread (config_pmta.c). */
bool config_relay_domain(const struct config *cfg, const char *domain);

/* Does the address list of a <bounce-processor> or <feedback-loop-processor>
 * list addr? Such mail takes the bounce domain's path (engine/bounce_intake.c). */
bool config_processor_address(const struct config *cfg, const char *addr);

/* Does l list addr (config_address_list.c)? Any thread. */
bool config_address_list_match(const struct config_address_list *l, const char *addr);
/* The name of src's first `suppression-lists` list that lists addr, or NULL. */
const char *config_source_suppressed(const struct config *cfg, const struct config_source *src, const char *addr);

/* The message size limit for a session from src before any AUTH: the
 * source's own `max-message-size`, else max-message-size for trusted
 * sources and bounce-max-message-size for the others. */
uint64_t config_source_max_message_size(const struct config *cfg, const struct config_source *src);

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
/* Do the 4 (IPv4) or 16 address bytes a lie in net (of their family)? */
bool config_cidr_match_bytes(const struct config_cidr *net, const uint8_t a[16]);
/* "yes"/"no"/"true"/"false"/"on"/"off"/"1"/"0", case-insensitive. */
int config_parse_bool(const char *s, bool *out);
/* Decimal digits only (no sign, no spaces), min <= value <= max. */
int config_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out);
/* "10.0.0.0/8", "2001:db8::/32" into buf. Returns 0, or -1 if it does not fit. */
int config_cidr_format(const struct config_cidr *net, char *buf, size_t len);

#endif
