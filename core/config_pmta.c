/*
 * config_pmta.c - the PowerMTA directives beyond Salvo's own core set:
 *   - those Salvo does not have by design, each with its reason and what
 *     to use instead: refused, or accepted with a "no effect" warning
 *     (cp_refused; the lists are in README's migration section);
 *   - those accepted and validated but not applied by the engine yet:
 *     their table entries carry a `pending` text and --check-config warns
 *     (never accepted in silence);
 *   - those whose one value means what Salvo always does (`deliver-only
 *     no`, the TLS version switches, ...): the other value is refused with
 *     the reason, or warned as having no effect; `run-as-root no` drops
 *     root after binding (engine/privdrop.c);
 *   - documented no-ops (sync-msg-create/update, delete-file-holders);
 *   - `domain-macro`, `<acct-file>`, `<spool>`, `relay-domain`, the
 *     bounce and feedback-loop processors' blocks (their address lists:
 *     config_address_list.c) and `<rewrite-list>`.
 * Ownership as everywhere in the parser: everything hangs off the struct
 * config being built (acct_files) or the parser (macros).
 */
#include "core/config_parser.h"
#include "core/pcre_re.h"
#include "core/acct_csv_fields.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- refused, or inert, by design --------------------------------------- */

/* PowerMTA directives and blocks Salvo does not have, by name or (prefix)
 * by family, each with its reason and what to use instead:
 *   - refused: those whose absence would change where mail goes or who may
 *     use Salvo (a proxy, key vaults, the accounting file's webhooks);
 *   - inert: those whose absence changes neither (telemetry, a built-in
 *     test sink, another injection API, TLS versions Salvo never speaks,
 *     the settings of a delivery type whose queue is held): accepted with
 *     a warning that says so, so that a config carrying them still loads. */
static const struct {
	const char *name;
	bool block, prefix, inert;
	const char *why;
} refused[] = {
	{"use-proxy", false, false, false, "is not implemented: Salvo connects to the receiving MX itself, from the "
					   "virtual MTA's smtp-source-host"},
	{"smtp-proxy-source-host", false, false, false, "is not implemented: Salvo connects to the receiving MX "
							"itself, from the virtual MTA's smtp-source-host"},
	{"smtp-ip", false, false, false, "(deprecated in PowerMTA) is not supported: use smtp-listener IP:PORT"},
	{"proxy", true, false, false, "is not implemented: Salvo connects to the receiving MX itself, from the "
				      "virtual MTA's smtp-source-host"},
	{"vault", true, false, false, "is not implemented: keys are read from files (domain-key SELECTOR,DOMAIN,FILE)"},
	{"http-webhook-", false, true, false, "in <acct-file> is not implemented: post accounting records with an "
					      "<acct-webhook NAME> block (url, records, max-batch, secret)"},
	/* inert */
	{"signals", true, false, true, "is SparkPost Signals, which Salvo does not have by design: the accounting "
				       "log (acct.jsonl), <acct-file> and <acct-webhook> carry the same events"},
	{"enable-signals", false, false, true, "is SparkPost Signals, which Salvo does not have by design: the "
					       "accounting log (acct.jsonl), <acct-file> and <acct-webhook> carry the "
					       "same events"},
	{"transmissions-api", true, false, true, "is SparkPost's Transmissions API, which Salvo does not have by "
						 "design: inject with POST /api/inject/v1 (KumoMTA's schema) or SMTP"},
	{"transmissions-api-listener", true, false, true, "is SparkPost's Transmissions API, which Salvo does not "
							  "have by design: inject with POST /api/inject/v1 "
							  "(KumoMTA's schema) or SMTP"},
	{"smtp-server-tls-allow-tlsv1", false, false, true, "allows TLS 1.0, which is deprecated (RFC 8996) and "
							    "never offered"},
	{"smtp-client-tls-allow-tlsv1", false, false, true, "allows TLS 1.0, which is deprecated (RFC 8996) and "
							    "never used"},
	{"http-delivery-url", false, false, true, "is for type http-delivery, which Salvo does not have by design "
						  "(the queue's mail is held; see type)"},
	{"http-delivery-extra-headers", false, false, true, "is for type http-delivery, which Salvo does not have "
							    "by design (the queue's mail is held; see type)"},
	{"file-format", false, false, true, "is for type file, which Salvo does not have by design (the queue's mail "
					    "is held; see type)"},
	{"file-destination", false, false, true, "is for type file, which Salvo does not have by design (the "
						 "queue's mail is held; see type)"},
	{"command", false, false, true, "is for type pipe, which Salvo does not have by design (the queue's mail is "
					"held; see type)"},
	{"dummy-smtp-", false, true, true, "is PowerMTA's built-in test sink, which Salvo does not have by design: "
					   "run salvo-sink (or Postfix's smtp-sink) as the test peer"},
	{"sparkpost-", false, true, true, "is SparkPost delivery, which Salvo does not have by design: Salvo "
					  "delivers by SMTP (send to an SMTP relay with route)"},
};

/* PowerMTA blocks whose whole contents Salvo has no use for: skipped, with
 * the warning (never in silence). */
static const struct {
	const char *name;
	const char *why;
} unapplied_blocks[] = {
	{"dns", "PowerMTA's DNS pre-caching has no counterpart; c-ares resolves on demand"},
	{"source-group", "source groups have no counterpart; give each <source> its settings"},
	{"email-patterns", "the bounce processor classifies with <bounce-category-patterns> only"},
	{"domain-key-list", "X-DKIM-Options key lists have no counterpart; domain-key lines choose the key"},
};

const char *cp_unapplied_block(const char *name)
{
	for (size_t i = 0; i < sizeof(unapplied_blocks) / sizeof(unapplied_blocks[0]); i++)
		if (!strcasecmp(name, unapplied_blocks[i].name))
			return unapplied_blocks[i].why;
	return NULL;
}

const char *cp_refused(const char *name, bool block, bool *inert)
{
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		if (refused[i].block == block && (refused[i].prefix ? !strncasecmp(name, refused[i].name,
										    strlen(refused[i].name))
								    : !strcasecmp(name, refused[i].name))) {
			*inert = refused[i].inert;
			return refused[i].why;
		}
	return NULL;
}

/* ---- value checks for directives stored but not applied yet ------------ */

static int p_bool(struct parser *p, const struct directive *d, char *v)
{
	bool b;

	return config_parse_bool(v, &b) < 0 ? cp_bad_value(p, "boolean", d, v) : 0;
}

static int p_duration(struct parser *p, const struct directive *d, char *v)
{
	uint64_t ms;

	if (!strcasecmp(v, "never"))
		return 0;
	return config_parse_duration(v, &ms) < 0 ? cp_bad_value(p, "duration (or never)", d, v) : 0;
}

static int p_rate(struct parser *p, const struct directive *d, char *v)
{
	struct config_rate r;

	if (!strcasecmp(v, "unlimited"))
		return 0;
	return config_parse_rate(v, &r) < 0 ? cp_bad_value(p, "rate (e.g. 100/h)", d, v) : 0;
}

static int p_word(struct parser *p, const struct directive *d, char *v)
{
	return cp_has_space(v) ? cp_bad_value(p, "name (one word)", d, v) : 0;
}

static int p_text(struct parser *p, const struct directive *d, char *v)
{
	(void)p, (void)d, (void)v;
	return 0;
}

/* A boolean directive where one value means what Salvo always does; the
 * other is refused with why, or accepted with a warning that it has no
 * effect (each time, or once per file like every not-applied directive). */
enum only_other { OTHER_REFUSED, OTHER_WARNED, OTHER_WARNED_ONCE };

static int only(struct parser *p, const struct directive *d, const char *v, bool want, enum only_other other,
		const char *why)
{
	char sb[CP_SHOW_BUF];
	bool b;

	if (config_parse_bool(v, &b) < 0)
		return cp_bad_value(p, "boolean", d, v);
	if (b == want)
		return 0;
	if (other == OTHER_REFUSED)
		return cp_err(p, "%s %s is not supported: %s", d->name, v, why);
	if (other == OTHER_WARNED)
		cp_warn(p, "%s %s is accepted but has no effect: %s", d->name, cp_show(sb, v), why);
	else
		cp_warn_pending(p, &(const struct directive){d->name, d->ctx, NULL, why});
	return 0;
}

/* `allow-mailmerge yes` only lets a client use XMRG, which Salvo never
 * offers: clients send one message per recipient; so it is accepted with
 * the warning rather than refused. */
static int v_allow_mailmerge(struct parser *p, const struct directive *d, char *v)
{
	return only(p, d, v, false, OTHER_WARNED_ONCE,
		    "mail merge (XMRG) is not implemented by design and never offered, so clients send one message "
		    "per recipient (SMTP or the HTTP API) and allow-mailmerge yes has no effect");
}

