/*
 * config_domain.c - <domain NAME> blocks: per-destination retry schedule,
 * throttles, backoff limits, routing; their inheritance from <domain *>;
 * and config_domain_for(), the lookup the engine uses.
 *
 * A block stores only what it sets (set_mask says which); after parsing,
 * cp_domains_finish() sorts the named blocks, rejects duplicates and fills
 * every unset field from domains[0], the "*" entry (built-in defaults
 * modified in place by the file's `<domain *>`). Lookups are then a bsearch
 * with no merging, and returned pointers live as long as the config.
 */
#include "core/config_parser.h"

#include <arpa/inet.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEF_RETRY_MS (15 * 60 * 1000ULL)
#define DEF_BOUNCE_MS (4 * 3600 * 1000ULL)
#define DEF_MAX_SMTP_OUT 20
#define DEF_MAX_MSG_PER_CONN 100
#define DEF_MAX_RCPT_PER_MSG 100
#define DEF_IDLE_TIMEOUT_MS 5000
#define DEF_BACKOFF_TO_NORMAL_MS (3600 * 1000ULL)
#define DEF_SMTP_PORT 25

static struct config_domain *cur_domain(struct parser *p)
{
	return &p->cfg->domains[p->cur];
}

static int d_retry_after(struct parser *p, const struct directive *d, char *v)
{
	struct config_domain *dom = cur_domain(p);

	if (cp_duration_list(p, d, v, &dom->retry_after_ms, &dom->n_retry_after) < 0)
		return -1;
	dom->set_mask |= CONFIG_DOM_RETRY_AFTER;
	return 0;
}

static int d_backoff_retry_after(struct parser *p, const struct directive *d, char *v)
{
	struct config_domain *dom = cur_domain(p);

	if (cp_duration_list(p, d, v, &dom->backoff_retry_after_ms, &dom->n_backoff_retry_after) < 0)
		return -1;
	dom->set_mask |= CONFIG_DOM_BACKOFF_RETRY;
	return 0;
}

static int set_duration(struct parser *p, const struct directive *d, const char *v,
			uint64_t *field, uint64_t flag)
{
	if (config_parse_duration(v, field) < 0)
		return cp_bad_value(p, "duration", d, v);
	cur_domain(p)->set_mask |= flag;
	return 0;
}

static int d_bounce_after(struct parser *p, const struct directive *d, char *v)
{
	return set_duration(p, d, v, &cur_domain(p)->bounce_after_ms, CONFIG_DOM_BOUNCE_AFTER);
}

static int d_idle_timeout(struct parser *p, const struct directive *d, char *v)
{
	return set_duration(p, d, v, &cur_domain(p)->idle_timeout_ms, CONFIG_DOM_IDLE_TIMEOUT);
}

static int d_connect_timeout(struct parser *p, const struct directive *d, char *v)
{
	return set_duration(p, d, v, &cur_domain(p)->connect_timeout_ms, CONFIG_DOM_CONNECT_TIMEOUT);
}

static int d_smtp_greeting_timeout(struct parser *p, const struct directive *d, char *v)
{
	return set_duration(p, d, v, &cur_domain(p)->smtp_greeting_timeout_ms, CONFIG_DOM_GREETING_TIMEOUT);
}

static int d_data_send_timeout(struct parser *p, const struct directive *d, char *v)
{
	return set_duration(p, d, v, &cur_domain(p)->data_send_timeout_ms, CONFIG_DOM_DATA_SEND_TIMEOUT);
}

static int d_smtp_data_termination_timeout(struct parser *p, const struct directive *d, char *v)
{
	return set_duration(p, d, v, &cur_domain(p)->smtp_data_termination_timeout_ms,
			    CONFIG_DOM_DATA_TERM_TIMEOUT);
}

static int d_backoff_to_normal_after(struct parser *p, const struct directive *d, char *v)
{
	return set_duration(p, d, v, &cur_domain(p)->backoff_to_normal_after_ms,
			    CONFIG_DOM_BACKOFF_TO_NORMAL);
}

