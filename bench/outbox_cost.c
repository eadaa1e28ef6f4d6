/*
 * outbox_cost.c - what the accounting outbox (queue/outbox.c) costs per
 * record, in CPU time of the calling thread (the spool writer's work):
 * outbox_put() inside the transaction, outbox_flush() after the commit
 * (unpack from memory, format, write(2)), outbox_trim() in the next
 * transaction; and, for comparison, acct_log_write() + flush alone (what
 * the writer did per record before the outbox). Commits (fsync) are not
 * counted: they are the same transactions as before; the bytes they write
 * (LMDB's pages: the entry put, the pages the trim rewrites) are.
 *
 * Each batch also stores one 4 KiB message and its recipient per record
 * (what a reception commits), and the same batches run once with the
 * outbox and once with the records formatted and written after the commit
 * (the writer before the outbox): the differences are the outbox's cost.
 *
 * Usage: outbox_cost [RECORDS_PER_BATCH [BATCHES]] (defaults 40 2000), in
 * fresh directories under /tmp, removed at the end.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/acct_log.h"
#include "queue/outbox.h"
#include "queue/spool.h"
#include "../tests/unit/tmp_dir.h"

/* Bytes this process has written with write(2) and friends (LMDB's
 * commits, the log): /proc/self/io's wchar. */
static unsigned long long wchar(void)
{
	unsigned long long v = 0;
	char line[128];
	FILE *f = fopen("/proc/self/io", "r");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "wchar: %llu", &v) == 1)
			break;
	if (f)
		fclose(f);
	return v;
}

static double cpu_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

struct cost {
	double put, flush, trim; /* CPU s: in the txn, after the commit, the trim */
	unsigned long long commit_bytes;
};

static const struct acct_event base_ev = {
	.type = ACCT_DELIVERY, .time_ms = 1795341662345LL, .id = 1, .sender = "owner@senders.example",
	.recipient = "user12345@d42.test", .queue = "d42.test", .vmta = "mta1", .source_ip = "127.0.0.1",
	.mx_host = "mx1.sink.test", .mx_ip = "127.0.0.2", .attempt = 1, .queued_time_ms = 1795341662000LL,
	.size = 4300, .has_size = true, .response_code = 250, .response_enhanced = "2.0.0",
	.response_text = "Ok: queued as 12345", .tls = "TLSv1.3 TLS_AES_256_GCM_SHA384",
};

/* One message and its recipient, as a reception stores them. */
static int put_msg(struct spool_wtxn *t, const char *body, size_t len)
{
	struct spool_msg m = {.arrival_ms = 1795341662000LL, .n_rcpt = 1, .sender = "owner@senders.example",
			      .campaign = "", .source_ip = "127.0.0.1", .body = body, .body_len = len};
	struct spool_rcpt r = {.next_attempt_ms = 1795341662000LL, .queued_ms = 1795341662000LL,
			       .addr = "user12345@d42.test", .last_response = ""};
	int ret;

	if ((ret = spool_alloc_id(t, &m.id)) || (ret = spool_put_msg(t, &m)))
		return ret;
	r.msg_id = m.id;
	return spool_put_rcpt(t, &r);
}

static int run(int per, int batches, bool outbox, struct cost *c)
{
	char dir[64], logdir[96], body[4096];
	struct acct_event ev = base_ev;
	struct spool *s;
	struct acct_log *log;

	memset(c, 0, sizeof(*c));
	memset(body, 'x', sizeof(body));
	if (tmp_dir_make(dir, sizeof(dir), "outbox_cost") < 0)
		return -1;
	snprintf(logdir, sizeof(logdir), "%s/log", dir);
	if (spool_open(&s, dir, 4ull << 30) || acct_log_open(&log, logdir, 0, 0)) {
		fprintf(stderr, "outbox_cost: cannot open a spool in %s\n", dir);
		return -1;
	}
	for (int b = 0; b < batches; b++) {
		struct spool_wtxn *t;
		unsigned long long w;
		uint64_t upto = 0;
		double a;

		if (spool_wtxn_begin(s, &t))
			return -1;
		a = cpu_s();
		if (outbox && outbox_trim(t, &upto))
			return -1;
		c->trim += cpu_s() - a;
		for (int i = 0; i < per; i++)
			if (put_msg(t, body, sizeof(body)))
				return -1;
		a = cpu_s();
		for (int i = 0; outbox && i < per; i++) {
			ev.id++;
			if (outbox_put(t, &ev))
				return -1;
		}
		c->put += cpu_s() - a;
		w = wchar();
		if (spool_wtxn_commit(t))
			return -1;
		c->commit_bytes += wchar() - w;
		if (upto)
			outbox_trimmed(s, upto);
		a = cpu_s();
		if (outbox && outbox_flush(s, log, NULL))
			return -1;
		for (int i = 0; !outbox && i < per; i++) {
			ev.id++;
			acct_log_write(log, &ev);
		}
		if (!outbox)
			acct_log_flush(log);
		c->flush += cpu_s() - a;
	}
	acct_log_close(log);
	spool_close(s);
	tmp_dir_remove(dir);
	return 0;
}

int main(int argc, char **argv)
{
	int per = argc > 1 ? atoi(argv[1]) : 40, batches = argc > 2 ? atoi(argv[2]) : 2000;
	struct cost on, off;
	double n = (double)per * batches;

	if (per < 1 || batches < 1)
		return 2;
	if (run(per, batches, false, &off) || run(per, batches, true, &on))
		return 1;
	printf("%d batches of %d records (each with a 4 KiB message): per record, without the outbox: log %.2f us, "
	       "commits %.0f bytes; with it: put %.2f us, flush (unpack, format, write) %.2f us, trim "
	       "%.2f us, commits %.0f bytes: +%.2f us and +%.0f bytes\n",
	       batches, per, off.flush / n * 1e6, (double)off.commit_bytes / n, on.put / n * 1e6, on.flush / n * 1e6,
	       on.trim / n * 1e6, (double)on.commit_bytes / n,
	       (on.put + on.flush + on.trim - off.flush) / n * 1e6,
	       ((double)on.commit_bytes - (double)off.commit_bytes) / n);
	return 0;
}