/* `dk-sign yes`: DomainKeys (RFC 4870) is historic and no receiver checks
 * it any more, so dropping the signature changes no delivery: accepted,
 * with the warning (dkim-sign still signs). */
static int v_dk_sign(struct parser *p, const struct directive *d, char *v)
{
	return only(p, d, v, false, OTHER_WARNED_ONCE,
		    "DomainKeys (RFC 4870) is obsolete and not implemented by design (dkim-sign signs with DKIM), "
		    "so dk-sign yes has no effect");
}

static int v_tls11(struct parser *p, const struct directive *d, char *v)
{
	return only(p, d, v, false, OTHER_WARNED, "TLS 1.0 and 1.1 are deprecated (RFC 8996) and never offered");
}

static int v_tls12(struct parser *p, const struct directive *d, char *v)
{
	return only(p, d, v, true, OTHER_WARNED, "TLS 1.2 and 1.3 are always offered");
}

static int v_deliver_only(struct parser *p, const struct directive *d, char *v)
{
	return only(p, d, v, false, OTHER_REFUSED, "Salvo has one spool, which takes new mail");
}

/* `type smtp`, or another delivery type Salvo does not have by design
 * (http-delivery, file, pipe, discard, ...): accepted so that the config
 * loads, with the warning, and the queue's mail is held - neither sent by
 * SMTP to a place the operator did not mean nor dropped. */
static int v_type(struct parser *p, const struct directive *d, char *v)
{
	struct config_domain *dom = &p->cfg->domains[p->cur];
	char sb[CP_SHOW_BUF];

	dom->set_mask |= CONFIG_DOM_TYPE;
	dom->held_by_type = strcasecmp(v, "smtp") != 0;
	if (!dom->held_by_type)
		return 0;
	if (cp_has_space(v) || !*v)
		return cp_bad_value(p, "delivery type (smtp)", d, v);
	if (!strcasecmp(v, "discard"))
		cp_warn(p, "%s discard is not implemented: this queue's mail is held (kept, never sent); to drop it, "
			   "put the addresses on the suppression list (salvoctl suppress add, or suppress import) or "
			   "salvoctl delete --queue", d->name);
	else
		cp_warn(p, "%s %s is not implemented by design (Salvo delivers by SMTP only): this queue's mail is "
			   "held (kept, never sent); to deliver it, send it to an SMTP relay with route and type smtp",
			d->name, cp_show(sb, v));
	return 0;
}

static int v_auth_method(struct parser *p, const struct directive *d, char *v)
{
	char sb[CP_SHOW_BUF];

	if (!strcasecmp(v, "password"))
		return 0;
	return cp_err(p, "%s \"%s\" is not supported: <smtp-user> accounts authenticate by password",
		      d->name, cp_show(sb, v));
}

/* `X-allow-sslv3 / -tlsv1 / -tlsv1.1`: only "no"; `-tlsv1.2 / -tlsv1.3`: only "yes" */
static int v_old_tls(struct parser *p, const struct directive *d, char *v)
{
	return only(p, d, v, false, OTHER_WARNED, "SSLv3, TLS 1.0 and 1.1 are deprecated (RFC 8996) and never used");
}

/* `relay-domain NAME`, PowerMTA's forms: a name, `*.name`, `[*.]name`;
 * with domain macros, one per name they stand for (`yahoo.$topLevel`). */
static int add_relay_domain(struct parser *p, const struct directive *d, const char *v)
{
	struct config *c = p->cfg;
	const char *n = !strncmp(v, "[*.]", 4) ? v + 4 : !strncmp(v, "*.", 2) ? v + 2 : v;
	size_t idx;
	char *s;

	if (!cp_valid_domain_name(n))
		return cp_bad_value(p, "domain name (or *.name, [*.]name)", d, v);
	if (!(s = strdup(v)))
		return cp_oom(p);
	cp_lower(s);
	if (cp_grow(p, (void **)&c->relay_domains, &c->n_relay_domains, sizeof(*c->relay_domains), &idx) < 0) {
		free(s);
		return -1;
	}
	c->relay_domains[idx] = s;
	return 0;
}

static int p_relay_domain(struct parser *p, const struct directive *d, char *v)
{
	char **names;
	size_t n;
	int rc = 0;

	if (cp_macro_expand(p, v, &names, &n) < 0)
		return -1;
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = add_relay_domain(p, d, names[i]);
	cp_macro_names_free(names, n);
	return rc;
}

bool config_relay_domain(const struct config *cfg, const char *domain)
{
	size_t dl = strlen(domain);

	for (size_t i = 0; i < cfg->n_relay_domains; i++) {
		const char *r = cfg->relay_domains[i];
		bool exact = strncmp(r, "*.", 2) != 0, subs = *r == '[' || !exact;
		size_t nl;

		r += *r == '[' ? 4 : !exact ? 2 : 0;
		nl = strlen(r);
		if (exact && !strcasecmp(domain, r))
			return true;
		/* a subdomain: "label." then the name, never the name glued to
		 * another label (evilexample.com is not under example.com) */
		if (subs && dl > nl + 1 && domain[dl - nl - 1] == '.' && !strcasecmp(domain + dl - nl, r))
			return true;
	}
	return false;
}

/* `smtp-port N`: PowerMTA's listener on every local address at port N */
static int d_smtp_port(struct parser *p, const struct directive *d, char *v)
{
	char l[32];
	uint64_t port;

	if (config_parse_uint(v, 1, 65535, &port) < 0)
		return cp_bad_value(p, "port (1-65535)", d, v);
	snprintf(l, sizeof(l), "0/0:%u", (unsigned)port);
	return cp_smtp_listener(p, d, l);
}

/* A limit Salvo does not apply (a virtual MTA's own totals over all its
 * queues, a per-source-IP or data-volume limit): the value is checked and
 * the directive accepted with the warning, once per file; `unlimited`
 * (PowerMTA's default) is what Salvo does, so it says nothing. */
static int v_limit_unapplied(struct parser *p, const struct directive *d, char *v)
{
	struct config_rate r;
	uint64_t u;
	char why[256];

	if (!strcasecmp(d->name, "proxy-protocol"))
		return cp_err(p, "%s is not implemented: Salvo connects to the receiving MX itself, from the virtual "
			      "MTA's smtp-source-host", d->name);
	/* source-ip-max-connect-rate IP RATE: the limit is the last word */
	for (char *sp; (sp = strrchr(v, ' ')) || (sp = strrchr(v, '\t'));)
		v = sp + 1;
	if (!strcasecmp(v, "unlimited"))
		return 0;
	if (strstr(d->name, "data-volume")) {
		/* `10M/h`: a size per time; checked as the size, then as 1 per that time */
		char *slash = strchr(v, '/'), one[48];
		bool ok = slash && (size_t)(slash - v) < sizeof(one);

		if (ok) {
			snprintf(one, sizeof(one), "%.*s", (int)(slash - v), v);
			ok = config_parse_size(one, &u) == 0 && u > 0 && strlen(slash) < sizeof(one) - 1;
		}
		if (ok) {
			snprintf(one, sizeof(one), "1%s", slash);
			ok = config_parse_rate(one, &r) == 0;
		}
		if (!ok)
			return cp_bad_value(p, "data rate (e.g. 10M/h) or unlimited", d, v);
	} else if (strchr(v, '/') ? config_parse_rate(v, &r) < 0 : config_parse_uint(v, 0, UINT32_MAX, &u) < 0) {
		return cp_bad_value(p, "number, rate (e.g. 100/h) or unlimited", d, v);
	}
	if (p->ctx == CTX_VMTA || p->ctx == CTX_POOL)
		snprintf(why, sizeof(why), "Salvo limits each queue, not a virtual MTA's total, so it has no effect; "
			 "put the limit in a <domain *> inside the <%s>", p->ctx == CTX_POOL ? "virtual-mta-pool" :
			 "virtual-mta");
	else
		snprintf(why, sizeof(why), "outbound delivery has no such limit, so it has no effect; max-smtp-out, "
			 "max-msg-rate and max-connect-rate limit each queue (one per virtual MTA)");
	cp_warn_pending(p, &(const struct directive){d->name, p->ctx, NULL, why});
	return 0;
}

/* `always-allow-relaying` at top level (the guide lists it with the global
 * relaying directives): no is what every source without its own gets; yes
 * would make every client a relay. */
static int v_global_relaying(struct parser *p, const struct directive *d, char *v)
{
	return only(p, d, v, false, OTHER_REFUSED, "that would let every client relay (an open relay); put always-allow-relaying "
		    "yes in the <source> of the hosts that inject");
}

/* `second-dkim-sign`: only no (one DKIM-Signature per message) */
static int v_second_dkim(struct parser *p, const struct directive *d, char *v)
{
	return only(p, d, v, false, OTHER_REFUSED, "Salvo adds one DKIM-Signature; a second one is not implemented");
}

