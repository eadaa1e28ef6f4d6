/* test_delete.c - an operator's delete: the filter parser (well-formed and
 * malformed bodies, each error naming its field), matching, and taking
 * recipients out of a shard's scheduler (sched_remove_if: heap, ready
 * lists, a paused campaign's parked list). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/config.h"
#include "engine/campaign.h"
#include "engine/delete_filter.h"
#include "engine/scheduler.h"

static int parse(const char *body, struct delete_filter *f, char *err, char *field)
{
	return delete_filter_parse(body, strlen(body), f, err, 300, field, 64);
}

static void test_parse_ok(void **state)
{
	struct delete_filter f;
	char err[300], field[64];

	(void)state;
	assert_int_equal(parse("{\"queue\":\"Example.COM\",\"campaign\":\"c1\",\"sender\":\"A@b.test\","
			       "\"recipient\":\"x@y.test\",\"older_than\":\"2h\",\"dsn\":true}",
			       &f, err, field), 0);
	assert_string_equal(f.queue, "example.com");
	assert_string_equal(f.campaign, "c1");
	assert_string_equal(f.sender, "A@b.test");
	assert_string_equal(f.recipient, "x@y.test");
	assert_true(f.has_older_than);
	assert_int_equal(f.older_than_ms, 2 * 3600 * 1000);
	assert_true(f.dsn);
	/* the record's form: filter fields only, in a fixed order, as given */
	assert_string_equal(f.text, "{\"queue\":\"Example.COM\",\"campaign\":\"c1\",\"sender\":\"A@b.test\","
				    "\"recipient\":\"x@y.test\",\"older_than\":\"2h\"}");
	delete_filter_free(&f);

	assert_int_equal(parse("{\"older_than\":\"4d12h\"}", &f, err, field), 0);
	assert_int_equal(f.older_than_ms, (4 * 24 + 12) * 3600ull * 1000);
	assert_false(f.dsn);
	assert_null(f.queue);
	assert_null(f.sender);
	delete_filter_free(&f);

	/* compound durations, the smallest and the largest allowed */
	assert_int_equal(parse("{\"older_than\":\"1h30m\"}", &f, err, field), 0);
	assert_int_equal(f.older_than_ms, 5400000ull);
	delete_filter_free(&f);
	assert_int_equal(parse("{\"older_than\":\"1ms\"}", &f, err, field), 0);
	assert_true(f.has_older_than);
	assert_int_equal(f.older_than_ms, 1);
	delete_filter_free(&f);
	assert_int_equal(parse("{\"older_than\":\"3650d\"}", &f, err, field), 0);
	assert_int_equal(f.older_than_ms, DELETE_AGE_MAX_MS);
	delete_filter_free(&f);
	/* a whole number of seconds */
	assert_int_equal(parse("{\"older_than\":7200}", &f, err, field), 0);
	assert_true(f.has_older_than);
	assert_int_equal(f.older_than_ms, 7200000ull);
	delete_filter_free(&f);
	assert_int_equal(parse("{\"older_than\":315360000}", &f, err, field), 0);
	assert_int_equal(f.older_than_ms, DELETE_AGE_MAX_MS);
	delete_filter_free(&f);

	/* the null sender, either way; dsn false */
	assert_int_equal(parse("{\"sender\":\"<>\",\"dsn\":false}", &f, err, field), 0);
	assert_string_equal(f.sender, "");
	delete_filter_free(&f);
	assert_int_equal(parse("{\"sender\":\"\"}", &f, err, field), 0);
	assert_string_equal(f.sender, "");
	delete_filter_free(&f);
}

