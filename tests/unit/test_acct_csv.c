/*
 * test_acct_csv.c - PowerMTA CSV accounting files (core/acct_csv.c): the
 * header and columns from records/record-fields, RFC 4180 quoting, which
 * events become which record types, max-size rotation and delete-after,
 * pipes (one that exits at once must cost nothing but the records), and
 * bad field lists refused at open.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <signal.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/acct_csv.h"
#include "tmp_dir.h"

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf = calloc(1, 1 << 20);
	size_t n;

	assert_non_null(f);
	n = fread(buf, 1, (1 << 20) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static struct acct_event delivery(const char *rcpt)
{
	return (struct acct_event){
		.type = ACCT_DELIVERY, .time_ms = 1700000000123LL, .sender = "a@s.test", .recipient = rcpt,
		.queue = "r.test", .vmta = "v1", .source_ip = "192.0.2.1", .mx_host = "mx.r.test",
		.mx_ip = "192.0.2.25", .queued_time_ms = 1699999999000LL, .size = 1234, .has_size = true,
		.response_code = 250, .response_enhanced = "2.0.0", .response_text = "ok, \"queued\"", .campaign = "job1",
	};
}

static void test_records_and_quoting(void **state)
{
	char dir[64], path[128], err[256];
	struct config_acct_file cf = {.records = CONFIG_ACCT_D | CONFIG_ACCT_B | CONFIG_ACCT_F, .line = 1};
	struct acct_csv *c;
	struct acct_event ev = delivery("r1@r.test");
	char *text;
	(void)state;

	assert_int_equal(tmp_dir_make(dir, sizeof(dir), "acctcsv"), 0);
	snprintf(path, sizeof(path), "%s/a.csv", dir);
	cf.path = path;
	cf.record_fields[1] = "rcpt,bounceCat,!orcpt";
	assert_int_equal(acct_csv_open(&c, &cf, 1, err, sizeof(err)), 0);
	acct_csv_write(c, &ev);
	ev = (struct acct_event){.type = ACCT_BOUNCE, .time_ms = 1700000001000LL, .sender = "a@s.test",
				 .recipient = "r2@r.test", .response_code = 550, .response_enhanced = "5.1.1",
				 .response_text = "no such\r\nuser", .bounce_category = "bad-mailbox", .queue = "r.test"};
	acct_csv_write(c, &ev);
	ev.kind = "dsn"; /* an asynchronous DSN: rb, not in this file's records */
	acct_csv_write(c, &ev);
	ev = (struct acct_event){.type = ACCT_SUPPRESSED, .recipient = "x@r.test"}; /* no PowerMTA record */
	acct_csv_write(c, &ev);
	ev = (struct acct_event){.type = ACCT_FEEDBACK, .time_ms = 1700000002000LL, .recipient = "r3@r.test",
				 .kind = "arf", .campaign = "job1", .envid = "env-7"};
	acct_csv_write(c, &ev);
	assert_int_equal(acct_csv_flush(c), 0);
	acct_csv_close(c);
	text = slurp(path);
	assert_string_equal(text,
		"type,timeLogged,timeQueued,orig,rcpt,orcpt,dsnAction,dsnStatus,dsnDiag,dsnMta,bounceCat,srcType,srcMta,"
		"dlvType,dlvSourceIp,dlvDestinationIp,dlvEsmtpAvailable,dlvSize,vmta,jobId,envId,queue,vmtaPool\r\n"
		"d,1700000000,1699999999,a@s.test,r1@r.test,,relayed,2.0.0,\"smtp;250 2.0.0 ok, \"\"queued\"\"\","
		"mx.r.test (192.0.2.25),success,,,smtp,192.0.2.1,192.0.2.25,,1234,v1,job1,,r.test,\r\n"
		"b,,,,r2@r.test,,,,,,bad-mailbox,,,,,,,,,,,,\r\n"
		"f,1700000002,,,r3@r.test,,,,,,,,,,,,,,,job1,env-7,,\r\n");
	free(text);
	/* reopened: appends, no second header */
	assert_int_equal(acct_csv_open(&c, &cf, 1, err, sizeof(err)), 0);
	ev = delivery("r4@r.test");
	ev.orcpt = "rfc822;Old,One@r.test"; /* RCPT ... ORCPT=: the orcpt column, quoted */
	acct_csv_write(c, &ev);
	acct_csv_close(c);
	text = slurp(path);
	assert_int_equal(strstr(strstr(text, "type,") + 1, "type,") == NULL, 1);
	assert_non_null(strstr(text, "r4@r.test,\"rfc822;Old,One@r.test\",relayed,"));
	free(text);
	tmp_dir_remove(dir);
}

