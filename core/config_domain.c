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
#include <stdint.h>
#include <string.h>
#include <strings.h>

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

/* `never`: the queue stays in backoff until a delivery (with
 * backoff-to-normal-after-delivery) or an operator puts it back; kept as a
 * century so that now + it never overflows */
#define NEVER_MS (100ULL * 365 * 24 * 3600 * 1000)

static int d_backoff_to_normal_after(struct parser *p, const struct directive *d, char *v)
{
	if (!strcasecmp(v, "never")) {
		cur_domain(p)->backoff_to_normal_after_ms = NEVER_MS;
		cur_domain(p)->set_mask |= CONFIG_DOM_BACKOFF_TO_NORMAL;
		return 0;
	}
	return set_duration(p, d, v, &cur_domain(p)->backoff_to_normal_after_ms,
			    CONFIG_DOM_BACKOFF_TO_NORMAL);
}

static int set_positive(struct parser *p, const struct directive *d, const char *v,
			unsigned *field, uint64_t flag)
{
	char sb[CP_SHOW_BUF];
	uint64_t n;

	if (!strcasecmp(v, "unlimited")) /* PowerMTA's word for no cap */
		n = UINT_MAX;
	else if (config_parse_uint(v, 1, UINT_MAX, &n) < 0)
		return cp_err(p, "invalid value \"%s\" for %s (expected a positive integer or unlimited)",
			      cp_show(sb, v), d->name);
	*field = (unsigned)n;
	cur_domain(p)->set_mask |= flag;
	return 0;
}

/* PowerMTA's 0: no session at all, the queue holds its mail
 * (egress_max_out); for backoff-max-smtp-out, while in backoff (whose 0 in
 * the field means "not set", hence CONFIG_SMTP_OUT_NONE) */
static int d_max_smtp_out(struct parser *p, const struct directive *d, char *v)
{
	if (!strcmp(v, "0")) {
		cur_domain(p)->max_smtp_out = 0;
		cur_domain(p)->set_mask |= CONFIG_DOM_MAX_SMTP_OUT;
		return 0;
	}
	return set_positive(p, d, v, &cur_domain(p)->max_smtp_out, CONFIG_DOM_MAX_SMTP_OUT);
}

static int d_backoff_max_smtp_out(struct parser *p, const struct directive *d, char *v)
{
	if (!strcmp(v, "0")) {
		cur_domain(p)->backoff_max_smtp_out = CONFIG_SMTP_OUT_NONE;
		cur_domain(p)->set_mask |= CONFIG_DOM_BACKOFF_SMTP_OUT;
		return 0;
	}
	return set_positive(p, d, v, &cur_domain(p)->backoff_max_smtp_out, CONFIG_DOM_BACKOFF_SMTP_OUT);
}