/* ---- <smtp-listener ADDR> -------------------------------------------------- */

/* `source NAME` (or {NAME}): sessions there take that named <source> */
static int d_listener_source(struct parser *p, const struct directive *d, char *v)
{
	struct config *c = p->cfg;
	size_t n = strlen(v);

	if (cp_has_space(v))
		return cp_bad_value(p, "source name", d, v);
	if (n > 2 && v[0] == '{' && v[n - 1] == '}') {
		v[n - 1] = '\0';
		v++;
	}
	return cp_set_string(p, &c->smtp_listener_source[p->cur], v);
}

static int v_immediate_tls(struct parser *p, const struct directive *d, char *v)
{
	return only(p, d, v, false, OTHER_REFUSED, "for implicit TLS (SMTPS) use smtps-listener ADDR instead of this listener");
}

static int v_listener_cert(struct parser *p, const struct directive *d, char *v)
{
	(void)v; /* never echoed: it may carry the key's password */
	return cp_err(p, "%s in <smtp-listener> is not implemented: one certificate serves every listener; set "
		      "smtp-server-tls-certificate FILE (or tls-certificate and tls-private-key)", d->name);
}

static int v_user_cert(struct parser *p, const struct directive *d, char *v)
{
	(void)v;
	return cp_err(p, "%s in <smtp-user> is not supported: <smtp-user> accounts authenticate by password",
		      d->name);
}

/* documented no-ops: the reason is in README */
static int noop_bool(struct parser *p, const struct directive *d, char *v)
{
	return p_bool(p, d, v);
}

/* ---- top level ------------------------------------------------------------ */

/* `run-as-root no`: give up root after binding (engine/privdrop.c); yes
 * (or not said): keep the user salvod is started as. */
static int d_run_as_root(struct parser *p, const struct directive *d, char *v)
{
	if (config_parse_bool(v, &p->cfg->run_as_root) < 0)
		return cp_bad_value(p, "boolean", d, v);
	p->cfg->drop_root = !p->cfg->run_as_root;
	return 0;
}

/* `run-as-user NAME`: whom `run-as-root no` becomes (default salvo); the
 * account is looked up when salvod starts, not here (the checking machine
 * may not have it). */
static int d_run_as_user(struct parser *p, const struct directive *d, char *v)
{
	if (cp_has_space(v) || strlen(v) > 64)
		return cp_bad_value(p, "user name", d, v);
	return cp_set_string(p, &p->cfg->run_as_user, v);
}

static int d_log_file(struct parser *p, const struct directive *d, char *v)
{
	(void)d;
	return cp_set_string(p, &p->cfg->log_file, v);
}

static int d_spool(struct parser *p, const struct directive *d, char *v)
{
	(void)d;
	return cp_set_string(p, &p->cfg->spool_dir, v);
}

/* PowerMTA's certificate file holds the key too. */
static int d_server_tls_certificate(struct parser *p, const struct directive *d, char *v)
{
	(void)d;
	if (cp_set_string(p, &p->cfg->tls_certificate, v) < 0)
		return -1;
	return p->cfg->tls_private_key ? 0 : cp_set_string(p, &p->cfg->tls_private_key, v);
}

/* `http-mgmt-port N`: the HTTP API on every IPv4 address, port N (who may
 * use it: http-access). */
static int d_http_mgmt_port(struct parser *p, const struct directive *d, char *v)
{
	char addr[32];
	uint64_t port;

	if (config_parse_uint(v, 1, 65535, &port) < 0)
		return cp_bad_value(p, "port", d, v);
	snprintf(addr, sizeof(addr), "0.0.0.0:%u", (unsigned)port);
	return cp_add_listener(p, d, addr, &p->cfg->http_listeners, &p->cfg->n_http_listeners,
			       &p->file_http_listeners);
}

/* `name-server IP`: repeatable; the resolver asks them in order. */
static int d_name_server(struct parser *p, const struct directive *d, char *v)
{
	struct config *c = p->cfg;
	struct config_addr a;
	size_t i;

	if (v[0] == '*' || config_parse_addr(v, 53, &a) < 0)
		return cp_bad_value(p, "address", d, v);
	for (i = 0; i < c->n_name_servers; i++)
		if (!strcmp(c->name_servers[i].text, a.text))
			return 0; /* the same server twice is one server */
	if (cp_grow(p, (void **)&c->name_servers, &c->n_name_servers, sizeof(a), &i) < 0)
		return -1;
	c->name_servers[i] = a;
	if (i == 0) {
		c->dns_server = a;
		c->has_dns_server = true;
	}
	return 0;
}

/* `domain-macro NAME v1, v2, ...` */
static int d_domain_macro(struct parser *p, const struct directive *d, char *v)
{
	char *vals = v + strcspn(v, CP_WS), sb[CP_SHOW_BUF];
	struct cp_macro *m, *grown;

	if (*vals) {
		*vals++ = '\0';
		vals = cp_trim(vals);
	}
	if (!*vals)
		return cp_err(p, "%s wants a name and values: \"domain-macro tld com, net\"", d->name);
	for (size_t i = 0; i < p->n_macros; i++) {
		if (strcasecmp(p->macros[i].name, v))
			continue;
		if (p->macros[i].line == p->line) /* read by the first pass (config_parse.c) */
			return 0;
		return cp_err(p, "duplicate %s %s", d->name, cp_show(sb, v));
	}
	if (!(grown = realloc(p->macros, (p->n_macros + 1) * sizeof(*grown))))
		return cp_oom(p);
	p->macros = grown;
	m = &grown[p->n_macros];
	*m = (struct cp_macro){.name = strdup(v), .line = p->line};
	if (!m->name)
		return cp_oom(p);
	p->n_macros++;
	for (char *next, *e = vals; e; e = next) {
		char **vg;

		next = strchr(e, ',');
		if (next)
			*next++ = '\0';
		e = cp_trim(e);
		if (!*e || cp_has_space(e) || strchr(e, '$')) { /* a value naming a macro would never end */
			int rc = cp_err(p, "invalid value \"%s\" in %s %s", cp_show(sb, e), d->name, m->name);

			/* no half macro: the first pass keeps no messages, so the
			 * second must find the line unread and report it */
			for (size_t i = 0; i < m->n; i++)
				free(m->vals[i]);
			free(m->vals);
			free(m->name);
			p->n_macros--;
			return rc;
		}
		if (!(vg = realloc(m->vals, (m->n + 1) * sizeof(*vg))))
			return cp_oom(p);
		m->vals = vg;
		if (!(vg[m->n] = strdup(e)))
			return cp_oom(p);
		m->n++;
	}
	return 0;
}

/* The values of the first `$NAME` in name, each put in its place: one
 * string per value (appended to *out); the macro must exist. Messages
 * name orig, the name as written. */
