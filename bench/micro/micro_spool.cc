/*
 * micro_spool.cc - group commit into the LMDB spool (queue/spool.c):
 * how the messages per write transaction trade commit latency for
 * throughput. Each iteration is what the spool writer thread does for one
 * batch of intake requests (engine/intake.c intake_apply()): begin, then per
 * message a fresh id, the 4 KiB message and its one recipient, then one
 * durable (fsync'd) commit. The spool lives in a mkdtemp() directory under
 * /tmp, removed afterwards; it is not emptied between iterations (it grows
 * to iterations x batch messages, tens of MiB at most).
 *
 * Time is wall-clock per commit (UseRealTime: the fsync is not CPU time);
 * items_per_second is messages per second; per_msg is wall time per message.
 */
#include <benchmark/benchmark.h>

#include <cstdio>
#include <string>
#include <vector>

extern "C" {
#include "queue/spool.h"
}

#include "micro.h"

#define ARRIVAL_MS 1795341662345LL /* 2026-11-22T10:01:02.345Z */

static void BM_SpoolCommit(benchmark::State &state)
{
	const size_t batch = (size_t)state.range(0);
	const std::string body = micro::text_message(4096, "example.com");
	const std::string dir = micro::make_temp_dir();
	std::vector<std::string> addrs(batch);
	struct spool *s = nullptr;
	int rc = spool_open(&s, dir.c_str(), 0);

	if (rc) {
		state.SkipWithError(spool_strerror(rc));
		micro::remove_tree(dir);
		return;
	}
	for (size_t i = 0; i < batch; i++) /* the session's recipients (not per-commit work) */
		addrs[i] = "rcpt" + std::to_string(i) + "@example.net";
	for (auto _ : state) {
		struct spool_wtxn *t = nullptr;

		rc = spool_wtxn_begin(s, &t);
		for (size_t i = 0; i < batch && !rc; i++) {
			struct spool_msg m = {};

			rc = spool_alloc_id(t, &m.id);
			if (rc)
				break;
			m.arrival_ms = ARRIVAL_MS;
			m.n_rcpt = 1;
			m.sender = "bounces@example.com";
			m.campaign = "";
			m.source_ip = "127.0.0.1";
			m.body = body.data();
			m.body_len = body.size();
			rc = spool_put_msg(t, &m);
			if (rc)
				break;
			struct spool_rcpt r = {};
			r.msg_id = m.id;
			r.next_attempt_ms = ARRIVAL_MS;
			r.queued_ms = ARRIVAL_MS;
			r.addr = addrs[i].c_str();
			r.last_response = "";
			r.pool = "";
			rc = spool_put_rcpt(t, &r);
		}
		if (t)
			rc = rc ? (spool_wtxn_abort(t), rc) : spool_wtxn_commit(t);
		micro::keep(rc);
		if (rc) {
			state.SkipWithError(spool_strerror(rc));
			break;
		}
	}
	uint64_t n_msgs = 0, n_rcpts = 0;

	if (spool_count(s, &n_msgs, &n_rcpts) == 0 && !rc && n_msgs != (uint64_t)state.iterations() * batch)
		state.SkipWithError("message count does not match the commits");
	spool_close(s);
	micro::remove_tree(dir);
	state.SetItemsProcessed(state.iterations() * (int64_t)batch);
	state.SetBytesProcessed(state.iterations() * (int64_t)(batch * body.size()));
	state.counters["per_msg"] = benchmark::Counter((double)state.iterations() * (double)batch,
						       benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_SpoolCommit)->ArgName("msgs_per_commit")->Arg(1)->Arg(10)->Arg(100)->Arg(1000)
	->UseRealTime()->Unit(benchmark::kMillisecond);
