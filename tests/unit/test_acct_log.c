/*
 * test_acct_log.c - the accounting log and the JSON string escaper:
 * exact record lines for each event type, field omission, escaping
 * (quotes, backslashes, control characters, invalid UTF-8), RFC 3339
 * times, rotation by size and age without splitting a line, write
 * failures (RLIMIT_FSIZE) and open failures.
 *
 * Each test works in its own mkdtemp() directory, removed at the end.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/acct_log.h"
#include "core/json_str.h"
#include "tmp_dir.h"

#define T0 1795341662345LL /* 2026-11-22T10:01:02.345Z */
#define Q0 1795341480000LL /* 2026-11-22T09:58:00.000Z */

/* ---- helpers -------------------------------------------------------------------- */

static char *tmpdir_new(void)
{
	char *d = malloc(64);

	assert_non_null(d);
	assert_int_equal(tmp_dir_make(d, 64, "test_acct_log"), 0);
	return d;
}

static void tmpdir_free(char *d)
{
	tmp_dir_remove(d);
	free(d);
}

/* Whole file as a NUL-terminated string (caller frees). */
static char *slurp(const char *dir, const char *name, size_t *len)
{
	char path[512];
	struct stat st;
	char *buf;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(read(fd, buf, (size_t)st.st_size), st.st_size);
	buf[st.st_size] = 0;
	close(fd);
	if (len)
		*len = (size_t)st.st_size;
	return buf;
}

static char *format(const struct acct_event *ev)
{
	struct json_buf b = {0};

	assert_int_equal(acct_event_format(&b, ev), 0);
	assert_int_equal(json_buf_putc(&b, 0), 0);
	return b.data;
}

/* Check got's event_id (last, ACCT_EVENT_ID_LEN hex digits, the message
 * id first) and cut it out, leaving the record as it was before event_id. */
static void cut_event_id(char *got, uint64_t msg_id)
{
	size_t klen = strlen(ACCT_EVENT_ID_KEY), n = strlen(got);
	char *key, want_id[17];

	assert_true(n > klen + ACCT_EVENT_ID_LEN + 3);
	key = got + n - 3 - ACCT_EVENT_ID_LEN - klen;
	assert_memory_equal(key, ACCT_EVENT_ID_KEY, klen);
	assert_string_equal(key + klen + ACCT_EVENT_ID_LEN, "\"}\n");
	for (size_t i = 0; i < ACCT_EVENT_ID_LEN; i++)
		assert_non_null(strchr("0123456789abcdef", key[klen + i]));
	snprintf(want_id, sizeof(want_id), "%016llx", (unsigned long long)msg_id);
	assert_memory_equal(key + klen, want_id, 16);
	memmove(key, key + klen + ACCT_EVENT_ID_LEN + 1, 3);
}

static void assert_format(const struct acct_event *ev, const char *want)
{
	char *got = format(ev);

	cut_event_id(got, ev->id);
	assert_string_equal(got, want);
	free(got);
}

/* Remove every event_id from s (after checking its shape). */
static void strip_event_ids(char *s)
{
	size_t klen = strlen(ACCT_EVENT_ID_KEY);
	char *k;

	while ((k = strstr(s, ACCT_EVENT_ID_KEY))) {
		assert_true(strlen(k) >= klen + ACCT_EVENT_ID_LEN + 1);
		assert_int_equal(k[klen + ACCT_EVENT_ID_LEN], '"');
		memmove(k, k + klen + ACCT_EVENT_ID_LEN + 1, strlen(k + klen + ACCT_EVENT_ID_LEN + 1) + 1);
	}
}

/* The event_id of ev's record (a static buffer). */
static const char *event_id_of(const struct acct_event *ev)
{
	static char id[ACCT_EVENT_ID_LEN + 1];
	char *got = format(ev), *k = strstr(got, ACCT_EVENT_ID_KEY);

	assert_non_null(k);
	memcpy(id, k + strlen(ACCT_EVENT_ID_KEY), ACCT_EVENT_ID_LEN);
	id[ACCT_EVENT_ID_LEN] = 0;
	free(got);
	return id;
}

/* The same event formatted twice has one id; changing any of time, type,
 * message, recipient or attempt changes it. */