/* 0 is PowerMTA's "unlimited" */
static int d_max_msg_per_connection(struct parser *p, const struct directive *d, char *v)
{
	if (!strcmp(v, "0") || !strcasecmp(v, "unlimited")) {
		cur_domain(p)->max_msg_per_connection = UINT_MAX;
		cur_domain(p)->set_mask |= CONFIG_DOM_MAX_MSG_PER_CONN;
		return 0;
	}
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
	/* PowerMTA's syntax: { unlimited | 0 | N/T }; 0 (or 0/T) sends
	 * nothing: the queue holds its mail (while in backoff, for
	 * backoff-max-msg-rate) */
	if (!strcmp(v, "0"))
		*field = CONFIG_RATE_NONE;
	else if (strcasecmp(v, "unlimited") == 0)
		*field = (struct config_rate){0, 0};
	else if (config_parse_rate(v, field) < 0)
		return cp_bad_value(p, "rate", d, v);
	else if (field->count == 0)
		*field = CONFIG_RATE_NONE;
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

/* PowerMTA's older `max-msg-per-hour N` and `backoff-max-msg-per-hour N`:
 * the same limits as max-msg-rate N/h and backoff-max-msg-rate N/h. */
static int per_hour(struct parser *p, const struct directive *d, char *v, struct config_rate *r, uint64_t bit)
{
	char rate[40];
	uint64_t n;

	if (strcasecmp(v, "unlimited") && config_parse_uint(v, 0, 1000000000, &n) < 0)
		return cp_bad_value(p, "count per hour (or unlimited)", d, v);
	snprintf(rate, sizeof(rate), strcasecmp(v, "unlimited") ? "%s/h" : "%s", v);
	return set_rate(p, d, rate, r, bit);
}

static int d_max_msg_per_hour(struct parser *p, const struct directive *d, char *v)
{
	return per_hour(p, d, v, &cur_domain(p)->max_msg_rate, CONFIG_DOM_MAX_MSG_RATE);
}

static int d_backoff_max_msg_per_hour(struct parser *p, const struct directive *d, char *v)
{
	return per_hour(p, d, v, &cur_domain(p)->backoff_max_msg_rate, CONFIG_DOM_BACKOFF_MSG_RATE);
}

/* A list name, resolved in cp_domains_finish(). */
static int d_smtp_pattern_list(struct parser *p, const struct directive *d, char *v)
{
	if (cp_has_space(v))
		return cp_bad_value(p, "name", d, v);
	cur_domain(p)->set_mask |= CONFIG_DOM_PATTERN_LIST;
	return cp_set_string(p, &cur_domain(p)->smtp_pattern_list, v);
}

/* A queue name: a domain name, or PowerMTA's `{name}`. */
static bool valid_queue_name(const char *v)
{
	size_t n = strlen(v);

	if (n > 2 && v[0] == '{' && v[n - 1] == '}') {
		for (size_t i = 1; i < n - 1; i++)
			if (!((v[i] >= 'a' && v[i] <= 'z') || (v[i] >= 'A' && v[i] <= 'Z') ||
			      (v[i] >= '0' && v[i] <= '9') || strchr("-_.", v[i])))
				return false;
		return n < 66;
	}
	return cp_valid_domain_name(v);
}

static int d_queue_to(struct parser *p, const struct directive *d, char *v)
{
	if (!valid_queue_name(v))
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

static int d_bounce_upon_no_mx(struct parser *p, const struct directive *d, char *v)
{
	uint64_t ms;

	/* PowerMTA's `never` (= false) and TIME-INTERVAL (bounce only what has
	 * waited that long): Salvo has no such wait, so an interval means no */
	if (!strcasecmp(v, "never"))
		v = "no";
	else if (config_parse_duration(v, &ms) == 0 && strcmp(v, "0") && strcmp(v, "1")) {
		cp_warn(p, "bounce-upon-no-mx %s is accepted as no: a domain without MX is tried at its A record "
			"and bounces at bounce-after", v);
		v = "no";
	}
	return set_dom_bool(p, d, v, &cur_domain(p)->bounce_upon_no_mx, CONFIG_DOM_BOUNCE_NO_MX);
}

static int d_backoff_to_normal_after_delivery(struct parser *p, const struct directive *d, char *v)
{
	return set_dom_bool(p, d, v, &cur_domain(p)->backoff_to_normal_after_delivery, CONFIG_DOM_BACKOFF_NORMAL_DLV);
}

/* `source-ip-max-smtp-out IP N` / `source-ip-max-msg-rate IP RATE` */
static int d_source_ip_limit(struct parser *p, const struct directive *d, char *v)
{
	struct config_domain *dom = cur_domain(p);
	char *val = v + strcspn(v, " \t"), sb[CP_SHOW_BUF];
	bool out = !strcasecmp(d->name, "source-ip-max-smtp-out");
	struct config_cidr ip;
	struct config_source_limit *l = NULL, *grown;
	uint64_t n = 0;
	struct config_rate rate = {0, 0};

	if (*val) {
		*val++ = '\0';
		val = cp_trim(val);
	}
	if (config_parse_cidr(v, &ip) < 0 || !*val)
		return cp_err(p, "%s wants a source address and a value, not \"%s\"", d->name, cp_show(sb, v));
	if (out ? config_parse_uint(val, 1, UINT_MAX, &n) < 0
		: strcasecmp(val, "unlimited") && (config_parse_rate(val, &rate) < 0 || !rate.count))
		return cp_bad_value(p, out ? "positive integer" : "rate", d, val);
	for (size_t i = 0; i < dom->n_source_limits && !l; i++)
		if (!memcmp(&dom->source_limits[i].ip, &ip, sizeof(ip)))
			l = &dom->source_limits[i];
	if (!l) {
		if (!(grown = realloc(dom->source_limits, (dom->n_source_limits + 1) * sizeof(*grown))))
			return cp_oom(p);
		dom->source_limits = grown;
		l = &grown[dom->n_source_limits++];
		*l = (struct config_source_limit){.ip = ip};
	}
	if (out) {
		l->max_smtp_out = (unsigned)n;
	} else {
		l->has_rate = true;
		l->max_msg_rate = rate;
	}
	dom->set_mask |= CONFIG_DOM_SOURCE_LIMITS;
	return 0;
}

static int d_disable_mx_rollup(struct parser *p, const struct directive *d, char *v)
{
	return set_dom_bool(p, d, v, &cur_domain(p)->disable_mx_rollup, CONFIG_DOM_DISABLE_ROLLUP);
}

static int d_ignore_8bitmime(struct parser *p, const struct directive *d, char *v)
{
	return set_dom_bool(p, d, v, &cur_domain(p)->ignore_8bitmime, CONFIG_DOM_IGNORE_8BITMIME);
}

/* `max-errors-per-connection N`: 0 (the default) is unlimited */
static int d_max_errors_per_connection(struct parser *p, const struct directive *d, char *v)
{
	uint64_t n;

	if (!strcasecmp(v, "unlimited"))
		n = 0; /* 0: no limit */
	else if (config_parse_uint(v, 0, UINT_MAX, &n) < 0)
		return cp_bad_value(p, "number (or unlimited)", d, v);
	cur_domain(p)->max_errors_per_connection = (unsigned)n;
	cur_domain(p)->set_mask |= CONFIG_DOM_MAX_ERRORS;
	return 0;
}

/* `queue-priority N`: 0-100 */
static int d_queue_priority(struct parser *p, const struct directive *d, char *v)
{
	uint64_t n;

	if (config_parse_uint(v, 0, 100, &n) < 0)
		return cp_bad_value(p, "priority (0-100)", d, v);
	cur_domain(p)->queue_priority = (unsigned)n;
	cur_domain(p)->set_mask |= CONFIG_DOM_QUEUE_PRIORITY;
	return 0;
}

static int d_retry_recipients_after(struct parser *p, const struct directive *d, char *v)
{
	return set_duration(p, d, v, &cur_domain(p)->retry_recipients_after_ms, CONFIG_DOM_RETRY_RCPTS);
}

static void smtp_hosts_free(struct config_smtp_host *h, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(h[i].host);
	free(h);
}

/* `smtp-hosts h1, [10.0.0.1]:2525; h3`: see struct config_smtp_host. */
static int d_smtp_hosts(struct parser *p, const struct directive *d, char *v)
{
	struct config_domain *dom = cur_domain(p);
	struct config_smtp_host *list = NULL;
	size_t n = 0;
	unsigned group = 0;
	char sb[CP_SHOW_BUF];

	for (char *next, *h = v; h; h = next) {
		char sep;
		struct config_smtp_host *grown, e = {.group = group};
		char *host;
		uint16_t port;

		next = h + strcspn(h, ",;");
		sep = *next;
		if (*next)
			*next++ = '\0';
		else
			next = NULL;
		h = cp_trim(h);
		/* `lookup-mx:example.com`: that domain's MX hosts (the lookup of
		 * every name here asks for MX first, then the address) */
		if (!strncasecmp(h, "lookup-mx:", 10))
			h += 10;
		cp_show(sb, h); /* as written: parsing cuts it */
		if (*h != '*' && config_parse_addr(h, DEF_SMTP_PORT, &e.addr) == 0) {
			e.is_ip = true;
			e.port = e.addr.sa.ss_family == AF_INET ? ntohs(((const struct sockaddr_in *)&e.addr.sa)->sin_port)
								: ntohs(((const struct sockaddr_in6 *)&e.addr.sa)->sin6_port);
			e.host = strdup(e.addr.text);
		} else if (route_hostname(h, &host, &port) == 0) {
			e.port = port;
			e.host = strdup(host);
		} else {
			smtp_hosts_free(list, n);
			return cp_err(p, "invalid host \"%s\" for %s (a name, name:port, [IP] or [IP]:port)", sb,
				      d->name);
		}
		if (!e.host || !(grown = realloc(list, (n + 1) * sizeof(*list)))) {
			free(e.host);
			smtp_hosts_free(list, n);
			return cp_oom(p);
		}
		list = grown;
		list[n++] = e;
		if (sep == ';')
			group++;
	}
	smtp_hosts_free(dom->smtp_hosts, dom->n_smtp_hosts);
	dom->smtp_hosts = list;
	dom->n_smtp_hosts = n;
	dom->set_mask |= CONFIG_DOM_SMTP_HOSTS;
	return 0;
}

static int d_auth_username(struct parser *p, const struct directive *d, char *v)
{
	if (strlen(v) > 255)
		return cp_bad_value(p, "user name (at most 255 bytes)", d, v);
	cur_domain(p)->set_mask |= CONFIG_DOM_AUTH_USER;
	return cp_set_string(p, &cur_domain(p)->auth_username, v);
}

static int d_auth_password(struct parser *p, const struct directive *d, char *v)
{
	size_t n = strlen(v);

	if (n > 255)
		return cp_err(p, "%s is longer than 255 bytes", d->name);
	/* PowerMTA's configs quote it: "secret" */
	if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
		v[n - 1] = '\0';
		v++;
	}
	cur_domain(p)->set_mask |= CONFIG_DOM_AUTH_PASS;
	return cp_set_string(p, &cur_domain(p)->auth_password, v);
}

static int d_auth_allow_clear(struct parser *p, const struct directive *d, char *v)
{
	return set_dom_bool(p, d, v, &cur_domain(p)->auth_allow_clear, CONFIG_DOM_AUTH_CLEAR);
}

static const struct directive directives[] = {
	{"retry-after", CTX_DOMAIN, d_retry_after, NULL},
	{"use-starttls", CTX_DOMAIN, d_use_starttls, NULL},
	{"require-starttls", CTX_DOMAIN, d_require_starttls, NULL},
	{"dkim-sign", CTX_DOMAIN, d_dkim_sign, NULL},
	{"bounce-after", CTX_DOMAIN, d_bounce_after, NULL},
	{"max-smtp-out", CTX_DOMAIN, d_max_smtp_out, NULL},
	{"max-msg-per-connection", CTX_DOMAIN, d_max_msg_per_connection, NULL},
	{"max-rcpt-per-message", CTX_DOMAIN, d_max_rcpt_per_message, NULL},
	{"max-rcpt-per-transaction", CTX_DOMAIN, d_max_rcpt_per_message, NULL},
	{"max-msg-rate", CTX_DOMAIN, d_max_msg_rate, NULL},
	{"max-connect-rate", CTX_DOMAIN, d_max_connect_rate, NULL},
	{"idle-timeout", CTX_DOMAIN, d_idle_timeout, NULL},
	{"connection-idle-timeout", CTX_DOMAIN, d_idle_timeout, NULL},
	{"connect-timeout", CTX_DOMAIN, d_connect_timeout, NULL},
	{"smtp-greeting-timeout", CTX_DOMAIN, d_smtp_greeting_timeout, NULL},
	{"data-send-timeout", CTX_DOMAIN, d_data_send_timeout, NULL},
	{"smtp-data-termination-timeout", CTX_DOMAIN, d_smtp_data_termination_timeout, NULL},
	{"backoff-max-msg-rate", CTX_DOMAIN, d_backoff_max_msg_rate, NULL},
	{"max-msg-per-hour", CTX_DOMAIN, d_max_msg_per_hour, NULL},
	{"backoff-max-msg-per-hour", CTX_DOMAIN, d_backoff_max_msg_per_hour, NULL},
	{"backoff-max-smtp-out", CTX_DOMAIN, d_backoff_max_smtp_out, NULL},
	{"backoff-retry-after", CTX_DOMAIN, d_backoff_retry_after, NULL},
	{"backoff-to-normal-after", CTX_DOMAIN, d_backoff_to_normal_after, NULL},
	{"smtp-pattern-list", CTX_DOMAIN, d_smtp_pattern_list, NULL},
	{"queue-to", CTX_DOMAIN, d_queue_to, NULL},
	{"route", CTX_DOMAIN, d_route, NULL},
	{"bounce-upon-no-mx", CTX_DOMAIN, d_bounce_upon_no_mx, NULL},
	{"ignore-8bitmime", CTX_DOMAIN, d_ignore_8bitmime, NULL},
	{"disable-mx-rollup", CTX_DOMAIN, d_disable_mx_rollup, NULL},
	{"source-ip-max-smtp-out", CTX_DOMAIN, d_source_ip_limit, NULL},
	{"source-ip-max-msg-rate", CTX_DOMAIN, d_source_ip_limit, NULL},
	{"backoff-to-normal-after-delivery", CTX_DOMAIN, d_backoff_to_normal_after_delivery, NULL},
	{"max-errors-per-connection", CTX_DOMAIN, d_max_errors_per_connection, NULL},
	{"smtp-hosts", CTX_DOMAIN, d_smtp_hosts, NULL},
	{"auth-username", CTX_DOMAIN, d_auth_username, NULL},
	{"auth-password", CTX_DOMAIN, d_auth_password, NULL},
	{"allow-unencrypted-plain-auth", CTX_DOMAIN, d_auth_allow_clear, NULL},
	{"queue-priority", CTX_DOMAIN, d_queue_priority, NULL},
	{"retry-recipients-after", CTX_DOMAIN, d_retry_recipients_after, NULL},
};

const struct directive_table cp_domain_directives = {directives, sizeof(directives) / sizeof(directives[0])};

/* A domain name, ASCII or internationalized: PowerMTA's files are UTF-8
 * and take `<domain bücher.de>` as written (matched byte for byte). */
static bool valid_block_domain(const char *name)
{
	char ascii[256];
	size_t i;

	for (i = 0; name[i] && i < sizeof(ascii) - 1; i++)
		ascii[i] = (unsigned char)name[i] >= 0x80 ? 'a' : name[i];
	ascii[i] = '\0';
	return !name[i] && cp_valid_domain_name(ascii);
}

/* PowerMTA's `[ip/mask]`: IP-literal domains (`[192.0.2.7]`) in the network;
 * `[0/0]` all of them. The CIDR into net; false when name is not one. */
static bool literal_net(const char *name, struct config_cidr *net)
{
	char in[64];
	size_t n = strlen(name);

	if (n < 3 || n - 2 >= sizeof(in) || name[0] != '[' || name[n - 1] != ']' || name[1] == '*')
		return false;
	memcpy(in, name + 1, n - 2);
	in[n - 2] = '\0';
	return config_parse_cidr(in, net) == 0;
}

/* `*.example.com` (subdomains), `[*.]example.com` (it and its subdomains). */
static bool valid_wildcard(const char *name)
{
	struct config_cidr net;

	if (literal_net(name, &net))
		return true;
	if (!strncmp(name, "*.", 2))
		return valid_block_domain(name + 2);
	if (!strncmp(name, "[*.]", 4))
		return valid_block_domain(name + 4);
	return false;
}

/* The entry already made for NAME in this scope (before the finishing
 * sort, so a linear search), or SIZE_MAX. */
static size_t find_open_domain(const struct config *c, const char *name, const char *scope)
{
	for (size_t i = 1; i < c->n_domains; i++) {
		const struct config_domain *x = &c->domains[i];

		if (!strcasecmp(x->name, name) && !x->scope == !scope && (!scope || !strcmp(x->scope, scope)))
			return i;
	}
	return SIZE_MAX;
}

static int add_domain(struct parser *p, const char *name)
{
	struct config *c = p->cfg;
	struct config_domain *dom;
	size_t *curs;
	char sb[CP_SHOW_BUF];

	if (!p->scope && strcmp(name, "*") == 0) {
		if (c->domains[0].line)
			cp_warn(p, "<domain *> again (first at %s): the blocks are merged, a later value wins", cp_at(p, c->domains[0].line, (char[CP_AT_BUF]){0}));
		else
			c->domains[0].line = p->line;
		p->cur = 0;
	} else if ((p->cur = find_open_domain(c, name, p->scope)) != SIZE_MAX) {
		/* PowerMTA takes a domain named again (two blocks, two macros
		 * naming it) as more settings for it */
		cp_warn(p, "<domain %s> again (first at %s): the blocks are merged, a later value wins",
			cp_show(sb, name), cp_at(p, c->domains[p->cur].line, (char[CP_AT_BUF]){0}));
	} else {
		/* a bare IPv4 address names the recipients written user@192.0.2.7 */
		struct in_addr v4;
		bool bare_ip = inet_pton(AF_INET, name, &v4) == 1;

		if (strcmp(name, "*") && !bare_ip && !valid_queue_name(name) && !valid_wildcard(name) &&
		    !valid_block_domain(name))
			return cp_err(p, "invalid domain name \"%s\" for <domain> (expected a domain, *, "
				      "*.example.com, [*.]example.com, [ip/mask] or {queue})", cp_show(sb, name));
		if (c->n_domains == p->dom_cap) {
			size_t cap = p->dom_cap ? p->dom_cap * 2 : 4;
			struct config_domain *grown = realloc(c->domains, cap * sizeof(*grown));
			if (!grown)
				return cp_oom(p);
			c->domains = grown;
			p->dom_cap = cap;
		}
		dom = &c->domains[c->n_domains];
		*dom = (struct config_domain){.name = strdup(name), .line = p->line, .pattern_list = -1};
		if (!dom->name || (p->scope && !(dom->scope = strdup(p->scope)))) {
			free(dom->name);
			return cp_oom(p);
		}
		cp_lower(dom->name);
		p->cur = c->n_domains++;
	}
	if (!(curs = realloc(p->curs, (p->n_curs + 1) * sizeof(*curs))))
		return cp_oom(p);
	p->curs = curs;
	curs[p->n_curs++] = p->cur;
	return 0;
}

/* `<domain NAME>`: see config.h for the names; a `$macro` opens one
 * block per value and the block's directives apply to each; so do
 * several names in one tag (`<domain hotmail.com live.com>`). */
int cp_open_domain(struct parser *p, char *arg)
{
	char **names = NULL;
	size_t n = 0;
	int rc = 0;

	p->n_curs = 0;
	for (char *save = NULL, *w = strtok_r(arg, CP_WS, &save); w && rc == 0; w = strtok_r(NULL, CP_WS, &save)) {
		char **one, **grown;
		size_t k;

		if (cp_macro_expand(p, w, &one, &k) < 0) {
			rc = -1;
			break;
		}
		if (!(grown = realloc(names, (n + k) * sizeof(*grown)))) {
			cp_macro_names_free(one, k);
			rc = cp_oom(p);
			break;
		}
		names = grown;
		memcpy(names + n, one, k * sizeof(*one));
		n += k;
		free(one);
	}
	for (size_t i = 0; i < n; i++) {
		bool again = false;

		/* a name given twice (or by two macros) opens its block once */
		for (size_t j = 0; j < i && !again; j++)
			again = !strcasecmp(names[i], names[j]);
		if (rc == 0 && !again)
			rc = add_domain(p, names[i]);
	}
	cp_macro_names_free(names, n);
	if (rc < 0)
		p->n_curs = 0;
	return rc;
}

/* The built-in values --show prints for what no block sets. */
static const char *const default_values[][2] = {
	{"retry-after", "15m"}, {"bounce-after", "4h"}, {"max-smtp-out", "20"},
	{"max-msg-per-connection", "100"}, {"max-rcpt-per-transaction", "100"},
	{"max-msg-rate", "unlimited"}, {"max-connect-rate", "unlimited"},
	{"connection-idle-timeout", "5s"}, {"backoff-to-normal-after", "1h"},
	{"connect-timeout", "30s"}, {"smtp-greeting-timeout", "5m"}, {"data-send-timeout", "3m"},
	{"smtp-data-termination-timeout", "10m"},
	{"dkim-sign", "yes"}, {"use-starttls", "yes"}, {"require-starttls", "no"},
	{"bounce-upon-no-mx", "no"}, {"ignore-8bitmime", "no"}, {"backoff-to-normal-after-delivery", "no"},
	{"disable-mx-rollup", "no"}, {"max-errors-per-connection", "0"},
	{"queue-priority", "50"},
};

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
		.queue_priority = CONFIG_QUEUE_PRIORITY_DEFAULT,
	};
	if (!d->name || !d->retry_after_ms || !(d->values = calloc(cp_dom_keys(), sizeof(char *))))
		return -1;
	d->retry_after_ms[0] = DEF_RETRY_MS;
	for (size_t i = 0; i < sizeof(default_values) / sizeof(default_values[0]); i++) {
		ssize_t k = cp_dom_key(default_values[i][0]);

		if (k >= 0 && !(d->values[k] = strdup(default_values[i][1])))
			return -1;
	}
	return 0;
}

