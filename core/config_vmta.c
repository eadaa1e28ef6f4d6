/*
 * config_vmta.c - the delivery-policy blocks that are not per domain:
 * <virtual-mta> (a source IP and its HELO name), <virtual-mta-pool>,
 * <mx-rollup-list>, <smtp-pattern-list> and <bounce-category-patterns>;
 * config_pool_find() and config_rollup_for().
 *
 * Names are resolved once parsing is done (cp_vmtas_finish): a pool may
 * list virtual MTAs defined further down the file. vmtas[0] and pools[0]
 * are the built-in "default" (no source binding, the host-name as HELO)
 * unless the file defines blocks of that name, which then replace them.
 */
#include "core/config_parser.h"
#include "core/pcre_re.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEF_REENABLE_MS (3600 * 1000ULL)

/* The brief's bounce categories, for <bounce-category-patterns>. */
static const char *const categories[] = {
	"bad-mailbox", "bad-domain", "inactive-mailbox", "quota-issues", "message-expired",
	"spam-related", "policy-related", "invalid-sender", "relaying-issues", "content-related",
	"virus-related", "protocol-errors", "routing-errors", "no-answer-from-host",
	"bad-connection", "bad-configuration", "other", "complaint",
};

static bool valid_name(const char *s)
{
	if (!*s || strlen(s) > 64)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      *s == '-' || *s == '_' || *s == '.'))
			return false;
	return true;
}

/* ---- <virtual-mta NAME> ------------------------------------------------- */

/* The IP address s starts with, up to a '/' or '-' (copied to out when
 * out is given): true when there is one. */
static bool ip_prefix(const char *s, char *out, size_t cap)
{
	char buf[INET6_ADDRSTRLEN];
	unsigned char x[16];
	size_t n = strcspn(s, "/-");

	if (n == 0 || n >= sizeof(buf))
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	if (inet_pton(AF_INET, buf, x) != 1 && inet_pton(AF_INET6, buf, x) != 1)
		return false;
	if (out)
		snprintf(out, cap, "%s", buf);
	return true;
}

/* ip (IPv4 or IPv6, nothing else) as a bind address in *a; false when not one. */
static bool addr_from_ip(const char *ip, struct config_addr *a)
{
	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET, ip, &((struct sockaddr_in *)&a->sa)->sin_addr) == 1) {
		a->sa.ss_family = AF_INET;
		a->salen = sizeof(struct sockaddr_in);
	} else if (inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)&a->sa)->sin6_addr) == 1) {
		a->sa.ss_family = AF_INET6;
		a->salen = sizeof(struct sockaddr_in6);
	} else {
		return false;
	}
	return true;
}

/* `smtp-source-host IP [HOST]`: in <virtual-mta>, its source address and
 * HELO name; at top level (User's Guide 3.3.1.16) those of every virtual
 * MTA that names none, the default one included. PowerMTA rotates over
 * several such lines (or the local addresses of a CIDR); Salvo binds one
 * address per virtual MTA: the first is used, and a second one is said. */