static void test_event_id(void **state)
{
	struct acct_event ev = {
		.type = ACCT_DELIVERY,
		.time_ms = T0,
		.id = 0x4d2,
		.recipient = "a@example.com",
		.attempt = 1,
	}, o;
	char first[ACCT_EVENT_ID_LEN + 1];
	const char *ids[5];

	(void)state;
	strcpy(first, event_id_of(&ev));
	assert_string_equal(event_id_of(&ev), first);
	assert_memory_equal(first, "00000000000004d2", 16);
	o = ev, o.time_ms++, ids[0] = strdup(event_id_of(&o));
	o = ev, o.type = ACCT_BOUNCE, ids[1] = strdup(event_id_of(&o));
	o = ev, o.id = 0x4d3, ids[2] = strdup(event_id_of(&o));
	o = ev, o.recipient = "b@example.com", ids[3] = strdup(event_id_of(&o));
	o = ev, o.attempt = 2, ids[4] = strdup(event_id_of(&o));
	for (int i = 0; i < 5; i++) {
		assert_string_not_equal(ids[i], first);
		for (int j = 0; j < i; j++)
			assert_string_not_equal(ids[i], ids[j]);
	}
	for (int i = 0; i < 5; i++)
		free((void *)ids[i]);
}

static char *escape(const char *s, size_t n)
{
	struct json_buf b = {0};

	assert_int_equal(json_buf_str(&b, s, n), 0);
	assert_int_equal(json_buf_putc(&b, 0), 0);
	return b.data;
}

static void assert_escape(const char *in, size_t n, const char *want)
{
	char *got = escape(in, n);

	assert_string_equal(got, want);
	free(got);
}

/* A record line as this log writes it: one object, no raw control byte. */
static void assert_record_line(const char *line, size_t len)
{
	assert_true(len > 10);
	assert_memory_equal(line, "{\"time\":\"", 9);
	assert_memory_equal(line + len - 2, "}\n", 2);
	for (size_t i = 0; i + 1 < len; i++)
		assert_true((unsigned char)line[i] >= 0x20);
}

/* ---- json_str ------------------------------------------------------------------ */

static void test_escape_ascii(void **state)
{
	assert_escape("", 0, "\"\"");
	assert_escape("plain text", 10, "\"plain text\"");
	assert_escape("say \"hi\" \\o/", 12, "\"say \\\"hi\\\" \\\\o/\"");
	assert_escape("a\r\nb\tc\x01\x1f\x7f", 9, "\"a\\u000d\\u000ab\\u0009c\\u0001\\u001f\\u007f\"");
	assert_escape("nul\0x", 5, "\"nul\\u0000x\"");
}

static void test_escape_utf8_valid(void **state)
{
	/* 2-, 3- and 4-byte sequences and the extremes of each range pass. */
	const char *s = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xc2\x80 \xef\xbf\xbf \xf4\x8f\xbf\xbf";

	assert_escape(s, strlen(s), "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xc2\x80 \xef\xbf\xbf \xf4\x8f\xbf\xbf\"");
}

#define FFFD "\xef\xbf\xbd"

static void test_escape_utf8_invalid(void **state)
{
	assert_escape("a\x80z", 3, "\"a" FFFD "z\"");              /* stray continuation */
	assert_escape("\xc0\xaf", 2, "\"" FFFD FFFD "\"");         /* overlong '/' */
	assert_escape("\xc1\xbf", 2, "\"" FFFD FFFD "\"");
	assert_escape("\xe0\x80\x80", 3, "\"" FFFD FFFD FFFD "\""); /* overlong NUL */
	assert_escape("\xed\xa0\x80", 3, "\"" FFFD FFFD FFFD "\""); /* surrogate D800 */
	assert_escape("\xf4\x90\x80\x80", 4, "\"" FFFD FFFD FFFD FFFD "\""); /* > U+10FFFF */
	assert_escape("\xf5\xff\xfe", 3, "\"" FFFD FFFD FFFD "\"");
	/* A truncated sequence is one maximal subpart: one U+FFFD. */
	assert_escape("x\xe2\x82", 3, "\"x" FFFD "\"");
	assert_escape("\xf0\x9f\x98" "A", 4, "\"" FFFD "A\"");
	assert_escape("\xe2\x82\"", 3, "\"" FFFD "\\\"\"");
	assert_escape("\xc3", 1, "\"" FFFD "\"");
}

