/*
 * engine.h - the daemon's shared context and its worker shards.
 *
 * struct engine is built by salvod before any thread starts and is
 * read-only afterwards, except through the objects that guard themselves
 * (the spool writer's queue, each worker's mailbox). The accounting log is
 * written only from the spool writer thread (in spool_req done callbacks).
 *
 * A worker owns one io_uring loop and everything on it: its intake sessions,
 * its DNS resolver, its shard of destination queues (sched) and their
 * connections (egress). Work reaches a worker only through its mailbox.
 */
#ifndef SALVO_ENGINE_H
#define SALVO_ENGINE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"
#include "engine/config_gen.h"
#include "engine/scheduler.h"
#include "engine/stats.h"
#include "net/loop.h"
#include "net/mailbox.h"
#include "net/smtp_client.h"
#include "queue/spool.h"
#include "queue/spool_writer.h"

struct acct_log;
struct delete_state;
struct http_server;
struct auth_service;
struct addr_window;
struct accept_store;
typedef struct ssl_ctx_st SSL_CTX;
struct dns;
struct smtp_server;

enum worker_mail {
	WORKER_MAIL_RCPT = 1,      /* a struct sched_rcpt for this shard */
	WORKER_MAIL_INJECTED,      /* an intake request came back from the writer */
	WORKER_MAIL_MOVE,          /* recipients moving into a rollup queue here */
	WORKER_MAIL_ACTION,        /* an operator action on a queue here */
	WORKER_MAIL_BOUNCE,        /* a processed report: answer its client */
	WORKER_MAIL_AUTH,          /* a checked AUTH attempt: answer its client */
	WORKER_MAIL_CAMPAIGN,      /* a campaign paused or resumed: park or unpark */
	WORKER_MAIL_CONFIG,        /* a reloaded configuration generation (reload.c) */
	WORKER_MAIL_DELETE,        /* an operator's delete: take its recipients (delete.h) */
};

/* Operator actions on a queue (by name: a domain or a rollup queue). */
enum queue_action {
	QUEUE_PAUSE,               /* no new transactions; idle sessions close */
	QUEUE_RESUME,
	QUEUE_RETRY,               /* every waiting recipient is due now */
	QUEUE_MODE_NORMAL,
	QUEUE_MODE_BACKOFF,        /* until backoff-to-normal-after */
};

struct egress_queue;

struct worker {
	struct engine *eng;
	struct config_gen *gen;    /* the generation this shard runs on (a reference) */
	const struct config *cfg;  /* &gen->cfg: what the shard's code reads */
	uint64_t gen_adopted;      /* gen->generation, for engine_reload's wait (atomic) */
	char adopt_warn[256];      /* what failed adopting it ("" none); written before gen_adopted */
	unsigned index;
	pthread_t thread;
	struct loop loop;
	struct mailbox mb;
	struct smtp_server *srv;
	struct dns *dns;
	struct sched sched;
	struct loop_op tick_op;
	struct smtp_client_timeouts client_tmo;
	struct egress_queue *egress_timers; /* queues with a wake-up pending */
	struct worker_stats stats;          /* published for the API */
	unsigned ticks;
	bool loop_ok;              /* loop_init() succeeded: worker_free() has work */
	char start_err[256];
};

struct engine {
	/* The configuration in force (config_gen.h): threads other than the
	 * workers take a reference per use (engine_config_get); a worker reads
	 * its own w->cfg. Replaced by engine_reload() (reload.c). */
	struct config_current conf;
	const char *config_path;   /* -c FILE; NULL on built-in defaults */
	const struct config_gen *boot; /* generation 1 (salvod holds it): what restart-only settings are */
	pthread_mutex_t reload_mu; /* one reload at a time */
	uint64_t reloads_ok, reloads_failed; /* atomic */
	struct spool *spool;
	struct spool_writer writer;
	struct acct_log *acct;
	struct worker *workers;
	unsigned n_workers;
	struct engine_counters counters;
	int64_t started_ms;        /* wall clock */
	struct http_server *http;
	unsigned http_inflight;    /* API requests waiting on the writer (atomic) */
	struct conn_limit *smtp_conns; /* inbound caps shared by the listeners */
	SSL_CTX *tls_server;       /* inbound STARTTLS / implicit TLS; NULL without a certificate */
	SSL_CTX *tls_client;       /* outbound STARTTLS */
	struct auth_service *auth; /* AUTH checks, off the workers' loops */
	struct addr_window *bounce_reports; /* reports per untrusted client (bounce-max-reports-per-ip) */
	struct accept_store *store; /* storing accepted mail; its thread (accept_store.h) */
	struct sent_pruner *sent_pruner; /* "sent" retention (metrics read its counters) */
	struct webhooks *webhooks; /* <acct-webhook> senders (webhook.h); NULL when none;
				    * read under webhooks_mu (a reload replaces them) */
	pthread_mutex_t webhooks_mu;
	struct config_gen *webhooks_gen; /* what they were started from after a reload (a
					  * reference); NULL: the boot generation */
	struct campaigns *campaigns; /* campaign ids, pauses, counters (campaign.h) */
	struct delete_state *deletes; /* an operator's deletes in progress (delete.h) */
	struct trace *trace;       /* SMTP transcripts and live traces (trace.h); NULL: none */
};

