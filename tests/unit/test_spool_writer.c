/*
 * test_spool_writer.c - the spool's writer thread (queue/spool_writer.c):
 * every submitted request is applied and committed and its done() called
 * with 0; requests submitted together share commits; a failing apply fails
 * only its own request, found by halving the batch (a bounded number of
 * tries, not one per request); a fatal error (EIO, MDB_PANIC) stops the
 * writer for good and says so once; the fault hook (SALVO_SPOOL_FAIL_COMMITS)
 * fails exactly the commits it names; a request handed back with
 * spool_writer_retry() is applied again and commits; gathering (spool-commit-delay) never loses or
 * reorders work and is off with a delay of 0; stop drains what is queued.
 * Nothing here asserts a duration: the writer's waits are checked by their
 * counters, so a slow machine (or valgrind) cannot make it flaky.
 *
 * Each test works in its own mkdtemp() directory, removed at the end.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "queue/spool.h"
#include "queue/spool_writer.h"
#include "tmp_dir.h"

struct fx {
	char dir[64];
	struct spool *s;
};

struct req {
	struct spool_req base;
	int fail;                  /* apply() returns this instead of writing */
	uint64_t id;               /* the message it wrote */
	int result;                /* from done() */
	int seq;                   /* order of done() calls */
	int *done_count;           /* shared: written by the writer, read by the test */
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	if (tmp_dir_make(f->dir, sizeof(f->dir), "test_spool_writer") < 0 || spool_open(&f->s, f->dir, 0) != 0) {
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

static int apply_msg(struct spool_req *r, struct spool_wtxn *t, void *ctx)
{
	struct req *q = (struct req *)r;
	char body[64];
	int ret;

	if (q->fail)
		return q->fail;
	if ((ret = spool_alloc_id(t, &q->id)) != 0)
		return ret;
	snprintf(body, sizeof(body), "Subject: %llu\r\n\r\nbody\r\n", (unsigned long long)q->id);
	struct spool_msg m = {
		.id = q->id, .arrival_ms = 1, .n_rcpt = 1, .sender = "a@b.test", .campaign = "",
		.source_ip = "", .body = body, .body_len = strlen(body),
	};
	return spool_put_msg(t, &m);
}

static void done_msg(struct spool_req *r, int result, void *ctx)
{
	struct req *q = (struct req *)r;

	q->result = result;
	q->seq = __atomic_add_fetch(q->done_count, 1, __ATOMIC_RELEASE);
}

static void init_reqs(struct req *rs, size_t n, int *done_count)
{
	memset(rs, 0, n * sizeof(*rs));
	for (size_t i = 0; i < n; i++) {
		rs[i].base.apply = apply_msg;
		rs[i].base.done = done_msg;
		rs[i].result = 1; /* "not called" */
		rs[i].done_count = done_count;
	}
}

static int done_so_far(const int *done_count)
{
	return __atomic_load_n(done_count, __ATOMIC_ACQUIRE);
}

static void wait_done(const int *done_count, int n)
{
	struct timespec ts = {0, 1000000};

	for (int i = 0; i < 60000 && done_so_far(done_count) < n; i++)
		nanosleep(&ts, NULL);
	assert_int_equal(done_so_far(done_count), n);
}

/* Every message the requests wrote is in the spool, once. */
static void assert_stored(struct spool *s, const struct req *rs, size_t n)
{
	struct spool_rtxn *rt;
	struct spool_msg m;

	assert_int_equal(spool_rtxn_begin(s, &rt), 0);
	for (size_t i = 0; i < n; i++) {
		if (rs[i].fail)
			continue;
		assert_int_equal(spool_get_msg(rt, rs[i].id, &m), 0);
		assert_int_equal(m.id, rs[i].id);
		for (size_t j = 0; j < i; j++)
			assert_true(rs[j].fail || rs[j].id != rs[i].id);
	}
	spool_rtxn_end(rt);
}

static void run_many(struct spool *s, unsigned gather_us)
{
	enum { N = 2000 };
	struct spool_writer w;
	struct req *rs = calloc(N, sizeof(*rs));
	int done_count = 0;

	assert_non_null(rs);
	init_reqs(rs, N, &done_count);
	assert_int_equal(spool_writer_start(&w, s, NULL, NULL, gather_us), 0);
	for (size_t i = 0; i < N; i++)
		spool_writer_submit(&w, &rs[i].base);
	wait_done(&done_count, N);
	/* done() runs in submission order, each with success */
	for (size_t i = 0; i < N; i++) {
		assert_int_equal(rs[i].result, 0);
		assert_int_equal(rs[i].seq, (int)i + 1);
	}
	assert_int_equal(w.stats.requests, N);
	assert_true(w.stats.commits < N); /* submitted together, committed together */
	assert_true(w.stats.max_batch > 1);
	if (!gather_us)
		assert_int_equal(w.stats.gathers, 0);
	assert_true(w.stats.gathers <= w.stats.commits);
	spool_writer_stop(&w);
	assert_stored(s, rs, N);
	free(rs);
}

static void test_batch_no_gather(void **state)
{
	run_many(((struct fx *)*state)->s, 0);
}

static void test_batch_gather(void **state)
{
	run_many(((struct fx *)*state)->s, 1000);
}

/* A trickle, one request after another's done(): with gathering on, a
 * request that finds the spool just busy may wait for company, but every
 * one still commits; with it off, none ever waits. */
static void trickle(struct spool *s, unsigned gather_us)
{
	enum { N = 40 };
	struct spool_writer w;
	struct req rs[N];
	int done_count = 0;

	init_reqs(rs, N, &done_count);
	assert_int_equal(spool_writer_start(&w, s, NULL, NULL, gather_us), 0);
	for (int i = 0; i < N; i++) {
		spool_writer_submit(&w, &rs[i].base);
		wait_done(&done_count, i + 1);
		assert_int_equal(rs[i].result, 0);
	}
	assert_int_equal(w.stats.commits, N); /* never two at once: each waited for the last */
	if (!gather_us)
		assert_int_equal(w.stats.gathers, 0);
	assert_true(w.stats.gathers <= N - 1); /* the first found the spool idle */
	spool_writer_stop(&w);
	assert_stored(s, rs, N);
}

static void test_trickle_no_gather(void **state)
{
	trickle(((struct fx *)*state)->s, 0);
}

static void test_trickle_gather(void **state)
{
	trickle(((struct fx *)*state)->s, 2000);
}

/* One failing apply in a batch: it alone gets the error, the rest commit. */
static void test_failure_isolated(void **state)
{
	struct fx *f = *state;
	enum { N = 50 };
	struct spool_writer w;
	struct req rs[N];
	int done_count = 0;

	init_reqs(rs, N, &done_count);
	rs[17].fail = -EBADMSG;
	assert_int_equal(spool_writer_start(&w, f->s, NULL, NULL, 1000), 0);
	for (int i = 0; i < N; i++)
		spool_writer_submit(&w, &rs[i].base);
	wait_done(&done_count, N);
	for (int i = 0; i < N; i++)
		assert_int_equal(rs[i].result, i == 17 ? -EBADMSG : 0);
	spool_writer_stop(&w);
	assert_stored(f->s, rs, N);
}

/* stop() right after the submits: everything queued is still committed. */
static void test_stop_drains(void **state)
{
	struct fx *f = *state;
	enum { N = 300 };
	struct spool_writer w;
	struct req rs[N];
	int done_count = 0;

	init_reqs(rs, N, &done_count);
	assert_int_equal(spool_writer_start(&w, f->s, NULL, NULL, 5000), 0);
	for (int i = 0; i < N; i++)
		spool_writer_submit(&w, &rs[i].base);
	spool_writer_stop(&w);
	assert_int_equal(done_so_far(&done_count), N);
	for (int i = 0; i < N; i++)
		assert_int_equal(rs[i].result, 0);
	assert_stored(f->s, rs, N);
}

/* A request whose apply() waits for the test: everything submitted
 * meanwhile forms the next batch, whatever the machine's speed. */
struct gate_req {
	struct req r;
	int open;
	int entered;
};

static int apply_gate(struct spool_req *r, struct spool_wtxn *t, void *ctx)
{
	struct gate_req *g = (struct gate_req *)r;
	struct timespec ts = {0, 1000000};

	__atomic_store_n(&g->entered, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&g->open, __ATOMIC_ACQUIRE))
		nanosleep(&ts, NULL);
	return apply_msg(r, t, ctx);
}

