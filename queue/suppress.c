/*
 * suppress.c - the suppression list store (see suppress.h).
 *
 * Record: [0] u8 version, [1] u8 source, [2] u8 active, [3] u8 0,
 *         [4] u32 count, [8] i64 first_ms, [16] i64 last_ms,
 *         [24] u16 reason_len, reason bytes (not terminated).
 */
#include "queue/suppress.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "queue/spool_internal.h"

#define REC_VERSION 1u
#define REC_HDR 26u

static const char *const source_names[] = {
	[SUPPRESS_MANUAL] = "manual",
	[SUPPRESS_SYNC_BOUNCE] = "sync-bounce",
	[SUPPRESS_ASYNC_BOUNCE] = "async-bounce",
	[SUPPRESS_COMPLAINT] = "complaint",
	[SUPPRESS_SOFT_BOUNCE] = "soft-bounce",
};

const char *suppress_source_name(enum suppress_source s)
{
	return (unsigned)s < sizeof(source_names) / sizeof(source_names[0]) ? source_names[s] : "manual";
}

int suppress_source_parse(const char *name)
{
	for (size_t i = 0; i < sizeof(source_names) / sizeof(source_names[0]); i++)
		if (strcmp(name, source_names[i]) == 0)
			return (int)i;
	return -1;
}

int suppress_normalize(const char *addr, char out[SUPPRESS_ADDR_MAX])
{
	const char *s = addr, *e, *at;
	size_t n;

	while (*s == ' ' || *s == '\t' || *s == '<')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '>' || e[-1] == '\r' || e[-1] == '\n'))
		e--;
	n = (size_t)(e - s);
	at = n ? memrchr(s, '@', n) : NULL;
	if (!at || at == s || at == e - 1 || n >= SUPPRESS_ADDR_MAX)
		return -EINVAL;
	for (const char *c = s; c < e; c++)
		if ((unsigned char)*c <= ' ' || *c == 0x7f)
			return -EINVAL;
	memcpy(out, s, n);
	out[n] = '\0';
	for (char *c = out + (at - s) + 1; *c; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
	return 0;
}

static int decode(const MDB_val *k, const MDB_val *v, struct suppress_entry *e)
{
	const uint8_t *p = v->mv_data;
	size_t rl;

	if (v->mv_size < REC_HDR || p[0] != REC_VERSION || k->mv_size >= SUPPRESS_ADDR_MAX)
		return -EBADMSG;
	rl = (size_t)get_le(p + 24, 2);
	if (REC_HDR + rl != v->mv_size)
		return -EBADMSG;
	memcpy(e->addr, k->mv_data, k->mv_size);
	e->addr[k->mv_size] = '\0';
	e->source = (enum suppress_source)p[1];
	e->active = p[2] != 0;
	e->count = (uint32_t)get_le(p + 4, 4);
	e->first_ms = (int64_t)get_le(p + 8, 8);
	e->last_ms = (int64_t)get_le(p + 16, 8);
	if (rl >= SUPPRESS_REASON_MAX)
		rl = SUPPRESS_REASON_MAX - 1;
	memcpy(e->reason, p + REC_HDR, rl);
	e->reason[rl] = '\0';
	return 0;
}

int suppress_put(struct spool_wtxn *t, const char *addr, enum suppress_source src, const char *reason,
		 int64_t now_ms, unsigned soft_threshold, bool *now_active)
{
	char key[SUPPRESS_ADDR_MAX];
	struct suppress_entry old;
	MDB_val k, v;
	size_t rl = reason ? strnlen(reason, SUPPRESS_REASON_MAX - 1) : 0;
	uint8_t buf[REC_HDR + SUPPRESS_REASON_MAX];
	bool have = false, active;
	uint32_t count = 1;
	int64_t first = now_ms;
	int rc;

	if ((rc = suppress_normalize(addr, key)))
		return rc;
	k = (MDB_val){.mv_size = strlen(key), .mv_data = key};
	rc = mdb_get(t->txn, t->s->dbi_suppress, &k, &v);
	if (rc == 0 && decode(&k, &v, &old) == 0)
		have = true;
	else if (rc && rc != MDB_NOTFOUND)
		return wtxn_fail(t, rc);
	if (have) {
		count = old.count + 1;
		first = old.first_ms;
	}
	if (src == SUPPRESS_SOFT_BOUNCE) {
		/* a soft bounce never weakens a stronger entry */
		active = (have && old.active) || count >= (soft_threshold ? soft_threshold : 1);
		if (have && old.source != SUPPRESS_SOFT_BOUNCE)
			src = old.source;
	} else {
		active = true;
	}
	buf[0] = REC_VERSION;
	buf[1] = (uint8_t)src;
	buf[2] = active;
	buf[3] = 0;
	put_le(buf + 4, count, 4);
	put_le(buf + 8, (uint64_t)first, 8);
	put_le(buf + 16, (uint64_t)now_ms, 8);
	put_le(buf + 24, rl, 2);
	if (rl)
		memcpy(buf + REC_HDR, reason, rl);
	v = (MDB_val){.mv_size = REC_HDR + rl, .mv_data = buf};
	if ((rc = mdb_put(t->txn, t->s->dbi_suppress, &k, &v, 0)))
		return wtxn_fail(t, rc);
	if (now_active)
		*now_active = active;
	return 0;
}

