/*
 * spool.c - the durable spool: one LMDB environment in DIR/data holding the
 * "msg", "rcpt", "due" and "meta" databases described in spool.h.
 *
 * Owns: the record formats (encode/decode below), the message id counter,
 * the invariant that "due" holds exactly one key per "rcpt" record, the one
 * write transaction, and a small cache of reset read transactions.
 *
 * Record formats. All integers in values are little-endian and fixed width;
 * keys are big-endian so that LMDB's default memcmp order is numeric order.
 *   msg  value: header (MSG_HDR_LEN bytes), sender\0, campaign\0, source_ip\0,
 *               body (body_len bytes, not terminated)
 *        header: [0] u8 version, [1] u8 flags (bit 0: SMTPUTF8, bits 1-2:
 *                SPOOL_SRC_*, bit 3: no VERP, bit 4: DKIM at delivery, bits 5-6: RET
 *                SPOOL_RET_*; older records have 0), [2] u16 header length, [4] u32 n_rcpt,
 *                [8] i64 arrival_ms, [16] u32 sender_len,
 *                [20] u32 campaign_len, [24] u32 source_ip_len, [28] u32 0,
 *                [32] u64 body_len; then, only when the message has an ENVID
 *                (its header length is then more than 40): [40] u32 envid_len,
 *                [44] envid\0 - inside the header, so older code skips it
 *   rcpt value: header (RCPT_HDR_LEN bytes), addr\0, last_response\0,
 *               pool\0 (only when pool_len is not 0)
 *        header: [0] u8 version, [1] u8 NOTIFY (SPOOL_NOTIFY_* bits; 0 in
 *                records written before it existed: not given), [2] u16 header length,
 *                [4] u32 attempts, [8] i64 next_attempt_ms, [16] i64 queued_ms,
 *                [24] u32 addr_len, [28] u32 response_len, [32] u32 pool_len
 *                (a 32-byte header, written before pools existed, means "");
 *                then, only when the recipient has an ORCPT (the header is
 *                then longer than 36): [36] u32 orcpt_len, [40] orcpt\0 -
 *                inside the header, so older code skips it
 *   meta "format" -> u32 SPOOL_FORMAT, "next_id" -> u64
 * Evolution: a field appended to a header keeps the version byte and grows
 * the stored header length, so older code still reads newer records (it
 * skips what it does not know). An incompatible change bumps the version
 * byte; older code then refuses the record (-EBADMSG) instead of misreading
 * it. A decoder never trusts a stored length: every length is checked
 * against the value size and every string against its terminator.
 *
 * Diagnostics: inconsistencies found at open or during spool_recover()
 * (a "due" key without its recipient, a recipient without its "due" key)
 * are reported on stderr once per kind and skipped or repaired as
 * described at each site; spool_verify() counts them for tests and tools.
 */
#include "queue/spool.h"
#include "queue/spool_internal.h"

#include <errno.h>
#include <lmdb.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

_Static_assert(SPOOL_FULL == MDB_MAP_FULL, "SPOOL_FULL must be MDB_MAP_FULL");

#define SPOOL_FORMAT 1u
#define SPOOL_MAP_DEFAULT (64ull << 30)   /* sparse: costs address space, not disk */
#define SPOOL_MAX_READERS 256u
#define SPOOL_RTXN_CACHE 32u              /* reset read txns kept for reuse */

#define MSG_VERSION 1u
#define MSG_HDR_LEN 40u
#define MSG_ENVID_MAX 255u
#define RCPT_VERSION 1u
#define RCPT_HDR_LEN 36u
#define RCPT_HDR_LEN_V1 32u /* before pool_len */
#define RCPT_ORCPT_MAX 1000u

#define KEY_MSG_LEN 8u
#define KEY_RCPT_LEN 12u
#define KEY_DUE_LEN 20u

/* --- keys ----------------------------------------------------------------- */

static MDB_val key_msg(uint8_t buf[KEY_MSG_LEN], uint64_t id)
{
	put_be(buf, id, 8);
	return (MDB_val){ .mv_size = KEY_MSG_LEN, .mv_data = buf };
}

static MDB_val key_rcpt(uint8_t buf[KEY_RCPT_LEN], uint64_t id, uint32_t idx)
{
	put_be(buf, id, 8);
	put_be(buf + 8, idx, 4);
	return (MDB_val){ .mv_size = KEY_RCPT_LEN, .mv_data = buf };
}

/* next_attempt_ms is checked non-negative by the writers, so the u64 order
 * of the big-endian bytes is the time order. */
static MDB_val key_due(uint8_t buf[KEY_DUE_LEN], int64_t due, uint64_t id, uint32_t idx)
{
	put_be(buf, (uint64_t)due, 8);
	put_be(buf + 8, id, 8);
	put_be(buf + 16, idx, 4);
	return (MDB_val){ .mv_size = KEY_DUE_LEN, .mv_data = buf };
}

/* --- errors --------------------------------------------------------------- */

/* LMDB reports system failures as positive errno values; the spool's
 * contract is negative errno, with LMDB's own codes (already negative,
 * -30799..-30780) passed through. */
int lmdb_err(int rc)
{
	return rc > 0 ? -rc : rc;
}

/* An LMDB failure other than "not found"/"exists" leaves the write txn
 * unusable; remember the first one so commit reports the cause rather than
 * MDB_BAD_TXN. */
int wtxn_fail(struct spool_wtxn *t, int rc)
{
	rc = lmdb_err(rc);
	if (rc != MDB_NOTFOUND && rc != MDB_KEYEXIST && !t->err)
		t->err = rc;
	return rc;
}

const char *spool_strerror(int err)
{
	const char *s;

	if (err == 0)
		return "success";
	if (err == SPOOL_NOTFOUND)
		return "not found in the spool";
	if (err >= MDB_KEYEXIST && err <= MDB_LAST_ERRCODE)
		return mdb_strerror(err);
	if (err < 0 && (s = strerrordesc_np(-err)))
		return s; /* thread-safe, unlike strerror() for unknown values */
	return "unknown spool error";
}

bool spool_is_full(int err)
{
	return err == SPOOL_FULL || err == -ENOSPC || err == -EDQUOT || err == SPOOL_STOPPED;
}

bool spool_is_fatal(int err)
{
	return err == MDB_PANIC || err == MDB_CORRUPTED || err == MDB_PAGE_NOTFOUND || err == MDB_INVALID ||
	       err == MDB_VERSION_MISMATCH || err == -EIO || err == -EROFS || err == SPOOL_STOPPED;
}

/* The fault hook (see spool_internal.h): "N[:ERR][@K]". A malformed value
 * is refused loudly rather than ignored: a test that sets it means it. */