static void test_parse_malformed(void **state)
{
	static const struct {
		const char *body, *field;
	} bad[] = {
		{"", "body"},
		{"not json", "body"},
		{"{\"campaign\":\"c1\"", "body"},
		{"[1,2]", "body"},
		{"\"campaign\"", "body"},
		{"null", "body"},
		{"{\"campaign\":\"\xff\"}", "body"},       /* not UTF-8 */
		{"{}", "filter"},
		{"{\"dsn\":true}", "filter"},
		{"{\"campaign\":\"c1\",\"colour\":\"red\"}", "colour"},
		{"{\"Campaign\":\"c1\"}", "Campaign"},
		{"{\"campaign\":\"c1\",\"campaign\":\"c2\"}", "body"},    /* duplicate key */
		{"{\"campaign\":5}", "campaign"},
		{"{\"campaign\":null}", "campaign"},
		{"{\"campaign\":true}", "campaign"},
		{"{\"campaign\":[\"c1\"]}", "campaign"},
		{"{\"campaign\":{\"id\":\"c1\"}}", "campaign"},
		{"{\"campaign\":\"\"}", "campaign"},
		{"{\"queue\":\"\"}", "queue"},
		{"{\"recipient\":\"\"}", "recipient"},
		{"{\"campaign\":\"c\\u0000d\"}", "campaign"},   /* a NUL escape names its field */
		{"{\"sender\":\"\\u0000\"}", "sender"},
		{"{\"campaign\":\"c\\nd\"}", "campaign"},
		{"{\"sender\":\"a\\u007f@b\"}", "sender"},
		{"{\"older_than\":\"2x\"}", "older_than"},
		{"{\"older_than\":\"\"}", "older_than"},
		{"{\"older_than\":\"-2h\"}", "older_than"},
		{"{\"older_than\":\"h\"}", "older_than"},
		{"{\"older_than\":\"99999999999999999999d\"}", "older_than"},
		{"{\"older_than\":\"99999999999h\"}", "older_than"},      /* fits, but absurd */
		{"{\"older_than\":\"3651d\"}", "older_than"},
		{"{\"older_than\":0}", "older_than"},
		{"{\"older_than\":-1}", "older_than"},
		{"{\"older_than\":1.5}", "older_than"},
		{"{\"older_than\":true}", "older_than"},
		{"{\"older_than\":315360001}", "older_than"},
		{"{\"older_than\":99999999999999999999}", "body"},
		{"{\"older_than\":\"0\"}", "older_than"},          /* filters nothing */
		{"{\"campaign\":\"c1\",\"older_than\":\"0s\"}", "older_than"},
		{"{\"older_than\":\"1.5h\"}", "older_than"},
		{"{\"older_than\":\"1h1h\"}", "older_than"},
		{"{\"older_than\":\" 1h\"}", "older_than"},
		{"{\"campaign\":\"c1\",\"dsn\":\"yes\"}", "dsn"},
		{"{\"campaign\":\"c1\",\"dsn\":1}", "dsn"},
		{"{\"campaign\":\"c1\",\"dsn\":null}", "dsn"},
	};
	struct delete_filter f;
	char err[300], field[64];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&f, 0x5a, sizeof(f));
		if (parse(bad[i].body, &f, err, field) != -1 || strcmp(field, bad[i].field) != 0 || !err[0]) {
			fprintf(stderr, "body %s: field '%s' err '%s'\n", bad[i].body, field, err);
			fail();
		}
		/* nothing to free: the filter is left empty */
		assert_null(f.queue);
		assert_null(f.campaign);
		assert_null(f.sender);
		assert_null(f.recipient);
		assert_null(f.text);
		delete_filter_free(&f);
	}
	/* a long string is refused, its field named; a long unknown key is cut */
	{
		char body[DELETE_FIELD_MAX + 64], key[400];

		snprintf(body, sizeof(body), "{\"campaign\":\"%0*d\"}", DELETE_FIELD_MAX + 1, 0);
		assert_int_equal(parse(body, &f, err, field), -1);
		assert_string_equal(field, "campaign");
		memset(key, 'k', sizeof(key) - 1);
		key[sizeof(key) - 1] = '\0';
		char body2[512];
		snprintf(body2, sizeof(body2), "{\"%s\":1}", key);
		assert_int_equal(parse(body2, &f, err, field), -1);
		assert_int_equal(strlen(field), 63);
	}
	/* bytes after the object */
	assert_int_equal(delete_filter_parse("{\"campaign\":\"c\"} x", 18, &f, err, sizeof(err), field, sizeof(field)), -1);
	/* an embedded NUL in the body */
	assert_int_equal(delete_filter_parse("{\"campaign\":\"c\0\"}", 17, &f, err, sizeof(err), field, sizeof(field)), -1);
}