int suppress_del(struct spool_wtxn *t, const char *addr)
{
	char key[SUPPRESS_ADDR_MAX];
	MDB_val k;
	int rc;

	if ((rc = suppress_normalize(addr, key)))
		return rc;
	k = (MDB_val){.mv_size = strlen(key), .mv_data = key};
	rc = mdb_del(t->txn, t->s->dbi_suppress, &k, NULL);
	if (rc == MDB_NOTFOUND)
		return SPOOL_NOTFOUND;
	return rc ? wtxn_fail(t, rc) : 0;
}

int suppress_get(struct spool_rtxn *rt, const char *addr, struct suppress_entry *out)
{
	char key[SUPPRESS_ADDR_MAX];
	MDB_val k, v;
	int rc;

	if ((rc = suppress_normalize(addr, key)))
		return rc;
	k = (MDB_val){.mv_size = strlen(key), .mv_data = key};
	rc = mdb_get(rt->txn, rt->s->dbi_suppress, &k, &v);
	if (rc == MDB_NOTFOUND)
		return SPOOL_NOTFOUND;
	if (rc)
		return lmdb_err(rc);
	return decode(&k, &v, out);
}

bool suppress_check(struct spool_rtxn *rt, const char *addr)
{
	static int reported;
	struct suppress_entry e;
	int rc = suppress_get(rt, addr, &e);

	if (rc == 0)
		return e.active;
	if (rc != SPOOL_NOTFOUND && rc != -EINVAL && !__atomic_exchange_n(&reported, 1, __ATOMIC_RELAXED))
		fprintf(stderr, "salvod: suppression lookup failed: %s\n", spool_strerror(rc));
	return false;
}

int suppress_list(struct spool_rtxn *rt, const char *after, size_t limit, bool active_only,
		  int (*cb)(void *arg, const struct suppress_entry *e), void *arg)
{
	MDB_cursor *c;
	MDB_val k = {.mv_size = strlen(after), .mv_data = (void *)after}, v;
	size_t n = 0;
	int rc;

	if ((rc = mdb_cursor_open(rt->txn, rt->s->dbi_suppress, &c)))
		return lmdb_err(rc);
	rc = k.mv_size ? mdb_cursor_get(c, &k, &v, MDB_SET_RANGE) : mdb_cursor_get(c, &k, &v, MDB_FIRST);
	/* SET_RANGE lands on `after` itself when present: skip it */
	if (rc == 0 && k.mv_size == strlen(after) && memcmp(k.mv_data, after, k.mv_size) == 0)
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	for (; rc == 0 && n < limit; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		struct suppress_entry e;

		if (decode(&k, &v, &e) != 0 || (active_only && !e.active))
			continue;
		n++;
		if (cb(arg, &e))
			break;
	}
	mdb_cursor_close(c);
	return rc == 0 || rc == MDB_NOTFOUND ? 0 : lmdb_err(rc);
}

int suppress_count(struct spool *s, uint64_t *n)
{
	struct spool_rtxn *rt;
	MDB_stat st;
	int rc;

	if ((rc = spool_rtxn_begin(s, &rt)))
		return rc;
	rc = lmdb_err(mdb_stat(rt->txn, s->dbi_suppress, &st));
	if (rc == 0)
		*n = st.ms_entries;
	spool_rtxn_end(rt);
	return rc;
}