static int fault_hook_parse(struct spool *s, const char *v)
{
	char *end;
	unsigned long long n = strtoull(v, &end, 10);

	s->fail_err = -ENOSPC;
	if (end == v)
		return -EINVAL;
	if (*end == ':') {
		const char *e = end + 1;
		size_t len = strcspn(e, "@");

		if (len == 6 && !strncmp(e, "ENOSPC", 6))
			s->fail_err = -ENOSPC;
		else if (len == 3 && !strncmp(e, "EIO", 3))
			s->fail_err = -EIO;
		else if (len == 5 && !strncmp(e, "PANIC", 5))
			s->fail_err = MDB_PANIC;
		else
			return -EINVAL;
		end = (char *)e + len;
	}
	if (*end == '@') {
		const char *k = end + 1;

		s->fail_skip = strtoull(k, &end, 10);
		if (end == k)
			return -EINVAL;
	}
	if (*end)
		return -EINVAL;
	s->fail_left = n;
	fprintf(stderr, "spool: fault hook: %llu commit(s) after %llu will fail with %s\n", n,
		(unsigned long long)s->fail_skip, spool_strerror(s->fail_err));
	return 0;
}

/* --- message records ------------------------------------------------------ */

static const char *str_or_empty(const char *s)
{
	return s ? s : "";
}

/* A record header's optional tail after its base bytes (a message's
 * ENVID, a recipient's ORCPT): a 4-byte length, the string, its NUL; none
 * when the string is empty. The header's length with it: */
static size_t hdr_tail_len(size_t base, const char *s)
{
	size_t l = strlen(str_or_empty(s));

	return l ? base + 4 + l + 1 : base;
}

static void put_hdr_tail(uint8_t *p, size_t base, const char *s, size_t hl)
{
	if (hl > base) {
		put_le(p + base, hl - base - 5, 4);
		memcpy(p + base + 4, s, hl - base - 4); /* with its NUL */
	}
}

/* The stored header's length: 40, or with the ENVID in it. */
static size_t msg_hdr_len(const struct spool_msg *m)
{
	return hdr_tail_len(MSG_HDR_LEN, m->envid);
}

static int msg_encode_size(const struct spool_msg *m, size_t *size)
{
	size_t ls = strlen(str_or_empty(m->sender));
	size_t lc = strlen(str_or_empty(m->campaign));
	size_t li = strlen(str_or_empty(m->source_ip));

	if (!m->body && m->body_len)
		return -EINVAL;
	/* LMDB values are limited to 4 GiB - 1; the strings are tiny. */
	if (ls > UINT16_MAX || lc > UINT16_MAX || li > UINT16_MAX ||
	    m->body_len > UINT32_MAX - MSG_HDR_LEN - 3 * (UINT16_MAX + 1))
		return -EMSGSIZE;
	if (strlen(str_or_empty(m->envid)) > MSG_ENVID_MAX)
		return -EINVAL;
	*size = msg_hdr_len(m) + ls + 1 + lc + 1 + li + 1 + m->body_len;
	return 0;
}

const char *spool_src_name(unsigned src_type)
{
	static const char *const names[4] = {NULL, "smtp", "api", "local"};

	return names[src_type & 3];
}

static uint8_t *put_str(uint8_t *p, const char *s)
{
	size_t n = strlen(s) + 1;

	memcpy(p, s, n);
	return p + n;
}

static void msg_encode(uint8_t *p, const struct spool_msg *m)
{
	const char *snd = str_or_empty(m->sender);
	const char *cmp = str_or_empty(m->campaign);
	const char *sip = str_or_empty(m->source_ip);

	size_t hl = msg_hdr_len(m);

	memset(p, 0, MSG_HDR_LEN);
	p[0] = MSG_VERSION;
	p[1] = (uint8_t)((m->smtputf8 ? 1 : 0) | (m->src_type & 3) << 1 | (m->no_verp ? 8 : 0) |
			 (m->dkim_at_delivery ? 16 : 0) | (m->ret & 3) << 5);
	put_le(p + 2, hl, 2);
	put_le(p + 4, m->n_rcpt, 4);
	put_le(p + 8, (uint64_t)m->arrival_ms, 8);
	put_le(p + 16, (uint32_t)strlen(snd), 4);
	put_le(p + 20, (uint32_t)strlen(cmp), 4);
	put_le(p + 24, (uint32_t)strlen(sip), 4);
	put_le(p + 32, m->body_len, 8);
	put_hdr_tail(p, MSG_HDR_LEN, m->envid, hl);
	p += hl;
	p = put_str(p, snd);
	p = put_str(p, cmp);
	p = put_str(p, sip);
	if (m->body_len)
		memcpy(p, m->body, m->body_len);
}

/* Take a string of stored length len at *off: it must fit, end in NUL at
 * exactly len and contain no earlier NUL. */
static int take_str(const uint8_t *p, size_t n, size_t *off, uint32_t len, const char **out)
{
	if (*off > n || len >= n - *off)
		return -EBADMSG;
	if (p[*off + len] != 0 || memchr(p + *off, 0, len))
		return -EBADMSG;
	*out = (const char *)p + *off;
	*off += (size_t)len + 1;
	return 0;
}

/* The tail of a header of hl bytes, "" when it has none. */
static int take_hdr_tail(const uint8_t *p, size_t hl, size_t base, size_t max, const char **out)
{
	size_t o = base + 4;
	uint32_t len;

	*out = "";
	if (hl < base + 5)
		return 0;
	len = (uint32_t)get_le(p + base, 4);
	return len > max ? -EBADMSG : take_str(p, hl, &o, len, out);
}

static int msg_decode(const MDB_val *v, uint64_t id, struct spool_msg *m)
{
	const uint8_t *p = v->mv_data;
	size_t n = v->mv_size, off;
	uint64_t body_len;

	if (n < MSG_HDR_LEN || p[0] != MSG_VERSION)
		return -EBADMSG;
	off = (uint16_t)get_le(p + 2, 2);
	if (off < MSG_HDR_LEN || off > n)
		return -EBADMSG;
	m->id = id;
	m->smtputf8 = (p[1] & 1) != 0;
	m->src_type = (uint8_t)(p[1] >> 1 & 3);
	m->no_verp = (p[1] & 8) != 0;
	m->dkim_at_delivery = (p[1] & 16) != 0;
	m->ret = (uint8_t)(p[1] >> 5 & 3);
	if (take_hdr_tail(p, off, MSG_HDR_LEN, MSG_ENVID_MAX, &m->envid))
		return -EBADMSG;
	m->n_rcpt = (uint32_t)get_le(p + 4, 4);
	m->arrival_ms = (int64_t)get_le(p + 8, 8);
	if (take_str(p, n, &off, (uint32_t)get_le(p + 16, 4), &m->sender) ||
	    take_str(p, n, &off, (uint32_t)get_le(p + 20, 4), &m->campaign) ||
	    take_str(p, n, &off, (uint32_t)get_le(p + 24, 4), &m->source_ip))
		return -EBADMSG;
	body_len = get_le(p + 32, 8);
	if (body_len != n - off)
		return -EBADMSG;
	m->body = (const char *)p + off;
	m->body_len = (size_t)body_len;
	return 0;
}

