/*
 * test_outbox.c - accounting records through the spool's outbox
 * (core/acct_pack.c, queue/outbox.c): an event packed and unpacked formats
 * to the same bytes (same event_id), NULL and "" kept apart; every
 * truncation and corruption of a packed event is refused; records commit
 * with their transaction (an aborted one leaves none), are written by
 * outbox_flush() and deleted by the trim; records committed but never
 * flushed (a crash) are written after a reopen (read back: the same lines
 * as from memory), and a crash between flush and trim writes the same
 * lines again; one entry per commit, several commits read back in order; a log that cannot be written keeps
 * them in the outbox until it can; through the spool writer, each batch's
 * records are in the log once its after_batch ran and leave the outbox in
 * the next batch.
 *
 * Each test works in its own mkdtemp() directory, removed at the end.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/acct_log.h"
#include "core/acct_pack.h"
#include "core/json_str.h"
#include "queue/outbox.h"
#include "queue/spool.h"
#include "queue/spool_writer.h"
#include "tmp_dir.h"

#define T0 1795341662345LL

static struct acct_event full_event(void)
{
	return (struct acct_event){
		.type = ACCT_BOUNCE, .time_ms = T0, .id = 0x1234, .sender = "", .recipient = "r\"x@example.test",
		.queue = "example.test", .vmta = "mta1", .source_ip = "127.0.0.2", .mx_host = "mx.example.test",
		.mx_ip = "127.0.0.9", .attempt = 3, .queued_time_ms = T0 - 5000, .size = 4096, .has_size = true,
		.response_code = 550, .response_enhanced = "5.1.1", .response_text = "no such user \xff",
		.bounce_category = "bad-mailbox", .kind = NULL, .campaign = "c1", .tls = "TLSv1.3", .dsn_id = 0x99,
		.src_type = "api", .pool = "p1", .esmtp = "PIPELINING,SIZE", .headers = "Subject: hi\n",
	};
}

static char *format(const struct acct_event *ev)
{
	struct json_buf b = {0};

	assert_int_equal(acct_event_format(&b, ev), 0);
	assert_int_equal(json_buf_putc(&b, 0), 0);
	return b.data;
}

static void test_pack_roundtrip(void **state)
{
	struct acct_event ev = full_event(), back;
	struct json_buf b = {0};
	char *want, *got;

	(void)state;
	assert_int_equal(acct_event_pack(&b, &ev), 0);
	assert_int_equal(acct_event_unpack(b.data, b.len, &back), 0);
	want = format(&ev);
	got = format(&back);
	assert_string_equal(got, want); /* so the same event_id */
	assert_non_null(back.sender);
	assert_string_equal(back.sender, ""); /* "" is not NULL */
	assert_string_equal(back.headers, "Subject: hi\n");
	assert_string_equal(back.esmtp, "PIPELINING,SIZE");
	assert_non_null(strstr(want, ",\"src_type\":\"api\",\"pool\":\"p1\",\"esmtp\":\"PIPELINING,SIZE\","
				     "\"headers\":{\"Subject\":\"hi\"}"));
	assert_null(back.kind);
	assert_int_equal(back.response_code, 550);
	assert_int_equal(back.queued_time_ms, T0 - 5000);
	free(want);
	free(got);
	/* time 0 ("now") is fixed when packed: every later write agrees */
	ev = (struct acct_event){.type = ACCT_DELIVERY, .id = 7};
	b.len = 0;
	assert_int_equal(acct_event_pack(&b, &ev), 0);
	assert_int_equal(acct_event_unpack(b.data, b.len, &back), 0);
	assert_true(back.time_ms > T0 - 86400000LL * 365);
	assert_false(back.has_size);
	assert_null(back.recipient);
	assert_null(back.headers);
	/* a record packed before src_type, pool, esmtp and headers existed:
	 * 14 strings, flag bit 1 clear; it reads with the later five NULL */
	ev = full_event();
	ev.src_type = ev.pool = ev.esmtp = ev.headers = NULL;
	b.len = 0;
	assert_int_equal(acct_event_pack(&b, &ev), 0);
	((char *)b.data)[2] &= ~2;
	assert_int_equal(acct_event_unpack(b.data, b.len - 5 * 4, &back), 0);
	assert_string_equal(back.tls, "TLSv1.3");
	assert_null(back.src_type);
	assert_null(back.headers);
	want = format(&ev);
	got = format(&back);
	assert_string_equal(got, want);
	free(want);
	free(got);
	/* envid: a 20th string (flag bit 2) only when there is one; without it
	 * the bytes are what they were before it existed */
	ev = full_event();
	b.len = 0;
	assert_int_equal(acct_event_pack(&b, &ev), 0);
	assert_int_equal(((char *)b.data)[2] & 4, 0);
	{
		size_t plain = b.len;

		ev.envid = "camp7-msg42";
		b.len = 0;
		assert_int_equal(acct_event_pack(&b, &ev), 0);
		assert_int_equal(b.len, plain + 4 + strlen("camp7-msg42") + 1);
		assert_int_equal(((char *)b.data)[2] & 4, 4);
	}
	assert_int_equal(acct_event_unpack(b.data, b.len, &back), 0);
	assert_string_equal(back.envid, "camp7-msg42");
	want = format(&ev);
	got = format(&back);
	assert_string_equal(got, want);
	assert_non_null(strstr(want, ",\"envid\":\"camp7-msg42\""));
	free(want);
	free(got);
	/* orcpt: a 21st string (flag bit 3, with bit 2: envid NULL when none) */
	ev = full_event();
	ev.orcpt = "rfc822;Old+One@example.org";
	b.len = 0;
	assert_int_equal(acct_event_pack(&b, &ev), 0);
	assert_int_equal(((char *)b.data)[2] & 12, 12);
	assert_int_equal(acct_event_unpack(b.data, b.len, &back), 0);
	assert_string_equal(back.orcpt, "rfc822;Old+One@example.org");
	assert_null(back.envid);
	want = format(&ev);
	got = format(&back);
	assert_string_equal(got, want);
	assert_non_null(strstr(want, ",\"orcpt\":\"rfc822;Old+One@example.org\""));
	free(want);
	free(got);
	/* bit 3 without bit 2 is no layout */
	((char *)b.data)[2] &= ~4;
	assert_int_equal(acct_event_unpack(b.data, b.len, &back), -EBADMSG);
	/* bit 2 without bit 1 is no layout */
	((char *)b.data)[2] = 4 | 1;
	assert_int_equal(acct_event_unpack(b.data, b.len, &back), -EBADMSG);
	json_buf_free(&b);
}