static int d_smtp_source_host(struct parser *p, const struct directive *d, char *v)
{
	bool top = p->ctx == CTX_TOP;
	struct config_vmta *m = top ? NULL : &p->cfg->vmtas[p->cur];
	char *helo = v + strcspn(v, CP_WS), first[INET6_ADDRSTRLEN];
	struct config_addr a;
	char sb[CP_SHOW_BUF];

	if (*helo) {
		*helo++ = '\0';
		helo = cp_trim(helo);
	}
	if (addr_from_ip(v, &a)) {
		/* one address */
	} else if (strchr(v, '/') || (strchr(v, '-') && ip_prefix(v, first, sizeof(first)))) {
		/* `A-B` or `IP/32` name addresses: the first is used, said as for a second line;
		 * a wider CIDR means "the local addresses in it", which Salvo does not look up */
		struct config_cidr net;
		bool one = strchr(v, '/') && config_parse_cidr(v, &net) == 0 &&
			   net.prefix == (net.family == AF_INET ? 32 : 128);
		const char *dash = strchr(v, '-');

		if ((!one && !dash) || !ip_prefix(v, first, sizeof(first)) || (dash && !ip_prefix(dash + 1, NULL, 0)))
			return cp_err(p, "%s %s: a range of local addresses is not supported: give one address per "
				      "<virtual-mta> and list them in a <virtual-mta-pool>", d->name, cp_show(sb, v));
		if (!one)
			cp_warn(p, "%s %s: Salvo sends from one address per virtual MTA, the first (%s) is used; rotate "
				"addresses with one <virtual-mta> each in a <virtual-mta-pool>", d->name, cp_show(sb, v), first);
		addr_from_ip(first, &a); /* ip_prefix checked it */
		v = first;
	} else {
		struct in6_addr x;

		if (*helo && (inet_pton(AF_INET, helo, &x) == 1 || inet_pton(AF_INET6, helo, &x) == 1))
			return cp_err(p, "%s %s %s: the address comes first (%s IP HOST-NAME)", d->name, cp_show(sb, v), helo,
				      d->name);
		return cp_err(p, "invalid source address \"%s\" for %s (an IP address)", cp_show(sb, v), d->name);
	}
	snprintf(a.text, sizeof(a.text), "%s", v);
	char lit[64];
	const char *ip = *helo ? cp_ip_as_host(p, d, helo, lit, sizeof(lit)) : NULL;

	if (ip)
		helo = lit;
	else if (*helo && (cp_has_space(helo) || !cp_valid_domain_name(helo)))
		return cp_err(p, "invalid HELO name \"%s\" for %s", cp_show(sb, helo), d->name);
	if (top ? p->global_source_line != 0 : m->has_source) {
		cp_warn(p, "a second %s%s%s: Salvo sends from one address per virtual MTA, the first (%s) is used; "
			"rotate addresses with one <virtual-mta> each in a <virtual-mta-pool>", d->name,
			top ? "" : " in <virtual-mta> ", top ? "" : m->name, top ? p->global_source.text : m->source.text);
		return 0;
	}
	if (top) {
		p->global_source = a;
		p->global_source_line = p->line;
		return *helo ? cp_set_string(p, &p->global_helo, helo) : 0;
	}
	m->source = a;
	m->has_source = true;
	if (!*helo) /* the HELO name stays: the host-name (<virtual-mta>'s) or the global one */
		return 0;
	return cp_set_string(p, &m->helo, helo);
}

/* `host-name NAME` in <virtual-mta>: its HELO name, as the second word of
 * smtp-source-host gives it */
static int d_vmta_host_name(struct parser *p, const struct directive *d, char *v)
{
	char lit[64];
	const char *ip = cp_ip_as_host(p, d, v, lit, sizeof(lit));

	if (!ip && !cp_valid_domain_name(v))
		return cp_bad_value(p, "host name", d, v);
	return cp_set_string(p, &p->cfg->vmtas[p->cur].helo, ip ? ip : v);
}

int cp_open_vmta(struct parser *p, char *arg)
{
	struct config *c = p->cfg;
	char sb[CP_SHOW_BUF];

	if (!valid_name(arg))
		return cp_err(p, "invalid name \"%s\" for <virtual-mta>", cp_show(sb, arg));
	for (size_t i = 0; i < c->n_vmtas; i++) {
		if (strcasecmp(c->vmtas[i].name, arg) != 0)
			continue;
		if (c->vmtas[i].line)
			return cp_err(p, "duplicate <virtual-mta %s> (first at %s)", arg, cp_at(p, c->vmtas[i].line, (char[CP_AT_BUF]){0}));
		p->cur = i; /* the file's "default" replaces the built-in one */
		c->vmtas[i].line = p->line;
		return 0;
	}
	if (cp_grow(p, (void **)&c->vmtas, &c->n_vmtas, sizeof(*c->vmtas), &p->cur) < 0)
		return -1;
	c->vmtas[p->cur].line = p->line;
	return cp_set_string(p, &c->vmtas[p->cur].name, arg);
}

/* ---- <virtual-mta-pool NAME> -------------------------------------------- */

static int d_pool_member(struct parser *p, const struct directive *d, char *v)
{
	struct config_pool *pl = &p->cfg->pools[p->cur];
	size_t i;

	if (!valid_name(v))
		return cp_bad_value(p, "virtual-mta name", d, v);
	if (cp_grow(p, (void **)&pl->members, &pl->n_members, sizeof(*pl->members), &i) < 0)
		return -1;
	return cp_set_string(p, &pl->members[i], v);
}