static int msg_get(MDB_txn *txn, MDB_dbi dbi, uint64_t id, struct spool_msg *out)
{
	uint8_t kb[KEY_MSG_LEN];
	MDB_val k = key_msg(kb, id), v;
	int rc = mdb_get(txn, dbi, &k, &v);

	if (rc == MDB_NOTFOUND)
		return SPOOL_NOTFOUND;
	if (rc)
		return lmdb_err(rc);
	return msg_decode(&v, id, out);
}

/* --- recipient records ---------------------------------------------------- */

/* The stored header's length: 36, or with the ORCPT in it. */
static size_t rcpt_hdr_len(const struct spool_rcpt *r)
{
	return hdr_tail_len(RCPT_HDR_LEN, r->orcpt);
}

static int rcpt_encode_size(const struct spool_rcpt *r, size_t *size)
{
	size_t la = strlen(str_or_empty(r->addr));
	size_t lr = strlen(str_or_empty(r->last_response));
	size_t lp = strlen(str_or_empty(r->pool));

	if (r->next_attempt_ms < 0)
		return -EINVAL; /* would sort after every real time in "due" */
	if (la > UINT16_MAX || lr > UINT16_MAX || lp > UINT8_MAX)
		return -EMSGSIZE;
	if (strlen(str_or_empty(r->orcpt)) > RCPT_ORCPT_MAX)
		return -EINVAL;
	*size = rcpt_hdr_len(r) + la + 1 + lr + 1 + (lp ? lp + 1 : 0);
	return 0;
}

static void rcpt_encode(uint8_t *p, const struct spool_rcpt *r)
{
	const char *addr = str_or_empty(r->addr);
	const char *resp = str_or_empty(r->last_response);
	const char *pool = str_or_empty(r->pool);
	size_t hl = rcpt_hdr_len(r);

	memset(p, 0, RCPT_HDR_LEN);
	p[0] = RCPT_VERSION;
	p[1] = r->notify;
	put_le(p + 2, hl, 2);
	put_le(p + 4, r->attempts, 4);
	put_le(p + 8, (uint64_t)r->next_attempt_ms, 8);
	put_le(p + 16, (uint64_t)r->queued_ms, 8);
	put_le(p + 24, (uint32_t)strlen(addr), 4);
	put_le(p + 28, (uint32_t)strlen(resp), 4);
	put_le(p + 32, (uint32_t)strlen(pool), 4);
	put_hdr_tail(p, RCPT_HDR_LEN, r->orcpt, hl);
	p = put_str(p + hl, addr);
	p = put_str(p, resp);
	if (*pool)
		put_str(p, pool);
}

static int rcpt_decode(const MDB_val *v, uint64_t id, uint32_t idx, struct spool_rcpt *r)
{
	const uint8_t *p = v->mv_data;
	size_t n = v->mv_size, off;

	uint32_t pool_len;

	if (n < RCPT_HDR_LEN_V1 || p[0] != RCPT_VERSION)
		return -EBADMSG;
	off = (uint16_t)get_le(p + 2, 2);
	if (off < RCPT_HDR_LEN_V1 || off > n)
		return -EBADMSG;
	pool_len = off >= RCPT_HDR_LEN ? (uint32_t)get_le(p + 32, 4) : 0;
	r->msg_id = id;
	r->idx = idx;
	r->attempts = (uint32_t)get_le(p + 4, 4);
	r->next_attempt_ms = (int64_t)get_le(p + 8, 8);
	r->queued_ms = (int64_t)get_le(p + 16, 8);
	r->notify = p[1];
	if (take_hdr_tail(p, off, RCPT_HDR_LEN, RCPT_ORCPT_MAX, &r->orcpt))
		return -EBADMSG;
	if (r->next_attempt_ms < 0 ||
	    take_str(p, n, &off, (uint32_t)get_le(p + 24, 4), &r->addr) ||
	    take_str(p, n, &off, (uint32_t)get_le(p + 28, 4), &r->last_response))
		return -EBADMSG;
	r->pool = "";
	if (pool_len && take_str(p, n, &off, pool_len, &r->pool))
		return -EBADMSG;
	if (off != n)
		return -EBADMSG;
	return 0;
}

static int rcpt_get(MDB_txn *txn, MDB_dbi dbi, uint64_t id, uint32_t idx, struct spool_rcpt *out)
{
	uint8_t kb[KEY_RCPT_LEN];
	MDB_val k = key_rcpt(kb, id, idx), v;
	int rc = mdb_get(txn, dbi, &k, &v);

	if (rc == MDB_NOTFOUND)
		return SPOOL_NOTFOUND;
	if (rc)
		return lmdb_err(rc);
	return rcpt_decode(&v, id, idx, out);
}

/* --- open / close --------------------------------------------------------- */

/* mkdir -p with mode 0750 for the components it creates. */
static int mkdirs(const char *dir)
{
	char path[PATH_MAX];
	struct stat st;
	size_t n = strlen(dir);

	if (n == 0 || n >= sizeof(path))
		return -ENAMETOOLONG;
	memcpy(path, dir, n + 1);
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(path, 0750) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(path, 0750) && errno != EEXIST)
		return -errno;
	if (stat(path, &st))
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int meta_get_u64(MDB_txn *txn, MDB_dbi dbi, const char *name, uint64_t *out)
{
	MDB_val k = { .mv_size = strlen(name), .mv_data = (void *)name }, v;
	int rc = mdb_get(txn, dbi, &k, &v);

	if (rc == MDB_NOTFOUND)
		return SPOOL_NOTFOUND;
	if (rc)
		return lmdb_err(rc);
	if (v.mv_size == 8)
		*out = get_le(v.mv_data, 8);
	else if (v.mv_size == 4)
		*out = (uint32_t)get_le(v.mv_data, 4);
	else
		return -EBADMSG;
	return 0;
}

static int meta_put(MDB_txn *txn, MDB_dbi dbi, const char *name, uint64_t val, size_t width)
{
	uint8_t b[8];
	MDB_val k = { .mv_size = strlen(name), .mv_data = (void *)name };
	MDB_val v = { .mv_size = width, .mv_data = b };

	if (width == 4)
		put_le(b, (uint32_t)val, 4);
	else
		put_le(b, val, 8);
	return lmdb_err(mdb_put(txn, dbi, &k, &v, 0));
}

/* The secret that signs VERP return paths: 32 random bytes made once per
 * spool, so that forged bounces (made-up addresses) are recognised. */
