/*
 * config_parse.c - the configuration model's life cycle (built-in defaults,
 * load, free), the PowerMTA-style line parser and its directive table, and
 * the lookups config_domain_for() / config_source_for(). The value parsers
 * live in config_units.c; the language and the error conventions are
 * documented in config.h.
 *
 * Owns: every string and array hanging off a struct config. Handlers
 * store straight into the struct config being built, so that at every
 * moment everything allocated is reachable from it and one config_free()
 * releases all of it, whether the load succeeded or stopped half way.
 *
 * Parsing is one pass over the lines, then a finishing step:
 *   1. lines: each is a comment/blank, a tag (`<domain x>`, `</domain>`) or
 *      a directive found in `directives[]`, which says where it may appear
 *      (top level, <source>, <domain>) and which handler stores it;
 *   2. finish: an unclosed block is an error; domains[1..] are sorted by
 *      name (duplicates are found there, reported at the second block's
 *      line); every domain block then inherits what it did not set from
 *      domains[0], the "*" entry, which the file's `<domain *>` modified in
 *      place. Resolution happens once here, so lookups are a bsearch with
 *      no merging, and the returned pointers stay valid as long as cfg.
 *
 * Invariants while parsing: domains[0] is "*" and always fully set;
 * p->cur indexes the open block's entry (valid only when p->ctx is not
 * CTX_TOP); dom_cap is the allocated length of cfg->domains.
 */
#include "core/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define WS " \t\r\v\f"
#define SHOW_LEN 72 /* values quoted in messages are cut to this */

#define DEF_SPOOL_DIR "./salvo-spool"
#define DEF_SMTP_LISTENER "127.0.0.1:2525"
#define DEF_HTTP_LISTENER "127.0.0.1:8025"
#define DEF_MAX_THREADS 64 /* default worker_threads: online CPUs, at most this */
#define MAX_WORKER_THREADS 256
#define DEF_MAX_MESSAGE_SIZE (50ULL << 20)
#define DEF_MAX_RCPT_SESSION 1000
#define DEF_CMD_TIMEOUT_MS (5 * 60 * 1000ULL)
#define DEF_DATA_TIMEOUT_MS (10 * 60 * 1000ULL)
#define DEF_SMTP_PORT 25
#define DEF_DNS_PORT 53
#define DEF_RETRY_MS (15 * 60 * 1000ULL)
#define DEF_BOUNCE_MS (4 * 3600 * 1000ULL)
#define DEF_MAX_SMTP_OUT 20
#define DEF_MAX_MSG_PER_CONN 100
#define DEF_MAX_RCPT_PER_MSG 100

enum ctx { CTX_TOP, CTX_SOURCE, CTX_DOMAIN };

static const char *const block_names[] = {
	[CTX_TOP] = NULL,
	[CTX_SOURCE] = "source",
	[CTX_DOMAIN] = "domain",
};

struct parser {
	struct config *cfg;
	const char *file;
	int line;
	char *err;                 /* CONFIG_ERR_MAX bytes */
	enum ctx ctx;              /* the open block; CTX_TOP when none */
	int block_line;            /* where the open block started */
	size_t cur;                /* its entry in cfg->sources or cfg->domains */
	size_t dom_cap;
	bool file_smtp_listeners;  /* the file's listeners replace the default */
	bool file_http_listeners;
	bool file_sources;         /* the file's sources replace the loopback ones */
};

struct directive {
	const char *name;
	enum ctx ctx;
	int (*set)(struct parser *p, const struct directive *d, char *v);
};

/* ---- small helpers ------------------------------------------------------ */

static char *trim(char *s)
{
	s += strspn(s, WS);
	size_t n = strlen(s);
	while (n > 0 && strchr(WS, s[n - 1]))
		s[--n] = '\0';
	return s;
}

static void lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

static bool has_space(const char *s)
{
	return s[strcspn(s, WS)] != '\0';
}

/* Letters, digits, '-' and '_' in dot-separated labels of 1..63, at most
 * 253 in all; the last label is not all digits (that is an IP address). */
