/*
 * micro_sched.cc - the scheduler (engine/scheduler.c) at 1,000,000 queued
 * recipients over 10,000 domains, due times spread over four hours (the
 * workload of bench/sched_bench.c):
 *   insert: sched_rcpt_new() + sched_add() into the due heap, 0 -> 1M;
 *   pop:    time passes in 100 ms ticks; each tick sched_run_due() moves the
 *           due recipients to their queues' ready FIFOs and the kicked
 *           queues are drained with sched_ready_pop() (as a worker's tick
 *           does), 1M -> 0;
 *   hold:   steady state at 1M: per iteration one recipient is added and
 *           time advances to the next due time, whose recipients are moved
 *           and popped (about one per iteration).
 * items_per_second counts recipients.
 */
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <string>
#include <vector>

#include <liburing.h> /* C++-aware; before the extern "C" block that reaches it via net/loop.h */

extern "C" {
#include "core/config.h"
#include "engine/scheduler.h"
}

#include "micro.h"

namespace {

constexpr int64_t T0 = 1800000000000LL;
constexpr int64_t SPAN = 4LL * 3600 * 1000;
constexpr size_t N_DOMAINS = 10000;

struct sched_env {
	struct config cfg;
	struct sched s;
	std::vector<std::string> domains;
	micro::rng rng;
	uint64_t next_id = 1;
	bool ok = false;

	sched_env() : domains(N_DOMAINS)
	{
		for (size_t i = 0; i < N_DOMAINS; i++)
			domains[i] = "d" + std::to_string(i) + ".example";
		ok = config_defaults(&cfg) == 0 && sched_init(&s, &cfg) == 0;
	}
	~sched_env()
	{
		if (ok)
			sched_fini(&s, nullptr);
		config_free(&cfg);
	}
	/* One new recipient due in (now, now + SPAN]; false on ENOMEM. */
	bool add(int64_t now)
	{
		uint64_t x = rng.next();
		struct sched_rcpt *r = sched_rcpt_new(next_id, 0, domains[x % N_DOMAINS].c_str(),
						      now + 1 + (int64_t)(x % SPAN), now, 1, 0);

		next_id++;
		if (!r || sched_add(&s, r, now) < 0) {
			free(r);
			return false;
		}
		return true;
	}
	/* The worker's tick at now: due -> ready, then drain the kicked queues. */
	size_t tick(int64_t now)
	{
		struct sched_queue *q;
		size_t popped = 0;

		sched_run_due(&s, now);
		while ((q = sched_next_kicked(&s))) {
			struct sched_rcpt *r;

			while ((r = sched_ready_pop(q))) {
				micro::keep(r->msg_id);
				free(r);
				popped++;
			}
		}
		return popped;
	}
};

} // namespace

static void BM_SchedInsert(benchmark::State &state)
{
	const size_t n = (size_t)state.range(0);

	for (auto _ : state) {
		state.PauseTiming();
		auto *e = new sched_env;
		state.ResumeTiming();
		bool ok = e->ok;

		for (size_t i = 0; i < n && ok; i++)
			ok = e->add(T0);
		micro::keep(e->s.heap_len);
		ok = ok && e->s.heap_len == n;
		state.PauseTiming();
		delete e;
		state.ResumeTiming();
		if (!ok) {
			state.SkipWithError("insert failed");
			break;
		}
	}
	state.SetItemsProcessed(state.iterations() * (int64_t)n);
}
BENCHMARK(BM_SchedInsert)->Arg(1000000)->Unit(benchmark::kMillisecond);

static void BM_SchedPop(benchmark::State &state)
{
	const size_t n = (size_t)state.range(0);

	for (auto _ : state) {
		state.PauseTiming();
		auto *e = new sched_env;
		bool ok = e->ok;

		for (size_t i = 0; i < n && ok; i++)
			ok = e->add(T0);
		state.ResumeTiming();
		size_t popped = 0;

		for (int64_t now = T0; ok && now <= T0 + SPAN + 100; now += 100)
			popped += e->tick(now);
		micro::keep(popped);
		ok = ok && popped == n;
		state.PauseTiming();
		delete e;
		state.ResumeTiming();
		if (!ok) {
			state.SkipWithError("pop failed");
			break;
		}
	}
	state.SetItemsProcessed(state.iterations() * (int64_t)n);
}
BENCHMARK(BM_SchedPop)->Arg(1000000)->Unit(benchmark::kMillisecond);

static void BM_SchedHold(benchmark::State &state)
{
	const size_t n = (size_t)state.range(0);
	sched_env e;
	int64_t now = T0;
	bool ok = e.ok;
	size_t popped = 0;

	for (size_t i = 0; i < n && ok; i++)
		ok = e.add(now);
	if (!ok) {
		state.SkipWithError("fill failed");
		return;
	}
	for (auto _ : state) {
		if (!e.add(now)) {
			state.SkipWithError("insert failed");
			break;
		}
		now += sched_next_due_in(&e.s, now);
		popped += e.tick(now);
	}
	micro::keep(popped);
	state.SetItemsProcessed(state.iterations());
	state.counters["queued"] = (double)e.s.heap_len;
}
BENCHMARK(BM_SchedHold)->Arg(1000000);