/* The current configuration generation, with a reference for the caller
 * (config_gen_put() it). Any thread. */
static inline struct config_gen *engine_config_get(struct engine *eng)
{
	return config_current_get(&eng->conf);
}

/* The worker that owns a destination domain's queue. */
struct worker *engine_shard(struct engine *eng, const char *domain);
/* Hand freshly durable recipients to their shards (any thread). */
void engine_route_rcpt(struct engine *eng, struct sched_rcpt *r);
/* The same for a message's recipients at once (one post per shard); the
 * array's slots are consumed (set to NULL). */
void engine_route_rcpts(struct engine *eng, struct sched_rcpt **rs, size_t n);

/* Ask the shard that owns `queue` to act on it (any thread; asynchronous).
 * A pause or resume is recorded in the spool first (it outlives the queue
 * and a restart) and holds for a queue that does not exist yet; other
 * actions on an unknown queue do nothing. Returns 0, or -1 on ENOMEM.
 * stored (may be NULL): for a pause or resume, called once on the writer's
 * thread after its commit (result 0, or the spool error: then it applies
 * until a restart only), once the action is on its way to the shard. */
int engine_queue_action(struct engine *eng, const char *queue, enum queue_action action,
			void (*stored)(void *arg, int result), void *arg);
/* At start, before recovery: the spool's pauses to their shards. */
int engine_restore_pauses(struct engine *eng);
/* api_campaigns.c: at start, before recovery is routed: the spool's
 * campaign totals and pauses to the campaign table. The workers' side of a campaign
 * pause or resume (WORKER_MAIL_CAMPAIGN). */
int engine_restore_campaigns(struct engine *eng);
void engine_campaign_mail(struct worker *w, struct mailbox_item *it);
void engine_campaign_mail_discard(struct mailbox_item *it);
/* The queue a recipient domain goes to first (its queue-to, or itself),
 * under cfg. */
const char *engine_queue_name(const struct config *cfg, const char *domain);

/* worker.c */
/* worker_init() every worker, then worker_run() each: no worker's thread
 * may run (accept mail, route recipients to any shard) before every shard
 * exists. */
int worker_init(struct worker *w, struct engine *eng, unsigned index, struct config_gen *gen);
int worker_run(struct worker *w);       /* start its thread */
void worker_stop(struct worker *w);     /* stop the loop and join (after worker_run) */
void worker_free(struct worker *w);     /* after every worker and the writer stopped */
void worker_run_kicks(struct worker *w);
/* reload.c: a WORKER_MAIL_CONFIG mail: the shard moves to its generation. */
void worker_config_rebind(struct worker *w, struct mailbox_item *it);
void worker_config_discard(struct mailbox_item *it);
/* Re-read config_path; on success every worker moves to the new
 * generation. Serialised (reload_mu). Fills *out (reload_result_free()). */
struct reload_result {
	bool ok;
	uint64_t generation;       /* in force afterwards */
	int64_t loaded_ms;
	char *errors;              /* "FILE:LINE: message\n" lines; NULL when none */
	char *warnings;            /* parser warnings and "X changes on restart only" lines */
};
void engine_reload(struct engine *eng, struct reload_result *out);
void reload_result_free(struct reload_result *r);

/* intake.c: the SMTP server's policy and storage hooks */
extern const struct smtp_server_hooks intake_hooks;
void intake_injected(struct worker *w, struct mailbox_item *it);
void intake_discard(struct mailbox_item *it);
/* An AUTH verdict came back from the checker thread. */
void intake_auth_replied(struct worker *w, struct mailbox_item *it);
void intake_auth_discard(struct mailbox_item *it);
/* The auth service's done(): posts the job back to its worker. */
struct auth_job;
void intake_auth_done(struct auth_job *job);
/* bounce_intake.c: reports mailed to the bounce domain. s may be NULL when
 * no reply is owed (the envelope also had relay recipients). Reads env and
 * body during the call only. */
struct smtp_envelope;
struct smtp_session;
void bounce_intake_submit(struct worker *w, struct smtp_session *s, const struct smtp_envelope *env,
			  const char *body, size_t len);
void bounce_intake_replied(struct worker *w, struct mailbox_item *it);
void bounce_intake_discard(struct mailbox_item *it);
/* Is addr at the bounce-domain (for the bounce processor)? */
bool intake_is_bounce_rcpt(const struct config *cfg, const char *addr);

/* egress*.c: per-queue connections, routes, throttles */
void egress_kick(struct worker *w, struct sched_queue *q);
void egress_tick(struct worker *w);             /* timers: throttles, idle, backoff */
void egress_action(struct worker *w, struct mailbox_item *it);
void egress_action_discard(struct mailbox_item *it);
void egress_moved_in(struct worker *w, struct mailbox_item *it);
void egress_move_discard(struct mailbox_item *it);
/* Frees a queue's connections and state without any callback; only after
 * the loop stopped (sched_fini() calls it for every queue). */
void egress_queue_free(struct sched_queue *q);

#endif