/* 64 requests in one batch, one of them failing: halving finds it in at
 * most 2 * log2(64) + 1 tries (one by one would take 65). */
static void test_failure_bisected(void **state)
{
	struct fx *f = *state;
	enum { N = 64 };
	struct spool_writer w;
	struct gate_req g;
	struct req rs[N];
	int done_count = 0;
	uint64_t commits0;

	init_reqs(rs, N, &done_count);
	init_reqs(&g.r, 1, &done_count);
	g.r.base.apply = apply_gate;
	g.open = g.entered = 0;
	rs[41].fail = -EBADMSG;
	assert_int_equal(spool_writer_start(&w, f->s, NULL, NULL, 0), 0);
	spool_writer_submit(&w, &g.r.base);
	while (!__atomic_load_n(&g.entered, __ATOMIC_ACQUIRE))
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	/* the writer waits inside the gate's transaction: the count is still;
	 * the gate's own commit is the next one */
	commits0 = __atomic_load_n(&w.stats.commits, __ATOMIC_ACQUIRE) + 1;
	for (int i = 0; i < N; i++)
		spool_writer_submit(&w, &rs[i].base);
	__atomic_store_n(&g.open, 1, __ATOMIC_RELEASE);
	wait_done(&done_count, N + 1);
	for (int i = 0; i < N; i++)
		assert_int_equal(rs[i].result, i == 41 ? -EBADMSG : 0);
	assert_int_equal(w.stats.max_batch, N);
	assert_true(w.stats.commits - commits0 <= 13);
	assert_true(w.stats.failures >= 1 && w.stats.failures <= 7);
	spool_writer_stop(&w);
	assert_stored(f->s, rs, N);
}

