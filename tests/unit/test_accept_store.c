/*
 * test_accept_store.c - storing accepted mail (engine/accept_store.c): a
 * submitted batch is committed (one spool message per accept_msg, one
 * record per recipient), logged (one reception record per recipient, put
 * in the outbox with the commit, written by the writer's after_batch),
 * counted, and routed to its shard before its done() runs, on the writer;
 * a DSN-style batch (ids given, stored inside another request's
 * transaction) is routed but neither logged nor counted; a failed commit
 * routes and logs nothing; recovery reads back exactly what is queued; the
 * store thread runs deferred jobs in order, off the caller's thread, drains
 * them at stop, and runs a job deferred after stop inline.
 *
 * The "shard" is one worker with a loop and a mailbox but no thread: what
 * the store routes stays in its mailbox for the test to take. Nothing here
 * asserts a duration. Each test works in its own mkdtemp() directory.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/acct_log.h"
#include "core/config.h"
#include "queue/outbox.h"
#include "engine/accept_store.h"
#include "engine/engine.h"
#include "tmp_dir.h"

struct fx {
	char dir[64];
	struct config cfg;
	struct engine eng;
	struct worker worker;
};

/* salvod's after_batch: the batch's records from the outbox into the log */
static void flush_log(void *ctx)
{
	struct engine *eng = ctx;

	outbox_flush(eng->spool, eng->acct, NULL);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char path[128];

	if (!f || tmp_dir_make(f->dir, sizeof(f->dir), "test_accept_store") < 0 || config_defaults(&f->cfg) < 0)
		return -1;
	if (config_current_init(&f->eng.conf) < 0)
		return -1;
	config_current_publish(&f->eng.conf, config_gen_new(&f->cfg, NULL, 1, 0));
	snprintf(path, sizeof(path), "%s/log", f->dir);
	if (spool_open(&f->eng.spool, f->dir, 0) != 0 || acct_log_open(&f->eng.acct, path, 0, 0) < 0)
		return -1;
	f->worker.mb.efd = -1;
	f->worker.eng = &f->eng;
	if (loop_init(&f->worker.loop, 8, 4, 4096) < 0 || mailbox_init(&f->worker.mb, &f->worker.loop, NULL, &f->worker) < 0)
		return -1;
	f->eng.workers = &f->worker;
	f->eng.n_workers = 1;
	if (spool_writer_start(&f->eng.writer, f->eng.spool, &f->eng, flush_log, 0) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	struct mailbox_item *it;

	spool_writer_stop(&f->eng.writer);
	for (it = mailbox_take(&f->worker.mb); it;) {
		struct mailbox_item *next = it->next;

		free(container_of(it, struct sched_rcpt, link));
		it = next;
	}
	mailbox_fini(&f->worker.mb);
	loop_fini(&f->worker.loop);
	acct_log_close(f->eng.acct);
	spool_close(f->eng.spool);
	config_current_fini(&f->eng.conf); /* the generation owns the config */
	tmp_dir_remove(f->dir);
	free(f);
	return 0;
}

/* ---- a batch and its completion ------------------------------------------------- */

struct waiter {
	struct accept_batch b;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
	int result;
	pthread_t thread;          /* where done() ran */
};

static void waiter_done(struct accept_batch *b, int result)
{
	struct waiter *w = container_of(b, struct waiter, b);

	pthread_mutex_lock(&w->mu);
	w->result = result;
	w->thread = pthread_self();
	w->done = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

static void waiter_wait(struct waiter *w)
{
	pthread_mutex_lock(&w->mu);
	while (!w->done)
		pthread_cond_wait(&w->cv, &w->mu);
	pthread_mutex_unlock(&w->mu);
}

static size_t take_routed(struct fx *f, struct sched_rcpt **out, size_t cap)
{
	size_t n = 0;

	for (struct mailbox_item *it = mailbox_take(&f->worker.mb); it;) {
		struct mailbox_item *next = it->next;

		assert_int_equal(it->kind, WORKER_MAIL_RCPT);
		assert_true(n < cap);
		out[n++] = container_of(it, struct sched_rcpt, link);
		it = next;
	}
	return n;
}

static size_t count_in_log(struct fx *f, const char *needle)
{
	char path[160], line[2048];
	size_t n = 0;
	FILE *fp;

	snprintf(path, sizeof(path), "%s/log/acct.jsonl", f->dir);
	if (!(fp = fopen(path, "r")))
		return 0;
	while (fgets(line, sizeof(line), fp))
		n += strstr(line, needle) != NULL;
	fclose(fp);
	return n;
}

static char *dup_body(const char *s)
{
	char *b = strdup(s);

	assert_non_null(b);
	return b;
}

/* ---- tests ---------------------------------------------------------------------- */

static void test_submit_commits_logs_routes(void **state)
{
	struct fx *f = *state;
	const char *rcpts[] = {"a@one.test", "b@two.test", "c@two.test", "d@three.test"};
	struct accept_msg msgs[3] = {
		{.body = dup_body("Subject: 1\r\n\r\nx\r\n"), .len = 17, .first = 0, .count = 1},
		{.body = dup_body("Subject: 2\r\n\r\nxy\r\n"), .len = 18, .first = 1, .count = 2},
		{.body = dup_body("Subject: 3\r\n\r\nxyz\r\n"), .len = 19, .first = 3, .count = 1},
	};
	struct waiter w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
	struct sched_rcpt *routed[8];
	uint64_t n_msgs = 0, n_rcpts = 0;
	size_t n;

	w.b = (struct accept_batch){
		.eng = &f->eng, .sender = "s@senders.test", .campaign = "c1", .source_ip = "192.0.2.1",
		.arrival_ms = 1000, .due_ms = 5000, .received = true, .sign = true, .rcpts = rcpts,
		.msgs = msgs, .n_msgs = 3, .done = waiter_done,
	};
	accept_store_submit(&w.b);
	waiter_wait(&w);
	assert_int_equal(w.result, 0);
	assert_false(pthread_equal(w.thread, pthread_self())); /* on the writer */
	assert_true(msgs[0].id && msgs[1].id && msgs[2].id);
	assert_true(msgs[0].id != msgs[1].id && msgs[1].id != msgs[2].id);
	assert_int_equal(spool_count(f->eng.spool, &n_msgs, &n_rcpts), 0);
	assert_int_equal(n_msgs, 3);
	assert_int_equal(n_rcpts, 4);
	/* routed before done(): all four are in the shard's mailbox */
	n = take_routed(f, routed, 8);
	assert_int_equal(n, 4);
	for (size_t i = 0; i < n; i++) {
		const struct sched_rcpt *r = routed[i];

		assert_int_equal(r->due_ms, 5000);
		assert_int_equal(r->queued_ms, 1000);
		if (r->msg_id == msgs[1].id)
			assert_string_equal(r->domain, "two.test");
		else if (r->msg_id == msgs[0].id)
			assert_string_equal(r->domain, "one.test");
		else
			assert_int_equal(r->msg_id, msgs[2].id);
		free(routed[i]);
	}
	assert_int_equal(f->eng.counters.messages_received, 3);
	assert_int_equal(f->eng.counters.recipients_received, 4);
	/* logged once per recipient, flushed after the batch (before the stop) */
	spool_writer_stop(&f->eng.writer);
	assert_int_equal(count_in_log(f, "\"type\":\"reception\""), 4);
	assert_int_equal(count_in_log(f, "\"recipient\":\"c@two.test\""), 1);
	assert_int_equal(spool_writer_start(&f->eng.writer, f->eng.spool, &f->eng, flush_log, 0), 0);
	for (size_t i = 0; i < 3; i++)
		free(msgs[i].body);
}

static void test_failed_commit_routes_nothing(void **state)
{
	struct fx *f = *state;
	char big_sender[70000];
	const char *rcpts[] = {"a@one.test"};
	struct accept_msg m = {.body = dup_body("x\r\n"), .len = 3, .count = 1};
	struct waiter w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
	struct sched_rcpt *routed[2];
	uint64_t n_msgs = 1, n_rcpts = 1;

	/* a sender longer than a record may hold (64 KiB): the spool refuses it */
	memset(big_sender, 'x', sizeof(big_sender) - 1);
	big_sender[sizeof(big_sender) - 1] = 0;
	w.b = (struct accept_batch){
		.eng = &f->eng, .sender = big_sender, .campaign = "", .source_ip = "", .received = true,
		.rcpts = rcpts, .msgs = &m, .n_msgs = 1, .done = waiter_done,
	};
	accept_store_submit(&w.b);
	waiter_wait(&w);
	assert_int_not_equal(w.result, 0);
	assert_int_equal(take_routed(f, routed, 2), 0);
	assert_int_equal(f->eng.counters.messages_received, 0);
	assert_int_equal(spool_count(f->eng.spool, &n_msgs, &n_rcpts), 0);
	assert_int_equal(n_msgs, 0);
	free(m.body);
}

static void test_dsn_style_put(void **state)
{
	struct fx *f = *state;
	const char *sender = "orig@senders.test";
	struct accept_msg m = {.body = dup_body("DSN\r\n"), .len = 5, .count = 1};
	struct accept_batch b = {
		.eng = &f->eng, .sender = "", .campaign = "", .source_ip = "", .arrival_ms = 7, .due_ms = 7,
		.ids_given = true, .rcpts = &sender, .msgs = &m, .n_msgs = 1,
	};
	struct spool_wtxn *t;
	struct sched_rcpt *routed[2];

	spool_writer_stop(&f->eng.writer); /* this test is the writer */
	assert_int_equal(spool_wtxn_begin(f->eng.spool, &t), 0);
	assert_int_equal(spool_alloc_id(t, &m.id), 0);
	assert_int_equal(accept_store_put(&b, t), 0);
	assert_int_equal(spool_wtxn_commit(t), 0);
	accept_store_committed(&b);
	assert_int_equal(take_routed(f, routed, 2), 1);
	assert_int_equal(routed[0]->msg_id, m.id);
	assert_string_equal(routed[0]->domain, "senders.test");
	free(routed[0]);
	assert_int_equal(f->eng.counters.messages_received, 0);
	outbox_flush(f->eng.spool, f->eng.acct, NULL);
	assert_int_equal(count_in_log(f, "\"type\":\"reception\""), 0);
	assert_int_equal(spool_writer_start(&f->eng.writer, f->eng.spool, &f->eng, flush_log, 0), 0);
	free(m.body);
}

static void test_recover_reads_the_queue(void **state)
{
	struct fx *f = *state;
	const char *rcpts[] = {"a@one.test", "b@two.test", "c@two.test"};
	struct accept_msg m = {.body = dup_body("x\r\n"), .len = 3, .count = 3};
	struct waiter w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
	struct accept_recovered rec;
	struct sched_rcpt *routed[4];

	w.b = (struct accept_batch){
		.eng = &f->eng, .sender = "s@senders.test", .campaign = "", .source_ip = "", .arrival_ms = 1,
		.due_ms = 2, .received = true, .rcpts = rcpts, .msgs = &m, .n_msgs = 1, .done = waiter_done,
	};
	accept_store_submit(&w.b);
	waiter_wait(&w);
	assert_int_equal(w.result, 0);
	for (size_t i = 0, n = take_routed(f, routed, 4); i < n; i++)
		free(routed[i]);
	assert_int_equal(accept_store_recover(&f->eng, &rec), 0);
	assert_int_equal(rec.n, 3);
	for (size_t i = 0; i < rec.n; i++) {
		assert_int_equal(rec.r[i]->msg_id, m.id);
		assert_int_equal(rec.r[i]->due_ms, 2);
	}
	/* nothing routed until asked; then all of it, once */
	assert_int_equal(take_routed(f, routed, 4), 0);
	accept_store_route_recovered(&f->eng, &rec);
	assert_null(rec.r);
	assert_int_equal(take_routed(f, routed, 4), 3);
	for (size_t i = 0; i < 3; i++)
		free(routed[i]);
	/* and the unrouted case frees what it read */
	assert_int_equal(accept_store_recover(&f->eng, &rec), 0);
	assert_int_equal(rec.n, 3);
	accept_store_free_recovered(&rec);
	assert_int_equal(rec.n, 0);
	free(m.body);
}

struct job {
	struct accept_job j;
	int *log;
	int *n;
	int tag;
	pthread_t thread;
};

static void job_run(struct accept_job *aj)
{
	struct job *j = container_of(aj, struct job, j);
	struct timespec ts = {0, 1000000};

	nanosleep(&ts, NULL); /* let later defers queue up behind it */
	j->log[(*j->n)++] = j->tag;
	j->thread = pthread_self();
}

static void test_store_thread(void **state)
{
	struct accept_store st;
	struct job jobs[6];
	int log[8], n = 0;

	(void)state;
	assert_int_equal(accept_store_start(&st), 0);
	assert_false(accept_store_stopping(&st));
	for (int i = 0; i < 5; i++) {
		jobs[i] = (struct job){.j.run = job_run, .log = log, .n = &n, .tag = i};
		accept_store_defer(&st, &jobs[i].j);
	}
	accept_store_stop(&st); /* drains the five */
	assert_true(accept_store_stopping(&st));
	assert_int_equal(n, 5);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(log[i], i);
		assert_false(pthread_equal(jobs[i].thread, pthread_self()));
	}
	/* after the stop, a deferred job runs at once on the caller's thread */
	jobs[5] = (struct job){.j.run = job_run, .log = log, .n = &n, .tag = 5};
	accept_store_defer(&st, &jobs[5].j);
	assert_int_equal(n, 6);
	assert_true(pthread_equal(jobs[5].thread, pthread_self()));
	accept_store_stop(&st); /* a second stop is harmless */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_submit_commits_logs_routes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_commit_routes_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dsn_style_put, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover_reads_the_queue, setup, teardown),
		cmocka_unit_test(test_store_thread),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
