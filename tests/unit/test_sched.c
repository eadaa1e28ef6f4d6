/* test_sched.c - the due heap, ready lists, batching by message, the
 * retry/expiry policy (outcome_decide), freeing idle queues (sched_sweep)
 * and the paused-name set. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/config.h"
#include "engine/outcome.h"
#include "engine/scheduler.h"

static struct config cfg;

static int setup(void **state)
{
	char err[CONFIG_ERR_MAX];

	return config_load_string(&cfg, "t.conf",
				  "<domain *>\n retry-after 10s,1m,1h\n bounce-after 4h\n</domain>\n"
				  "<domain fast.test>\n retry-after 2s\n bounce-after 10s\n"
				  " backoff-retry-after 5s,7s\n</domain>\n"
				  "<domain alias.test>\n queue-to main.test\n</domain>\n"
				  "<domain rr.test>\n retry-recipients-after 30s\n bounce-after 1m\n</domain>\n"
				  "<domain hi.test>\n queue-priority 90\n</domain>\n"
				  "<domain top.test>\n queue-priority 100\n</domain>\n"
				  "<domain lo.test>\n queue-priority 10\n</domain>\n"
				  "<virtual-mta a>\n smtp-source-host 127.0.0.2\n</virtual-mta>\n"
				  "<virtual-mta b>\n smtp-source-host 127.0.0.3\n</virtual-mta>\n"
				  "<virtual-mta-pool ab>\n virtual-mta a\n virtual-mta b\n</virtual-mta-pool>\n",
				  err);
}

static int teardown(void **state)
{
	config_free(&cfg);
	return 0;
}

static void test_heap_order(void **state)
{
	struct sched s;
	int64_t now = 1000000;
	int64_t dues[] = {50, 10, 40, 10, 30, 20, 0, 60};
	size_t total = 0;

	assert_int_equal(sched_init(&s, &cfg), 0);
	for (size_t i = 0; i < sizeof(dues) / sizeof(dues[0]); i++) {
		struct sched_rcpt *r = sched_rcpt_new(i, 0, "A.Test", now + dues[i], now, 0, 0);
		assert_non_null(r);
		assert_int_equal(sched_add(&s, r, now), 0);
	}
	struct sched_queue *q = sched_queue_find(&s, "a.test");
	assert_non_null(q); /* domains are lower-cased */
	assert_int_equal(q->n_ready, 1);  /* due 0: ready at once */
	assert_int_equal(q->n_waiting, 7);
	assert_int_equal(sched_next_due_in(&s, now), 10);
	assert_int_equal(sched_run_due(&s, now + 9), 0);
	assert_int_equal(sched_run_due(&s, now + 10), 2);
	assert_int_equal(sched_run_due(&s, now + 45), 3);
	assert_int_equal(sched_next_due_in(&s, now + 45), 5);
	assert_int_equal(sched_run_due(&s, now + 1000), 2);
	assert_int_equal(sched_next_due_in(&s, now), INT64_MAX);
	/* Ready list is in due order after the first (immediate) one. */
	int64_t last = 0;
	struct sched_rcpt *r;
	while ((r = sched_ready_pop(q))) {
		assert_true(r->due_ms >= last);
		last = r->due_ms;
		free(r);
		total++;
	}
	assert_int_equal(total, 8);
	assert_int_equal(q->n_ready, 0);
	sched_fini(&s, NULL);
}

/* Wall-clock due times become monotonic ones at the same distance. */
static void test_due_mono(void **state)
{
	(void)state;
	assert_int_equal(sched_due_mono(1000, 1000, 50), 50);         /* due now */
	assert_int_equal(sched_due_mono(400, 1000, 50), 50);          /* overdue: now, never earlier */
	assert_int_equal(sched_due_mono(4000, 1000, 50), 3050);       /* 3 s ahead stays 3 s ahead */
	assert_int_equal(sched_due_mono(INT64_MAX, 0, 50), INT64_MAX); /* saturates */
	assert_int_equal(sched_due_mono(INT64_MAX - 10, -100, 1000), INT64_MAX);
}

