/*
 * outbox_cost.c - what the accounting outbox (queue/outbox.c) costs per
 * record, in CPU time of the calling thread (the spool writer's work):
 * outbox_put() inside the transaction, outbox_flush() after the commit
 * (read back, unpack, format, write(2)), outbox_trim() in the next
 * transaction; and, for comparison, acct_log_write() + flush alone (what
 * the writer did per record before the outbox). Commits (fsync) are not
 * counted: they are the same transactions as before.
 *
 * Usage: outbox_cost [RECORDS_PER_BATCH [BATCHES]] (defaults 40 2000), in
 * a fresh directory under /tmp, removed at the end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/acct_log.h"
#include "queue/outbox.h"
#include "queue/spool.h"
#include "../tests/unit/tmp_dir.h"

static double cpu_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	int per = argc > 1 ? atoi(argv[1]) : 40, batches = argc > 2 ? atoi(argv[2]) : 2000;
	double t_put = 0, t_flush = 0, t_trim = 0, t_plain = 0, n = (double)per * batches;
	char dir[64], logdir[96];
	struct spool *s;
	struct acct_log *log;
	struct acct_event ev = {
		.type = ACCT_DELIVERY, .time_ms = 1795341662345LL, .id = 1, .sender = "owner@senders.example",
		.recipient = "user12345@d42.test", .queue = "d42.test", .vmta = "mta1", .source_ip = "127.0.0.1",
		.mx_host = "mx1.sink.test", .mx_ip = "127.0.0.2", .attempt = 1, .queued_time_ms = 1795341662000LL,
		.size = 4300, .has_size = true, .response_code = 250, .response_enhanced = "2.0.0",
		.response_text = "Ok: queued as 12345", .tls = "TLSv1.3 TLS_AES_256_GCM_SHA384",
	};

	if (per < 1 || batches < 1 || tmp_dir_make(dir, sizeof(dir), "outbox_cost") < 0)
		return 2;
	snprintf(logdir, sizeof(logdir), "%s/log", dir);
	if (spool_open(&s, dir, 1ull << 30) || acct_log_open(&log, logdir, 0, 0)) {
		fprintf(stderr, "outbox_cost: cannot open a spool in %s\n", dir);
		return 1;
	}
	for (int b = 0; b < batches; b++) {
		struct spool_wtxn *t;
		uint64_t upto;
		double a, c;

		if (spool_wtxn_begin(s, &t))
			return 1;
		a = cpu_s();
		if (outbox_trim(t, &upto))
			return 1;
		c = cpu_s();
		t_trim += c - a;
		for (int i = 0; i < per; i++) {
			ev.id++;
			if (outbox_put(t, &ev))
				return 1;
		}
		t_put += cpu_s() - c;
		if (spool_wtxn_commit(t))
			return 1;
		if (upto)
			outbox_trimmed(s, upto);
		a = cpu_s();
		if (outbox_flush(s, log, NULL))
			return 1;
		t_flush += cpu_s() - a;
	}
	for (int b = 0; b < batches; b++) {
		double a = cpu_s();

		for (int i = 0; i < per; i++) {
			ev.id++;
			acct_log_write(log, &ev);
		}
		acct_log_flush(log);
		t_plain += cpu_s() - a;
	}
	printf("%d batches of %d records: per record put %.2f us, flush (read back, unpack, format, write) %.2f us, "
	       "trim %.2f us; outbox in all %.2f us against %.2f us for format+write alone\n",
	       batches, per, t_put / n * 1e6, t_flush / n * 1e6, t_trim / n * 1e6,
	       (t_put + t_flush + t_trim) / n * 1e6, t_plain / n * 1e6);
	acct_log_close(log);
	spool_close(s);
	tmp_dir_remove(dir);
	return 0;
}