static void test_match(void **state)
{
	struct delete_filter f;
	char err[300], field[64];
	int64_t now = 10LL * 3600 * 1000;

	(void)state;
	assert_int_equal(parse("{\"queue\":\"Q.test\",\"campaign\":\"c1\",\"sender\":\"s@x.test\","
			       "\"older_than\":\"1h\"}", &f, err, field), 0);
	assert_true(delete_filter_match(&f, "q.test", "q.test", "S@X.TEST", "c1", "r@q.test", now - 3600000, now));
	/* the domain matches when its queue is a queue-to */
	assert_true(delete_filter_match(&f, "main.test", "q.test", "s@x.test", "c1", "r@q.test", now - 7200000, now));
	assert_false(delete_filter_match(&f, "q.test", "q.test", "s@x.test", "c1", "r@q.test", now - 3599999, now));
	assert_false(delete_filter_match(&f, "q.test", "q.test", "s@x.test", "C1", "r@q.test", now - 7200000, now));
	assert_false(delete_filter_match(&f, "q.test", "q.test", "", "c1", "r@q.test", now - 7200000, now));
	assert_false(delete_filter_match(&f, "other.test", "other.test", "s@x.test", "c1", "r@o.test", now - 7200000,
					 now));
	/* accepted "in the future" (a stepped clock): not older than anything */
	assert_false(delete_filter_match(&f, "q.test", "q.test", "s@x.test", "c1", "r@q.test", now + 1000, now));
	delete_filter_free(&f);

	assert_int_equal(parse("{\"sender\":\"<>\"}", &f, err, field), 0);
	assert_true(delete_filter_match(&f, "q", "q", "", "", "r@q", 0, now));
	assert_false(delete_filter_match(&f, "q", "q", "a@b", "", "r@q", 0, now));
	delete_filter_free(&f);

	assert_int_equal(parse("{\"recipient\":\"R@Q.test\"}", &f, err, field), 0);
	assert_true(delete_filter_match(&f, "q.test", "q.test", "a@b", "", "r@q.TEST", 0, now));
	assert_false(delete_filter_match(&f, "q.test", "q.test", "a@b", "", "rr@q.test", 0, now));
	delete_filter_free(&f);
}

/* ---- sched_remove_if ---------------------------------------------------------- */

static struct config cfg;

static int setup(void **state)
{
	char err[CONFIG_ERR_MAX];

	(void)state;
	return config_load_string(&cfg, "t.conf",
				  "<virtual-mta a>\n smtp-source-host 127.0.0.2\n</virtual-mta>\n"
				  "<virtual-mta-pool p2>\n virtual-mta a\n</virtual-mta-pool>\n",
				  err);
}

static int teardown(void **state)
{
	(void)state;
	config_free(&cfg);
	return 0;
}

struct taker {
	uint64_t taken[64];
	size_t n;
};

/* Takes the even message ids. */
static bool take_even(struct sched_rcpt *r, void *arg)
{
	struct taker *t = arg;

	if (r->msg_id % 2)
		return false;
	t->taken[t->n++] = r->msg_id;
	free(r);
	return true;
}

static void test_remove_if(void **state)
{
	struct sched s;
	struct taker t = {.n = 0};
	int64_t now = 1000000;
	struct sched_queue *a, *b;
	struct sched_rcpt *r;
	size_t n = 0, moved;

	(void)state;
	assert_int_equal(sched_init(&s, &cfg), 0);
	/* ids 0..29: a.test and b.test, waiting (due later) or ready, two pools */
	for (uint64_t i = 0; i < 30; i++) {
		r = sched_rcpt_new(i, 0, (i / 2) % 2 ? "a.test" : "b.test", i % 3 ? now + (int64_t)(100 - i) : now,
				   now, 0, (uint16_t)(i % 4 == 1 && cfg.n_pools > 1 ? 1 : 0));
		assert_non_null(r);
		assert_int_equal(sched_add(&s, r, now), 0);
	}
	a = sched_queue_find(&s, "a.test");
	b = sched_queue_find(&s, "b.test");
	assert_int_equal(a->n_ready + a->n_waiting + b->n_ready + b->n_waiting, 30);
	assert_int_equal(sched_remove_if(&s, take_even, &t), 15);
	assert_int_equal(t.n, 15);
	for (size_t i = 0; i < t.n; i++)
		assert_int_equal(t.taken[i] % 2, 0);
	assert_int_equal(a->n_ready + a->n_waiting + b->n_ready + b->n_waiting, 15);
	/* the lists are whole (heads, tails, counts) and the heap still in order */
	r = sched_rcpt_new(99, 0, "a.test", now, now, 0, 0);
	sched_ready_push(&s, a, r);
	assert_int_equal(sched_remove_if(&s, take_even, &t), 0);
	while ((r = sched_ready_pop(a)) || (r = sched_ready_pop(b))) {
		assert_true(r->msg_id % 2);
		free(r);
		n++;
	}
	assert_int_equal(a->n_ready + b->n_ready, 0);
	moved = sched_run_due(&s, now + 1000);
	assert_int_equal(moved, a->n_ready + b->n_ready);
	assert_int_equal(moved, 10); /* the odd ids that waited */
	while ((r = sched_ready_pop(a)) || (r = sched_ready_pop(b))) {
		assert_true(r->msg_id % 2);
		free(r);
		n++;
	}
	assert_int_equal(n, 16);
	assert_int_equal(a->n_waiting + b->n_waiting, 0);
	sched_fini(&s, NULL);
}

