/*
 * egress.h - internal to the egress files: a shard's outbound state per
 * destination queue.
 *
 *   egress.c         connections and transactions: open, hand out work,
 *                    outcomes, reuse, idle close
 *   egress_route.c   MX targets (DNS or `route`), mx-rollup detection and
 *                    moving a member domain's recipients to the rollup queue
 *   egress_policy.c  the throttles: per (queue, virtual MTA) units with
 *                    connection caps and rate limits, backoff mode, reply
 *                    patterns, timers, operator actions
 *
 * Ownership: struct egress_queue hangs off sched_queue.egress and is freed
 * with the queue; it owns its units and its connections (struct
 * egress_conn, freed in conn_closed()); a transaction's recipients are owned
 * by the transaction until its outcomes are recorded. Everything here runs
 * on the owning worker's thread.
 */
#ifndef SALVO_EGRESS_H
#define SALVO_EGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "engine/throttle.h"
#include "net/dns.h"

#define EGRESS_ROUTE_TTL_MS 60000

enum egress_mode {
	EGRESS_NORMAL,
	EGRESS_BACKOFF,
};

/* One (queue, virtual MTA) pair: its own connections and limits. */
struct egress_unit {
	unsigned n_conns;
	struct throttle msg_rate;
	struct throttle connect_rate;
	int64_t disabled_until_ms;  /* loop clock; 0 = enabled */
	uint64_t delivered;         /* messages, for rates shown to operators */
};

struct egress_conn;

struct egress_queue {
	struct sched_queue *q;
	struct worker *w;
	/* routing (egress_route.c) */
	bool have_route;           /* targets[] is usable */
	bool resolving;            /* a lookup is in flight */
	bool is_rollup;            /* the queue of an mx-rollup (members move in) */
	uint64_t route_expires;
	struct dns_target targets[DNS_MAX_TARGETS];
	size_t n_targets;
	size_t good_target;
	char *redirect;            /* member of a rollup: its queue's name */
	char *route_domain;        /* rollup: a member domain whose MX we use */
	/* policy (egress_policy.c) */
	enum egress_mode mode;
	int64_t backoff_until_ms;  /* loop clock: back to normal then */
	bool paused;
	struct egress_unit *units; /* one per cfg->vmtas */
	size_t n_units;
	size_t pool_rr, vmta_rr;   /* rotation */
	int64_t wake_ms;           /* loop clock; 0 = no timer */
	bool on_timers;
	struct egress_queue *timer_next;
	/* connections (egress.c) */
	unsigned n_conns, n_connecting;
	struct egress_conn *conns;
	bool freeing;
	struct {                   /* MX addresses whose TLS handshake failed: */
		struct sockaddr_storage addr;
		int64_t until_ms;  /* loop clock: in clear to that host until then */
	} clear[8];
	/* counters for operators (per recipient, like the log's records) */
	uint64_t delivered, deferred, bounced, expired;
	char last_error[160];
	/* smoothed per-minute rates (stats.c) */
	int64_t rate_at_ms;
	uint64_t rate_delivered, rate_deferred, rate_bounced;
	double delivered_rate, deferred_rate, bounced_rate;
};

struct egress_txn;

struct egress_conn {
	struct egress_conn *prev, *next;
	struct egress_queue *eq;
	struct smtp_client *cli;
	size_t target;
	size_t vmta;               /* index into cfg->vmtas and eq->units */
	unsigned msgs;
	bool ready;                /* past the greeting and EHLO */
	bool idle;                 /* ready and without a transaction */
	bool retire;               /* QUIT after the current transaction */
	int64_t idle_since_ms;
	struct egress_txn *txn;
};

/* egress.c */
struct egress_queue *egress_queue_of(struct worker *w, struct sched_queue *q);
/* Recipients of q that are ready: outcomes without a connection (routing
 * failure, every MX down), grouped per message. */
void egress_fail_ready(struct egress_queue *eq, const struct smtp_result *res, const char *mx_host);

/* egress_route.c */
/* Make sure a route is known or coming; true when targets[] is usable. */
bool egress_route_ready(struct egress_queue *eq);
/* A member queue of a rollup: hand its ready recipients over. */
void egress_move_to_rollup(struct egress_queue *eq);

/* egress_policy.c */
int egress_units_init(struct egress_queue *eq);
enum egress_mode egress_mode_now(struct egress_queue *eq, int64_t now_ms);
unsigned egress_max_out(const struct egress_queue *eq);
const struct config_rate *egress_msg_rate(const struct egress_queue *eq);
/* A virtual MTA that may open a connection now for ready work (and the
 * pool whose work it would carry), or -1. Arms the queue's timer when the
 * answer is "not yet". */
ssize_t egress_pick_vmta(struct egress_queue *eq, int64_t now_ms);
/* The pool a connection on vmta should serve next, taking a message token
 * from its unit; -1 when no pool of its has ready work or the rate says
 * wait (then the timer is armed). */
ssize_t egress_pick_pool(struct egress_queue *eq, size_t vmta, int64_t now_ms);
/* Does this pool include this virtual MTA? */
bool egress_pool_has(const struct config *cfg, size_t pool, size_t vmta);
/* Reply patterns of the queue's smtp-pattern-list against one result;
 * applies queue/unit actions and returns the CONFIG_PAT_* mask. */
unsigned egress_patterns(struct egress_queue *eq, struct egress_conn *c, const struct smtp_result *res,
			 int64_t now_ms);
/* Arm (or advance) the queue's timer. */
void egress_wake_at(struct egress_queue *eq, int64_t when_ms);
/* Idle connections past idle-timeout get QUIT; returns the earliest
 * future expiry (0 when none). egress.c */
int64_t egress_close_idle(struct egress_queue *eq, int64_t now_ms);

#endif
