/*
 * test_webhook.c - the webhook sender against a small HTTP server in this
 * process, while the accounting log it tails is written and rotated (every
 * ~8 records) under it: every chosen record arrives once, in order, across
 * rotations; a receiver's 503s, a hung request (timeout) and a redirect
 * (not followed) are retried, the 503'd batch with the same bytes; a restart
 * resumes at the saved position (nothing sent twice, nothing lost).
 * And the log reader's parsers with malformed input: record lines cut at
 * every length, times, position files.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/acct_log.h"
#include "core/config.h"
#include "core/json_str.h"
#include "engine/webhook.h"
#include "engine/webhook_backlog.h"
#include "engine/webhook_log.h"
#include "engine/webhook_seen.h"

#define MAX_BODIES 4096

struct server {
	int lfd;
	unsigned short port;
	pthread_t thread;
	pthread_mutex_t lock;
	bool stop;
	unsigned fail_first;       /* answer 503 to this many, */
	unsigned hang_next;        /* then answer nothing to this many (past the timeout), */
	unsigned redirect_next;    /* then 301 (not followed) to this many */
	char *bodies[MAX_BODIES];  /* answered 200 */
	size_t n_bodies;
	unsigned answered_503;
	char *last_503;            /* body of the last 503, to compare with its retry */
	bool retry_same;           /* the POST after a 503 carried the same body */
	int hung_fd;               /* the connection left unanswered; -1 */
};

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

static bool stopping(struct server *s)
{
	bool v;

	pthread_mutex_lock(&s->lock);
	v = s->stop;
	pthread_mutex_unlock(&s->lock);
	return v;
}

/* Serve one connection: HTTP/1.1 requests with Content-Length, kept alive. */
static void serve(struct server *s, int fd)
{
	char *buf = malloc(1 << 20);
	size_t len = 0, cap = 1 << 20;

	while (buf && !stopping(s)) {
		struct pollfd p = {fd, POLLIN, 0};
		char *end = len ? memmem(buf, len, "\r\n\r\n", 4) : NULL;

		if (end) {
			size_t hl = (size_t)(end - buf) + 4, cl = 0;
			char *h = strcasestr(buf, "Content-Length:");

			if (h && h < end)
				cl = strtoul(h + 15, NULL, 10);
			if (len >= hl + cl) {
				char *body = strndup(buf + hl, cl);
				const char *ans;

				pthread_mutex_lock(&s->lock);
				if (s->last_503) {
					s->retry_same = strcmp(s->last_503, body) == 0;
					free(s->last_503);
					s->last_503 = NULL;
				}
				if (s->answered_503 < s->fail_first) {
					s->answered_503++;
					s->last_503 = body;
					ans = "HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n";
				} else if (s->hang_next) {
					/* never answered: kept open (closed at the end)
					 * while the next connections are served */
					s->hang_next--;
					s->hung_fd = fd;
					free(body);
					pthread_mutex_unlock(&s->lock);
					fd = -1;
					break;
				} else if (s->redirect_next) {
					s->redirect_next--;
					free(body);
					ans = "HTTP/1.1 301 Moved\r\nLocation: http://127.0.0.1:1/\r\nContent-Length: 0\r\n\r\n";
				} else {
					if (s->n_bodies < MAX_BODIES)
						s->bodies[s->n_bodies++] = body;
					else
						free(body);
					ans = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
				}
				pthread_mutex_unlock(&s->lock);
				if (write(fd, ans, strlen(ans)) < 0)
					break;
				memmove(buf, buf + hl + cl, len - hl - cl);
				len -= hl + cl;
				continue;
			}
		}
		if (poll(&p, 1, 50) <= 0)
			continue;
		ssize_t n = read(fd, buf + len, cap - len - 1);

		if (n <= 0)
			break;
		len += (size_t)n;
		buf[len] = 0;
	}
	free(buf);
	if (fd >= 0)
		close(fd);
}

