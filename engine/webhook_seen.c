/*
 * webhook_seen.c - the recent event_ids of a webhook (contract in
 * webhook_seen.h). No allocation: the sets live in the caller's struct.
 */
#include "engine/webhook_seen.h"

#include <string.h>

#include "core/acct_log.h"
#include "engine/webhook_log.h"

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The id as two words; false when it is not 32 hex digits or is all zero. */
static bool parse_id(const char *hex, uint64_t out[2])
{
	out[0] = out[1] = 0;
	for (int i = 0; i < ACCT_EVENT_ID_LEN; i++) {
		int v = hexval(hex[i]);

		if (v < 0)
			return false;
		out[i / 16] = out[i / 16] << 4 | (uint64_t)v;
	}
	return out[0] || out[1];
}

static size_t slot_of(const uint64_t k[2])
{
	uint64_t h = (k[0] ^ k[1]) * 0x9e3779b97f4a7c15ull;

	return (size_t)(h >> 32) % WH_SEEN_SLOTS;
}

static bool gen_has(const struct wh_seen_gen *g, const uint64_t k[2])
{
	for (size_t i = slot_of(k), probes = 0; probes < WH_SEEN_SLOTS; i = (i + 1) % WH_SEEN_SLOTS, probes++) {
		if (!g->key[i][0] && !g->key[i][1])
			return false;
		if (g->key[i][0] == k[0] && g->key[i][1] == k[1])
			return true;
	}
	return false;
}

bool wh_seen_has(const struct wh_seen *s, const char *hex)
{
	uint64_t k[2];

	if (!parse_id(hex, k))
		return false;
	return gen_has(&s->gen[0], k) || gen_has(&s->gen[1], k);
}

void wh_seen_add(struct wh_seen *s, const char *hex)
{
	struct wh_seen_gen *g;
	uint64_t k[2];
	size_t i;

	if (!parse_id(hex, k) || gen_has(&s->gen[s->cur], k))
		return;
	if (s->gen[s->cur].n >= WH_SEEN_GEN) {
		s->cur ^= 1; /* the older generation goes */
		memset(&s->gen[s->cur], 0, sizeof(s->gen[s->cur]));
	}
	g = &s->gen[s->cur];
	for (i = slot_of(k); g->key[i][0] || g->key[i][1]; i = (i + 1) % WH_SEEN_SLOTS)
		;
	g->key[i][0] = k[0];
	g->key[i][1] = k[1];
	g->n++;
}

void wh_seen_add_lines(struct wh_seen *s, const char *text, size_t n, bool at_start)
{
	const char *p = text, *end = text + n, *nl;

	/* a cut first line: start after the first newline */
	if (!at_start) {
		if (!(nl = memchr(p, '\n', n)))
			return;
		p = nl + 1;
	}
	for (; p < end && (nl = memchr(p, '\n', (size_t)(end - p))); p = nl + 1) {
		const char *type;
		size_t len = (size_t)(nl - p), tlen;

		if (wh_record_type(p, len, &type, &tlen))
			wh_seen_add(s, p + len - 2 - ACCT_EVENT_ID_LEN);
	}
}
