/*
 * config_source.c - <source CIDR> blocks: who may inject, relay, and choose
 * a pool or campaign by header; and config_source_for(), the most specific
 * match for a client address.
 */
#include "core/config_parser.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static struct config_source *cur_source(struct parser *p)
{
	return &p->cfg->sources[p->cur];
}

static int set_bool(struct parser *p, const struct directive *d, const char *v, bool *field)
{
	if (config_parse_bool(v, field) < 0)
		return cp_bad_value(p, "boolean", d, v);
	return 0;
}

static int d_always_allow_relaying(struct parser *p, const struct directive *d, char *v)
{
	return set_bool(p, d, v, &cur_source(p)->always_allow_relaying);
}

static int d_process_x_virtual_mta(struct parser *p, const struct directive *d, char *v)
{
	return set_bool(p, d, v, &cur_source(p)->process_x_virtual_mta);
}

static int d_process_x_job(struct parser *p, const struct directive *d, char *v)
{
	return set_bool(p, d, v, &cur_source(p)->process_x_job);
}

/* A pool or virtual MTA name; resolved in cp_sources_finish(). */
static int d_default_virtual_mta(struct parser *p, const struct directive *d, char *v)
{
	if (cp_has_space(v))
		return cp_bad_value(p, "name", d, v);
	return cp_set_string(p, &cur_source(p)->default_virtual_mta, v);
}

static int d_require_auth(struct parser *p, const struct directive *d, char *v)
{
	return set_bool(p, d, v, &cur_source(p)->require_auth);
}

static int d_allow_unencrypted_auth(struct parser *p, const struct directive *d, char *v)
{
	return set_bool(p, d, v, &cur_source(p)->allow_unencrypted_auth);
}

/* `max-message-size SIZE|unlimited` (PowerMTA's, per source) */
static int d_max_message_size(struct parser *p, const struct directive *d, char *v)
{
	uint64_t n;

	/* PowerMTA: `{ N{b|k|m|g|t} | 0 | unlimited }`, 0 meaning no limit */
	if (config_parse_size(v, &n) == 0 && n == 0)
		v = "unlimited";
	if (!strcasecmp(v, "unlimited")) {
		cur_source(p)->max_message_size = UINT64_MAX;
		return 0;
	}
	if (config_parse_size(v, &n) < 0)
		return cp_bad_value(p, "size, 0 or \"unlimited\"", d, v);
	cur_source(p)->max_message_size = n;
	return 0;
}

static int d_max_connections_per_ip(struct parser *p, const struct directive *d, char *v)
{
	uint64_t n;

	if (config_parse_uint(v, 1, 1000000, &n) < 0)
		return cp_bad_value(p, "count (1-1000000)", d, v);
	cur_source(p)->max_connections_per_ip = (unsigned)n;
	return 0;
}

/* `max-rcpt-per-message N`: RCPTs beyond N in one transaction get 452 4.5.3 */
static int d_max_rcpt_per_message(struct parser *p, const struct directive *d, char *v)
{
	uint64_t n;

	if (config_parse_uint(v, 1, 1000000, &n) < 0)
		return cp_bad_value(p, "count (1-1000000)", d, v);
	cur_source(p)->max_rcpt_per_message = (unsigned)n;
	return 0;
}

/* `smtp-command-timeout DURATION`, `smtp-data-timeout DURATION`: this
 * source's sessions wait so long instead of the server-wide timeouts */
static int d_intake_timeout(struct parser *p, const struct directive *d, char *v)
{
	uint64_t ms;

	if (config_parse_duration(v, &ms) < 0 || !ms || ms > 86400000)
		return cp_bad_value(p, "duration (at most 1d)", d, v);
	if (!strcasecmp(d->name, "smtp-command-timeout"))
		cur_source(p)->command_timeout_ms = ms;
	else
		cur_source(p)->data_timeout_ms = ms;
	return 0;
}

/* `remove-header NAME[,NAME...]` (repeatable): those fields are removed from
 * the message at intake (engine/intake.c, one pass with the other edits) */