static void test_utf8_seq(void **state)
{
	size_t skip;

	assert_int_equal(json_utf8_seq((const unsigned char *)"\xe2\x82\xac", 3, &skip), 3);
	assert_int_equal(json_utf8_seq((const unsigned char *)"\xe2\x82\xac", 2, &skip), 0);
	assert_int_equal(skip, 2);
	assert_int_equal(json_utf8_seq((const unsigned char *)"\xf0\x9f\x98\x80", 4, &skip), 4);
	assert_int_equal(json_utf8_seq((const unsigned char *)"\xf0\x8f", 2, &skip), 0);
	assert_int_equal(skip, 1);
}

static void test_buf_printf_grows(void **state)
{
	struct json_buf b = {0};
	char big[1000];

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	assert_int_equal(json_buf_printf(&b, "[%s]", big), 0);
	assert_int_equal(b.len, 1001);
	assert_int_equal(b.data[0], '[');
	assert_int_equal(b.data[1000], ']');
	assert_int_equal(json_buf_printf(&b, "%d", 42), 0);
	assert_memory_equal(b.data + 1001, "42", 2);
	json_buf_free(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
}

/* ---- formatting ---------------------------------------------------------------- */

static void test_time_rfc3339(void **state)
{
	char t[ACCT_TIME_LEN + 1];

	assert_int_equal(acct_time_rfc3339(T0, t, sizeof(t)), 0);
	assert_string_equal(t, "2026-11-22T10:01:02.345Z");
	assert_int_equal(acct_time_rfc3339(1700000000000LL, t, sizeof(t)), 0);
	assert_string_equal(t, "2023-11-14T22:13:20.000Z");
	assert_int_equal(acct_time_rfc3339(1, t, sizeof(t)), 0);
	assert_string_equal(t, "1970-01-01T00:00:00.001Z");
	assert_int_equal(acct_time_rfc3339(-1, t, sizeof(t)), 0);
	assert_string_equal(t, "1969-12-31T23:59:59.999Z");
	assert_int_equal(acct_time_rfc3339(T0, t, ACCT_TIME_LEN), -EINVAL);
	assert_int_equal(acct_time_rfc3339(INT64_MAX, t, sizeof(t)), -EINVAL);
}

static void test_type_names(void **state)
{
	static const char *const want[] = {"reception", "delivery", "transient", "bounce",
					   "expiration", "feedback", "suppressed", "cancelled", "remote_status"};

	for (int i = 0; i < ACCT_TYPE_COUNT; i++)
		assert_string_equal(acct_type_name((enum acct_type)i), want[i]);
	assert_null(acct_type_name(ACCT_TYPE_COUNT));
	assert_null(acct_type_name((enum acct_type)-1));
}

static void test_format_reception(void **state)
{
	struct acct_event ev = {
		.type = ACCT_RECEPTION,
		.time_ms = T0,
		.id = 0x4d2,
		.sender = "alice@example.com",
		.recipient = "bob@example.net",
		.queue = "example.net",
		.source_ip = "192.0.2.7",
		.size = 1234,
		.has_size = true,
		.campaign = "spring-sale",
	};

	assert_format(&ev, "{\"time\":\"2026-11-22T10:01:02.345Z\",\"type\":\"reception\",\"id\":\"00000000000004d2\","
			   "\"sender\":\"alice@example.com\",\"recipient\":\"bob@example.net\",\"queue\":\"example.net\","
			   "\"source_ip\":\"192.0.2.7\",\"size\":1234,\"campaign\":\"spring-sale\"}\n");
}

static void test_format_delivery(void **state)
{
	struct acct_event ev = {
		.type = ACCT_DELIVERY,
		.time_ms = T0,
		.id = 0xfedcba9876543210ull,
		.sender = "alice@example.com",
		.recipient = "bob@example.net",
		.queue = "example.net",
		.vmta = "vmta1",
		.source_ip = "192.0.2.7",
		.mx_host = "mx1.example.net",
		.mx_ip = "198.51.100.25",
		.attempt = 1,
		.queued_time_ms = Q0,
		.size = 1234,
		.has_size = true,
		.response_code = 250,
		.response_enhanced = "2.0.0",
		.response_text = "Ok: queued as 4F2",
		.tls = "TLSv1.3 TLS_AES_256_GCM_SHA384",
	};

	assert_format(&ev, "{\"time\":\"2026-11-22T10:01:02.345Z\",\"type\":\"delivery\",\"id\":\"fedcba9876543210\","
			   "\"sender\":\"alice@example.com\",\"recipient\":\"bob@example.net\",\"queue\":\"example.net\","
			   "\"vmta\":\"vmta1\",\"source_ip\":\"192.0.2.7\",\"mx_host\":\"mx1.example.net\","
			   "\"mx_ip\":\"198.51.100.25\",\"attempt\":1,\"queued_time\":\"2026-11-22T09:58:00.000Z\","
			   "\"size\":1234,\"response\":{\"code\":250,\"enhanced\":\"2.0.0\",\"text\":\"Ok: queued as 4F2\"},"
			   "\"tls\":\"TLSv1.3 TLS_AES_256_GCM_SHA384\"}\n");
}

static void test_format_transient(void **state)
{
	/* A connection failure: text without a code or enhanced code. */
	struct acct_event ev = {
		.type = ACCT_TRANSIENT,
		.time_ms = T0,
		.id = 7,
		.sender = "",
		.recipient = "bob@example.net",
		.attempt = 3,
		.response_code = 0,
		.response_enhanced = "",
		.response_text = "connect to 198.51.100.25: Connection refused",
	};

	assert_format(&ev, "{\"time\":\"2026-11-22T10:01:02.345Z\",\"type\":\"transient\",\"id\":\"0000000000000007\","
			   "\"sender\":\"\",\"recipient\":\"bob@example.net\",\"attempt\":3,"
			   "\"response\":{\"text\":\"connect to 198.51.100.25: Connection refused\"}}\n");
}

static void test_format_bounce(void **state)
{
	struct acct_event ev = {
		.type = ACCT_BOUNCE,
		.time_ms = T0,
		.id = 0x10,
		.recipient = "nobody@example.net",
		.attempt = 2,
		.response_code = 550,
		.response_enhanced = "5.1.1",
		.response_text = "no such user",
		.bounce_category = "bad-mailbox",
		.dsn_id = 0x11,
	};

	assert_format(&ev, "{\"time\":\"2026-11-22T10:01:02.345Z\",\"type\":\"bounce\",\"id\":\"0000000000000010\","
			   "\"recipient\":\"nobody@example.net\",\"attempt\":2,"
			   "\"response\":{\"code\":550,\"enhanced\":\"5.1.1\",\"text\":\"no such user\"},"
			   "\"bounce_category\":\"bad-mailbox\",\"dsn_id\":\"0000000000000011\"}\n");
}

static void test_format_expiration(void **state)
{
	struct acct_event ev = {
		.type = ACCT_EXPIRATION,
		.time_ms = T0,
		.id = 0x10,
		.recipient = "slow@example.net",
		.queued_time_ms = Q0,
		.response_code = 451,
		.bounce_category = "message-expired",
	};

	assert_format(&ev, "{\"time\":\"2026-11-22T10:01:02.345Z\",\"type\":\"expiration\",\"id\":\"0000000000000010\","
			   "\"recipient\":\"slow@example.net\",\"queued_time\":\"2026-11-22T09:58:00.000Z\","
			   "\"response\":{\"code\":451},\"bounce_category\":\"message-expired\"}\n");
}

static void test_format_feedback(void **state)
{
	struct acct_event ev = {
		.type = ACCT_FEEDBACK,
		.time_ms = T0,
		.id = 0x20,
		.recipient = "complainer@example.org",
		.bounce_category = "complaint",
		.kind = "arf",
		.campaign = "c1",
	};

	assert_format(&ev, "{\"time\":\"2026-11-22T10:01:02.345Z\",\"type\":\"feedback\",\"id\":\"0000000000000020\","
			   "\"recipient\":\"complainer@example.org\",\"bounce_category\":\"complaint\",\"kind\":\"arf\","
			   "\"campaign\":\"c1\"}\n");
}

static void test_format_suppressed(void **state)
{
	/* Refused at injection: no message id. */
	struct acct_event ev = {
		.type = ACCT_SUPPRESSED,
		.time_ms = T0,
		.sender = "alice@example.com",
		.recipient = "gone@example.net",
	};

	assert_format(&ev, "{\"time\":\"2026-11-22T10:01:02.345Z\",\"type\":\"suppressed\","
			   "\"sender\":\"alice@example.com\",\"recipient\":\"gone@example.net\"}\n");
}

static void test_format_cancelled(void **state)
{
	/* Removed by an operator's delete: the filter last (before event_id). */
	struct acct_event ev = {
		.type = ACCT_CANCELLED,
		.time_ms = T0,
		.id = 1234,
		.sender = "alice@example.com",
		.recipient = "bob@example.net",
		.queue = "example.net",
		.attempt = 2,
		.campaign = "c1",
		.filter = "{\"campaign\":\"c1\",\"older_than\":\"2h\"}",
	};

	assert_format(&ev, "{\"time\":\"2026-11-22T10:01:02.345Z\",\"type\":\"cancelled\",\"id\":\"00000000000004d2\","
			   "\"sender\":\"alice@example.com\",\"recipient\":\"bob@example.net\",\"queue\":\"example.net\","
			   "\"attempt\":2,\"campaign\":\"c1\","
			   "\"filter\":\"{\\\"campaign\\\":\\\"c1\\\",\\\"older_than\\\":\\\"2h\\\"}\"}\n");
}

static void test_format_minimal_and_size_zero(void **state)
{
	struct acct_event ev = {.type = ACCT_RECEPTION, .time_ms = T0};

	assert_format(&ev, "{\"time\":\"2026-11-22T10:01:02.345Z\",\"type\":\"reception\"}\n");
	ev.has_size = true; /* size 0 is a real size when has_size is set */
	assert_format(&ev, "{\"time\":\"2026-11-22T10:01:02.345Z\",\"type\":\"reception\",\"size\":0}\n");
}

static void test_format_escapes_fields(void **state)
{
	struct acct_event ev = {
		.type = ACCT_BOUNCE,
		.time_ms = T0,
		.recipient = "\"odd\\\"@example.net",
		.response_code = 550,
		.response_text = "line1\r\nline2\x80",
	};

	assert_format(&ev, "{\"time\":\"2026-11-22T10:01:02.345Z\",\"type\":\"bounce\","
			   "\"recipient\":\"\\\"odd\\\\\\\"@example.net\","
			   "\"response\":{\"code\":550,\"text\":\"line1\\u000d\\u000aline2" FFFD "\"}}\n");
}

static void test_format_now_and_errors(void **state)
{
	struct json_buf b = {0};
	struct acct_event ev = {.type = ACCT_TYPE_COUNT, .time_ms = T0};
	time_t before = time(NULL);
	char want[16];

	assert_int_equal(acct_event_format(&b, &ev), -EINVAL);
	assert_int_equal(b.len, 0);
	ev.type = ACCT_DELIVERY;
	ev.time_ms = 0; /* now */
	assert_int_equal(acct_event_format(&b, &ev), 0);
	struct tm tm;
	gmtime_r(&before, &tm);
	snprintf(want, sizeof(want), "%04d-", tm.tm_year + 1900);
	assert_memory_equal(b.data + 9, want, 5);
	json_buf_free(&b);
}

/* ---- the log file --------------------------------------------------------------- */

static struct acct_event numbered(uint64_t id)
{
	return (struct acct_event){
		.type = ACCT_DELIVERY,
		.time_ms = T0,
		.id = id,
		.sender = "alice@example.com",
		.recipient = "bob@example.net",
		.response_code = 250,
		.response_text = "ok",
	};
}

static void test_open_write_flush(void **state)
{
	char *d = tmpdir_new(), sub[512], *got;
	struct acct_log *log = NULL;
	struct acct_event ev = numbered(1);

	/* mkdir -p of a missing nested directory */
	snprintf(sub, sizeof(sub), "%s/a/b/log", d);
	assert_int_equal(acct_log_open(&log, sub, 0, 0), 0);
	assert_int_equal(acct_log_write(log, &ev), 0);
	/* buffered: nothing in the file before the flush */
	got = slurp(sub, "acct.jsonl", NULL);
	assert_string_equal(got, "");
	free(got);
	assert_int_equal(acct_log_flush(log), 0);
	ev.id = 2;
	assert_int_equal(acct_log_write(log, &ev), 0);
	acct_log_close(log); /* flushes */
	got = slurp(sub, "acct.jsonl", NULL);
	strip_event_ids(got);
	assert_string_equal(got,
			    "{\"time\":\"2026-11-22T10:01:02.345Z\",\"type\":\"delivery\",\"id\":\"0000000000000001\","
			    "\"sender\":\"alice@example.com\",\"recipient\":\"bob@example.net\",\"response\":{\"code\":250,\"text\":\"ok\"}}\n"
			    "{\"time\":\"2026-11-22T10:01:02.345Z\",\"type\":\"delivery\",\"id\":\"0000000000000002\","
			    "\"sender\":\"alice@example.com\",\"recipient\":\"bob@example.net\",\"response\":{\"code\":250,\"text\":\"ok\"}}\n");
	free(got);

	/* Reopening appends; a file left ending mid-line gets its line ended first. */
	snprintf(sub, sizeof(sub), "%s/a/b/log/acct.jsonl", d);
	int fd = open(sub, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "{\"cut", 5), 5);
	close(fd);
	snprintf(sub, sizeof(sub), "%s/a/b/log", d);
	assert_int_equal(acct_log_open(&log, sub, 0, 0), 0);
	ev.id = 3;
	assert_int_equal(acct_log_write(log, &ev), 0);
	assert_int_equal(acct_log_flush(log), 0);
	acct_log_close(log);
	got = slurp(sub, "acct.jsonl", NULL);
	assert_non_null(strstr(got, "}\n{\"cut\n{\"time\":\"2026-11-22T10:01:02.345Z\",\"type\":\"delivery\",\"id\":\"0000000000000003\""));
	free(got);
	tmpdir_free(d);
}