static int set_positive(struct parser *p, const struct directive *d, const char *v,
			unsigned *field, uint64_t flag)
{
	char sb[CP_SHOW_BUF];
	uint64_t n;

	if (config_parse_uint(v, 1, UINT_MAX, &n) < 0)
		return cp_err(p, "invalid value \"%s\" for %s (expected a positive integer)",
			      cp_show(sb, v), d->name);
	*field = (unsigned)n;
	cur_domain(p)->set_mask |= flag;
	return 0;
}

static int d_max_smtp_out(struct parser *p, const struct directive *d, char *v)
{
	return set_positive(p, d, v, &cur_domain(p)->max_smtp_out, CONFIG_DOM_MAX_SMTP_OUT);
}

static int d_backoff_max_smtp_out(struct parser *p, const struct directive *d, char *v)
{
	return set_positive(p, d, v, &cur_domain(p)->backoff_max_smtp_out, CONFIG_DOM_BACKOFF_SMTP_OUT);
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

/* A rate, or "unlimited". */
static int set_rate(struct parser *p, const struct directive *d, const char *v,
		    struct config_rate *field, uint64_t flag)
{
	if (strcasecmp(v, "unlimited") == 0)
		*field = (struct config_rate){0, 0};
	else if (config_parse_rate(v, field) < 0 || field->count == 0)
		return cp_bad_value(p, "rate", d, v);
	cur_domain(p)->set_mask |= flag;
	return 0;
}

static int d_max_msg_rate(struct parser *p, const struct directive *d, char *v)
{
	return set_rate(p, d, v, &cur_domain(p)->max_msg_rate, CONFIG_DOM_MAX_MSG_RATE);
}

static int d_max_connect_rate(struct parser *p, const struct directive *d, char *v)
{
	return set_rate(p, d, v, &cur_domain(p)->max_connect_rate, CONFIG_DOM_MAX_CONNECT_RATE);
}

static int d_backoff_max_msg_rate(struct parser *p, const struct directive *d, char *v)
{
	return set_rate(p, d, v, &cur_domain(p)->backoff_max_msg_rate, CONFIG_DOM_BACKOFF_MSG_RATE);
}

/* A list name, resolved in cp_domains_finish(). */
static int d_smtp_pattern_list(struct parser *p, const struct directive *d, char *v)
{
	if (cp_has_space(v))
		return cp_bad_value(p, "name", d, v);
	cur_domain(p)->set_mask |= CONFIG_DOM_PATTERN_LIST;
	return cp_set_string(p, &cur_domain(p)->smtp_pattern_list, v);
}

static int d_queue_to(struct parser *p, const struct directive *d, char *v)
{
	if (!cp_valid_domain_name(v))
		return cp_bad_value(p, "queue name", d, v);
	cp_lower(v);
	cur_domain(p)->set_mask |= CONFIG_DOM_QUEUE_TO;
	return cp_set_string(p, &cur_domain(p)->queue_to, v);
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
	if (!cp_valid_domain_name(h))
		return -1;
	cp_lower(h);
	*host = h;
	*port = (uint16_t)n;
	return 0;
}

static int d_route(struct parser *p, const struct directive *d, char *v)
{
	struct config_domain *dom = cur_domain(p);
	struct config_addr a;
	char sb[CP_SHOW_BUF], *host;
	uint16_t port;

	cp_show(sb, v);
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
			return cp_oom(p);
		dom->route_port = port;
		snprintf(dom->route.text, sizeof(dom->route.text), "%.50s:%u", host, port);
	} else {
		return cp_err(p, "invalid host or address \"%s\" for %s", sb, d->name);
	}
	dom->has_route = true;
	dom->set_mask |= CONFIG_DOM_ROUTE;
	return 0;
}

