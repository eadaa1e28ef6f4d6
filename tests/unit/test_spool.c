/*
 * test_spool.c - the LMDB spool (queue/spool.c): round trips of messages
 * and recipients (binary and 1 MiB bodies), replacing a recipient keeps one
 * due key, deleting the last recipient deletes the message, ids across
 * reopen, recovery order, aborted transactions, durability under SIGKILL,
 * stale reader slots, a full map, corrupt and truncated records, concurrent readers.
 *
 * Each test works in its own mkdtemp() directory, removed at the end.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <lmdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "queue/pause.h"
#include "queue/spool.h"
#include "tmp_dir.h"

#define T0 1795341662345LL /* 2026-11-22T10:01:02.345Z */

struct fx {
	char dir[64];
	struct spool *s;
};

/* ---- helpers ----------------------------------------------------------------- */

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	if (tmp_dir_make(f->dir, sizeof(f->dir), "test_spool") < 0) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	spool_close(f->s);
	tmp_dir_remove(f->dir);
	free(f);
	return 0;
}

static struct spool *fx_open(struct fx *f, uint64_t map_size)
{
	int ret = spool_open(&f->s, f->dir, map_size);

	if (ret)
		fail_msg("spool_open: %s", spool_strerror(ret));
	return f->s;
}

static void fx_reopen(struct fx *f, uint64_t map_size)
{
	spool_close(f->s);
	f->s = NULL;
	fx_open(f, map_size);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Body bytes that depend on the id, so a mixed-up record shows. */
static void fill_body(char *b, size_t n, uint64_t id)
{
	uint32_t x = (uint32_t)id * 2654435761u + 1;

	for (size_t i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		b[i] = (char)(x >> 16);
	}
}

static void put_rcpt_at(struct spool_wtxn *t, uint64_t id, uint32_t idx, int64_t due,
			uint32_t attempts, const char *addr, const char *resp)
{
	struct spool_rcpt r = {
		.msg_id = id, .idx = idx, .attempts = attempts, .next_attempt_ms = due,
		.queued_ms = T0, .addr = addr, .last_response = resp,
	};

	assert_int_equal(spool_put_rcpt(t, &r), 0);
}

/* One message with n recipients r<i>@example.test due at T0 + dues[i]. */
static uint64_t put_simple(struct spool_wtxn *t, size_t body_len, uint32_t n, const int64_t *dues)
{
	char body[4096];
	char addr[64];
	struct spool_msg m = {
		.arrival_ms = T0, .n_rcpt = n, .sender = "s@example.test", .campaign = "",
		.source_ip = "127.0.0.1", .body = body, .body_len = body_len,
	};

	assert_true(body_len <= sizeof(body));
	assert_int_equal(spool_alloc_id(t, &m.id), 0);
	fill_body(body, body_len, m.id);
	assert_int_equal(spool_put_msg(t, &m), 0);
	for (uint32_t i = 0; i < n; i++) {
		snprintf(addr, sizeof(addr), "r%u@example.test", i);
		put_rcpt_at(t, m.id, i, T0 + (dues ? dues[i] : 0), 0, addr, "");
	}
	return m.id;
}

static uint64_t commit_simple(struct spool *s, uint32_t n, const int64_t *dues)
{
	struct spool_wtxn *t;
	uint64_t id;

	assert_int_equal(spool_wtxn_begin(s, &t), 0);
	id = put_simple(t, 100, n, dues);
	assert_int_equal(spool_wtxn_commit(t), 0);
	return id;
}

static void assert_counts(struct spool *s, uint64_t msgs, uint64_t rcpts)
{
	uint64_t m = 99, r = 99;

	assert_int_equal(spool_count(s, &m, &r), 0);
	assert_int_equal(m, msgs);
	assert_int_equal(r, rcpts);
}

static void assert_consistent(struct spool *s)
{
	struct spool_verify v;

	assert_int_equal(spool_verify(s, &v), 0);
	if (v.problems)
		fail_msg("spool inconsistent: bad %llu msg_no_rcpt %llu rcpt_no_msg %llu "
			 "rcpt_no_due %llu due_no_rcpt %llu",
			 (unsigned long long)v.bad_records, (unsigned long long)v.msg_no_rcpt,
			 (unsigned long long)v.rcpt_no_msg, (unsigned long long)v.rcpt_no_due,
			 (unsigned long long)v.due_no_rcpt);
	assert_int_equal(v.due, v.rcpts); /* exactly one due key per recipient */
}

/* spool_recover() into an array of copies (its pointers die with the call). */
struct seen {
	uint64_t id;
	uint32_t idx, attempts;
	int64_t due;
	char addr[64], resp[64];
};

struct seen_list {
	struct seen v[64];
	size_t n;
	size_t stop_at; /* return 7 from the callback at this count; 0 = never */
};

static int collect(void *arg, const struct spool_rcpt *r)
{
	struct seen_list *l = arg;
	struct seen *e;

	if (l->stop_at && l->n == l->stop_at)
		return 7;
	assert_true(l->n < 64);
	e = &l->v[l->n++];
	e->id = r->msg_id;
	e->idx = r->idx;
	e->attempts = r->attempts;
	e->due = r->next_attempt_ms;
	snprintf(e->addr, sizeof(e->addr), "%s", r->addr);
	snprintf(e->resp, sizeof(e->resp), "%s", r->last_response);
	return 0;
}

/* ---- round trip -------------------------------------------------------------- */

static void test_roundtrip_three_rcpts(void **state)
{
	struct fx *f = *state;
	struct spool *s = fx_open(f, 0);
	const size_t big = 1u << 20;
	char *body = malloc(big);
	struct spool_wtxn *t;
	struct spool_rtxn *rt;
	struct spool_msg m = {0}, g;
	struct spool_rcpt r;
	static const char *addrs[] = {"a@example.test", "b@exämple.test", "c@example.test"};
	static const char *resps[] = {"", "421 4.7.0 try again later", "450 mailbox busy"};
	uint64_t id2;

	assert_non_null(body);
	fill_body(body, big, 1);
	body[0] = 0;             /* binary: NUL, high bytes, a bare CR */
	body[1] = (char)0xff;
	body[2] = '\r';
	body[big - 1] = 0;
	m.arrival_ms = T0;
	m.n_rcpt = 3;
	m.sender = "bounce+x@example.com";
	m.campaign = "spring-sale";
	m.source_ip = "2001:db8::1";
	m.body = body;
	m.body_len = big;
	m.smtputf8 = true;
	m.no_verp = true;
	m.envid = "camp7-msg42";
	m.src_type = SPOOL_SRC_SMTP;
	m.dkim_at_delivery = true; /* flags bit 4, beside bits 0-3 */
	assert_int_equal(spool_wtxn_begin(s, &t), 0);
	assert_int_equal(spool_alloc_id(t, &m.id), 0);
	assert_int_equal(spool_put_msg(t, &m), 0);
	for (uint32_t i = 0; i < 3; i++)
		put_rcpt_at(t, m.id, i, T0 + 1000 * i, i, addrs[i], resps[i]);
	/* The null sender, no campaign, an empty body. */
	struct spool_msg e = {.arrival_ms = T0 + 1, .n_rcpt = 1, .sender = "", .campaign = NULL,
			      .source_ip = "", .body = NULL, .body_len = 0};
	assert_int_equal(spool_alloc_id(t, &e.id), 0);
	id2 = e.id;
	assert_int_equal(spool_put_msg(t, &e), 0);
	put_rcpt_at(t, id2, 0, T0, 0, "postmaster@example.test", "");
	/* Readable inside the write txn (the DSN path). */
	assert_int_equal(spool_wtxn_get_msg(t, m.id, &g), 0);
	assert_int_equal(g.body_len, big);
	assert_memory_equal(g.body, body, big);
	assert_int_equal(spool_wtxn_commit(t), 0);

	assert_int_equal(spool_rtxn_begin(s, &rt), 0);
	assert_int_equal(spool_get_msg(rt, m.id, &g), 0);
	assert_int_equal(g.id, m.id);
	assert_int_equal(g.arrival_ms, T0);
	assert_int_equal(g.n_rcpt, 3);
	assert_true(g.smtputf8);
	assert_true(g.no_verp);
	assert_string_equal(g.envid, "camp7-msg42");
	assert_int_equal(g.src_type, SPOOL_SRC_SMTP);
	assert_true(g.dkim_at_delivery);
	assert_string_equal(g.sender, m.sender);
	assert_string_equal(g.campaign, m.campaign);
	assert_string_equal(g.source_ip, m.source_ip);
	assert_int_equal(g.body_len, big);
	assert_memory_equal(g.body, body, big);
	for (uint32_t i = 0; i < 3; i++) {
		assert_int_equal(spool_get_rcpt(rt, m.id, i, &r), 0);
		assert_int_equal(r.msg_id, m.id);
		assert_int_equal(r.idx, i);
		assert_int_equal(r.attempts, i);
		assert_int_equal(r.next_attempt_ms, T0 + 1000 * i);
		assert_int_equal(r.queued_ms, T0);
		assert_string_equal(r.addr, addrs[i]);
		assert_string_equal(r.last_response, resps[i]);
	}
	assert_int_equal(spool_get_rcpt(rt, m.id, 3, &r), SPOOL_NOTFOUND);
	assert_int_equal(spool_get_msg(rt, id2, &g), 0);
	assert_string_equal(g.sender, "");
	assert_string_equal(g.campaign, "");
	assert_false(g.smtputf8);
	assert_false(g.no_verp);
	assert_string_equal(g.envid, "");
	assert_false(g.dkim_at_delivery);
	assert_int_equal(g.body_len, 0);
	assert_int_equal(spool_get_msg(rt, id2 + 1, &g), SPOOL_NOTFOUND);
	spool_rtxn_end(rt);
	assert_counts(s, 2, 4);
	assert_consistent(s);

	/* Same bytes after reopening (from the file, not the page cache of this env). */
	fx_reopen(f, 0);
	assert_int_equal(spool_rtxn_begin(f->s, &rt), 0);
	assert_int_equal(spool_get_msg(rt, m.id, &g), 0);
	assert_memory_equal(g.body, body, big);
	spool_rtxn_end(rt);
	free(body);
}

static void test_put_msg_twice(void **state)
{
	struct fx *f = *state;
	struct spool *s = fx_open(f, 0);
	struct spool_wtxn *t;
	struct spool_msg m = {.arrival_ms = T0, .n_rcpt = 1, .sender = "a@b", .body = "x", .body_len = 1};
	struct spool_rcpt r = {.next_attempt_ms = -1, .addr = "x@y"};

	assert_int_equal(spool_wtxn_begin(s, &t), 0);
	assert_int_equal(spool_alloc_id(t, &m.id), 0);
	assert_int_equal(spool_put_msg(t, &m), 0);
	/* Written once: a second put of the id is refused, the txn stays usable. */
	assert_int_equal(spool_put_msg(t, &m), MDB_KEYEXIST);
	r.msg_id = m.id;
	assert_int_equal(spool_put_rcpt(t, &r), -EINVAL);
	r.next_attempt_ms = T0;
	assert_int_equal(spool_put_rcpt(t, &r), 0);
	assert_int_equal(spool_wtxn_commit(t), 0);
	assert_counts(s, 1, 1);
	assert_consistent(s);
}

/* ---- recipients -------------------------------------------------------------- */

static void test_put_rcpt_replaces(void **state)
{
	struct fx *f = *state;
	struct spool *s = fx_open(f, 0);
	struct seen_list l = {0};
	struct spool_wtxn *t;
	int64_t dues[] = {0, 5000};
	uint64_t id = commit_simple(s, 2, dues);

	/* r0 deferred twice (moving later, past r1), then once at the same time. */
	assert_int_equal(spool_wtxn_begin(s, &t), 0);
	put_rcpt_at(t, id, 0, T0 + 60000, 1, "r0@example.test", "421 later");
	put_rcpt_at(t, id, 0, T0 + 90000, 2, "r0@example.test", "421 later again");
	assert_int_equal(spool_wtxn_commit(t), 0);
	assert_int_equal(spool_wtxn_begin(s, &t), 0);
	put_rcpt_at(t, id, 0, T0 + 90000, 3, "r0@example.test", "451 same time");
	assert_int_equal(spool_wtxn_commit(t), 0);

	assert_int_equal(spool_recover(s, collect, &l), 0);
	assert_int_equal(l.n, 2);
	assert_int_equal(l.v[0].idx, 1);
	assert_int_equal(l.v[0].due, T0 + 5000);
	assert_int_equal(l.v[1].idx, 0);
	assert_int_equal(l.v[1].due, T0 + 90000);
	assert_int_equal(l.v[1].attempts, 3);
	assert_string_equal(l.v[1].resp, "451 same time");
	assert_counts(s, 1, 2);
	assert_consistent(s); /* due entries == rcpt entries, each matching */
}

static void test_del_all_rcpts_deletes_msg(void **state)
{
	struct fx *f = *state;
	struct spool *s = fx_open(f, 0);
	struct spool_wtxn *t;
	struct spool_rtxn *rt;
	struct spool_msg m;
	struct seen_list l = {0};
	bool gone = true;
	uint64_t id = commit_simple(s, 3, NULL);
	uint64_t other = commit_simple(s, 1, NULL); /* the next id: must not count */

	assert_int_equal(spool_wtxn_begin(s, &t), 0);
	assert_int_equal(spool_del_rcpt(t, id, 1, &gone), 0);
	assert_false(gone);
	assert_int_equal(spool_del_rcpt(t, id, 0, &gone), 0);
	assert_false(gone);
	assert_int_equal(spool_wtxn_commit(t), 0);
	assert_counts(s, 2, 2);
	assert_consistent(s);

	assert_int_equal(spool_wtxn_begin(s, &t), 0);
	assert_int_equal(spool_del_rcpt(t, id, 2, &gone), 0);
	assert_true(gone);
	assert_int_equal(spool_wtxn_get_msg(t, id, &m), SPOOL_NOTFOUND);
	assert_int_equal(spool_wtxn_commit(t), 0);

	assert_int_equal(spool_rtxn_begin(s, &rt), 0);
	assert_int_equal(spool_get_msg(rt, id, &m), SPOOL_NOTFOUND);
	assert_int_equal(spool_get_msg(rt, other, &m), 0);
	spool_rtxn_end(rt);
	assert_counts(s, 1, 1);
	assert_consistent(s);
	assert_int_equal(spool_recover(s, collect, &l), 0);
	assert_int_equal(l.n, 1);
	assert_int_equal(l.v[0].id, other);

	/* msg_gone may be NULL. */
	assert_int_equal(spool_wtxn_begin(s, &t), 0);
	assert_int_equal(spool_del_rcpt(t, other, 0, NULL), 0);
	assert_int_equal(spool_wtxn_commit(t), 0);
	assert_counts(s, 0, 0);
	assert_consistent(s);
}

static void test_del_missing_rcpt(void **state)
{
	struct fx *f = *state;
	struct spool *s = fx_open(f, 0);
	struct spool_wtxn *t;
	bool gone = true;
	uint64_t id = commit_simple(s, 2, NULL);

	assert_int_equal(spool_wtxn_begin(s, &t), 0);
	assert_int_equal(spool_del_rcpt(t, id, 2, &gone), SPOOL_NOTFOUND);
	assert_false(gone);
	assert_int_equal(spool_del_rcpt(t, id + 1000, 0, &gone), SPOOL_NOTFOUND);
	assert_int_equal(spool_del_rcpt(t, id, 0, &gone), 0);
	assert_int_equal(spool_del_rcpt(t, id, 0, &gone), SPOOL_NOTFOUND); /* twice */
	assert_false(gone);
	assert_int_equal(spool_wtxn_commit(t), 0);
	assert_counts(s, 1, 1);
	assert_consistent(s);
}

/* ---- ids --------------------------------------------------------------------- */

static void test_ids_increase_across_reopen(void **state)
{
	struct fx *f = *state;
	int64_t t0 = now_ms();
	struct spool_wtxn *t;
	uint64_t last, id;
	bool gone;

	fx_open(f, 0);
	last = commit_simple(f->s, 1, NULL);
	assert_true(last >= (uint64_t)t0 << 12); /* seeded from the wall clock */
	assert_true(last <= (uint64_t)(now_ms() + 1) << 12);
	/* An aborted txn's ids are not handed out again by this process. */
	assert_int_equal(spool_wtxn_begin(f->s, &t), 0);
	assert_int_equal(spool_alloc_id(t, &id), 0);
	assert_true(id > last);
	last = id;
	spool_wtxn_abort(t);
	for (int round = 0; round < 3; round++) {
		/* Empty the spool completely, then reopen: still increasing. */
		assert_int_equal(spool_wtxn_begin(f->s, &t), 0);
		id = put_simple(t, 10, 1, NULL);
		assert_true(id > last);
		last = id;
		assert_int_equal(spool_wtxn_commit(t), 0);
		assert_int_equal(spool_wtxn_begin(f->s, &t), 0);
		assert_int_equal(spool_del_rcpt(t, id, 0, &gone), 0);
		assert_true(gone);
		assert_int_equal(spool_wtxn_commit(t), 0);
		assert_counts(f->s, 1, 1); /* the first message stays */
		fx_reopen(f, 0);
	}
	assert_int_equal(spool_wtxn_begin(f->s, &t), 0);
	for (int i = 0; i < 100; i++) {
		assert_int_equal(spool_alloc_id(t, &id), 0);
		assert_true(id == last + 1);
		last = id;
	}
	assert_int_equal(spool_wtxn_commit(t), 0); /* persisted without any message */
	fx_reopen(f, 0);
	id = commit_simple(f->s, 1, NULL);
	assert_true(id > last);
}

/* ---- recovery ---------------------------------------------------------------- */

static void test_recover_due_order(void **state)
{
	struct fx *f = *state;
	struct spool_wtxn *t;
	struct seen_list l = {0};
	uint64_t a, b, c;
	int64_t da[] = {300, 100, 200};
	int64_t db[] = {100, 50};

	fx_open(f, 0);
	a = commit_simple(f->s, 3, da);
	b = commit_simple(f->s, 2, db);
	assert_int_equal(spool_wtxn_begin(f->s, &t), 0);
	c = put_simple(t, 10, 1, NULL); /* due T0: first */
	put_rcpt_at(t, a, 2, T0 + 1000, 4, "r2@example.test", "452 full"); /* now last */
	assert_int_equal(spool_wtxn_commit(t), 0);
	fx_reopen(f, 0);

	assert_int_equal(spool_recover(f->s, collect, &l), 0);
	struct { uint64_t id; uint32_t idx; int64_t due; } want[] = {
		{c, 0, T0}, {b, 1, T0 + 50}, {a, 1, T0 + 100}, {b, 0, T0 + 100},
		{a, 0, T0 + 300}, {a, 2, T0 + 1000},
	};
	assert_int_equal(l.n, 6);
	for (size_t i = 0; i < 6; i++) {
		assert_int_equal(l.v[i].id, want[i].id);
		assert_int_equal(l.v[i].idx, want[i].idx);
		assert_int_equal(l.v[i].due, want[i].due);
	}
	assert_int_equal(l.v[5].attempts, 4);
	assert_string_equal(l.v[5].resp, "452 full");
	assert_string_equal(l.v[5].addr, "r2@example.test");
	assert_int_equal(l.v[0].attempts, 0);
	assert_string_equal(l.v[0].resp, "");

	/* A non-zero callback return stops the walk and is returned. */
	struct seen_list stop = {.stop_at = 2};
	assert_int_equal(spool_recover(f->s, collect, &stop), 7);
	assert_int_equal(stop.n, 2);
}

/* Walking the recipients in key order, a page at a time. */
struct page_list {
	struct seen_list l;
	size_t page;               /* stop after taking this many (cb returns 1) */
};

static int take_page(void *arg, const struct spool_rcpt *r)
{
	struct page_list *p = arg;

	collect(&p->l, r);
	return p->l.n % p->page == 0;
}

static void test_walk_rcpts(void **state)
{
	struct fx *f = *state;
	struct spool_rtxn *rt;
	struct page_list p = {.page = 2};
	uint64_t a, b, last_id = 0;
	uint32_t last_idx = 0;
	bool more = true;
	int64_t da[] = {300, 100, 200};

	fx_open(f, 0);
	a = commit_simple(f->s, 3, da);
	b = commit_simple(f->s, 2, NULL);
	assert_int_equal(spool_rtxn_begin(f->s, &rt), 0);
	/* pages of two: (a,0) (a,1) | (a,2) (b,0) | (b,1) */
	assert_int_equal(spool_walk_rcpts(rt, false, 0, 0, 0, take_page, &p, &last_id, &last_idx, &more), 1);
	assert_true(more);
	assert_int_equal(last_id, a);
	assert_int_equal(last_idx, 1);
	assert_int_equal(spool_walk_rcpts(rt, true, last_id, last_idx, 0, take_page, &p, &last_id, &last_idx, &more), 1);
	assert_true(more);
	assert_int_equal(spool_walk_rcpts(rt, true, last_id, last_idx, 0, take_page, &p, &last_id, &last_idx, &more), 0);
	assert_false(more);
	assert_int_equal(p.l.n, 5);
	assert_int_equal(p.l.v[0].id, a);
	assert_int_equal(p.l.v[2].idx, 2);
	assert_int_equal(p.l.v[2].due, T0 + 200);
	assert_int_equal(p.l.v[3].id, b);
	assert_int_equal(p.l.v[4].idx, 1);
	/* a budget bounds what one call looks at, and says there is more */
	p = (struct page_list){.page = 100};
	assert_int_equal(spool_walk_rcpts(rt, false, 0, 0, 3, take_page, &p, &last_id, &last_idx, &more), 0);
	assert_int_equal(p.l.n, 3);
	assert_true(more);
	assert_int_equal(spool_walk_rcpts(rt, true, last_id, last_idx, 3, take_page, &p, &last_id, &last_idx, &more), 0);
	assert_int_equal(p.l.n, 5);
	assert_false(more);
	/* after a key that is gone: the next one */
	p = (struct page_list){.page = 100};
	assert_int_equal(spool_walk_rcpts(rt, true, a, 7, 0, take_page, &p, &last_id, &last_idx, &more), 0);
	assert_int_equal(p.l.n, 2);
	assert_int_equal(p.l.v[0].id, b);
	spool_rtxn_end(rt);
}

/* ---- aborts ------------------------------------------------------------------ */

static void test_abort_leaves_nothing(void **state)
{
	struct fx *f = *state;
	struct spool *s = fx_open(f, 0);
	struct spool_wtxn *t;
	struct spool_rtxn *rt;
	struct spool_msg m;
	struct spool_rcpt r;
	struct seen_list l = {0};
	uint64_t id, keep;
	bool gone;

	assert_int_equal(spool_wtxn_begin(s, &t), 0);
	id = put_simple(t, 1000, 3, NULL);
	spool_wtxn_abort(t);
	assert_counts(s, 0, 0);
	assert_int_equal(spool_recover(s, collect, &l), 0);
	assert_int_equal(l.n, 0);
	assert_int_equal(spool_rtxn_begin(s, &rt), 0);
	assert_int_equal(spool_get_msg(rt, id, &m), SPOOL_NOTFOUND);
	assert_int_equal(spool_get_rcpt(rt, id, 0, &r), SPOOL_NOTFOUND);
	spool_rtxn_end(rt);

	/* Aborting deletes and updates of stored data changes nothing either. */
	keep = commit_simple(s, 2, NULL);
	assert_int_equal(spool_wtxn_begin(s, &t), 0);
	assert_int_equal(spool_del_rcpt(t, keep, 0, &gone), 0);
	assert_int_equal(spool_del_rcpt(t, keep, 1, &gone), 0);
	assert_true(gone);
	spool_wtxn_abort(t);
	assert_int_equal(spool_wtxn_begin(s, &t), 0);
	put_rcpt_at(t, keep, 0, T0 + 999, 1, "changed@example.test", "x");
	spool_wtxn_abort(t);
	assert_counts(s, 1, 2);
	assert_consistent(s);
	assert_int_equal(spool_rtxn_begin(s, &rt), 0);
	assert_int_equal(spool_get_rcpt(rt, keep, 0, &r), 0);
	assert_string_equal(r.addr, "r0@example.test");
	assert_int_equal(r.next_attempt_ms, T0);
	spool_rtxn_end(rt);
}

/* ---- durability: SIGKILL during a stream of commits -------------------------- */

#define DUR_MAX 400

static void dur_child(const char *dir, int fd)
{
	struct spool *s;
	struct spool_wtxn *t;
	uint64_t id;

	if (spool_open(&s, dir, 0))
		_exit(2);
	for (int i = 0; i < DUR_MAX; i++) {
		if (spool_wtxn_begin(s, &t))
			_exit(3);
		id = put_simple(t, 1 + (size_t)i * 37 % 4000, 2, NULL);
		if (spool_wtxn_commit(t))
			_exit(4);
		/* Reported only once the commit returned: durable from here. */
		if (write(fd, &id, sizeof(id)) != (ssize_t)sizeof(id))
			_exit(5);
	}
	spool_close(s);
	_exit(0);
}

static size_t read_ids(int fd, uint64_t *ids, size_t have, size_t want)
{
	while (have < want) {
		ssize_t n = read(fd, &ids[have], sizeof(ids[0]));

		if (n <= 0)
			break;
		assert_int_equal(n, sizeof(ids[0])); /* 8-byte writes to a pipe are atomic */
		have++;
	}
	return have;
}

/* Every reported id is there with its body and recipients; the spool holds
 * those, plus at most one message committed but not yet reported. */
static void dur_check(struct fx *f, const uint64_t *ids, size_t n, uint64_t *base)
{
	struct spool_rtxn *rt;
	struct spool_msg m;
	struct spool_rcpt r;
	uint64_t nm, nr;
	char body[4096];

	fx_open(f, 0);
	assert_int_equal(spool_rtxn_begin(f->s, &rt), 0);
	for (size_t i = 0; i < n; i++) {
		if (spool_get_msg(rt, ids[i], &m) != 0)
			fail_msg("reported id %llu (#%zu) missing after SIGKILL", (unsigned long long)ids[i], i);
		fill_body(body, m.body_len, ids[i]);
		assert_memory_equal(m.body, body, m.body_len);
		assert_int_equal(spool_get_rcpt(rt, ids[i], 0, &r), 0);
		assert_int_equal(spool_get_rcpt(rt, ids[i], 1, &r), 0);
	}
	spool_rtxn_end(rt);
	assert_int_equal(spool_count(f->s, &nm, &nr), 0);
	assert_true(nm >= *base + n && nm <= *base + n + 1);
	assert_int_equal(nr, 2 * nm);
	*base = nm - n;
	assert_consistent(f->s);
	spool_close(f->s);
	f->s = NULL;
}

static void test_durability_sigkill(void **state)
{
	struct fx *f = *state;
	unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
	time_t start = time(NULL);
	uint64_t *ids = calloc(8 * DUR_MAX, sizeof(*ids));
	uint64_t base = 0; /* committed but never reported, over all rounds */
	size_t total = 0;
	int iter;

	assert_non_null(ids);
	srand(seed);
	/* The same spool each round: recovery after recovery after SIGKILL. */
	for (iter = 0; iter < 8 && time(NULL) - start < 20; iter++) {
		int p[2], status;
		size_t n;
		pid_t pid;

		assert_int_equal(pipe(p), 0);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(p[0]);
			dur_child(f->dir, p[1]);
		}
		close(p[1]);
		/* Kill after a random number of reported commits plus a random
		 * delay, so the signal lands anywhere in a commit. */
		n = read_ids(p[0], ids + total, 0, 1 + (size_t)rand() % 60);
		usleep((useconds_t)(rand() % 3000));
		kill(pid, SIGKILL);
		n = read_ids(p[0], ids + total, n, DUR_MAX);
		close(p[0]);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) ||
			    (WIFEXITED(status) && WEXITSTATUS(status) == 0));
		total += n;
		dur_check(f, ids, total, &base);
	}
	print_message("durability: %d rounds, %zu reported commits all present, "
		      "%llu committed unreported (seed %u)\n",
		      iter, total, (unsigned long long)base, seed);
	free(ids);
}

