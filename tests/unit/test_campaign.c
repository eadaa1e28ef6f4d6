/* test_campaign.c - campaigns: the intern table (engine/campaign.c: ids,
 * names, limits, growth past a chunk and the hash's resizes, threads
 * interning at once), pause flags and counters; the scheduler's parked
 * lists (a paused campaign's recipients set aside in their queue, others
 * in the same FIFO flowing, put back in order on resume); the durable
 * totals (queue/campaign_stats.c) and campaign pause keys (queue/pause.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <cmocka.h>

#include "core/config.h"
#include "engine/campaign.h"
#include "engine/scheduler.h"
#include "queue/campaign_stats.h"
#include "queue/pause.h"
#include "queue/spool.h"
#include "tmp_dir.h"

/* ---- the intern table ---------------------------------------------------------- */

static void test_intern_basics(void **state)
{
	struct campaigns *c;
	char long_name[CAMPAIGN_NAME_MAX + 2];

	(void)state;
	assert_int_equal(campaigns_new(&c), 0);
	assert_int_equal(campaign_intern(c, NULL), CAMPAIGN_NONE);
	assert_int_equal(campaign_intern(c, ""), CAMPAIGN_NONE);
	memset(long_name, 'x', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	assert_int_equal(campaign_intern(c, long_name), CAMPAIGN_NONE);  /* 128 bytes */
	long_name[CAMPAIGN_NAME_MAX] = '\0';
	assert_int_equal(campaign_intern(c, long_name), 1u);              /* 127: fine */
	assert_int_equal(campaign_intern(c, "spring"), 2u);
	assert_int_equal(campaign_intern(c, "Spring"), 3u);               /* case kept */
	assert_int_equal(campaign_intern(c, "spring"), 2u);
	assert_int_equal(campaign_find(c, "spring"), 2u);
	assert_int_equal(campaign_find(c, "autumn"), CAMPAIGN_NONE);      /* find makes nothing */
	assert_int_equal(campaign_find(c, "sprin"), CAMPAIGN_NONE);       /* a prefix is not the name */
	assert_int_equal(campaigns_count(c), 3u);
	assert_string_equal(campaign_get(c, 2)->name, "spring");
	assert_null(campaign_get(c, 0));
	assert_null(campaign_get(c, 4));
	assert_false(campaign_paused(c, 0));
	assert_false(campaign_paused(c, 99));
	campaigns_free(c);
	campaigns_free(NULL);
}

/* Past one chunk of entries and many hash resizes: every name keeps its id. */
/* The id every entry point takes: UTF-8, no control characters. */
static void test_name_ok(void **state)
{
	static const char *const good[] = {"spring", "a/b", "50%off", "x y", "\xc3\xa9t\xc3\xa9", "\xe2\x82\xac",
					   "\xf0\x9f\x93\xa7", "\xc2\xa0"};
	static const char *const bad[] = {"a\x01", "\x7f", "a\tb", "\xff", "a\xfe", "\xc3", "\xc3(", "\xe2\x82",
					  "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xc2\x85", "\xc2\x9f",
					  "\x80"};

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (!campaign_name_ok(good[i], strlen(good[i]))) {
			fprintf(stderr, "good name %zu refused\n", i);
			fail();
		}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (campaign_name_ok(bad[i], strlen(bad[i]))) {
			fprintf(stderr, "bad name %zu taken\n", i);
			fail();
		}
	assert_false(campaign_name_ok("a\0b", 3));   /* NUL */
	assert_false(campaign_name_ok("", 0));
	assert_false(campaign_name_ok(NULL, 0));
}

static void test_intern_many(void **state)
{
	struct campaigns *c;
	char name[32];
	const uint32_t n = 3 * CAMPAIGN_CHUNK + 17;

	(void)state;
	assert_int_equal(campaigns_new(&c), 0);
	for (uint32_t i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "job-%u", i);
		assert_int_equal(campaign_intern(c, name), i + 1);
	}
	for (uint32_t i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "job-%u", i);
		assert_int_equal(campaign_find(c, name), i + 1);
		assert_string_equal(campaign_get(c, i + 1)->name, name);
	}
	assert_int_equal(campaigns_count(c), n);
	campaigns_free(c);
}

struct racer {
	struct campaigns *c;
	uint32_t ids[500];
};

static void *race(void *arg)
{
	struct racer *r = arg;
	char name[32];

	for (unsigned i = 0; i < 500; i++) {
		snprintf(name, sizeof(name), "shared-%u", i);
		r->ids[i] = campaign_intern(r->c, name);
		(void)campaign_paused(r->c, r->ids[i]); /* lock-free readers meanwhile */
	}
	return NULL;
}