static int open_verp_key(struct spool *s, MDB_txn *txn)
{
	MDB_val k = {.mv_size = 8, .mv_data = (void *)"verp_key"}, v;
	int rc = mdb_get(txn, s->dbi_meta, &k, &v);

	if (rc == 0 && v.mv_size == sizeof(s->verp_key)) {
		memcpy(s->verp_key, v.mv_data, sizeof(s->verp_key));
		return 0;
	}
	if (rc && rc != MDB_NOTFOUND)
		return lmdb_err(rc);
	if (getrandom(s->verp_key, sizeof(s->verp_key), 0) != (ssize_t)sizeof(s->verp_key))
		return -EIO;
	v = (MDB_val){.mv_size = sizeof(s->verp_key), .mv_data = s->verp_key};
	return lmdb_err(mdb_put(txn, s->dbi_meta, &k, &v, 0));
}

const uint8_t *spool_verp_key(const struct spool *s)
{
	return s->verp_key;
}

/* The next id: the persisted counter, seeded from the wall clock on a new
 * spool (ms << 12) so that ids of a recreated spool do not collide with
 * ids in old logs, and never at or below an id already stored. */
static int open_ids(struct spool *s, MDB_txn *txn)
{
	uint64_t stored = 0, next, last;
	int ret = meta_get_u64(txn, s->dbi_meta, "next_id", &stored);
	MDB_cursor *c;
	MDB_val k, v;

	if (ret && ret != SPOOL_NOTFOUND)
		return ret;
	next = ret == 0 ? stored : (uint64_t)wall_ms() << 12;
	if ((ret = lmdb_err(mdb_cursor_open(txn, s->dbi_msg, &c))))
		return ret;
	ret = mdb_cursor_get(c, &k, &v, MDB_LAST);
	mdb_cursor_close(c);
	if (ret && ret != MDB_NOTFOUND)
		return lmdb_err(ret);
	if (ret == 0 && k.mv_size == KEY_MSG_LEN && (last = get_be(k.mv_data, 8)) >= next) {
		fprintf(stderr, "spool: next_id %llu is not above stored message %llu; corrected\n",
			(unsigned long long)next, (unsigned long long)last);
		next = last + 1;
	}
	s->next_id = next ? next : 1;
	if (s->next_id == stored)
		return 0; /* stored and right: opening writes nothing */
	return meta_put(txn, s->dbi_meta, "next_id", s->next_id, 8);
}

static int open_dbs(struct spool *s)
{
	MDB_txn *txn;
	uint64_t format;
	int ret = lmdb_err(mdb_txn_begin(s->env, NULL, 0, &txn));

	if (ret)
		return ret;
	if ((ret = lmdb_err(mdb_dbi_open(txn, "msg", MDB_CREATE, &s->dbi_msg))) ||
	    (ret = lmdb_err(mdb_dbi_open(txn, "rcpt", MDB_CREATE, &s->dbi_rcpt))) ||
	    (ret = lmdb_err(mdb_dbi_open(txn, "due", MDB_CREATE, &s->dbi_due))) ||
	    (ret = lmdb_err(mdb_dbi_open(txn, "meta", MDB_CREATE, &s->dbi_meta))) ||
	    (ret = lmdb_err(mdb_dbi_open(txn, "suppress", MDB_CREATE, &s->dbi_suppress))) ||
	    (ret = lmdb_err(mdb_dbi_open(txn, "sent", MDB_CREATE, &s->dbi_sent))) ||
	    (ret = lmdb_err(mdb_dbi_open(txn, "pause", MDB_CREATE, &s->dbi_pause))) ||
	    (ret = lmdb_err(mdb_dbi_open(txn, "campaign", MDB_CREATE, &s->dbi_campaign))) ||
	    (ret = lmdb_err(mdb_dbi_open(txn, "cancel", MDB_CREATE, &s->dbi_cancel))))
		goto fail;
	ret = meta_get_u64(txn, s->dbi_meta, "format", &format);
	if (ret == SPOOL_NOTFOUND)
		ret = meta_put(txn, s->dbi_meta, "format", SPOOL_FORMAT, 4);
	else if (ret == 0 && format > SPOOL_FORMAT)
		ret = -EPROTONOSUPPORT; /* written by a newer salvo */
	if (ret || (ret = open_ids(s, txn)) || (ret = open_verp_key(s, txn)) || (ret = outbox_open(s, txn)))
		goto fail;
	return lmdb_err(mdb_txn_commit(txn));
fail:
	mdb_txn_abort(txn);
	return ret;
}

static int open_env_sized(struct spool *s, const char *path, uint64_t map_size)
{
	int ret;

	if ((ret = lmdb_err(mdb_env_create(&s->env))))
		return ret;
	/* No MDB_NOSYNC/MDB_NOMETASYNC: a commit that returns 0 is on disk.
	 * MDB_NOTLS: read txns belong to their handle, not to a thread, so they
	 * can be reset, cached and renewed by any thread. */
	if ((ret = lmdb_err(mdb_env_set_maxdbs(s->env, 16))) ||
	    (ret = lmdb_err(mdb_env_set_maxreaders(s->env, SPOOL_MAX_READERS))) ||
	    (ret = lmdb_err(mdb_env_set_mapsize(s->env, (size_t)map_size))) ||
	    (ret = lmdb_err(mdb_env_open(s->env, path, MDB_NOTLS, 0640)))) {
		mdb_env_close(s->env); /* LMDB: a failed open leaves only close */
		s->env = NULL;
	}
	return ret;
}

static int open_env(struct spool *s, const char *path, uint64_t map_size)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	uint64_t size = map_size ? map_size : SPOOL_MAP_DEFAULT;
	int dead = 0, ret;

	size = (size + page - 1) / page * page;
	/* The default map is only address space, but an address-space limit
	 * (ulimit -v, valgrind) can refuse it: halve it down to 1 GiB, loudly.
	 * An explicit size is taken as is. */
	while ((ret = open_env_sized(s, path, size)) &&
	       (ret == -ENOMEM || ret == -EINVAL) && !map_size && size > (1ull << 30))
		size /= 2;
	if (ret)
		return ret;
	if (!map_size && size != SPOOL_MAP_DEFAULT)
		fprintf(stderr, "spool: address space limited: map size %llu MiB instead of %llu MiB\n",
			(unsigned long long)(size >> 20), (unsigned long long)(SPOOL_MAP_DEFAULT >> 20));
	/* Slots of readers that died (kill -9) would pin old pages forever. */
	if ((ret = lmdb_err(mdb_reader_check(s->env, &dead))))
		return ret;
	if (dead)
		fprintf(stderr, "spool: cleared %d stale reader slot(s) in %s\n", dead, path);
	return 0;
}

