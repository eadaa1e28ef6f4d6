/*
 * config_webhook.c - <acct-webhook NAME> blocks (layout and defaults in
 * core/config_webhook.h).
 *
 * Owns cfg->webhooks (cp_webhooks_free). Diagnostics follow config.h:
 * "FILE:LINE: message".
 */
#include "core/config_webhook.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/config_parser.h"

static const char *const type_names[] = {
	"reception", "delivery", "transient", "bounce", "expiration", "feedback", "suppressed", "cancelled",
	"remote_status",
};
#define N_TYPES (sizeof(type_names) / sizeof(type_names[0]))
/* all but reception and remote_status (added later: asked for by name) */
#define DEFAULT_RECORDS (((1u << N_TYPES) - 1) & ~1u & ~(1u << 8))

const char *config_webhook_type_name(unsigned i)
{
	return i < N_TYPES ? type_names[i] : NULL;
}

bool config_webhook_wants(const struct config_webhook *w, const char *name, size_t len)
{
	for (unsigned i = 0; i < N_TYPES; i++)
		if (strlen(type_names[i]) == len && !memcmp(type_names[i], name, len))
			return w->records & (1u << i);
	return false;
}

static struct config_webhook *cur(struct parser *p)
{
	return &p->cfg->webhooks[p->cur];
}