/* Four threads intern the same 500 names at once: one id per name. */
static void test_intern_threads(void **state)
{
	struct campaigns *c;
	struct racer r[4];
	pthread_t t[4];

	(void)state;
	assert_int_equal(campaigns_new(&c), 0);
	for (int i = 0; i < 4; i++) {
		r[i].c = c;
		assert_int_equal(pthread_create(&t[i], NULL, race, &r[i]), 0);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(campaigns_count(c), 500u);
	for (unsigned k = 0; k < 500; k++) {
		assert_int_not_equal(r[0].ids[k], CAMPAIGN_NONE);
		for (int i = 1; i < 4; i++)
			assert_int_equal(r[i].ids[k], r[0].ids[k]);
	}
	campaigns_free(c);
}

static void test_pause_and_counters(void **state)
{
	struct campaigns *c;
	struct campaign *e;
	uint32_t id;
	struct campaign_totals tot = {.first_ms = 5000, .last_ms = 9000, .received = 10, .delivered = 4, .bounced = 2,
				      .expired = 1};

	(void)state;
	assert_int_equal(campaigns_new(&c), 0);
	id = campaign_set_paused(c, "held", true);
	assert_int_not_equal(id, CAMPAIGN_NONE);
	assert_true(campaign_paused(c, id));
	assert_int_equal(campaign_set_paused(c, "held", false), id);
	assert_false(campaign_paused(c, id));
	assert_int_equal(campaign_set_paused(c, "", true), CAMPAIGN_NONE);
	e = campaign_get(c, id);
	/* 3 recovered, one of them with failed attempts behind it */
	campaign_note_queued(c, id, 3, 1, 7000);
	campaign_note_totals(c, id, &tot);
	assert_int_equal(e->queued, 3);
	assert_int_equal(e->deferred, 1);
	assert_int_equal(e->first_ms, 5000);
	assert_int_equal(e->last_ms, 9000);
	campaign_note_queued(c, id, 2, 0, 12000); /* new mail, later */
	assert_int_equal(e->last_ms, 12000);
	assert_int_equal(e->first_ms, 5000);
	campaign_note_queued(c, id, 1, 0, 0);     /* no time: no change */
	assert_int_equal(e->first_ms, 5000);
	/* a first deferral counts, a second of the same recipient not */
	campaign_note_end(c, id, CAMPAIGN_END_DEFERRED, false);
	campaign_note_end(c, id, CAMPAIGN_END_DEFERRED, true);
	assert_int_equal(e->deferred, 2);
	assert_int_equal(e->queued, 6);
	campaign_note_end(c, id, CAMPAIGN_END_DELIVERED, true);  /* a deferred one delivered */
	campaign_note_end(c, id, CAMPAIGN_END_EXPIRED, true);
	campaign_note_end(c, id, CAMPAIGN_END_BOUNCED, false);
	campaign_note_end(c, id, CAMPAIGN_END_SUPPRESSED, false);
	campaign_note_end(c, id, CAMPAIGN_END_REMOVED, false);
	assert_int_equal(e->queued, 1);
	assert_int_equal(e->deferred, 0);
	assert_int_equal(e->delivered, 5);
	assert_int_equal(e->bounced, 4);   /* an expiry is a bounce */
	assert_int_equal(e->expired, 2);
	assert_int_equal(e->suppressed, 1);
	assert_int_equal(e->received, 10);
	/* id 0 and unknown ids are ignored */
	campaign_note_queued(c, 0, 5, 0, 1);
	campaign_note_end(c, 77, CAMPAIGN_END_DELIVERED, false);
	campaigns_free(c);
}

/* ---- parked lists ------------------------------------------------------------------ */

static struct config cfg;

static int setup(void **state)
{
	char err[CONFIG_ERR_MAX];

	(void)state;
	return config_load_string(&cfg, "t.conf", "<domain *>\n retry-after 10s\n</domain>\n", err);
}

static int teardown(void **state)
{
	(void)state;
	config_free(&cfg);
	return 0;
}

static struct sched_rcpt *rcpt(uint64_t msg, uint32_t campaign, int64_t due)
{
	struct sched_rcpt *r = sched_rcpt_new(msg, 0, "same.test", due, 0, 0, 0);

	assert_non_null(r);
	r->campaign = campaign;
	return r;
}

/* The order of msg ids in a queue's FIFO (pool 0). */
static size_t fifo_ids(struct sched_queue *q, uint64_t *out, size_t cap)
{
	size_t n = 0;

	for (struct sched_rcpt *r = q->fifos[0].head; r && n < cap; r = (struct sched_rcpt *)r->link.next)
		out[n++] = r->msg_id;
	return n;
}

static void test_park_unpark(void **state)
{
	struct campaigns *c;
	struct sched s;
	struct sched_queue *q;
	uint32_t a, b;
	uint64_t ids[16];
	struct sched_rcpt *r;

	(void)state;
	assert_int_equal(campaigns_new(&c), 0);
	a = campaign_intern(c, "A");
	b = campaign_intern(c, "B");
	assert_int_equal(sched_init(&s, &cfg), 0);
	s.campaigns = c;
	/* one FIFO: A B A none B A, all ready */
	uint32_t camps[] = {a, b, a, CAMPAIGN_NONE, b, a};
	for (size_t i = 0; i < 6; i++)
		assert_int_equal(sched_add(&s, rcpt(i, camps[i], 0), 100), 0);
	q = sched_queue_find(&s, "same.test");
	assert_non_null(q);
	assert_int_equal(q->n_ready, 6);
	/* A paused while ready: its three move aside, the others keep their order */
	campaign_set_paused(c, "A", true);
	assert_int_equal(sched_campaign_park(&s, a), 3);
	assert_int_equal(sched_campaign_park(&s, a), 0);   /* again: nothing left */
	assert_int_equal(q->n_ready, 3);
	assert_int_equal(q->parked.n, 3);
	assert_int_equal(s.n_parked, 3);
	assert_int_equal(fifo_ids(q, ids, 16), 3);
	assert_int_equal(ids[0], 1);
	assert_int_equal(ids[1], 3);
	assert_int_equal(ids[2], 4);
	assert_true(sched_rcpt_parked(&s, q->parked.head));
	/* A recipient of A that becomes ready later (a retry now due) parks on arrival */
	assert_int_equal(sched_add(&s, rcpt(10, a, 500), 100), 0);
	assert_int_equal(q->n_waiting, 1);
	assert_int_equal(sched_run_due(&s, 500), 1);
	assert_int_equal(q->n_ready, 3);
	assert_int_equal(q->parked.n, 4);
	/* B paused too, then the sweep: a queue with parked recipients stays */
	campaign_set_paused(c, "B", true);
	assert_int_equal(sched_campaign_park(&s, b), 2);
	assert_int_equal(q->n_ready, 1);
	(void)sched_next_kicked(&s);
	assert_int_equal(sched_sweep(&s, 1000, 0, 100, NULL, NULL, NULL), 0);
	assert_int_equal(sched_sweep(&s, 100000, 0, 100, NULL, NULL, NULL), 0);
	r = sched_ready_pop(q);                            /* the one without a campaign */
	assert_int_equal(r->msg_id, 3);
	free(r);
	assert_int_equal(sched_sweep(&s, 200000, 0, 100, NULL, NULL, NULL), 0);
	assert_non_null(sched_queue_find(&s, "same.test"));
	/* unpark while still paused moves nothing */
	assert_int_equal(sched_campaign_unpark(&s, a), 0);
	/* resume A: its four come back in their order, B's stay parked */
	campaign_set_paused(c, "A", false);
	assert_int_equal(sched_campaign_unpark(&s, a), 4);
	assert_int_equal(q->n_ready, 4);
	assert_int_equal(q->parked.n, 2);
	assert_int_equal(s.n_parked, 2);
	assert_int_equal(fifo_ids(q, ids, 16), 4);
	assert_int_equal(ids[0], 0);
	assert_int_equal(ids[1], 2);
	assert_int_equal(ids[2], 5);
	assert_int_equal(ids[3], 10);
	assert_ptr_equal(sched_next_kicked(&s), q);        /* the queue is kicked */
	/* campaign 0 is never parked nor unparked */
	assert_int_equal(sched_campaign_park(&s, CAMPAIGN_NONE), 0);
	assert_int_equal(sched_campaign_unpark(&s, CAMPAIGN_NONE), 0);
	/* fini frees the parked ones too (ASan/valgrind would see a leak) */
	sched_fini(&s, NULL);
	campaigns_free(c);
}

/* Without a campaign table (unit tests, tools) nothing parks. */
static void test_no_table(void **state)
{
	struct sched s;
	struct sched_queue *q;

	(void)state;
	assert_int_equal(sched_init(&s, &cfg), 0);
	assert_int_equal(sched_add(&s, rcpt(1, 5, 0), 100), 0);
	q = sched_queue_find(&s, "same.test");
	assert_int_equal(q->n_ready, 1);
	assert_int_equal(q->parked.n, 0);
	assert_int_equal(sched_campaign_park(&s, 5), 1);   /* an explicit park still works */
	sched_fini(&s, NULL);
}

/* ---- durable totals and pause keys ----------------------------------------------------- */

struct seen {
	char names[8][CAMPAIGN_STATS_NAME_MAX + 1];
	struct campaign_totals tot[8];
	int n;
};

static int collect_totals(void *arg, const char *name, const struct campaign_totals *t)
{
	struct seen *s = arg;

	snprintf(s->names[s->n], sizeof(s->names[0]), "%s", name);
	s->tot[s->n++] = *t;
	return 0;
}

static int collect_name(void *arg, const char *name)
{
	struct seen *s = arg;

	snprintf(s->names[s->n++], sizeof(s->names[0]), "%s", name);
	return 0;
}

static void test_spool_records(void **state)
{
	char dir[256];
	struct spool *sp;
	struct spool_wtxn *t;
	struct seen seen = {0};
	struct campaign_totals d1 = {.first_ms = 2000, .last_ms = 2000, .received = 5};
	struct campaign_totals d2 = {.first_ms = 1000, .last_ms = 3000, .received = 1, .delivered = 4, .bounced = 1,
				     .expired = 1, .suppressed = 1};
	struct campaign_totals d3 = {.delivered = 1};
	char long_name[CAMPAIGN_STATS_NAME_MAX + 2];

	(void)state;
	assert_int_equal(tmp_dir_make(dir, sizeof(dir), "campaign"), 0);
	assert_int_equal(spool_open(&sp, dir, 0), 0);
	assert_int_equal(spool_wtxn_begin(sp, &t), 0);
	assert_int_equal(campaign_stats_add(t, "spring", &d1), 0);
	assert_int_equal(campaign_stats_add(t, "spring", &d2), 0);
	assert_int_equal(campaign_stats_add(t, "spring", &d3), 0); /* no times: they stay */
	memset(long_name, 'y', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	assert_int_equal(campaign_stats_add(t, long_name, &d1), -EINVAL);
	assert_int_equal(campaign_stats_add(t, "", &d1), -EINVAL);
	/* pauses: a queue and a campaign of the same name are different keys */
	assert_int_equal(pause_put(t, "spring", 1), 0);
	assert_int_equal(pause_campaign_put(t, "spring", 1), 0);
	assert_int_equal(pause_campaign_put(t, "Autumn sale/2", 1), 0);
	assert_int_equal(pause_campaign_put(t, "", 1), -EINVAL);
	assert_int_equal(spool_wtxn_commit(t), 0);
	spool_close(sp);

	assert_int_equal(spool_open(&sp, dir, 0), 0);   /* as after a restart */
	assert_int_equal(campaign_stats_each(sp, collect_totals, &seen), 0);
	assert_int_equal(seen.n, 1);
	assert_string_equal(seen.names[0], "spring");
	assert_int_equal(seen.tot[0].first_ms, 1000);
	assert_int_equal(seen.tot[0].last_ms, 3000);
	assert_int_equal(seen.tot[0].received, 6);
	assert_int_equal(seen.tot[0].delivered, 5);
	assert_int_equal(seen.tot[0].bounced, 1);
	assert_int_equal(seen.tot[0].expired, 1);
	assert_int_equal(seen.tot[0].suppressed, 1);
	memset(&seen, 0, sizeof(seen));
	assert_int_equal(pause_each(sp, collect_name, &seen), 0);
	assert_int_equal(seen.n, 1);                    /* queues only */
	assert_string_equal(seen.names[0], "spring");
	memset(&seen, 0, sizeof(seen));
	assert_int_equal(pause_campaign_each(sp, collect_name, &seen), 0);
	assert_int_equal(seen.n, 2);                    /* campaigns only, names as given */
	assert_string_equal(seen.names[0], "Autumn sale/2");
	assert_string_equal(seen.names[1], "spring");
	assert_int_equal(spool_wtxn_begin(sp, &t), 0);
	assert_int_equal(pause_campaign_del(t, "spring"), 0);
	assert_int_equal(pause_campaign_del(t, "never"), 0);
	assert_int_equal(spool_wtxn_commit(t), 0);
	memset(&seen, 0, sizeof(seen));
	assert_int_equal(pause_campaign_each(sp, collect_name, &seen), 0);
	assert_int_equal(seen.n, 1);
	memset(&seen, 0, sizeof(seen));
	assert_int_equal(pause_each(sp, collect_name, &seen), 0);
	assert_int_equal(seen.n, 1);                    /* the queue's pause is untouched */
	spool_close(sp);
	tmp_dir_remove(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_intern_basics),
		cmocka_unit_test(test_name_ok),
		cmocka_unit_test(test_intern_many),
		cmocka_unit_test(test_intern_threads),
		cmocka_unit_test(test_pause_and_counters),
		cmocka_unit_test(test_park_unpark),
		cmocka_unit_test(test_no_table),
		cmocka_unit_test(test_spool_records),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