static void *server_run(void *arg)
{
	struct server *s = arg;

	while (!stopping(s)) {
		struct pollfd p = {s->lfd, POLLIN, 0};
		int fd;

		if (poll(&p, 1, 50) <= 0)
			continue;
		if ((fd = accept(s->lfd, NULL, NULL)) >= 0)
			serve(s, fd);
	}
	return NULL;
}

static void server_start(struct server *s, unsigned fail_first)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);

	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	s->fail_first = fail_first;
	s->hung_fd = -1;
	s->lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(s->lfd >= 0);
	assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(s->lfd, 8), 0);
	assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&a, &al), 0);
	s->port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&s->thread, NULL, server_run, s), 0);
}

static void server_stop(struct server *s)
{
	pthread_mutex_lock(&s->lock);
	s->stop = true;
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->thread, NULL);
	close(s->lfd);
	if (s->hung_fd >= 0)
		close(s->hung_fd);
	for (size_t i = 0; i < s->n_bodies; i++)
		free(s->bodies[i]);
	free(s->last_503);
	pthread_mutex_destroy(&s->lock);
}

/* The message ids of every record the server acknowledged, in order. */
static size_t received_ids(struct server *s, uint64_t *out, size_t cap)
{
	size_t n = 0;

	pthread_mutex_lock(&s->lock);
	for (size_t b = 0; b < s->n_bodies; b++) {
		json_t *arr = json_loads(s->bodies[b], 0, NULL);

		assert_non_null(arr);
		assert_true(json_is_array(arr));
		for (size_t i = 0; i < json_array_size(arr); i++) {
			json_t *rec = json_array_get(arr, i);

			assert_non_null(json_object_get(rec, "event_id"));
			if (n < cap)
				out[n] = strtoull(json_string_value(json_object_get(rec, "id")), NULL, 16);
			n++;
		}
		json_decref(arr);
	}
	pthread_mutex_unlock(&s->lock);
	return n;
}

static size_t wait_for(struct server *s, size_t want, uint64_t *ids, size_t cap)
{
	size_t n = 0;

	for (int i = 0; i < 2000 && (n = received_ids(s, ids, cap)) < want; i++)
		sleep_ms(10);
	sleep_ms(100); /* anything extra would show up now */
	return received_ids(s, ids, cap);
}

static void write_records(struct acct_log *log, uint64_t from, uint64_t to)
{
	for (uint64_t id = from; id <= to; id++) {
		struct acct_event ev = {
			.type = id % 5 == 0 ? ACCT_RECEPTION : ACCT_DELIVERY,
			.id = id,
			.sender = "s@example.com",
			.recipient = "r@example.net",
			.response_code = 250,
			.response_text = "ok",
		};

		assert_int_equal(acct_log_write(log, &ev), 0);
		if (id % 3 == 0)
			assert_int_equal(acct_log_flush(log), 0);
		if (id % 50 == 0)
			sleep_ms(2);
	}
	assert_int_equal(acct_log_flush(log), 0);
}

