/*
 * worker.c - a worker thread: its io_uring loop, mailbox, intake listener,
 * DNS resolver, and its shard of destination queues.
 *
 * Each turn of work ends with worker_run_kicks(): every queue that received
 * ready recipients this turn gets one egress_kick(). A 100 ms tick moves due
 * recipients from the heap to their queues and runs the egress timers
 * (throttled and idle queues only); between due times the tick costs one
 * heap peek.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/delete.h"
#include "engine/egress.h"
#include "engine/engine.h"
#include "engine/shard.h"
#include "net/dns.h"
#include "net/smtp_server.h"

#define WORKER_TICK_MS 100
#define WORKER_SWEEP_VISITS 2048 /* queues looked at per tick for freeing */
#define WORKER_RING_ENTRIES 1024
#define WORKER_BUFS 256 /* 4 MiB of receive buffers per worker, touched lazily */
#define WORKER_BUF_SIZE 16384

struct worker *engine_shard(struct engine *eng, const char *domain)
{
	return &eng->workers[shard_for(domain, strlen(domain), eng->n_workers)];
}

const char *engine_queue_name(const struct config *cfg, const char *domain)
{
	return sched_queue_name_for(cfg, domain);
}

/* Recipients go to the shard of their first queue (see scheduler.h) under
 * the configuration in force. A recipient routed just before a reload that
 * changes its queue-to reaches the shard of its old queue; that shard
 * queues it under the name its own generation gives (sched_add). */
static struct worker *rcpt_shard(struct engine *eng, const struct config *cfg, const struct sched_rcpt *r)
{
	return engine_shard(eng, engine_queue_name(cfg, r->domain));
}

void engine_route_rcpt(struct engine *eng, struct sched_rcpt *r)
{
	struct config_gen *g = engine_config_get(eng);

	r->link.kind = WORKER_MAIL_RCPT;
	mailbox_post(&rcpt_shard(eng, &g->cfg, r)->mb, &r->link);
	config_gen_put(g);
}

void engine_route_rcpts(struct engine *eng, struct sched_rcpt **rs, size_t n)
{
	/* One post per shard, so a message's recipients for one domain reach
	 * their queue in the same wake-up and can share a transaction. */
	struct config_gen *g = engine_config_get(eng);

	for (size_t i = 0; i < n; i++) {
		struct worker *w;
		struct mailbox_item *head, *tail;

		if (!rs[i])
			continue;
		w = rcpt_shard(eng, &g->cfg, rs[i]);
		head = tail = &rs[i]->link;
		head->kind = WORKER_MAIL_RCPT;
		rs[i] = NULL;
		for (size_t j = i + 1; j < n; j++) {
			if (!rs[j] || rcpt_shard(eng, &g->cfg, rs[j]) != w)
				continue;
			rs[j]->link.kind = WORKER_MAIL_RCPT;
			tail->next = &rs[j]->link;
			tail = tail->next;
			rs[j] = NULL;
		}
		tail->next = NULL;
		mailbox_post_list(&w->mb, head, tail);
	}
	config_gen_put(g);
}

void worker_run_kicks(struct worker *w)
{
	struct sched_queue *q;

	while ((q = sched_next_kicked(&w->sched)))
		egress_kick(w, q);
}

static void worker_mail(struct mailbox *mb, struct mailbox_item *items)
{
	struct worker *w = mb->owner;
	int64_t now = wall_now_ms(), mono = (int64_t)loop_now_ms();

	while (items) {
		struct mailbox_item *next = items->next;

		switch (items->kind) {
		case WORKER_MAIL_RCPT: {
			struct sched_rcpt *r = container_of(items, struct sched_rcpt, link);

			/* due times run on the monotonic clock from here on */
			r->due_ms = sched_due_mono(r->due_ms, now, mono);
			if (delete_catch(w, r))
				break; /* deleted while on its way here */
			if (sched_add(&w->sched, r, mono) < 0) {
				fprintf(stderr, "salvod: out of memory queueing %016llx; it goes out after a restart\n",
					(unsigned long long)r->msg_id);
				free(r);
			}
			break;
		}
		case WORKER_MAIL_INJECTED:
			intake_injected(w, items);
			break;
		case WORKER_MAIL_MOVE:
			egress_moved_in(w, items);
			break;
		case WORKER_MAIL_ACTION:
			egress_action(w, items);
			break;
		case WORKER_MAIL_BOUNCE:
			bounce_intake_replied(w, items);
			break;
		case WORKER_MAIL_AUTH:
			intake_auth_replied(w, items);
			break;
		case WORKER_MAIL_CAMPAIGN:
			engine_campaign_mail(w, items);
			break;
		case WORKER_MAIL_CONFIG:
			worker_config_rebind(w, items);
			break;
		case WORKER_MAIL_DELETE:
			delete_worker_mail(w, items);
			break;
		default:
			fprintf(stderr, "salvod: worker_mail: unknown mail kind %d\n", items->kind);
			abort();
		}
		items = next;
	}
	worker_run_kicks(w);
}