static int d_dkim_sign(struct parser *p, const struct directive *d, char *v)
{
	if (config_parse_bool(v, &cur_domain(p)->dkim_sign) < 0)
		return cp_bad_value(p, "boolean", d, v);
	cur_domain(p)->set_mask |= CONFIG_DOM_DKIM_SIGN;
	return 0;
}

static int set_dom_bool(struct parser *p, const struct directive *d, const char *v, bool *field, uint64_t flag)
{
	if (config_parse_bool(v, field) < 0)
		return cp_bad_value(p, "boolean", d, v);
	cur_domain(p)->set_mask |= flag;
	return 0;
}

static int d_use_starttls(struct parser *p, const struct directive *d, char *v)
{
	return set_dom_bool(p, d, v, &cur_domain(p)->use_starttls, CONFIG_DOM_USE_STARTTLS);
}

static int d_require_starttls(struct parser *p, const struct directive *d, char *v)
{
	return set_dom_bool(p, d, v, &cur_domain(p)->require_starttls, CONFIG_DOM_REQUIRE_STARTTLS);
}

static const struct directive directives[] = {
	{"retry-after", CTX_DOMAIN, d_retry_after},
	{"use-starttls", CTX_DOMAIN, d_use_starttls},
	{"require-starttls", CTX_DOMAIN, d_require_starttls},
	{"dkim-sign", CTX_DOMAIN, d_dkim_sign},
	{"bounce-after", CTX_DOMAIN, d_bounce_after},
	{"max-smtp-out", CTX_DOMAIN, d_max_smtp_out},
	{"max-msg-per-connection", CTX_DOMAIN, d_max_msg_per_connection},
	{"max-rcpt-per-message", CTX_DOMAIN, d_max_rcpt_per_message},
	{"max-rcpt-per-transaction", CTX_DOMAIN, d_max_rcpt_per_message},
	{"max-msg-rate", CTX_DOMAIN, d_max_msg_rate},
	{"max-connect-rate", CTX_DOMAIN, d_max_connect_rate},
	{"idle-timeout", CTX_DOMAIN, d_idle_timeout},
	{"connect-timeout", CTX_DOMAIN, d_connect_timeout},
	{"smtp-greeting-timeout", CTX_DOMAIN, d_smtp_greeting_timeout},
	{"data-send-timeout", CTX_DOMAIN, d_data_send_timeout},
	{"smtp-data-termination-timeout", CTX_DOMAIN, d_smtp_data_termination_timeout},
	{"backoff-max-msg-rate", CTX_DOMAIN, d_backoff_max_msg_rate},
	{"backoff-max-smtp-out", CTX_DOMAIN, d_backoff_max_smtp_out},
	{"backoff-retry-after", CTX_DOMAIN, d_backoff_retry_after},
	{"backoff-to-normal-after", CTX_DOMAIN, d_backoff_to_normal_after},
	{"smtp-pattern-list", CTX_DOMAIN, d_smtp_pattern_list},
	{"queue-to", CTX_DOMAIN, d_queue_to},
	{"route", CTX_DOMAIN, d_route},
};

const struct directive_table cp_domain_directives = {directives, sizeof(directives) / sizeof(directives[0])};

/* `<domain NAME>`: an exact name (a queue name such as google.rollup too)
 * or `*`. */
int cp_open_domain(struct parser *p, char *arg)
{
	struct config *c = p->cfg;
	struct config_domain *dom;
	char sb[CP_SHOW_BUF];

	if (strcmp(arg, "*") == 0) {
		if (c->domains[0].line)
			return cp_err(p, "duplicate <domain *> (first at line %d)", c->domains[0].line);
		c->domains[0].line = p->line;
		p->cur = 0;
		return 0;
	}
	if (!cp_valid_domain_name(arg))
		return cp_err(p, "invalid domain name \"%s\" for <domain>", cp_show(sb, arg));
	if (c->n_domains == p->dom_cap) {
		size_t cap = p->dom_cap ? p->dom_cap * 2 : 4;
		struct config_domain *grown = realloc(c->domains, cap * sizeof(*grown));
		if (!grown)
			return cp_oom(p);
		c->domains = grown;
		p->dom_cap = cap;
	}
	dom = &c->domains[c->n_domains];
	*dom = (struct config_domain){.name = strdup(arg), .line = p->line, .pattern_list = -1};
	if (!dom->name)
		return cp_oom(p);
	cp_lower(dom->name);
	p->cur = c->n_domains++;
	return 0;
}

