/*
 * campaign.c - the benchmark's campaign: N messages of S bytes, one
 * recipient each, spread over D domains, and the per-recipient clocks
 * (accepted, delivered) the measurement compares.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

int campaign_init(struct campaign *c, const struct bench_opts *o)
{
	c->n = o->n;
	c->domains = o->domains;
	c->size = o->size;
	c->accepted_ns = calloc(o->n, sizeof *c->accepted_ns);
	c->delivered_ns = calloc(o->n, sizeof *c->delivered_ns);
	if (!c->accepted_ns || !c->delivered_ns) {
		campaign_free(c);
		return -1;
	}
	return 0;
}

void campaign_free(struct campaign *c)
{
	free(c->accepted_ns);
	free(c->delivered_ns);
	c->accepted_ns = c->delivered_ns = NULL;
}

void campaign_rcpt(unsigned i, unsigned domains, char *buf, size_t len)
{
	snprintf(buf, len, "r%u@d%u.test", i, i % domains);
}

/* Headers, then 76-character lines of filler up to the size; every line
 * starts with a letter, so no dot-stuffing is ever needed. With templated,
 * the recipient's values are placeholders the HTTP API fills in. */
size_t campaign_message(const struct campaign *c, unsigned i, bool templated, char **out)
{
	char rcpt[64], head[768];
	campaign_rcpt(i, c->domains, rcpt, sizeof rcpt);
	int hl = snprintf(head, sizeof head,
			  "From: Salvo Bench <bench@src.bench.test>\r\n"
			  "To: %s\r\n"
			  "Subject: %s %u\r\n"
			  "Message-ID: <%u.bench@src.bench.test>\r\n"
			  "Date: Sun, 22 Nov 2026 12:00:00 +0000\r\n"
			  "MIME-Version: 1.0\r\n"
			  "Content-Type: text/plain; charset=us-ascii\r\n"
			  "\r\n"
			  "Hello %s,\r\n",
			  templated ? "{{ email }}" : rcpt, templated ? "Offer for {{ name }} no." : "Offer no.", i, i,
			  templated ? "{{ name }}" : rcpt);
	size_t want = c->size > (size_t)hl + 2 ? c->size : (size_t)hl + 2;
	char *m = malloc(want + 80);
	if (!m) {
		*out = NULL;
		return 0;
	}
	memcpy(m, head, (size_t)hl);
	size_t len = (size_t)hl;
	static const char line[] = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tem";
	while (len + 2 < want) {
		size_t take = want - 2 - len;
		if (take > sizeof line - 1)
			take = sizeof line - 1;
		memcpy(m + len, line, take);
		len += take;
		memcpy(m + len, "\r\n", 2);
		len += 2;
	}
	m[len] = '\0';
	*out = m;
	return len;
}