static void worker_tick(struct loop_op *op, int res, unsigned flags)
{
	struct worker *w = container_of(op, struct worker, tick_op);

	sched_run_due(&w->sched, (int64_t)loop_now_ms());
	egress_tick(w);
	worker_run_kicks(w);
	sched_sweep(&w->sched, (int64_t)loop_now_ms(), (int64_t)w->cfg->queue_free_after_ms,
		    WORKER_SWEEP_VISITS, egress_queue_can_free, egress_queue_freed, w);
	dns_cache_sweep(w->dns, 64); /* all 4096 buckets every 6.4 s */
	if (++w->ticks % (STATS_PUBLISH_MS / WORKER_TICK_MS) == 0)
		worker_stats_publish(w);
	loop_timeout(&w->loop, &w->tick_op, WORKER_TICK_MS);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	int ret;

	mailbox_arm(&w->mb);
	loop_timeout(&w->loop, &w->tick_op, WORKER_TICK_MS);
	ret = loop_run(&w->loop);
	if (ret < 0)
		fprintf(stderr, "salvod: worker %u: io_uring failed: %s\n", w->index, strerror(-ret));
	return NULL;
}

/* Everything but the thread: the loop, mailbox, resolver and listeners (a
 * bound listener queues connections in the kernel until the thread runs). */
int worker_init(struct worker *w, struct engine *eng, unsigned index, struct config_gen *gen)
{
	const struct config *cfg = &gen->cfg;
	struct smtp_server_limits lim = {
		.host_name = cfg->host_name,
		.max_message_size = cfg->max_message_size,
		.max_rcpts = cfg->max_rcpt_per_session_message,
		.command_timeout_ms = cfg->smtp_command_timeout_ms,
		.data_timeout_ms = cfg->smtp_data_timeout_ms,
		.max_errors = cfg->smtp_max_errors,
		.conns = eng->smtp_conns,
		.tls = eng->tls_server,
	};
	int ret;

	memset(w, 0, sizeof(*w));
	w->mb.efd = -1;
	w->eng = eng;
	config_gen_ref(gen);
	w->gen = gen;
	w->cfg = cfg;
	w->gen_adopted = gen->generation;
	w->index = index;
	worker_stats_init(&w->stats);
	smtp_client_default_timeouts(&w->client_tmo);
	ret = loop_init(&w->loop, WORKER_RING_ENTRIES, WORKER_BUFS, WORKER_BUF_SIZE);
	if (ret < 0) {
		snprintf(w->start_err, sizeof(w->start_err), "io_uring setup failed: %s", strerror(-ret));
		return ret;
	}
	w->loop_ok = true;
	loop_op_init(&w->tick_op, worker_tick);
	ret = sched_init(&w->sched, cfg);
	w->sched.campaigns = eng->campaigns;
	if (ret == 0)
		ret = mailbox_init(&w->mb, &w->loop, worker_mail, w);
	if (ret < 0) {
		snprintf(w->start_err, sizeof(w->start_err), "worker setup failed: %s", strerror(-ret));
		return ret;
	}
	ret = cfg->n_name_servers > 1 ? dns_init_servers(&w->dns, &w->loop, cfg->name_servers, cfg->n_name_servers)
				       : dns_init(&w->dns, &w->loop, cfg->has_dns_server ? &cfg->dns_server : NULL);
	if (ret < 0) {
		snprintf(w->start_err, sizeof(w->start_err), "DNS resolver setup failed: %s", strerror(-ret));
		return ret;
	}
	ret = smtp_server_start(&w->srv, &w->loop, cfg->smtp_listeners, cfg->n_smtp_listeners,
				cfg->smtps_listeners, cfg->n_smtps_listeners, &lim,
				&intake_hooks, w, w->start_err, sizeof(w->start_err));
	return ret < 0 ? ret : 0;
}

int worker_run(struct worker *w)
{
	sigset_t all, old;
	int ret;

	/* Signals belong to the main thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	ret = -pthread_create(&w->thread, NULL, worker_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret < 0)
		snprintf(w->start_err, sizeof(w->start_err), "cannot start thread: %s", strerror(-ret));
	return ret;
}

void worker_stop(struct worker *w)
{
	loop_stop(&w->loop);
	pthread_join(w->thread, NULL);
}

/* After every worker and the writer stopped: nothing runs on the ring any
 * more, so everything can be freed directly. */
void worker_free(struct worker *w)
{
	struct mailbox_item *it;

	if (!w->loop_ok) {
		config_gen_put(w->gen);
		w->gen = NULL;
		return;
	}
	worker_stats_fini(&w->stats);
	it = w->mb.efd >= 0 ? mailbox_take(&w->mb) : NULL;
	while (it) {
		struct mailbox_item *next = it->next;

		if (it->kind == WORKER_MAIL_RCPT)
			free(container_of(it, struct sched_rcpt, link));
		else if (it->kind == WORKER_MAIL_MOVE)
			egress_move_discard(it);
		else if (it->kind == WORKER_MAIL_ACTION)
			egress_action_discard(it);
		else if (it->kind == WORKER_MAIL_BOUNCE)
			bounce_intake_discard(it);
		else if (it->kind == WORKER_MAIL_AUTH)
			intake_auth_discard(it);
		else if (it->kind == WORKER_MAIL_CAMPAIGN)
			engine_campaign_mail_discard(it);
		else if (it->kind == WORKER_MAIL_CONFIG)
			worker_config_discard(it);
		else if (it->kind == WORKER_MAIL_DELETE)
			delete_mail_discard(it);
		else
			intake_discard(it);
		it = next;
	}
	if (w->srv)
		smtp_server_free(w->srv);
	if (w->sched.buckets)
		sched_fini(&w->sched, egress_queue_free);
	if (w->dns)
		dns_free(w->dns);
	if (w->mb.efd >= 0)
		mailbox_fini(&w->mb);
	loop_fini(&w->loop);
	config_gen_put(w->gen); /* after the queues: their connections held theirs */
	w->gen = NULL;
	w->cfg = NULL;
}
