/*
 * acct_pack.c - an accounting event to bytes and back (layout in
 * acct_pack.h). Pure: no I/O, nothing kept.
 */
#include "core/acct_pack.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "core/json_str.h"

#define PACK_HEAD 52
#define PACK_NULL 0xffffffffu
#define PACK_N_STR 21
#define PACK_N_STR_MIN 14 /* packed before src_type, pool, esmtp, headers were added */
#define PACK_MORE 2       /* flag: 19 strings follow, not only the first 14 */
#define PACK_ENVID 4      /* flag: 20 (envid too; only set when there is one, or an orcpt) */
#define PACK_ORCPT 8      /* flag (with the two above): all 21, orcpt last; only with one */

_Static_assert(ACCT_TYPE_COUNT <= 255, "the type is one byte");

static void put_u(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = n; i-- > 0;)
		v = v << 8 | p[i];
	return v;
}

/* The string fields, in layout order. */
static void strings_of(const struct acct_event *ev, const char *s[PACK_N_STR])
{
	const char *v[PACK_N_STR] = {
		ev->sender, ev->recipient, ev->queue, ev->vmta, ev->source_ip, ev->mx_host, ev->mx_ip,
		ev->response_enhanced, ev->response_text, ev->bounce_category, ev->kind, ev->campaign, ev->tls,
		ev->filter, ev->src_type, ev->pool, ev->esmtp, ev->headers, ev->dsn_action, ev->envid, ev->orcpt,
	};

	memcpy(s, v, sizeof(v));
}

static void set_strings(struct acct_event *ev, const char *s[PACK_N_STR])
{
	ev->sender = s[0];
	ev->recipient = s[1];
	ev->queue = s[2];
	ev->vmta = s[3];
	ev->source_ip = s[4];
	ev->mx_host = s[5];
	ev->mx_ip = s[6];
	ev->response_enhanced = s[7];
	ev->response_text = s[8];
	ev->bounce_category = s[9];
	ev->kind = s[10];
	ev->campaign = s[11];
	ev->tls = s[12];
	ev->filter = s[13];
	ev->src_type = s[14];
	ev->pool = s[15];
	ev->esmtp = s[16];
	ev->headers = s[17];
	ev->dsn_action = s[18];
	ev->envid = s[19];
	ev->orcpt = s[20];
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int acct_event_pack(struct json_buf *b, const struct acct_event *ev)
{
	const char *s[PACK_N_STR];
	size_t len[PACK_N_STR], total = PACK_HEAD;
	uint8_t *p;
	int ret;
	/* without an envid (orcpt) the record is what it was before envid
	 * (orcpt) existed */
	int n_str = ev->orcpt ? PACK_N_STR : ev->envid ? PACK_N_STR - 1 : PACK_N_STR - 2;

	if ((unsigned)ev->type >= ACCT_TYPE_COUNT)
		return -EINVAL;
	strings_of(ev, s);
	for (int i = 0; i < n_str; i++) {
		len[i] = s[i] ? strlen(s[i]) : 0;
		if (len[i] >= PACK_NULL)
			return -EINVAL;
		total += 4 + (s[i] ? len[i] + 1 : 0);
	}
	if ((ret = json_buf_reserve(b, total)) < 0)
		return ret;
	p = (uint8_t *)b->data + b->len;
	p[0] = ACCT_PACK_VERSION;
	p[1] = (uint8_t)ev->type;
	p[2] = (ev->has_size ? 1 : 0) | PACK_MORE | (ev->envid || ev->orcpt ? PACK_ENVID : 0) | (ev->orcpt ? PACK_ORCPT : 0);
	p[3] = 0;
	put_u(p + 4, (uint64_t)(ev->time_ms ? ev->time_ms : now_ms()), 8);
	put_u(p + 12, ev->id, 8);
	put_u(p + 20, ev->attempt, 4);
	put_u(p + 24, (uint64_t)ev->queued_time_ms, 8);
	put_u(p + 32, ev->size, 8);
	put_u(p + 40, (uint32_t)ev->response_code, 4);
	put_u(p + 44, ev->dsn_id, 8);
	p += PACK_HEAD;
	for (int i = 0; i < n_str; i++) {
		put_u(p, s[i] ? len[i] : PACK_NULL, 4);
		p += 4;
		if (s[i]) {
			memcpy(p, s[i], len[i] + 1);
			p += len[i] + 1;
		}
	}
	b->len += total;
	return 0;
}

int acct_event_unpack(const void *data, size_t n, struct acct_event *ev)
{
	const uint8_t *p = data, *end = p + n;
	const char *s[PACK_N_STR];

	int n_str;

	if (n < PACK_HEAD || p[0] != ACCT_PACK_VERSION || p[1] >= ACCT_TYPE_COUNT ||
	    p[2] > (1 | PACK_MORE | PACK_ENVID | PACK_ORCPT) || (p[2] & PACK_ENVID && !(p[2] & PACK_MORE)) ||
	    (p[2] & PACK_ORCPT && !(p[2] & PACK_ENVID)) || p[3] != 0)
		return -EBADMSG;
	n_str = p[2] & PACK_ORCPT ? PACK_N_STR : p[2] & PACK_ENVID ? PACK_N_STR - 1 :
		p[2] & PACK_MORE ? PACK_N_STR - 2 : PACK_N_STR_MIN;
	memset(ev, 0, sizeof(*ev));
	ev->type = (enum acct_type)p[1];
	ev->has_size = p[2] & 1;
	ev->time_ms = (int64_t)get_u(p + 4, 8);
	ev->id = get_u(p + 12, 8);
	ev->attempt = (uint32_t)get_u(p + 20, 4);
	ev->queued_time_ms = (int64_t)get_u(p + 24, 8);
	ev->size = get_u(p + 32, 8);
	ev->response_code = (int32_t)(uint32_t)get_u(p + 40, 4);
	ev->dsn_id = get_u(p + 44, 8);
	p += PACK_HEAD;
	for (int i = 0; i < PACK_N_STR; i++) {
		uint64_t len;

		if (i >= n_str) {
			s[i] = NULL; /* an older writer's record: the later strings are absent */
			continue;
		}
		if (end - p < 4)
			return -EBADMSG;
		len = get_u(p, 4);
		p += 4;
		if (len == PACK_NULL) {
			s[i] = NULL;
			continue;
		}
		if ((uint64_t)(end - p) < len + 1 || p[len] != 0 || memchr(p, 0, len))
			return -EBADMSG;
		s[i] = (const char *)p;
		p += len + 1;
	}
	if (p != end)
		return -EBADMSG;
	set_strings(ev, s);
	return 0;
}
