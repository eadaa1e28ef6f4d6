/*
 * delete_internal.h - what delete.c (tombstones, the request, the workers'
 * part) and delete_commit.c (the spool commit, records, DSNs) share; not
 * for other files (the interface is delete.h).
 *
 * Ownership: a struct delete_how (the filter's text and dsn flag) is
 * shared, reference-counted, by the tombstones and commit items made from
 * one request. A struct delete_job lives from delete_start until its commit
 * answered the HTTP request; a struct delete_commit from its submit until
 * its done(). The spool writer only borrows a commit.
 */
#ifndef SALVO_DELETE_INTERNAL_H
#define SALVO_DELETE_INTERNAL_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/delete.h"
#include "net/mailbox.h"
#include "queue/spool_writer.h"

struct engine;
struct http_request;

struct delete_how {
	unsigned refs;             /* atomic */
	bool dsn;
	size_t cancelled;          /* recorded as cancelled so far (writer thread) */
	size_t caught;             /* tombstones taken by delete_catch, not yet
				    * recorded (changed under the state's mu) */
	char text[];               /* the filter as compact JSON */
};

struct delete_tomb {
	struct delete_tomb *next;
	uint64_t msg_id;
	uint32_t idx;
	struct delete_how *how;    /* one reference */
};

struct delete_key {
	uint64_t msg_id;
	uint32_t idx;
};

/* One recipient to cancel; the rest is filled by the commit's apply. */
struct cancel_item {
	uint64_t msg_id;
	uint32_t idx;
	struct delete_how *how;    /* one reference */
	bool done;                 /* found and removed in this commit */
	char *addr, *sender, *campaign, *queue;
	int64_t queued_ms;
	uint32_t attempts;
	uint64_t size;
	uint64_t dsn_id;
};

struct cancel_dsn {
	uint64_t id;
	char *body;
	size_t len;
	char *sender;
};

struct delete_job;

struct delete_commit {
	struct spool_req req;
	struct engine *eng;
	struct delete_job *job;    /* the request's commit; NULL for a late one */
	struct cancel_item *items; /* sorted by (message id, index) */
	size_t n;
	struct cancel_dsn *dsns;
	size_t n_dsns;
	int64_t time_ms;
	unsigned tries;
	/* At start (delete_recover.c): no worker exists yet, the campaigns
	 * have not counted these recipients, and a DSN is queued by the
	 * recovery that follows; done() then signals *wait. */
	struct delete_wait *wait;
};

struct delete_wait {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
	int result;
	size_t cancelled;
};

/* Each worker's part of a job: its mail, then what it took. */
struct delete_mail {
	struct mailbox_item link;
	struct delete_job *job;
	struct cancel_item *got;
	size_t n, cap;
	bool oom;
};

struct delete_job {
	struct engine *eng;
	struct http_request *http;
	struct delete_how *how;    /* one reference */
	struct delete_key *cands;  /* matched at the walk */
	size_t n_cands, cap_cands;
	unsigned left;             /* workers yet to answer (atomic) */
	struct delete_mail *mails; /* one per worker */
};

/* delete.c: references, and the tombstone set (under the state's mu). */
void delete_how_put(struct delete_how *h);
struct delete_how *delete_how_get(struct delete_how *h);
/* The link that points at the tombstone of (id, idx), or at the NULL
 * ending its chain. */
struct delete_tomb **delete_tomb_find(struct delete_state *st, uint64_t id, uint32_t idx);
/* Remove the tombstone of (id, idx); its how reference is the caller's
 * (NULL: there was none). */
struct delete_how *delete_tomb_take(struct delete_state *st, uint64_t id, uint32_t idx);
/* Answer the request and free the job (j consumed; NULL: an error). */
void delete_job_answer(struct delete_job *job, unsigned status, json_t *j, const char *err);
void delete_job_free(struct delete_job *job);

/* delete_commit.c */
/* Hand c to the spool writer (its items sorted by message first); its
 * done() records, answers and frees it. */
void delete_commit_submit(struct delete_commit *c);
/* The lower-case domain of an address. */
void delete_domain_of(const char *addr, char *dom, size_t cap);

#endif