int spool_open(struct spool **out, const char *dir, uint64_t map_size)
{
	char path[PATH_MAX];
	struct spool *s;
	int ret;

	*out = NULL;
	if ((size_t)snprintf(path, sizeof(path), "%s/data", dir) >= sizeof(path))
		return -ENAMETOOLONG;
	if ((ret = mkdirs(dir)) || (ret = mkdirs(path)))
		return ret;
	if (!(s = calloc(1, sizeof(*s))))
		return -ENOMEM;
	s->w.s = s;
	if ((ret = -pthread_mutex_init(&s->rcache_mu, NULL))) {
		free(s);
		return ret;
	}
	if (getenv("SALVO_SPOOL_FAIL_COMMITS") && fault_hook_parse(s, getenv("SALVO_SPOOL_FAIL_COMMITS"))) {
		fprintf(stderr, "spool: SALVO_SPOOL_FAIL_COMMITS must be N[:ENOSPC|:EIO|:PANIC][@K]\n");
		ret = -EINVAL;
		pthread_mutex_destroy(&s->rcache_mu);
		free(s);
		return ret;
	}
	if ((ret = open_env(s, path, map_size)) || (ret = open_dbs(s))) {
		spool_close(s);
		return ret;
	}
	*out = s;
	return 0;
}

void spool_close(struct spool *s)
{
	if (!s)
		return;
	if (s->w.active) {
		fprintf(stderr, "spool_close: write transaction still open\n");
		abort();
	}
	while (s->rcache) {
		struct spool_rtxn *r = s->rcache;

		s->rcache = r->next;
		mdb_txn_abort(r->txn);
		free(r);
	}
	if (s->env)
		mdb_env_close(s->env);
	pthread_mutex_destroy(&s->rcache_mu);
	json_buf_free(&s->ob_stage);
	json_buf_free(&s->ob_last);
	free(s);
}

int spool_usage(struct spool *s, uint64_t *used, uint64_t *map_size)
{
	MDB_envinfo info;
	MDB_stat st;
	int ret;

	if ((ret = lmdb_err(mdb_env_info(s->env, &info))) ||
	    (ret = lmdb_err(mdb_env_stat(s->env, &st))))
		return ret;
	*used = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
	*map_size = info.me_mapsize;
	return 0;
}

/* --- write side ----------------------------------------------------------- */

int spool_wtxn_begin(struct spool *s, struct spool_wtxn **out)
{
	struct spool_wtxn *t = &s->w;
	int ret;

	if (t->active) {
		fprintf(stderr, "spool_wtxn_begin: a write transaction is already open\n");
		abort();
	}
	*out = NULL;
	if ((ret = lmdb_err(mdb_txn_begin(s->env, NULL, 0, &t->txn))))
		return ret;
	t->active = true;
	t->ids_used = false;
	t->err = 0;
	t->rcpt_cur = NULL;
	*out = t;
	return 0;
}

/* Write-txn cursors must be closed before the txn ends: LMDB frees them
 * itself at commit/abort, so a close afterwards would be a use after free. */
static void wtxn_close_cursor(struct spool_wtxn *t)
{
	if (t->rcpt_cur)
		mdb_cursor_close(t->rcpt_cur);
	t->rcpt_cur = NULL;
}

void spool_wtxn_abort(struct spool_wtxn *t)
{
	if (!t)
		return;
	wtxn_close_cursor(t);
	mdb_txn_abort(t->txn);
	t->txn = NULL;
	t->active = false;
	outbox_stage_end(t->s, false);
}

int spool_wtxn_commit(struct spool_wtxn *t)
{
	struct spool *s = t->s;
	int ret = t->err;

	if (!ret && t->ids_used)
		ret = meta_put(t->txn, s->dbi_meta, "next_id", s->next_id, 8);
	if (!ret)
		ret = outbox_stage_put(t);
	if (ret) {
		spool_wtxn_abort(t);
		return ret;
	}
	if (s->fail_left && !(s->fail_skip && s->fail_skip--)) {
		s->fail_left--;
		spool_wtxn_abort(t);
		return s->fail_err;
	}
	wtxn_close_cursor(t);
	ret = lmdb_err(mdb_txn_commit(t->txn)); /* ends the txn, even on failure */
	t->txn = NULL;
	t->active = false;
	outbox_stage_end(s, ret == 0);
	return ret;
}

/* The counter advances in memory even if the txn aborts, so an id handed out
 * once is never handed out again by this process; "next_id" is written once
 * per transaction, at commit. */
int spool_alloc_id(struct spool_wtxn *t, uint64_t *id)
{
	if (t->s->next_id == UINT64_MAX)
		return -EOVERFLOW;
	*id = t->s->next_id++;
	t->ids_used = true;
	return 0;
}

/* Pages the databases hold in this transaction (O(1): LMDB's counts). */
static uint64_t pages_in_use(struct spool_wtxn *t)
{
	MDB_dbi dbis[] = {t->s->dbi_msg, t->s->dbi_rcpt, t->s->dbi_due, t->s->dbi_meta,
			  t->s->dbi_suppress, t->s->dbi_sent, t->s->dbi_outbox};
	uint64_t n = 4; /* two meta pages, the main and free DB roots */
	MDB_stat st;

	for (size_t i = 0; i < sizeof(dbis) / sizeof(dbis[0]); i++)
		if (mdb_stat(t->txn, dbis[i], &st) == 0)
			n += st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages;
	return n;
}

/* New messages must leave headroom (1/16 of the map, at most 256 MiB, at
 * least 64 pages) so that delivering and deleting - which need fresh pages
 * too, LMDB being copy-on-write - still work when injection has filled the
 * map. Every database counts (the suppression list and the "sent" index
 * grow too). A DSN made by an outcome (reserve_div 4) may use three
 * quarters of it. */
static bool map_would_fill(struct spool_wtxn *t, size_t size, unsigned reserve_div)
{
	MDB_envinfo info;
	MDB_stat st;
	uint64_t reserve;

	if (mdb_env_info(t->s->env, &info) || mdb_env_stat(t->s->env, &st))
		return false;
	reserve = info.me_mapsize / 16;
	if (reserve > (256u << 20))
		reserve = 256u << 20;
	if (reserve < 64 * (uint64_t)st.ms_psize)
		reserve = 64 * (uint64_t)st.ms_psize;
	reserve /= reserve_div;
	/* the outbox's staged records are stored at commit: count them now */
	return pages_in_use(t) * st.ms_psize + size + t->s->ob_stage.len + reserve > info.me_mapsize;
}

/* The file system must keep room too: LMDB that meets ENOSPC while writing
 * its meta page refuses every later write until restarted, so a new message
 * is refused first - while what is queued can still be delivered and
 * deleted. Free space is read at most every 50 ms; bytes put since then
 * count against it. Reserve: 1% of the file system, 1-256 MiB. */
