/*
 * config_http.c - the HTTP API's directives and who may use the API.
 *
 *   http-listener ADDR [tls=yes|no]   repeatable; the file's replace the default.
 *                                     tls=yes serves HTTPS with tls-certificate
 *                                     and tls-private-key (both then required)
 *   http-access CIDR admin|monitor|none   repeatable; the most specific wins
 *   http-api-token TOKEN [admin|monitor]  repeatable; default admin
 *   http-api-key KEY                      PowerMTA's: an admin token
 *   http-max-body-size SIZE           at least 1k (64M)
 *   http-max-connections N            open connections per listener (1000)
 *   http-max-connections-per-ip N     open connections from one address (100)
 *
 * Owns cfg->http_listener_tls, http_access and http_tokens (cp_http_free).
 * Diagnostics follow config.h: "FILE:LINE: message".
 */
#include "core/config_parser.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int parse_role(const char *v, enum config_http_role *out)
{
	if (!strcasecmp(v, "admin"))
		*out = CONFIG_HTTP_ADMIN;
	else if (!strcasecmp(v, "monitor"))
		*out = CONFIG_HTTP_MONITOR;
	else if (!strcasecmp(v, "none"))
		*out = CONFIG_HTTP_NONE;
	else
		return -1;
	return 0;
}

const char *config_http_role_name(enum config_http_role r)
{
	return r == CONFIG_HTTP_ADMIN ? "admin" : r == CONFIG_HTTP_MONITOR ? "monitor" : "none";
}

/* v split at its first run of blanks: v keeps the first word, the rest
 * (trimmed, maybe "") is returned. */
static char *split_word(char *v)
{
	char *rest = v + strcspn(v, CP_WS);

	if (*rest)
		*rest++ = '\0';
	return cp_trim(rest);
}

/* `http-listener ADDR [tls=yes|no]` */
static int d_http_listener(struct parser *p, const struct directive *d, char *v)
{
	struct config *c = p->cfg;
	char *opts = split_word(v), sb[CP_SHOW_BUF];
	bool tls = false, *grown;

	while (*opts) {
		char *next = split_word(opts);

		if (strncasecmp(opts, "tls=", 4) || config_parse_bool(opts + 4, &tls) < 0)
			return cp_err(p, "invalid option \"%s\" for %s (expected tls=yes or tls=no)", cp_show(sb, opts),
				      d->name);
		opts = next;
	}
	if (cp_add_listener(p, d, v, &c->http_listeners, &c->n_http_listeners, &p->file_http_listeners) < 0)
		return -1;
	/* cp_add_listener appended at n - 1 (the first one in the file
	 * replaced the default, so index 0 is rewritten then) */
	if (!(grown = realloc(c->http_listener_tls, c->n_http_listeners * sizeof(*grown))))
		return cp_oom(p);
	c->http_listener_tls = grown;
	grown[c->n_http_listeners - 1] = tls;
	if (tls && !p->http_tls_line)
		p->http_tls_line = p->line;
	return 0;
}