/* An operator's delete (ACCT_CANCELLED) is a "b" record: failed, 5.0.0, the
 * filter in dsnDiag; a file without b records leaves it out. */
static void test_cancelled(void **state)
{
	char dir[64], path[128], path_d[128], err[256];
	struct config_acct_file cf[2] = {{.records = CONFIG_ACCT_B, .line = 1}, {.records = CONFIG_ACCT_D, .line = 2}};
	struct acct_csv *c;
	struct acct_event ev = {.type = ACCT_CANCELLED, .time_ms = 1700000001000LL, .sender = "a@s.test",
				.recipient = "r9@r.test", .queue = "r.test", .queued_time_ms = 1699999999000LL,
				.campaign = "job1", .filter = "{\"campaign\":\"job1\",\"older_than\":\"2h\"}"};
	char *text;
	(void)state;

	assert_int_equal(tmp_dir_make(dir, sizeof(dir), "acctcsv"), 0);
	snprintf(path, sizeof(path), "%s/b.csv", dir);
	snprintf(path_d, sizeof(path_d), "%s/d.csv", dir);
	cf[0].path = path;
	cf[1].path = path_d;
	assert_int_equal(acct_csv_open(&c, cf, 2, err, sizeof(err)), 0);
	acct_csv_write(c, &ev);
	assert_int_equal(acct_csv_flush(c), 0);
	acct_csv_close(c);
	text = slurp(path);
	assert_non_null(strstr(text, "\r\nb,1700000001,1699999999,a@s.test,r9@r.test,,failed,5.0.0,"
				     "\"deleted by the operator: {\"\"campaign\"\":\"\"job1\"\",\"\"older_than\"\":\"\"2h\"\"}\","
				     ",other,"));
	assert_non_null(strstr(text, ",job1,,r.test,\r\n"));
	free(text);
	text = slurp(path_d);
	assert_null(strstr(text, "r9@r.test"));
	free(text);
	tmp_dir_remove(dir);
}

/* A transient without an SMTP reply (no session) is the queue's: one tq
 * record per queue and diagnostic (per second), besides each recipient's t;
 * a reply's 451 is the recipient's own: no tq. */
static void test_tq_records(void **state)
{
	char dir[64], path[128], err[256];
	struct config_acct_file cf = {.records = CONFIG_ACCT_T | CONFIG_ACCT_TQ, .line = 1};
	struct acct_csv *c;
	struct acct_event ev = {.type = ACCT_TRANSIENT, .time_ms = 1700000000000LL, .sender = "a@s.test",
				.queue = "q.test", .vmta = "v1", .mx_host = "mx.q.test",
				.response_text = "connection refused", .queued_time_ms = 1699999999000LL};
	char *text;
	(void)state;

	assert_int_equal(tmp_dir_make(dir, sizeof(dir), "acctcsv"), 0);
	snprintf(path, sizeof(path), "%s/t.csv", dir);
	cf.path = path;
	cf.record_fields[2] = "rcpt,dsnDiag,queue";
	cf.record_fields[3] = "rcpt,dsnDiag,queue,vmta";
	assert_int_equal(acct_csv_open(&c, &cf, 1, err, sizeof(err)), 0);
	ev.recipient = "u1@q.test";
	acct_csv_write(c, &ev);
	ev.recipient = "u2@q.test";
	acct_csv_write(c, &ev);
	ev.recipient = "u3@q.test";
	ev.response_code = 451;
	ev.response_text = "busy";
	acct_csv_write(c, &ev);
	assert_int_equal(acct_csv_flush(c), 0);
	acct_csv_close(c);
	text = slurp(path);
	assert_string_equal(text,
		"type,rcpt,dsnDiag,queue,vmta\r\n"
		"t,u1@q.test,connection refused,q.test,\r\n"
		"tq,,connection refused,q.test,v1\r\n"
		"t,u2@q.test,connection refused,q.test,\r\n"
		"t,u3@q.test,smtp;451 busy,q.test,\r\n");
	free(text);
	tmp_dir_remove(dir);
}