static void test_kick_once(void **state)
{
	struct sched s;

	assert_int_equal(sched_init(&s, &cfg), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(sched_add(&s, sched_rcpt_new(1, (uint32_t)i, "k.test", 0, 0, 0, 0), 10), 0);
	assert_int_equal(sched_add(&s, sched_rcpt_new(2, 0, "j.test", 0, 0, 0, 0), 10), 0);
	struct sched_queue *a = sched_next_kicked(&s), *b = sched_next_kicked(&s);
	assert_non_null(a);
	assert_non_null(b);
	assert_ptr_not_equal(a, b);
	assert_null(sched_next_kicked(&s));
	sched_fini(&s, NULL); /* frees the ready recipients too (valgrind checks) */
}

/* queue-priority decides the kick order: higher bands first, whatever the
 * order the queues got their mail in; equal bands all still come. */
static void test_kick_priority(void **state)
{
	const char *order[] = {"lo.test", "mid1.test", "hi.test", "mid2.test", "top.test"};
	struct sched s;
	struct sched_queue *q[5];
	(void)state;

	assert_int_equal(sched_init(&s, &cfg), 0);
	for (int i = 0; i < 5; i++)
		assert_int_equal(sched_add(&s, sched_rcpt_new((uint64_t)i + 1, 0, order[i], 0, 0, 0, 0), 10), 0);
	for (int i = 0; i < 5; i++)
		assert_non_null(q[i] = sched_next_kicked(&s));
	assert_null(sched_next_kicked(&s));
	assert_true(!strcmp(q[0]->domain, "top.test") || !strcmp(q[0]->domain, "hi.test")); /* 90-100: one band */
	assert_true(!strcmp(q[1]->domain, "top.test") || !strcmp(q[1]->domain, "hi.test"));
	assert_true(!strncmp(q[2]->domain, "mid", 3) && !strncmp(q[3]->domain, "mid", 3)); /* the default, 50 */
	assert_string_equal(q[4]->domain, "lo.test");
	/* kicked again after popping: the list is whole again */
	sched_kick(&s, q[4]);
	sched_kick(&s, q[0]);
	assert_ptr_equal(sched_next_kicked(&s), q[0]);
	assert_ptr_equal(sched_next_kicked(&s), q[4]);
	assert_null(sched_next_kicked(&s));
	sched_fini(&s, NULL);
}

static void test_take_msg(void **state)
{
	struct sched s;
	struct sched_queue *q;
	uint64_t ids[] = {7, 8, 7, 9, 7};

	assert_int_equal(sched_init(&s, &cfg), 0);
	for (size_t i = 0; i < 5; i++)
		assert_int_equal(sched_add(&s, sched_rcpt_new(ids[i], (uint32_t)i, "m.test", 0, 0, 0, 0), 1), 0);
	q = sched_queue_find(&s, "m.test");
	struct sched_rcpt *r = sched_ready_pop(q);
	assert_int_equal(r->msg_id, 7);
	free(r);
	r = sched_ready_take_msg(q, 0, 7, 100);
	assert_non_null(r);
	assert_int_equal(r->idx, 2);
	free(r);
	r = sched_ready_take_msg(q, 0, 7, 2); /* the last 7 is beyond a window of 2 */
	assert_null(r);
	r = sched_ready_take_msg(q, 0, 7, 100);
	assert_int_equal(r->idx, 4);
	free(r);
	assert_null(sched_ready_take_msg(q, 0, 7, 100));
	assert_int_equal(q->n_ready, 2);
	r = sched_ready_pop(q);
	assert_int_equal(r->msg_id, 8);
	free(r);
	/* the tail stays right after removing the last element */
	assert_int_equal(sched_add(&s, sched_rcpt_new(10, 0, "m.test", 0, 0, 0, 0), 1), 0);
	r = sched_ready_pop(q);
	assert_int_equal(r->msg_id, 9);
	free(r);
	r = sched_ready_pop(q);
	assert_int_equal(r->msg_id, 10);
	free(r);
	assert_null(sched_ready_pop(q));
	sched_fini(&s, NULL);
}

static void test_many_queues(void **state)
{
	struct sched s;
	char dom[32];

	assert_int_equal(sched_init(&s, &cfg), 0);
	for (int i = 0; i < 5000; i++) {
		snprintf(dom, sizeof(dom), "d%d.test", i);
		assert_int_equal(sched_add(&s, sched_rcpt_new((uint64_t)i, 0, dom, 100 + i, 0, 0, 0), 0), 0);
	}
	assert_int_equal(s.n_queues, 5000);
	for (int i = 0; i < 5000; i += 997) {
		snprintf(dom, sizeof(dom), "d%d.test", i);
		assert_non_null(sched_queue_find(&s, dom));
	}
	assert_int_equal(sched_run_due(&s, 100 + 4999), 5000);
	sched_fini(&s, NULL);
}

static void test_decide(void **state)
{
	const struct config_domain *star = config_domain_for(&cfg, "x.test");
	const struct config_domain *fast = config_domain_for(&cfg, "fast.test");
	struct smtp_result ok = {.code = 250}, soft = {.code = 451}, hard = {.code = 550}, none = {.code = 0};
	int64_t next = 0, t0 = 1000000;

	assert_int_equal(outcome_decide(&ok, 1, t0, t0, star, false, &next), OUTCOME_DELIVERED);
	assert_int_equal(outcome_decide(&hard, 1, t0, t0, star, false, &next), OUTCOME_BOUNCED);
	assert_int_equal(outcome_decide(&soft, 1, t0, t0, star, false, &next), OUTCOME_DEFERRED);
	assert_int_equal(next, t0 + 10000);
	assert_int_equal(outcome_decide(&none, 2, t0, t0, star, false, &next), OUTCOME_DEFERRED);
	assert_int_equal(next, t0 + 60000);
	assert_int_equal(outcome_decide(&soft, 3, t0, t0, star, false, &next), OUTCOME_DEFERRED);
	assert_int_equal(next, t0 + 3600000);
	/* the last step repeats */
	assert_int_equal(outcome_decide(&soft, 9, t0, t0 + 7200000, star, false, &next), OUTCOME_DEFERRED);
	assert_int_equal(next, t0 + 7200000 + 3600000);
	/* never past bounce-after; expired at it */
	assert_int_equal(outcome_decide(&soft, 9, t0, t0 + 4 * 3600000 - 1000, star, false, &next), OUTCOME_DEFERRED);
	assert_int_equal(next, t0 + 4 * 3600000);
	assert_int_equal(outcome_decide(&soft, 9, t0, t0 + 4 * 3600000, star, false, &next), OUTCOME_EXPIRED);
	/* per-domain schedule */
	assert_int_equal(outcome_decide(&soft, 1, t0, t0, fast, false, &next), OUTCOME_DEFERRED);
	assert_int_equal(next, t0 + 2000);
	assert_int_equal(outcome_decide(&soft, 5, t0, t0 + 10000, fast, false, &next), OUTCOME_EXPIRED);
	/* backoff mode: its own list when set, else the normal one */
	assert_int_equal(outcome_decide(&soft, 1, t0, t0, fast, true, &next), OUTCOME_DEFERRED);
	assert_int_equal(next, t0 + 5000);
	assert_int_equal(outcome_decide(&soft, 4, t0, t0, fast, true, &next), OUTCOME_DEFERRED);
	assert_int_equal(next, t0 + 7000);
	assert_int_equal(outcome_decide(&soft, 1, t0, t0, star, true, &next), OUTCOME_DEFERRED);
	assert_int_equal(next, t0 + 10000);
	/* retry-recipients-after: a recipient's own 4xx waits its own time... */
	{
		const struct config_domain *rr = config_domain_for(&cfg, "rr.test");

		assert_int_equal(outcome_decide(&soft, 2, t0, t0, rr, false, &next), OUTCOME_DEFERRED);
		assert_int_equal(next, t0 + 60000); /* the queue's step (inherited 1m) */
		outcome_rcpt_retry(rr, t0, t0, &next);
		assert_int_equal(next, t0 + 30000);
		/* ...never past bounce-after */
		outcome_rcpt_retry(rr, t0, t0 + 50000, &next);
		assert_int_equal(next, t0 + 60000);
		/* unset: the schedule stands */
		next = 77;
		outcome_rcpt_retry(star, t0, t0, &next);
		assert_int_equal(next, 77);
	}
}

/* Pools have their own FIFOs; take_msg and pop_pool stay within one. */
static void test_pools(void **state)
{
	struct sched s;
	struct sched_queue *q;
	struct sched_rcpt *r;
	ssize_t ab = config_pool_find(&cfg, "ab");
	(void)state;

	assert_true(ab > 0);
	assert_int_equal(sched_init(&s, &cfg), 0);
	assert_int_equal(sched_add(&s, sched_rcpt_new(1, 0, "p.test", 0, 0, 0, 0), 1), 0);
	assert_int_equal(sched_add(&s, sched_rcpt_new(2, 0, "p.test", 0, 0, 0, (uint16_t)ab), 1), 0);
	assert_int_equal(sched_add(&s, sched_rcpt_new(1, 1, "p.test", 0, 0, 0, (uint16_t)ab), 1), 0);
	assert_int_equal(sched_add(&s, sched_rcpt_new(3, 0, "p.test", 0, 0, 0, 999), 1), 0); /* unknown -> 0 */
	q = sched_queue_find(&s, "p.test");
	assert_int_equal(q->n_ready, 4);
	assert_int_equal(q->fifos[0].n, 2);
	assert_int_equal(q->fifos[ab].n, 2);
	assert_null(sched_ready_take_msg(q, (size_t)ab, 3, 100));
	r = sched_ready_take_msg(q, (size_t)ab, 1, 100);
	assert_int_equal(r->idx, 1);
	free(r);
	r = sched_ready_pop_pool(q, (size_t)ab);
	assert_int_equal(r->msg_id, 2);
	free(r);
	assert_null(sched_ready_pop_pool(q, (size_t)ab));
	assert_null(sched_ready_pop_pool(q, 12345));
	r = sched_ready_pop(q);
	assert_int_equal(r->msg_id, 1);
	free(r);
	r = sched_ready_pop(q);
	assert_int_equal(r->msg_id, 3);
	assert_int_equal(r->pool, 0);
	free(r);
	assert_int_equal(q->n_ready, 0);
	sched_fini(&s, NULL);
}

/* queue-to: the alias's recipients land in the named queue. */
static void test_queue_to(void **state)
{
	struct sched s;
	(void)state;

	assert_string_equal(sched_queue_name_for(&cfg, "ALIAS.test"), "main.test");
	assert_string_equal(sched_queue_name_for(&cfg, "other.test"), "other.test");
	assert_int_equal(sched_init(&s, &cfg), 0);
	assert_int_equal(sched_add(&s, sched_rcpt_new(1, 0, "alias.test", 0, 0, 0, 0), 1), 0);
	assert_null(sched_queue_find(&s, "alias.test"));
	assert_int_equal(sched_queue_find(&s, "main.test")->n_ready, 1);
	sched_fini(&s, NULL);
}

/* Retry now: only that queue's waiting recipients, and the heap stays a heap. */
static void test_retry_now(void **state)
{
	struct sched s;
	struct sched_queue *a, *b;
	(void)state;

	assert_int_equal(sched_init(&s, &cfg), 0);
	for (int i = 0; i < 200; i++)
		assert_int_equal(sched_add(&s, sched_rcpt_new((uint64_t)i, 0, i % 3 ? "b.test" : "a.test",
							      1000 + (i * 7919) % 500, 0, 0, 0), 0), 0);
	a = sched_queue_find(&s, "a.test");
	b = sched_queue_find(&s, "b.test");
	assert_int_equal(a->n_waiting, 67);
	assert_int_equal(sched_retry_now(&s, a), 67);
	assert_int_equal(a->n_waiting, 0);
	assert_int_equal(a->n_ready, 67);
	assert_int_equal(b->n_waiting, 133);
	assert_int_equal(b->n_ready, 0);
	/* the rest still comes out in due order */
	int64_t last = 0;
	for (int64_t t = 1000; t < 1500; t++) {
		size_t before = b->n_ready;

		sched_run_due(&s, t);
		if (b->n_ready > before) {
			assert_true(t >= last);
			last = t;
		}
	}
	assert_int_equal(b->n_ready, 133);
	assert_int_equal(sched_next_due_in(&s, 0), INT64_MAX);
	sched_fini(&s, NULL);
}

static size_t freed_seen, vetoed;

static bool veto_b(struct sched_queue *q, void *arg)
{
	if (strcmp(q->domain, "b.test") == 0) {
		vetoed++;
		return false;
	}
	return true;
}

static void note_freed(struct sched_queue *q, void *arg)
{
	freed_seen++;
	assert_int_equal(q->n_ready + q->n_waiting + q->n_inflight, 0);
}

/* Empty queues go after idle_ms (the first sweep only notes them empty);
 * one with work, in flight or vetoed stays; a freed one comes back on use. */
static void test_sweep_frees_idle(void **state)
{
	struct sched s;
	struct sched_rcpt *r;
	int64_t now = 5000;

	assert_int_equal(sched_init(&s, &cfg), 0);
	freed_seen = vetoed = 0;
	for (int i = 0; i < 3000; i++) {
		char d[32];

		snprintf(d, sizeof(d), "d%d.test", i);
		assert_non_null(sched_queue_get(&s, d));
	}
	assert_non_null(sched_queue_get(&s, "b.test"));
	r = sched_rcpt_new(1, 0, "busy.test", now + 100000, now, 0, 0);
	assert_int_equal(sched_add(&s, r, now), 0);           /* waiting */
	assert_non_null(sched_queue_get(&s, "fly.test"));
	sched_queue_find(&s, "fly.test")->n_inflight = 1;
	(void)sched_next_kicked(&s);
	assert_int_equal(s.n_queues, 3003);
	/* first pass: every queue noted empty, nothing freed yet */
	assert_int_equal(sched_sweep(&s, now, 60000, 100000, veto_b, note_freed, NULL), 0);
	for (int i = 0; i < 10; i++)
		assert_int_equal(sched_sweep(&s, now + 59999, 60000, 1000, veto_b, note_freed, NULL), 0);
	/* bounded: one call visits about 1000, not all 3003 */
	assert_true(sched_sweep(&s, now + 60000, 60000, 1000, veto_b, note_freed, NULL) < 1200);
	for (int i = 0; i < 10; i++)
		sched_sweep(&s, now + 60000, 60000, 1000, veto_b, note_freed, NULL);
	assert_int_equal(freed_seen, 3000);
	assert_int_equal(s.queues_freed, 3000);
	assert_int_equal(s.n_queues, 3);
	assert_true(vetoed > 0);
	assert_non_null(sched_queue_find(&s, "busy.test"));
	assert_non_null(sched_queue_find(&s, "fly.test"));
	assert_non_null(sched_queue_find(&s, "b.test"));
	assert_null(sched_queue_find(&s, "d7.test"));
	/* it comes back when mail for it does */
	r = sched_rcpt_new(2, 0, "d7.test", now, now, 0, 0);
	assert_int_equal(sched_add(&s, r, now + 60000), 0);
	assert_int_equal(sched_queue_find(&s, "d7.test")->n_ready, 1);
	sched_queue_find(&s, "fly.test")->n_inflight = 0;
	sched_fini(&s, NULL);
}

static void test_pause_names(void **state)
{
	struct sched s;

	assert_int_equal(sched_init(&s, &cfg), 0);
	assert_false(sched_is_paused(&s, "p.test"));
	assert_int_equal(sched_pause_set(&s, "p.test", true), 0);
	assert_int_equal(sched_pause_set(&s, "p.test", true), 0);
	assert_int_equal(sched_pause_set(&s, "q.test", true), 0);
	assert_true(sched_is_paused(&s, "p.test"));
	assert_null(sched_queue_find(&s, "p.test")); /* a pause makes no queue */
	assert_int_equal(s.n_queues, 0);
	assert_int_equal(sched_pause_set(&s, "p.test", false), 0);
	assert_false(sched_is_paused(&s, "p.test"));
	assert_true(sched_is_paused(&s, "q.test"));
	assert_int_equal(sched_pause_set(&s, "never.test", false), 0);
	sched_fini(&s, NULL); /* frees q.test's entry */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_heap_order),
		cmocka_unit_test(test_due_mono),
		cmocka_unit_test(test_kick_once),
		cmocka_unit_test(test_kick_priority),
		cmocka_unit_test(test_take_msg),
		cmocka_unit_test(test_many_queues),
		cmocka_unit_test(test_decide),
		cmocka_unit_test(test_pools),
		cmocka_unit_test(test_queue_to),
		cmocka_unit_test(test_retry_now),
		cmocka_unit_test(test_sweep_frees_idle),
		cmocka_unit_test(test_pause_names),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
