/*
 * test_spool_writer.c - the spool's writer thread (queue/spool_writer.c):
 * every submitted request is applied and committed and its done() called
 * with 0; requests submitted together share commits; a failing apply fails
 * only its own request; gathering (spool-commit-delay) never loses or
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
	rs[17].fail = -EIO;
	assert_int_equal(spool_writer_start(&w, f->s, NULL, NULL, 1000), 0);
	for (int i = 0; i < N; i++)
		spool_writer_submit(&w, &rs[i].base);
	wait_done(&done_count, N);
	for (int i = 0; i < N; i++)
		assert_int_equal(rs[i].result, i == 17 ? -EIO : 0);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_batch_no_gather, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_gather, setup, teardown),
		cmocka_unit_test_setup_teardown(test_trickle_no_gather, setup, teardown),
		cmocka_unit_test_setup_teardown(test_trickle_gather, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failure_isolated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_drains, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