static int fatal_calls, fatal_err;

static void on_fatal(void *ctx, int err)
{
	fatal_calls++;
	fatal_err = err;
}

/* EIO is not split up: the batch fails, the writer stops writing, says so
 * once, and every later request fails with SPOOL_STOPPED (a 452). */
static void test_fatal_stops(void **state)
{
	struct fx *f = *state;
	enum { N = 10 };
	struct spool_writer w;
	struct req rs[N];
	int done_count = 0;

	init_reqs(rs, N, &done_count);
	fatal_calls = 0;
	rs[0].fail = -EIO;
	assert_int_equal(spool_writer_start(&w, f->s, NULL, NULL, 0), 0);
	w.on_fatal = on_fatal;
	spool_writer_submit(&w, &rs[0].base);
	wait_done(&done_count, 1);
	assert_int_equal(rs[0].result, -EIO);
	assert_true(spool_writer_failed(&w));
	for (int i = 1; i < N; i++)
		spool_writer_submit(&w, &rs[i].base);
	wait_done(&done_count, N);
	for (int i = 1; i < N; i++)
		assert_int_equal(rs[i].result, SPOOL_STOPPED);
	assert_true(spool_is_full(SPOOL_STOPPED));
	assert_int_equal(fatal_calls, 1);
	assert_int_equal(fatal_err, -EIO);
	assert_false(spool_writer_retry(&w, &rs[1].base, 1));
	spool_writer_stop(&w);
}

/* A producer that hands a failed request back (as outcomes do). */
struct retry_req {
	struct req r;
	struct spool_writer *w;
	int tries;
	int refused;               /* retry() said no (stopping) */
};

static void done_retry(struct spool_req *r, int result, void *ctx)
{
	struct retry_req *q = (struct retry_req *)r;

	q->tries++;
	if (result && spool_writer_retry(q->w, r, 1))
		return;
	q->refused = result != 0;
	done_msg(r, result, ctx);
}

