/*
 * egress.h - internal to the egress files: a shard's outbound state per
 * destination queue.
 *
 *   egress.c         connections and transactions: open, hand out work,
 *                    outcomes, reuse, idle close
 *   egress_route.c   MX targets (DNS or `route`), mx-rollup detection and
 *                    moving a member domain's recipients to the rollup queue
 *                    (and back home when it leaves)
 *   egress_rollup.c  a rollup queue's members: each domain's own MX answer,
 *                    the union of their matching hosts, which recipient may
 *                    go through the rollup
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

#include "engine/conn_window.h"
#include "engine/engine.h"
#include "engine/throttle.h"
#include "net/dns.h"

/* A queue's route is looked up again after its DNS TTL, at most this long. */
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
	struct conn_window cw;      /* sessions by backlog and by the destination's answers */
	/* A socket could not be made here (EMFILE, EADDRNOTAVAIL...): no new
	 * session before open_after_ms; existing ones go on. */
	int64_t open_after_ms;      /* loop clock */
	unsigned open_fails;        /* in a row; sets the backoff */
	int64_t open_logged_ms;     /* last report in the log */
	unsigned open_unlogged;     /* failures since that report */
	/* The queue's settings through this virtual MTA when <domain> blocks
	 * nested in its <virtual-mta>/<virtual-mta-pool> apply (owned; NULL:
	 * the queue's own, q->cfg); resolved on first use (egress_unit_dom). */
	struct config_domain *dom;
	bool dom_resolved;
	/* PowerMTA's warm-up (cold-virtual-mta): this (warm) vmta's messages
	 * to the queue that went through its cold vmta in the window that
	 * started at cold_start_ms (wall clock; in memory: a restart starts a
	 * new window), and its max-cold-virtual-mta-msg, read once */
	uint64_t cold_sent;
	int64_t cold_start_ms;
	struct config_rate cold_max;
	/* `reroute-to-virtual-mta` for (queue, this vmta): the vmta index its
	 * mail goes through instead, or -1 */
	ssize_t reroute;
	bool cold_max_known;        /* cold_max and reroute are read */
};

struct egress_conn;