/* r: the client that sent the message is the reception's srcMta, never a
 * delivery source IP. */
static void test_r_records(void **state)
{
	char dir[64], path[128], err[256];
	struct config_acct_file cf = {.records = CONFIG_ACCT_R, .line = 1};
	struct acct_csv *c;
	struct acct_event ev = {.type = ACCT_RECEPTION, .time_ms = 1700000000000LL, .sender = "a@s.test",
				.recipient = "u1@q.test", .queue = "q.test", .source_ip = "192.0.2.9"};
	char *text;
	(void)state;

	assert_int_equal(tmp_dir_make(dir, sizeof(dir), "acctcsv"), 0);
	snprintf(path, sizeof(path), "%s/r.csv", dir);
	cf.path = path;
	cf.record_fields[4] = "rcpt,srcMta,dlvSourceIp";
	assert_int_equal(acct_csv_open(&c, &cf, 1, err, sizeof(err)), 0);
	acct_csv_write(c, &ev);
	assert_int_equal(acct_csv_flush(c), 0);
	acct_csv_close(c);
	text = slurp(path);
	assert_string_equal(text, "type,rcpt,srcMta,dlvSourceIp\r\nr,u1@q.test,192.0.2.9,\r\n");
	free(text);
	tmp_dir_remove(dir);
}

/* srcType, vmtaPool, dlvEsmtpAvailable and header_X from what the event
 * carries; a header the message lacked, and an event without headers,
 * leave their column empty. */
static void test_source_pool_esmtp_headers(void **state)
{
	char dir[64], path[128], err[256];
	struct config_acct_file cf = {.records = CONFIG_ACCT_D | CONFIG_ACCT_R, .line = 1};
	struct acct_csv *c;
	struct acct_event ev = delivery("r1@r.test");
	char *text;
	(void)state;

	assert_int_equal(tmp_dir_make(dir, sizeof(dir), "acctcsv"), 0);
	snprintf(path, sizeof(path), "%s/h.csv", dir);
	cf.path = path;
	cf.record_fields[0] = "rcpt,srcType,dlvEsmtpAvailable,vmtaPool,header_Subject,header_x-campaign-id,header_Missing";
	cf.record_fields[4] = "rcpt,srcType,dlvEsmtpAvailable,header_Subject";
	assert_int_equal(acct_csv_open(&c, &cf, 1, err, sizeof(err)), 0);
	ev.src_type = "api";
	ev.pool = "p1";
	ev.esmtp = "PIPELINING,SIZE";
	ev.headers = "Subject: Hello, \"world\"\nX-Campaign-Id: c42\n";
	acct_csv_write(c, &ev);
	ev = (struct acct_event){.type = ACCT_RECEPTION, .time_ms = 1700000000000LL, .recipient = "u1@q.test",
				 .src_type = "smtp", .esmtp = "SIZE", .headers = "Subject: in\n"};
	acct_csv_write(c, &ev);
	ev.headers = NULL;
	ev.recipient = "u2@q.test";
	acct_csv_write(c, &ev);
	assert_int_equal(acct_csv_flush(c), 0);
	acct_csv_close(c);
	text = slurp(path);
	assert_string_equal(text,
		"type,rcpt,srcType,dlvEsmtpAvailable,vmtaPool,header_Subject,header_x-campaign-id,header_Missing\r\n"
		"d,r1@r.test,api,\"PIPELINING,SIZE\",p1,\"Hello, \"\"world\"\"\",c42,\r\n"
		"r,u1@q.test,smtp,,,in,,\r\n"
		"r,u2@q.test,smtp,,,,,\r\n");
	free(text);
	tmp_dir_remove(dir);
}