/* `http-access CIDR ROLE` */
static int d_http_access(struct parser *p, const struct directive *d, char *v)
{
	struct config *c = p->cfg;
	char *role = split_word(v), sb[CP_SHOW_BUF], a[64];
	struct config_http_access r = {.line = p->line};
	size_t i;

	if (config_parse_cidr(v, &r.net) < 0)
		return cp_err(p, "invalid network \"%s\" for %s", cp_show(sb, v), d->name);
	/* PowerMTA's other levels, as the nearest role that grants no more */
	if (!strcasecmp(role, "operator")) {
		cp_warn(p, "%s %s operator is taken as monitor: Salvo's roles are admin and monitor (give admin for "
			"commands)", d->name, cp_show(sb, v));
		r.role = CONFIG_HTTP_MONITOR;
	} else if (!strcasecmp(role, "monitor,deny-logs")) {
		cp_warn(p, "%s %s monitor,deny-logs is taken as none: Salvo's monitor role can read the logs (give "
			"monitor to allow it, logs included)", d->name, cp_show(sb, v));
		r.role = CONFIG_HTTP_NONE;
	} else if (!*role || cp_has_space(role) || parse_role(role, &r.role) < 0) {
		return cp_err(p, "invalid role \"%s\" for %s (expected admin, operator, monitor, monitor,deny-logs or "
			      "none)", cp_show(sb, role), d->name);
	}
	for (i = 0; i < c->n_http_access; i++) {
		const struct config_http_access *o = &c->http_access[i];

		/* PowerMTA matches the list in order: a second rule for the same
		 * network never matches, the first decides */
		if (o->net.family == r.net.family && o->net.prefix == r.net.prefix &&
		    !memcmp(o->net.addr, r.net.addr, sizeof(r.net.addr))) {
			config_cidr_format(&r.net, a, sizeof(a));
			cp_warn(p, "a second %s for %s never matches: the first (at %s, %s) decides", d->name, a,
				cp_at(p, o->line, (char[CP_AT_BUF]){0}), config_http_role_name(o->role));
			return 0;
		}
	}
	/* PowerMTA takes the first rule in the file that matches, Salvo the most
	 * specific: when an earlier, wider rule gives this network another role,
	 * the two differ, and the operator is told which Salvo applies */
	for (i = 0; i < c->n_http_access; i++) {
		const struct config_http_access *o = &c->http_access[i];
		char wide[64];

		if (o->net.family != r.net.family || o->net.prefix >= r.net.prefix || o->role == r.role ||
		    !config_cidr_match_bytes(&o->net, r.net.addr))
			continue;
		config_cidr_format(&r.net, a, sizeof(a));
		config_cidr_format(&o->net, wide, sizeof(wide));
		cp_warn(p, "%s %s %s: PowerMTA would give %s the role of the earlier %s %s (at %s, the first that "
			"matches); Salvo applies the most specific rule, this one", d->name, a, config_http_role_name(r.role),
			a, wide, config_http_role_name(o->role), cp_at(p, o->line, (char[CP_AT_BUF]){0}));
		break;
	}
	if (cp_grow(p, (void **)&c->http_access, &c->n_http_access, sizeof(r), &i) < 0)
		return -1;
	c->http_access[i] = r;
	return 0;
}

/* The token already configured as v, or NULL. */
static const struct config_http_token *token_find(const struct config *c, const char *v)
{
	for (size_t i = 0; i < c->n_http_tokens; i++)
		if (!strcmp(c->http_tokens[i].token, v))
			return &c->http_tokens[i];
	return NULL;
}

static int token_add(struct parser *p, const char *v, enum config_http_role r)
{
	struct config *c = p->cfg;
	size_t i;

	if (cp_grow(p, (void **)&c->http_tokens, &c->n_http_tokens, sizeof(*c->http_tokens), &i) < 0)
		return -1;
	c->http_tokens[i].role = r;
	c->http_tokens[i].line = p->line;
	return cp_set_string(p, &c->http_tokens[i].token, v);
}

/* `http-api-token TOKEN [admin|monitor]` */
static int d_http_api_token(struct parser *p, const struct directive *d, char *v)
{
	char *role = split_word(v), sb[CP_SHOW_BUF];
	enum config_http_role r = CONFIG_HTTP_ADMIN;
	const struct config_http_token *t;

	if (strlen(v) < 16)
		return cp_err(p, "invalid value for %s (at least 16 characters, no spaces)", d->name);
	if (*role && (cp_has_space(role) || parse_role(role, &r) < 0 || r == CONFIG_HTTP_NONE))
		return cp_err(p, "invalid role \"%s\" for %s (expected admin or monitor)", cp_show(sb, role), d->name);
	if ((t = token_find(p->cfg, v)))
		return cp_err(p, "the same %s twice (first at %s)", d->name, cp_at(p, t->line, (char[CP_AT_BUF]){0}));
	return token_add(p, v, r);
}