static void test_rotation_retry_restart(void **state)
{
	char dir[] = "/tmp/salvo-webhook-XXXXXX", logd[64], stated[64], text[512], err[CONFIG_ERR_MAX];
	struct config cfg;
	struct server srv;
	struct acct_log *log = NULL;
	struct webhooks *wh = NULL;
	struct webhook_stat st;
	uint64_t ids[1024];
	size_t n, k = 0;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(logd, sizeof(logd), "%s/log", dir);
	snprintf(stated, sizeof(stated), "%s/webhooks", dir);
	server_start(&srv, 3);
	srv.hang_next = 1;
	srv.redirect_next = 1;
	snprintf(text, sizeof(text),
		 "spool-dir %s\n<acct-webhook t>\n url http://127.0.0.1:%u/h\n records delivery\n max-batch 7\n"
		 " max-delay 10ms\n secret x\n retry-max 40ms\n timeout 2s\n</acct-webhook>\n",
		 dir, srv.port);
	assert_int_equal(config_load_string(&cfg, "test", text, err), 0);
	assert_int_equal(acct_log_open(&log, logd, 2048, 0), 0);
	assert_int_equal(webhooks_start(&wh, &cfg, logd, stated, err, sizeof(err)), 0);

	write_records(log, 1, 600);
	n = wait_for(&srv, 480, ids, 1024);
	assert_int_equal(n, 480);
	for (uint64_t id = 1; id <= 600; id++)
		if (id % 5)
			assert_int_equal(ids[k++], id); /* each once, in order */
	assert_int_equal(webhooks_stats(wh, &st, 1), 1);
	assert_int_equal(st.records_sent, 480);
	assert_int_equal(st.failures, 5); /* 3 x 503, a timeout, a 301 */
	assert_int_equal(st.failures_in_row, 0);
	assert_true(srv.retry_same);
	webhooks_stop(wh);

	/* restarted: on from the saved position */
	write_records(log, 601, 620);
	assert_int_equal(webhooks_start(&wh, &cfg, logd, stated, err, sizeof(err)), 0);
	n = wait_for(&srv, 496, ids, 1024);
	assert_int_equal(n, 496);
	for (uint64_t id = 601; id <= 620; id++)
		if (id % 5)
			assert_int_equal(ids[k++], id);
	webhooks_stop(wh);

	acct_log_close(log);
	server_stop(&srv);
	config_free(&cfg);
	snprintf(text, sizeof(text), "rm -rf %s", dir);
	assert_int_equal(system(text), 0);
}

static void id_hex(unsigned i, char out[ACCT_EVENT_ID_LEN + 1])
{
	snprintf(out, ACCT_EVENT_ID_LEN + 1, "%016x%016x", i * 7919u, i);
}

/* The recent event_ids: the last WH_SEEN_GEN added are always known, much
 * older ones are forgotten (bounded), malformed ids are never "seen"; ids
 * from log text skip a cut first line and lines that are no record. */
static void test_seen(void **state)
{
	struct wh_seen *s = calloc(1, sizeof(*s));
	char hex[ACCT_EVENT_ID_LEN + 1];
	unsigned n = 3 * WH_SEEN_GEN + 17;

	(void)state;
	assert_non_null(s);
	for (unsigned i = 1; i <= n; i++) {
		id_hex(i, hex);
		assert_false(wh_seen_has(s, hex));
		wh_seen_add(s, hex);
		assert_true(wh_seen_has(s, hex));
		wh_seen_add(s, hex); /* twice: no effect */
	}
	for (unsigned i = n - WH_SEEN_GEN + 1; i <= n; i++) {
		id_hex(i, hex);
		assert_true(wh_seen_has(s, hex));
	}
	id_hex(1, hex);
	assert_false(wh_seen_has(s, hex));
	assert_false(wh_seen_has(s, "0000000000000000000000000000000g"));
	wh_seen_add(s, "00000000000000000000000000000000"); /* the empty key: ignored */
	assert_false(wh_seen_has(s, "00000000000000000000000000000000"));

	memset(s, 0, sizeof(*s));
	const char *a = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", *b = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
		   *c = "cccccccccccccccccccccccccccccccc";
	char text[1024];

	snprintf(text, sizeof(text),
		 "{\"time\":\"2026-12-07T00:00:00.000Z\",\"type\":\"delivery\",\"event_id\":\"%s\"}\n"
		 "{\"time\":\"2026-12-07T00:00:00.000Z\",\"type\":\"bounce\",\"event_id\":\"%s\"}\n"
		 "{\"time\":\"2026-12-07T00:00:00.000Z\",\"type\":\"bounce\",\"event_id\":\"%s\"",
		 a, b, c);
	wh_seen_add_lines(s, text + 3, strlen(text) - 3, false); /* cut first line, unfinished last */
	assert_false(wh_seen_has(s, a));
	assert_true(wh_seen_has(s, b));
	assert_false(wh_seen_has(s, c));
	wh_seen_add_lines(s, text, strlen(text), true);
	assert_true(wh_seen_has(s, a));
	free(s);
}