/* Read every acct*.jsonl in dir; check each is whole lines, none larger than
 * max_file (unless a lone record); return the ids in file order (archives
 * by name, then acct.jsonl). */
static size_t collect_ids(const char *dir, uint64_t *ids, size_t cap, uint64_t max_file, size_t *n_files)
{
	struct dirent **names;
	int n = scandir(dir, &names, NULL, alphasort);
	size_t k = 0;

	assert_true(n >= 0);
	*n_files = 0;
	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < n; i++) {
			const char *nm = names[i]->d_name;
			bool archive = strncmp(nm, "acct-", 5) == 0;
			size_t len, lines = 0;
			char *buf, *p;

			if ((pass == 0 && !archive) || (pass == 1 && strcmp(nm, "acct.jsonl") != 0))
				continue;
			if (archive) {
				/* acct-YYYYMMDDTHHMMSS.mmmZ.jsonl */
				assert_int_equal(strlen(nm), strlen("acct-20261122T100102.345Z.jsonl"));
				assert_int_equal(nm[13], 'T');
				assert_string_equal(nm + 24, "Z.jsonl");
			}
			buf = slurp(dir, nm, &len);
			(*n_files)++;
			for (p = buf; p < buf + len;) {
				char *nl = memchr(p, '\n', (size_t)(buf + len - p));
				const char *idp;

				assert_non_null(nl); /* no partial line at the end of a file */
				assert_record_line(p, (size_t)(nl - p) + 1);
				idp = strstr(p, "\"id\":\"");
				assert_true(idp && idp < nl);
				assert_true(k < cap);
				ids[k++] = strtoull(idp + 6, NULL, 16);
				lines++;
				p = nl + 1;
			}
			assert_true(len <= max_file || lines == 1);
			free(buf);
		}
	}
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return k;
}