static bool valid_domain_name(const char *s)
{
	size_t len = strlen(s), label = 0;
	bool all_digits = true;

	if (len == 0 || len > 253)
		return false;
	for (; *s; s++) {
		char c = *s;
		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			all_digits = true;
			continue;
		}
		bool digit = c >= '0' && c <= '9';
		bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
		if (!digit && !alpha && c != '-' && c != '_')
			return false;
		if (++label > 63)
			return false;
		all_digits = all_digits && digit;
	}
	return label > 0 && !all_digits;
}

/* v made safe to quote in a one-line message: control characters become
 * '?', and a long value is cut and ends in "...". */
static const char *show(char buf[SHOW_LEN + 4], const char *v)
{
	size_t i;

	for (i = 0; v[i] && i < SHOW_LEN; i++)
		buf[i] = (unsigned char)v[i] < 0x20 || v[i] == 0x7f ? '?' : v[i];
	if (v[i])
		memcpy(buf + i, "...", 4);
	else
		buf[i] = '\0';
	return buf;
}

__attribute__((format(printf, 2, 3)))
static int perr(struct parser *p, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(p->err, CONFIG_ERR_MAX, "%s:%d: ", p->file, p->line);

	if (n >= 0 && n < CONFIG_ERR_MAX) {
		va_start(ap, fmt);
		vsnprintf(p->err + n, CONFIG_ERR_MAX - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static int bad_value(struct parser *p, const char *kind, const struct directive *d, const char *v)
{
	char sb[SHOW_LEN + 4];

	return perr(p, "invalid %s \"%s\" for %s", kind, show(sb, v), d->name);
}

static int oom(struct parser *p)
{
	return perr(p, "out of memory");
}

static int set_string(struct parser *p, char **field, const char *v)
{
	char *copy = strdup(v);

	if (!copy)
		return oom(p);
	free(*field);
	*field = copy;
	return 0;
}

static struct config_domain *cur_domain(struct parser *p)
{
	return &p->cfg->domains[p->cur];
}

/* ---- top-level directives ----------------------------------------------- */

static int d_host_name(struct parser *p, const struct directive *d, char *v)
{
	if (!valid_domain_name(v))
		return bad_value(p, "host name", d, v);
	return set_string(p, &p->cfg->host_name, v);
}

/* Paths are stored as given: whether they exist is for their users. */
static int d_spool_dir(struct parser *p, const struct directive *d, char *v)
{
	(void)d;
	return set_string(p, &p->cfg->spool_dir, v);
}

static int d_tls_certificate(struct parser *p, const struct directive *d, char *v)
{
	(void)d;
	return set_string(p, &p->cfg->tls_certificate, v);
}

static int d_tls_private_key(struct parser *p, const struct directive *d, char *v)
{
	(void)d;
	return set_string(p, &p->cfg->tls_private_key, v);
}

static int d_postmaster(struct parser *p, const struct directive *d, char *v)
{
	if (has_space(v))
		return bad_value(p, "address", d, v);
	return set_string(p, &p->cfg->postmaster, v);
}

static int d_bounce_domain(struct parser *p, const struct directive *d, char *v)
{
	if (!valid_domain_name(v))
		return bad_value(p, "domain name", d, v);
	lower(v);
	return set_string(p, &p->cfg->bounce_domain, v);
}

static int add_listener(struct parser *p, const struct directive *d, char *v,
			struct config_addr **arr, size_t *n, bool *from_file)
{
	struct config_addr a, *grown;

	if (config_parse_addr(v, 0, &a) < 0)
		return bad_value(p, "address", d, v);
	if (!*from_file) {
		*n = 0; /* the first one in the file replaces the default */
		*from_file = true;
	}
	for (size_t i = 0; i < *n; i++)
		if (strcmp((*arr)[i].text, a.text) == 0)
			return perr(p, "duplicate %s %s", d->name, a.text);
	grown = realloc(*arr, (*n + 1) * sizeof(**arr));
	if (!grown)
		return oom(p);
	*arr = grown;
	grown[(*n)++] = a;
	return 0;
}

static int d_smtp_listener(struct parser *p, const struct directive *d, char *v)
{
	struct config *c = p->cfg;

	return add_listener(p, d, v, &c->smtp_listeners, &c->n_smtp_listeners,
			    &p->file_smtp_listeners);
}

static int d_http_listener(struct parser *p, const struct directive *d, char *v)
{
	struct config *c = p->cfg;

	return add_listener(p, d, v, &c->http_listeners, &c->n_http_listeners,
			    &p->file_http_listeners);
}

static int d_dns_server(struct parser *p, const struct directive *d, char *v)
{
	/* "*" would mean 0.0.0.0, which is no server to send queries to */
	if (v[0] == '*' || config_parse_addr(v, DEF_DNS_PORT, &p->cfg->dns_server) < 0)
		return bad_value(p, "address", d, v);
	p->cfg->has_dns_server = true;
	return 0;
}

static int d_worker_threads(struct parser *p, const struct directive *d, char *v)
{
	char sb[SHOW_LEN + 4];
	uint64_t n;

	if (config_parse_uint(v, 1, MAX_WORKER_THREADS, &n) < 0)
		return perr(p, "invalid value \"%s\" for %s (expected 1..%d)", show(sb, v), d->name,
			    MAX_WORKER_THREADS);
	p->cfg->worker_threads = (unsigned)n;
	return 0;
}

static int d_max_message_size(struct parser *p, const struct directive *d, char *v)
{
	uint64_t n;

	if (config_parse_size(v, &n) < 0 || n == 0)
		return bad_value(p, "size", d, v);
	p->cfg->max_message_size = n;
	return 0;
}

/* ---- <source> directives ------------------------------------------------ */

static int d_always_allow_relaying(struct parser *p, const struct directive *d, char *v)
{
	bool b;

	if (config_parse_bool(v, &b) < 0)
		return bad_value(p, "boolean", d, v);
	p->cfg->sources[p->cur].always_allow_relaying = b;
	return 0;
}

/* ---- <domain> directives ------------------------------------------------ */

/* "15m" or "15m,15m,1h": no empty elements, each more than 0. */
static int d_retry_after(struct parser *p, const struct directive *d, char *v)
{
	struct config_domain *dom = cur_domain(p);
	char whole[SHOW_LEN + 4], sb[SHOW_LEN + 4];
	size_t n = 1, i = 0;
	uint64_t *list;

	show(whole, v);
	for (const char *c = v; *c; c++)
		n += *c == ',';
	list = calloc(n, sizeof(*list));
	if (!list)
		return oom(p);
	for (char *next, *e = v; e; e = next, i++) {
		next = strchr(e, ',');
		if (next)
			*next++ = '\0';
		e = trim(e);
		if (!*e) {
			free(list);
			return perr(p, "empty element in %s list \"%s\"", d->name, whole);
		}
		if (config_parse_duration(e, &list[i]) < 0) {
			free(list);
			return perr(p, "invalid duration \"%s\" for %s", show(sb, e), d->name);
		}
		if (list[i] == 0) {
			/* a zero step would retry in a tight loop */
			free(list);
			return perr(p, "invalid duration \"%s\" for %s (must be more than 0)",
				    show(sb, e), d->name);
		}
	}
	free(dom->retry_after_ms);
	dom->retry_after_ms = list;
	dom->n_retry_after = n;
	dom->set_mask |= CONFIG_DOM_RETRY_AFTER;
	return 0;
}

static int d_bounce_after(struct parser *p, const struct directive *d, char *v)
{
	struct config_domain *dom = cur_domain(p);

	if (config_parse_duration(v, &dom->bounce_after_ms) < 0)
		return bad_value(p, "duration", d, v);
	dom->set_mask |= CONFIG_DOM_BOUNCE_AFTER;
	return 0;
}

static int set_positive(struct parser *p, const struct directive *d, const char *v,
			unsigned *field, uint64_t flag)
{
	char sb[SHOW_LEN + 4];
	uint64_t n;

	if (config_parse_uint(v, 1, UINT_MAX, &n) < 0)
		return perr(p, "invalid value \"%s\" for %s (expected a positive integer)",
			    show(sb, v), d->name);
	*field = (unsigned)n;
	cur_domain(p)->set_mask |= flag;
	return 0;
}

static int d_max_smtp_out(struct parser *p, const struct directive *d, char *v)
{
	return set_positive(p, d, v, &cur_domain(p)->max_smtp_out, CONFIG_DOM_MAX_SMTP_OUT);
}

static int d_max_msg_per_connection(struct parser *p, const struct directive *d, char *v)
{
	return set_positive(p, d, v, &cur_domain(p)->max_msg_per_connection,
			    CONFIG_DOM_MAX_MSG_PER_CONN);
}

static int d_max_rcpt_per_message(struct parser *p, const struct directive *d, char *v)
{
	return set_positive(p, d, v, &cur_domain(p)->max_rcpt_per_message, CONFIG_DOM_MAX_RCPT);
}

/* "HOST", "HOST:PORT", "[HOST]", "[HOST]:PORT" with HOST a host name:
 * HOST (lower-cased, in place) into *host and the port (default 25). */
static int route_hostname(char *v, char **host, uint16_t *port)
{
	char *h = v, *rest;
	uint64_t n = DEF_SMTP_PORT;

	if (*v == '[') {
		h = v + 1;
		rest = strchr(h, ']');
		if (!rest)
			return -1;
		*rest++ = '\0';
		if (*rest && *rest != ':')
			return -1;
	} else {
		rest = strchr(h, ':');
		if (!rest)
			rest = h + strlen(h);
	}
	if (*rest == ':') {
		*rest++ = '\0';
		if (config_parse_uint(rest, 1, 65535, &n) < 0)
			return -1;
	}
	if (!valid_domain_name(h))
		return -1;
	lower(h);
	*host = h;
	*port = (uint16_t)n;
	return 0;
}

static int d_route(struct parser *p, const struct directive *d, char *v)
{
	struct config_domain *dom = cur_domain(p);
	struct config_addr a;
	char sb[SHOW_LEN + 4], *host;
	uint16_t port;

	show(sb, v);
	free(dom->route_host);
	dom->route_host = NULL;
	memset(&dom->route, 0, sizeof(dom->route));
	if (v[0] != '*' && config_parse_addr(v, DEF_SMTP_PORT, &a) == 0) {
		dom->route = a;
		dom->route_port = a.sa.ss_family == AF_INET
			? ntohs(((const struct sockaddr_in *)&a.sa)->sin_port)
			: ntohs(((const struct sockaddr_in6 *)&a.sa)->sin6_port);
	} else if (route_hostname(v, &host, &port) == 0) {
		if (!(dom->route_host = strdup(host)))
			return oom(p);
		dom->route_port = port;
		snprintf(dom->route.text, sizeof(dom->route.text), "%.50s:%u", host, port);
	} else {
		return perr(p, "invalid host or address \"%s\" for %s", sb, d->name);
	}
	dom->has_route = true;
	dom->set_mask |= CONFIG_DOM_ROUTE;
	return 0;
}

static const struct directive directives[] = {
	{"host-name", CTX_TOP, d_host_name},
	{"spool-dir", CTX_TOP, d_spool_dir},
	{"smtp-listener", CTX_TOP, d_smtp_listener},
	{"http-listener", CTX_TOP, d_http_listener},
	{"dns-server", CTX_TOP, d_dns_server},
	{"worker-threads", CTX_TOP, d_worker_threads},
	{"max-message-size", CTX_TOP, d_max_message_size},
	{"postmaster", CTX_TOP, d_postmaster},
	{"bounce-domain", CTX_TOP, d_bounce_domain},
	{"tls-certificate", CTX_TOP, d_tls_certificate},
	{"tls-private-key", CTX_TOP, d_tls_private_key},
	{"always-allow-relaying", CTX_SOURCE, d_always_allow_relaying},
	{"retry-after", CTX_DOMAIN, d_retry_after},
	{"bounce-after", CTX_DOMAIN, d_bounce_after},
	{"max-smtp-out", CTX_DOMAIN, d_max_smtp_out},
	{"max-msg-per-connection", CTX_DOMAIN, d_max_msg_per_connection},
	{"max-rcpt-per-message", CTX_DOMAIN, d_max_rcpt_per_message},
	{"route", CTX_DOMAIN, d_route},
};

/* ---- blocks ------------------------------------------------------------- */

static int open_source(struct parser *p, const char *arg)
{
	struct config *c = p->cfg;
	struct config_source *grown;
	struct config_cidr net;
	char sb[SHOW_LEN + 4];

	if (config_parse_cidr(arg, &net) < 0)
		return perr(p, "invalid CIDR \"%s\" for <source>", show(sb, arg));
	if (!p->file_sources) {
		c->n_sources = 0; /* the file's sources replace the loopback defaults */
		p->file_sources = true;
	}
	for (size_t i = 0; i < c->n_sources; i++) {
		const struct config_cidr *o = &c->sources[i].net;
		if (o->family == net.family && o->prefix == net.prefix &&
		    memcmp(o->addr, net.addr, sizeof(net.addr)) == 0) {
			config_cidr_format(&net, sb, sizeof(sb));
			return perr(p, "duplicate <source %s> (first at line %d)", sb, c->sources[i].line);
		}
	}
	grown = realloc(c->sources, (c->n_sources + 1) * sizeof(*grown));
	if (!grown)
		return oom(p);
	c->sources = grown;
	p->cur = c->n_sources++;
	grown[p->cur] = (struct config_source){.net = net, .line = p->line};
	return 0;
}

static int open_domain(struct parser *p, char *arg)
{
	struct config *c = p->cfg;
	struct config_domain *dom;
	char sb[SHOW_LEN + 4];

	if (strcmp(arg, "*") == 0) {
		if (c->domains[0].line)
			return perr(p, "duplicate <domain *> (first at line %d)", c->domains[0].line);
		c->domains[0].line = p->line;
		p->cur = 0;
		return 0;
	}
	if (!valid_domain_name(arg))
		return perr(p, "invalid domain name \"%s\" for <domain>", show(sb, arg));
	if (c->n_domains == p->dom_cap) {
		size_t cap = p->dom_cap * 2;
		struct config_domain *grown = realloc(c->domains, cap * sizeof(*grown));
		if (!grown)
			return oom(p);
		c->domains = grown;
		p->dom_cap = cap;
	}
	dom = &c->domains[c->n_domains];
	*dom = (struct config_domain){.name = strdup(arg), .line = p->line};
	if (!dom->name)
		return oom(p);
	lower(dom->name);
	p->cur = c->n_domains++;
	return 0;
}

static enum ctx find_block(const char *name)
{
	for (enum ctx k = CTX_SOURCE; k <= CTX_DOMAIN; k++)
		if (strcasecmp(name, block_names[k]) == 0)
			return k;
	return CTX_TOP;
}

/* `<NAME ARG>` with the brackets already removed. */
static int open_tag(struct parser *p, char *name)
{
	char sb[SHOW_LEN + 4];
	char *arg = name + strcspn(name, WS);
	enum ctx kind;

	if (*arg) {
		*arg++ = '\0';
		arg = trim(arg);
	}
	if ((kind = find_block(name)) == CTX_TOP)
		return perr(p, "unknown block directive <%s>", show(sb, name));
	if (p->ctx != CTX_TOP)
		return perr(p, "<%s> cannot be nested inside <%s> (opened at line %d)",
			    block_names[kind], block_names[p->ctx], p->block_line);
	if (!*arg)
		return perr(p, "missing argument for <%s>", block_names[kind]);
	if (has_space(arg))
		return perr(p, "too many arguments for <%s>: \"%s\"", block_names[kind], show(sb, arg));
	if ((kind == CTX_SOURCE ? open_source(p, arg) : open_domain(p, arg)) < 0)
		return -1;
	p->ctx = kind;
	p->block_line = p->line;
	return 0;
}

/* `</NAME>` with "</" and ">" already removed. */
static int close_tag(struct parser *p, char *name)
{
	char sb[SHOW_LEN + 4];
	enum ctx kind;

	if (has_space(name)) {
		name[strcspn(name, WS)] = '\0';
		return perr(p, "</%s> takes no argument", show(sb, name));
	}
	if ((kind = find_block(name)) == CTX_TOP)
		return perr(p, "unknown block directive </%s>", show(sb, name));
	if (p->ctx == CTX_TOP)
		return perr(p, "</%s> without <%s>", block_names[kind], block_names[kind]);
	if (kind != p->ctx)
		return perr(p, "</%s> does not match <%s> (opened at line %d)", block_names[kind],
			    block_names[p->ctx], p->block_line);
	p->ctx = CTX_TOP;
	return 0;
}

/* `<NAME ARG>` or `</NAME>`: no space after '<' or "</", '>' last. */
static int parse_tag(struct parser *p, char *s)
{
	char sb[SHOW_LEN + 4];
	size_t n = strlen(s);
	bool closing = s[1] == '/';
	char *name = s + 1 + closing;

	show(sb, s);
	if (s[n - 1] != '>' || !*name || strchr(WS ">", *name))
		return perr(p, "malformed block tag \"%s\"", sb);
	s[n - 1] = '\0';
	name = trim(name);
	return closing ? close_tag(p, name) : open_tag(p, name);
}

/* ---- lines -------------------------------------------------------------- */

/* A '#' at the start or after whitespace starts a comment. */
static void strip_comment(char *s)
{
	for (size_t i = 0; s[i]; i++) {
		if (s[i] == '#' && (i == 0 || strchr(WS, s[i - 1]))) {
			s[i] = '\0';
			return;
		}
	}
}

static int run_directive(struct parser *p, const char *name, char *v)
{
	char sb[SHOW_LEN + 4];
	const struct directive *d = NULL;

	for (size_t i = 0; i < sizeof(directives) / sizeof(directives[0]) && !d; i++)
		if (strcasecmp(name, directives[i].name) == 0)
			d = &directives[i];
	if (!d)
		return perr(p, "unknown directive \"%s\"", show(sb, name));
	if (d->ctx != p->ctx && d->ctx == CTX_TOP)
		return perr(p, "\"%s\" is only valid at top level", d->name);
	if (d->ctx != p->ctx)
		return perr(p, "\"%s\" is only valid inside <%s>", d->name, block_names[d->ctx]);
	if (!*v)
		return perr(p, "missing value for %s", d->name);
	return d->set(p, d, v);
}

static int parse_line(struct parser *p, char *s)
{
	char *v;

	strip_comment(s);
	s = trim(s);
	if (!*s)
		return 0;
	if (*s == '<')
		return parse_tag(p, s);
	v = s + strcspn(s, WS);
	if (*v) {
		*v++ = '\0';
		v = trim(v);
	}
	return run_directive(p, s, v);
}

static int parse_lines(struct parser *p, char *text, size_t len)
{
	char *s = text, *end = text + len;

	while (s < end) {
		char *nl = memchr(s, '\n', (size_t)(end - s));
		size_t n = nl ? (size_t)(nl - s) : (size_t)(end - s);

		s[n] = '\0'; /* the '\n', or the terminator after the text */
		p->line++;
		if (strlen(s) != n)
			return perr(p, "NUL byte in line");
		if (parse_line(p, s) < 0)
			return -1;
		s += n + 1;
	}
	return 0;
}

/* ---- finishing: duplicates, sorting, inheritance ------------------------ */

static int domain_cmp(const void *a, const void *b)
{
	const struct config_domain *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : (x->line > y->line) - (x->line < y->line);
}

/* Fill what d did not set from star (fully set). */
static int inherit(struct config_domain *d, const struct config_domain *star)
{
	if (!(d->set_mask & CONFIG_DOM_RETRY_AFTER)) {
		d->retry_after_ms = malloc(star->n_retry_after * sizeof(*d->retry_after_ms));
		if (!d->retry_after_ms)
			return -1;
		memcpy(d->retry_after_ms, star->retry_after_ms,
		       star->n_retry_after * sizeof(*d->retry_after_ms));
		d->n_retry_after = star->n_retry_after;
	}
	if (!(d->set_mask & CONFIG_DOM_BOUNCE_AFTER))
		d->bounce_after_ms = star->bounce_after_ms;
	if (!(d->set_mask & CONFIG_DOM_MAX_SMTP_OUT))
		d->max_smtp_out = star->max_smtp_out;
	if (!(d->set_mask & CONFIG_DOM_MAX_MSG_PER_CONN))
		d->max_msg_per_connection = star->max_msg_per_connection;
	if (!(d->set_mask & CONFIG_DOM_MAX_RCPT))
		d->max_rcpt_per_message = star->max_rcpt_per_message;
	if (!(d->set_mask & CONFIG_DOM_ROUTE) && star->has_route) {
		d->has_route = true;
		d->route = star->route;
		d->route_port = star->route_port;
		if (star->route_host && !(d->route_host = strdup(star->route_host)))
			return -1;
	}
	return 0;
}

static int finish(struct parser *p)
{
	struct config *c = p->cfg;
	struct config_domain *dup = NULL;

	if (p->ctx != CTX_TOP)
		return perr(p, "<%s> not closed (opened at line %d)", block_names[p->ctx], p->block_line);
	qsort(c->domains + 1, c->n_domains - 1, sizeof(*c->domains), domain_cmp);
	/* report the duplicate that comes first in the file */
	for (size_t i = 2; i < c->n_domains; i++)
		if (strcmp(c->domains[i - 1].name, c->domains[i].name) == 0 &&
		    (!dup || c->domains[i].line < dup->line))
			dup = &c->domains[i];
	if (dup) {
		p->line = dup->line;
		return perr(p, "duplicate <domain %s> (first at line %d)", dup->name, dup[-1].line);
	}
	for (size_t i = 1; i < c->n_domains; i++)
		if (inherit(&c->domains[i], &c->domains[0]) < 0)
			return oom(p);
	return 0;
}

/* ---- the model's life cycle --------------------------------------------- */

static char *default_host_name(void)
{
	char host[256];

	if (gethostname(host, sizeof(host)) < 0 || !host[0])
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	return strdup(host);
}

static unsigned default_worker_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > DEF_MAX_THREADS ? DEF_MAX_THREADS : (unsigned)n;
}

static int default_domain(struct config_domain *d)
{
	*d = (struct config_domain){
		.name = strdup("*"),
		.retry_after_ms = malloc(sizeof(uint64_t)),
		.n_retry_after = 1,
		.bounce_after_ms = DEF_BOUNCE_MS,
		.max_smtp_out = DEF_MAX_SMTP_OUT,
		.max_msg_per_connection = DEF_MAX_MSG_PER_CONN,
		.max_rcpt_per_message = DEF_MAX_RCPT_PER_MSG,
	};
	if (!d->name || !d->retry_after_ms)
		return -1;
	d->retry_after_ms[0] = DEF_RETRY_MS;
	return 0;
}

static int default_sources(struct config *cfg)
{
	static const char *const loopback[] = {"127.0.0.1/32", "::1/128"};

	cfg->sources = calloc(2, sizeof(*cfg->sources));
	if (!cfg->sources)
		return -1;
	for (size_t i = 0; i < 2; i++) {
		if (config_parse_cidr(loopback[i], &cfg->sources[i].net) < 0)
			abort(); /* our own constant */
		cfg->sources[i].always_allow_relaying = true;
	}
	cfg->n_sources = 2;
	return 0;
}

static int default_listener(struct config_addr **arr, size_t *n, const char *text)
{
	*arr = calloc(1, sizeof(**arr));
	if (!*arr)
		return -1;
	if (config_parse_addr(text, 0, *arr) < 0)
		abort(); /* our own constant */
	*n = 1;
	return 0;
}

int config_defaults(struct config *cfg)
{
	*cfg = (struct config){
		.host_name = default_host_name(),
		.spool_dir = strdup(DEF_SPOOL_DIR),
		.worker_threads = default_worker_threads(),
		.max_message_size = DEF_MAX_MESSAGE_SIZE,
		.max_rcpt_per_session_message = DEF_MAX_RCPT_SESSION,
		.smtp_command_timeout_ms = DEF_CMD_TIMEOUT_MS,
		.smtp_data_timeout_ms = DEF_DATA_TIMEOUT_MS,
		.smtp_port = DEF_SMTP_PORT,
	};
	if (!cfg->host_name || !cfg->spool_dir ||
	    default_listener(&cfg->smtp_listeners, &cfg->n_smtp_listeners, DEF_SMTP_LISTENER) < 0 ||
	    default_listener(&cfg->http_listeners, &cfg->n_http_listeners, DEF_HTTP_LISTENER) < 0 ||
	    default_sources(cfg) < 0 || !(cfg->domains = calloc(1, sizeof(*cfg->domains))))
		goto fail;
	cfg->n_domains = 1;
	if (default_domain(&cfg->domains[0]) < 0)
		goto fail;
	return 0;
fail:
	config_free(cfg);
	errno = ENOMEM;
	return -1;
}

void config_free(struct config *cfg)
{
	if (!cfg)
		return;
	free(cfg->path);
	free(cfg->host_name);
	free(cfg->spool_dir);
	free(cfg->smtp_listeners);
	free(cfg->http_listeners);
	free(cfg->postmaster);
	free(cfg->bounce_domain);
	free(cfg->tls_certificate);
	free(cfg->tls_private_key);
	free(cfg->sources);
	for (size_t i = 0; i < cfg->n_domains; i++) {
		free(cfg->domains[i].name);
		free(cfg->domains[i].retry_after_ms);
		free(cfg->domains[i].route_host);
	}
	free(cfg->domains);
	memset(cfg, 0, sizeof(*cfg));
}

/* Parse text[0..len) (modified in place; text[len] must be writable). */
static int load_text(struct config *cfg, const char *name, char *text, size_t len, char *err)
{
	struct parser p = {.cfg = cfg, .file = name, .err = err};

	if (config_defaults(cfg) < 0 || !(cfg->path = strdup(name))) {
		config_free(cfg);
		snprintf(err, CONFIG_ERR_MAX, "%s: out of memory", name);
		return -1;
	}
	p.dom_cap = cfg->n_domains;
	if (parse_lines(&p, text, len) < 0 || finish(&p) < 0) {
		config_free(cfg);
		return -1;
	}
	err[0] = '\0';
	return 0;
}

/* The whole file, NUL-terminated, or NULL with the message in err. */
static char *read_file(const char *path, size_t *len, char *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t cap = 4096, n = 0;
	char *buf = NULL, *grown;

	if (fd < 0) {
		snprintf(err, CONFIG_ERR_MAX, "%s: cannot open: %s", path, strerror(errno));
		return NULL;
	}
	for (;;) {
		if (!buf || n + 1 >= cap) {
			cap = buf ? cap * 2 : cap;
			if (!(grown = realloc(buf, cap))) {
				snprintf(err, CONFIG_ERR_MAX, "%s: out of memory", path);
				goto fail;
			}
			buf = grown;
		}
		ssize_t r = read(fd, buf + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(err, CONFIG_ERR_MAX, "%s: cannot read: %s", path, strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = '\0';
	*len = n;
	return buf;
fail:
	free(buf);
	close(fd);
	return NULL;
}

int config_load(struct config *cfg, const char *path, char err[CONFIG_ERR_MAX])
{
	size_t len;
	char *text;
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	if (!(text = read_file(path, &len, err)))
		return -1;
	rc = load_text(cfg, path, text, len, err);
	free(text);
	return rc;
}

int config_load_string(struct config *cfg, const char *name, const char *text,
		       char err[CONFIG_ERR_MAX])
{
	char *copy = strdup(text);
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	if (!copy) {
		snprintf(err, CONFIG_ERR_MAX, "%s: out of memory", name);
		return -1;
	}
	rc = load_text(cfg, name, copy, strlen(copy), err);
	free(copy);
	return rc;
}

/* ---- lookups ------------------------------------------------------------ */

/* bsearch key: the wanted domain, any case, against lower-case names. */
static int domain_key_cmp(const void *key, const void *elem)
{
	const unsigned char *k = key;
	const unsigned char *n = (const unsigned char *)((const struct config_domain *)elem)->name;

	for (;; k++, n++) {
		unsigned char c = *k >= 'A' && *k <= 'Z' ? (unsigned char)(*k - 'A' + 'a') : *k;
		if (c != *n || !c)
			return (int)c - (int)*n;
	}
}

const struct config_domain *config_domain_for(const struct config *cfg, const char *domain)
{
	const struct config_domain *d = NULL;

	if (!cfg->n_domains)
		return NULL;
	if (domain && cfg->n_domains > 1)
		d = bsearch(domain, cfg->domains + 1, cfg->n_domains - 1, sizeof(*d), domain_key_cmp);
	return d ? d : &cfg->domains[0];
}

const struct config_source *config_source_for(const struct config *cfg,
					      const struct sockaddr *addr)
{
	const struct config_source *best = NULL;

	if (!addr)
		return NULL;
	for (size_t i = 0; i < cfg->n_sources; i++) {
		const struct config_source *s = &cfg->sources[i];
		if (config_cidr_match(&s->net, addr) && (!best || s->net.prefix > best->net.prefix))
			best = s;
	}
	return best;
}
