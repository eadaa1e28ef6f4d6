/*
 * config_intake_list.c - PowerMTA's <pattern-list NAME> (not the
 * reply-side <smtp-pattern-list>, config_vmta.c):
 *
 *   <pattern-list lists>
 *       mail-from /@bulk\.example$/        virtual-mta=pool-bulk
 *       rcpt-to   /(?i)@gmail\.com$/       virtual-mta=vmta-g
 *       header    Subject /^\[news\]/      virtual-mta=pool-news
 *   </pattern-list>
 *   <source 10.0.0.0/8>
 *       pattern-list lists
 *   </source>
 *
 * The rules are compiled here (PCRE2, core/pcre_re.c); a virtual-mta= that
 * names no <virtual-mta> or <virtual-mta-pool> is an error at the rule's
 * line, and so is a <source>'s pattern-list naming no list. At intake the
 * first matching rule wins (config_intake_match). recipient-priority=N is
 * accepted and not applied (warned once).
 * Ownership: the lists hang off the struct config; cp_intake_lists_free().
 */
#include "core/config_parser.h"
#include "core/pcre_re.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

int cp_open_pattern_list(struct parser *p, char *arg)
{
	struct config *c = p->cfg;
	char sb[CP_SHOW_BUF];

	if (!*arg || strlen(arg) > 64 || cp_has_space(arg))
		return cp_err(p, "invalid name \"%s\" for <pattern-list>", cp_show(sb, arg));
	for (size_t i = 0; i < c->n_intake_lists; i++)
		if (!strcasecmp(c->intake_lists[i].name, arg))
			return cp_err(p, "duplicate <pattern-list %s> (first at %s)", arg,
				      cp_at(p, c->intake_lists[i].line, (char[CP_AT_BUF]){0}));
	if (cp_grow(p, (void **)&c->intake_lists, &c->n_intake_lists, sizeof(*c->intake_lists), &p->cur) < 0)
		return -1;
	c->intake_lists[p->cur].line = p->line;
	return cp_set_string(p, &c->intake_lists[p->cur].name, arg);
}

static int rule_actions(struct parser *p, const struct directive *d, char *rest, struct config_intake_rule *r)
{
	char sb[CP_SHOW_BUF];

	if (!*rest)
		return cp_err(p, "%s rule without actions (virtual-mta=NAME, recipient-priority=N)", d->name);
	for (char *next, *a = rest; a; a = next) {
		next = strchr(a, ',');
		if (next)
			*next++ = '\0';
		a = cp_trim(a);
		if (!strncasecmp(a, "virtual-mta=", 12) && a[12] && !cp_has_space(a + 12)) {
			free(r->vmta);
			if (!(r->vmta = strdup(a + 12)))
				return cp_oom(p);
			continue;
		}
		if (!strncasecmp(a, "recipient-priority=", 19) &&
		    config_parse_uint(a + 19, 0, 100, &(uint64_t){0}) == 0) {
			cp_warn_pending(p, &(const struct directive){"recipient-priority", CTX_PATTERN_LIST, NULL,
				"an action of <pattern-list> rules; only virtual-mta= is applied"});
			continue;
		}
		return cp_err(p, "unknown action \"%s\" in %s (virtual-mta=NAME, recipient-priority=0..100)",
			      cp_show(sb, a), d->name);
	}
	return 0;
}

/* `mail-from|rcpt-to /REGEX/ ACTIONS`, `header NAME /REGEX/ ACTIONS` */
static int d_rule(struct parser *p, const struct directive *d, char *v)
{
	struct config_intake_list *l = &p->cfg->intake_lists[p->cur];
	struct config_intake_rule r = {.line = p->line};
	char *rest, sb[CP_SHOW_BUF];
	size_t idx;

	r.what = !strcasecmp(d->name, "mail-from") ? CONFIG_INTAKE_MAIL_FROM :
		 !strcasecmp(d->name, "rcpt-to") ? CONFIG_INTAKE_RCPT_TO : CONFIG_INTAKE_HEADER;
	if (r.what == CONFIG_INTAKE_HEADER) {
		char *name = v, *e = v + strcspn(v, CP_WS);

		if (!*e || *v == '/')
			return cp_err(p, "header wants a header name and /REGEX/: header Subject /^x/ virtual-mta=NAME");
		*e++ = '\0';
		v = cp_trim(e);
		if (name[strcspn(name, ":")] || strlen(name) > 64)
			return cp_err(p, "invalid header name \"%s\" in header rule", cp_show(sb, name));
		if (!(r.header = strdup(name)))
			return cp_oom(p);
	}
	if (cp_take_regex(p, d->name, v, &r.re, &rest) < 0 || rule_actions(p, d, rest, &r) < 0 ||
	    cp_grow(p, (void **)&l->rules, &l->n_rules, sizeof(*l->rules), &idx) < 0) {
		pcre_re_free(r.re);
		free(r.header);
		free(r.vmta);
		return -1;
	}
	l->rules[idx] = r;
	l->has_rcpt_rules |= r.what == CONFIG_INTAKE_RCPT_TO;
	return 0;
}