/* A DSN that is not a failure is PowerMTA's rs (remote status) with the
 * report's action; a failed one stays rb; neither is the other's. */
static void test_rs_records(void **state)
{
	char dir[64], path[128], err[256];
	struct config_acct_file cf = {.records = CONFIG_ACCT_RS, .line = 1};
	struct acct_csv *c;
	struct acct_event ev = {.type = ACCT_REMOTE_STATUS, .time_ms = 1700000000000LL, .sender = "a@s.test",
				.recipient = "u1@q.test", .kind = "dsn", .response_enhanced = "4.4.7",
				.response_text = "still trying", .dsn_action = "delayed", .campaign = "j"};
	char *text;
	(void)state;

	assert_int_equal(tmp_dir_make(dir, sizeof(dir), "acctcsv"), 0);
	snprintf(path, sizeof(path), "%s/rs.csv", dir);
	cf.path = path;
	cf.record_fields[7] = "rcpt,dsnAction,dsnStatus,dsnDiag,jobId";
	assert_int_equal(acct_csv_open(&c, &cf, 1, err, sizeof(err)), 0);
	acct_csv_write(c, &ev);
	ev = (struct acct_event){.type = ACCT_BOUNCE, .kind = "dsn", .recipient = "u2@q.test",
				 .response_enhanced = "5.1.1", .bounce_category = "bad-mailbox"};
	acct_csv_write(c, &ev); /* rb: not in this file */
	assert_int_equal(acct_csv_flush(c), 0);
	acct_csv_close(c);
	text = slurp(path);
	assert_string_equal(text, "type,rcpt,dsnAction,dsnStatus,dsnDiag,jobId\r\nrs,u1@q.test,delayed,4.4.7,still trying,j\r\n");
	free(text);
	tmp_dir_remove(dir);
}

static int count_files(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	while ((e = readdir(d)))
		n += !strncmp(e->d_name, prefix, strlen(prefix));
	closedir(d);
	return n;
}