/* A line as the log writes it: whole, it has its type; cut anywhere, or
 * with its event_id spoiled, it is no record. */
static void test_record_type(void **state)
{
	struct acct_event ev = {
		.type = ACCT_BOUNCE,
		.time_ms = 1795341662345LL,
		.id = 0x4d2,
		.recipient = "a\"}@example.com", /* quotes and braces inside a string */
		.response_code = 550,
		.response_text = "no \"type\":\"delivery\" here",
	};
	struct json_buf b = {0};
	const char *type;
	size_t tlen, n;
	char *line;

	(void)state;
	assert_int_equal(acct_event_format(&b, &ev), 0);
	line = b.data;
	n = b.len - 1; /* without "\n" */
	assert_true(wh_record_type(line, n, &type, &tlen));
	assert_int_equal(tlen, 6);
	assert_memory_equal(type, "bounce", 6);
	for (size_t k = 0; k < n; k++)
		assert_false(wh_record_type(line, k, &type, &tlen));
	/* an event_id with a non-hex digit, or one digit short */
	line[n - 3] = 'G';
	assert_false(wh_record_type(line, n, &type, &tlen));
	line[n - 3] = '0';
	assert_true(wh_record_type(line, n, &type, &tlen));
	assert_false(wh_record_type(line + 1, n - 1, &type, &tlen));
	/* the type found elsewhere than its usual place; none at all; empty */
	{
		static const char odd[] = "{\"type\":\"feedback\",\"event_id\":\"00000000000004d29c1e0f3a57b2d4e8\"}";
		static const char none[] = "{\"kind\":\"feedback\",\"event_id\":\"00000000000004d29c1e0f3a57b2d4e8\"}";
		static const char empty[] = "{\"type\":\"\",\"event_id\":\"00000000000004d29c1e0f3a57b2d4e8\"}";

		assert_true(wh_record_type(odd, strlen(odd), &type, &tlen));
		assert_int_equal(tlen, 8);
		assert_false(wh_record_type(none, strlen(none), &type, &tlen));
		assert_false(wh_record_type(empty, strlen(empty), &type, &tlen));
	}
	json_buf_free(&b);
}

static void test_parse_time(void **state)
{
	(void)state;
	assert_int_equal(wh_parse_time("2026-11-22T10:01:02.345Z", 24), 1795341662345LL);
	assert_int_equal(wh_parse_time("2026-11-22T10:01:02.345Z\"", 25), 1795341662345LL);
	assert_int_equal(wh_parse_time("2026-11-22T10:01:02.345", 23), 0);  /* short */
	assert_int_equal(wh_parse_time("2026-13-22T10:01:02.345Z", 24), 0); /* month */
	assert_int_equal(wh_parse_time("2026-11-22 10:01:02.345Z", 24), 0); /* separator */
	assert_int_equal(wh_parse_time("2026-11-2xT10:01:02.345Z", 24), 0); /* digit */
	assert_int_equal(wh_parse_time("2026-11-22T25:01:02.345Z", 24), 0); /* hour */
}

/* ---- the backlog in records ---------------------------------------------- */

static bool wants_db(const void *ctx, const char *type, size_t len)
{
	(void)ctx;
	return (len == 8 && !memcmp(type, "delivery", 8)) || (len == 6 && !memcmp(type, "bounce", 6));
}

/* A whole record line of that type (with its "\n"), n-th of the test. */
static void put_rec(FILE *f, const char *type, unsigned n)
{
	fprintf(f, "{\"time\":\"2026-12-07T10:00:00.000Z\",\"type\":\"%s\",\"recipient\":\"r%u@x.test\""
		   ACCT_EVENT_ID_KEY "%032x\"}\n", type, n, n);
}