static const struct directive directives[] = {
	{"mail-from", CTX_PATTERN_LIST, d_rule, NULL},
	{"rcpt-to", CTX_PATTERN_LIST, d_rule, NULL},
	{"header", CTX_PATTERN_LIST, d_rule, NULL},
};

const struct directive_table cp_intake_list_directives = {directives, sizeof(directives) / sizeof(directives[0])};

/* After the pools exist: each rule's virtual-mta=, each source's list. */
int cp_intake_lists_finish(struct parser *p)
{
	struct config *c = p->cfg;

	for (size_t i = 0; i < c->n_intake_lists; i++) {
		struct config_intake_list *l = &c->intake_lists[i];

		for (size_t k = 0; k < l->n_rules; k++) {
			struct config_intake_rule *r = &l->rules[k];
			ssize_t pool;

			if (!r->vmta)
				continue;
			if ((pool = config_pool_find(c, r->vmta)) < 0) {
				p->line = r->line;
				cp_err(p, "virtual-mta=%s in <pattern-list %s>: no such virtual-mta or virtual-mta-pool",
				       r->vmta, l->name);
				continue;
			}
			r->pool = (size_t)pool;
		}
	}
	for (size_t i = 0; i < c->n_sources; i++) {
		struct config_source *s = &c->sources[i];

		s->header_edits = s->add_message_id || s->no_received_header || s->hide_message_source ||
				  s->remove_received || s->n_remove_headers;
		if (!s->pattern_list)
			continue;
		for (size_t k = 0; k < c->n_intake_lists && !s->intake_list; k++)
			if (!strcasecmp(c->intake_lists[k].name, s->pattern_list))
				s->intake_list = k + 1;
		if (!s->intake_list) {
			p->line = s->pattern_list_line;
			cp_err(p, "pattern-list \"%s\": no such <pattern-list>", s->pattern_list);
		}
	}
	return 0;
}

void cp_intake_lists_free(struct config *cfg)
{
	for (size_t i = 0; i < cfg->n_intake_lists; i++) {
		struct config_intake_list *l = &cfg->intake_lists[i];

		for (size_t k = 0; k < l->n_rules; k++) {
			pcre_re_free(l->rules[k].re);
			free(l->rules[k].header);
			free(l->rules[k].vmta);
		}
		free(l->rules);
		free(l->name);
	}
	free(cfg->intake_lists);
	cfg->intake_lists = NULL;
	cfg->n_intake_lists = 0;
}

/* The header's value in the header block hdrs[0..n), unfolded into out;
 * false when absent. */
static bool header_value(const char *hdrs, size_t n, const char *name, char *out, size_t cap)
{
	size_t nl = strlen(name);
	const char *p = hdrs, *end = hdrs + n;

	while (p < end && *p != '\r' && *p != '\n') {
		const char *e = memchr(p, '\n', (size_t)(end - p));
		size_t o = 0;

		e = e ? e + 1 : end;
		if ((size_t)(e - p) > nl && !strncasecmp(p, name, nl) && p[nl] == ':') {
			const char *v = p + nl + 1;

			for (;;) {
				for (; v < e; v++)
					if (*v != '\r' && *v != '\n' && o + 1 < cap && (o || (*v != ' ' && *v != '\t')))
						out[o++] = *v;
				if (e >= end || (*e != ' ' && *e != '\t'))
					break;
				v = e;
				e = memchr(v, '\n', (size_t)(end - v));
				e = e ? e + 1 : end;
			}
			while (o && (out[o - 1] == ' ' || out[o - 1] == '\t'))
				o--;
			out[o] = '\0';
			return true;
		}
		p = e;
		while (p < end && (*p == ' ' || *p == '\t')) { /* a continuation of a field we skip */
			const char *f = memchr(p, '\n', (size_t)(end - p));

			p = f ? f + 1 : end;
		}
	}
	return false;
}

ssize_t config_intake_match(const struct config_intake_list *l, const char *sender, const char *rcpt,
			    const char *hdrs, size_t hdrs_len, size_t *msg_first)
{
	char val[1000];
	size_t first = *msg_first;

	/* the message's own first hit (sender or header), once per message */
	if (first == SIZE_MAX) {
		for (first = 0; first < l->n_rules; first++) {
			const struct config_intake_rule *r = &l->rules[first];

			if (!r->vmta || r->what == CONFIG_INTAKE_RCPT_TO) /* recipient-priority= only: chooses nothing */
				continue;
			if (r->what == CONFIG_INTAKE_MAIL_FROM ? pcre_re_match(r->re, sender ? sender : "") :
			    header_value(hdrs, hdrs_len, r->header, val, sizeof(val)) && pcre_re_match(r->re, val))
				break;
		}
		*msg_first = first;
	}
	/* a recipient rule before it wins */
	for (size_t k = 0; rcpt && k < first; k++) {
		const struct config_intake_rule *r = &l->rules[k];

		if (r->vmta && r->what == CONFIG_INTAKE_RCPT_TO && pcre_re_match(r->re, rcpt))
			return (ssize_t)r->pool;
	}
	return first < l->n_rules ? (ssize_t)l->rules[first].pool : -1;
}
