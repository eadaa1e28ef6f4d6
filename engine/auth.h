/*
 * auth.h - SMTP AUTH: account checks (<smtp-user>) on a thread of their own,
 * and the per-client throttle on failed attempts: after AUTH_MAX_FAILURES
 * failures from one address (IPv6: one /64) within AUTH_WINDOW_S seconds,
 * that address is refused for the rest of the window.
 *
 * Why a thread: a crypt(3) hash costs milliseconds by design, and anyone
 * who can open a session may ask for one; on a worker's loop that would
 * stall every session and delivery of the shard. Workers hand a job to
 * auth_service_submit() and get it back through their mailbox.
 *
 * Equal work: an unknown user name is checked against a dummy hash made
 * with the same algorithm and cost as the configured accounts, so the time
 * of an answer does not tell which names exist.
 *
 * A <source> with `smtp-max-auth-failure-rate N/T` (PowerMTA's) replaces
 * that limit for the clients it matches by address: N failures per T, then
 * refused (454 4.7.0) for the rest of the window. One window per distinct
 * rate (AUTH_RATED_MAX of them; further rates share the built-in one).
 *
 * The throttle counts an attempt before checking it (addr_window_take) and
 * gives the count back when it succeeds: concurrent sessions from one
 * address cannot all pass the check before any of them counts.
 */
#ifndef SALVO_AUTH_H
#define SALVO_AUTH_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "net/addr_window.h"
#include "net/mailbox.h"

#define AUTH_MAX_FAILURES 5
#define AUTH_WINDOW_S 300

struct config;
struct smtp_session;
struct worker;

/* One check. Owned by the service from submit until done() is called,
 * then by whoever done() hands it to. */
struct auth_job {
	struct mailbox_item link;
	struct auth_job *next;          /* the service's queue */
	struct worker *worker;
	struct smtp_session *session;
	struct sockaddr_storage peer;
	char user[256];
	char pass[512];                 /* wiped once checked */
	int result;                     /* 0 good, 1 wrong, 2 throttled */
};

struct config_current;

#define AUTH_RATED_MAX 8

struct auth_service {
	pthread_t thread;
	bool running, stop;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct auth_job *head, *tail;
	const struct config *cfg;
	struct config_current *live; /* when set, the users come from its current generation (reloads) */
	struct addr_window failures;
	struct auth_rated {             /* smtp-max-auth-failure-rate windows, made on first use */
		uint64_t count, per_ms;
		struct addr_window w;
	} rated[AUTH_RATED_MAX];
	size_t n_rated;                 /* under mu */
	char *dummy_hash;               /* for unknown users; NULL when no crypt account */
	void (*done)(struct auth_job *job);
};

/* The verdict for user/pass from client now: 0 good, 1 wrong, 2 this
 * client is throttled (not counted). Passwords compare in constant time; a
 * crypt(3) hash ("$...") is checked with crypt_rn. Any thread. */
int auth_verify(struct auth_service *a, const struct sockaddr *client, const char *user, const char *pass);

/* Start the checker thread; done() runs on it for every job. */
int auth_service_start(struct auth_service *a, const struct config *cfg, void (*done)(struct auth_job *job));
/* Hand a job over (any thread). */
void auth_service_submit(struct auth_service *a, struct auth_job *job);
/* Stop the thread; jobs it never ran are freed. Safe on a service that
 * never started. */
void auth_service_stop(struct auth_service *a);

#endif