static void put_file(const char *dir, const char *name, const char *types, const char *tail)
{
	char path[512];
	FILE *f;
	unsigned n = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_non_null(f = fopen(path, "a"));
	for (const char *t = types; *t; t++)
		put_rec(f, *t == 'd' ? "delivery" : *t == 'b' ? "bounce" : "transient", n++);
	if (tail)
		fputs(tail, f);
	fclose(f);
}

static uint64_t ino_size(const char *dir, const char *name, uint64_t *size)
{
	char path[512];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(stat(path, &st), 0);
	if (size)
		*size = (uint64_t)st.st_size;
	return (uint64_t)st.st_ino;
}

static uint64_t counted(struct wh_backlog *b, int dfd, const struct wh_pos *pos)
{
	wh_backlog_update(b, dfd, pos, wants_db, NULL, UINT64_MAX, WH_WANTED_UNKNOWN);
	assert_true(b->exact);
	return b->records;
}

static void test_backlog_count(void **state)
{
	char dir[] = "/tmp/salvo-backlog-XXXXXX", path[600];
	struct wh_backlog b = {0}, slow = {0};
	struct wh_pos all = {0}, pos = {0};
	uint64_t size, one;
	int dfd, rounds = 0;
	FILE *f;
	(void)state;

	assert_non_null(mkdtemp(dir));
	assert_true((dfd = open(dir, O_RDONLY | O_DIRECTORY)) >= 0);
	put_file(dir, "acct-20261207-000001.jsonl", "dddtt", NULL);
	put_file(dir, "acct.jsonl", "ddddb", "{\"time\":\"2026-12-07T10:00"); /* a line being written */
	assert_int_equal(counted(&b, dfd, &all), 8);
	/* a small budget: several updates, not exact until the end */
	do {
		wh_backlog_update(&slow, dfd, &all, wants_db, NULL, 100, WH_WANTED_UNKNOWN);
		rounds++;
	} while (!slow.exact && rounds < 100);
	assert_true(slow.exact);
	assert_true(rounds >= 2); /* a budget is checked between reads of up to 1 MiB */
	assert_int_equal(slow.records, 8);
	/* the position moves into the archive, after its second line: 1 + 5 */
	pos.ino = ino_size(dir, "acct-20261207-000001.jsonl", &size);
	one = size / 5;
	pos.off = 2 * one;
	assert_int_equal(counted(&b, dfd, &pos), 6);
	assert_int_equal(counted(&slow, dfd, &pos), 6);
	/* the sender's running count: the position passes lines 3 and 4 (d, t) and
	 * says 1 wanted record; not read again, the same answer */
	{
		struct wh_backlog h = {0};
		struct wh_pos p2 = pos;

		wh_backlog_update(&h, dfd, &pos, wants_db, NULL, UINT64_MAX, 2);
		assert_int_equal(h.records, 6);
		p2.off = 4 * one;
		wh_backlog_update(&h, dfd, &p2, wants_db, NULL, UINT64_MAX, 3);
		assert_true(h.exact);
		assert_int_equal(h.records, 5);
		/* back where it was, unknown count: read again */
		wh_backlog_update(&h, dfd, &pos, wants_db, NULL, UINT64_MAX, WH_WANTED_UNKNOWN);
		assert_int_equal(h.records, 6);
		wh_backlog_free(&h);
	}
	/* the line being written ends (a delivery), one more comes */
	snprintf(path, sizeof(path), "%s/acct.jsonl", dir);
	assert_non_null(f = fopen(path, "a"));
	fputs(":00.000Z\",\"type\":\"delivery\"" ACCT_EVENT_ID_KEY "0123456789abcdef0123456789abcdef\"}\n", f);
	put_rec(f, "bounce", 99);
	fclose(f);
	assert_int_equal(counted(&b, dfd, &pos), 8);
	/* rotation: acct.jsonl becomes an archive (same inode), a new one starts */
	snprintf(path, sizeof(path), "%s/acct.jsonl", dir);
	{
		char to[600];

		snprintf(to, sizeof(to), "%s/acct-20261207-000002.jsonl", dir);
		assert_int_equal(rename(path, to), 0);
	}
	put_file(dir, "acct.jsonl", "tdd", NULL);
	assert_int_equal(counted(&b, dfd, &pos), 10);
	/* acknowledged through the first archive, which is then deleted; the
	 * position is at the start of the second: its 7 + 2 */
	snprintf(path, sizeof(path), "%s/acct-20261207-000001.jsonl", dir);
	assert_int_equal(unlink(path), 0);
	pos.ino = ino_size(dir, "acct-20261207-000002.jsonl", NULL);
	pos.off = 0;
	assert_int_equal(counted(&b, dfd, &pos), 9);
	/* to the end of the second archive: only acct.jsonl's 2 */
	ino_size(dir, "acct-20261207-000002.jsonl", &size);
	pos.off = size;
	assert_int_equal(counted(&b, dfd, &pos), 2);
	assert_int_equal(counted(&slow, dfd, &pos), 2);
	/* a record line longer than the read buffer counts once */
	snprintf(path, sizeof(path), "%s/acct.jsonl", dir);
	assert_non_null(f = fopen(path, "a"));
	fputs("{\"time\":\"2026-12-07T10:00:00.000Z\",\"type\":\"delivery\",\"x\":\"", f);
	for (int i = 0; i < (3 << 20) / 64; i++)
		fputs("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", f);
	fputs("\"" ACCT_EVENT_ID_KEY "0123456789abcdef0123456789abcdef\"}\n", f);
	put_rec(f, "transient", 100);
	put_rec(f, "delivery", 101);
	fclose(f);
	assert_int_equal(counted(&b, dfd, &pos), 4);
	/* a position in no file of the log (its file deleted): nothing after it */
	pos.ino = 1;
	assert_int_equal(counted(&b, dfd, &pos), 0);
	wh_backlog_free(&b);
	wh_backlog_free(&slow);
	close(dfd);
	snprintf(path, sizeof(path), "rm -rf %s", dir);
	assert_int_equal(system(path), 0);
}