static int expand_first(struct parser *p, const char *orig, const char *name, char ***out, size_t *n,
			size_t *cap)
{
	const char *dollar = strchr(name, '$');
	const struct cp_macro *m = NULL;
	size_t len;
	char sb[CP_SHOW_BUF];

	len = strspn(dollar + 1, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-");
	for (size_t i = 0; i < p->n_macros; i++)
		if (strlen(p->macros[i].name) == len && !strncasecmp(p->macros[i].name, dollar + 1, len))
			m = &p->macros[i];
	if (!m)
		return cp_err(p, "no domain-macro for \"%s\" (define it with domain-macro NAME values)",
			      cp_show(sb, orig));
	if (*n + m->n > CP_MACRO_MAX_NAMES)
		return cp_err(p, "\"%s\" names more than %d domains: split it into smaller domain-macros",
			      cp_show(sb, orig), CP_MACRO_MAX_NAMES);
	for (size_t i = 0; i < m->n; i++) {
		size_t need = strlen(name) + strlen(m->vals[i]) + 1;
		char *s;

		if (*n == *cap) {
			size_t nc = *cap ? *cap * 2 : 8;
			char **g = realloc(*out, nc * sizeof(*g));

			if (!g)
				return cp_oom(p);
			*out = g;
			*cap = nc;
		}
		if (!(s = malloc(need)))
			return cp_oom(p);
		snprintf(s, need, "%.*s%s%s", (int)(dollar - name), name, m->vals[i], dollar + 1 + len);
		(*out)[(*n)++] = s;
	}
	return 0;
}

void cp_macro_names_free(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* PowerMTA's macros in a name: every `$NAME` stands for each of its values,
 * so `$isp.$tld` is every isp with every tld (User's Guide 3.3.1.43.1). */
int cp_macro_expand(struct parser *p, const char *name, char ***out, size_t *n)
{
	char **cur = NULL, **next = NULL;
	size_t ncur = 0, nnext = 0, cap = 0;
	int rc = 0;

	*out = NULL;
	*n = 0;
	if (!(cur = malloc(sizeof(char *))) || !(cur[0] = strdup(name))) {
		free(cur);
		return cp_oom(p);
	}
	ncur = 1;
	for (int round = 0; rc == 0; round++) {
		bool more = false;

		for (size_t i = 0; i < ncur && !more; i++)
			more = strchr(cur[i], '$') != NULL;
		if (!more)
			break;
		if (round == 16) { /* each round takes one `$`: a name has no more */
			char sb[CP_SHOW_BUF];

			rc = cp_err(p, "\"%s\" names more than 16 macros", cp_show(sb, name));
			break;
		}
		next = NULL, nnext = 0, cap = 0;
		for (size_t i = 0; i < ncur && rc == 0; i++) {
			if (!strchr(cur[i], '$')) {
				char **g = nnext == cap ? realloc(next, (cap = cap ? cap * 2 : 8) * sizeof(*g)) : next;

				if (!g) {
					rc = cp_oom(p);
					break;
				}
				next = g;
				next[nnext++] = cur[i];
				cur[i] = NULL;
				continue;
			}
			rc = expand_first(p, name, cur[i], &next, &nnext, &cap);
		}
		cp_macro_names_free(cur, ncur);
		cur = next;
		ncur = nnext;
	}
	if (rc < 0) {
		cp_macro_names_free(cur, ncur);
		return rc;
	}
	*out = cur;
	*n = ncur;
	return 0;
}

/* ---- <acct-file PATH> -------------------------------------------------------- */

static struct config_acct_file *cur_acct(struct parser *p)
{
	return &p->cfg->acct_files[p->cur];
}

static const char *const acct_types[CONFIG_ACCT_N_TYPES] = {"d", "b", "t", "tq", "r", "f", "rb", "rs"};

/* the guide's long names too (`record-fields delivery ...`) */
static const char *const acct_type_names[CONFIG_ACCT_N_TYPES] = {
	"delivery", "bounce", "transient", "transient-queue", "receipt", "feedback-loop", "remote-bounce",
	"remote-status"};

static int acct_type(const char *s)
{
	for (int i = 0; i < CONFIG_ACCT_N_TYPES; i++)
		if (!strcasecmp(s, acct_types[i]) || !strcasecmp(s, acct_type_names[i]))
			return i;
	return -1;
}

int cp_open_acct_file(struct parser *p, char *arg)
{
	struct config *c = p->cfg;
	struct config_acct_file *a;
	bool pipe = *arg == '|';
	char *path = pipe ? cp_trim(arg + 1) : arg;

	if (!*path)
		return cp_err(p, "missing program for <acct-file |PROGRAM>");
	if (!pipe && cp_has_space(path))
		return cp_err(p, "too many arguments for <acct-file>: a path has no spaces");
	for (size_t i = 0; i < c->n_acct_files; i++)
		if (c->acct_files[i].pipe == pipe && !strcmp(c->acct_files[i].path, path))
			return cp_err(p, "duplicate <acct-file %s> (first at %s)", arg, cp_at(p, c->acct_files[i].line, (char[CP_AT_BUF]){0}));
	if (cp_grow(p, (void **)&c->acct_files, &c->n_acct_files, sizeof(*c->acct_files), &p->cur) < 0)
		return -1;
	a = cur_acct(p);
	a->pipe = pipe;
	a->line = p->line;
	a->records = CONFIG_ACCT_D | CONFIG_ACCT_B;
	return cp_set_string(p, &a->path, path);
}

/* `records d,b,t`: the guide's list is comma-separated (`d, b` too);
 * spaces alone separate as well, and `all` (or `*`) is every type. An empty
 * entry (`d,,b`, `d,`) and every unknown type are named in one message. */
static int d_records(struct parser *p, const struct directive *d, char *v)
{
	unsigned mask = 0;
	char sb[CP_SHOW_BUF], bad[CP_SHOW_BUF] = "";
	size_t n_bad = 0;

	for (char *next, *e = v; e; e = next) {
		char *save = NULL;

		if ((next = strchr(e, ',')))
			*next++ = '\0';
		e = cp_trim(e);
		if (!*e)
			return cp_err(p, "empty record type in the list for %s (e.g. \"records d,b,t\")", d->name);
		for (char *w = strtok_r(e, CP_WS, &save); w; w = strtok_r(NULL, CP_WS, &save)) {
			int t;

			if (!strcasecmp(w, "all") || !strcmp(w, "*")) {
				mask |= (1u << CONFIG_ACCT_N_TYPES) - 1;
				continue;
			}
			if ((t = acct_type(w)) < 0) {
				size_t at = strlen(bad);

				snprintf(bad + at, sizeof(bad) - at, "%s\"%s\"", n_bad++ ? ", " : "", cp_show(sb, w));
				continue;
			}
			mask |= 1u << t;
		}
	}
	if (n_bad)
		return cp_err(p, "unknown record type%s %s for %s (expected d, b, t, tq, r, f, rb, rs or all)",
			      n_bad > 1 ? "s" : "", bad, d->name);
	if (!mask)
		return cp_bad_value(p, "list of record types (d, b, t, tq, r, f, rb, rs)", d, v);
	cur_acct(p)->records = mask;
	return 0;
}

/* `record-fields TYPE LIST`: a known type and a comma-separated list (blanks
 * around the commas are dropped, as PowerMTA's own samples have them). A field
 * of PowerMTA's that Salvo has no value for is written as an empty column, so
 * the columns stay where a script reading them by position expects them; it
 * is warned about once. */
static int d_record_fields(struct parser *p, const struct directive *d, char *v)
{
	char *list = v + strcspn(v, CP_WS), sb[CP_SHOW_BUF], *kept;
	size_t n = 0;
	int t, rc = 0;

	if (*list) {
		*list++ = '\0';
		list = cp_trim(list);
	}
	if (!*list)
		return cp_err(p, "%s wants a record type and fields: \"record-fields d *,!orcpt\", not \"%s\"",
			      d->name, cp_show(sb, v));
	if ((t = acct_type(v)) < 0)
		return cp_err(p, "unknown record type \"%s\" for %s (expected d, b, t, tq, r, f, rb, rs)",
			      cp_show(sb, v), d->name);
	if (!(kept = calloc(1, strlen(list) + 1)))
		return cp_oom(p);
	for (char *next, *f = list; f && rc == 0; f = next) {
		const char *name;
		const char *canon;
		bool known, extra;

		if ((next = strchr(f, ',')))
			*next++ = '\0';
		f = cp_trim(f);
		name = f + (*f == '!');
		if (!*name) {
			rc = cp_err(p, "empty field in the list for %s (\"!\" and \",\" want a field name on their right)",
				    d->name);
			break;
		}
		if (cp_has_space(name)) {
			rc = cp_err(p, "invalid field \"%s\" for %s (fields are separated by commas)", cp_show(sb, name),
				    d->name);
			break;
		}
		/* any header: engine/acct_headers.c takes it from the message */
		canon = strcmp(name, "*") ? acct_csv_field_name(name) : NULL;
		extra = canon && acct_csv_field_is_extra(canon);
		known = !strcmp(name, "*") || (canon && !extra);
		if (extra && *f != '!') {
			char what[96];

			/* once per field and file */
			snprintf(what, sizeof(what), "record-fields field %s", name);
			cp_warn_pending(p, &(const struct directive){what, CTX_ACCT_FILE, NULL,
				"Salvo's accounting has no value for it: the column is written empty"});
		}
		if (!known && !extra) {
			rc = cp_err(p, "unknown field \"%s\" for %s (e.g. %s, %s, %s, header_NAME)", cp_show(sb, name),
				    d->name, acct_csv_fields[1], acct_csv_fields[4], acct_csv_fields[10]);
			break;
		}
		n += (size_t)sprintf(kept + n, "%s%s", n ? "," : "", f);
	}
	if (rc == 0)
		rc = cp_set_string(p, &cur_acct(p)->record_fields[t], kept);
	free(kept);
	return rc;
}

static int d_move_interval(struct parser *p, const struct directive *d, char *v)
{
	if (config_parse_duration(v, &cur_acct(p)->move_interval_ms) < 0 || !cur_acct(p)->move_interval_ms)
		return cp_bad_value(p, "duration", d, v);
	return 0;
}

static int d_move_to(struct parser *p, const struct directive *d, char *v)
{
	(void)d;
	return cp_set_string(p, &cur_acct(p)->move_to, v);
}

static int d_acct_max_size(struct parser *p, const struct directive *d, char *v)
{
	if (config_parse_size(v, &cur_acct(p)->max_size) < 0 || !cur_acct(p)->max_size)
		return cp_bad_value(p, "size", d, v);
	return 0;
}

static int d_delete_after(struct parser *p, const struct directive *d, char *v)
{
	if (!strcasecmp(v, "never")) {
		cur_acct(p)->delete_after_ms = 0;
		return 0;
	}
	if (config_parse_duration(v, &cur_acct(p)->delete_after_ms) < 0 || !cur_acct(p)->delete_after_ms)
		return cp_bad_value(p, "duration or \"never\"", d, v);
	return 0;
}

/* ---- other blocks ------------------------------------------------------------- */

int cp_open_spool(struct parser *p, char *arg)
{
	return cp_set_string(p, &p->cfg->spool_dir, arg);
}

static int open_named(struct parser *p, const char *what, const char *arg)
{
	char sb[CP_SHOW_BUF];

	if (arg && (!*arg || strlen(arg) > 64 || cp_has_space(arg)))
		return cp_err(p, "invalid name \"%s\" for <%s>", cp_show(sb, arg), what);
	return 0;
}

int cp_open_processor(struct parser *p, char *arg)
{
	(void)p, (void)arg;
	return 0;
}

int cp_open_rewrite_list(struct parser *p, char *arg)
{
	return open_named(p, "rewrite-list", arg);
}

/* `mail-from PATTERN REPLACEMENT` in <rewrite-list> */
static int p_rewrite(struct parser *p, const struct directive *d, char *v)
{
	char *r = v + strcspn(v, CP_WS);

	if (!*r || !*cp_trim(r + 1) || cp_has_space(cp_trim(r + 1)))
		return cp_err(p, "%s wants a pattern and a replacement: \"mail-from *@a.com *@b.com\"", d->name);
	return 0;
}

static int p_email(struct parser *p, const struct directive *d, char *v)
{
	return cp_has_space(v) || !strchr(v, '@') ? cp_bad_value(p, "address", d, v) : 0;
}

/* log-connections, log-commands, log-data, log-tls in <source> */
static int d_source_log(struct parser *p, const struct directive *d, char *v)
{
	struct config_source *s = &p->cfg->sources[p->cur];
	unsigned bit = !strcasecmp(d->name, "log-connections") ? CONFIG_LOG_CONNECTIONS :
		       !strcasecmp(d->name, "log-commands") ? CONFIG_LOG_COMMANDS :
		       !strcasecmp(d->name, "log-tls")      ? CONFIG_LOG_TLS : CONFIG_LOG_DATA;
	bool b;

	if (config_parse_bool(v, &b) < 0)
		return cp_bad_value(p, "boolean", d, v);
	s->log_flags = b ? s->log_flags | bit : s->log_flags & ~bit;
	return 0;
}

#define ENGINE_LATER "parsed; the engine does not act on it yet"
#define INTAKE_LATER "parsed; SMTP intake does not act on it yet"
#define EGRESS_LATER "parsed (see --show); outbound delivery does not act on it yet"
/* PowerMTA directives Salvo has no engine for: the warning says so */
#define NOT_APPLIED "not a Salvo feature, so it has no effect"
#define HTTP_NOT_APPLIED "the HTTP listener has no such setting, so it has no effect"
#define INTAKE_NOT_APPLIED "SMTP intake has no such setting, so it has no effect"
#define INBOUND_NOT_APPLIED "Salvo does not check inbound mail (SPF, DKIM, iprev), so it has no effect"
#define EGRESS_NOT_APPLIED "outbound delivery has no such setting, so it has no effect"
#define DKIM_NOT_APPLIED "Salvo signs with relaxed/relaxed and a fixed header list, so it has no effect"
#define DSN_NOT_APPLIED "Salvo's DSN mail has no such setting, so it has no effect"
#define NOTIFY_NOT_APPLIED "Salvo sends no notification mail (watch /metrics or salvoctl), so it has no effect"
#define ACCT_NOT_APPLIED "Salvo's <acct-file> has no such setting, so it has no effect"
#define REPORTS_LATER "parsed; reports are taken at bounce-domain, these lists are not consulted yet"
#define PROC_NOT_APPLIED "Salvo consumes the processor's mail: reports of its own mail are applied, the rest " \
	"is counted (reports_unmatched) and dropped, nothing is delivered or forwarded"

static const struct directive directives[] = {
	/* top level */
	{"run-as-root", CTX_TOP, d_run_as_root, NULL},
	{"run-as-user", CTX_TOP, d_run_as_user, NULL},
	{"log-file", CTX_TOP, d_log_file, NULL},
	{"spool", CTX_TOP, d_spool, NULL},
	{"http-mgmt-port", CTX_TOP, d_http_mgmt_port, NULL},
	{"name-server", CTX_TOP, d_name_server, NULL},
	{"domain-macro", CTX_TOP, d_domain_macro, NULL},
	{"smtp-server-tls-certificate", CTX_TOP, d_server_tls_certificate, NULL},
	{"smtp-server-tls-allow-tlsv1.1", CTX_TOP, v_tls11, NULL},
	{"smtp-server-tls-allow-tlsv1.2", CTX_TOP, v_tls12, NULL},
	{"smtp-server-tls-allow-tlsv1.3", CTX_TOP, v_tls12, NULL},
	{"sync-msg-create", CTX_TOP, noop_bool, NULL},
	{"sync-msg-update", CTX_TOP, noop_bool, NULL},
	{"relay-domain", CTX_TOP, p_relay_domain, NULL},
	{"smtp-port", CTX_TOP, d_smtp_port, NULL},
	{"smtp-server-tls-allow-sslv3", CTX_TOP, v_old_tls, NULL},
	{"http-tls-allow-sslv3", CTX_TOP, v_old_tls, NULL},
	{"http-tls-allow-tlsv1", CTX_TOP, v_old_tls, NULL},
	{"http-tls-allow-tlsv1.1", CTX_TOP, v_old_tls, NULL},
	{"http-tls-allow-tlsv1.2", CTX_TOP, v_tls12, NULL},
	{"http-tls-allow-tlsv1.3", CTX_TOP, v_tls12, NULL},
	/* PowerMTA's, with no counterpart in Salvo (README, "Migrating from PowerMTA"):
	 * accepted, and --check-config says each is not applied */
	{"pickup", CTX_TOP, p_text, NOT_APPLIED "; files put in its directory are not picked up: inject by SMTP or "
		"POST /api/inject/v1"},
	{"always-allow-relaying", CTX_TOP, v_global_relaying, NULL},
	{"pickup-retry-interval", CTX_TOP, p_duration, NOT_APPLIED "; see pickup"},
	{"pickup-remove-dot", CTX_TOP, p_bool, NOT_APPLIED "; see pickup"},
	{"no-http-mgmt-source", CTX_TOP, p_text, HTTP_NOT_APPLIED},
	{"total-max-smtp-out", CTX_TOP, p_text, NOT_APPLIED "; each queue's max-smtp-out still limits"},
	{"alias", CTX_TOP, p_text, NOT_APPLIED "; Salvo does not deliver locally"},
	{"custom-dsn-from-header", CTX_TOP, p_text, DSN_NOT_APPLIED},
	{"dsn-failed-body-template-from", CTX_TOP, p_text, DSN_NOT_APPLIED},
	{"dsn-failed-from-template", CTX_TOP, p_text, DSN_NOT_APPLIED},
	{"dsn-failed-subject-template", CTX_TOP, p_text, DSN_NOT_APPLIED},
	{"domain-suffix", CTX_TOP, p_text, NOT_APPLIED},
	{"edns-udp-length", CTX_TOP, p_text, NOT_APPLIED "; c-ares chooses"},
	{"host-id", CTX_TOP, p_text, NOT_APPLIED},
	{"http-csrf-protection", CTX_TOP, p_bool, HTTP_NOT_APPLIED},
	{"http-default-max-items", CTX_TOP, p_text, HTTP_NOT_APPLIED},
	{"http-default-sort-order", CTX_TOP, p_text, HTTP_NOT_APPLIED},
	{"http-log-data", CTX_TOP, p_bool, HTTP_NOT_APPLIED},
	{"http-log-requests", CTX_TOP, p_bool, HTTP_NOT_APPLIED},
	{"http-log-tls", CTX_TOP, p_bool, HTTP_NOT_APPLIED},
	{"http-mgmt-source", CTX_TOP, p_text, HTTP_NOT_APPLIED},
	{"http-redirect-to-https", CTX_TOP, p_bool, HTTP_NOT_APPLIED "; use http-listener ... tls=yes"},
	{"http-strict-transport-security-max-age", CTX_TOP, p_text, HTTP_NOT_APPLIED},
	{"http-tls-ca-file", CTX_TOP, p_text, HTTP_NOT_APPLIED},
	{"http-tls-ciphers", CTX_TOP, p_text, HTTP_NOT_APPLIED "; tls-ciphers sets Salvo's"},
	{"http-tls-dh-key-length", CTX_TOP, p_text, HTTP_NOT_APPLIED},
	{"http-tls-tlsv1.3-ciphersuites", CTX_TOP, p_text, HTTP_NOT_APPLIED "; tls-ciphersuites sets Salvo's"},
	{"include-headers-from", CTX_TOP, p_text, NOT_APPLIED "; the headers are not added"},
	{"invalid-virtual-mta-fallback", CTX_TOP, p_text, NOT_APPLIED},
	{"ip-connection-limit", CTX_TOP, p_text, NOT_APPLIED "; each queue's max-smtp-out still limits"},
	{"mx-connection-limit", CTX_TOP, p_text, NOT_APPLIED "; each queue's max-smtp-out still limits"},
	{"log-auto-rotation", CTX_TOP, p_bool, NOT_APPLIED "; rotate log-file with logrotate"},
	{"log-file-world-readable", CTX_TOP, p_bool, NOT_APPLIED},
	{"log-rotate", CTX_TOP, p_text, NOT_APPLIED "; rotate log-file with logrotate"},
	{"mailmerge-expands-undefined-variables", CTX_TOP, p_bool, NOT_APPLIED "; Salvo has no mail merge"},
	{"max-memory-usage-percent", CTX_TOP, p_text, NOT_APPLIED},
	{"pmc-acct-min-free-space", CTX_TOP, p_text, NOT_APPLIED},
	{"relay-address", CTX_TOP, p_text, REPORTS_LATER},
	{"relay-debug", CTX_TOP, p_bool, NOT_APPLIED},
	{"smtp-await-slot", CTX_TOP, p_text, NOT_APPLIED},
	{"smtp-server-tls-ca-file", CTX_TOP, p_text, NOT_APPLIED "; clients are not asked for certificates"},
	{"smtp-server-tls-dh-key-length", CTX_TOP, p_text, NOT_APPLIED "; OpenSSL chooses"},
	{"spool-delete-corrupted", CTX_TOP, p_bool, NOT_APPLIED},
	{"spool-max-recipients", CTX_TOP, p_text, NOT_APPLIED},
	{"spool-min-free-space", CTX_TOP, p_text, NOT_APPLIED "; a full disk makes injection answer 452/503"},
	{"thread-min-priority", CTX_TOP, p_text, NOT_APPLIED "; see worker-threads"},
	{"thread-reuse", CTX_TOP, p_text, NOT_APPLIED "; see worker-threads"},
	{"thread-max-priority", CTX_TOP, p_text, NOT_APPLIED "; see worker-threads"},
	{"track-time-first-attempt", CTX_TOP, p_bool, NOT_APPLIED},
	{"volume-audit-api-key", CTX_TOP, p_text, NOT_APPLIED},
	/* <source> */
	{"allow-mailmerge", CTX_SOURCE, v_allow_mailmerge, NULL},
	{"log-connections", CTX_SOURCE, d_source_log, NULL},
	{"log-commands", CTX_SOURCE, d_source_log, NULL},
	{"log-data", CTX_SOURCE, d_source_log, NULL},
	{"log-tls", CTX_SOURCE, d_source_log, NULL},
	{"rewrite-list", CTX_SOURCE, p_word, INTAKE_LATER},
	{"accept-invalid-recipients", CTX_SOURCE, p_bool, INTAKE_NOT_APPLIED},
	{"add-date-header", CTX_SOURCE, p_text, INTAKE_NOT_APPLIED},
	{"add-x-virtual-mta-header", CTX_SOURCE, p_bool, INTAKE_NOT_APPLIED},
	{"allow-auth", CTX_SOURCE, p_bool, INTAKE_NOT_APPLIED},
	{"allow-chunking", CTX_SOURCE, p_bool, INTAKE_NOT_APPLIED "; CHUNKING is always offered"},
	{"allow-empty-x-virtual-mta", CTX_SOURCE, p_bool, INTAKE_NOT_APPLIED},
	{"allow-smtputf8", CTX_SOURCE, p_bool, INTAKE_NOT_APPLIED "; SMTPUTF8 is always offered"},
	{"always-allow-api-submission", CTX_SOURCE, p_bool, INTAKE_NOT_APPLIED "; the HTTP API's access is "
		"http-api-token and http-access"},
	{"auto-qualify-domain", CTX_SOURCE, p_text, INTAKE_NOT_APPLIED},
	{"bcc", CTX_SOURCE, p_text, INTAKE_NOT_APPLIED "; no copy is sent"},
	{"broken-auth-clients", CTX_SOURCE, p_bool, INTAKE_NOT_APPLIED},
	{"check-dkim-inbound", CTX_SOURCE, p_bool, INBOUND_NOT_APPLIED},
	{"check-iprev-inbound", CTX_SOURCE, p_bool, INBOUND_NOT_APPLIED},
	{"check-spf-inbound", CTX_SOURCE, p_bool, INBOUND_NOT_APPLIED},
	/* older releases' inbound Sender ID / SPF checks (not in the 5.0 User's Guide) */
	{"check-mfrom-inbound", CTX_SOURCE, p_bool, INBOUND_NOT_APPLIED},
	{"check-pra-inbound", CTX_SOURCE, p_bool, INBOUND_NOT_APPLIED},
	{"check-spf-inbound-best-guess", CTX_SOURCE, p_text, INBOUND_NOT_APPLIED},
	{"check-spf-inbound-max-void-lookups", CTX_SOURCE, p_text, INBOUND_NOT_APPLIED},
	{"reject-iprev-check-fail", CTX_SOURCE, p_bool, INBOUND_NOT_APPLIED},
	{"reject-iprev-check-permerror", CTX_SOURCE, p_bool, INBOUND_NOT_APPLIED},
	{"reject-iprev-check-temperror", CTX_SOURCE, p_bool, INBOUND_NOT_APPLIED},
	{"reject-spf-check-fail", CTX_SOURCE, p_bool, INBOUND_NOT_APPLIED},
	{"reject-spf-check-permerror", CTX_SOURCE, p_bool, INBOUND_NOT_APPLIED},
	{"reject-spf-check-temperror", CTX_SOURCE, p_bool, INBOUND_NOT_APPLIED},
	{"trace-dkim-check", CTX_SOURCE, p_bool, INBOUND_NOT_APPLIED},
	{"trace-iprev-check", CTX_SOURCE, p_bool, INBOUND_NOT_APPLIED},
	{"trace-spf-check", CTX_SOURCE, p_bool, INBOUND_NOT_APPLIED},
	{"date-header-time", CTX_SOURCE, p_text, INTAKE_NOT_APPLIED},
	{"disconnect-on-transient-error", CTX_SOURCE, p_bool, INTAKE_NOT_APPLIED},
	{"dsn-return-default", CTX_SOURCE, p_text, DSN_NOT_APPLIED},
	{"jobid-prefix", CTX_SOURCE, p_text, INTAKE_NOT_APPLIED},
	{"max-message-hops", CTX_SOURCE, p_text, INTAKE_NOT_APPLIED},
	{"process-x-dkim-key", CTX_SOURCE, p_bool, INTAKE_NOT_APPLIED},
	{"process-x-dkim-options", CTX_SOURCE, p_bool, INTAKE_NOT_APPLIED},
	{"process-x-schedule", CTX_SOURCE, p_bool, INTAKE_NOT_APPLIED},
	{"reject-invalid-virtual-mta", CTX_SOURCE, p_bool, INTAKE_NOT_APPLIED},
	{"require-starttls-before-auth", CTX_SOURCE, p_bool, INTAKE_NOT_APPLIED "; see allow-unencrypted-plain-auth"},
	{"retain-x-dkim-key", CTX_SOURCE, p_bool, INTAKE_NOT_APPLIED},
	{"retain-x-dkim-options", CTX_SOURCE, p_bool, INTAKE_NOT_APPLIED},
	{"retain-x-schedule", CTX_SOURCE, p_bool, INTAKE_NOT_APPLIED},
	{"source-group", CTX_SOURCE, p_text, INTAKE_NOT_APPLIED},
	{"suppress-local-dsn", CTX_SOURCE, p_bool, DSN_NOT_APPLIED},
	{"too-many-rcpts-fails-message", CTX_SOURCE, p_bool, INTAKE_NOT_APPLIED},
	/* <domain> */
	{"type", CTX_DOMAIN, v_type, NULL},
	{"dk-sign", CTX_DOMAIN, v_dk_sign, NULL},
	{"max-cold-virtual-mta-msg", CTX_DOMAIN, p_rate, NULL}, /* read by engine/egress_policy.c */
	{"reroute-to-virtual-mta", CTX_DOMAIN, p_word, NULL}, /* checked in cp_vmtas_finish, read by egress */
	{"log-tls", CTX_DOMAIN, p_bool, NULL}, /* read by engine/trace.c */
	{"use-dane", CTX_DOMAIN, p_bool, EGRESS_LATER},
	{"add-x-msys-api-header", CTX_DOMAIN, p_bool, EGRESS_NOT_APPLIED},
	{"allow-cancel-during-transfer", CTX_DOMAIN, p_bool, EGRESS_NOT_APPLIED},
	{"allow-priority-interruption", CTX_DOMAIN, p_bool, EGRESS_NOT_APPLIED},
	{"allow-priority-interruption-during-transfer", CTX_DOMAIN, p_bool, EGRESS_NOT_APPLIED},
	{"assume-delivery-upon-data-termination-timeout", CTX_DOMAIN, p_bool, EGRESS_NOT_APPLIED},
	{"backoff-notify", CTX_DOMAIN, p_text, NOTIFY_NOT_APPLIED},
	{"backoff-reroute-to-virtual-mta", CTX_DOMAIN, p_word, EGRESS_NOT_APPLIED},
	{"backoff-upon-all-sources-disabled", CTX_DOMAIN, p_bool, EGRESS_NOT_APPLIED},
	{"bcc-upon-delivery", CTX_DOMAIN, p_text, EGRESS_NOT_APPLIED "; no copy is sent"},
	{"bounce-upon-5xx-greeting", CTX_DOMAIN, p_bool, EGRESS_NOT_APPLIED},
	{"bounce-upon-pix-transfer-failure", CTX_DOMAIN, p_bool, EGRESS_NOT_APPLIED},
	{"bounce-upon-transfer-failure", CTX_DOMAIN, p_bool, EGRESS_NOT_APPLIED},
	{"check-spf-outbound", CTX_DOMAIN, p_bool, EGRESS_NOT_APPLIED},
	/* in deployed PowerMTA configs, not in the 5.0 User's Guide (older releases' outbound
	 * Sender ID / SPF checks, a Gmail header token): accepted with the warning */
	{"check-mfrom-outbound", CTX_DOMAIN, p_bool, EGRESS_NOT_APPLIED},
	{"log-messages", CTX_DOMAIN, p_bool, EGRESS_NOT_APPLIED "; log-commands and log-data log what was sent"},
	{"check-pra-outbound", CTX_DOMAIN, p_bool, EGRESS_NOT_APPLIED},
	{"add-gm-token", CTX_DOMAIN, p_bool, EGRESS_NOT_APPLIED},
	{"default-smtp-port", CTX_DOMAIN, p_text, EGRESS_NOT_APPLIED "; use route [HOST]:PORT"},
	{"deliver-local-dsn", CTX_DOMAIN, p_bool, DSN_NOT_APPLIED},
	{"delivery-priority", CTX_DOMAIN, p_text, EGRESS_NOT_APPLIED},
	{"disable-acct-records", CTX_DOMAIN, p_text, EGRESS_NOT_APPLIED "; every record is written"},
	{"disabled-source-ip-notify", CTX_DOMAIN, p_text, NOTIFY_NOT_APPLIED},
	{"discard-as-bounce", CTX_DOMAIN, p_bool, EGRESS_NOT_APPLIED},
	{"dkim-add-body-limit", CTX_DOMAIN, p_bool, DKIM_NOT_APPLIED},
	{"dkim-add-timestamp", CTX_DOMAIN, p_bool, DKIM_NOT_APPLIED},
	{"dkim-algorithm", CTX_DOMAIN, p_text, DKIM_NOT_APPLIED},
	{"dkim-body-canon", CTX_DOMAIN, p_text, DKIM_NOT_APPLIED},
	{"dkim-disallow-adding-headers", CTX_DOMAIN, p_text, DKIM_NOT_APPLIED},
	{"dkim-expire-after", CTX_DOMAIN, p_text, DKIM_NOT_APPLIED},
	{"dkim-headers", CTX_DOMAIN, p_text, DKIM_NOT_APPLIED},
	{"dkim-headers-canon", CTX_DOMAIN, p_text, DKIM_NOT_APPLIED},
	{"dkim-identity", CTX_DOMAIN, p_text, DKIM_NOT_APPLIED},
	{"dkim-identity-fallback", CTX_DOMAIN, p_text, DKIM_NOT_APPLIED},
	{"dkim-query-method", CTX_DOMAIN, p_text, DKIM_NOT_APPLIED},
	{"dsn-format", CTX_DOMAIN, p_text, DSN_NOT_APPLIED},
	{"ignore-chunking", CTX_DOMAIN, p_bool, EGRESS_NOT_APPLIED},
	{"ignore-dsn", CTX_DOMAIN, p_bool, EGRESS_NOT_APPLIED},
	{"ignore-pipelining", CTX_DOMAIN, p_bool, EGRESS_NOT_APPLIED},
	{"log-disabled-ips", CTX_DOMAIN, p_bool, EGRESS_NOT_APPLIED},
	{"log-resolution", CTX_DOMAIN, p_bool, EGRESS_NOT_APPLIED},
	{"log-transfer-failures", CTX_DOMAIN, p_bool, EGRESS_NOT_APPLIED},
	{"macro-variables-preserve-case", CTX_DOMAIN, p_bool, EGRESS_NOT_APPLIED},
	{"max-events-recorded", CTX_DOMAIN, p_text, EGRESS_NOT_APPLIED},
	{"notify-of-delay-every", CTX_DOMAIN, p_text, DSN_NOT_APPLIED},
	{"pix-bug-workaround", CTX_DOMAIN, p_bool, EGRESS_NOT_APPLIED},
	{"reenable-source-ip-after", CTX_DOMAIN, p_duration, EGRESS_NOT_APPLIED "; see reply ... reenable-after="},
	{"replace-smtp-421-service-response", CTX_DOMAIN, p_bool, EGRESS_NOT_APPLIED},
	{"retry-after-dns-error", CTX_DOMAIN, p_text, EGRESS_NOT_APPLIED "; retry-after applies"},
	{"retry-upon-new-mail", CTX_DOMAIN, p_bool, EGRESS_NOT_APPLIED},
	{"reuse-ssl-session", CTX_DOMAIN, p_bool, EGRESS_NOT_APPLIED},
	{"smtp-421-means-mx-unavailable", CTX_DOMAIN, p_bool, EGRESS_NOT_APPLIED},
	{"smtp-553-means-invalid-mailbox", CTX_DOMAIN, p_bool, EGRESS_NOT_APPLIED},
	{"smtp-client-certificate", CTX_DOMAIN, p_text, EGRESS_NOT_APPLIED "; no client certificate is offered"},
	{"smtp-out-rampup-interval", CTX_DOMAIN, p_text, EGRESS_NOT_APPLIED},
	{"smtp-tls-allow-sslv3", CTX_DOMAIN, v_old_tls, NULL},
	{"smtp-tls-allow-tlsv1", CTX_DOMAIN, v_old_tls, NULL},
	{"smtp-tls-allow-tlsv1.1", CTX_DOMAIN, v_old_tls, NULL},
	{"smtp-tls-allow-tlsv1.2", CTX_DOMAIN, v_tls12, NULL},
	{"smtp-tls-allow-tlsv1.3", CTX_DOMAIN, v_tls12, NULL},
	{"smtp-tls-ca-file", CTX_DOMAIN, p_text, EGRESS_NOT_APPLIED "; the system's CA store is used"},
	{"smtp-tls-ciphers", CTX_DOMAIN, p_text, EGRESS_NOT_APPLIED},
	{"smtp-tls-tlsv1.3-ciphersuites", CTX_DOMAIN, p_text, EGRESS_NOT_APPLIED},
	{"track-recipient-events", CTX_DOMAIN, p_bool, EGRESS_NOT_APPLIED},
	{"use-mta-sts", CTX_DOMAIN, p_bool, EGRESS_NOT_APPLIED},
	{"use-unencrypted-plain-auth", CTX_DOMAIN, p_bool, EGRESS_NOT_APPLIED},
	{"mx-connection-attempts", CTX_DOMAIN, p_text, EGRESS_NOT_APPLIED},
	{"remove-header", CTX_DOMAIN, p_text, EGRESS_NOT_APPLIED "; the headers are delivered"},
	{"smtp-multiple-line-response-timeout", CTX_DOMAIN, p_duration, EGRESS_NOT_APPLIED},
	{"second-dkim-sign", CTX_DOMAIN, v_second_dkim, NULL},
	{"max-smtp-out-per-source-ip", CTX_DOMAIN, v_limit_unapplied, NULL},
	{"max-data-volume-rate", CTX_DOMAIN, v_limit_unapplied, NULL},
	{"backoff-max-data-volume-rate", CTX_DOMAIN, v_limit_unapplied, NULL},
	{"backoff-max-connect-rate", CTX_DOMAIN, v_limit_unapplied, NULL},
	{"source-ip-max-connect-rate", CTX_DOMAIN, v_limit_unapplied, NULL},
	{"source-ip-max-data-volume-rate", CTX_DOMAIN, v_limit_unapplied, NULL},
	{"second-dkim-add-body-limit", CTX_DOMAIN, p_text, DKIM_NOT_APPLIED},
	{"second-dkim-add-timestamp", CTX_DOMAIN, p_text, DKIM_NOT_APPLIED},
	{"second-dkim-algorithm", CTX_DOMAIN, p_text, DKIM_NOT_APPLIED},
	{"second-dkim-body-canon", CTX_DOMAIN, p_text, DKIM_NOT_APPLIED},
	{"second-dkim-disallow-adding-headers", CTX_DOMAIN, p_text, DKIM_NOT_APPLIED},
	{"second-dkim-expire-after", CTX_DOMAIN, p_text, DKIM_NOT_APPLIED},
	{"second-dkim-headers", CTX_DOMAIN, p_text, DKIM_NOT_APPLIED},
	{"second-dkim-headers-canon", CTX_DOMAIN, p_text, DKIM_NOT_APPLIED},
	{"second-dkim-identity", CTX_DOMAIN, p_text, DKIM_NOT_APPLIED},
	{"second-dkim-identity-fallback", CTX_DOMAIN, p_text, DKIM_NOT_APPLIED},
	{"second-dkim-query-method", CTX_DOMAIN, p_text, DKIM_NOT_APPLIED},
	/* transcripts: the values (inherited like the rest) are read by engine/trace.c */
	{"log-commands", CTX_DOMAIN, p_bool, NULL},
	{"log-connections", CTX_DOMAIN, p_bool, NULL},
	{"log-data", CTX_DOMAIN, p_bool, NULL},
	/* <virtual-mta> */
	{"include-headers-from", CTX_VMTA, p_text, NOT_APPLIED "; the headers are not added"},
	{"auto-cold-virtual-mta", CTX_VMTA, p_text, NOT_APPLIED "; no cold virtual MTA is made: define <virtual-mta "
		"NAME> for it and name it with cold-virtual-mta NAME"},
	{"max-smtp-out", CTX_VMTA, v_limit_unapplied, NULL},
	{"max-smtp-msg-rate", CTX_VMTA, v_limit_unapplied, NULL},
	{"max-smtp-data-volume-rate", CTX_VMTA, v_limit_unapplied, NULL},
	/* <smtp-listener ADDR> */
	{"source", CTX_SMTP_LISTENER, d_listener_source, NULL},
	{"immediate-tls", CTX_SMTP_LISTENER, v_immediate_tls, NULL},
	{"tls-certificate", CTX_SMTP_LISTENER, v_listener_cert, NULL},
	{"await-slot", CTX_SMTP_LISTENER, p_bool, NOT_APPLIED},
	{"tls-allow-sslv3", CTX_SMTP_LISTENER, v_old_tls, NULL},
	{"tls-allow-tlsv1", CTX_SMTP_LISTENER, v_old_tls, NULL},
	{"tls-allow-tlsv1.1", CTX_SMTP_LISTENER, v_old_tls, NULL},
	{"tls-allow-tlsv1.2", CTX_SMTP_LISTENER, v_tls12, NULL},
	{"tls-allow-tlsv1.3", CTX_SMTP_LISTENER, v_tls12, NULL},
	{"tls-ciphers", CTX_SMTP_LISTENER, p_text, NOT_APPLIED "; tls-ciphers sets them for every listener"},
	{"tls-tlsv1.3-ciphersuites", CTX_SMTP_LISTENER, p_text, NOT_APPLIED "; tls-ciphersuites sets them for every "
		"listener"},
	{"tls-dh-key-length", CTX_SMTP_LISTENER, p_text, NOT_APPLIED "; OpenSSL chooses"},
	/* <virtual-mta> more */
	{"rewrite-list", CTX_VMTA, p_word, NOT_APPLIED},
	{"proxy-protocol", CTX_VMTA, v_limit_unapplied, NULL},
	/* <virtual-mta-pool>: what PowerMTA lets a pool give its members */
	{"domain-key", CTX_POOL, p_text, NOT_APPLIED "; put domain-key in each member <virtual-mta> (or at top "
		"level, for every virtual MTA)"},
	{"include-headers-from", CTX_POOL, p_text, NOT_APPLIED "; the headers are not added"},
	{"rewrite-list", CTX_POOL, p_word, NOT_APPLIED},
	{"max-smtp-out", CTX_POOL, v_limit_unapplied, NULL},
	{"max-smtp-msg-rate", CTX_POOL, v_limit_unapplied, NULL},
	{"max-smtp-data-volume-rate", CTX_POOL, v_limit_unapplied, NULL},
	{"tls-ca-file", CTX_SMTP_LISTENER, p_text, NOT_APPLIED "; clients are not asked for certificates"},
	/* <smtp-user> */
	{"authentication-method", CTX_SMTP_USER, v_auth_method, NULL},
	{"tls-certificate", CTX_SMTP_USER, v_user_cert, NULL},
	/* <spool PATH> */
	{"deliver-only", CTX_SPOOL, v_deliver_only, NULL},
	{"delete-file-holders", CTX_SPOOL, noop_bool, NULL},
	{"priority", CTX_SPOOL, p_text, NOT_APPLIED "; Salvo has one spool"},
	{"min-free-space", CTX_SPOOL, p_text, NOT_APPLIED "; a full disk makes injection answer 452/503"},
	/* <acct-file> */
	{"records", CTX_ACCT_FILE, d_records, NULL},
	{"record-fields", CTX_ACCT_FILE, d_record_fields, NULL},
	{"move-interval", CTX_ACCT_FILE, d_move_interval, NULL},
	{"move-to", CTX_ACCT_FILE, d_move_to, NULL},
	{"max-size", CTX_ACCT_FILE, d_acct_max_size, NULL},
	{"delete-after", CTX_ACCT_FILE, d_delete_after, NULL},
	{"count-moved-records", CTX_ACCT_FILE, p_bool, ACCT_NOT_APPLIED},
	{"iso-times", CTX_ACCT_FILE, p_bool, ACCT_NOT_APPLIED},
	{"map-header-to-field", CTX_ACCT_FILE, p_text, ACCT_NOT_APPLIED},
	{"privacy-policy", CTX_ACCT_FILE, p_text, ACCT_NOT_APPLIED},
	{"queue-filter", CTX_ACCT_FILE, p_text, ACCT_NOT_APPLIED},
	{"sync", CTX_ACCT_FILE, p_bool, ACCT_NOT_APPLIED},
	{"user-string", CTX_ACCT_FILE, p_text, ACCT_NOT_APPLIED},
	{"world-readable", CTX_ACCT_FILE, p_bool, ACCT_NOT_APPLIED},
	{"write-timeout", CTX_ACCT_FILE, p_text, ACCT_NOT_APPLIED},
	{"retry-interval", CTX_ACCT_FILE, p_duration, ACCT_NOT_APPLIED},
	/* the processors */
	{"deliver-email", CTX_BOUNCE_PROC, p_bool, PROC_NOT_APPLIED},
	{"deliver-email", CTX_FBL_PROC, p_bool, PROC_NOT_APPLIED},
	{"forward-unmatched-to", CTX_BOUNCE_PROC, p_email, PROC_NOT_APPLIED},
	{"forward-errors-to", CTX_BOUNCE_PROC, p_email, PROC_NOT_APPLIED},
	{"forward-unmatched-to", CTX_FBL_PROC, p_email, PROC_NOT_APPLIED},
	{"forward-errors-to", CTX_FBL_PROC, p_email, PROC_NOT_APPLIED},
	/* <rewrite-list NAME> */
	{"mail-from", CTX_REWRITE_LIST, p_rewrite, INTAKE_LATER},
	{"from-domain", CTX_REWRITE_LIST, p_rewrite, INTAKE_LATER},
};

const struct directive_table cp_pmta_directives = {directives, sizeof(directives) / sizeof(directives[0])};

int cp_pmta_finish(struct parser *p)
{
	(void)p;
	return 0;
}

void cp_pmta_free(struct config *cfg)
{
	for (size_t i = 0; i < cfg->n_acct_files; i++) {
		struct config_acct_file *a = &cfg->acct_files[i];

		free(a->path);
		free(a->move_to);
		for (int t = 0; t < CONFIG_ACCT_N_TYPES; t++)
			free(a->record_fields[t]);
	}
	free(cfg->acct_files);
	for (size_t i = 0; i < cfg->n_relay_domains; i++)
		free(cfg->relay_domains[i]);
	free(cfg->relay_domains);
	cfg->relay_domains = NULL;
	cfg->n_relay_domains = 0;
	free(cfg->name_servers);
	free(cfg->log_file);
	free(cfg->run_as_user);
	cfg->run_as_user = NULL;
	cfg->acct_files = NULL;
	cfg->n_acct_files = 0;
}
