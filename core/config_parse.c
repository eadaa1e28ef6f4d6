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
#include <ctype.h>
#include <errno.h>
#include <libgen.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
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

static void msgs_add(struct cp_msgs *m, const char *line)
{
	size_t n = strlen(line);
	char *grown;

	if (m->n++ >= CP_ERR_LIST_MAX)
		return;
	if (m->len + n + 2 > m->cap) {
		size_t cap = (m->cap ? m->cap * 2 : 1024) + n + 2;
		if (!(grown = realloc(m->text, cap)))
			return; /* counted; the text stays as it was */
		m->text = grown;
		m->cap = cap;
	}
	memcpy(m->text + m->len, line, n);
	m->len += n;
	m->text[m->len++] = '\n';
	m->text[m->len] = '\0';
}

/* The segment global line gline is in (none before any include). */
static const struct cp_seg *seg_of(const struct parser *p, int gline)
{
	const struct cp_seg *s = NULL;

	for (size_t i = 0; i < p->n_segs && p->segs[i].gstart < gline; i++)
		s = &p->segs[i];
	return s;
}

static void where(const struct parser *p, int gline, const char **file, int *line)
{
	const struct cp_seg *s = seg_of(p, gline);

	*file = s ? s->file : p->file;
	*line = s ? gline - s->gstart + s->lstart : gline;
}

const char *cp_file_here(const struct parser *p)
{
	const char *file;
	int line;

	where(p, p->line, &file, &line);
	return file;
}

const char *cp_at(const struct parser *p, int gline, char *buf)
{
	const char *f, *here;
	int l, hl;

	where(p, gline, &f, &l);
	where(p, p->line, &here, &hl);
	if (strcmp(f, here))
		snprintf(buf, CP_AT_BUF, "%s:%d", f, l);
	else
		snprintf(buf, CP_AT_BUF, "line %d", l);
	return buf;
}

/* Start a segment: global lines after gstart are file's, from lstart + 1. */
static int seg_push(struct parser *p, const char *file, int lstart)
{
	struct cp_seg *grown = realloc(p->segs, (p->n_segs + 1) * sizeof(*grown));

	if (!grown)
		return -1;
	p->segs = grown;
	if (!(grown[p->n_segs].file = strdup(file)))
		return -1;
	grown[p->n_segs].gstart = p->line;
	grown[p->n_segs].lstart = lstart;
	p->n_segs++;
	return 0;
}

/* "FILE:LINE: " + tag + the message, into line. */
__attribute__((format(printf, 4, 0)))
static void cp_format(const struct parser *p, char line[CONFIG_ERR_MAX], const char *tag, const char *fmt, va_list ap)
{
	const char *file;
	int l;

	where(p, p->line, &file, &l);
	int n = snprintf(line, CONFIG_ERR_MAX, "%s:%d: %s", file, l, tag);

	if (n >= 0 && n < CONFIG_ERR_MAX)
		vsnprintf(line + n, CONFIG_ERR_MAX - (size_t)n, fmt, ap);
}

__attribute__((format(printf, 2, 3)))
int cp_err(struct parser *p, const char *fmt, ...)
{
	char line[CONFIG_ERR_MAX];
	va_list ap;

	if (p->macro_pass) /* the second pass reports it */
		return -1;

	va_start(ap, fmt);
	cp_format(p, line, "", fmt, ap);
	va_end(ap);
	if (!p->errs.n)
		snprintf(p->err, CONFIG_ERR_MAX, "%s", line);
	msgs_add(&p->errs, line);
	return -1;
}

__attribute__((format(printf, 2, 3)))
void cp_warn(struct parser *p, const char *fmt, ...)
{
	char line[CONFIG_ERR_MAX];
	va_list ap;

	if (p->macro_pass)
		return;
	va_start(ap, fmt);
	cp_format(p, line, "warning: ", fmt, ap);
	va_end(ap);
	msgs_add(&p->warns, line);
}

static const char *block_name(enum cp_ctx k);