static int d_remove_header(struct parser *p, const struct directive *d, char *v)
{
	struct config_source *s = cur_source(p);
	char *save = NULL;
	size_t had = s->n_remove_headers;

	for (char *name = strtok_r(v, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
		size_t n;
		char **grown;

		name = cp_trim(name);
		n = strlen(name);
		if (!n || n > 64 || strspn(name, "!\"#$%&'*+-.^_`|~0123456789"
					     "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") != n)
			return cp_bad_value(p, "header name list (A,B)", d, name);
		if (s->n_remove_headers >= 64)
			return cp_err(p, "%s: at most 64 header names per <source>", d->name);
		grown = realloc(s->remove_headers, (s->n_remove_headers + 1) * sizeof(*grown));
		if (!grown)
			return cp_err(p, "out of memory");
		s->remove_headers = grown;
		if (!(grown[s->n_remove_headers] = strdup(name)))
			return cp_err(p, "out of memory");
		s->n_remove_headers++;
	}
	if (s->n_remove_headers == had)
		return cp_bad_value(p, "header name list (A,B)", d, v);
	return 0;
}

static void free_remove_headers(struct config_source *s)
{
	for (size_t i = 0; i < s->n_remove_headers; i++)
		free(s->remove_headers[i]);
	free(s->remove_headers);
	s->remove_headers = NULL;
	s->n_remove_headers = 0;
}

/* bare-newline reject|normalize: a bare CR or LF in DATA refuses the message
 * with 550 5.5.2 (Postfix's smtpd_forbid_bare_newline) or is stored as CRLF. */
static int d_bare_newline(struct parser *p, const struct directive *d, char *v)
{
	if (strcmp(v, "reject") == 0)
		cur_source(p)->bare_newline_normalize = false;
	else if (strcmp(v, "normalize") == 0)
		cur_source(p)->bare_newline_normalize = true;
	else {
		char sb[CP_SHOW_BUF];

		return cp_err(p, "invalid value \"%s\" for %s (expected reject or normalize)", cp_show(sb, v),
			      d->name);
	}
	return 0;
}

/* PowerMTA's yes/no intake settings (engine/intake.c applies them) */
static int d_intake_bool(struct parser *p, const struct directive *d, char *v)
{
	struct config_source *s = cur_source(p);
	bool b;

	if (config_parse_bool(v, &b) < 0)
		return cp_bad_value(p, "boolean", d, v);
	if (!strcasecmp(d->name, "add-message-id-header"))
		s->add_message_id = b;
	else if (!strcasecmp(d->name, "add-received-header"))
		s->no_received_header = !b;
	else if (!strcasecmp(d->name, "hide-message-source"))
		s->hide_message_source = b;
	else if (!strcasecmp(d->name, "remove-received-headers"))
		s->remove_received = b;
	else if (!strcasecmp(d->name, "retain-x-job"))
		s->retain_x_job = b;
	else if (!strcasecmp(d->name, "verp-default"))
		s->no_verp = !b;
	else if (!strcasecmp(d->name, "process-x-envid"))
		s->process_x_envid = b;
	else if (!strcasecmp(d->name, "smtp-service"))
		s->no_smtp_service = !b; /* 554 at connect (engine/intake.c) */
	else if (!strcasecmp(d->name, "allow-starttls"))
		s->no_starttls = !b;
	else
		s->retain_x_virtual_mta = b;
	return 0;
}

/* `jobid-header NAME`: the header that carries the job id instead of X-Job */
static int d_jobid_header(struct parser *p, const struct directive *d, char *v)
{
	if (cp_has_space(v) || strchr(v, ':') || strlen(v) > 64)
		return cp_bad_value(p, "header name", d, v);
	return cp_set_string(p, &cur_source(p)->jobid_header, v);
}

/* `pattern-list NAME`: resolved in cp_intake_lists_finish() */
static int d_pattern_list(struct parser *p, const struct directive *d, char *v)
{
	if (cp_has_space(v))
		return cp_bad_value(p, "name", d, v);
	cur_source(p)->pattern_list_line = p->line;
	return cp_set_string(p, &cur_source(p)->pattern_list, v);
}

/* `smtp-max-auth-failure-rate N/T`: failed AUTH per client address (engine/auth.c) */
static int d_auth_failure_rate(struct parser *p, const struct directive *d, char *v)
{
	struct config_rate r;

	if (!strcasecmp(v, "unlimited")) {
		cp_warn(p, "smtp-max-auth-failure-rate unlimited: Salvo's built-in throttle still refuses an address "
			"after 5 failed AUTH attempts in 5 minutes");
		cur_source(p)->auth_failure_rate = (struct config_rate){0};
		return 0;
	}
	if (config_parse_rate(v, &r) < 0 || !r.count || r.count > 1000000 || !r.per_ms)
		return cp_bad_value(p, "rate such as 5/m (at least 1)", d, v);
	cur_source(p)->auth_failure_rate = r;
	return 0;
}

static const struct directive directives[] = {
	{"add-message-id-header", CTX_SOURCE, d_intake_bool, NULL},
	{"add-received-header", CTX_SOURCE, d_intake_bool, NULL},
	{"hide-message-source", CTX_SOURCE, d_intake_bool, NULL},
	{"remove-received-headers", CTX_SOURCE, d_intake_bool, NULL},
	{"retain-x-job", CTX_SOURCE, d_intake_bool, NULL},
	{"retain-x-virtual-mta", CTX_SOURCE, d_intake_bool, NULL},
	{"verp-default", CTX_SOURCE, d_intake_bool, NULL},
	{"process-x-envid", CTX_SOURCE, d_intake_bool, NULL},
	{"smtp-service", CTX_SOURCE, d_intake_bool, NULL},
	{"allow-starttls", CTX_SOURCE, d_intake_bool, NULL},
	{"jobid-header", CTX_SOURCE, d_jobid_header, NULL},
	{"pattern-list", CTX_SOURCE, d_pattern_list, NULL},
	{"smtp-max-auth-failure-rate", CTX_SOURCE, d_auth_failure_rate, NULL},
	{"max-message-size", CTX_SOURCE, d_max_message_size, NULL},
	{"smtp-max-connections-per-ip", CTX_SOURCE, d_max_connections_per_ip, NULL},
	{"max-rcpt-per-message", CTX_SOURCE, d_max_rcpt_per_message, NULL},
	{"smtp-command-timeout", CTX_SOURCE, d_intake_timeout, NULL},
	{"smtp-data-timeout", CTX_SOURCE, d_intake_timeout, NULL},
	{"remove-header", CTX_SOURCE, d_remove_header, NULL},
	{"always-allow-relaying", CTX_SOURCE, d_always_allow_relaying, NULL},
	{"require-auth", CTX_SOURCE, d_require_auth, NULL},
	{"allow-unencrypted-plain-auth", CTX_SOURCE, d_allow_unencrypted_auth, NULL},
	{"process-x-virtual-mta", CTX_SOURCE, d_process_x_virtual_mta, NULL},
	{"process-x-job", CTX_SOURCE, d_process_x_job, NULL},
	{"default-virtual-mta", CTX_SOURCE, d_default_virtual_mta, NULL},
	{"bare-newline", CTX_SOURCE, d_bare_newline, NULL},
};

const struct directive_table cp_source_directives = {directives, sizeof(directives) / sizeof(directives[0])};

int cp_open_source(struct parser *p, char *arg)
{
	struct config *c = p->cfg;
	struct config_cidr net;
	char sb[CP_SHOW_BUF];

	size_t n = strlen(arg);
	bool named = false;

	if (n > 2 && arg[0] == '{' && arg[n - 1] == '}') {
		arg[n - 1] = '\0';
		arg++;
		named = true;
	} else if (config_parse_cidr(arg, &net) < 0) {
		/* PowerMTA also names sources without braces (`<source mta1>`) */
		named = arg[strspn(arg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")] == '\0' &&
			strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", arg[0]) && !strchr(arg, '.');
		if (!named)
			return cp_err(p, "invalid CIDR \"%s\" for <source> (expected an address, a network such "
				      "as 10.0.0.0/8 or 0/0, or a name {name})", cp_show(sb, arg));
	}
	if (named) {
		if (!*arg || strlen(arg) > 64)
			return cp_err(p, "invalid source name \"%s\"", cp_show(sb, arg));
		for (size_t i = 0; i < c->n_sources; i++)
			if (c->sources[i].name && !strcasecmp(c->sources[i].name, arg))
				return cp_err(p, "duplicate <source {%s}> (first at %s)", arg, cp_at(p, c->sources[i].line, (char[CP_AT_BUF]){0}));
		/* a named source adds settings (a session takes them after AUTH:
		 * config_source_after_auth); the loopback defaults stay unless
		 * the file has address sources of its own */
		if (cp_grow(p, (void **)&c->sources, &c->n_sources, sizeof(*c->sources), &p->cur) < 0)
			return -1;
		c->sources[p->cur].line = p->line;
		return cp_set_string(p, &c->sources[p->cur].name, arg);
	}
	if (!p->file_sources) {
		/* the file's sources replace the loopback defaults (line 0) */
		size_t kept = 0;

		for (size_t i = 0; i < c->n_sources; i++) {
			if (c->sources[i].line == 0) {
				free(c->sources[i].default_virtual_mta);
				free(c->sources[i].name);
				free(c->sources[i].jobid_header);
				free(c->sources[i].pattern_list);
				free_remove_headers(&c->sources[i]);
				continue;
			}
			c->sources[kept++] = c->sources[i];
		}
		c->n_sources = kept;
		p->file_sources = true;
	}
	for (size_t i = 0; i < c->n_sources; i++) {
		const struct config_cidr *o = &c->sources[i].net;
		if (c->sources[i].name)
			continue;
		if (o->family == net.family && o->prefix == net.prefix &&
		    memcmp(o->addr, net.addr, sizeof(net.addr)) == 0) {
			config_cidr_format(&net, sb, sizeof(sb));
			return cp_err(p, "duplicate <source %s> (first at %s)", sb, cp_at(p, c->sources[i].line, (char[CP_AT_BUF]){0}));
		}
	}
	if (cp_grow(p, (void **)&c->sources, &c->n_sources, sizeof(*c->sources), &p->cur) < 0)
		return -1;
	c->sources[p->cur].net = net;
	c->sources[p->cur].line = p->line;
	return 0;
}

int cp_sources_default(struct config *cfg)
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

int cp_sources_finish(struct parser *p)
{
	struct config *c = p->cfg;

	for (size_t i = 0; i < c->n_sources; i++) {
		struct config_source *s = &c->sources[i];
		ssize_t pool;

		if (!s->default_virtual_mta)
			continue;
		if (!strcasecmp(s->default_virtual_mta, "by-smtp-source-ip")) {
			s->default_by_source_ip = true; /* per session: config_source_pool() */
			continue;
		}
		if ((pool = config_pool_find(c, s->default_virtual_mta)) < 0) {
			p->line = s->line;
			cp_err(p, "default-virtual-mta \"%s\": no such virtual-mta or virtual-mta-pool",
				      s->default_virtual_mta);
			continue;
		}
		s->default_pool = (size_t)pool;
	}
	return 0;
}

void cp_sources_free(struct config *cfg)
{
	for (size_t i = 0; i < cfg->n_sources; i++) {
		free(cfg->sources[i].default_virtual_mta);
		free(cfg->sources[i].name);
		free(cfg->sources[i].jobid_header);
		free(cfg->sources[i].pattern_list);
		free(cfg->sources[i].suppression_lists);
		free(cfg->sources[i].suppress);
		free_remove_headers(&cfg->sources[i]);
	}
	free(cfg->sources);
	cfg->sources = NULL;
	cfg->n_sources = 0;
}

const struct config_source *config_source_for(const struct config *cfg,
					      const struct sockaddr *addr)
{
	const struct config_source *best = NULL;

	if (!addr)
		return NULL;
	for (size_t i = 0; i < cfg->n_sources; i++) {
		const struct config_source *s = &cfg->sources[i];
		if (s->name)
			continue;
		if (config_cidr_match(&s->net, addr) && (!best || s->net.prefix > best->net.prefix))
			best = s;
	}
	return best;
}

bool config_source_trusted(const struct config_source *src)
{
	return src && src->always_allow_relaying && !src->require_auth;
}

uint64_t config_source_max_message_size(const struct config *cfg, const struct config_source *src)
{
	if (src && src->max_message_size)
		return src->max_message_size == UINT64_MAX ? UINT64_MAX : src->max_message_size;
	return config_source_trusted(src) ? cfg->max_message_size : cfg->bounce_max_message_size;
}

const struct config_source *config_source_named(const struct config *cfg, const char *name)
{
	for (size_t i = 0; name && i < cfg->n_sources; i++)
		if (cfg->sources[i].name && !strcasecmp(cfg->sources[i].name, name))
			return &cfg->sources[i];
	return NULL;
}

const struct config_source *config_source_after_auth(const struct config *cfg, const char *user,
						     const struct config_source *addr_src)
{
	const struct config_source *s = NULL;

	for (size_t i = 0; user && i < cfg->n_smtp_users; i++)
		if (!strcmp(cfg->smtp_users[i].name, user) && cfg->smtp_users[i].source)
			s = config_source_named(cfg, cfg->smtp_users[i].source);
	if (!s && user)
		s = config_source_named(cfg, "auth");
	return s ? s : addr_src;
}

const struct config_source *config_source_for_listener(const struct config *cfg, size_t listener,
						       const struct sockaddr *addr)
{
	const struct config_source *s = NULL;

	if (cfg->smtp_listener_source && listener < cfg->n_smtp_listeners && cfg->smtp_listener_source[listener])
		s = config_source_named(cfg, cfg->smtp_listener_source[listener]);
	return s ? s : config_source_for(cfg, addr);
}