/* A child that opens the spool (and begins a read txn when asked), says
 * so on a pipe, then waits to be killed. */
static pid_t spawn_holder(const char *dir, bool read_txn)
{
	int ready[2];
	char c;
	pid_t pid;

	assert_int_equal(pipe(ready), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct spool *s;
		struct spool_rtxn *rt;

		close(ready[0]);
		if (spool_open(&s, dir, 0) || (read_txn && spool_rtxn_begin(s, &rt)))
			_exit(2);
		if (write(ready[1], "r", 1) != 1)
			_exit(3);
		for (;;)
			pause();
	}
	close(ready[1]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	return pid;
}

static void kill_wait(pid_t pid)
{
	int status;

	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
}

/* A reader killed while its read txn is live leaves its slot in the shared
 * reader table (it would pin old pages forever); the next open clears it.
 * A holder process keeps the spool open meanwhile, so LMDB does not simply
 * reset the whole lock file as it does for the first opener. */
static void test_stale_reader_cleared(void **state)
{
	struct fx *f = *state;
	pid_t holder, reader, pid;
	int err[2], status;
	char buf[512] = "";
	ssize_t n, got = 0;

	fx_open(f, 0);
	commit_simple(f->s, 1, NULL);
	spool_close(f->s); /* a forked child must not inherit an open env */
	f->s = NULL;
	holder = spawn_holder(f->dir, false);
	reader = spawn_holder(f->dir, true);
	kill_wait(reader);

	assert_int_equal(pipe(err), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct spool *s;
		int ret;

		dup2(err[1], 2);
		if ((ret = spool_open(&s, f->dir, 0)) == 0)
			spool_close(s);
		_exit(ret ? 2 : 0);
	}
	close(err[1]);
	while ((n = read(err[0], buf + got, sizeof(buf) - 1 - (size_t)got)) > 0)
		got += n;
	close(err[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	kill_wait(holder);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_non_null(strstr(buf, "spool: cleared 1 stale reader slot(s)"));
}

/* ---- full map ---------------------------------------------------------------- */

static void test_map_full(void **state)
{
	struct fx *f = *state;
	struct spool *s = fx_open(f, 1u << 20);
	struct spool_wtxn *t;
	struct spool_rtxn *rt;
	struct spool_msg m;
	uint64_t ids[400];
	size_t n = 0;
	uint64_t used, size;
	int ret = 0;
	bool gone;

	while (n < 400) {
		uint64_t id;

		assert_int_equal(spool_wtxn_begin(s, &t), 0);
		ret = spool_alloc_id(t, &id);
		if (ret == 0) {
			char body[4000];
			struct spool_msg pm = {.id = id, .arrival_ms = T0, .n_rcpt = 1, .sender = "a@b",
					       .body = body, .body_len = sizeof(body)};
			fill_body(body, sizeof(body), id);
			ret = spool_put_msg(t, &pm);
		}
		if (ret == 0) {
			struct spool_rcpt r = {.msg_id = id, .next_attempt_ms = T0, .addr = "x@y"};
			ret = spool_put_rcpt(t, &r);
		}
		if (ret) {
			spool_wtxn_abort(t);
			break;
		}
		if ((ret = spool_wtxn_commit(t)))
			break;
		ids[n++] = id;
	}
	assert_int_equal(ret, SPOOL_FULL);
	assert_true(spool_is_full(ret));
	assert_true(n > 10);
	assert_int_equal(spool_usage(s, &used, &size), 0);
	assert_int_equal(size, 1u << 20);
	assert_true(used > size / 2 && used <= size);

	/* Still readable and consistent; nothing of the failed txn stored. */
	assert_counts(s, n, n);
	assert_consistent(s);
	assert_int_equal(spool_rtxn_begin(s, &rt), 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(spool_get_msg(rt, ids[i], &m), 0);
	spool_rtxn_end(rt);

	/* The queue can still drain: deleting frees pages for later txns. */
	assert_int_equal(spool_wtxn_begin(s, &t), 0);
	for (size_t i = 0; i < n / 2; i++)
		assert_int_equal(spool_del_rcpt(t, ids[i], 0, &gone), 0);
	assert_int_equal(spool_wtxn_commit(t), 0);
	commit_simple(s, 1, NULL);
	assert_consistent(s);

	/* Reopened with a larger map, it grows. */
	fx_reopen(f, 0);
	assert_counts(f->s, n - n / 2 + 1, n - n / 2 + 1);
	for (int i = 0; i < 10; i++)
		commit_simple(f->s, 2, NULL);
	assert_consistent(f->s);
}

/* Where new mail is refused, a DSN (spool_put_msg_reserve) still fits: it
 * may use three quarters of the reserve. */
static void test_reserve_for_dsn(void **state)
{
	struct fx *f = *state;
	struct spool *s = fx_open(f, 1u << 20);
	struct spool_wtxn *t;
	char body[4000];
	uint64_t id;
	int ret = 0, n = 0;

	fill_body(body, sizeof(body), 1);
	while (ret == 0 && n < 400) {
		struct spool_msg pm = {.arrival_ms = T0, .n_rcpt = 1, .sender = "a@b", .body = body,
				       .body_len = sizeof(body)};

		assert_int_equal(spool_wtxn_begin(s, &t), 0);
		assert_int_equal(spool_alloc_id(t, &pm.id), 0);
		if ((ret = spool_put_msg(t, &pm))) {
			spool_wtxn_abort(t);
			break;
		}
		assert_int_equal(spool_wtxn_commit(t), 0);
		n++;
	}
	assert_int_equal(ret, SPOOL_FULL);
	/* the same size as a DSN: taken from the reserve */
	assert_int_equal(spool_wtxn_begin(s, &t), 0);
	assert_int_equal(spool_alloc_id(t, &id), 0);
	struct spool_msg dsn = {.id = id, .arrival_ms = T0, .n_rcpt = 1, .sender = "", .body = body,
				.body_len = sizeof(body)};
	assert_int_equal(spool_put_msg(t, &dsn), SPOOL_FULL);
	spool_wtxn_abort(t);
	assert_int_equal(spool_wtxn_begin(s, &t), 0);
	assert_int_equal(spool_alloc_id(t, &dsn.id), 0);
	assert_int_equal(spool_put_msg_reserve(t, &dsn), 0);
	assert_int_equal(spool_wtxn_commit(t), 0);
}

/* ---- pauses (queue/pause.c) -------------------------------------------------- */

static int collect_pause(void *arg, const char *name)
{
	char *out = arg;

	strcat(out, name);
	strcat(out, ";");
	return 0;
}

static void test_pauses(void **state)
{
	struct fx *f = *state;
	struct spool *s = fx_open(f, 0);
	struct spool_wtxn *t;
	char long_name[300], got[256] = "";

	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = 0;
	assert_int_equal(spool_wtxn_begin(s, &t), 0);
	assert_int_equal(pause_put(t, "b.test", T0), 0);
	assert_int_equal(pause_put(t, "a.test", T0), 0);
	assert_int_equal(pause_put(t, "a.test", T0 + 1), 0);   /* again: still one */
	assert_int_equal(pause_put(t, "", T0), -EINVAL);
	assert_int_equal(pause_put(t, long_name, T0), -EINVAL);
	assert_int_equal(pause_del(t, "never.test"), 0);
	assert_int_equal(spool_wtxn_commit(t), 0);
	fx_reopen(f, 0);
	s = f->s;
	assert_int_equal(pause_each(s, collect_pause, got), 0);
	assert_string_equal(got, "a.test;b.test;");
	assert_int_equal(spool_wtxn_begin(s, &t), 0);
	assert_int_equal(pause_del(t, "a.test"), 0);
	assert_int_equal(spool_wtxn_commit(t), 0);
	got[0] = 0;
	assert_int_equal(pause_each(s, collect_pause, got), 0);
	assert_string_equal(got, "b.test;");
}

/* ---- damaged records --------------------------------------------------------- */

static void raw_open(const char *dir, MDB_env **env, MDB_txn **txn, MDB_dbi *msg, MDB_dbi *rcpt,
		     MDB_dbi *due)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/data", dir);
	assert_int_equal(mdb_env_create(env), 0);
	assert_int_equal(mdb_env_set_maxdbs(*env, 4), 0);
	/* Not the 64 GiB the spool wrote into the file's meta page: valgrind's
	 * address space refuses that. LMDB keeps at least the used size. */
	assert_int_equal(mdb_env_set_mapsize(*env, 16u << 20), 0);
	assert_int_equal(mdb_env_open(*env, path, 0, 0640), 0);
	assert_int_equal(mdb_txn_begin(*env, NULL, 0, txn), 0);
	assert_int_equal(mdb_dbi_open(*txn, "msg", 0, msg), 0);
	assert_int_equal(mdb_dbi_open(*txn, "rcpt", 0, rcpt), 0);
	assert_int_equal(mdb_dbi_open(*txn, "due", 0, due), 0);
}

static void be64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static void be32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (24 - 8 * i));
}

/* Every prefix of a valid record, and some lying length fields, decode to
 * -EBADMSG; valgrind sees any read past the value. */
static void test_truncated_records(void **state)
{
	struct fx *f = *state;
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dm, dr, dd;
	MDB_val k, v;
	struct spool_rtxn *rt;
	struct spool_msg m;
	struct spool_rcpt r;
	uint8_t mrec[256], rrec[256], kb[12];
	size_t mlen, rlen;
	uint64_t id;

	fx_open(f, 0);
	id = commit_simple(f->s, 1, NULL);
	spool_close(f->s);
	f->s = NULL;
	raw_open(f->dir, &env, &txn, &dm, &dr, &dd);
	be64(kb, id);
	be32(kb + 8, 0);
	k = (MDB_val){8, kb};
	assert_int_equal(mdb_get(txn, dm, &k, &v), 0);
	mlen = v.mv_size;
	assert_true(mlen <= sizeof(mrec));
	memcpy(mrec, v.mv_data, mlen);
	k.mv_size = 12;
	assert_int_equal(mdb_get(txn, dr, &k, &v), 0);
	rlen = v.mv_size;
	assert_true(rlen <= sizeof(rrec));
	memcpy(rrec, v.mv_data, rlen);
	/* Message i + 1 holds the first i bytes of the record; so does recipient (i + 1, 0). */
	for (size_t i = 0; i < mlen; i++) {
		be64(kb, i + 1);
		k = (MDB_val){8, kb};
		v = (MDB_val){i, mrec};
		assert_int_equal(mdb_put(txn, dm, &k, &v, 0), 0);
		if (i < rlen) {
			k.mv_size = 12;
			v = (MDB_val){i, rrec};
			assert_int_equal(mdb_put(txn, dr, &k, &v, 0), 0);
		}
	}
	/* Lying lengths: sender length huge; body length one short; version 2. */
	uint8_t bad[3][256];
	memcpy(bad[0], mrec, mlen);
	bad[0][19] = 0x7f;
	memcpy(bad[1], mrec, mlen);
	bad[1][32]--;
	memcpy(bad[2], mrec, mlen);
	bad[2][0] = 2;
	for (int j = 0; j < 3; j++) {
		be64(kb, 1000 + (uint64_t)j);
		k = (MDB_val){8, kb};
		v = (MDB_val){mlen, bad[j]};
		assert_int_equal(mdb_put(txn, dm, &k, &v, 0), 0);
	}
	/* A recipient whose address has no terminator where its length says. */
	memcpy(bad[0], rrec, rlen);
	bad[0][24]++;
	be64(kb, 1000);
	k = (MDB_val){12, kb};
	v = (MDB_val){rlen, bad[0]};
	assert_int_equal(mdb_put(txn, dr, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);

	fx_open(f, 0);
	assert_int_equal(spool_rtxn_begin(f->s, &rt), 0);
	for (size_t i = 0; i < mlen; i++) {
		assert_int_equal(spool_get_msg(rt, i + 1, &m), -EBADMSG);
		if (i < rlen)
			assert_int_equal(spool_get_rcpt(rt, i + 1, 0, &r), -EBADMSG);
	}
	for (int j = 0; j < 3; j++)
		assert_int_equal(spool_get_msg(rt, 1000 + (uint64_t)j, &m), -EBADMSG);
	assert_int_equal(spool_get_rcpt(rt, 1000, 0, &r), -EBADMSG);
	assert_int_equal(spool_get_msg(rt, id, &m), 0); /* the original is fine */
	spool_rtxn_end(rt);
}

/* The due index out of step with "rcpt": recovery skips orphan keys and
 * still reports a recipient without one. */
static void test_recover_inconsistent(void **state)
{
	struct fx *f = *state;
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dm, dr, dd;
	MDB_val k, v = {0, NULL};
	uint8_t kb[20];
	struct seen_list l = {0};
	struct spool_verify ver;
	uint64_t a, b;
	int64_t da[] = {10, 20};

	fx_open(f, 0);
	a = commit_simple(f->s, 2, da);
	b = commit_simple(f->s, 1, NULL);
	spool_close(f->s);
	f->s = NULL;
	raw_open(f->dir, &env, &txn, &dm, &dr, &dd);
	be64(kb, T0 + 10); /* drop a.0's due key */
	be64(kb + 8, a);
	be32(kb + 16, 0);
	k = (MDB_val){20, kb};
	assert_int_equal(mdb_del(txn, dd, &k, NULL), 0);
	be64(kb, T0 + 5); /* a due key for a recipient that does not exist */
	be64(kb + 8, a);
	be32(kb + 16, 7);
	assert_int_equal(mdb_put(txn, dd, &k, &v, 0), 0);
	be64(kb, T0 + 15); /* a stale key: b.0 is due at T0 */
	be64(kb + 8, b);
	be32(kb + 16, 0);
	assert_int_equal(mdb_put(txn, dd, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);

	fx_open(f, 0);
	assert_int_equal(spool_verify(f->s, &ver), 0);
	assert_int_equal(ver.rcpt_no_due, 1);
	assert_int_equal(ver.due_no_rcpt, 2);
	assert_int_equal(ver.problems, 3);
	assert_int_equal(spool_recover(f->s, collect, &l), 0);
	assert_int_equal(l.n, 3);
	assert_int_equal(l.v[0].id, b);  /* T0 */
	assert_int_equal(l.v[1].id, a);  /* T0 + 20 */
	assert_int_equal(l.v[1].idx, 1);
	assert_int_equal(l.v[2].id, a);  /* no due key: reported last */
	assert_int_equal(l.v[2].idx, 0);

	/* Replacing the recipient puts its due key back. */
	struct spool_wtxn *t;
	assert_int_equal(spool_wtxn_begin(f->s, &t), 0);
	put_rcpt_at(t, a, 0, T0 + 30, 1, "r0@example.test", "");
	assert_int_equal(spool_wtxn_commit(t), 0);
	assert_int_equal(spool_verify(f->s, &ver), 0);
	assert_int_equal(ver.rcpt_no_due, 0);
}

/* ---- readers ----------------------------------------------------------------- */

struct reader_arg {
	struct spool *s;
	uint64_t id;
	int errors;
	struct spool_rtxn *handoff; /* begun by the main thread, ended here */
};

static void *reader_main(void *p)
{
	struct reader_arg *a = p;
	struct spool_rtxn *rt;
	struct spool_msg m;

	spool_rtxn_end(a->handoff);
	for (int i = 0; i < 500; i++) {
		if (spool_rtxn_begin(a->s, &rt)) {
			a->errors++;
			continue;
		}
		if (spool_get_msg(rt, a->id, &m) || m.body_len != 100)
			a->errors++;
		spool_rtxn_end(rt);
	}
	return NULL;
}

static void test_concurrent_readers(void **state)
{
	struct fx *f = *state;
	struct spool *s = fx_open(f, 0);
	struct reader_arg args[4];
	pthread_t th[4];
	struct spool_rtxn *many[40];
	uint64_t id = commit_simple(s, 1, NULL);

	/* More live read txns than the cache holds, all in one thread. */
	for (int i = 0; i < 40; i++)
		assert_int_equal(spool_rtxn_begin(s, &many[i]), 0);
	for (int i = 0; i < 40; i++)
		spool_rtxn_end(many[i]);
	for (int i = 0; i < 4; i++) {
		args[i] = (struct reader_arg){.s = s, .id = id};
		assert_int_equal(spool_rtxn_begin(s, &args[i].handoff), 0);
		assert_int_equal(pthread_create(&th[i], NULL, reader_main, &args[i]), 0);
	}
	for (int i = 0; i < 20; i++)
		commit_simple(s, 1, NULL); /* the writer goes on meanwhile */
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(args[i].errors, 0);
	}
	assert_counts(s, 21, 21);
}

/* ---- errors ------------------------------------------------------------------ */

static void test_strerror(void **state)
{
	struct fx *f = *state;
	struct spool *s = NULL;

	assert_non_null(strstr(spool_strerror(SPOOL_FULL), "MDB_MAP_FULL"));
	assert_string_equal(spool_strerror(-ENOSPC), "No space left on device");
	assert_string_equal(spool_strerror(-EBADMSG), "Bad message");
	assert_string_equal(spool_strerror(SPOOL_NOTFOUND), "not found in the spool");
	assert_string_equal(spool_strerror(0), "success");
	assert_non_null(strstr(spool_strerror(MDB_KEYEXIST), "MDB_KEYEXIST"));
	assert_true(spool_is_full(SPOOL_FULL));
	assert_true(spool_is_full(-ENOSPC));
	assert_false(spool_is_full(-EIO));
	assert_false(spool_is_full(MDB_TXN_FULL));

	/* A spool dir that is a file: a -errno, not a crash. */
	char path[96];
	FILE *fp;
	snprintf(path, sizeof(path), "%s/file", f->dir);
	assert_non_null(fp = fopen(path, "w"));
	fclose(fp);
	assert_int_equal(spool_open(&s, path, 0), -ENOTDIR);
	assert_null(s);
	/* Nested directories are created. */
	snprintf(path, sizeof(path), "%s/a/b/c", f->dir);
	assert_int_equal(spool_open(&s, path, 0), 0);
	spool_close(s);
}

/* RFC 3461 parameters: RET with the message, NOTIFY and ORCPT with each
 * recipient, kept across a rewrite (a deferral); records written before
 * they existed (pool-less 32-byte and 36-byte headers, flags 0) read as
 * "not given"; a lying ORCPT length is -EBADMSG. */
static void test_dsn_params(void **state)
{
	struct fx *f = *state;
	struct spool *s = fx_open(f, 0);
	struct spool_wtxn *t;
	struct spool_rtxn *rt;
	struct spool_msg m = {.arrival_ms = T0, .n_rcpt = 3, .sender = "s@example.test", .body = "x", .body_len = 1,
			      .ret = SPOOL_RET_FULL, .envid = "env 1", .dkim_at_delivery = true}, g;
	struct spool_rcpt r, w;
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dm, dr, dd;
	MDB_val k, v;
	uint8_t kb[12], rec[128];

	assert_int_equal(spool_wtxn_begin(s, &t), 0);
	assert_int_equal(spool_alloc_id(t, &m.id), 0);
	assert_int_equal(spool_put_msg(t, &m), 0);
	w = (struct spool_rcpt){.msg_id = m.id, .idx = 0, .next_attempt_ms = T0, .queued_ms = T0, .addr = "a@x.test",
				.last_response = "", .pool = "blast", .notify = SPOOL_NOTIFY_GIVEN | SPOOL_NOTIFY_NEVER,
				.orcpt = "rfc822;Old+One@y.test"};
	assert_int_equal(spool_put_rcpt(t, &w), 0);
	w = (struct spool_rcpt){.msg_id = m.id, .idx = 1, .next_attempt_ms = T0, .queued_ms = T0, .addr = "b@x.test",
				.last_response = "", .notify = SPOOL_NOTIFY_GIVEN | SPOOL_NOTIFY_SUCCESS |
								SPOOL_NOTIFY_DELAY};
	assert_int_equal(spool_put_rcpt(t, &w), 0);
	put_rcpt_at(t, m.id, 2, T0, 0, "c@x.test", "");
	assert_int_equal(spool_wtxn_commit(t), 0);

	assert_int_equal(spool_rtxn_begin(s, &rt), 0);
	assert_int_equal(spool_get_msg(rt, m.id, &g), 0);
	assert_int_equal(g.ret, SPOOL_RET_FULL);
	assert_true(g.dkim_at_delivery);
	assert_string_equal(g.envid, "env 1");
	assert_int_equal(spool_get_rcpt(rt, m.id, 0, &r), 0);
	assert_int_equal(r.notify, SPOOL_NOTIFY_GIVEN | SPOOL_NOTIFY_NEVER);
	assert_string_equal(r.orcpt, "rfc822;Old+One@y.test");
	assert_string_equal(r.addr, "a@x.test");
	assert_string_equal(r.pool, "blast");
	assert_int_equal(spool_get_rcpt(rt, m.id, 1, &r), 0);
	assert_int_equal(r.notify, SPOOL_NOTIFY_GIVEN | SPOOL_NOTIFY_SUCCESS | SPOOL_NOTIFY_DELAY);
	assert_string_equal(r.orcpt, "");
	assert_int_equal(spool_get_rcpt(rt, m.id, 2, &r), 0);
	assert_int_equal(r.notify, 0);
	assert_string_equal(r.orcpt, "");
	spool_rtxn_end(rt);
	assert_consistent(s);

	/* the stored bytes: NOTIFY in byte 1, ORCPT inside the header */
	spool_close(f->s);
	f->s = NULL;
	raw_open(f->dir, &env, &txn, &dm, &dr, &dd);
	be64(kb, m.id);
	be32(kb + 8, 0);
	k = (MDB_val){12, kb};
	assert_int_equal(mdb_get(txn, dr, &k, &v), 0);
	assert_true(v.mv_size <= sizeof(rec));
	memcpy(rec, v.mv_data, v.mv_size);
	assert_int_equal(rec[1], SPOOL_NOTIFY_GIVEN | SPOOL_NOTIFY_NEVER);
	assert_int_equal(rec[2] | rec[3] << 8, 36 + 4 + 21 + 1);
	assert_memory_equal(rec + 40, "rfc822;Old+One@y.test", 22);
	/* a lying ORCPT length: refused */
	rec[36] = 200;
	be32(kb + 8, 7);
	assert_int_equal(mdb_put(txn, dr, &k, &(MDB_val){v.mv_size, rec}, 0), 0);
	/* an old record (36-byte header, byte 1 zero): recipient 8 */
	{
		static const char tail[] = "o@x.test\0\0";
		uint8_t old[36 + sizeof(tail) - 1] = {1, 0, 36, 0};

		old[24] = 8;
		memcpy(old + 36, tail, sizeof(tail) - 1);
		be32(kb + 8, 8);
		assert_int_equal(mdb_put(txn, dr, &k, &(MDB_val){sizeof(old), old}, 0), 0);
	}
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	fx_open(f, 0);
	assert_int_equal(spool_rtxn_begin(f->s, &rt), 0);
	assert_int_equal(spool_get_rcpt(rt, m.id, 7, &r), -EBADMSG);
	assert_int_equal(spool_get_rcpt(rt, m.id, 8, &r), 0);
	assert_string_equal(r.addr, "o@x.test");
	assert_int_equal(r.notify, 0);
	assert_string_equal(r.orcpt, "");
	assert_string_equal(r.pool, "");
	spool_rtxn_end(rt);

	/* an ORCPT too long to store is refused, nothing written */
	{
		char big[1100];

		memset(big, 'a', sizeof(big) - 1);
		big[sizeof(big) - 1] = 0;
		w = (struct spool_rcpt){.msg_id = m.id, .idx = 9, .next_attempt_ms = T0, .addr = "z@x.test", .orcpt = big};
		assert_int_equal(spool_wtxn_begin(f->s, &t), 0);
		assert_int_equal(spool_put_rcpt(t, &w), -EINVAL);
		spool_wtxn_abort(t);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_roundtrip_three_rcpts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dsn_params, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_msg_twice, setup, teardown),
		cmocka_unit_test_setup_teardown(test_walk_rcpts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_rcpt_replaces, setup, teardown),
		cmocka_unit_test_setup_teardown(test_del_all_rcpts_deletes_msg, setup, teardown),
		cmocka_unit_test_setup_teardown(test_del_missing_rcpt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ids_increase_across_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover_due_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_abort_leaves_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_durability_sigkill, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_reader_cleared, setup, teardown),
		cmocka_unit_test_setup_teardown(test_map_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_records, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover_inconsistent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_readers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_strerror, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reserve_for_dsn, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pauses, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