void cp_warn_pending(struct parser *p, const struct directive *d)
{
	char **grown;

	for (size_t i = 0; i < p->n_warned; i++)
		if (!strcmp(p->warned[i], d->name))
			return;
	if ((grown = realloc(p->warned, (p->n_warned + 1) * sizeof(*grown)))) {
		p->warned = grown;
		if ((grown[p->n_warned] = strdup(d->name)))
			p->n_warned++;
	}
	/* "... has no effect": a PowerMTA feature Salvo does not have, not one still to come */
	const char *yet = strstr(d->pending, "no effect") ? "" : " yet";

	if (d->ctx != CTX_TOP && d->ctx != CTX_DOMAIN && d->ctx != CTX_SOURCE && block_name(d->ctx))
		cp_warn(p, "%s in <%s> is accepted but not applied%s: %s", d->name, block_name(d->ctx), yet,
			d->pending);
	else
		cp_warn(p, "%s is accepted but not applied%s: %s", d->name, yet, d->pending);
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

/* An IP address where a host name goes (host-name, a HELO name): the
 * address literal "[IP]" that SMTP (RFC 5321 4.1.3) and message ids take
 * in its place, written to buf, with the warning; NULL when v is no IP. */
const char *cp_ip_as_host(struct parser *p, const struct directive *d, const char *v, char *buf, size_t cap)
{
	unsigned char a[16];
	bool v6 = inet_pton(AF_INET6, v, a) == 1;

	if (!v6 && inet_pton(AF_INET, v, a) != 1)
		return NULL;
	snprintf(buf, cap, v6 ? "[IPv6:%s]" : "[%s]", v);
	cp_warn(p, "%s %s is an address, not a host name: Salvo greets with the address literal %s (receivers "
		"expect a name whose address and PTR match)", d->name, v, buf);
	return buf;
}

static int d_host_name(struct parser *p, const struct directive *d, char *v)
{
	char lit[64];
	const char *ip = cp_ip_as_host(p, d, v, lit, sizeof(lit));

	if (!ip && !cp_valid_domain_name(v))
		return cp_bad_value(p, "host name", d, v);
	return cp_set_string(p, &p->cfg->host_name, ip ? ip : v);
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

/* `smtp-listener ADDR [source=NAME] [tls=yes|no]`; ADDR is IP:PORT,
 * [IPv6]:PORT, *:PORT or PowerMTA's 0/0:PORT (every IPv4 address). */
static int d_smtp_listener(struct parser *p, const struct directive *d, char *v)
{
	struct config *c = p->cfg;
	char *opts = v + strcspn(v, CP_WS), addr[96], *source = NULL, sb[CP_SHOW_BUF], **grown;
	bool no_tls = false, *nt;

	if (*opts) {
		*opts++ = '\0';
		opts = cp_trim(opts);
	}
	if (!strncmp(v, "0/0:", 4))
		snprintf(addr, sizeof(addr), "0.0.0.0:%s", v + 4);
	else
		snprintf(addr, sizeof(addr), "%s", v);
	for (char *next, *o = opts; o && *o; o = next) {
		next = o + strcspn(o, CP_WS);
		if (*next) {
			*next++ = '\0';
			next = cp_trim(next);
		}
		if (!strncasecmp(o, "source=", 7) && o[7]) {
			source = o + 7;
		} else if (!strcasecmp(o, "tls=yes")) {
			no_tls = false;
		} else if (!strcasecmp(o, "tls=no")) {
			no_tls = true; /* no STARTTLS there (engine/intake.c's peer policy) */
		} else {
			return cp_err(p, "unknown option \"%s\" for %s (expected source=NAME or tls=yes|no)",
				      cp_show(sb, o), d->name);
		}
	}
	if (cp_add_listener(p, d, addr, &c->smtp_listeners, &c->n_smtp_listeners, &p->file_smtp_listeners) < 0)
		return -1;
	if (!(grown = realloc(c->smtp_listener_source, c->n_smtp_listeners * sizeof(*grown))))
		return cp_oom(p);
	c->smtp_listener_source = grown;
	grown[c->n_smtp_listeners - 1] = NULL;
	if (!(nt = realloc(c->smtp_listener_no_tls, c->n_smtp_listeners * sizeof(*nt))))
		return cp_oom(p);
	c->smtp_listener_no_tls = nt;
	nt[c->n_smtp_listeners - 1] = no_tls;
	if (source) {
		if (*source == '{' && source[strlen(source) - 1] == '}') {
			source++;
			source[strlen(source) - 1] = '\0';
		}
		/* sessions there take <source {NAME}> (engine/intake.c) */
		return cp_set_string(p, &grown[c->n_smtp_listeners - 1], source);
	}
	return 0;
}

int cp_smtp_listener(struct parser *p, const struct directive *d, char *v)
{
	return d_smtp_listener(p, d, v);
}

/* `<smtp-listener ADDR>`: the listener, whose block sets its options */
int cp_open_smtp_listener(struct parser *p, char *arg)
{
	static const struct directive d = {"<smtp-listener>", CTX_TOP, NULL, NULL};

	if (cp_has_space(arg))
		return cp_err(p, "<smtp-listener> takes one address (IP:PORT or 0/0:PORT); its options go inside");
	if (d_smtp_listener(p, &d, arg) < 0)
		return -1;
	p->cur = p->cfg->n_smtp_listeners - 1;
	return 0;
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

/* A size in bytes (units allowed), not zero. */
static int set_size(struct parser *p, const struct directive *d, const char *v, uint64_t *field)
{
	uint64_t n;

	if (config_parse_size(v, &n) < 0 || n == 0)
		return cp_bad_value(p, "size", d, v);
	*field = n;
	return 0;
}

static int d_max_message_size(struct parser *p, const struct directive *d, char *v)
{
	return set_size(p, d, v, &p->cfg->max_message_size);
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

static int d_queue_free_after(struct parser *p, const struct directive *d, char *v)
{
	if (config_parse_duration(v, &p->cfg->queue_free_after_ms) < 0 || !p->cfg->queue_free_after_ms)
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

/* `domain-key SELECTOR,DOMAIN,KEYFILE`; repeatable. At top level the key
 * serves every virtual MTA; inside <virtual-mta> only that one's mail
 * (PowerMTA's meaning; engine/dkim.c chooses). The file is read by salvod
 * at start (a config check does not need the key). */
/* One domain-key: PowerMTA takes the first key whose domain matches (the
 * vmta's before the top level's), so a second key for a domain in the same
 * scope never signs: accepted with a warning (a key rotation's old line). */
static int add_domain_key(struct parser *p, const struct directive *d, size_t vmta, const char *sel, char *dom,
			  const char *path)
{
	struct config *c = p->cfg;
	char sb[CP_SHOW_BUF];
	size_t i;

	/* PowerMTA: `*` signs every message with its sending domain */
	if (strcmp(dom, "*") && !cp_valid_domain_name(dom))
		return cp_err(p, "invalid domain \"%s\" for %s (a domain name or *)", cp_show(sb, dom), d->name);
	cp_lower(dom);
	/* one key per domain in each scope (the top level, each vmta) */
	for (i = 0; i < c->n_domain_keys; i++)
		if (c->domain_keys[i].vmta == vmta && !strcmp(c->domain_keys[i].domain, dom)) {
			cp_warn(p, "a second %s for %s%s%s never signs: the first (selector %s, at %s) is used", d->name,
				dom, vmta == SIZE_MAX ? "" : " in <virtual-mta> ", vmta == SIZE_MAX ? "" : c->vmtas[vmta].name,
				c->domain_keys[i].selector, cp_at(p, c->domain_keys[i].line, (char[CP_AT_BUF]){0}));
			return 0;
		}
	if (cp_grow(p, (void **)&c->domain_keys, &c->n_domain_keys, sizeof(*c->domain_keys), &i) < 0)
		return -1;
	c->domain_keys[i].line = p->line;
	c->domain_keys[i].vmta = vmta;
	if (cp_set_string(p, &c->domain_keys[i].selector, sel) < 0 || cp_set_string(p, &c->domain_keys[i].domain, dom) < 0)
		return -1;
	return cp_set_string(p, &c->domain_keys[i].path, path);
}

static int d_domain_key(struct parser *p, const struct directive *d, char *v)
{
	char *sel = v, *dom, *path, sb[CP_SHOW_BUF];
	size_t vmta = p->ctx == CTX_VMTA ? p->cur : SIZE_MAX;

	if (!(dom = strchr(sel, ',')) || !(path = strchr(dom + 1, ',')))
		return cp_err(p, "%s wants SELECTOR,DOMAIN,KEYFILE, not \"%s\"", d->name, cp_show(sb, v));
	*dom++ = '\0';
	*path++ = '\0';
	sel = cp_trim(sel);
	dom = cp_trim(dom);
	path = cp_trim(path);
	if (!*sel || strspn(sel, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != strlen(sel))
		return cp_err(p, "invalid selector \"%s\" for %s", cp_show(sb, sel), d->name);
	if (!*path)
		return cp_err(p, "missing key file for %s", d->name);
	/* `m,$topDomain.$topLevel,FILE`: one key per domain the macros name */
	char **names;
	size_t n;
	int rc = 0;

	if (cp_macro_expand(p, dom, &names, &n) < 0)
		return -1;
	for (size_t k = 0; k < n && rc == 0; k++)
		rc = add_domain_key(p, d, vmta, sel, names[k], path);
	cp_macro_names_free(names, n);
	return rc;
}

static int d_bounce_max_message_size(struct parser *p, const struct directive *d, char *v)
{
	return set_size(p, d, v, &p->cfg->bounce_max_message_size);
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
	{"host-name", CTX_TOP, d_host_name, NULL},
	{"bounce-max-message-size", CTX_TOP, d_bounce_max_message_size, NULL},
	{"bounce-max-reports-per-ip", CTX_TOP, d_bounce_max_reports_per_ip, NULL},
	{"smtp-max-session-time", CTX_TOP, d_smtp_max_session_time, NULL},
	{"domain-key", CTX_TOP, d_domain_key, NULL},
	{"domain-key", CTX_VMTA, d_domain_key, NULL},
	{"smtp-max-connections", CTX_TOP, d_smtp_max_connections, NULL},
	{"total-max-smtp-in", CTX_TOP, d_smtp_max_connections, NULL}, /* PowerMTA's name for it */
	{"smtp-max-connections-per-ip", CTX_TOP, d_smtp_max_connections_per_ip, NULL},
	{"smtp-max-errors", CTX_TOP, d_smtp_max_errors, NULL},
	{"soft-bounce-suppress-after", CTX_TOP, d_soft_bounce_suppress_after, NULL},
	{"bounce-verp-retention", CTX_TOP, d_bounce_verp_retention, NULL},
	{"queue-free-after", CTX_TOP, d_queue_free_after, NULL},
	{"spool-dir", CTX_TOP, d_spool_dir, NULL},
	{"spool-commit-delay", CTX_TOP, d_spool_commit_delay, NULL},
	{"smtp-listener", CTX_TOP, d_smtp_listener, NULL},
	{"smtps-listener", CTX_TOP, d_smtps_listener, NULL},
	{"dns-server", CTX_TOP, d_dns_server, NULL},
	{"worker-threads", CTX_TOP, d_worker_threads, NULL},
	{"max-message-size", CTX_TOP, d_max_message_size, NULL},
	{"postmaster", CTX_TOP, d_postmaster, NULL},
	{"bounce-domain", CTX_TOP, d_bounce_domain, NULL},
	{"tls-certificate", CTX_TOP, d_tls_certificate, NULL},
	{"tls-private-key", CTX_TOP, d_tls_private_key, NULL},
	{"tls-ciphers", CTX_TOP, d_tls_ciphers, NULL},
	{"tls-ciphersuites", CTX_TOP, d_tls_ciphersuites, NULL},
	/* PowerMTA's names for the same */
	{"smtp-server-tls-ciphers", CTX_TOP, d_tls_ciphers, NULL},
	{"smtp-server-tls-v1.3-ciphersuites", CTX_TOP, d_tls_ciphersuites, NULL},
};

static const struct directive_table top_directives = {directives, sizeof(directives) / sizeof(directives[0])};

static const struct directive_table *const tables[] = {
	&top_directives, &cp_http_directives, &cp_source_directives, &cp_domain_directives, &cp_vmta_directives,
	&cp_pmta_directives, &cp_intake_list_directives, &cp_address_list_directives,
	&cp_webhook_directives,
};

#define N_TABLES (sizeof(tables) / sizeof(tables[0]))

/* <domain> directives are numbered in table order (values[] of a domain);
 * a name listed twice (in two tables) keeps its first number. */
ssize_t cp_dom_key(const char *name)
{
	ssize_t k = 0;

	for (size_t t = 0; t < N_TABLES; t++)
		for (size_t i = 0; i < tables[t]->n; i++) {
			if (tables[t]->d[i].ctx != CTX_DOMAIN)
				continue;
			if (!strcasecmp(tables[t]->d[i].name, name))
				return k;
			k++;
		}
	return -1;
}

size_t cp_dom_keys(void)
{
	size_t k = 0;

	for (size_t t = 0; t < N_TABLES; t++)
		for (size_t i = 0; i < tables[t]->n; i++)
			k += tables[t]->d[i].ctx == CTX_DOMAIN;
	return k;
}

const char *cp_dom_key_name(size_t k)
{
	for (size_t t = 0; t < N_TABLES; t++)
		for (size_t i = 0; i < tables[t]->n; i++)
			if (tables[t]->d[i].ctx == CTX_DOMAIN && k-- == 0)
				return tables[t]->d[i].name;
	return NULL;
}

const char *config_domain_key_name(size_t i)
{
	return cp_dom_key_name(i);
}

const char *config_domain_value(const struct config_domain *d, const char *name)
{
	ssize_t k = cp_dom_key(name);

	return k >= 0 && d->values ? d->values[k] : NULL;
}

/* ---- blocks ------------------------------------------------------------- */

struct block {
	const char *name;
	bool takes_arg;
	int (*open)(struct parser *p, char *arg);
	bool arg_spaces;            /* the argument may hold spaces (a pipe's command) */
	bool optional_arg;
};

static const struct block blocks[CTX_N] = {
	[CTX_SOURCE] = {"source", true, cp_open_source, false, false},
	[CTX_DOMAIN] = {"domain", true, cp_open_domain, true, false},
	[CTX_VMTA] = {"virtual-mta", true, cp_open_vmta, false, false},
	[CTX_POOL] = {"virtual-mta-pool", true, cp_open_pool, false, false},
	[CTX_ROLLUP] = {"mx-rollup-list", false, cp_open_rollup, false, false},
	[CTX_PATTERNS] = {"smtp-pattern-list", true, cp_open_patterns, false, false},
	[CTX_CATEGORIES] = {"bounce-category-patterns", false, cp_open_categories, false, false},
	[CTX_SMTP_USER] = {"smtp-user", true, cp_open_smtp_user, false, false},
	[CTX_PATTERN_LIST] = {"pattern-list", true, cp_open_pattern_list, false, false},
	[CTX_ADDRESS_LIST] = {"address-list", true, cp_open_address_list, false, true},
	[CTX_BOUNCE_PROC] = {"bounce-processor", false, cp_open_processor, false, false},
	[CTX_FBL_PROC] = {"feedback-loop-processor", false, cp_open_processor, false, false},
	[CTX_REWRITE_LIST] = {"rewrite-list", true, cp_open_rewrite_list, false, false},
	[CTX_ACCT_FILE] = {"acct-file", true, cp_open_acct_file, true, false},
	[CTX_SPOOL] = {"spool", true, cp_open_spool, false, false},
	[CTX_WEBHOOK] = {"acct-webhook", true, cp_open_webhook, false, false},
	[CTX_SMTP_LISTENER] = {"smtp-listener", true, cp_open_smtp_listener, false, false},
};

static const char *block_name(enum cp_ctx k)
{
	return k < CTX_N ? blocks[k].name : NULL;
}

static enum cp_ctx find_block(const char *name)
{
	for (enum cp_ctx k = CTX_SOURCE; k < CTX_N; k++)
		if (blocks[k].name && strcasecmp(name, blocks[k].name) == 0)
			return k;
	return CTX_TOP;
}

/* The nestings PowerMTA has. */
static bool may_nest(enum cp_ctx outer, enum cp_ctx inner)
{
	if (inner == CTX_DOMAIN)
		return outer == CTX_VMTA || outer == CTX_POOL;
	if (inner == CTX_ADDRESS_LIST)
		return outer == CTX_BOUNCE_PROC || outer == CTX_FBL_PROC;
	return false;
}

/* Ignore lines up to the `</name>` that closes a block whose opening failed. */
static void skip_block(struct parser *p, const char *name)
{
	free(p->skip_name);
	p->skip_name = strdup(name);
	p->skip_depth = 1;
	if (p->skip_name)
		cp_lower(p->skip_name);
}

/* `<NAME ARG>` with the brackets already removed. */
static int open_tag(struct parser *p, char *name)
{
	char sb[CP_SHOW_BUF];
	char *arg = name + strcspn(name, CP_WS);
	const char *why;
	enum cp_ctx kind;
	bool inert;

	if (*arg) {
		*arg++ = '\0';
		arg = cp_trim(arg);
	}
	if ((kind = find_block(name)) == CTX_TOP) {
		skip_block(p, name);
		if (p->ctx == CTX_TOP && (why = cp_unapplied_block(name))) {
			cp_warn(p, "<%s> is accepted but not applied: %s", cp_show(sb, name), why);
			return 0;
		}
		if ((why = cp_refused(name, true, &inert)) && !inert)
			return cp_err(p, "<%s> %s", cp_show(sb, name), why);
		if (why) {
			cp_warn(p, "<%s> is accepted but has no effect: it %s", cp_show(sb, name), why);
			return 0;
		}
		return cp_err(p, "unknown block directive <%s>", cp_show(sb, name));
	}
	if (p->ctx != CTX_TOP && !may_nest(p->ctx, kind)) {
		skip_block(p, name);
		return cp_err(p, "<%s> cannot be nested inside <%s> (opened at %s)",
			    blocks[kind].name, blocks[p->ctx].name, cp_at(p, p->block_line, (char[CP_AT_BUF]){0}));
	}
	if (p->ctx == CTX_TOP && kind == CTX_ADDRESS_LIST && !*arg) {
		skip_block(p, name);
		return cp_err(p, "missing argument for <address-list> (a name, outside the processors)");
	}
	if (!*arg && blocks[kind].takes_arg && !blocks[kind].optional_arg) {
		skip_block(p, name);
		return cp_err(p, "missing argument for <%s>", blocks[kind].name);
	}
	if (*arg && !blocks[kind].takes_arg) {
		skip_block(p, name);
		return cp_err(p, "<%s> takes no argument", blocks[kind].name);
	}
	if (cp_has_space(arg) && !blocks[kind].arg_spaces) {
		skip_block(p, name);
		return cp_err(p, "too many arguments for <%s>: \"%s\"", blocks[kind].name, cp_show(sb, arg));
	}
	free(p->scope);
	p->scope = NULL;
	if (kind == CTX_DOMAIN && (p->ctx == CTX_VMTA || p->ctx == CTX_POOL)) {
		const char *outer = p->ctx == CTX_VMTA ? p->cfg->vmtas[p->cur].name : p->cfg->pools[p->cur].name;

		if (!(p->scope = strdup(outer)))
			return cp_oom(p);
		cp_lower(p->scope);
	}
	if (p->ctx != CTX_TOP) {
		if (p->depth >= CP_NEST_MAX) {
			skip_block(p, name);
			return cp_err(p, "blocks nested too deep");
		}
		p->stack[p->depth++] = (struct cp_frame){p->ctx, p->cur, p->block_line};
	}
	p->ctx = kind;
	p->block_line = p->line;
	if (blocks[kind].open(p, arg) < 0) {
		/* back out: the block's lines are skipped */
		if (p->depth) {
			p->depth--;
			p->ctx = p->stack[p->depth].ctx;
			p->cur = p->stack[p->depth].cur;
			p->block_line = p->stack[p->depth].line;
		} else {
			p->ctx = CTX_TOP;
		}
		p->n_curs = 0;
		skip_block(p, name);
		return -1;
	}
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
		return cp_err(p, "</%s> does not match <%s> (opened at %s)", blocks[kind].name,
			    blocks[p->ctx].name, cp_at(p, p->block_line, (char[CP_AT_BUF]){0}));
	if (kind == CTX_DOMAIN) {
		p->n_curs = 0;
		free(p->scope);
		p->scope = NULL;
	}
	if (p->depth) {
		p->depth--;
		p->ctx = p->stack[p->depth].ctx;
		p->cur = p->stack[p->depth].cur;
		p->block_line = p->stack[p->depth].line;
	} else {
		p->ctx = CTX_TOP;
	}
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

/* While skipping a broken block: count its nested namesakes, stop at its end. */
static void skip_line(struct parser *p, char *s)
{
	size_t n = strlen(s);
	bool closing = s[1] == '/';
	char *name = s + 1 + closing;

	if (*s != '<' || n < 3 || s[n - 1] != '>')
		return;
	s[n - 1] = '\0';
	name[strcspn(name, CP_WS)] = '\0';
	if (strcasecmp(name, p->skip_name))
		return;
	if (!closing)
		p->skip_depth++;
	else if (--p->skip_depth == 0) {
		free(p->skip_name);
		p->skip_name = NULL;
	}
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

static const struct directive *find_directive(const struct parser *p, const char *name)
{
	const struct directive *d = NULL;

	/* A name may mean something in several contexts (max-message-size at
	 * top level and in <source>): the current context's entry wins. */
	for (size_t t = 0; t < N_TABLES && !(d && d->ctx == p->ctx); t++)
		for (size_t i = 0; i < tables[t]->n; i++)
			if (strcasecmp(name, tables[t]->d[i].name) == 0 && (!d || tables[t]->d[i].ctx == p->ctx)) {
				d = &tables[t]->d[i];
				if (d->ctx == p->ctx)
					break;
			}
	return d;
}

/* Remember a <domain> directive's value as written, for --show. */
static int remember_value(struct parser *p, struct config_domain *dom, const struct directive *d, const char *v)
{
	ssize_t k = cp_dom_key(d->name);
	char *copy;

	if (k < 0)
		return 0;
	if (!dom->values && !(dom->values = calloc(cp_dom_keys(), sizeof(char *))))
		return cp_oom(p);
	if (!(copy = strdup(v)))
		return cp_oom(p);
	free(dom->values[k]);
	dom->values[k] = copy;
	return 0;
}

/* Edit distance between a and b (case-insensitive), or more than max. */
static size_t edit_distance(const char *a, const char *b, size_t max)
{
	size_t la = strlen(a), lb = strlen(b), row[64];

	if (la >= 63 || lb >= 63 || (la > lb ? la - lb : lb - la) > max)
		return max + 1;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0], best;

		row[0] = i;
		best = row[0];
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j], cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
			size_t v = diag + cost;

			if (up + 1 < v)
				v = up + 1;
			if (row[j - 1] + 1 < v)
				v = row[j - 1] + 1;
			diag = up;
			row[j] = v;
			if (v < best)
				best = v;
		}
		if (best > max)
			return max + 1;
	}
	return row[lb];
}

/* A directive of the open block whose name is close to an unknown one
 * (a typo, or another product's spelling: `smtp-auth-username`), or NULL. */
static const char *suggest_directive(const struct parser *p, const char *name)
{
	const char *best = NULL;
	size_t best_d = 3, n = strlen(name);

	if (n < 5)
		return NULL;
	for (size_t t = 0; t < N_TABLES; t++)
		for (size_t i = 0; i < tables[t]->n; i++) {
			const struct directive *d = &tables[t]->d[i];
			size_t k = strlen(d->name), dist;

			if (d->ctx != p->ctx || !strcasecmp(d->name, "bounce-category-pattern"))
				continue;
			/* another product's prefix on PowerMTA's name */
			if (n > k && name[n - k - 1] == '-' && !strcasecmp(name + n - k, d->name) && k >= 8)
				dist = 1;
			else
				dist = edit_distance(name, d->name, 2);
			if (dist < best_d) {
				best_d = dist;
				best = d->name;
			}
		}
	return best;
}

static int run_directive(struct parser *p, const char *name, char *v)
{
	char sb[CP_SHOW_BUF];
	const struct directive *d = find_directive(p, name);
	const char *why;
	int rc = 0;

	if (!d) {
		bool inert, b = true;

		if ((why = cp_refused(name, false, &inert))) {
			/* set to its "off" value (no or ""), such a directive
			 * asks for what Salvo does anyway: no error, no warning */
			if (!strcmp(v, "\"\"") || (config_parse_bool(v, &b) == 0 && !b))
				return 0;
			if (!inert)
				return cp_err(p, "%s %s", cp_show(sb, name), why);
			cp_warn(p, "%s is accepted but has no effect: it %s", cp_show(sb, name), why);
			return 0;
		}
		const char *like = suggest_directive(p, name);

		if (like)
			return cp_err(p, "unknown directive \"%s\" (did you mean %s?)", cp_show(sb, name), like);
		return cp_err(p, "unknown directive \"%s\"", cp_show(sb, name));
	}
	if (d->ctx != p->ctx && d->ctx == CTX_TOP)
		return cp_err(p, "\"%s\" is only valid at top level", d->name);
	if (d->ctx != p->ctx)
		return cp_err(p, "\"%s\" is only valid inside <%s>", d->name, blocks[d->ctx].name);
	if (!*v)
		return cp_err(p, "missing value for %s", d->name);
	/* `""`: PowerMTA's "clear the inherited value", i.e. the built-in
	 * default. In <domain *> (or outside <domain>) nothing is set, which
	 * is that; elsewhere Salvo cannot un-inherit, and says so. */
	if (!strcmp(v, "\"\"")) {
		if (d->ctx == CTX_DOMAIN && !(p->n_curs == 1 && p->curs[0] == 0 && !p->scope))
			cp_warn(p, "%s \"\" (clear the inherited value) is accepted but not applied: the block keeps the "
				"value it inherits", d->name);
		return 0;
	}
	if (d->ctx == CTX_DOMAIN) {
		/* one block, or one per value of a domain-macro: each gets its own copy */
		size_t n = p->n_curs;

		for (size_t i = 0; i < n && rc == 0; i++) {
			char *copy = strdup(v);

			if (!copy)
				return cp_oom(p);
			p->cur = p->curs[i];
			rc = d->set(p, d, copy);
			free(copy);
			if (rc == 0)
				rc = remember_value(p, &p->cfg->domains[p->cur], d, v);
		}
	} else {
		rc = d->set(p, d, v);
	}
	if (rc == 0 && d->pending)
		cp_warn_pending(p, d);
	return rc;
}

static char *read_file(const char *path, size_t *len, char *err);
static void parse_lines(struct parser *p, char *text, size_t len);
static int include_files(struct parser *p, char *v);

/* A value written in double quotes, `password "s3cret"`: the quotes go.
 * `""` (PowerMTA's "clear the inherited value") stays as written. */
static char *unquote(char *v)
{
	size_t n = strlen(v);

	if (n > 2 && v[0] == '"' && v[n - 1] == '"' && !memchr(v + 1, '"', n - 2)) {
		v[n - 1] = '\0';
		return v + 1;
	}
	return v;
}

static int parse_line(struct parser *p, char *s)
{
	char *v;

	strip_comment(s);
	s = cp_trim(s);
	if (!*s)
		return 0;
	if (p->skip_name) {
		skip_line(p, s);
		return 0;
	}
	if (*s == '<' && p->macro_pass)
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
	if (!strcasecmp(s, "include"))
		return include_files(p, v);
	if (p->macro_pass)
		return strcasecmp(s, "domain-macro") ? 0 : run_directive(p, s, unquote(v));
	return run_directive(p, s, unquote(v));
}

/* `include FILE` (PowerMTA's, at top level and inside blocks): the lines of
 * FILE are parsed as if they stood here; a relative FILE is taken from the
 * including file's directory; shell wildcards take every match in name
 * order; a wildcard that matches nothing includes nothing (with a warning),
 * a missing plain FILE is an error. Messages from FILE carry its name and lines. */
#define CP_INCLUDE_DEPTH 8

static int include_one(struct parser *p, const char *path)
{
	char err[CONFIG_ERR_MAX];
	const char *file;
	int line;
	size_t len;
	char *text, sb[CP_SHOW_BUF];
	struct stat st;

	/* a FIFO would block the load (a reload: the main thread) until a writer came */
	if (stat(path, &st) == 0 && S_ISFIFO(st.st_mode))
		return cp_err(p, "include: %s: a FIFO, not a regular file", cp_show(sb, path));
	if (!(text = read_file(path, &len, err)))
		return cp_err(p, "include: %s", err);
	where(p, p->line, &file, &line);
	/* the includer's name is copied before a push can move the array */
	char *back = strdup(file);
	if (!back || (!p->n_segs && seg_push(p, p->file, 0) < 0) || seg_push(p, path, 0) < 0) {
		free(back);
		free(text);
		return cp_oom(p);
	}
	p->include_depth++;
	parse_lines(p, text, len);
	p->include_depth--;
	free(text);
	/* the includer goes on after its include line */
	int rc = seg_push(p, back, line);
	free(back);
	return rc < 0 ? cp_oom(p) : 0;
}

static int include_files(struct parser *p, char *v)
{
	char path[PATH_MAX], dir[PATH_MAX], sb[CP_SHOW_BUF];
	glob_t g;
	int rc = 0, grc;

	if (!*v)
		return cp_err(p, "missing value for include (a file name)");
	if (strstr(v, "://"))
		return cp_err(p, "include of a URL (\"%s\") is not supported: copy the file next to the "
			      "configuration and include it by name", cp_show(sb, v));
	if (p->include_depth >= CP_INCLUDE_DEPTH)
		return cp_err(p, "include \"%s\": more than %d levels of include (does a file include itself?)",
			      cp_show(sb, v), CP_INCLUDE_DEPTH);
	if (*v == '/') {
		snprintf(path, sizeof(path), "%s", v);
	} else {
		const char *file;
		int l;

		where(p, p->line, &file, &l);
		snprintf(dir, sizeof(dir), "%s", file);
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dirname(dir), v) >= sizeof(path))
			return cp_err(p, "include \"%s\": path too long", cp_show(sb, v));
	}
	grc = glob(path, GLOB_ERR, NULL, &g);
	/* a wildcard that matches nothing (an empty conf.d) includes nothing */
	if ((grc == GLOB_NOMATCH || grc == GLOB_ABORTED) && strpbrk(path, "*?[")) {
		globfree(&g);
		cp_warn(p, "include: %s matches no file, so nothing is included", cp_show(sb, path));
		return 0;
	}
	if (grc == GLOB_NOMATCH)
		return cp_err(p, "include: %s: no such file", cp_show(sb, path));
	if (grc != 0)
		return cp_err(p, "include: %s: cannot read: %s", cp_show(sb, path), strerror(errno));
	for (size_t i = 0; i < g.gl_pathc; i++)
		rc |= include_one(p, g.gl_pathv[i]);
	globfree(&g);
	return rc;
}

/* Every line is parsed whatever the lines before it did: each error is
 * reported (cp_err) and the parser goes on. */
/* Is s (a line of n bytes, comments and blanks aside) a list of domain
 * names, as a domain-macro's values go on: `yahoo.com,yahoo.de` or
 * `a.com, b.com,`? Names are separated by commas only, and one has a dot. */
static bool names_list_line(const char *s, size_t n)
{
	bool dot = false, word = false, gap = false;

	for (size_t i = 0; i < n && s[i] != '#'; i++) {
		char c = s[i];

		if (c == '.' || c == '-' || c == '_' || c == '*' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
		    (c >= 'A' && c <= 'Z')) {
			if (gap && word) /* `host-name x.example`: two words, no comma */
				return false;
			word = true, gap = false, dot = dot || c == '.';
		} else if (c == ',') {
			word = false, gap = false;
		} else if (strchr(CP_WS, c)) {
			gap = true;
		} else {
			return false;
		}
	}
	return dot;
}

/* `domain-macro NAME` whose values go on over the next lines (configs in use
 * write `domain-macro yahoo` and the list below it, or break a long list
 * after a comma): while the values so far are none or end with a comma,
 * each next line that is only a list of names is taken into the line. The
 * joined line (malloc'ed) in *joined, the text after the last line taken in
 * *after; returns the number of lines taken, 0 when s is no such line, -1
 * when out of memory. Lines are never taken across a blank one. */
static int macro_continuation(const char *s, char *next, char *end, char **joined, char **after)
{
	const char *v = s + strspn(s, CP_WS);
	size_t cap, len;
	char *out;
	int k = 0;

	if (strncasecmp(v, "domain-macro", 12) || !strchr(CP_WS, v[12]) || !v[12])
		return 0;
	if (!(out = malloc(cap = strlen(s) + 2)))
		return -1;
	strcpy(out, s);
	strip_comment(out);
	len = strlen(out);
	while (len && strchr(CP_WS, out[len - 1]))
		out[--len] = '\0';
	for (;;) {
		const char *vals = out + strspn(out, CP_WS) + 12;
		char *nl;
		size_t n;

		vals += strspn(vals, CP_WS);
		vals += strcspn(vals, CP_WS); /* the macro's name */
		vals += strspn(vals, CP_WS);
		bool none = !*vals;

		if ((!none && out[len - 1] != ',') || next >= end)
			break;
		nl = memchr(next, '\n', (size_t)(end - next));
		n = nl ? (size_t)(nl - next) : (size_t)(end - next);
		if (memchr(next, '\0', n) || !names_list_line(next, n))
			break;
		if (len + n + 2 > cap) {
			char *g = realloc(out, cap = len + n + 2);

			if (!g) {
				free(out);
				return -1;
			}
			out = g;
		}
		/* a blank between name and values, none after a comma */
		if (none)
			out[len++] = ' ';
		memcpy(out + len, next, n);
		len += n;
		out[len] = '\0';
		strip_comment(out);
		len = strlen(out);
		while (len && strchr(CP_WS, out[len - 1]))
			out[--len] = '\0';
		next += n + (nl ? 1 : 0);
		k++;
	}
	if (!k) {
		free(out);
		return 0;
	}
	*joined = out;
	*after = next;
	return k;
}

static void parse_lines(struct parser *p, char *text, size_t len)
{
	char *s = text, *end = text + len;

	/* a UTF-8 byte order mark (Windows editors write one): not text */
	if (len >= 3 && !memcmp(s, "\xef\xbb\xbf", 3))
		s += 3;

	while (s < end) {
		char *nl = memchr(s, '\n', (size_t)(end - s));
		size_t n = nl ? (size_t)(nl - s) : (size_t)(end - s);
		char *joined = NULL, *after = NULL;
		int k = 0;

		s[n] = '\0'; /* the '\n', or the terminator after the text */
		p->line++;
		if (strlen(s) != n) {
			cp_err(p, "NUL byte in line");
		} else if ((k = macro_continuation(s, s + n + 1, end, &joined, &after)) > 0) {
			/* the list's lines read as one line, told by its first */
			parse_line(p, joined);
			free(joined);
			p->line += k;
			s = after;
			continue;
		} else if (k < 0) {
			cp_oom(p);
		} else {
			parse_line(p, s);
		}
		s += n + 1;
	}
}

/* ---- finishing: duplicates, sorting, inheritance ------------------------ */

/* Each step reports its own errors; all run, so one load reports all. */
static void finish(struct parser *p)
{
	if (p->skip_name)
		cp_err(p, "<%s> not closed", p->skip_name);
	if (p->ctx != CTX_TOP) {
		cp_err(p, "<%s> not closed (opened at %s)", blocks[p->ctx].name, cp_at(p, p->block_line, (char[CP_AT_BUF]){0}));
		while (p->depth) {
			p->depth--;
			cp_err(p, "<%s> not closed (opened at %s)", blocks[p->stack[p->depth].ctx].name, cp_at(p, p->stack[p->depth].line, (char[CP_AT_BUF]){0}));
		}
	}
	cp_domains_finish(p);
	cp_vmtas_finish(p);
	cp_sources_finish(p);
	cp_intake_lists_finish(p);
	cp_address_lists_finish(p);
	cp_http_finish(p);
	cp_pmta_finish(p);
	cp_webhooks_finish(p);
}

void cp_parser_free(struct parser *p)
{
	for (size_t i = 0; i < p->n_warned; i++)
		free(p->warned[i]);
	free(p->warned);
	for (size_t i = 0; i < p->n_macros; i++) {
		for (size_t j = 0; j < p->macros[i].n; j++)
			free(p->macros[i].vals[j]);
		free(p->macros[i].vals);
		free(p->macros[i].name);
	}
	free(p->macros);
	free(p->global_helo);
	free(p->skip_name);
	free(p->curs);
	free(p->scope);
	free(p->errs.text);
	free(p->warns.text);
	for (size_t i = 0; i < p->n_segs; i++)
		free(p->segs[i].file);
	free(p->segs);
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
		.queue_free_after_ms = 60 * 1000ULL,
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
	for (size_t i = 0; cfg->smtp_listener_source && i < cfg->n_smtp_listeners; i++)
		free(cfg->smtp_listener_source[i]);
	free(cfg->smtp_listener_source);
	free(cfg->smtp_listener_no_tls);
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
	cp_pmta_free(cfg);
	cp_intake_lists_free(cfg);
	cp_address_lists_free(cfg);
	cp_webhooks_free(cfg);
	memset(cfg, 0, sizeof(*cfg));
}

/* The line number of a "FILE:LINE: message"; those without one ("FILE:
 * ... and 12 more errors") go last. */
static long msg_line(const char *m, size_t file_len)
{
	char *end;
	long n;

	if (m[file_len] != ':' || !(m[file_len + 1] >= '0' && m[file_len + 1] <= '9'))
		return LONG_MAX;
	n = strtol(m + file_len + 1, &end, 10);
	return *end == ':' ? n : LONG_MAX;
}

/* Errors of the finishing step come after the lines': put all in line
 * order (stable), so the report reads top to bottom. */
static void sort_msgs(struct cp_msgs *m, const char *file)
{
	size_t n = 0, fl = strlen(file), k = 0;
	char **lines, *sorted;

	if (!m->text)
		return;
	for (const char *c = m->text; *c; c++)
		n += *c == '\n';
	lines = calloc(n ? n : 1, sizeof(*lines));
	sorted = malloc(m->len + 1);
	if (!lines || !sorted) {
		free(lines);
		free(sorted);
		return;
	}
	for (char *c = m->text; *c; c = strchr(c, '\n') + 1)
		lines[k++] = c;
	for (size_t i = 1; i < n; i++) /* insertion sort: stable, n <= 201 */
		for (size_t j = i; j > 0 && msg_line(lines[j - 1], fl) > msg_line(lines[j], fl); j--) {
			char *t = lines[j];
			lines[j] = lines[j - 1];
			lines[j - 1] = t;
		}
	k = 0;
	for (size_t i = 0; i < n; i++) {
		size_t l = (size_t)(strchr(lines[i], '\n') - lines[i]) + 1;

		memcpy(sorted + k, lines[i], l);
		k += l;
	}
	sorted[k] = '\0';
	free(m->text);
	m->text = sorted;
	m->cap = m->len + 1;
	free(lines);
}

/* Parse text[0..len) (modified in place; text[len] must be writable). */
static int load_text(struct config *cfg, const char *name, char *text, size_t len, char *err,
		     struct config_report *rep)
{
	struct parser p = {.cfg = cfg, .file = name, .err = err};
	int rc = 0;

	if (config_defaults(cfg) < 0 || !(cfg->path = strdup(name))) {
		config_free(cfg);
		snprintf(err, CONFIG_ERR_MAX, "%s: out of memory", name);
		if (rep)
			*rep = (struct config_report){.errors = strdup(err), .n_errors = 1};
		return -1;
	}
	p.dom_cap = cfg->n_domains;
	/* PowerMTA takes a <domain $macro> before the domain-macro line (an
	 * include order may put it so): a first pass reads the macros only */
	char *copy = malloc(len + 1);
	if (copy) {
		memcpy(copy, text, len + 1);
		p.macro_pass = true;
		parse_lines(&p, copy, len);
		p.macro_pass = false;
		free(copy);
		for (size_t i = 0; i < p.n_segs; i++)
			free(p.segs[i].file);
		p.n_segs = 0;
		p.line = 0;
	}
	parse_lines(&p, text, len);
	finish(&p);
	sort_msgs(&p.errs, name);
	sort_msgs(&p.warns, name);
	if (p.errs.text) /* the first in line order */
		snprintf(err, CONFIG_ERR_MAX, "%.*s", (int)(strchr(p.errs.text, '\n') - p.errs.text), p.errs.text);
	if (p.errs.n) {
		config_free(cfg);
		rc = -1;
	} else {
		err[0] = '\0';
	}
	if (rep) {
		unsigned total = p.errs.n;

		if (total > CP_ERR_LIST_MAX) {
			char more[CONFIG_ERR_MAX];

			snprintf(more, sizeof(more), "%s: ... and %u more errors", name, total - CP_ERR_LIST_MAX);
			p.errs.n = 0; /* so msgs_add() keeps this one */
			msgs_add(&p.errs, more);
		}
		rep->n_errors = total;
		rep->n_warnings = p.warns.n;
		rep->errors = p.errs.text;
		rep->warnings = p.warns.text;
		p.errs.text = p.warns.text = NULL;
	}
	cp_parser_free(&p);
	return rc;
}

/* A configuration (with its includes) is kilobytes; past this it is not
 * one (`include /dev/zero` would otherwise read for ever). */
#define CONFIG_FILE_MAX ((size_t)64 << 20)

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
		if (n > CONFIG_FILE_MAX) {
			snprintf(err, CONFIG_ERR_MAX, "%s: larger than %zu MiB: not a configuration file", path,
				 CONFIG_FILE_MAX >> 20);
			goto fail;
		}
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

static int load_path(struct config *cfg, const char *path, char *err, struct config_report *rep)
{
	size_t len;
	char *text;
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	if (!(text = read_file(path, &len, err))) {
		if (rep && !(rep->errors = malloc(strlen(err) + 2)))
			return -1;
		if (rep) {
			sprintf(rep->errors, "%s\n", err);
			rep->n_errors = 1;
		}
		return -1;
	}
	rc = load_text(cfg, path, text, len, err, rep);
	free(text);
	return rc;
}

static int load_string(struct config *cfg, const char *name, const char *text, char *err,
		       struct config_report *rep)
{
	char *copy = strdup(text);
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	if (!copy) {
		snprintf(err, CONFIG_ERR_MAX, "%s: out of memory", name);
		if (rep)
			rep->errors = strdup(err), rep->n_errors = 1;
		return -1;
	}
	rc = load_text(cfg, name, copy, strlen(copy), err, rep);
	free(copy);
	return rc;
}

int config_load(struct config *cfg, const char *path, char err[CONFIG_ERR_MAX])
{
	return load_path(cfg, path, err, NULL);
}

int config_load_string(struct config *cfg, const char *name, const char *text,
		       char err[CONFIG_ERR_MAX])
{
	return load_string(cfg, name, text, err, NULL);
}

int config_load_report(struct config *cfg, const char *path, struct config_report *rep)
{
	char err[CONFIG_ERR_MAX];

	memset(rep, 0, sizeof(*rep));
	return load_path(cfg, path, err, rep);
}

int config_load_string_report(struct config *cfg, const char *name, const char *text,
			      struct config_report *rep)
{
	char err[CONFIG_ERR_MAX];

	memset(rep, 0, sizeof(*rep));
	return load_string(cfg, name, text, err, rep);
}

void config_report_free(struct config_report *rep)
{
	if (!rep)
		return;
	free(rep->errors);
	free(rep->warnings);
	memset(rep, 0, sizeof(*rep));
}
