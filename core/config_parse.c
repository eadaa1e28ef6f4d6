/*
 * config_parse.c - the configuration model's life cycle (built-in defaults,
 * load, free), the PowerMTA-style line parser, the block table and the
 * top-level directives. The blocks' own directives live in config_source.c,
 * config_domain.c and config_vmta.c (see config_parser.h); the value
 * parsers in config_units.c; the language and the error conventions are
 * documented in config.h.
 *
 * Owns: every string and array hanging off a struct config. Handlers
 * store straight into the struct config being built, so that at every
 * moment everything allocated is reachable from it and one config_free()
 * releases all of it, whether the load succeeded or stopped half way.
 *
 * Parsing is one pass over the lines, then a finishing step:
 *   1. lines: each is a comment/blank, a tag (`<domain x>`, `</domain>`,
 *      found in `blocks[]`) or a directive found in one of the directive
 *      tables, which says where it may appear and which handler stores it;
 *   2. finish: an unclosed block is an error; then each block file
 *      resolves what it must (domain inheritance from `*`, pool members,
 *      pattern list and default-virtual-mta names). Resolution happens once
 *      here, so lookups need no merging, and the returned pointers stay
 *      valid as long as cfg.
 *
 * Invariants while parsing: domains[0] is "*" and always fully set;
 * p->cur indexes the open block's entry (valid only when p->ctx is not
 * CTX_TOP); dom_cap is the allocated length of cfg->domains.
 */
#include "core/config_parser.h"

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

/* ---- small helpers ------------------------------------------------------ */

char *cp_trim(char *s)
{
	s += strspn(s, CP_WS);
	size_t n = strlen(s);
	while (n > 0 && strchr(CP_WS, s[n - 1]))
		s[--n] = '\0';
	return s;
}

void cp_lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

bool cp_has_space(const char *s)
{
	return s[strcspn(s, CP_WS)] != '\0';
}

/* Letters, digits, '-' and '_' in dot-separated labels of 1..63, at most
 * 253 in all; the last label is not all digits (that is an IP address). */
bool cp_valid_domain_name(const char *s)
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
const char *cp_show(char buf[CP_SHOW_BUF], const char *v)
{
	size_t i;

	for (i = 0; v[i] && i < CP_SHOW_LEN; i++)
		buf[i] = (unsigned char)v[i] < 0x20 || v[i] == 0x7f ? '?' : v[i];
	if (v[i])
		memcpy(buf + i, "...", 4);
	else
		buf[i] = '\0';
	return buf;
}

__attribute__((format(printf, 2, 3)))
int cp_err(struct parser *p, const char *fmt, ...)
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

int cp_bad_value(struct parser *p, const char *kind, const struct directive *d, const char *v)
{
	char sb[CP_SHOW_BUF];

	return cp_err(p, "invalid %s \"%s\" for %s", kind, cp_show(sb, v), d->name);
}

int cp_oom(struct parser *p)
{
	return cp_err(p, "out of memory");
}

int cp_set_string(struct parser *p, char **field, const char *v)
{
	char *copy = strdup(v);

	if (!copy)
		return cp_oom(p);
	free(*field);
	*field = copy;
	return 0;
}

int cp_grow(struct parser *p, void **arr, size_t *n, size_t elem, size_t *idx)
{
	char *grown = realloc(*arr, (*n + 1) * elem);

	if (!grown)
		return cp_oom(p);
	memset(grown + *n * elem, 0, elem);
	*arr = grown;
	*idx = (*n)++;
	return 0;
}

/* "15m" or "15m,15m,1h": no empty elements, each more than 0. */
int cp_duration_list(struct parser *p, const struct directive *d, char *v, uint64_t **out, size_t *n_out)
{
	char whole[CP_SHOW_BUF], sb[CP_SHOW_BUF];
	size_t n = 1, i = 0;
	uint64_t *list;

	cp_show(whole, v);
	for (const char *c = v; *c; c++)
		n += *c == ',';
	list = calloc(n, sizeof(*list));
	if (!list)
		return cp_oom(p);
	for (char *next, *e = v; e; e = next, i++) {
		next = strchr(e, ',');
		if (next)
			*next++ = '\0';
		e = cp_trim(e);
		if (!*e) {
			free(list);
			return cp_err(p, "empty element in %s list \"%s\"", d->name, whole);
		}
		if (config_parse_duration(e, &list[i]) < 0) {
			free(list);
			return cp_err(p, "invalid duration \"%s\" for %s", cp_show(sb, e), d->name);
		}
		if (list[i] == 0) {
			/* a zero step would retry in a tight loop */
			free(list);
			return cp_err(p, "invalid duration \"%s\" for %s (must be more than 0)",
				      cp_show(sb, e), d->name);
		}
	}
	free(*out);
	*out = list;
	*n_out = n;
	return 0;
}