struct egress_queue {
	struct sched_queue *q;
	struct worker *w;
	/* routing (egress_route.c) */
	bool have_route;           /* targets[] is usable */
	bool resolving;            /* a lookup is in flight */
	bool is_rollup;            /* the queue of an mx-rollup (members move in) */
	bool rollup_checked;       /* is_rollup also set when <mx-rollup-list> names it */
	uint64_t route_expires;
	uint64_t route_ok_ms;      /* last good answer: a failed refresh keeps it within DNS_STALE_MAX_MS */
	struct dns_target *targets; /* DNS_MAX_TARGETS, allocated with the first
				     * route (a domain that never resolves, the
				     * long tail, costs nothing here) */
	size_t n_targets;
	size_t good_target;
	char *redirect;            /* member of a rollup: its queue's name */
	uint64_t returned_ms;      /* loop clock: the rollup last sent recipients back */
	size_t hosts_next;         /* `smtp-hosts`: the next host to look up */
	struct dns_target *hosts_tmp; /* the targets being gathered (DNS_MAX_TARGETS), then
				     * copied to targets[] at once; freed then */
	size_t hosts_n;
	bool hosts_sync;           /* inside egress_route_ready (no kick from there) */
	/* a rollup queue's members (egress_rollup.c), a hash by domain */
	struct egress_member **members;
	size_t n_buckets, n_members;
	bool members_dirty;        /* targets[] needs rebuilding from them */
	int64_t members_check_ms;  /* loop clock: next refresh/prune pass */
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
	struct config_gen *gen;    /* opened under it (a reference): its vmta and HELO until it closes */
	unsigned msgs;
	unsigned errors;           /* 4xx/5xx replies in this session (max-errors-per-connection) */
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
/* The same for one recipient (owned by the call from then on). */
void egress_fail_rcpt(struct egress_queue *eq, struct sched_rcpt *r, const struct smtp_result *res);

/* egress_route.c */
/* Make sure a route is known or coming; true when targets[] is usable. */
bool egress_route_ready(struct egress_queue *eq);
/* A member queue of a rollup: hand its ready recipients over. */
void egress_move_to_rollup(struct egress_queue *eq);
/* A recipient (or a chain of one domain's) that leaves a rollup goes back to
 * its own domain's queue, on whichever shard owns it. */
void egress_send_home(struct worker *w, struct sched_rcpt *head);
/* The outcome of a failed route lookup (bounce or defer, RFC codes). */
void egress_route_error(enum dns_status st, const char *domain, const char *error, struct smtp_result *res);
/* A target's port: the queue's `route` port, else smtp-port (25). */
void egress_route_set_port(const struct egress_queue *eq, struct dns_target *t);
/* The queue's targets array, made on first use (a domain that never
 * resolves costs nothing there); false on ENOMEM. */
bool egress_targets_alloc(struct egress_queue *eq);

/* egress_rollup.c */
/* What a rollup knows of one member domain (from its last DNS answer). */
enum egress_member_state {
	EGRESS_MEMBER_UNKNOWN,     /* never answered yet */
	EGRESS_MEMBER_MATCH,       /* MX hosts match this rollup: its mail goes here */
	EGRESS_MEMBER_AWAY,        /* they do not: its mail goes back to its own queue */
	EGRESS_MEMBER_FAIL,        /* NXDOMAIN, null MX, no address, temporary failure */
};
/* What becomes of one of its recipients taken from the rollup's ready list. */
enum egress_admit {
	EGRESS_ADMIT_SEND,
	EGRESS_ADMIT_PARK,         /* wait for the member's (re)lookup */
	EGRESS_ADMIT_HOME,
	EGRESS_ADMIT_FAIL,         /* bounce or defer with the member's DNS error */
};
/* A member being refreshed keeps sending this long past its TTL. */
#define EGRESS_MEMBER_GRACE_MS 2000
/* Pure: a member's answer -> its state; out[] gets the targets matching
 * rollup (room for route->n_targets), *n_out their count. */
enum egress_member_state egress_rollup_classify(const struct config *cfg, const char *rollup,
					       const struct dns_route *route, struct dns_target *out, size_t *n_out);
/* Pure: the verdict for a recipient of a member in state st whose answer
 * expires at `expires` (loop clock), a lookup in flight or not. */
enum egress_admit egress_rollup_verdict(enum egress_member_state st, bool resolving, int64_t expires, int64_t now);
/* The rollup queue any of these MX hosts belongs to (not `self`), or NULL:
 * the one test of membership, used by members and by the rollup. */
const char *egress_rollup_for(const struct config *cfg, const struct dns_target *t, size_t n, const char *self);
/* Merge n_in targets into out[0..n) (at most cap): no duplicates, sorted by
 * preference (stable), the worst dropped when full. Returns the new count. */
size_t egress_rollup_merge(struct dns_target *out, size_t n, size_t cap, const struct dns_target *in, size_t n_in);
/* A rollup queue's targets: the union of its matching members' hosts. */
bool egress_rollup_route_ready(struct egress_queue *eq);
/* May this recipient of a rollup queue go out through it now? false: it was
 * taken (parked for its domain's lookup, sent home, bounced or deferred). */
bool egress_rollup_admit(struct egress_queue *eq, struct sched_rcpt *r);
/* A member queue moved recipients of domain here. */
void egress_rollup_adopted(struct egress_queue *eq, const char *domain);
void egress_rollup_free(struct egress_queue *eq);

/* egress_policy.c */
int egress_units_init(struct egress_queue *eq);
/* A reload added virtual MTAs: one unit more for each (-1 on ENOMEM: the
 * queue goes on without them). */
int egress_units_grow(struct egress_queue *eq, size_t n_vmtas);
/* The shard's sweep of idle queues (sched_sweep): may q go (no connection,
 * lookup, timer, backoff or rate still in force)? And, when it goes, its
 * counters are folded into the worker's totals and its state freed. arg:
 * the worker. */
bool egress_queue_can_free(struct sched_queue *q, void *arg);
void egress_queue_freed(struct sched_queue *q, void *arg);
enum egress_mode egress_mode_now(struct egress_queue *eq, int64_t now_ms);
/* The <domain> settings a session from vmta gets for this queue: the
 * nested blocks of that vmta (and its pools) over the top-level ones. */
const struct config_domain *egress_unit_dom(struct egress_queue *eq, size_t vmta);
/* Release the units' resolved settings (with the queue). */
void egress_units_free(struct egress_queue *eq);
/* Drop them only, to be resolved again (a reload's new generation). */
void egress_units_forget_doms(struct egress_queue *eq);
unsigned egress_max_out(struct egress_queue *eq, size_t vmta);
const struct config_rate *egress_msg_rate(struct egress_queue *eq, size_t vmta);
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
/* A socket for a new session on vmta could not be made (err: -errno):
 * back the unit off, count it, report it at most once per interval. */
void egress_open_failed(struct egress_queue *eq, size_t vmta, int err, const char *target, int64_t now_ms);
/* A session on vmta reached the greeting: the backoff is over. */
void egress_open_ok(struct egress_queue *eq, size_t vmta);
/* Does the queue's ready backlog want one more session than it has? */
bool egress_wants_session(struct egress_queue *eq);
/* Arm (or advance) the queue's timer. */
void egress_wake_at(struct egress_queue *eq, int64_t when_ms);
/* Idle connections past idle-timeout get QUIT; returns the earliest
 * future expiry (0 when none). egress.c */
int64_t egress_close_idle(struct egress_queue *eq, int64_t now_ms);
/* Out of descriptors: QUIT every idle session of the worker's queues.
 * egress.c */
void egress_shed_idle(struct worker *w);
/* Descriptors are process-wide: a worker that ran out tells the others
 * (eng->counters.fd_shortages), which shed theirs at their next tick. */
void egress_fd_shortage(struct worker *w);
void egress_shed_if_short(struct worker *w);
/* queue-priority at the descriptors (egress_prio.c): a queue of dom's band
 * waits for a socket until about retry_ms; should a queue of dom's band
 * near the limit yield to a starved higher band; make the unit wait. */
void egress_prio_starved(const struct config_domain *dom, int64_t retry_ms);
bool egress_prio_yield(const struct config_domain *dom, int64_t now_ms);
void egress_prio_wait(struct egress_queue *eq, size_t vmta, int64_t now_ms);

#endif