static bool disk_would_fill(struct spool_wtxn *t, size_t size, unsigned reserve_div)
{
	struct spool *s = t->s;
	struct timespec now;
	int64_t now_ms;

	clock_gettime(CLOCK_MONOTONIC, &now);
	now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
	if (now_ms - s->disk_checked_ms >= 50 || s->disk_since_check > s->disk_free / 4) {
		struct statvfs vs;
		const char *path = NULL;

		if (mdb_env_get_path(s->env, &path) || !path || statvfs(path, &vs) < 0)
			return false;
		s->disk_free = (uint64_t)vs.f_bavail * vs.f_frsize;
		s->disk_reserve = (uint64_t)vs.f_blocks * vs.f_frsize / 100;
		if (s->disk_reserve < (1u << 20))
			s->disk_reserve = 1u << 20;
		if (s->disk_reserve > (256u << 20))
			s->disk_reserve = 256u << 20;
		s->disk_checked_ms = now_ms;
		s->disk_since_check = 0;
	}
	if (s->disk_since_check + size + s->disk_reserve / reserve_div > s->disk_free)
		return true;
	s->disk_since_check += size;
	return false;
}

static int put_msg(struct spool_wtxn *t, const struct spool_msg *m, unsigned reserve_div)
{
	uint8_t kb[KEY_MSG_LEN];
	MDB_val k = key_msg(kb, m->id), v;
	size_t size;
	int rc;

	if ((rc = msg_encode_size(m, &size)))
		return rc;
	if (map_would_fill(t, size, reserve_div) || disk_would_fill(t, size, reserve_div))
		return wtxn_fail(t, MDB_MAP_FULL);
	/* MDB_RESERVE: the body is copied once, straight into the map page. */
	v.mv_size = size;
	v.mv_data = NULL;
	rc = mdb_put(t->txn, t->s->dbi_msg, &k, &v, MDB_NOOVERWRITE | MDB_RESERVE);
	if (rc)
		return wtxn_fail(t, rc);
	msg_encode(v.mv_data, m);
	return 0;
}

int spool_put_msg(struct spool_wtxn *t, const struct spool_msg *m)
{
	return put_msg(t, m, 1);
}

int spool_put_msg_reserve(struct spool_wtxn *t, const struct spool_msg *m)
{
	return put_msg(t, m, 4);
}

int spool_wtxn_get_msg(struct spool_wtxn *t, uint64_t id, struct spool_msg *out)
{
	return msg_get(t->txn, t->s->dbi_msg, id, out);
}

int spool_wtxn_get_rcpt(struct spool_wtxn *t, uint64_t msg_id, uint32_t idx, struct spool_rcpt *out)
{
	return rcpt_get(t->txn, t->s->dbi_rcpt, msg_id, idx, out);
}

/* The stored recipient's due time, or SPOOL_NOTFOUND. */
static int old_due(struct spool_wtxn *t, const MDB_val *k, int64_t *due)
{
	struct spool_rcpt old;
	MDB_val v;
	int rc = mdb_get(t->txn, t->s->dbi_rcpt, (MDB_val *)k, &v);

	if (rc == MDB_NOTFOUND)
		return SPOOL_NOTFOUND;
	if (rc)
		return wtxn_fail(t, rc);
	if ((rc = rcpt_decode(&v, 0, 0, &old)))
		return rc;
	*due = old.next_attempt_ms;
	return 0;
}

static int due_del(struct spool_wtxn *t, int64_t due, uint64_t id, uint32_t idx)
{
	uint8_t db[KEY_DUE_LEN];
	MDB_val dk = key_due(db, due, id, idx);
	int rc = mdb_del(t->txn, t->s->dbi_due, &dk, NULL);

	if (rc == MDB_NOTFOUND) {
		/* Should not happen; the recipient was indexed nowhere. Nothing
		 * to undo, so carry on: the goal state is reached. */
		fprintf(stderr, "spool: recipient %llu.%u had no due key\n",
			(unsigned long long)id, idx);
		return 0;
	}
	return rc ? wtxn_fail(t, rc) : 0;
}

int spool_put_rcpt(struct spool_wtxn *t, const struct spool_rcpt *r)
{
	uint8_t kb[KEY_RCPT_LEN], db[KEY_DUE_LEN];
	MDB_val k = key_rcpt(kb, r->msg_id, r->idx), v, dk, empty = { 0, NULL };
	int64_t prev = -1;
	size_t size;
	int rc;

	if ((rc = rcpt_encode_size(r, &size)))
		return rc;
	rc = old_due(t, &k, &prev);
	if (rc == SPOOL_NOTFOUND)
		prev = -1;
	else if (rc)
		return rc;
	if (prev >= 0 && prev != r->next_attempt_ms && (rc = due_del(t, prev, r->msg_id, r->idx)))
		return rc;
	v.mv_size = size;
	v.mv_data = NULL;
	if ((rc = mdb_put(t->txn, t->s->dbi_rcpt, &k, &v, MDB_RESERVE)))
		return wtxn_fail(t, rc);
	rcpt_encode(v.mv_data, r);
	if (prev == r->next_attempt_ms)
		return 0; /* its due key is already in place */
	dk = key_due(db, r->next_attempt_ms, r->msg_id, r->idx);
	if ((rc = mdb_put(t->txn, t->s->dbi_due, &dk, &empty, 0)))
		return wtxn_fail(t, rc);
	return 0;
}

/* Does any recipient of message id remain? The first "rcpt" key at or after
 * (id, 0) tells, as keys sort by id then index. */
static int msg_has_rcpts(struct spool_wtxn *t, uint64_t id, bool *any)
{
	uint8_t kb[KEY_RCPT_LEN];
	MDB_val k = key_rcpt(kb, id, 0), v;
	int rc;

	if (!t->rcpt_cur && (rc = mdb_cursor_open(t->txn, t->s->dbi_rcpt, &t->rcpt_cur)))
		return wtxn_fail(t, rc);
	rc = mdb_cursor_get(t->rcpt_cur, &k, &v, MDB_SET_RANGE);
	if (rc == MDB_NOTFOUND) {
		*any = false;
		return 0;
	}
	if (rc)
		return wtxn_fail(t, rc);
	*any = k.mv_size >= 8 && get_be(k.mv_data, 8) == id;
	return 0;
}

int spool_del_rcpt(struct spool_wtxn *t, uint64_t msg_id, uint32_t idx, bool *msg_gone)
{
	uint8_t kb[KEY_RCPT_LEN], mb[KEY_MSG_LEN];
	MDB_val k = key_rcpt(kb, msg_id, idx), mk;
	int64_t due;
	bool any = false;
	int rc;

	if (msg_gone)
		*msg_gone = false;
	if ((rc = old_due(t, &k, &due)))
		return rc; /* SPOOL_NOTFOUND: nothing changed */
	if ((rc = mdb_del(t->txn, t->s->dbi_rcpt, &k, NULL)))
		return wtxn_fail(t, rc);
	if ((rc = due_del(t, due, msg_id, idx)) || (rc = msg_has_rcpts(t, msg_id, &any)))
		return rc;
	if (any)
		return 0;
	mk = key_msg(mb, msg_id);
	rc = mdb_del(t->txn, t->s->dbi_msg, &mk, NULL);
	if (rc && rc != MDB_NOTFOUND)
		return wtxn_fail(t, rc);
	if (msg_gone)
		*msg_gone = true;
	return 0;
}