int cp_domain_default(struct config_domain *d)
{
	*d = (struct config_domain){
		.name = strdup("*"),
		.retry_after_ms = malloc(sizeof(uint64_t)),
		.n_retry_after = 1,
		.bounce_after_ms = DEF_BOUNCE_MS,
		.max_smtp_out = DEF_MAX_SMTP_OUT,
		.max_msg_per_connection = DEF_MAX_MSG_PER_CONN,
		.max_rcpt_per_message = DEF_MAX_RCPT_PER_MSG,
		.idle_timeout_ms = DEF_IDLE_TIMEOUT_MS,
		.connect_timeout_ms = 30 * 1000,
		.smtp_greeting_timeout_ms = 300 * 1000,
		.data_send_timeout_ms = 180 * 1000,
		.smtp_data_termination_timeout_ms = 600 * 1000,
		.backoff_to_normal_after_ms = DEF_BACKOFF_TO_NORMAL_MS,
		.pattern_list = -1,
		.dkim_sign = true,
		.use_starttls = true,
	};
	if (!d->name || !d->retry_after_ms)
		return -1;
	d->retry_after_ms[0] = DEF_RETRY_MS;
	return 0;
}

static int domain_cmp(const void *a, const void *b)
{
	const struct config_domain *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : (x->line > y->line) - (x->line < y->line);
}

static int copy_list(uint64_t **dst, size_t *n_dst, const uint64_t *src, size_t n)
{
	*n_dst = 0;
	*dst = NULL;
	if (!n)
		return 0;
	if (!(*dst = malloc(n * sizeof(**dst))))
		return -1;
	memcpy(*dst, src, n * sizeof(**dst));
	*n_dst = n;
	return 0;
}

/* Fill what d did not set from star (fully set). */
static int inherit(struct config_domain *d, const struct config_domain *star)
{
	uint64_t m = d->set_mask;

	if (!(m & CONFIG_DOM_RETRY_AFTER) &&
	    copy_list(&d->retry_after_ms, &d->n_retry_after, star->retry_after_ms, star->n_retry_after) < 0)
		return -1;
	if (!(m & CONFIG_DOM_BACKOFF_RETRY) &&
	    copy_list(&d->backoff_retry_after_ms, &d->n_backoff_retry_after, star->backoff_retry_after_ms,
		      star->n_backoff_retry_after) < 0)
		return -1;
	if (!(m & CONFIG_DOM_BOUNCE_AFTER))
		d->bounce_after_ms = star->bounce_after_ms;
	if (!(m & CONFIG_DOM_MAX_SMTP_OUT))
		d->max_smtp_out = star->max_smtp_out;
	if (!(m & CONFIG_DOM_MAX_MSG_PER_CONN))
		d->max_msg_per_connection = star->max_msg_per_connection;
	if (!(m & CONFIG_DOM_MAX_RCPT))
		d->max_rcpt_per_message = star->max_rcpt_per_message;
	if (!(m & CONFIG_DOM_MAX_MSG_RATE))
		d->max_msg_rate = star->max_msg_rate;
	if (!(m & CONFIG_DOM_MAX_CONNECT_RATE))
		d->max_connect_rate = star->max_connect_rate;
	if (!(m & CONFIG_DOM_DKIM_SIGN))
		d->dkim_sign = star->dkim_sign;
	if (!(m & CONFIG_DOM_USE_STARTTLS))
		d->use_starttls = star->use_starttls;
	if (!(m & CONFIG_DOM_REQUIRE_STARTTLS))
		d->require_starttls = star->require_starttls;
	if (!(m & CONFIG_DOM_IDLE_TIMEOUT))
		d->idle_timeout_ms = star->idle_timeout_ms;
	if (!(m & CONFIG_DOM_CONNECT_TIMEOUT))
		d->connect_timeout_ms = star->connect_timeout_ms;
	if (!(m & CONFIG_DOM_GREETING_TIMEOUT))
		d->smtp_greeting_timeout_ms = star->smtp_greeting_timeout_ms;
	if (!(m & CONFIG_DOM_DATA_SEND_TIMEOUT))
		d->data_send_timeout_ms = star->data_send_timeout_ms;
	if (!(m & CONFIG_DOM_DATA_TERM_TIMEOUT))
		d->smtp_data_termination_timeout_ms = star->smtp_data_termination_timeout_ms;
	if (!(m & CONFIG_DOM_BACKOFF_MSG_RATE))
		d->backoff_max_msg_rate = star->backoff_max_msg_rate;
	if (!(m & CONFIG_DOM_BACKOFF_SMTP_OUT))
		d->backoff_max_smtp_out = star->backoff_max_smtp_out;
	if (!(m & CONFIG_DOM_BACKOFF_TO_NORMAL))
		d->backoff_to_normal_after_ms = star->backoff_to_normal_after_ms;
	if (!(m & CONFIG_DOM_PATTERN_LIST) && star->smtp_pattern_list &&
	    !(d->smtp_pattern_list = strdup(star->smtp_pattern_list)))
		return -1;
	/* queue-to is not inherited: `*` queueing everything to one queue
	 * would be a trap, and the block that says it means that domain. */
	if (!(m & CONFIG_DOM_ROUTE) && star->has_route) {
		d->has_route = true;
		d->route = star->route;
		d->route_port = star->route_port;
		if (star->route_host && !(d->route_host = strdup(star->route_host)))
			return -1;
	}
	return 0;
}