static void test_rotate_by_size(void **state)
{
	char *d = tmpdir_new();
	struct acct_log *log = NULL;
	uint64_t ids[200];
	size_t n, n_files;
	struct acct_event ev;

	/* A record is ~170 bytes: two fit in 400. Flush only now and then so
	 * rotation must happen inside the buffered data too. */
	assert_int_equal(acct_log_open(&log, d, 400, 0), 0);
	for (uint64_t i = 1; i <= 50; i++) {
		ev = numbered(i);
		assert_int_equal(acct_log_write(log, &ev), 0);
		if (i % 7 == 0)
			assert_int_equal(acct_log_flush(log), 0);
	}
	/* A record bigger than the limit gets a file of its own. */
	char big[1000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	ev = numbered(51);
	ev.response_text = big;
	assert_int_equal(acct_log_write(log, &ev), 0);
	ev = numbered(52);
	assert_int_equal(acct_log_write(log, &ev), 0);
	acct_log_close(log);

	n = collect_ids(d, ids, 200, 400, &n_files);
	assert_int_equal(n, 52);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(ids[i], i + 1); /* nothing lost, nothing twice, in order */
	assert_true(n_files >= 26);
	tmpdir_free(d);
}

static void test_rotate_by_age(void **state)
{
	char *d = tmpdir_new();
	struct acct_log *log = NULL;
	struct timespec pause = {0, 80 * 1000000L};
	uint64_t ids[10];
	size_t n, n_files;
	struct acct_event ev = numbered(1);

	assert_int_equal(acct_log_open(&log, d, 0, 50), 0);
	assert_int_equal(acct_log_write(log, &ev), 0);
	assert_int_equal(acct_log_flush(log), 0);
	nanosleep(&pause, NULL);
	ev.id = 2;
	assert_int_equal(acct_log_write(log, &ev), 0); /* file is 80 ms old: rotate */
	ev.id = 3;
	assert_int_equal(acct_log_write(log, &ev), 0); /* new file is young */
	acct_log_close(log);
	n = collect_ids(d, ids, 10, UINT64_MAX, &n_files);
	assert_int_equal(n_files, 2);
	assert_int_equal(n, 3);
	assert_int_equal(ids[0], 1);
	assert_int_equal(ids[1], 2);
	assert_int_equal(ids[2], 3);
	tmpdir_free(d);
}

static void test_empty_file_not_rotated(void **state)
{
	char *d = tmpdir_new();
	struct acct_log *log = NULL;
	struct timespec pause = {0, 30 * 1000000L};
	size_t n_files;
	uint64_t ids[4];

	assert_int_equal(acct_log_open(&log, d, 0, 10), 0);
	nanosleep(&pause, NULL);
	assert_int_equal(acct_log_flush(log), 0);
	struct acct_event ev = numbered(9);
	assert_int_equal(acct_log_write(log, &ev), 0);
	acct_log_close(log);
	assert_int_equal(collect_ids(d, ids, 4, UINT64_MAX, &n_files), 1);
	assert_int_equal(n_files, 1);
	tmpdir_free(d);
}

static void test_open_errors(void **state)
{
	char *d = tmpdir_new(), path[512];
	struct acct_log *log = (struct acct_log *)0x1;
	int fd;

	/* A path through a regular file. */
	snprintf(path, sizeof(path), "%s/file", d);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);
	snprintf(path, sizeof(path), "%s/file/log", d);
	assert_int_equal(acct_log_open(&log, path, 0, 0), -ENOTDIR);
	snprintf(path, sizeof(path), "%s/file", d);
	assert_int_equal(acct_log_open(&log, path, 0, 0), -ENOTDIR);
	assert_ptr_equal(log, (struct acct_log *)0x1); /* untouched on failure */
	assert_int_equal(acct_log_open(&log, "", 0, 0), -EINVAL);

	/* Permissions: root ignores them, so only an unprivileged run checks. */
	if (geteuid() != 0) {
		snprintf(path, sizeof(path), "%s/ro", d);
		assert_int_equal(mkdir(path, 0500), 0);
		assert_int_equal(acct_log_open(&log, path, 0, 0), -EACCES);
		snprintf(path, sizeof(path), "%s/ro/sub", d);
		assert_int_equal(acct_log_open(&log, path, 0, 0), -EACCES);
		snprintf(path, sizeof(path), "%s/ro", d);
		chmod(path, 0700);
	}
	tmpdir_free(d);
}