/* Heap order survives removals from its middle: due times come out sorted. */
static bool take_some(struct sched_rcpt *r, void *arg)
{
	(void)arg;
	if (r->msg_id % 3)
		return false;
	free(r);
	return true;
}

static void test_remove_heap_order(void **state)
{
	struct sched s;
	int64_t now = 1000000, prev = 0;
	struct sched_queue *q;
	size_t left = 0;

	(void)state;
	assert_int_equal(sched_init(&s, &cfg), 0);
	for (uint64_t i = 1; i <= 200; i++)
		assert_int_equal(sched_add(&s, sched_rcpt_new(i, 0, "h.test", now + (int64_t)((i * 7919) % 1000) + 1,
							      now, 0, 0), now), 0);
	assert_int_equal(sched_remove_if(&s, take_some, NULL), 66);
	q = sched_queue_find(&s, "h.test");
	assert_int_equal(q->n_waiting, 134);
	for (int64_t t = now; t <= now + 1001; t++) {
		struct sched_rcpt *r;

		sched_run_due(&s, t);
		while ((r = sched_ready_pop(q))) {
			assert_true(r->due_ms >= prev);
			assert_true(r->due_ms <= t);
			prev = r->due_ms;
			free(r);
			left++;
		}
	}
	assert_int_equal(left, 134);
	sched_fini(&s, NULL);
}

/* A paused campaign's recipients are parked, not ready: taken all the same. */
static bool take_all(struct sched_rcpt *r, void *arg)
{
	(void)arg;
	free(r);
	return true;
}

static void test_remove_parked(void **state)
{
	struct campaigns *c;
	struct sched s;
	struct sched_queue *q;
	int64_t now = 1000000;
	uint32_t id;

	(void)state;
	assert_int_equal(campaigns_new(&c), 0);
	id = campaign_intern(c, "frozen");
	assert_int_not_equal(id, CAMPAIGN_NONE);
	campaign_set_paused(c, "frozen", true);
	assert_int_equal(sched_init(&s, &cfg), 0);
	s.campaigns = c;
	for (uint64_t i = 0; i < 6; i++) {
		struct sched_rcpt *r = sched_rcpt_new(i, 0, "p.test", now, now, 0, 0);

		r->campaign = i < 4 ? id : CAMPAIGN_NONE;
		assert_int_equal(sched_add(&s, r, now), 0);
	}
	q = sched_queue_find(&s, "p.test");
	assert_int_equal(q->parked.n, 4);
	assert_int_equal(s.n_parked, 4);
	assert_int_equal(q->n_ready, 2);
	assert_int_equal(sched_remove_if(&s, take_all, NULL), 6);
	assert_int_equal(q->parked.n, 0);
	assert_null(q->parked.head);
	assert_null(q->parked.tail);
	assert_int_equal(s.n_parked, 0);
	assert_int_equal(q->n_ready, 0);
	/* parking after the removal still works on the emptied list */
	struct sched_rcpt *r = sched_rcpt_new(9, 0, "p.test", now, now, 0, 0);
	r->campaign = id;
	assert_int_equal(sched_add(&s, r, now), 0);
	assert_ptr_equal(q->parked.head, r);
	assert_ptr_equal(q->parked.tail, r);
	sched_fini(&s, NULL);
	campaigns_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_ok),
		cmocka_unit_test(test_parse_malformed),
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_remove_if),
		cmocka_unit_test(test_remove_heap_order),
		cmocka_unit_test(test_remove_parked),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