static int resolve_pattern_list(struct parser *p, struct config_domain *d)
{
	const struct config *c = p->cfg;

	d->pattern_list = -1;
	if (!d->smtp_pattern_list)
		return 0;
	for (size_t i = 0; i < c->n_pattern_lists; i++)
		if (strcasecmp(c->pattern_lists[i].name, d->smtp_pattern_list) == 0) {
			d->pattern_list = (ssize_t)i;
			return 0;
		}
	p->line = d->line;
	return cp_err(p, "smtp-pattern-list \"%s\": no such <smtp-pattern-list>", d->smtp_pattern_list);
}

int cp_domains_finish(struct parser *p)
{
	struct config *c = p->cfg;
	struct config_domain *dup = NULL;

	qsort(c->domains + 1, c->n_domains - 1, sizeof(*c->domains), domain_cmp);
	/* report the duplicate that comes first in the file */
	for (size_t i = 2; i < c->n_domains; i++)
		if (strcmp(c->domains[i - 1].name, c->domains[i].name) == 0 &&
		    (!dup || c->domains[i].line < dup->line))
			dup = &c->domains[i];
	if (dup) {
		p->line = dup->line;
		return cp_err(p, "duplicate <domain %s> (first at line %d)", dup->name, dup[-1].line);
	}
	for (size_t i = 1; i < c->n_domains; i++)
		if (inherit(&c->domains[i], &c->domains[0]) < 0)
			return cp_oom(p);
	for (size_t i = 0; i < c->n_domains; i++)
		if (resolve_pattern_list(p, &c->domains[i]) < 0)
			return -1;
	return 0;
}

void cp_domains_free(struct config *cfg)
{
	for (size_t i = 0; i < cfg->n_domains; i++) {
		struct config_domain *d = &cfg->domains[i];

		free(d->name);
		free(d->retry_after_ms);
		free(d->backoff_retry_after_ms);
		free(d->route_host);
		free(d->smtp_pattern_list);
		free(d->queue_to);
	}
	free(cfg->domains);
	cfg->domains = NULL;
	cfg->n_domains = 0;
}

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