/* --- read side ------------------------------------------------------------ */

static struct spool_rtxn *rcache_pop(struct spool *s)
{
	struct spool_rtxn *r;

	pthread_mutex_lock(&s->rcache_mu);
	r = s->rcache;
	if (r) {
		s->rcache = r->next;
		s->n_rcache--;
	}
	pthread_mutex_unlock(&s->rcache_mu);
	return r;
}

int spool_rtxn_begin(struct spool *s, struct spool_rtxn **out)
{
	struct spool_rtxn *r = rcache_pop(s);
	int rc;

	*out = NULL;
	if (r) {
		if ((rc = mdb_txn_renew(r->txn)) == 0) {
			*out = r;
			return 0;
		}
		mdb_txn_abort(r->txn); /* fall back to a fresh handle */
	} else if (!(r = calloc(1, sizeof(*r)))) {
		return -ENOMEM;
	}
	r->s = s;
	r->next = NULL;
	if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &r->txn))) {
		free(r);
		return lmdb_err(rc);
	}
	*out = r;
	return 0;
}

void spool_rtxn_end(struct spool_rtxn *t)
{
	struct spool *s;

	if (!t)
		return;
	s = t->s;
	/* Reset drops the snapshot (so old pages can be reused) but keeps the
	 * reader slot, which makes the next begin a renew without locking the
	 * shared reader table. */
	mdb_txn_reset(t->txn);
	pthread_mutex_lock(&s->rcache_mu);
	if (s->n_rcache < SPOOL_RTXN_CACHE) {
		t->next = s->rcache;
		s->rcache = t;
		s->n_rcache++;
		t = NULL;
	}
	pthread_mutex_unlock(&s->rcache_mu);
	if (t) {
		mdb_txn_abort(t->txn);
		free(t);
	}
}

int spool_get_msg(struct spool_rtxn *t, uint64_t id, struct spool_msg *out)
{
	return msg_get(t->txn, t->s->dbi_msg, id, out);
}

int spool_get_rcpt(struct spool_rtxn *t, uint64_t msg_id, uint32_t idx, struct spool_rcpt *out)
{
	return rcpt_get(t->txn, t->s->dbi_rcpt, msg_id, idx, out);
}

int spool_walk_rcpts(struct spool_rtxn *t, bool after, uint64_t after_id, uint32_t after_idx, uint64_t budget,
		     int (*cb)(void *arg, const struct spool_rcpt *r), void *arg, uint64_t *last_id,
		     uint32_t *last_idx, bool *more)
{
	uint8_t kb[KEY_RCPT_LEN];
	MDB_cursor *cur;
	MDB_val k, v;
	uint64_t seen = 0;
	int rc, ret = 0;

	*more = false;
	if ((rc = mdb_cursor_open(t->txn, t->s->dbi_rcpt, &cur)))
		return lmdb_err(rc);
	if (after) {
		k = key_rcpt(kb, after_id, after_idx);
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		/* SET_RANGE lands on the key itself when it still exists: skip it */
		if (!rc && k.mv_size == KEY_RCPT_LEN && !memcmp(k.mv_data, kb, KEY_RCPT_LEN))
			rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	} else {
		rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	}
	for (; !rc; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct spool_rcpt r;
		const uint8_t *p = k.mv_data;

		if (budget && seen == budget) {
			*more = true;
			break;
		}
		seen++;
		if (k.mv_size != KEY_RCPT_LEN)
			continue;
		*last_id = get_be(p, 8);
		*last_idx = (uint32_t)get_be(p + 8, 4);
		if (rcpt_decode(&v, *last_id, *last_idx, &r) != 0)
			continue;
		if ((ret = cb(arg, &r)) != 0) {
			*more = mdb_cursor_get(cur, &k, &v, MDB_NEXT) == 0;
			break;
		}
	}
	if (rc && rc != MDB_NOTFOUND)
		ret = lmdb_err(rc);
	mdb_cursor_close(cur);
	return ret;
}

/* --- recovery, counts, verification --------------------------------------- */

struct recover_walk {
	struct spool *s;
	MDB_txn *txn;
	int (*cb)(void *arg, const struct spool_rcpt *r);
	void *arg;
	uint64_t reported;
	uint64_t bad_due, bad_rcpt, rcpt_no_due;
};

/* Does the due key k belong to a live recipient whose next attempt is the
 * key's time? Fills r when it does. */
static int due_lookup(struct recover_walk *w, const MDB_val *k, struct spool_rcpt *r)
{
	const uint8_t *p = k->mv_data;
	int ret;

	if (k->mv_size != KEY_DUE_LEN)
		return SPOOL_NOTFOUND;
	ret = rcpt_get(w->txn, w->s->dbi_rcpt, get_be(p + 8, 8), (uint32_t)get_be(p + 16, 4), r);
	if (ret == 0 && (uint64_t)r->next_attempt_ms != get_be(p, 8))
		return SPOOL_NOTFOUND; /* a stale key: the recipient moved on */
	if (ret == -EBADMSG)
		w->bad_rcpt++;
	return ret;
}

static int recover_due(struct recover_walk *w)
{
	MDB_cursor *c;
	MDB_val k, v;
	struct spool_rcpt r;
	int rc, ret = 0;

	if ((rc = mdb_cursor_open(w->txn, w->s->dbi_due, &c)))
		return lmdb_err(rc);
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0 && ret == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		ret = due_lookup(w, &k, &r);
		if (ret == SPOOL_NOTFOUND || ret == -EBADMSG) {
			if (ret == SPOOL_NOTFOUND)
				w->bad_due++;
			ret = 0; /* skipped: nothing to deliver behind it */
			continue;
		}
		if (ret == 0 && (ret = w->cb(w->arg, &r)) == 0)
			w->reported++;
	}
	mdb_cursor_close(c);
	if (rc && rc != MDB_NOTFOUND && ret == 0)
		ret = lmdb_err(rc);
	return ret;
}

/* Second pass, only when the first reported fewer recipients than "rcpt"
 * holds: report every recipient that has no (correct) due key, after the
 * due-ordered ones. */
