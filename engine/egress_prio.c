/*
 * egress_prio.c - queue-priority at the outbound descriptors: when sockets
 * run short, the queues of a higher priority band get the ones that free
 * up before the lower ones open more.
 *
 * Descriptors are process-wide, so this is too: a queue whose session
 * could not get a socket (EMFILE/ENFILE) marks its band starved until a
 * little after its next try (egress_prio_starved). While a higher band is
 * starved, a queue about to open a session near the descriptor limit
 * yields instead (egress_prio_yield): its unit waits PRIO_YIELD_MS, with no
 * failure counted, and the descriptor stays free for the starved queue's
 * retry. Far from the limit nobody yields; a starved band clears itself
 * when its time passes, so a paused or emptied queue holds nothing.
 * The kick order within a worker's turn is the scheduler's (sched_kick).
 */
#include "engine/egress.h"

#include "core/config.h"
#include "engine/scheduler.h"

#define PRIO_YIELD_MS 100
#define PRIO_STARVED_SLACK_MS 500 /* the tick is 100 ms: the retry may come late */

/* per band: the loop clock (ms) until which a queue of it waits for a socket */
static int64_t starved_until[SCHED_PRIO_BANDS];

static unsigned band_of(const struct config_domain *dom)
{
	return SCHED_PRIO_BAND(dom ? dom->queue_priority : CONFIG_QUEUE_PRIORITY_DEFAULT);
}

void egress_prio_starved(const struct config_domain *dom, int64_t retry_ms)
{
	int64_t *slot = &starved_until[band_of(dom)], want = retry_ms + PRIO_STARVED_SLACK_MS;
	int64_t cur = __atomic_load_n(slot, __ATOMIC_RELAXED);

	while (cur < want && !__atomic_compare_exchange_n(slot, &cur, want, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

bool egress_prio_yield(const struct config_domain *dom, int64_t now_ms)
{
	for (unsigned b = band_of(dom) + 1; b < SCHED_PRIO_BANDS; b++)
		if (__atomic_load_n(&starved_until[b], __ATOMIC_RELAXED) > now_ms)
			return true;
	return false;
}

void egress_prio_wait(struct egress_queue *eq, size_t vmta, int64_t now_ms)
{
	struct egress_unit *u = &eq->units[vmta];

	if (u->open_after_ms < now_ms + PRIO_YIELD_MS)
		u->open_after_ms = now_ms + PRIO_YIELD_MS;
	egress_wake_at(eq, u->open_after_ms);
	__atomic_add_fetch(&eq->w->eng->counters.fd_yields, 1, __ATOMIC_RELAXED);
}