static void test_pack_bad_type(void **state)
{
	struct acct_event ev = full_event();
	struct json_buf b = {0};

	(void)state;
	ev.type = ACCT_TYPE_COUNT;
	assert_int_equal(acct_event_pack(&b, &ev), -EINVAL);
	assert_int_equal(b.len, 0);
	json_buf_free(&b);
}

static void test_unpack_malformed(void **state)
{
	struct acct_event ev = full_event(), back;
	struct json_buf b = {0};
	char *p;
	size_t n, str0 = 52; /* first string's length field */

	(void)state;
	assert_int_equal(acct_event_pack(&b, &ev), 0);
	n = b.len;
	p = malloc(n + 1);
	assert_non_null(p);
	for (size_t cut = 0; cut < n; cut++) { /* every truncation */
		memcpy(p, b.data, cut);
		assert_int_equal(acct_event_unpack(p, cut, &back), -EBADMSG);
	}
	memcpy(p, b.data, n);
	p[n] = 0;
	assert_int_equal(acct_event_unpack(p, n + 1, &back), -EBADMSG); /* trailing byte */
#define CORRUPT(off, val)                                                   \
	do {                                                                \
		memcpy(p, b.data, n);                                       \
		p[off] = (char)(val);                                       \
		assert_int_equal(acct_event_unpack(p, n, &back), -EBADMSG); \
	} while (0)
	CORRUPT(0, ACCT_PACK_VERSION + 1); /* version */
	CORRUPT(1, ACCT_TYPE_COUNT);       /* type */
	CORRUPT(2, 4);                     /* unknown flag */
	CORRUPT(2, 1);                     /* the later strings present but not flagged: trailing bytes */
	CORRUPT(3, 1);                     /* reserved byte */
	CORRUPT(str0 + 3, 0x7f);           /* sender: a length past the end */
	CORRUPT(str0 + 4, 'a');            /* sender "": its NUL replaced */
	/* recipient "r\"x@example.test": its NUL replaced, then a NUL inside it */
	CORRUPT(str0 + 4 + 1 + 4 + strlen(ev.recipient), 'x');
	CORRUPT(str0 + 4 + 1 + 4 + 1, 0);
#undef CORRUPT
	free(p);
	json_buf_free(&b);
}

/* ---- the outbox in a spool ----------------------------------------------------- */

struct fx {
	char dir[64];
	char logdir[96];
	struct spool *s;
	struct acct_log *log;
};

static void fx_open(struct fx *f)
{
	assert_int_equal(spool_open(&f->s, f->dir, 64ull << 20), 0);
	assert_int_equal(acct_log_open(&f->log, f->logdir, 0, 0), 0);
}