/* Top-level blocks first, then by scope; within a scope by name, then line. */
static int domain_cmp(const void *a, const void *b)
{
	const struct config_domain *x = a, *y = b;
	int c;

	if (!x->scope != !y->scope)
		return x->scope ? 1 : -1;
	if (x->scope && (c = strcmp(x->scope, y->scope)))
		return c;
	c = strcmp(x->name, y->name);
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

/* Fill what d did not set from what src sets (everything when all);
 * mark: what is copied counts as set in d from now on. */
static int merge(struct config_domain *d, const struct config_domain *src, bool all, bool mark)
{
	uint64_t m = d->set_mask, s = all ? ~0ULL : src->set_mask;
#define TAKE(flag) (!(m & (flag)) && (s & (flag)) && (!mark || (d->set_mask |= (flag))))

	if (TAKE(CONFIG_DOM_RETRY_AFTER) &&
	    copy_list(&d->retry_after_ms, &d->n_retry_after, src->retry_after_ms, src->n_retry_after) < 0)
		return -1;
	if (TAKE(CONFIG_DOM_BACKOFF_RETRY) &&
	    copy_list(&d->backoff_retry_after_ms, &d->n_backoff_retry_after, src->backoff_retry_after_ms,
		      src->n_backoff_retry_after) < 0)
		return -1;
	if (TAKE(CONFIG_DOM_BOUNCE_AFTER))
		d->bounce_after_ms = src->bounce_after_ms;
	if (TAKE(CONFIG_DOM_MAX_SMTP_OUT))
		d->max_smtp_out = src->max_smtp_out;
	if (TAKE(CONFIG_DOM_TYPE))
		d->held_by_type = src->held_by_type;
	if (TAKE(CONFIG_DOM_MAX_MSG_PER_CONN))
		d->max_msg_per_connection = src->max_msg_per_connection;
	if (TAKE(CONFIG_DOM_MAX_RCPT))
		d->max_rcpt_per_message = src->max_rcpt_per_message;
	if (TAKE(CONFIG_DOM_MAX_MSG_RATE))
		d->max_msg_rate = src->max_msg_rate;
	if (TAKE(CONFIG_DOM_MAX_CONNECT_RATE))
		d->max_connect_rate = src->max_connect_rate;
	if (TAKE(CONFIG_DOM_DKIM_SIGN))
		d->dkim_sign = src->dkim_sign;
	if (TAKE(CONFIG_DOM_USE_STARTTLS))
		d->use_starttls = src->use_starttls;
	if (TAKE(CONFIG_DOM_REQUIRE_STARTTLS))
		d->require_starttls = src->require_starttls;
	if (TAKE(CONFIG_DOM_IDLE_TIMEOUT))
		d->idle_timeout_ms = src->idle_timeout_ms;
	if (TAKE(CONFIG_DOM_CONNECT_TIMEOUT))
		d->connect_timeout_ms = src->connect_timeout_ms;
	if (TAKE(CONFIG_DOM_GREETING_TIMEOUT))
		d->smtp_greeting_timeout_ms = src->smtp_greeting_timeout_ms;
	if (TAKE(CONFIG_DOM_DATA_SEND_TIMEOUT))
		d->data_send_timeout_ms = src->data_send_timeout_ms;
	if (TAKE(CONFIG_DOM_DATA_TERM_TIMEOUT))
		d->smtp_data_termination_timeout_ms = src->smtp_data_termination_timeout_ms;
	if (TAKE(CONFIG_DOM_BACKOFF_MSG_RATE))
		d->backoff_max_msg_rate = src->backoff_max_msg_rate;
	if (TAKE(CONFIG_DOM_BACKOFF_SMTP_OUT))
		d->backoff_max_smtp_out = src->backoff_max_smtp_out;
	if (TAKE(CONFIG_DOM_BACKOFF_TO_NORMAL))
		d->backoff_to_normal_after_ms = src->backoff_to_normal_after_ms;
	if (TAKE(CONFIG_DOM_BOUNCE_NO_MX))
		d->bounce_upon_no_mx = src->bounce_upon_no_mx;
	if (TAKE(CONFIG_DOM_BACKOFF_NORMAL_DLV))
		d->backoff_to_normal_after_delivery = src->backoff_to_normal_after_delivery;
	if (TAKE(CONFIG_DOM_SOURCE_LIMITS) && src->n_source_limits) {
		if (!(d->source_limits = malloc(src->n_source_limits * sizeof(*d->source_limits))))
			return -1;
		memcpy(d->source_limits, src->source_limits, src->n_source_limits * sizeof(*d->source_limits));
		d->n_source_limits = src->n_source_limits;
	}
	if (TAKE(CONFIG_DOM_DISABLE_ROLLUP))
		d->disable_mx_rollup = src->disable_mx_rollup;
	if (TAKE(CONFIG_DOM_IGNORE_8BITMIME))
		d->ignore_8bitmime = src->ignore_8bitmime;
	if (TAKE(CONFIG_DOM_MAX_ERRORS))
		d->max_errors_per_connection = src->max_errors_per_connection;
	if (TAKE(CONFIG_DOM_QUEUE_PRIORITY))
		d->queue_priority = src->queue_priority;
	if (TAKE(CONFIG_DOM_RETRY_RCPTS))
		d->retry_recipients_after_ms = src->retry_recipients_after_ms;
	if (TAKE(CONFIG_DOM_AUTH_CLEAR))
		d->auth_allow_clear = src->auth_allow_clear;
	if (TAKE(CONFIG_DOM_AUTH_USER) && src->auth_username && !(d->auth_username = strdup(src->auth_username)))
		return -1;
	if (TAKE(CONFIG_DOM_AUTH_PASS) && src->auth_password && !(d->auth_password = strdup(src->auth_password)))
		return -1;
	if (TAKE(CONFIG_DOM_SMTP_HOSTS) && src->n_smtp_hosts) {
		if (!(d->smtp_hosts = calloc(src->n_smtp_hosts, sizeof(*d->smtp_hosts))))
			return -1;
		for (size_t i = 0; i < src->n_smtp_hosts; i++) {
			d->smtp_hosts[i] = src->smtp_hosts[i];
			d->smtp_hosts[i].host = NULL;
			d->n_smtp_hosts = i + 1;
			if (!(d->smtp_hosts[i].host = strdup(src->smtp_hosts[i].host)))
				return -1;
		}
	}
	if (TAKE(CONFIG_DOM_PATTERN_LIST) && src->smtp_pattern_list &&
	    !(d->smtp_pattern_list = strdup(src->smtp_pattern_list)))
		return -1;
	/* queue-to is not inherited from `*`: `*` queueing everything to one
	 * queue would be a trap, and the block that says it means that
	 * domain. A vmta's block for the same domain does inherit it. */
	if (!all && TAKE(CONFIG_DOM_QUEUE_TO) && src->queue_to && !(d->queue_to = strdup(src->queue_to)))
		return -1;
	if (TAKE(CONFIG_DOM_ROUTE) && src->has_route) {
		d->has_route = true;
		d->route = src->route;
		d->route_port = src->route_port;
		if (src->route_host && !(d->route_host = strdup(src->route_host)))
			return -1;
	}
#undef TAKE
	return 0;
}

static int merge_values(struct config_domain *d, const struct config_domain *src)
{
	size_t n = cp_dom_keys();

	if (!src->values)
		return 0;
	if (!d->values && !(d->values = calloc(n, sizeof(char *))))
		return -1;
	for (size_t k = 0; k < n; k++)
		if (!d->values[k] && src->values[k] && !(d->values[k] = strdup(src->values[k])))
			return -1;
	return 0;
}

static ssize_t find_pattern_list(const struct config *c, const char *name)
{
	for (size_t i = 0; name && i < c->n_pattern_lists; i++)
		if (strcasecmp(c->pattern_lists[i].name, name) == 0)
			return (ssize_t)i;
	return -1;
}

static int resolve_pattern_list(struct parser *p, struct config_domain *d)
{
	d->pattern_list = find_pattern_list(p->cfg, d->smtp_pattern_list);
	if (!d->smtp_pattern_list || d->pattern_list >= 0)
		return 0;
	p->line = d->line;
	return cp_err(p, "smtp-pattern-list \"%s\": no such <smtp-pattern-list>", d->smtp_pattern_list);
}

int cp_domains_finish(struct parser *p)
{
	struct config *c = p->cfg;
	size_t n_top = 1;
	int rc = 0;

	qsort(c->domains + 1, c->n_domains - 1, sizeof(*c->domains), domain_cmp);
	/* duplicates, reported in file order */
	for (int reported = 0;;) {
		const struct config_domain *dup = NULL;

		for (size_t i = 2; i < c->n_domains; i++) {
			const struct config_domain *x = &c->domains[i - 1], *y = &c->domains[i];

			if (strcmp(x->name, y->name) || !x->scope != !y->scope || (x->scope && strcmp(x->scope, y->scope)))
				continue;
			if (y->line > reported && (!dup || y->line < dup->line))
				dup = y;
		}
		if (!dup)
			break;
		p->line = reported = dup->line;
		rc = cp_err(p, "duplicate <domain %s> (first at %s)", dup->name, cp_at(p, dup[-1].line, (char[CP_AT_BUF]){0}));
	}
	while (n_top < c->n_domains && !c->domains[n_top].scope)
		n_top++;
	/* the nested blocks move to vdomains: they keep only what they set */
	if (n_top < c->n_domains) {
		size_t n = c->n_domains - n_top;

		if (!(c->vdomains = malloc(n * sizeof(*c->vdomains))))
			return cp_oom(p);
		memcpy(c->vdomains, c->domains + n_top, n * sizeof(*c->vdomains));
		c->n_vdomains = n;
		c->n_domains = n_top;
		for (size_t i = 0; i < n; i++)
			if (resolve_pattern_list(p, &c->vdomains[i]) < 0)
				rc = -1;
	}
	for (size_t i = 1; i < c->n_domains; i++)
		if (merge(&c->domains[i], &c->domains[0], true, false) < 0)
			return cp_oom(p);
	for (size_t i = 0; i < c->n_domains; i++)
		if (resolve_pattern_list(p, &c->domains[i]) < 0)
			rc = -1;
	return rc;
}

static void domain_free(struct config_domain *d)
{
	size_t n = cp_dom_keys();

	free(d->name);
	free(d->scope);
	free(d->retry_after_ms);
	free(d->backoff_retry_after_ms);
	free(d->route_host);
	free(d->smtp_pattern_list);
	free(d->queue_to);
	smtp_hosts_free(d->smtp_hosts, d->n_smtp_hosts);
	free(d->source_limits);
	free(d->auth_username);
	if (d->auth_password)
		memset(d->auth_password, 0, strlen(d->auth_password));
	free(d->auth_password);
	for (size_t k = 0; d->values && k < n; k++)
		free(d->values[k]);
	free(d->values);
}

void cp_domains_free(struct config *cfg)
{
	for (size_t i = 0; i < cfg->n_domains; i++)
		domain_free(&cfg->domains[i]);
	for (size_t i = 0; i < cfg->n_vdomains; i++)
		domain_free(&cfg->vdomains[i]);
	free(cfg->domains);
	free(cfg->vdomains);
	cfg->domains = cfg->vdomains = NULL;
	cfg->n_domains = cfg->n_vdomains = 0;
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

/* How well pattern (a block's name) matches domain: 0 not at all, else
 * longer is better; an exact name beats every wildcard. */
static size_t match_len(const char *pattern, const char *domain)
{
	size_t dl = strlen(domain), bl;
	const char *base;
	bool apex;

	struct config_cidr net, ip;

	if (!strcasecmp(pattern, domain))
		return SIZE_MAX;
	/* [ip/mask] takes an IP-literal domain in it: a longer prefix is closer */
	if (literal_net(pattern, &net)) {
		if (!literal_net(domain, &ip) || ip.family != net.family ||
		    ip.prefix != (ip.family == AF_INET ? 32 : 128))
			return 0;
		struct sockaddr_storage ss = {0};

		if (ip.family == AF_INET) {
			ss.ss_family = AF_INET;
			memcpy(&((struct sockaddr_in *)&ss)->sin_addr, ip.addr, 4);
		} else {
			ss.ss_family = AF_INET6;
			memcpy(&((struct sockaddr_in6 *)&ss)->sin6_addr, ip.addr, 16);
		}
		return config_cidr_match(&net, (struct sockaddr *)&ss) ? (size_t)net.prefix + 1 : 0;
	}
	if (!strncmp(pattern, "*.", 2))
		base = pattern + 2, apex = false;
	else if (!strncmp(pattern, "[*.]", 4))
		base = pattern + 4, apex = true;
	else
		return 0;
	bl = strlen(base);
	if (apex && !strcasecmp(domain, base))
		return bl + 1;
	/* a subdomain: "x.example.com" ends in ".example.com" */
	return dl > bl + 1 && domain[dl - bl - 1] == '.' && !strcasecmp(domain + dl - bl, base) ? bl + 1 : 0;
}

/* The best non-`*` block for domain among list[0..n) in scope (NULL: top level). */
static const struct config_domain *best_block(const struct config_domain *list, size_t n, const char *scope,
					      const char *domain)
{
	const struct config_domain *best = NULL;
	size_t best_len = 0;

	for (size_t i = 0; i < n; i++) {
		size_t l;

		if (!list[i].scope != !scope || (scope && strcasecmp(list[i].scope, scope)))
			continue;
		if (strcmp(list[i].name, "*") && (l = match_len(list[i].name, domain)) > best_len) {
			best = &list[i];
			best_len = l;
		}
	}
	return best;
}

static const struct config_domain *star_block(const struct config *cfg, const char *scope)
{
	for (size_t i = 0; i < cfg->n_vdomains; i++)
		if (!strcmp(cfg->vdomains[i].name, "*") && !strcasecmp(cfg->vdomains[i].scope, scope))
			return &cfg->vdomains[i];
	return NULL;
}

const struct config_domain *config_domain_for(const struct config *cfg, const char *domain)
{
	const struct config_domain *d = NULL;

	if (!cfg->n_domains)
		return NULL;
	if (domain && cfg->n_domains > 1) {
		d = bsearch(domain, cfg->domains + 1, cfg->n_domains - 1, sizeof(*d), domain_key_cmp);
		if (!d)
			d = best_block(cfg->domains + 1, cfg->n_domains - 1, NULL, domain);
	}
	return d ? d : &cfg->domains[0];
}

/* The scopes a virtual MTA's settings come from, most specific first: the
 * vmta itself, then the pools that list it (or the pool itself). */
static size_t scopes_for(const struct config *cfg, const char *vmta, const char **out, size_t cap)
{
	size_t n = 0;

	if (!vmta)
		return 0;
	out[n++] = vmta;
	for (size_t i = 0; i < cfg->n_pools && n < cap; i++)
		for (size_t j = 0; j < cfg->pools[i].n_members; j++)
			if (!strcasecmp(cfg->pools[i].members[j], vmta) && strcasecmp(cfg->pools[i].name, vmta)) {
				out[n++] = cfg->pools[i].name;
				break;
			}
	return n;
}

bool config_domain_has_nested(const struct config *cfg, const char *domain, const char *vmta)
{
	const char *scopes[16];
	size_t n = scopes_for(cfg, vmta, scopes, 16);

	for (size_t i = 0; i < n; i++)
		if (best_block(cfg->vdomains, cfg->n_vdomains, scopes[i], domain) || star_block(cfg, scopes[i]))
			return true;
	return false;
}

const struct config_source_limit *config_domain_source_limit(const struct config_domain *d,
							     const struct sockaddr *src)
{
	const struct config_source_limit *best = NULL;

	for (size_t i = 0; src && i < d->n_source_limits; i++)
		if (config_cidr_match(&d->source_limits[i].ip, src) &&
		    (!best || d->source_limits[i].ip.prefix > best->ip.prefix))
			best = &d->source_limits[i];
	return best;
}

int config_domain_resolve(const struct config *cfg, const char *domain, const char *vmta,
			  struct config_domain *out)
{
	const char *scopes[16];
	size_t n = scopes_for(cfg, vmta, scopes, 16);
	const struct config_domain *chain[40], *b;
	size_t n_chain = 0;

	*out = (struct config_domain){.pattern_list = -1};
	if (!(out->name = strdup(domain)))
		return -1;
	if (vmta && !(out->scope = strdup(vmta)))
		goto fail;
	/* specific blocks (exact, then wildcard) of each scope, then top level */
	for (size_t i = 0; i < n; i++)
		if ((b = best_block(cfg->vdomains, cfg->n_vdomains, scopes[i], domain)))
			chain[n_chain++] = b;
	if ((b = config_domain_for(cfg, domain)) != &cfg->domains[0])
		chain[n_chain++] = b;
	/* then each scope's `*`, then the top-level `*` (with the defaults) */
	for (size_t i = 0; i < n; i++)
		if ((b = star_block(cfg, scopes[i])))
			chain[n_chain++] = b;
	for (size_t i = 0; i < n_chain; i++)
		if (merge(out, chain[i], false, true) < 0 || merge_values(out, chain[i]) < 0)
			goto fail;
	if (merge(out, &cfg->domains[0], true, false) < 0 || merge_values(out, &cfg->domains[0]) < 0)
		goto fail;
	out->pattern_list = find_pattern_list(cfg, out->smtp_pattern_list);
	return 0;
fail:
	config_domain_release(out);
	return -1;
}

void config_domain_release(struct config_domain *d)
{
	if (!d)
		return;
	domain_free(d);
	memset(d, 0, sizeof(*d));
}