/* ---- top-level directives ----------------------------------------------- */

static int d_host_name(struct parser *p, const struct directive *d, char *v)
{
	if (!cp_valid_domain_name(v))
		return cp_bad_value(p, "host name", d, v);
	return cp_set_string(p, &p->cfg->host_name, v);
}

/* Paths are stored as given: whether they exist is for their users. */
static int d_spool_dir(struct parser *p, const struct directive *d, char *v)
{
	(void)d;
	return cp_set_string(p, &p->cfg->spool_dir, v);
}

/* 0 turns gathering off; above 100ms it would only add latency. */
static int d_spool_commit_delay(struct parser *p, const struct directive *d, char *v)
{
	uint64_t ms;

	char sb[CP_SHOW_BUF];

	if (config_parse_duration(v, &ms) < 0)
		return cp_bad_value(p, "duration", d, v);
	if (ms > 100)
		return cp_err(p, "invalid value \"%s\" for %s (expected 0 to 100ms)", cp_show(sb, v), d->name);
	p->cfg->spool_commit_delay_ms = ms;
	return 0;
}

static int d_tls_certificate(struct parser *p, const struct directive *d, char *v)
{
	(void)d;
	return cp_set_string(p, &p->cfg->tls_certificate, v);
}

/* OpenSSL cipher lists: checked by salvod when it builds its TLS context */
static int d_tls_ciphers(struct parser *p, const struct directive *d, char *v)
{
	if (cp_has_space(v))
		return cp_bad_value(p, "cipher list (colon-separated, no spaces)", d, v);
	return cp_set_string(p, &p->cfg->tls_ciphers, v);
}

static int d_tls_ciphersuites(struct parser *p, const struct directive *d, char *v)
{
	if (cp_has_space(v))
		return cp_bad_value(p, "cipher list (colon-separated, no spaces)", d, v);
	return cp_set_string(p, &p->cfg->tls_ciphersuites, v);
}

static int d_tls_private_key(struct parser *p, const struct directive *d, char *v)
{
	(void)d;
	return cp_set_string(p, &p->cfg->tls_private_key, v);
}

static int d_postmaster(struct parser *p, const struct directive *d, char *v)
{
	if (cp_has_space(v))
		return cp_bad_value(p, "address", d, v);
	return cp_set_string(p, &p->cfg->postmaster, v);
}

static int d_bounce_domain(struct parser *p, const struct directive *d, char *v)
{
	if (!cp_valid_domain_name(v))
		return cp_bad_value(p, "domain name", d, v);
	cp_lower(v);
	return cp_set_string(p, &p->cfg->bounce_domain, v);
}

int cp_add_listener(struct parser *p, const struct directive *d, char *v,
			struct config_addr **arr, size_t *n, bool *from_file)
{
	struct config_addr a, *grown;

	if (config_parse_addr(v, 0, &a) < 0)
		return cp_bad_value(p, "address", d, v);
	if (!*from_file) {
		*n = 0; /* the first one in the file replaces the default */
		*from_file = true;
	}
	for (size_t i = 0; i < *n; i++)
		if (strcmp((*arr)[i].text, a.text) == 0)
			return cp_err(p, "duplicate %s %s", d->name, a.text);
	grown = realloc(*arr, (*n + 1) * sizeof(**arr));
	if (!grown)
		return cp_oom(p);
	*arr = grown;
	grown[(*n)++] = a;
	return 0;
}

static int d_smtp_listener(struct parser *p, const struct directive *d, char *v)
{
	struct config *c = p->cfg;

	return cp_add_listener(p, d, v, &c->smtp_listeners, &c->n_smtp_listeners,
			    &p->file_smtp_listeners);
}

