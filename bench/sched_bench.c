/*
 * sched_bench.c - the scheduler alone (engine/scheduler.c): 1,000,000 queued
 * recipients across 10,000 domains, due over four hours.
 *
 * Reports the anonymous memory the scheduler's working set costs per
 * recipient (RssAnon before and after, so allocator overhead counts), the
 * CPU time per insertion, per scheduling decision (a recipient moved from
 * the due heap to its queue's ready list as time passes) and per ready-list
 * pop, and what an idle tick costs when nothing is due.
 *
 *   build/bench/sched_bench [RECIPIENTS] [DOMAINS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/config.h"
#include "engine/scheduler.h"

static long rss_anon_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "r");

	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, "RssAnon:", 8) == 0)
			kb = strtol(line + 8, NULL, 10);
	if (f)
		fclose(f);
	return kb;
}

static double cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000;
	size_t nd = argc > 2 ? strtoul(argv[2], NULL, 10) : 10000;
	const int64_t t0 = 1800000000000LL, span = 4LL * 3600 * 1000;
	struct config cfg;
	struct sched s;
	char dom[64];
	long kb0, kb1;
	double c0, c1, c2, c3, c4;
	size_t moved = 0, popped = 0, ticks = 0;
	uint64_t x = 88172645463325252ull;

	if (config_defaults(&cfg) < 0 || sched_init(&s, &cfg) < 0)
		return 1;
	kb0 = rss_anon_kb();
	c0 = cpu_s();
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		snprintf(dom, sizeof(dom), "d%zu.example", (size_t)(x % nd));
		struct sched_rcpt *r = sched_rcpt_new(i / 3 + 1, (uint32_t)(i % 3), dom, t0 + 1 + (int64_t)(x % span), t0, 1, 0);

		if (!r || sched_add(&s, r, t0) < 0)
			return 1;
	}
	c1 = cpu_s();
	kb1 = rss_anon_kb();
	/* idle: the tick's cost when nothing is due */
	for (int i = 0; i < 1000000; i++)
		ticks += sched_next_due_in(&s, t0) > 0;
	c2 = cpu_s();
	/* time passes in 100 ms ticks: every due recipient moves to its queue */
	for (int64_t now = t0; now <= t0 + span + 100; now += 100)
		moved += sched_run_due(&s, now);
	c3 = cpu_s();
	/* and connections take them */
	for (size_t b = 0; b < s.n_buckets; b++)
		for (struct sched_queue *q = s.buckets[b]; q; q = q->hnext) {
			struct sched_rcpt *r;

			while ((r = sched_ready_pop(q))) {
				free(r);
				popped++;
			}
		}
	c4 = cpu_s();
	printf("scheduler: %zu recipients over %zu domains (%zu queues)\n", n, nd, s.n_queues);
	printf("  memory: %.1f MiB anonymous, %.0f bytes per recipient (struct sched_rcpt %zu B + domain + heap slot + allocator)\n",
	       (double)(kb1 - kb0) / 1024, (double)(kb1 - kb0) * 1024 / (double)n, sizeof(struct sched_rcpt));
	printf("  insert: %.0f ns per recipient\n", (c1 - c0) * 1e9 / (double)n);
	printf("  idle tick (nothing due): %.1f ns\n", (c2 - c1) * 1e9 / 1e6);
	printf("  scheduling decision (heap -> ready list, 100 ms ticks over 4 h): %.0f ns per recipient (%zu moved)\n",
	       (c3 - c2) * 1e9 / (double)(moved ? moved : 1), moved);
	printf("  ready pop: %.0f ns per recipient (%zu)\n", (c4 - c3) * 1e9 / (double)(popped ? popped : 1), popped);
	sched_fini(&s, NULL);
	config_free(&cfg);
	return moved == n && popped == n && ticks == 1000000 ? 0 : 1;
}