int cp_open_pool(struct parser *p, char *arg)
{
	struct config *c = p->cfg;
	char sb[CP_SHOW_BUF];

	if (!valid_name(arg))
		return cp_err(p, "invalid name \"%s\" for <virtual-mta-pool>", cp_show(sb, arg));
	for (size_t i = 0; i < c->n_pools; i++) {
		if (strcasecmp(c->pools[i].name, arg) != 0)
			continue;
		if (c->pools[i].line)
			return cp_err(p, "duplicate <virtual-mta-pool %s> (first at %s)", arg, cp_at(p, c->pools[i].line, (char[CP_AT_BUF]){0}));
		p->cur = i; /* the file's "default" pool replaces the built-in one */
		c->pools[i].line = p->line;
		c->pools[i].n_vmtas = 0;
		return 0;
	}
	if (cp_grow(p, (void **)&c->pools, &c->n_pools, sizeof(*c->pools), &p->cur) < 0)
		return -1;
	c->pools[p->cur].line = p->line;
	return cp_set_string(p, &c->pools[p->cur].name, arg);
}

/* ---- <mx-rollup-list> ----------------------------------------------------- */

static int d_rollup_mx(struct parser *p, const struct directive *d, char *v)
{
	struct config *c = p->cfg;
	char *queue = v + strcspn(v, CP_WS), sb[CP_SHOW_BUF];
	size_t i;

	if (*queue) {
		*queue++ = '\0';
		queue = cp_trim(queue);
	}
	if (*queue && cp_has_space(queue)) {
		static const struct directive by_ip = {"mx ... rollup-by-ip", CTX_ROLLUP, NULL,
			"the hosts roll up into the queue by name; rollup-by-ip is not applied yet"};
		char *opt = queue + strcspn(queue, CP_WS);

		*opt++ = '\0';
		opt = cp_trim(opt);
		if (strcasecmp(opt, "rollup-by-ip"))
			return cp_err(p, "unknown option \"%s\" for %s (expected rollup-by-ip)", cp_show(sb, opt),
				      d->name);
		cp_warn_pending(p, &by_ip);
	}
	if (!*queue)
		return cp_err(p, "%s wants a host pattern and a queue name: \"mx *.google.com google.rollup\"",
			      d->name);
	if (!cp_valid_domain_name(queue))
		return cp_err(p, "invalid queue name \"%s\" for %s", cp_show(sb, queue), d->name);
	for (const char *s = v; *s; s++)
		if (*s != '*' && *s != '.' && *s != '-' && *s != '_' && !((*s >= 'a' && *s <= 'z') ||
		    (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9')))
			return cp_err(p, "invalid host pattern \"%s\" for %s", cp_show(sb, v), d->name);
	cp_lower(v);
	cp_lower(queue);
	if (cp_grow(p, (void **)&c->rollups, &c->n_rollups, sizeof(*c->rollups), &i) < 0)
		return -1;
	c->rollups[i].line = p->line;
	if (cp_set_string(p, &c->rollups[i].pattern, v) < 0)
		return -1;
	return cp_set_string(p, &c->rollups[i].queue, queue);
}

int cp_open_rollup(struct parser *p, char *arg)
{
	(void)arg;
	return 0;
}

/* ---- <smtp-pattern-list NAME> ------------------------------------------- */

/* "/REGEX/ REST": the regex runs to the last '/' that ends a word; *rest
 * points after it. Compiled by PCRE2 (Perl syntax, case-insensitive).
 * `//` is the empty pattern, which matches everything (a catch-all). */
int cp_take_regex(struct parser *p, const char *what, char *v, struct pcre_re **re, char **rest)
{
	char sb[CP_SHOW_BUF], why[160], *end = NULL;

	if (v[0] != '/')
		return cp_err(p, "%s: expected /REGEX/ at \"%s\"", what, cp_show(sb, v));
	for (char *s = v + 1; *s; s++)
		if (*s == '/' && (!s[1] || strchr(CP_WS, s[1])))
			end = s;
	/* `/REGEX/WORD` with no space after the closing slash: the last
	 * unescaped '/' when one word follows it */
	for (char *s = v + strlen(v) - 1; !end && s > v + 1 && !strchr(CP_WS "/", *s); s--)
		if (s[-1] == '/' && s - 1 > v && s[-2] != '\\')
			end = s - 1;
	if (!end)
		return cp_err(p, "%s: unterminated /REGEX/ in \"%s\" (a pattern must be on one line)", what,
			      cp_show(sb, v));
	*end = '\0';
	if (!(*re = pcre_re_compile(v + 1, why, sizeof(why))))
		return cp_err(p, "%s: bad regex /%s/: %s", what, cp_show(sb, v + 1), why);
	*rest = cp_trim(end + 1);
	return 0;
}

static int pattern_actions(struct parser *p, char *v, struct config_pattern *r)
{
	char sb[CP_SHOW_BUF];

	r->reenable_after_ms = DEF_REENABLE_MS;
	if (!*v)
		return cp_err(p, "reply rule without actions");
	for (char *next, *a = v; a; a = next) {
		next = strchr(a, ',');
		if (next)
			*next++ = '\0';
		a = cp_trim(a);
		if (strcasecmp(a, "mode=backoff") == 0)
			r->actions |= CONFIG_PAT_MODE_BACKOFF;
		else if (strcasecmp(a, "mode=normal") == 0)
			r->actions |= CONFIG_PAT_MODE_NORMAL;
		else if (strcasecmp(a, "disable-source-ip") == 0)
			r->actions |= CONFIG_PAT_DISABLE_SOURCE_IP;
		else if (strcasecmp(a, "skip-mx") == 0)
			r->actions |= CONFIG_PAT_SKIP_MX;
		else if (strcasecmp(a, "bounce-rcpt") == 0)
			r->actions |= CONFIG_PAT_BOUNCE_RCPT;
		else if (strcasecmp(a, "bounce-queue") == 0)
			r->actions |= CONFIG_PAT_BOUNCE_QUEUE;
		else if (strcasecmp(a, "defer-queue") == 0)
			r->actions |= CONFIG_PAT_DEFER_QUEUE;
		else if (strncasecmp(a, "reenable-after=", 15) == 0) {
			if (config_parse_duration(a + 15, &r->reenable_after_ms) < 0 || !r->reenable_after_ms)
				return cp_err(p, "invalid duration \"%s\" for reenable-after", cp_show(sb, a + 15));
		} else
			return cp_err(p, "unknown reply action \"%s\" (mode=backoff, mode=normal, "
				      "disable-source-ip, reenable-after=DURATION, skip-mx, bounce-rcpt, bounce-queue, defer-queue)",
				      cp_show(sb, a));
	}
	if ((r->actions & CONFIG_PAT_MODE_BACKOFF) && (r->actions & CONFIG_PAT_MODE_NORMAL))
		return cp_err(p, "reply rule with both mode=backoff and mode=normal");
	if ((r->actions & CONFIG_PAT_BOUNCE_QUEUE) && (r->actions & CONFIG_PAT_DEFER_QUEUE))
		return cp_err(p, "reply rule with both bounce-queue and defer-queue");
	return 0;
}

static int d_reply(struct parser *p, const struct directive *d, char *v)
{
	struct config_pattern_list *l = &p->cfg->pattern_lists[p->cur];
	struct config_pattern r = {.line = p->line};
	char *rest;
	size_t i;

	if (cp_take_regex(p, d->name, v, &r.re, &rest) < 0)
		return -1;
	if (pattern_actions(p, rest, &r) < 0) {
		pcre_re_free(r.re);
		return -1;
	}
	if (!(r.text = strdup(pcre_re_text(r.re))) ||
	    cp_grow(p, (void **)&l->rules, &l->n_rules, sizeof(*l->rules), &i) < 0) {
		pcre_re_free(r.re);
		if (!r.text)
			cp_oom(p); /* cp_grow reports its own */
		free(r.text);
		return -1;
	}
	l->rules[i] = r;
	return 0;
}

int cp_open_patterns(struct parser *p, char *arg)
{
	struct config *c = p->cfg;
	char sb[CP_SHOW_BUF];

	if (!valid_name(arg))
		return cp_err(p, "invalid name \"%s\" for <smtp-pattern-list>", cp_show(sb, arg));
	for (size_t i = 0; i < c->n_pattern_lists; i++)
		if (strcasecmp(c->pattern_lists[i].name, arg) == 0)
			return cp_err(p, "duplicate <smtp-pattern-list %s> (first at %s)", arg, cp_at(p, c->pattern_lists[i].line, (char[CP_AT_BUF]){0}));
	if (cp_grow(p, (void **)&c->pattern_lists, &c->n_pattern_lists, sizeof(*c->pattern_lists), &p->cur) < 0)
		return -1;
	c->pattern_lists[p->cur].line = p->line;
	return cp_set_string(p, &c->pattern_lists[p->cur].name, arg);
}

/* ---- <bounce-category-patterns> --------------------------------------------- */

#define CATEGORY_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."

/* The whole line: `/REGEX/ CATEGORY` (config_parse.c passes it here). */
static int d_category_pattern(struct parser *p, const struct directive *d, char *v)
{
	struct config *c = p->cfg;
	struct config_category_pattern r = {.line = p->line};
	char sb[CP_SHOW_BUF], *cat;
	bool known = false;
	size_t i;

	if (cp_take_regex(p, d->name, v, &r.re, &cat) < 0)
		return -1;
	for (i = 0; i < sizeof(categories) / sizeof(categories[0]); i++)
		known = known || strcasecmp(cat, categories[i]) == 0;
	/* PowerMTA's stock patterns end with `/^2.\d+.\d+;/ success`: a report
	 * that says delivered is no bounce, which Salvo never counts as one */
	if (!strcasecmp(cat, "success")) {
		pcre_re_free(r.re);
		cp_warn_pending(p, &(const struct directive){"bounce category success", CTX_CATEGORIES, NULL,
			"a report with a 2.x.x status is never taken as a bounce, so it has no effect"});
		return 0;
	}
	/* "Custom category names are allowed" (User's Guide 10.8): the name is
	 * what the bounce's records carry; only the built-in names also mean
	 * something to Salvo (a hard bounce suppresses the address) */
	if (!known && (!*cat || strlen(cat) > 64 || strspn(cat, CATEGORY_CHARS) != strlen(cat))) {
		pcre_re_free(r.re);
		if (!*cat)
			return cp_err(p, "missing bounce category after the pattern (e.g. /user unknown/ bad-mailbox)");
		return cp_err(p, "invalid bounce category \"%s\" (one word of letters, digits, '-', '_' or '.', e.g. "
			      "bad-mailbox, quota-issues, spam-related or a name of your own)", cp_show(sb, cat));
	}
	if (known)
		cp_lower(cat);
	if (!(r.text = strdup(pcre_re_text(r.re))) || !(r.category = strdup(cat)) ||
	    cp_grow(p, (void **)&c->category_patterns, &c->n_category_patterns,
		    sizeof(*c->category_patterns), &i) < 0) {
		bool oom = !r.text || !r.category;

		pcre_re_free(r.re);
		free(r.text);
		free(r.category);
		return oom ? cp_oom(p) : -1;
	}
	c->category_patterns[i] = r;
	return 0;
}

int cp_open_categories(struct parser *p, char *arg)
{
	(void)arg;
	return 0;
}

/* ---- <smtp-user NAME> ------------------------------------------------------------ */

static int d_password(struct parser *p, const struct directive *d, char *v)
{
	(void)d;
	return cp_set_string(p, &p->cfg->smtp_users[p->cur].password, v);
}

int cp_open_smtp_user(struct parser *p, char *arg)
{
	struct config *c = p->cfg;
	char sb[CP_SHOW_BUF];

	if (strlen(arg) > 255 || strpbrk(arg, "\"\\"))
		return cp_err(p, "invalid user name \"%s\" for <smtp-user>", cp_show(sb, arg));
	for (size_t i = 0; i < c->n_smtp_users; i++)
		if (!strcmp(c->smtp_users[i].name, arg))
			return cp_err(p, "duplicate <smtp-user %s> (first at %s)", arg, cp_at(p, c->smtp_users[i].line, (char[CP_AT_BUF]){0}));
	if (cp_grow(p, (void **)&c->smtp_users, &c->n_smtp_users, sizeof(*c->smtp_users), &p->cur) < 0)
		return -1;
	c->smtp_users[p->cur].line = p->line;
	return cp_set_string(p, &c->smtp_users[p->cur].name, arg);
}

/* `source {name}`: the named <source> whose settings apply once the
 * session has authenticated as this user. */
static int d_user_source(struct parser *p, const struct directive *d, char *v)
{
	size_t n = strlen(v);

	if (n > 2 && v[0] == '{' && v[n - 1] == '}') {
		v[n - 1] = '\0';
		v++;
	}
	if (!*v || cp_has_space(v))
		return cp_bad_value(p, "source name", d, v);
	return cp_set_string(p, &p->cfg->smtp_users[p->cur].source, v);
}

/* `cold-virtual-mta NAME`: resolved in cp_vmtas_finish() (the cold vmta
 * may come later in the file). */
static int d_cold_vmta(struct parser *p, const struct directive *d, char *v)
{
	struct config_vmta *vm = &p->cfg->vmtas[p->cur];

	if (!valid_name(v))
		return cp_bad_value(p, "virtual-mta name", d, v);
	if (vm->cold_name)
		return cp_err(p, "a second cold-virtual-mta for <virtual-mta %s> (first at %s)", vm->name,
			      cp_at(p, vm->cold_line, (char[CP_AT_BUF]){0}));
	vm->cold_line = p->line;
	return cp_set_string(p, &vm->cold_name, v);
}

static const struct directive directives[] = {
	{"password", CTX_SMTP_USER, d_password, NULL},
	{"cold-virtual-mta", CTX_VMTA, d_cold_vmta, NULL},
	{"source", CTX_SMTP_USER, d_user_source, NULL}, /* applied after AUTH (engine/intake.c) */
	{"smtp-source-host", CTX_VMTA, d_smtp_source_host, NULL},
	{"smtp-source-host", CTX_TOP, d_smtp_source_host, NULL},
	{"host-name", CTX_VMTA, d_vmta_host_name, NULL},
	{"virtual-mta", CTX_POOL, d_pool_member, NULL},
	{"mx", CTX_ROLLUP, d_rollup_mx, NULL},
	{"reply", CTX_PATTERNS, d_reply, NULL},
	{"bounce-category-pattern", CTX_CATEGORIES, d_category_pattern, NULL},
};

const struct directive_table cp_vmta_directives = {directives, sizeof(directives) / sizeof(directives[0])};

/* ---- defaults, resolution, lookups ------------------------------------------ */

int cp_vmtas_default(struct config *cfg)
{
	cfg->vmtas = calloc(1, sizeof(*cfg->vmtas));
	cfg->pools = calloc(1, sizeof(*cfg->pools));
	if (!cfg->vmtas || !cfg->pools)
		return -1;
	cfg->n_vmtas = cfg->n_pools = 1;
	cfg->vmtas[0].name = strdup("default");
	cfg->pools[0].name = strdup("default");
	cfg->pools[0].vmtas = calloc(1, sizeof(size_t));
	if (!cfg->vmtas[0].name || !cfg->pools[0].name || !cfg->pools[0].vmtas)
		return -1;
	cfg->pools[0].n_vmtas = 1;
	return 0;
}

static ssize_t vmta_find(const struct config *c, const char *name)
{
	for (size_t i = 0; i < c->n_vmtas; i++)
		if (strcasecmp(c->vmtas[i].name, name) == 0)
			return (ssize_t)i;
	return -1;
}

static int resolve_pool(struct parser *p, struct config_pool *pl)
{
	struct config *c = p->cfg;
	size_t *idx;

	if (!pl->n_members) {
		if (pl->line == 0)
			return 0; /* the built-in default pool */
		p->line = pl->line;
		return cp_err(p, "<virtual-mta-pool %s> lists no virtual-mta", pl->name);
	}
	if (!(idx = calloc(pl->n_members, sizeof(*idx))))
		return cp_oom(p);
	free(pl->vmtas);
	pl->vmtas = idx;
	pl->n_vmtas = 0;
	for (size_t i = 0; i < pl->n_members; i++) {
		ssize_t m = vmta_find(c, pl->members[i]);

		if (m < 0) {
			p->line = pl->line;
			return cp_err(p, "<virtual-mta-pool %s>: no <virtual-mta %s>", pl->name, pl->members[i]);
		}
		idx[pl->n_vmtas++] = (size_t)m;
	}
	return 0;
}

int cp_vmtas_finish(struct parser *p)
{
	struct config *c = p->cfg;
	size_t n_explicit = c->n_pools;
	int rc = 0;

	for (size_t i = 0; i < n_explicit; i++)
		if (resolve_pool(p, &c->pools[i]) < 0)
			rc = -1; /* the other checks still run: every error in one load */
	for (size_t i = 0; i < c->n_smtp_users; i++) {
		if (!c->smtp_users[i].password) {
			p->line = c->smtp_users[i].line;
			cp_err(p, "<smtp-user %s> has no password", c->smtp_users[i].name);
		}
		if (c->smtp_users[i].source && !config_source_named(c, c->smtp_users[i].source)) {
			p->line = c->smtp_users[i].line;
			cp_err(p, "<smtp-user %s>: source {%s}: no such <source {%s}>", c->smtp_users[i].name,
			       c->smtp_users[i].source, c->smtp_users[i].source);
		}
	}
	for (size_t v = 0; p->global_source_line && v < c->n_vmtas; v++) {
		struct config_vmta *vm = &c->vmtas[v];

		if (vm->has_source)
			continue;
		vm->source = p->global_source;
		vm->has_source = true;
		if (!vm->helo && p->global_helo && !(vm->helo = strdup(p->global_helo)))
			rc = cp_oom(p);
	}
	for (size_t v = 0; v < c->n_vmtas; v++) {
		struct config_vmta *vm = &c->vmtas[v];
		ssize_t k;

		if (!vm->cold_name)
			continue;
		p->line = vm->cold_line;
		if ((k = vmta_find(c, vm->cold_name)) < 0)
			rc = cp_err(p, "cold-virtual-mta \"%s\": no such <virtual-mta>", vm->cold_name);
		else if ((size_t)k == v)
			rc = cp_err(p, "cold-virtual-mta \"%s\": a virtual MTA cannot be its own cold one", vm->cold_name);
		else if (c->vmtas[k].cold_name)
			rc = cp_err(p, "cold-virtual-mta \"%s\": that virtual MTA has a cold one itself (one level only)",
				    vm->cold_name);
		else {
			vm->cold = (size_t)k;
			vm->has_cold = true;
		}
	}
	/* reroute-to-virtual-mta names a virtual MTA; a top-level block that
	 * inherits the value from <domain *> is not reported again */
	for (size_t i = 0, n = c->n_domains + c->n_vdomains; i < n; i++) {
		const struct config_domain *d = i < c->n_domains ? &c->domains[i] : &c->vdomains[i - c->n_domains];
		const char *v = config_domain_value(d, "reroute-to-virtual-mta"), *top;

		if (!v || vmta_find(c, v) >= 0)
			continue;
		top = c->n_domains ? config_domain_value(&c->domains[0], "reroute-to-virtual-mta") : NULL;
		if (i && i < c->n_domains && top && !strcmp(top, v))
			continue;
		p->line = d->line;
		rc = cp_err(p, "reroute-to-virtual-mta \"%s\" in <domain %s>: no such <virtual-mta>", v, d->name);
	}
	/* Each virtual MTA is also a pool of one under its own name. */
	for (size_t v = 0; v < c->n_vmtas; v++) {
		size_t i;

		if (config_pool_find(c, c->vmtas[v].name) >= 0)
			continue;
		if (cp_grow(p, (void **)&c->pools, &c->n_pools, sizeof(*c->pools), &i) < 0 ||
		    cp_set_string(p, &c->pools[i].name, c->vmtas[v].name) < 0)
			return -1;
		if (!(c->pools[i].vmtas = malloc(sizeof(size_t))))
			return cp_oom(p);
		c->pools[i].vmtas[0] = v;
		c->pools[i].n_vmtas = 1;
	}
	return rc;
}

/* Same address (port ignored); an IPv4-mapped IPv6 local address matches
 * its IPv4 form (a dual-stack `0/0` listener). */
static bool same_ip(const struct sockaddr *a, const struct sockaddr *b)
{
	const struct sockaddr_in *a4 = (const void *)a, *b4 = (const void *)b;
	const struct sockaddr_in6 *a6 = (const void *)a, *b6 = (const void *)b;
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	if (a->sa_family == AF_INET6 && b->sa_family == AF_INET && !memcmp(a6->sin6_addr.s6_addr, mapped, 12))
		return !memcmp(a6->sin6_addr.s6_addr + 12, &b4->sin_addr, 4);
	if (a->sa_family != b->sa_family)
		return false;
	if (a->sa_family == AF_INET)
		return a4->sin_addr.s_addr == b4->sin_addr.s_addr;
	return a->sa_family == AF_INET6 && !memcmp(&a6->sin6_addr, &b6->sin6_addr, sizeof(a6->sin6_addr));
}

size_t config_source_pool(const struct config *cfg, const struct config_source *src, const struct sockaddr *local)
{
	if (!src)
		return 0;
	if (!src->default_by_source_ip)
		return src->default_pool;
	for (size_t v = 0; local && v < cfg->n_vmtas; v++) {
		ssize_t pool;

		if (!cfg->vmtas[v].has_source || !same_ip(local, (const struct sockaddr *)&cfg->vmtas[v].source.sa))
			continue;
		/* the vmta by name, as X-Virtual-MTA names it (its pool of one) */
		if ((pool = config_pool_find(cfg, cfg->vmtas[v].name)) >= 0)
			return (size_t)pool;
	}
	return 0;
}

void cp_vmtas_free(struct config *cfg)
{
	for (size_t i = 0; i < cfg->n_vmtas; i++) {
		free(cfg->vmtas[i].name);
		free(cfg->vmtas[i].helo);
		free(cfg->vmtas[i].cold_name);
	}
	for (size_t i = 0; i < cfg->n_pools; i++) {
		free(cfg->pools[i].name);
		free(cfg->pools[i].vmtas);
		for (size_t j = 0; j < cfg->pools[i].n_members; j++)
			free(cfg->pools[i].members[j]);
		free(cfg->pools[i].members);
	}
	for (size_t i = 0; i < cfg->n_rollups; i++) {
		free(cfg->rollups[i].pattern);
		free(cfg->rollups[i].queue);
	}
	for (size_t i = 0; i < cfg->n_pattern_lists; i++) {
		struct config_pattern_list *l = &cfg->pattern_lists[i];

		for (size_t j = 0; j < l->n_rules; j++) {
			pcre_re_free(l->rules[j].re);
			free(l->rules[j].text);
		}
		free(l->rules);
		free(l->name);
	}
	for (size_t i = 0; i < cfg->n_category_patterns; i++) {
		pcre_re_free(cfg->category_patterns[i].re);
		free(cfg->category_patterns[i].text);
		free(cfg->category_patterns[i].category);
	}
	for (size_t i = 0; i < cfg->n_smtp_users; i++) {
		free(cfg->smtp_users[i].name);
		free(cfg->smtp_users[i].password);
		free(cfg->smtp_users[i].source);
	}
	free(cfg->smtp_users);
	cfg->smtp_users = NULL;
	cfg->n_smtp_users = 0;
	free(cfg->vmtas);
	free(cfg->pools);
	free(cfg->rollups);
	free(cfg->pattern_lists);
	free(cfg->category_patterns);
	cfg->vmtas = NULL;
	cfg->pools = NULL;
	cfg->rollups = NULL;
	cfg->pattern_lists = NULL;
	cfg->category_patterns = NULL;
	cfg->n_vmtas = cfg->n_pools = cfg->n_rollups = cfg->n_pattern_lists = cfg->n_category_patterns = 0;
}

ssize_t config_pool_find(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->n_pools; i++)
		if (strcasecmp(cfg->pools[i].name, name) == 0)
			return (ssize_t)i;
	return -1;
}

bool config_glob_match(const char *pat, const char *s)
{
	const char *star = NULL, *resume = NULL;

	while (*s) {
		char a = *pat >= 'A' && *pat <= 'Z' ? (char)(*pat - 'A' + 'a') : *pat;
		char b = *s >= 'A' && *s <= 'Z' ? (char)(*s - 'A' + 'a') : *s;

		if (*pat == '*') {
			star = pat++;
			resume = s;
		} else if (*pat && a == b) {
			pat++;
			s++;
		} else if (star) {
			pat = star + 1;
			s = ++resume;
		} else {
			return false;
		}
	}
	while (*pat == '*')
		pat++;
	return !*pat;
}

const char *config_category_override(const struct config *cfg, const char *text)
{
	for (size_t i = 0; text && i < cfg->n_category_patterns; i++)
		if (pcre_re_match(cfg->category_patterns[i].re, text))
			return cfg->category_patterns[i].category;
	return NULL;
}

const char *config_rollup_for(const struct config *cfg, const char *mx_host)
{
	char host[256];
	size_t n = strlen(mx_host);

	/* "mx.example.com." and "mx.example.com" are one host */
	if (n >= sizeof(host))
		return NULL;
	memcpy(host, mx_host, n + 1);
	if (n && host[n - 1] == '.')
		host[n - 1] = '\0';
	for (size_t i = 0; i < cfg->n_rollups; i++)
		if (config_glob_match(cfg->rollups[i].pattern, host))
			return cfg->rollups[i].queue;
	return NULL;
}