static int d_smtps_listener(struct parser *p, const struct directive *d, char *v)
{
	struct config *c = p->cfg;
	bool from_file = true; /* no built-in implicit-TLS listener to replace */

	return cp_add_listener(p, d, v, &c->smtps_listeners, &c->n_smtps_listeners, &from_file);
}

static int d_dns_server(struct parser *p, const struct directive *d, char *v)
{
	/* "*" would mean 0.0.0.0, which is no server to send queries to */
	if (v[0] == '*' || config_parse_addr(v, DEF_DNS_PORT, &p->cfg->dns_server) < 0)
		return cp_bad_value(p, "address", d, v);
	p->cfg->has_dns_server = true;
	return 0;
}

static int d_worker_threads(struct parser *p, const struct directive *d, char *v)
{
	char sb[CP_SHOW_BUF];
	uint64_t n;

	if (config_parse_uint(v, 1, MAX_WORKER_THREADS, &n) < 0)
		return cp_err(p, "invalid value \"%s\" for %s (expected 1..%d)", cp_show(sb, v), d->name,
			    MAX_WORKER_THREADS);
	p->cfg->worker_threads = (unsigned)n;
	return 0;
}

static int d_max_message_size(struct parser *p, const struct directive *d, char *v)
{
	uint64_t n;

	if (config_parse_size(v, &n) < 0 || n == 0)
		return cp_bad_value(p, "size", d, v);
	p->cfg->max_message_size = n;
	return 0;
}

static int d_soft_bounce_suppress_after(struct parser *p, const struct directive *d, char *v)
{
	uint64_t n;

	if (config_parse_uint(v, 1, 1000, &n) < 0)
		return cp_bad_value(p, "count (1-1000)", d, v);
	p->cfg->soft_bounce_suppress_after = (unsigned)n;
	return 0;
}

static int d_bounce_verp_retention(struct parser *p, const struct directive *d, char *v)
{
	if (config_parse_duration(v, &p->cfg->bounce_verp_retention_ms) < 0 || !p->cfg->bounce_verp_retention_ms)
		return cp_bad_value(p, "duration", d, v);
	return 0;
}

static int set_count(struct parser *p, const struct directive *d, const char *v, unsigned *field)
{
	uint64_t n;

	if (config_parse_uint(v, 1, 1000000, &n) < 0)
		return cp_bad_value(p, "count (1-1000000)", d, v);
	*field = (unsigned)n;
	return 0;
}

static int d_smtp_max_connections(struct parser *p, const struct directive *d, char *v)
{
	return set_count(p, d, v, &p->cfg->smtp_max_connections);
}

static int d_smtp_max_connections_per_ip(struct parser *p, const struct directive *d, char *v)
{
	return set_count(p, d, v, &p->cfg->smtp_max_connections_per_ip);
}

static int d_smtp_max_errors(struct parser *p, const struct directive *d, char *v)
{
	return set_count(p, d, v, &p->cfg->smtp_max_errors);
}

/* `domain-key SELECTOR,DOMAIN,KEYFILE`; repeatable. The file is read by
 * salvod at start (a config check does not need the key). */