/* The fault hook fails the 3 commits after the first; a request handed
 * back each time commits on its fourth try, without a restart. */
static void test_fault_hook_retry(void **state)
{
	char dir[64];
	struct spool *s;
	struct spool_writer w;
	struct req first;
	struct retry_req q;
	int done_count = 0;

	assert_int_equal(tmp_dir_make(dir, sizeof(dir), "test_spool_writer_fault"), 0);
	setenv("SALVO_SPOOL_FAIL_COMMITS", "3@1", 1);
	assert_int_equal(spool_open(&s, dir, 0), 0);
	unsetenv("SALVO_SPOOL_FAIL_COMMITS");
	init_reqs(&first, 1, &done_count);
	init_reqs(&q.r, 1, &done_count);
	q.r.base.done = done_retry;
	q.tries = q.refused = 0;
	assert_int_equal(spool_writer_start(&w, s, NULL, NULL, 0), 0);
	q.w = &w;
	spool_writer_submit(&w, &first.base);
	wait_done(&done_count, 1);
	assert_int_equal(first.result, 0);
	spool_writer_submit(&w, &q.r.base);
	wait_done(&done_count, 2);
	assert_int_equal(q.r.result, 0);
	assert_int_equal(q.tries, 4);
	assert_int_equal(w.stats.retries, 3);
	assert_int_equal(w.stats.failures, 3);
	assert_false(spool_writer_failed(&w));
	spool_writer_stop(&w);
	assert_stored(s, &q.r, 1);
	spool_close(s);
	tmp_dir_remove(dir);
}

/* A retry still waiting at stop() is tried once more at once; handed back
 * again, it is refused (the producer gives up: the spool keeps the old
 * state for the next start). */
static void test_retry_at_stop(void **state)
{
	char dir[64];
	struct spool *s;
	struct spool_writer w;
	struct retry_req q;
	int done_count = 0;

	assert_int_equal(tmp_dir_make(dir, sizeof(dir), "test_spool_writer_stop"), 0);
	setenv("SALVO_SPOOL_FAIL_COMMITS", "1000", 1);
	assert_int_equal(spool_open(&s, dir, 0), 0);
	unsetenv("SALVO_SPOOL_FAIL_COMMITS");
	init_reqs(&q.r, 1, &done_count);
	q.r.base.done = done_retry;
	q.tries = q.refused = 0;
	assert_int_equal(spool_writer_start(&w, s, NULL, NULL, 0), 0);
	q.w = &w;
	spool_writer_submit(&w, &q.r.base);
	spool_writer_stop(&w);
	assert_int_equal(done_so_far(&done_count), 1);
	assert_int_equal(q.r.result, -ENOSPC);
	assert_int_equal(q.refused, 1);
	spool_close(s);
	tmp_dir_remove(dir);
}

/* A malformed hook is refused, not ignored. */
static void test_fault_hook_malformed(void **state)
{
	char dir[64];
	struct spool *s = NULL;

	assert_int_equal(tmp_dir_make(dir, sizeof(dir), "test_spool_writer_bad"), 0);
	setenv("SALVO_SPOOL_FAIL_COMMITS", "3:EWHAT", 1);
	assert_int_equal(spool_open(&s, dir, 0), -EINVAL);
	setenv("SALVO_SPOOL_FAIL_COMMITS", "x", 1);
	assert_int_equal(spool_open(&s, dir, 0), -EINVAL);
	unsetenv("SALVO_SPOOL_FAIL_COMMITS");
	tmp_dir_remove(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_batch_no_gather, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_gather, setup, teardown),
		cmocka_unit_test_setup_teardown(test_trickle_no_gather, setup, teardown),
		cmocka_unit_test_setup_teardown(test_trickle_gather, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failure_isolated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_drains, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failure_bisected, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fatal_stops, setup, teardown),
		cmocka_unit_test(test_fault_hook_retry),
		cmocka_unit_test(test_retry_at_stop),
		cmocka_unit_test(test_fault_hook_malformed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