static void test_pos_parse(void **state)
{
	struct wh_pos in = {.ino = 1234567, .off = 89, .name = "acct-20261207T000000.000Z.jsonl"}, out;
	char text[WH_POS_LEN];
	static const char *const bad[] = {
		"", "x 1 acct.jsonl", "1 x acct.jsonl", "1 2", "1 2 ", "1 2 ../etc/passwd", "1 2 acct.jsonl junk",
		"-1 2 acct.jsonl", "0 2 acct.jsonl", "1  2 acct.jsonl", "99999999999999999999999 2 acct.jsonl",
		"1 2 acct-x.json",
	};

	(void)state;
	wh_pos_format(&in, text);
	assert_int_equal(text[WH_POS_LEN - 1], '\n');
	assert_int_equal(wh_pos_parse(text, sizeof(text), &out), 0);
	assert_int_equal(out.ino, in.ino);
	assert_int_equal(out.off, in.off);
	assert_string_equal(out.name, in.name);
	assert_int_equal(wh_pos_parse("5 0 acct.jsonl\n", 15, &out), 0);
	assert_string_equal(out.name, "acct.jsonl");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(wh_pos_parse(bad[i], strlen(bad[i]), &out), -1);
	assert_int_equal(wh_pos_parse("5 0 acct\0.jsonl", 15, &out), -1); /* a NUL inside */
	{
		char longer[WH_POS_LEN + 8];

		memset(longer, ' ', sizeof(longer));
		memcpy(longer, "5 0 acct.jsonl", 14);
		assert_int_equal(wh_pos_parse(longer, sizeof(longer), &out), -1); /* too long */
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_record_type),
		cmocka_unit_test(test_seen),
		cmocka_unit_test(test_parse_time),
		cmocka_unit_test(test_pos_parse),
		cmocka_unit_test(test_backlog_count),
		cmocka_unit_test(test_rotation_retry_restart),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