static int d_domain_key(struct parser *p, const struct directive *d, char *v)
{
	struct config *c = p->cfg;
	char *sel = v, *dom, *path, sb[CP_SHOW_BUF];
	size_t i;

	if (!(dom = strchr(sel, ',')) || !(path = strchr(dom + 1, ',')))
		return cp_err(p, "%s wants SELECTOR,DOMAIN,KEYFILE, not \"%s\"", d->name, cp_show(sb, v));
	*dom++ = '\0';
	*path++ = '\0';
	sel = cp_trim(sel);
	dom = cp_trim(dom);
	path = cp_trim(path);
	if (!*sel || strspn(sel, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != strlen(sel))
		return cp_err(p, "invalid selector \"%s\" for %s", cp_show(sb, sel), d->name);
	if (!cp_valid_domain_name(dom))
		return cp_err(p, "invalid domain \"%s\" for %s", cp_show(sb, dom), d->name);
	if (!*path)
		return cp_err(p, "missing key file for %s", d->name);
	cp_lower(dom);
	for (i = 0; i < c->n_domain_keys; i++)
		if (!strcmp(c->domain_keys[i].domain, dom))
			return cp_err(p, "a second domain-key for %s (first at line %d)", dom, c->domain_keys[i].line);
	if (cp_grow(p, (void **)&c->domain_keys, &c->n_domain_keys, sizeof(*c->domain_keys), &i) < 0)
		return -1;
	c->domain_keys[i].line = p->line;
	if (cp_set_string(p, &c->domain_keys[i].selector, sel) < 0 || cp_set_string(p, &c->domain_keys[i].domain, dom) < 0)
		return -1;
	return cp_set_string(p, &c->domain_keys[i].path, path);
}

static int d_bounce_max_message_size(struct parser *p, const struct directive *d, char *v)
{
	uint64_t n;

	if (config_parse_size(v, &n) < 0 || n == 0)
		return cp_bad_value(p, "size", d, v);
	p->cfg->bounce_max_message_size = n;
	return 0;
}

static int d_bounce_max_reports_per_ip(struct parser *p, const struct directive *d, char *v)
{
	if (config_parse_rate(v, &p->cfg->bounce_max_reports_per_ip) < 0 || !p->cfg->bounce_max_reports_per_ip.count)
		return cp_bad_value(p, "rate (e.g. 1000/h)", d, v);
	return 0;
}

static int d_smtp_max_session_time(struct parser *p, const struct directive *d, char *v)
{
	if (config_parse_duration(v, &p->cfg->smtp_max_session_time_ms) < 0 || !p->cfg->smtp_max_session_time_ms)
		return cp_bad_value(p, "duration", d, v);
	return 0;
}

static const struct directive directives[] = {
	{"host-name", CTX_TOP, d_host_name},
	{"bounce-max-message-size", CTX_TOP, d_bounce_max_message_size},
	{"bounce-max-reports-per-ip", CTX_TOP, d_bounce_max_reports_per_ip},
	{"smtp-max-session-time", CTX_TOP, d_smtp_max_session_time},
	{"domain-key", CTX_TOP, d_domain_key},
	{"smtp-max-connections", CTX_TOP, d_smtp_max_connections},
	{"smtp-max-connections-per-ip", CTX_TOP, d_smtp_max_connections_per_ip},
	{"smtp-max-errors", CTX_TOP, d_smtp_max_errors},
	{"soft-bounce-suppress-after", CTX_TOP, d_soft_bounce_suppress_after},
	{"bounce-verp-retention", CTX_TOP, d_bounce_verp_retention},
	{"spool-dir", CTX_TOP, d_spool_dir},
	{"spool-commit-delay", CTX_TOP, d_spool_commit_delay},
	{"smtp-listener", CTX_TOP, d_smtp_listener},
	{"smtps-listener", CTX_TOP, d_smtps_listener},
	{"dns-server", CTX_TOP, d_dns_server},
	{"worker-threads", CTX_TOP, d_worker_threads},
	{"max-message-size", CTX_TOP, d_max_message_size},
	{"postmaster", CTX_TOP, d_postmaster},
	{"bounce-domain", CTX_TOP, d_bounce_domain},
	{"tls-certificate", CTX_TOP, d_tls_certificate},
	{"tls-private-key", CTX_TOP, d_tls_private_key},
	{"tls-ciphers", CTX_TOP, d_tls_ciphers},
	{"tls-ciphersuites", CTX_TOP, d_tls_ciphersuites},
};

static const struct directive_table top_directives = {directives, sizeof(directives) / sizeof(directives[0])};

static const struct directive_table *const tables[] = {
	&top_directives, &cp_http_directives, &cp_source_directives, &cp_domain_directives, &cp_vmta_directives,
	&cp_webhook_directives,
};

/* ---- blocks ------------------------------------------------------------- */

struct block {
	const char *name;
	bool takes_arg;
	int (*open)(struct parser *p, char *arg);
};

static const struct block blocks[CTX_N] = {
	[CTX_SOURCE] = {"source", true, cp_open_source},
	[CTX_DOMAIN] = {"domain", true, cp_open_domain},
	[CTX_VMTA] = {"virtual-mta", true, cp_open_vmta},
	[CTX_POOL] = {"virtual-mta-pool", true, cp_open_pool},
	[CTX_ROLLUP] = {"mx-rollup-list", false, cp_open_rollup},
	[CTX_PATTERNS] = {"smtp-pattern-list", true, cp_open_patterns},
	[CTX_CATEGORIES] = {"bounce-category-patterns", false, cp_open_categories},
	[CTX_SMTP_USER] = {"smtp-user", true, cp_open_smtp_user},
	[CTX_WEBHOOK] = {"acct-webhook", true, cp_open_webhook},
};

static enum cp_ctx find_block(const char *name)
{
	for (enum cp_ctx k = CTX_SOURCE; k < CTX_N; k++)
		if (strcasecmp(name, blocks[k].name) == 0)
			return k;
	return CTX_TOP;
}

/* `<NAME ARG>` with the brackets already removed. */
static int open_tag(struct parser *p, char *name)
{
	char sb[CP_SHOW_BUF];
	char *arg = name + strcspn(name, CP_WS);
	enum cp_ctx kind;

	if (*arg) {
		*arg++ = '\0';
		arg = cp_trim(arg);
	}
	if ((kind = find_block(name)) == CTX_TOP)
		return cp_err(p, "unknown block directive <%s>", cp_show(sb, name));
	if (p->ctx != CTX_TOP)
		return cp_err(p, "<%s> cannot be nested inside <%s> (opened at line %d)",
			    blocks[kind].name, blocks[p->ctx].name, p->block_line);
	if (!*arg && blocks[kind].takes_arg)
		return cp_err(p, "missing argument for <%s>", blocks[kind].name);
	if (*arg && !blocks[kind].takes_arg)
		return cp_err(p, "<%s> takes no argument", blocks[kind].name);
	if (cp_has_space(arg))
		return cp_err(p, "too many arguments for <%s>: \"%s\"", blocks[kind].name, cp_show(sb, arg));
	if (blocks[kind].open(p, arg) < 0)
		return -1;
	p->ctx = kind;
	p->block_line = p->line;
	return 0;
}

/* `</NAME>` with "</" and ">" already removed. */
static int close_tag(struct parser *p, char *name)
{
	char sb[CP_SHOW_BUF];
	enum cp_ctx kind;

	if (cp_has_space(name)) {
		name[strcspn(name, CP_WS)] = '\0';
		return cp_err(p, "</%s> takes no argument", cp_show(sb, name));
	}
	if ((kind = find_block(name)) == CTX_TOP)
		return cp_err(p, "unknown block directive </%s>", cp_show(sb, name));
	if (p->ctx == CTX_TOP)
		return cp_err(p, "</%s> without <%s>", blocks[kind].name, blocks[kind].name);
	if (kind != p->ctx)
		return cp_err(p, "</%s> does not match <%s> (opened at line %d)", blocks[kind].name,
			    blocks[p->ctx].name, p->block_line);
	p->ctx = CTX_TOP;
	return 0;
}

/* `<NAME ARG>` or `</NAME>`: no space after '<' or "</", '>' last. */
static int parse_tag(struct parser *p, char *s)
{
	char sb[CP_SHOW_BUF];
	size_t n = strlen(s);
	bool closing = s[1] == '/';
	char *name = s + 1 + closing;

	cp_show(sb, s);
	if (s[n - 1] != '>' || !*name || strchr(CP_WS ">", *name))
		return cp_err(p, "malformed block tag \"%s\"", sb);
	s[n - 1] = '\0';
	name = cp_trim(name);
	return closing ? close_tag(p, name) : open_tag(p, name);
}

/* ---- lines -------------------------------------------------------------- */

/* A '#' at the start or after whitespace starts a comment. */
static void strip_comment(char *s)
{
	for (size_t i = 0; s[i]; i++) {
		if (s[i] == '#' && (i == 0 || strchr(CP_WS, s[i - 1]))) {
			s[i] = '\0';
			return;
		}
	}
}

static int run_directive(struct parser *p, const char *name, char *v)
{
	char sb[CP_SHOW_BUF];
	const struct directive *d = NULL;

	/* A name may mean something in several contexts (max-message-size at
	 * top level and in <source>): the current context's entry wins. */
	for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]) && !(d && d->ctx == p->ctx); t++)
		for (size_t i = 0; i < tables[t]->n; i++)
			if (strcasecmp(name, tables[t]->d[i].name) == 0 && (!d || tables[t]->d[i].ctx == p->ctx)) {
				d = &tables[t]->d[i];
				if (d->ctx == p->ctx)
					break;
			}
	if (!d)
		return cp_err(p, "unknown directive \"%s\"", cp_show(sb, name));
	if (d->ctx != p->ctx && d->ctx == CTX_TOP)
		return cp_err(p, "\"%s\" is only valid at top level", d->name);
	if (d->ctx != p->ctx)
		return cp_err(p, "\"%s\" is only valid inside <%s>", d->name, blocks[d->ctx].name);
	if (!*v)
		return cp_err(p, "missing value for %s", d->name);
	return d->set(p, d, v);
}