/* A crash: nothing more is flushed or trimmed. (acct_log_close flushes its
 * buffer, but the outbox never handed it these records.) */
static void fx_close(struct fx *f)
{
	acct_log_close(f->log);
	spool_close(f->s);
	f->log = NULL;
	f->s = NULL;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(tmp_dir_make(f->dir, sizeof(f->dir), "test_outbox"), 0);
	snprintf(f->logdir, sizeof(f->logdir), "%s/log", f->dir);
	fx_open(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	fx_close(f);
	tmp_dir_remove(f->dir);
	free(f);
	return 0;
}

static uint64_t stored(struct fx *f)
{
	uint64_t n;

	assert_int_equal(outbox_count(f->s, &n), 0);
	return n;
}

/* Lines in acct.jsonl holding needle (NULL: all). */
static size_t log_lines(struct fx *f, const char *needle)
{
	char path[160], line[4096];
	size_t n = 0;
	FILE *fp;

	snprintf(path, sizeof(path), "%s/acct.jsonl", f->logdir);
	if (!(fp = fopen(path, "r")))
		return 0;
	while (fgets(line, sizeof(line), fp))
		if (!needle || strstr(line, needle))
			n++;
	fclose(fp);
	return n;
}

static void put_n(struct fx *f, uint64_t first, uint64_t n, bool commit)
{
	struct spool_wtxn *t;

	assert_int_equal(spool_wtxn_begin(f->s, &t), 0);
	for (uint64_t i = first; i < first + n; i++) {
		struct acct_event ev = full_event();

		ev.id = i;
		assert_int_equal(outbox_put(t, &ev), 0);
	}
	if (commit)
		assert_int_equal(spool_wtxn_commit(t), 0);
	else
		spool_wtxn_abort(t);
}

static void test_commit_flush_trim(void **state)
{
	struct fx *f = *state;
	char *want, id[40];
	struct acct_event ev = full_event();
	uint64_t n = 99;

	put_n(f, 1, 3, true);
	put_n(f, 10, 2, false); /* aborted: no records */
	assert_int_equal(stored(f), 1); /* one entry per commit */
	assert_int_equal(log_lines(f, NULL), 0);
	assert_int_equal(outbox_flush(f->s, f->log, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(log_lines(f, NULL), 3);
	assert_int_equal(log_lines(f, "\"id\":\"000000000000000a\""), 0);
	/* the line is exactly what the log makes of the event */
	ev.id = 2;
	want = format(&ev);
	snprintf(id, sizeof(id), "%.32s", strstr(want, ACCT_EVENT_ID_KEY) + strlen(ACCT_EVENT_ID_KEY));
	assert_int_equal(log_lines(f, want), 1);
	free(want);
	assert_int_equal(outbox_flush(f->s, f->log, &n), 0); /* nothing new */
	assert_int_equal(n, 0);
	assert_int_equal(stored(f), 1);
	assert_int_equal(outbox_trim_now(f->s), 0);
	assert_int_equal(stored(f), 0);
	/* later records go on after the trimmed ones */
	put_n(f, 20, 2, true);
	assert_int_equal(outbox_flush(f->s, f->log, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(log_lines(f, NULL), 5);
	assert_int_equal(log_lines(f, id), 1);
	/* two commits before a flush (a split batch): read back, in order */
	put_n(f, 30, 2, true);
	put_n(f, 40, 3, true);
	assert_int_equal(stored(f), 3);
	assert_int_equal(outbox_flush(f->s, f->log, &n), 0);
	assert_int_equal(n, 5);
	assert_int_equal(log_lines(f, NULL), 10);
	assert_int_equal(log_lines(f, "\"id\":\"000000000000002a\""), 1);
}

static void test_crash_before_flush(void **state)
{
	struct fx *f = *state;
	uint64_t n;

	put_n(f, 1, 4, true);
	fx_close(f); /* crash after the commit: the log never saw them */
	assert_int_equal(log_lines(f, NULL), 0);
	fx_open(f);
	assert_int_equal(outbox_flush(f->s, f->log, &n), 0);
	assert_int_equal(n, 4);
	assert_int_equal(log_lines(f, NULL), 4);
	/* crash after the flush, before the trim: the same lines again */
	fx_close(f);
	fx_open(f);
	put_n(f, 5, 1, true); /* sequences go on after what is stored */
	assert_int_equal(outbox_flush(f->s, f->log, &n), 0);
	assert_int_equal(n, 5);
	assert_int_equal(log_lines(f, NULL), 9);
	assert_int_equal(log_lines(f, "\"id\":\"0000000000000001\""), 2);
	{
		/* both lines are the event as the log formats it: one event_id */
		struct acct_event ev = full_event();
		char *want;

		ev.id = 1;
		want = format(&ev);
		assert_int_equal(log_lines(f, want), 2);
		free(want);
	}
	assert_int_equal(log_lines(f, "\"id\":\"0000000000000005\""), 1);
	assert_int_equal(outbox_trim_now(f->s), 0);
	assert_int_equal(stored(f), 0);
	fx_close(f);
	fx_open(f);
	assert_int_equal(outbox_flush(f->s, f->log, &n), 0);
	assert_int_equal(n, 0);
}

/* The log file cannot grow (RLIMIT_FSIZE at its size): the flush fails,
 * the records stay in the outbox and the log's buffer, and the next flush
 * after the limit is lifted writes each of them once. */
static void test_log_failure_keeps_records(void **state)
{
	struct fx *f = *state;
	struct rlimit old, lim;
	uint64_t n;

	put_n(f, 1, 2, true);
	assert_int_equal(outbox_flush(f->s, f->log, &n), 0);
	put_n(f, 3, 5, true);
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 10; /* below the file's size */
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	assert_int_equal(outbox_flush(f->s, f->log, &n), -EFBIG);
	assert_int_equal(outbox_flush(f->s, f->log, &n), -EFBIG); /* retried, still failing */
	assert_int_equal(n, 0);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_DFL);
	assert_int_equal(outbox_trim_now(f->s), 0); /* deletes only the entry written */
	assert_int_equal(stored(f), 1);
	assert_int_equal(outbox_flush(f->s, f->log, &n), 0);
	assert_int_equal(log_lines(f, NULL), 7);
	for (int i = 1; i <= 7; i++) {
		char want[40];

		snprintf(want, sizeof(want), "\"id\":\"%016x\"", i);
		assert_int_equal(log_lines(f, want), 1);
	}
	assert_int_equal(outbox_trim_now(f->s), 0);
	assert_int_equal(stored(f), 0);
}

/* ---- through the writer: records out after each batch, trimmed in the next ---- */

struct rec_req {
	struct spool_req base;
	uint64_t first, n;
	pthread_mutex_t *mu;
	pthread_cond_t *cv;
	int *done;
};

static int rec_apply(struct spool_req *r, struct spool_wtxn *t, void *ctx)
{
	struct rec_req *q = (struct rec_req *)r;

	(void)ctx;
	for (uint64_t i = q->first; i < q->first + q->n; i++) {
		struct acct_event ev = full_event();
		int ret;

		ev.id = i;
		if ((ret = outbox_put(t, &ev)))
			return ret;
	}
	return 0;
}

static void rec_done(struct spool_req *r, int result, void *ctx)
{
	struct rec_req *q = (struct rec_req *)r;

	(void)ctx;
	assert_int_equal(result, 0);
	pthread_mutex_lock(q->mu);
	(*q->done)++;
	pthread_cond_signal(q->cv);
	pthread_mutex_unlock(q->mu);
}

static void after_batch(void *ctx)
{
	struct fx *f = ctx;

	outbox_flush(f->s, f->log, NULL);
}

static void submit_wait(struct spool_writer *w, uint64_t first, uint64_t n)
{
	pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
	int done = 0;
	struct rec_req q = {.base = {.apply = rec_apply, .done = rec_done}, .first = first, .n = n,
			    .mu = &mu, .cv = &cv, .done = &done};

	spool_writer_submit(w, &q.base);
	pthread_mutex_lock(&mu);
	while (!done)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
}

static void test_writer_flushes_and_trims(void **state)
{
	struct fx *f = *state;
	struct spool_writer w;

	assert_int_equal(spool_writer_start(&w, f->s, f, after_batch, 0), 0);
	submit_wait(&w, 1, 3);
	submit_wait(&w, 4, 2); /* its batch deletes the first three */
	spool_writer_stop(&w); /* after the last batch's flush */
	assert_int_equal(log_lines(f, NULL), 5);
	assert_int_equal(stored(f), 1);
	assert_int_equal(outbox_trim_now(f->s), 0);
	assert_int_equal(stored(f), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pack_roundtrip),
		cmocka_unit_test(test_pack_bad_type),
		cmocka_unit_test(test_unpack_malformed),
		cmocka_unit_test_setup_teardown(test_commit_flush_trim, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_before_flush, setup, teardown),
		cmocka_unit_test_setup_teardown(test_log_failure_keeps_records, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_flushes_and_trims, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