/* write(2) failing mid-record (file size limit): the file keeps whole
 * lines plus at most one started line, which the retry completes. */
static void test_write_failure_and_retry(void **state)
{
	char *d = tmpdir_new();
	struct acct_log *log = NULL;
	struct rlimit old, lim;
	uint64_t ids[100];
	size_t n, n_files;
	int ret = 0;

	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	assert_int_equal(acct_log_open(&log, d, 0, 0), 0);
	lim = old;
	lim.rlim_cur = 1000; /* not a multiple of a record: a line gets cut */
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	for (uint64_t i = 1; i <= 20; i++) {
		struct acct_event ev = numbered(i);

		assert_int_equal(acct_log_write(log, &ev), 0);
	}
	ret = acct_log_flush(log);
	assert_int_equal(ret, -EFBIG);
	assert_int_equal(acct_log_flush(log), -EFBIG); /* still failing, still kept */
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	assert_int_equal(acct_log_flush(log), 0);
	assert_int_equal(acct_log_dropped(log), 0);
	acct_log_close(log);
	n = collect_ids(d, ids, 100, UINT64_MAX, &n_files);
	assert_int_equal(n, 20);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(ids[i], i + 1);
	signal(SIGXFSZ, SIG_DFL);
	tmpdir_free(d);
}

