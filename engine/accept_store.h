/*
 * accept_store.h - storing an accepted message: the one path from "this
 * message is accepted" to "its recipients are durable, logged and queued".
 *
 * Used by SMTP intake (intake.c), HTTP injection (api_inject.c), DSNs
 * (outcome.c, inside an outcome's commit) and start-up recovery (salvod.c).
 *
 *   caller thread   accept_store_submit(): DKIM-sign each message, hand the
 *                   batch to the spool writer
 *   writer thread   apply: one spool message per accept_msg, one recipient
 *                   record per address, all in the group commit;
 *                   done: reception records, counters, recipients routed
 *                   to their shards, then the batch's own done() - which
 *                   must only hand the batch back (post to a mailbox or to
 *                   accept_store_defer()): the writer only commits.
 *   store thread    accept_store_defer(): work that follows a commit and is
 *                   too slow for the writer (rendering and signing the next
 *                   batch of an HTTP injection) runs here, one job at a time.
 *
 * Ownership: the batch and everything it points to (bodies, addresses,
 * strings) belong to the caller; the store borrows them from submit until
 * the batch's done() returns. Recipients that cannot be queued for lack of
 * memory stay durable and go out after a restart: logged once, here.
 */
#ifndef SALVO_ACCEPT_STORE_H
#define SALVO_ACCEPT_STORE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "queue/spool_writer.h"

struct engine;
struct sched_rcpt;
struct spool_wtxn;

/* One stored message: its bytes and which of the batch's addresses it carries. */
struct accept_msg {
	char *body;                /* the caller's; signing may replace it (realloc'd copy) */
	size_t len;
	uint64_t id;               /* set by the commit (or given: ids_given) */
	size_t first, count;       /* its recipients: rcpts[first .. first + count) */
	bool smtputf8;             /* came with SMTPUTF8 (RFC 6531): goes out with it */
	bool no_verp;              /* goes with its own return path (verp-default no) */
	const char *envid;         /* its ENVID (MAIL ENVID=, else process-x-envid); NULL or "" for none */
	uint8_t ret;               /* MAIL RET= (SPOOL_RET_*), 0 when not given */
	bool dkim_at_delivery;     /* its pool's vmtas sign with different keys: each
				    * delivery signs (accept_store_sign) */
};

struct accept_batch {
	struct spool_req req;      /* the store's */
	struct engine *eng;
	const char *sender;        /* "" for a DSN */
	const char *campaign;      /* "" for none */
	const char *source_ip;     /* "" for none */
	size_t pool;               /* index into cfg->pools (0: the default) */
	const uint16_t *rcpt_pools; /* NULL, or each address's own pool (rcpts[i]: a
				    * <pattern-list> rcpt-to rule chose it) */
	const uint8_t *rcpt_notify; /* NULL, or each address's RCPT NOTIFY= (SPOOL_NOTIFY_*) */
	const char *const *rcpt_orcpt; /* NULL, or each address's ORCPT ("type;address", NULL none) */
	uint8_t src_type;          /* SPOOL_SRC_*: how it came in */
	int64_t arrival_ms;        /* wall clock: accepted */
	int64_t due_ms;            /* first attempt */
	bool received;             /* a reception: log it and count it (not for DSNs) */
	bool sign;                 /* DKIM-sign each message at submit */
	bool ids_given;            /* msgs[].id already allocated in this transaction */
	bool reserve;              /* may use the spool's reserve (outcomes' DSNs: they
				    * come with commits that free space; new mail may not) */
	const char *const *rcpts;  /* the addresses */
	struct accept_msg *msgs;
	size_t n_msgs;
	/* Writer thread, after the commit and the routing: hand the batch back
	 * and return. result 0 or a spool error. */
	void (*done)(struct accept_batch *b, int result);
};

/* The store thread; salvod starts it before the listeners and stops it
 * after the HTTP server and the writer. */
struct accept_store {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct accept_job *head, *tail;
	bool stopping;
	bool running;              /* the thread takes jobs (under mu) */
	bool started;              /* the thread exists: stop joins it */
};

/* Deferred work: run(job) on the store thread. The job is the caller's
 * (usually embedded in its request); the store only links it. */
struct accept_job {
	struct accept_job *next;
	void (*run)(struct accept_job *job);
};

int accept_store_start(struct accept_store *st);
/* Runs what is queued, then joins. Jobs deferred after this run inline. */
void accept_store_stop(struct accept_store *st);
/* True once accept_store_stop() began: a multi-batch job stops at its next
 * batch boundary instead of rendering more. Any thread. */
bool accept_store_stopping(struct accept_store *st);
/* Any thread (the writer included: it only links the job). */
void accept_store_defer(struct accept_store *st, struct accept_job *job);

/* DKIM-sign an accepted message in place when a key matches its From
 * domain and `<domain *>` has dkim-sign yes: m->body is replaced by a new
 * malloc'd copy with the signature in front. The keys are those of the
 * virtual MTAs of pool (an index into cfg->pools): when they would not all
 * sign with the same key, the message is left unsigned and marked
 * m->dkim_at_delivery (engine/egress.c signs each delivery with its own
 * vmta's key). A signing failure is logged once and the message goes
 * unsigned. Any thread; CPU-heavy (RSA). */
void accept_store_sign(struct engine *eng, size_t pool, struct accept_msg *m);

/* Sign (if b->sign) and hand to the writer. Any thread but the writer. */
void accept_store_submit(struct accept_batch *b);

/* For callers that store inside their own writer request (a DSN in an
 * outcome's commit): the records, in t; then, after the commit succeeded,
 * the logging and routing. */
int accept_store_put(struct accept_batch *b, struct spool_wtxn *t);
void accept_store_committed(struct accept_batch *b);

/* Start-up recovery, in two steps so that nothing committed after the
 * spool is read can be queued twice: accept_store_recover() reads every
 * queued recipient (one read snapshot) before any listener opens;
 * accept_store_route_recovered() hands them to the running workers. */
struct accept_recovered {
	struct sched_rcpt **r;
	size_t n, cap;
};
int accept_store_recover(struct engine *eng, struct accept_recovered *out);
void accept_store_route_recovered(struct engine *eng, struct accept_recovered *rec);
/* What was recovered and never routed (start-up failed); empty is fine. */
void accept_store_free_recovered(struct accept_recovered *rec);

#endif