static int recover_orphans(struct recover_walk *w)
{
	MDB_cursor *c;
	MDB_val k, v, dk, dv;
	uint8_t db[KEY_DUE_LEN];
	struct spool_rcpt r;
	int rc, ret = 0;

	if ((rc = mdb_cursor_open(w->txn, w->s->dbi_rcpt, &c)))
		return lmdb_err(rc);
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0 && ret == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (k.mv_size != KEY_RCPT_LEN ||
		    rcpt_decode(&v, get_be(k.mv_data, 8), (uint32_t)get_be((uint8_t *)k.mv_data + 8, 4), &r))
			continue; /* counted in the first pass or by spool_verify() */
		dk = key_due(db, r.next_attempt_ms, r.msg_id, r.idx);
		rc = mdb_get(w->txn, w->s->dbi_due, &dk, &dv);
		if (rc == 0)
			continue;
		if (rc != MDB_NOTFOUND)
			break;
		w->rcpt_no_due++;
		if ((ret = w->cb(w->arg, &r)) == 0)
			w->reported++;
	}
	mdb_cursor_close(c);
	if (rc && rc != MDB_NOTFOUND && ret == 0)
		ret = lmdb_err(rc);
	return ret;
}

static void recover_report(const struct recover_walk *w)
{
	if (w->bad_due)
		fprintf(stderr, "spool: recover: %llu due key(s) without a matching recipient, skipped\n",
			(unsigned long long)w->bad_due);
	if (w->bad_rcpt)
		fprintf(stderr, "spool: recover: %llu corrupt recipient record(s), skipped\n",
			(unsigned long long)w->bad_rcpt);
	if (w->rcpt_no_due)
		fprintf(stderr, "spool: recover: %llu recipient(s) without a due key, reported last\n",
			(unsigned long long)w->rcpt_no_due);
}

int spool_recover(struct spool *s, int (*cb)(void *arg, const struct spool_rcpt *r), void *arg)
{
	struct recover_walk w = { .s = s, .cb = cb, .arg = arg };
	struct spool_rtxn *rt;
	MDB_stat st;
	int ret;

	if ((ret = spool_rtxn_begin(s, &rt)))
		return ret;
	w.txn = rt->txn;
	ret = recover_due(&w);
	/* O(1) check whether the second pass is needed at all. */
	if (ret == 0 && (ret = lmdb_err(mdb_stat(w.txn, s->dbi_rcpt, &st))) == 0 &&
	    st.ms_entries > w.reported + w.bad_rcpt)
		ret = recover_orphans(&w);
	spool_rtxn_end(rt);
	recover_report(&w);
	return ret;
}

int spool_count(struct spool *s, uint64_t *n_msgs, uint64_t *n_rcpts)
{
	struct spool_rtxn *rt;
	MDB_stat sm, sr;
	int ret;

	if ((ret = spool_rtxn_begin(s, &rt)))
		return ret;
	if (!(ret = lmdb_err(mdb_stat(rt->txn, s->dbi_msg, &sm))) &&
	    !(ret = lmdb_err(mdb_stat(rt->txn, s->dbi_rcpt, &sr)))) {
		*n_msgs = sm.ms_entries;
		*n_rcpts = sr.ms_entries;
	}
	spool_rtxn_end(rt);
	return ret;
}

/* Walk one database, calling check on each pair; stops on an LMDB error. */
static int verify_walk(MDB_txn *txn, MDB_dbi dbi, struct spool *s, struct spool_verify *out,
		       void (*check)(MDB_txn *, struct spool *, const MDB_val *, const MDB_val *,
				     struct spool_verify *))
{
	MDB_cursor *c;
	MDB_val k, v;
	int rc;

	if ((rc = mdb_cursor_open(txn, dbi, &c)))
		return lmdb_err(rc);
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
		check(txn, s, &k, &v, out);
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? 0 : lmdb_err(rc);
}

static void verify_msg(MDB_txn *txn, struct spool *s, const MDB_val *k, const MDB_val *v,
		       struct spool_verify *out)
{
	struct spool_msg m;
	MDB_cursor *c;
	uint8_t kb[KEY_RCPT_LEN];
	MDB_val rk, rv;
	uint64_t id;

	out->msgs++;
	if (k->mv_size != KEY_MSG_LEN || msg_decode(v, get_be(k->mv_data, 8), &m)) {
		out->bad_records++;
		return;
	}
	id = get_be(k->mv_data, 8);
	rk = key_rcpt(kb, id, 0);
	if (mdb_cursor_open(txn, s->dbi_rcpt, &c)) {
		out->bad_records++;
		return;
	}
	if (mdb_cursor_get(c, &rk, &rv, MDB_SET_RANGE) || rk.mv_size < 8 || get_be(rk.mv_data, 8) != id)
		out->msg_no_rcpt++;
	mdb_cursor_close(c);
}

static void verify_rcpt(MDB_txn *txn, struct spool *s, const MDB_val *k, const MDB_val *v,
			struct spool_verify *out)
{
	struct spool_rcpt r;
	uint8_t db[KEY_DUE_LEN], mb[KEY_MSG_LEN];
	MDB_val dk, mk, x;

	out->rcpts++;
	if (k->mv_size != KEY_RCPT_LEN ||
	    rcpt_decode(v, get_be(k->mv_data, 8), (uint32_t)get_be((uint8_t *)k->mv_data + 8, 4), &r)) {
		out->bad_records++;
		return;
	}
	dk = key_due(db, r.next_attempt_ms, r.msg_id, r.idx);
	if (mdb_get(txn, s->dbi_due, &dk, &x))
		out->rcpt_no_due++;
	mk = key_msg(mb, r.msg_id);
	if (mdb_get(txn, s->dbi_msg, &mk, &x))
		out->rcpt_no_msg++;
}

static void verify_due(MDB_txn *txn, struct spool *s, const MDB_val *k, const MDB_val *v,
		       struct spool_verify *out)
{
	struct spool_rcpt r;
	const uint8_t *p = k->mv_data;

	out->due++;
	if (k->mv_size != KEY_DUE_LEN || v->mv_size != 0 ||
	    rcpt_get(txn, s->dbi_rcpt, get_be(p + 8, 8), (uint32_t)get_be(p + 16, 4), &r) ||
	    (uint64_t)r.next_attempt_ms != get_be(p, 8))
		out->due_no_rcpt++;
}

int spool_verify(struct spool *s, struct spool_verify *out)
{
	struct spool_rtxn *rt;
	int ret;

	memset(out, 0, sizeof(*out));
	if ((ret = spool_rtxn_begin(s, &rt)))
		return ret;
	if (!(ret = verify_walk(rt->txn, s->dbi_msg, s, out, verify_msg)) &&
	    !(ret = verify_walk(rt->txn, s->dbi_rcpt, s, out, verify_rcpt)))
		ret = verify_walk(rt->txn, s->dbi_due, s, out, verify_due);
	spool_rtxn_end(rt);
	out->problems = out->bad_records + out->msg_no_rcpt + out->rcpt_no_due +
			out->rcpt_no_msg + out->due_no_rcpt;
	return ret;
}