int cp_open_webhook(struct parser *p, char *arg)
{
	struct config *c = p->cfg;
	char sb[CP_SHOW_BUF];
	struct config_webhook *w;

	if (strlen(arg) > 64 || arg[strspn(arg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")])
		return cp_err(p, "invalid name \"%s\" for <acct-webhook> (letters, digits, - _ . only; at most 64)",
			      cp_show(sb, arg));
	for (size_t i = 0; i < c->n_webhooks; i++)
		if (!strcmp(c->webhooks[i].name, arg))
			return cp_err(p, "duplicate <acct-webhook %s> (first at %s)", arg, cp_at(p, c->webhooks[i].line, (char[CP_AT_BUF]){0}));
	if (cp_grow(p, (void **)&c->webhooks, &c->n_webhooks, sizeof(*c->webhooks), &p->cur) < 0)
		return -1;
	w = cur(p);
	w->line = p->line;
	w->records = DEFAULT_RECORDS;
	w->max_batch = 100;
	w->max_delay_ms = 1000;
	w->timeout_ms = 10000;
	w->retry_max_ms = 60000;
	w->tls_verify = true;
	return cp_set_string(p, &w->name, arg);
}

static bool has_ctl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* The authority of an http(s) URL, a[0..n): [user@]host[:port], host a name,
 * an IPv4 address or [IPv6]; the port 1..65535. */
static bool authority_ok(const char *a, size_t n)
{
	const char *at = memchr(a, '@', n), *host, *end = a + n, *colon;

	host = at ? at + 1 : a;
	if (host < end && *host == '[') {
		const char *close = memchr(host, ']', (size_t)(end - host));

		if (!close || close == host + 1)
			return false;
		colon = close + 1 < end ? close + 1 : NULL;
		if (colon && *colon != ':')
			return false;
	} else {
		colon = memchr(host, ':', (size_t)(end - host));
		if ((colon ? colon : end) == host)
			return false; /* no host */
		for (const char *c = host; c < (colon ? colon : end); c++)
			if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
			      *c == '-' || *c == '.' || *c == '_'))
				return false;
	}
	if (colon) {
		unsigned long port = 0;
		const char *c = colon + 1;

		if (c == end)
			return false;
		for (; c < end; c++) {
			if (*c < '0' || *c > '9' || (port = port * 10 + (unsigned long)(*c - '0')) > 65535)
				return false;
		}
		if (port == 0)
			return false;
	}
	return true;
}

static int d_url(struct parser *p, const struct directive *d, char *v)
{
	size_t skip = !strncasecmp(v, "http://", 7) ? 7 : !strncasecmp(v, "https://", 8) ? 8 : 0;

	if (!skip || !v[skip])
		return cp_bad_value(p, "URL (http://... or https://...)", d, v);
	if (cp_has_space(v) || has_ctl(v))
		return cp_bad_value(p, "URL (no blanks or control characters)", d, v);
	if (!authority_ok(v + skip, strcspn(v + skip, "/?#")))
		return cp_bad_value(p, "URL (http[s]://HOST[:PORT]/..., PORT 1 to 65535)", d, v);
	return cp_set_string(p, &cur(p)->url, v);
}

/* `records delivery,bounce,...`: a comma list of known type names. */
static int d_records(struct parser *p, const struct directive *d, char *v)
{
	char sb[CP_SHOW_BUF];
	uint32_t mask = 0;

	for (char *s = v, *next; s; s = next) {
		unsigned i;

		next = strchr(s, ',');
		if (next)
			*next++ = '\0';
		s = cp_trim(s);
		for (i = 0; i < N_TYPES && strcasecmp(s, type_names[i]); i++)
			;
		if (i == N_TYPES)
			return cp_err(p, "unknown record type \"%s\" for %s (one of reception, delivery, transient, "
				      "bounce, expiration, feedback, suppressed, cancelled)", cp_show(sb, s), d->name);
		mask |= 1u << i;
	}
	cur(p)->records = mask;
	return 0;
}

static int d_max_batch(struct parser *p, const struct directive *d, char *v)
{
	if (config_parse_uint(v, 1, CONFIG_WEBHOOK_BATCH_MAX, &cur(p)->max_batch) < 0)
		return cp_bad_value(p, "count (1 to 10000)", d, v);
	return 0;
}

/* max-delay may be 0 (send at once); timeout and retry-max may not. */
static int d_duration(struct parser *p, const struct directive *d, char *v)
{
	struct config_webhook *w = cur(p);
	bool max_delay = !strcmp(d->name, "max-delay");
	uint64_t ms;

	if (config_parse_duration(v, &ms) < 0 || (ms == 0 && !max_delay))
		return cp_bad_value(p, "duration", d, v);
	if (max_delay)
		w->max_delay_ms = ms;
	else if (!strcmp(d->name, "timeout"))
		w->timeout_ms = ms;
	else
		w->retry_max_ms = ms;
	return 0;
}

static int d_secret(struct parser *p, const struct directive *d, char *v)
{
	if (has_ctl(v))
		return cp_bad_value(p, "secret (no control characters)", d, v);
	return cp_set_string(p, &cur(p)->secret, v);
}

/* `header NAME VALUE`: VALUE may be in double quotes. */
static int d_header(struct parser *p, const struct directive *d, char *v)
{
	struct config_webhook *w = cur(p);
	char *val = v + strcspn(v, CP_WS), *line, **grown, sb[CP_SHOW_BUF];
	size_t n;

	if (*val)
		*val++ = '\0';
	val = cp_trim(val);
	n = strlen(v);
	if (!n || v[strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~")])
		return cp_err(p, "invalid header name \"%s\" for %s", cp_show(sb, v), d->name);
	if (!*val)
		return cp_err(p, "missing header value for %s %s", d->name, cp_show(sb, v));
	if (*val == '"') {
		size_t m = strlen(val);

		if (m < 2 || val[m - 1] != '"')
			return cp_err(p, "unterminated quoted value for %s %s", d->name, cp_show(sb, v));
		val[m - 1] = '\0';
		val++;
	}
	if (has_ctl(val))
		return cp_bad_value(p, "header value (no control characters)", d, val);
	if (!strcasecmp(v, "content-type") || !strcasecmp(v, "x-salvo-signature") || !strcasecmp(v, "content-length"))
		return cp_err(p, "%s %s: that header is set by salvod", d->name, cp_show(sb, v));
	if (!(line = malloc(n + 2 + strlen(val) + 1)))
		return cp_oom(p);
	sprintf(line, "%s: %s", v, val);
	if (!(grown = realloc(w->headers, (w->n_headers + 1) * sizeof(*grown)))) {
		free(line);
		return cp_oom(p);
	}
	w->headers = grown;
	w->headers[w->n_headers++] = line;
	return 0;
}

static int d_ca_file(struct parser *p, const struct directive *d, char *v)
{
	(void)d;
	return cp_set_string(p, &cur(p)->ca_file, v);
}

static int d_tls_verify(struct parser *p, const struct directive *d, char *v)
{
	if (config_parse_bool(v, &cur(p)->tls_verify) < 0)
		return cp_bad_value(p, "yes or no", d, v);
	return 0;
}

static const struct directive directives[] = {
	{"url", CTX_WEBHOOK, d_url, NULL},
	{"records", CTX_WEBHOOK, d_records, NULL},
	{"max-batch", CTX_WEBHOOK, d_max_batch, NULL},
	{"max-delay", CTX_WEBHOOK, d_duration, NULL},
	{"timeout", CTX_WEBHOOK, d_duration, NULL},
	{"retry-max", CTX_WEBHOOK, d_duration, NULL},
	{"secret", CTX_WEBHOOK, d_secret, NULL},
	{"header", CTX_WEBHOOK, d_header, NULL},
	{"ca-file", CTX_WEBHOOK, d_ca_file, NULL},
	{"tls-verify", CTX_WEBHOOK, d_tls_verify, NULL},
};

const struct directive_table cp_webhook_directives = {directives, sizeof(directives) / sizeof(directives[0])};

int cp_webhooks_finish(struct parser *p)
{
	for (size_t i = 0; i < p->cfg->n_webhooks; i++) {
		const struct config_webhook *w = &p->cfg->webhooks[i];

		if (!w->url) {
			p->line = w->line;
			return cp_err(p, "<acct-webhook %s> needs a url", w->name);
		}
	}
	return 0;
}

void cp_webhooks_free(struct config *cfg)
{
	for (size_t i = 0; i < cfg->n_webhooks; i++) {
		struct config_webhook *w = &cfg->webhooks[i];

		free(w->name);
		free(w->url);
		free(w->secret);
		free(w->ca_file);
		for (size_t k = 0; k < w->n_headers; k++)
			free(w->headers[k]);
		free(w->headers);
	}
	free(cfg->webhooks);
	cfg->webhooks = NULL;
	cfg->n_webhooks = 0;
}