/* A file that stays unwritable: past 4 MiB the buffer is dropped, but the
 * line already begun in the file is still completed. */
static void test_write_failure_drops(void **state)
{
	char *d = tmpdir_new();
	struct acct_log *log = NULL;
	struct rlimit old, lim;
	uint64_t ids[8], i, failed = 0;
	size_t n, n_files;

	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	assert_int_equal(acct_log_open(&log, d, 0, 0), 0);
	lim = old;
	lim.rlim_cur = 250; /* the first record fits, the second is cut */
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	for (i = 1; acct_log_dropped(log) == 0 && i < 100000; i++) {
		struct acct_event ev = numbered(i);

		if (acct_log_write(log, &ev) < 0)
			failed++;
	}
	assert_true(acct_log_dropped(log) > 15000);
	assert_true(failed > 0);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	struct acct_event ev = numbered(999999);
	assert_int_equal(acct_log_write(log, &ev), 0);
	acct_log_close(log);
	n = collect_ids(d, ids, 8, UINT64_MAX, &n_files);
	/* record 1, the completed record 2, then the one written after recovery */
	assert_int_equal(n, 3);
	assert_int_equal(ids[0], 1);
	assert_int_equal(ids[1], 2);
	assert_int_equal(ids[2], 999999);
	signal(SIGXFSZ, SIG_DFL);
	tmpdir_free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_event_id),
		cmocka_unit_test(test_escape_ascii),
		cmocka_unit_test(test_escape_utf8_valid),
		cmocka_unit_test(test_escape_utf8_invalid),
		cmocka_unit_test(test_utf8_seq),
		cmocka_unit_test(test_buf_printf_grows),
		cmocka_unit_test(test_time_rfc3339),
		cmocka_unit_test(test_type_names),
		cmocka_unit_test(test_format_reception),
		cmocka_unit_test(test_format_delivery),
		cmocka_unit_test(test_format_transient),
		cmocka_unit_test(test_format_bounce),
		cmocka_unit_test(test_format_expiration),
		cmocka_unit_test(test_format_feedback),
		cmocka_unit_test(test_format_suppressed),
		cmocka_unit_test(test_format_cancelled),
		cmocka_unit_test(test_format_minimal_and_size_zero),
		cmocka_unit_test(test_format_escapes_fields),
		cmocka_unit_test(test_format_now_and_errors),
		cmocka_unit_test(test_open_write_flush),
		cmocka_unit_test(test_rotate_by_size),
		cmocka_unit_test(test_rotate_by_age),
		cmocka_unit_test(test_empty_file_not_rotated),
		cmocka_unit_test(test_open_errors),
		cmocka_unit_test(test_write_failure_and_retry),
		cmocka_unit_test(test_write_failure_drops),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