static void test_max_size_and_delete_after(void **state)
{
	char dir[64], path[128], old[160], err[256];
	struct config_acct_file cf = {.records = CONFIG_ACCT_D, .max_size = 600, .delete_after_ms = 3600 * 1000ULL};
	struct acct_csv *c;
	struct timeval tv[2] = {{.tv_sec = 1000000}, {.tv_sec = 1000000}};
	FILE *f;
	(void)state;

	assert_int_equal(tmp_dir_make(dir, sizeof(dir), "acctcsv"), 0);
	snprintf(path, sizeof(path), "%s/m.csv", dir);
	/* an old archive of this file, and an old file that is not one */
	snprintf(old, sizeof(old), "%s/m-2001-01-01-000000.csv", dir);
	assert_non_null(f = fopen(old, "w"));
	fclose(f);
	assert_int_equal(utimes(old, tv), 0);
	snprintf(old, sizeof(old), "%s/m-2001-01-01-0000.7.csv", dir);
	assert_non_null(f = fopen(old, "w"));
	fclose(f);
	assert_int_equal(utimes(old, tv), 0);
	/* another acct-file's archive beside it, and a live file whose name starts like ours */
	snprintf(old, sizeof(old), "%s/m-bounce-2001-01-01-0000.csv", dir);
	assert_non_null(f = fopen(old, "w"));
	fclose(f);
	assert_int_equal(utimes(old, tv), 0);
	snprintf(old, sizeof(old), "%s/m-2001-01-01-quiet-file.csv", dir);
	assert_non_null(f = fopen(old, "w"));
	fclose(f);
	assert_int_equal(utimes(old, tv), 0);
	snprintf(old, sizeof(old), "%s/other-2001-01-01-000000.csv", dir);
	assert_non_null(f = fopen(old, "w"));
	fclose(f);
	assert_int_equal(utimes(old, tv), 0);
	cf.path = path;
	assert_int_equal(acct_csv_open(&c, &cf, 1, err, sizeof(err)), 0);
	for (int i = 0; i < 8; i++) {
		char rcpt[32];
		struct acct_event ev;

		snprintf(rcpt, sizeof(rcpt), "r%d@r.test", i);
		ev = delivery(rcpt);
		acct_csv_write(c, &ev);
		acct_csv_flush(c);
	}
	acct_csv_close(c);
	/* header ~200 bytes, records ~150: a few per file; every file within 600 bytes */
	assert_true(count_files(dir, "m-20") >= 2);
	assert_int_equal(access(old, F_OK), 0);                         /* not ours: kept */
	snprintf(old, sizeof(old), "%s/m-bounce-2001-01-01-0000.csv", dir);
	assert_int_equal(access(old, F_OK), 0);
	snprintf(old, sizeof(old), "%s/m-2001-01-01-quiet-file.csv", dir);
	assert_int_equal(access(old, F_OK), 0);
	snprintf(old, sizeof(old), "%s/m-2001-01-01-000000.csv", dir);
	assert_int_equal(access(old, F_OK), 0);                         /* not an archive's name */
	snprintf(old, sizeof(old), "%s/m-2001-01-01-0000.7.csv", dir);
	assert_int_equal(access(old, F_OK), -1);                        /* expired */
	{
		DIR *d = opendir(dir);
		struct dirent *e;
		int records = 0;

		while ((e = readdir(d))) {
			char p[600];
			struct stat st;
			char *text;

			if (strncmp(e->d_name, "m", 1) || e->d_name[1] == '\0')
				continue;
			snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
			assert_int_equal(stat(p, &st), 0);
			assert_true(st.st_size <= 600);
			if (st.st_size == 0)
				continue; /* the files made above that are not archives */
			text = slurp(p);
			assert_int_equal(strncmp(text, "type,", 5), 0);
			for (char *s = text; (s = strstr(s, "\r\nd,")); s++)
				records++;
			free(text);
		}
		closedir(d);
		assert_int_equal(records, 8);
	}
	tmp_dir_remove(dir);
}

static void test_pipes(void **state)
{
	char dir[64], cmd[200], out[128], err[256];
	struct config_acct_file cf[2] = {
		{.records = CONFIG_ACCT_D, .pipe = true},
		{.records = CONFIG_ACCT_D, .pipe = true, .path = "exit 0"},
	};
	struct acct_csv *c;
	char *text;
	(void)state;

	assert_int_equal(tmp_dir_make(dir, sizeof(dir), "acctcsv"), 0);
	snprintf(out, sizeof(out), "%s/p.csv", dir);
	snprintf(cmd, sizeof(cmd), "cat > %s", out);
	cf[0].path = cmd;
	cf[0].record_fields[0] = "rcpt";
	assert_int_equal(acct_csv_open(&c, cf, 2, err, sizeof(err)), 0);
	for (int i = 0; i < 50; i++) {
		struct acct_event ev = delivery("p@r.test");

		acct_csv_write(c, &ev);
		acct_csv_flush(c); /* the second program is gone: EPIPE, never a signal */
	}
	acct_csv_close(c);
	text = slurp(out);
	assert_int_equal(strncmp(text, "type,rcpt\r\nd,p@r.test\r\n", 23), 0);
	assert_int_equal(strlen(text), 11 + 50 * 12);
	free(text);
	tmp_dir_remove(dir);
}