static int parse_line(struct parser *p, char *s)
{
	char *v;

	strip_comment(s);
	s = cp_trim(s);
	if (!*s)
		return 0;
	if (*s == '<')
		return parse_tag(p, s);
	/* <bounce-category-patterns> lines are `/REGEX/ CATEGORY` whole. */
	if (p->ctx == CTX_CATEGORIES && *s == '/')
		return run_directive(p, "bounce-category-pattern", s);
	v = s + strcspn(s, CP_WS);
	if (*v) {
		*v++ = '\0';
		v = cp_trim(v);
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
			return cp_err(p, "NUL byte in line");
		if (parse_line(p, s) < 0)
			return -1;
		s += n + 1;
	}
	return 0;
}

/* ---- finishing: duplicates, sorting, inheritance ------------------------ */

static int finish(struct parser *p)
{
	if (p->ctx != CTX_TOP)
		return cp_err(p, "<%s> not closed (opened at line %d)", blocks[p->ctx].name, p->block_line);
	if (cp_domains_finish(p) < 0 || cp_vmtas_finish(p) < 0 || cp_sources_finish(p) < 0 ||
	    cp_http_finish(p) < 0 || cp_webhooks_finish(p) < 0)
		return -1;
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
		.spool_commit_delay_ms = 1,
		.worker_threads = default_worker_threads(),
		.max_message_size = DEF_MAX_MESSAGE_SIZE,
		.http_max_body_size = 64ULL << 20,
		.http_max_connections = 1000,
		.http_max_connections_per_ip = 100,
		.soft_bounce_suppress_after = 3,
		.smtp_max_connections = 2000,
		.smtp_max_connections_per_ip = 100,
		.smtp_max_errors = 10,
		.bounce_max_message_size = 1ULL << 20,
		.bounce_max_reports_per_ip = {.count = 1000, .per_ms = 3600 * 1000ULL},
		.smtp_max_session_time_ms = 10 * 60 * 1000ULL,
		.bounce_verp_retention_ms = 7 * 24 * 3600 * 1000ULL,
		.max_rcpt_per_session_message = DEF_MAX_RCPT_SESSION,
		.smtp_command_timeout_ms = DEF_CMD_TIMEOUT_MS,
		.smtp_data_timeout_ms = DEF_DATA_TIMEOUT_MS,
		.smtp_port = DEF_SMTP_PORT,
	};
	if (!cfg->host_name || !cfg->spool_dir ||
	    default_listener(&cfg->smtp_listeners, &cfg->n_smtp_listeners, DEF_SMTP_LISTENER) < 0 ||
	    default_listener(&cfg->http_listeners, &cfg->n_http_listeners, DEF_HTTP_LISTENER) < 0 ||
	    cp_sources_default(cfg) < 0 || cp_vmtas_default(cfg) < 0 ||
	    !(cfg->domains = calloc(1, sizeof(*cfg->domains))))
		goto fail;
	cfg->n_domains = 1;
	if (cp_domain_default(&cfg->domains[0]) < 0)
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
	free(cfg->smtps_listeners);
	free(cfg->postmaster);
	free(cfg->bounce_domain);
	free(cfg->tls_certificate);
	free(cfg->tls_private_key);
	free(cfg->tls_ciphers);
	free(cfg->tls_ciphersuites);
	cp_http_free(cfg);
	for (size_t i = 0; i < cfg->n_domain_keys; i++) {
		free(cfg->domain_keys[i].selector);
		free(cfg->domain_keys[i].domain);
		free(cfg->domain_keys[i].path);
	}
	free(cfg->domain_keys);
	cp_sources_free(cfg);
	cp_domains_free(cfg);
	cp_vmtas_free(cfg);
	cp_webhooks_free(cfg);
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