/* PowerMTA's `http-api-key KEY`: the key its HTTP API asks for; here an
 * admin token (Authorization: Bearer KEY, X-Api-Token or X-API-Key). A
 * key shorter than http-api-token's 16 characters is taken, with a warning. */
static int d_http_api_key(struct parser *p, const struct directive *d, char *v)
{
	const struct config_http_token *t;

	if (!*v || cp_has_space(v))
		return cp_bad_value(p, "key (one word)", d, v);
	if (strlen(v) < 16)
		cp_warn(p, "%s is shorter than 16 characters: an easy guess for whoever reaches the HTTP API", d->name);
	if ((t = token_find(p->cfg, v)))
		return cp_err(p, "the same key as http-api-token or %s at %s", d->name,
			      cp_at(p, t->line, (char[CP_AT_BUF]){0}));
	return token_add(p, v, CONFIG_HTTP_ADMIN);
}

static int d_http_max_body_size(struct parser *p, const struct directive *d, char *v)
{
	uint64_t n;

	if (config_parse_size(v, &n) < 0 || n < 1024)
		return cp_bad_value(p, "size (at least 1k)", d, v);
	p->cfg->http_max_body_size = n;
	return 0;
}

static int set_count(struct parser *p, const struct directive *d, const char *v, unsigned *field)
{
	uint64_t n;

	if (config_parse_uint(v, 1, 100000, &n) < 0)
		return cp_bad_value(p, "count (1-100000)", d, v);
	*field = (unsigned)n;
	return 0;
}

static int d_http_max_connections(struct parser *p, const struct directive *d, char *v)
{
	return set_count(p, d, v, &p->cfg->http_max_connections);
}

static int d_http_max_connections_per_ip(struct parser *p, const struct directive *d, char *v)
{
	return set_count(p, d, v, &p->cfg->http_max_connections_per_ip);
}

static const struct directive http_directives[] = {
	{"http-listener", CTX_TOP, d_http_listener, NULL},
	{"http-access", CTX_TOP, d_http_access, NULL},
	{"http-api-token", CTX_TOP, d_http_api_token, NULL},
	{"http-api-key", CTX_TOP, d_http_api_key, NULL},
	{"http-max-body-size", CTX_TOP, d_http_max_body_size, NULL},
	{"http-max-connections", CTX_TOP, d_http_max_connections, NULL},
	{"http-max-connections-per-ip", CTX_TOP, d_http_max_connections_per_ip, NULL},
};

const struct directive_table cp_http_directives = {http_directives,
						   sizeof(http_directives) / sizeof(http_directives[0])};

int cp_http_finish(struct parser *p)
{
	const struct config *c = p->cfg;

	if (p->http_tls_line && (!c->tls_certificate || !c->tls_private_key)) {
		p->line = p->http_tls_line;
		return cp_err(p, "http-listener with tls=yes needs tls-certificate and tls-private-key");
	}
	return 0;
}

void cp_http_free(struct config *cfg)
{
	for (size_t i = 0; i < cfg->n_http_tokens; i++)
		free(cfg->http_tokens[i].token);
	free(cfg->http_tokens);
	free(cfg->http_access);
	free(cfg->http_listener_tls);
}

static bool is_loopback(const struct sockaddr *sa)
{
	if (sa && sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	if (sa && sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;

		return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
	}
	return false;
}

enum config_http_role config_http_role_in(const struct config_http_access *acc, size_t n,
					  const struct sockaddr *addr)
{
	const struct config_http_access *best = NULL;

	if (!n)
		return is_loopback(addr) ? CONFIG_HTTP_ADMIN : CONFIG_HTTP_NONE;
	for (size_t i = 0; addr && i < n; i++) {
		const struct config_http_access *r = &acc[i];

		if (config_cidr_match(&r->net, addr) && (!best || r->net.prefix > best->net.prefix))
			best = r;
	}
	return best ? best->role : CONFIG_HTTP_NONE;
}

enum config_http_role config_http_role_for(const struct config *cfg, const struct sockaddr *addr)
{
	return config_http_role_in(cfg->http_access, cfg->n_http_access, addr);
}