static void test_bad_fields(void **state)
{
	struct config_acct_file cf = {.path = "/nonexistent/x.csv", .records = CONFIG_ACCT_D, .line = 7};
	struct acct_csv *c = NULL;
	char err[256];
	(void)state;

	cf.record_fields[0] = "rcpt,bogus";
	assert_int_equal(acct_csv_open(&c, &cf, 1, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "acct-file /nonexistent/x.csv (line 7): unknown field \"bogus\" in record-fields d");
	cf.record_fields[0] = NULL;
	assert_int_equal(acct_csv_open(&c, &cf, 1, err, sizeof(err)), -ENOENT);
	assert_string_equal(err, "acct-file /nonexistent/x.csv (line 7): No such file or directory");
	assert_null(c);
}

/* Columns in the order record-fields gives them (PowerMTA writes them
 * so; scripts read them by position): the guide's §11.2 example, and a
 * list that starts before `*`; timeImprinted is accepted (written empty). */
static void test_field_order(void **state)
{
	char dir[64], path[128], err[256];
	struct config_acct_file cf = {.records = CONFIG_ACCT_D | CONFIG_ACCT_B, .line = 1};
	struct acct_csv *c;
	struct acct_event ev = delivery("r1@r.test");
	char *text;
	(void)state;

	assert_int_equal(tmp_dir_make(dir, sizeof(dir), "acctcsv"), 0);
	snprintf(path, sizeof(path), "%s/o.csv", dir);
	cf.path = path;
	cf.record_fields[0] = "timeLogged,orig,rcpt,dlvSourceIp";
	cf.record_fields[1] = "timeLogged,orig,RCPT,bounceCat";
	assert_int_equal(acct_csv_open(&c, &cf, 1, err, sizeof(err)), 0);
	acct_csv_write(c, &ev);
	ev = (struct acct_event){.type = ACCT_BOUNCE, .time_ms = 1700000001000LL, .sender = "a@s.test",
				 .recipient = "r2@r.test", .bounce_category = "policy-related", .source_ip = "192.0.2.1"};
	acct_csv_write(c, &ev);
	assert_int_equal(acct_csv_flush(c), 0);
	acct_csv_close(c);
	text = slurp(path);
	assert_string_equal(text, "type,timeLogged,orig,rcpt,dlvSourceIp,bounceCat\r\n"
				  "d,1700000000,a@s.test,r1@r.test,192.0.2.1,\r\n"
				  "b,1700000001,a@s.test,r2@r.test,,policy-related\r\n");
	free(text);
	unlink(path);

	cf.records = CONFIG_ACCT_B;
	cf.record_fields[1] = "jobId,dsnDiag,*,!timeImprinted,!dlvEsmtpAvailable,!rcpt,timeImprinted,header_X-Id,"
			      "!vmtaPool,orig";
	assert_int_equal(acct_csv_open(&c, &cf, 1, err, sizeof(err)), 0);
	acct_csv_close(c);
	text = slurp(path);
	assert_string_equal(text, "type,jobId,dsnDiag,timeLogged,timeQueued,orig,orcpt,dsnAction,dsnStatus,dsnMta,"
				  "bounceCat,srcType,srcMta,dlvType,dlvSourceIp,dlvDestinationIp,dlvSize,vmta,envId,"
				  "queue,timeImprinted,header_X-Id\r\n");
	free(text);
	tmp_dir_remove(dir);
}

/* A hostile receiver's reply: quotes, commas, CR LF and bytes that are
 * not UTF-8 come out as one RFC 4180 value of valid UTF-8. */
static void test_hostile_values(void **state)
{
	char dir[64], path[128], err[256];
	struct config_acct_file cf = {.records = CONFIG_ACCT_B, .line = 1};
	struct acct_csv *c;
	struct acct_event ev = {.type = ACCT_BOUNCE, .time_ms = 1700000001000LL, .sender = "\"a,b\"@s.test",
				.recipient = "r@r.test", .response_code = 550,
				.response_text = "no \"such\", user\r\nbye\xff\xc3(\xe2\x82 \xc3\xa9"};
	char *text;
	(void)state;

	assert_int_equal(tmp_dir_make(dir, sizeof(dir), "acctcsv"), 0);
	snprintf(path, sizeof(path), "%s/h.csv", dir);
	cf.path = path;
	cf.record_fields[1] = "orig,dsnDiag";
	assert_int_equal(acct_csv_open(&c, &cf, 1, err, sizeof(err)), 0);
	acct_csv_write(c, &ev);
	assert_int_equal(acct_csv_flush(c), 0);
	acct_csv_close(c);
	text = slurp(path);
	assert_string_equal(text, "type,orig,dsnDiag\r\n"
				  "b,\"\"\"a,b\"\"@s.test\",\"smtp;550 no \"\"such\"\", user\r\nbye\xef\xbf\xbd\xef\xbf\xbd("
				  "\xef\xbf\xbd \xc3\xa9\"\r\n");
	free(text);
	tmp_dir_remove(dir);
}

/* move-to: a directory that is not there is refused at open; one that
 * goes away later keeps the records in the file (nothing lost, said once)
 * and the move works again once it is back. */
static void test_move_to_missing(void **state)
{
	char dir[64], path[128], to[128], err[256];
	struct config_acct_file cf = {.records = CONFIG_ACCT_D, .max_size = 400, .line = 3};
	struct acct_csv *c;
	int records = 0;
	(void)state;

	assert_int_equal(tmp_dir_make(dir, sizeof(dir), "acctcsv"), 0);
	snprintf(path, sizeof(path), "%s/m.csv", dir);
	snprintf(to, sizeof(to), "%s/old", dir);
	cf.path = path;
	cf.move_to = to;
	cf.record_fields[0] = "rcpt";
	assert_int_equal(acct_csv_open(&c, &cf, 1, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "(line 3): move-to "));
	assert_non_null(strstr(err, "No such file or directory"));
	assert_int_equal(mkdir(to, 0700), 0);
	assert_int_equal(acct_csv_open(&c, &cf, 1, err, sizeof(err)), 0);
	assert_int_equal(rmdir(to), 0);
	for (int i = 0; i < 60; i++) { /* 60 x 20 bytes: past max-size, the move fails */
		struct acct_event ev = delivery("0123456789@r.test");

		acct_csv_write(c, &ev);
		assert_int_equal(acct_csv_flush(c), 0);
	}
	assert_int_equal(mkdir(to, 0700), 0);
	usleep(1100 * 1000); /* the next try */
	{
		struct acct_event ev = delivery("0123456789@r.test");

		acct_csv_write(c, &ev);
		assert_int_equal(acct_csv_flush(c), 0);
	}
	acct_csv_close(c);
	assert_int_equal(count_files(to, "m-20"), 1);
	{
		DIR *d = opendir(to);
		struct dirent *e;
		char p[600], *text;

		while ((e = readdir(d)))
			if (!strncmp(e->d_name, "m-20", 4)) {
				snprintf(p, sizeof(p), "%s/%s", to, e->d_name);
				text = slurp(p);
				assert_int_equal(strncmp(text, "type,rcpt\r\n", 11), 0);
				for (char *s = text; (s = strstr(s, "\r\nd,")); s++)
					records++;
				free(text);
			}
		closedir(d);
		{
			text = slurp(path);

			assert_int_equal(strncmp(text, "type,rcpt\r\n", 11), 0);
			for (char *s = text; (s = strstr(s, "\r\nd,")); s++)
				records++;
			free(text);
		}
	}
	assert_int_equal(records, 61);
	tmp_dir_remove(dir);
}

/* A program that stops reading: records wait up to the bound, then are
 * dropped and counted; writing never blocks; close ends the program. A
 * program given by a path that is not there is refused at open. */
static void test_pipe_slow_and_missing(void **state)
{
	struct config_acct_file cf = {.records = CONFIG_ACCT_D, .pipe = true, .path = "exec sleep 60", .line = 4};
	struct acct_csv *c;
	char err[256];
	uint64_t before = acct_csv_dropped_total();
	(void)state;

	assert_int_equal(acct_csv_open(&c, &cf, 1, err, sizeof(err)), 0);
	for (int i = 0; i < 40000; i++) { /* ~8 MB of records */
		struct acct_event ev = delivery("slow-reader@r.test");

		acct_csv_write(c, &ev);
		if (i % 1000 == 0)
			acct_csv_flush(c);
	}
	assert_int_equal(acct_csv_flush(c), 0); /* a pipe never fails the log */
	assert_true(acct_csv_dropped(c) > 10000 && acct_csv_dropped(c) < 30000);
	assert_true(acct_csv_dropped_total() - before == acct_csv_dropped(c));
	acct_csv_close(c);

	cf.path = "/nonexistent/bin/acct-reader --flag";
	assert_int_equal(acct_csv_open(&c, &cf, 1, err, sizeof(err)), -ENOENT);
	assert_string_equal(err, "acct-file |/nonexistent/bin/acct-reader --flag (line 4): the program cannot be run: "
				 "No such file or directory");

	/* a command the shell does not find (no path to check at open): started
	 * again each second, said once, never a failed flush */
	cf.path = "no-such-acct-reader-3f2a 2>/dev/null";
	assert_int_equal(acct_csv_open(&c, &cf, 1, err, sizeof(err)), 0);
	for (int i = 0; i < 3; i++) {
		struct acct_event ev = delivery("nobody@r.test");

		acct_csv_write(c, &ev);
		assert_int_equal(acct_csv_flush(c), 0);
		usleep(600 * 1000);
		assert_int_equal(acct_csv_flush(c), 0);
	}
	acct_csv_close(c);
}

/* A program that exits after a few lines: salvod lives on (EPIPE, no
 * signal), the program is started again and every later record reaches
 * it whole, after a header. */
static void test_pipe_restart(void **state)
{
	char dir[64], cmd[200], out[128], err[256];
	struct config_acct_file cf = {.records = CONFIG_ACCT_D, .pipe = true};
	struct acct_csv *c;
	char *text;
	int lines = 0, headers = 0;
	(void)state;

	assert_int_equal(tmp_dir_make(dir, sizeof(dir), "acctcsv"), 0);
	snprintf(out, sizeof(out), "%s/p.csv", dir);
	snprintf(cmd, sizeof(cmd), "head -n 2 >> %s", out);
	cf.path = cmd;
	cf.record_fields[0] = "rcpt";
	assert_int_equal(acct_csv_open(&c, &cf, 1, err, sizeof(err)), 0);
	for (int i = 0; i < 6; i++) {
		struct acct_event ev = delivery("p@r.test");

		acct_csv_write(c, &ev);
		acct_csv_flush(c);
		usleep(600 * 1000); /* head reads, exits; the next flush starts it again */
		acct_csv_flush(c);
	}
	acct_csv_close(c);
	text = slurp(out);
	for (char *s = text; *s; s = strchr(s, '\n') + 1) {
		if (!strncmp(s, "type,rcpt\r\n", 11))
			headers++;
		else if (!strncmp(s, "d,p@r.test\r\n", 12))
			lines++;
		else
			fail_msg("a broken line in %s: %.40s", out, s);
	}
	assert_true(headers >= 2);
	assert_true(lines >= 2);
	free(text);
	tmp_dir_remove(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_records_and_quoting),
		cmocka_unit_test(test_tq_records),
		cmocka_unit_test(test_r_records),
		cmocka_unit_test(test_source_pool_esmtp_headers),
		cmocka_unit_test(test_rs_records),
		cmocka_unit_test(test_cancelled),
		cmocka_unit_test(test_max_size_and_delete_after),
		cmocka_unit_test(test_pipes),
		cmocka_unit_test(test_bad_fields),
		cmocka_unit_test(test_field_order),
		cmocka_unit_test(test_hostile_values),
		cmocka_unit_test(test_move_to_missing),
		cmocka_unit_test(test_pipe_slow_and_missing),
		cmocka_unit_test(test_pipe_restart),
	};
	signal(SIGPIPE, SIG_IGN); /* as in salvod */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
