/*
 * reload.c - live reload: SIGHUP and POST /api/v1/reload re-read the file
 * salvod was started with (-c) and, when it is valid, make it the next
 * configuration generation (config_gen.h).
 *
 * What happens, in order, under reload_mu (one reload at a time):
 *   1. read the file (reload_file.h: refused when it is not a regular,
 *      readable, non-empty text file, or changed while read) and parse
 *      it (config_load_string_report: every error in one run);
 *   2. give existing pools their indexes (reload_align_pools) and compare
 *      (reload_diff.h): settings built once at start are reported "changes
 *      on restart only"; a removed or reordered virtual MTA, or a removed
 *      pool, refuses the reload;
 *   3. load the DKIM keys it names (an unreadable key, or one that is not
 *      a regular file, refuses it);
 *   4. publish it (threads that read settings per use see it from now on)
 *      and post it to every worker (WORKER_MAIL_CONFIG).
 *   5. restart the webhook senders when <acct-webhook> changed;
 *   6. wait (up to 5 s) until every worker runs on it, so that the answer
 *      means "in force".
 * Any error: nothing changes, the errors go back to the caller (and to the
 * log), the generation stays.
 *
 * On a worker, between two loop turns (worker_config_rebind): the shard
 * adopts the generation, every queue takes its <domain> settings from it
 * (throttles, connection caps, retries, patterns, routes) and gets units
 * and FIFOs for added virtual MTAs and pools; routes are looked up again
 * (a changed `route` applies to the next session); queues with ready work
 * are kicked so raised limits apply at once; SMTP listeners follow the
 * file (an unchanged address stays open, so no connection is refused
 * across a reload; a new one is opened on every worker, a removed one
 * stops accepting while its sessions go on). Open connections keep the
 * generation they were opened under (source IP, HELO) until they close; a
 * transaction in flight finishes as it started, and the queue's new limits
 * apply from its next transaction. Intake sessions read their <source>
 * policy per command from the worker's generation; limits fixed when a
 * session was accepted (message size, session time) stay for that session.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/dkim.h"
#include "engine/egress.h"
#include "engine/engine.h"
#include "engine/reload_diff.h"
#include "engine/reload_file.h"
#include "net/http_server.h"
#include "engine/webhook.h"
#include "net/smtp_server.h"

struct config_mail {
	struct mailbox_item link;
	struct config_gen *gen;    /* a reference for the worker */
};

void reload_result_free(struct reload_result *r)
{
	free(r->errors);
	free(r->warnings);
	memset(r, 0, sizeof(*r));
}

/* Append text to *dst (a malloc'd string or NULL). */
static void append(char **dst, const char *text)
{
	size_t a = *dst ? strlen(*dst) : 0, b = text ? strlen(text) : 0;
	char *n;

	if (!b || !(n = realloc(*dst, a + b + 1)))
		return;
	memcpy(n + a, text, b + 1);
	*dst = n;
}

static void post_to_workers(struct engine *eng, struct config_gen *g)
{
	for (unsigned i = 0; i < eng->n_workers; i++) {
		struct config_mail *m = calloc(1, sizeof(*m));

		if (!m) {
			/* the worker stays on its generation until the next reload */
			fprintf(stderr, "salvod: reload: out of memory: worker %u keeps the previous configuration\n", i);
			continue;
		}
		config_gen_ref(g);
		m->gen = g;
		m->link.kind = WORKER_MAIL_CONFIG;
		mailbox_post(&eng->workers[i].mb, &m->link);
	}
}

static bool has_addr(const struct config_addr *a, size_t n, const struct config_addr *x)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(a[i].text, x->text) == 0)
			return true;
	return false;
}

/* New SMTP listeners must be free to bind (another process could hold the
 * port; the workers share ours with SO_REUSEPORT, which would hide it),
 * and implicit TLS needs the certificate loaded at start. -1 with the
 * reasons appended to *errors. */
static int listeners_check(const struct engine *eng, const struct config *cur, const struct config *neu, char **errors)
{
	int rc = 0;
	char line[512];

	if (neu->n_smtps_listeners && !eng->tls_server) {
		snprintf(line, sizeof(line), "%s: smtps-listener needs tls-certificate and tls-private-key at start "
			 "(TLS files change on restart only)\n", neu->path);
		append(errors, line);
		rc = -1;
	}
	for (size_t i = 0; i < neu->n_smtp_listeners + neu->n_smtps_listeners; i++) {
		const struct config_addr *a = i < neu->n_smtp_listeners ? &neu->smtp_listeners[i]
								       : &neu->smtps_listeners[i - neu->n_smtp_listeners];
		int one = 1, fd, err = 0;

		if (has_addr(cur->smtp_listeners, cur->n_smtp_listeners, a) ||
		    has_addr(cur->smtps_listeners, cur->n_smtps_listeners, a))
			continue;
		if ((fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
			err = errno;
		} else {
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
			if (bind(fd, (const struct sockaddr *)&a->sa, a->salen) < 0)
				err = errno;
			close(fd);
		}
		if (err) {
			snprintf(line, sizeof(line), "%s: cannot listen on %s: %s\n", neu->path, a->text, strerror(err));
			append(errors, line);
			rc = -1;
		}
	}
	return rc;
}

/* Key files must be regular files: a FIFO would block the reload (and the
 * main thread with it, for a SIGHUP) in fopen until a writer came, a
 * device would be read without end. -1 with the reasons in *errors. */
static int key_files_check(const struct config *cfg, char **errors)
{
	char line[600];
	int rc = 0;

	for (size_t i = 0; i < cfg->n_domain_keys; i++) {
		const struct config_domain_key *dk = &cfg->domain_keys[i];
		struct stat st;

		if (stat(dk->path, &st) == 0 && !S_ISREG(st.st_mode)) {
			snprintf(line, sizeof(line), "DKIM: %s: the key for %s is not a regular file\n", dk->path,
				 dk->domain);
			append(errors, line);
			rc = -1;
		}
	}
	return rc;
}

/* The answer goes out once every worker runs on the new generation (its
 * listeners open, its queues rebound), or after 5 s (a worker stuck in a
 * long turn, or stopping: it adopts it later all the same). */
static void wait_adopted(const struct engine *eng, uint64_t generation, char **warnings)
{
	char line[400];

	for (int i = 0; i < 5000; i++) {
		unsigned n = 0;

		for (unsigned k = 0; k < eng->n_workers; k++)
			n += __atomic_load_n(&eng->workers[k].gen_adopted, __ATOMIC_ACQUIRE) >= generation;
		if (n == eng->n_workers)
			break;
		usleep(1000);
	}
	for (unsigned k = 0; k < eng->n_workers; k++) {
		const struct worker *w = &eng->workers[k];

		/* what a worker could not do (a listener without a descriptor):
		 * the answer says so; the next reload tries again */
		if (__atomic_load_n(&w->gen_adopted, __ATOMIC_ACQUIRE) != generation) {
			snprintf(line, sizeof(line), "worker %u has not adopted generation %llu within 5 s; it will\n", k,
				 (unsigned long long)generation);
			append(warnings, line);
		} else if (w->adopt_warn[0]) {
			snprintf(line, sizeof(line), "worker %u: %s (a later reload tries again)\n", k, w->adopt_warn);
			append(warnings, line);
		}
	}
}

static int webhooks_from(struct engine *eng, struct config_gen *g, struct webhooks **out, char *err, size_t cap)
{
	char log_dir[4096], state[4096];

	snprintf(log_dir, sizeof(log_dir), "%s/log", eng->boot->cfg.spool_dir);
	snprintf(state, sizeof(state), "%s/webhooks", eng->boot->cfg.spool_dir);
	return webhooks_start(out, &g->cfg, log_dir, state, err, cap);
}

/* <acct-webhook> changed: the senders stop (each saves its position in the
 * log: nothing is lost, at most the batch in flight is sent again) and
 * start again from the new blocks. If they cannot start (a state file
 * that cannot be opened...), the previous ones go on and a warning says
 * why. Waits for a POST in flight (up to its timeout). */
static void webhooks_restart(struct engine *eng, struct config_gen *next, char **warnings)
{
	const struct config *running = eng->webhooks_gen ? &eng->webhooks_gen->cfg : &eng->boot->cfg;
	struct webhooks *old, *fresh = NULL;
	struct config_gen *from = next;
	char err[512], line[700];

	if (!eng->boot || !reload_webhooks_differ(running, &next->cfg))
		return;
	pthread_mutex_lock(&eng->webhooks_mu);
	old = eng->webhooks;
	eng->webhooks = NULL;
	pthread_mutex_unlock(&eng->webhooks_mu);
	webhooks_stop(old);
	if (webhooks_from(eng, next, &fresh, err, sizeof(err)) < 0) {
		snprintf(line, sizeof(line), "acct-webhook: %s; the previous webhooks go on\n", err);
		append(warnings, line);
		fresh = NULL;
		/* what ran before: the boot generation is salvod's, never freed before us */
		from = eng->webhooks_gen ? eng->webhooks_gen : (struct config_gen *)eng->boot;
		if (webhooks_from(eng, from, &fresh, err, sizeof(err)) < 0) {
			snprintf(line, sizeof(line), "acct-webhook: the previous webhooks cannot start again either: %s; "
				 "none runs until a reload or restart\n", err);
			append(warnings, line);
			fresh = NULL;
		}
	}
	config_gen_ref(from);
	config_gen_put(eng->webhooks_gen);
	eng->webhooks_gen = from;
	pthread_mutex_lock(&eng->webhooks_mu);
	eng->webhooks = fresh;
	pthread_mutex_unlock(&eng->webhooks_mu);
}

static void log_result(const struct engine *eng, const struct reload_result *r)
{
	if (r->ok)
		fprintf(stderr, "salvod: configuration reloaded from %s: generation %llu\n", eng->config_path,
			(unsigned long long)r->generation);
	else
		fprintf(stderr, "salvod: reload of %s refused, generation %llu stays in force:\n%s",
			eng->config_path ? eng->config_path : "(built-in defaults)", (unsigned long long)r->generation,
			r->errors ? r->errors : "(no detail)\n");
	if (r->warnings)
		fprintf(stderr, "%s", r->warnings);
}

void engine_reload(struct engine *eng, struct reload_result *out)
{
	struct config_gen *cur, *next;
	struct config cfg;
	struct config_report rep;
	struct dkim_keys *dkim = NULL;
	char *werr = NULL, *wwarn = NULL, err[512];
	size_t lerr = 0, lwarn = 0;
	FILE *ef, *wf;
	unsigned errors;
	char *text;
	size_t text_len;
	int rc;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&eng->reload_mu);
	cur = engine_config_get(eng);
	out->generation = cur->generation;
	out->loaded_ms = cur->loaded_ms;
	if (!eng->config_path) {
		append(&out->errors, "salvod runs on its built-in defaults (no -c FILE): there is no file to reload\n");
		goto failed;
	}
	if (reload_file_read(eng->config_path, &text, &text_len, err, sizeof(err)) < 0) {
		append(&out->errors, err);
		append(&out->errors, "\n");
		goto failed;
	}
	rc = config_load_string_report(&cfg, eng->config_path, text, &rep);
	free(text);
	if (rc < 0) {
		out->errors = rep.errors;
		out->warnings = rep.warnings;
		if (!out->errors)
			append(&out->errors, "the configuration could not be loaded\n");
		goto failed;
	}
	out->warnings = rep.warnings;
	free(rep.errors);
	ef = open_memstream(&werr, &lerr);
	wf = open_memstream(&wwarn, &lwarn);
	if (!ef || !wf) {
		if (ef)
			fclose(ef);
		if (wf)
			fclose(wf);
		free(werr);
		free(wwarn);
		config_free(&cfg);
		append(&out->errors, "out of memory\n");
		goto failed;
	}
	(void)reload_align_pools(&cur->cfg, &cfg); /* a missing pool: reload_diff says so */
	errors = reload_diff(eng->boot ? &eng->boot->cfg : &cur->cfg, &cur->cfg, &cfg, wf, ef);
	fclose(ef);
	fclose(wf);
	append(&out->warnings, wwarn);
	free(wwarn);
	if (errors) {
		out->errors = werr;
		config_free(&cfg);
		goto failed;
	}
	free(werr);
	if (listeners_check(eng, &cur->cfg, &cfg, &out->errors) < 0) {
		config_free(&cfg);
		goto failed;
	}
	if (key_files_check(&cfg, &out->errors) < 0) {
		config_free(&cfg);
		goto failed;
	}
	if (dkim_keys_load(&cfg, &dkim, err, sizeof(err)) < 0) {
		append(&out->errors, "DKIM: ");
		append(&out->errors, err);
		append(&out->errors, "\n");
		config_free(&cfg);
		goto failed;
	}
	/* HTTP listeners: new addresses open now (one that cannot listen
	 * refuses the reload), removed ones stop accepting */
	if (eng->http && http_server_set_listeners(eng->http, &cfg, err, sizeof(err)) < 0) {
		append(&out->errors, cfg.path ? cfg.path : "config");
		append(&out->errors, ": ");
		append(&out->errors, err);
		append(&out->errors, "\n");
		dkim_keys_free(dkim);
		config_free(&cfg);
		goto failed;
	}
	if (!(next = config_gen_new(&cfg, dkim, cur->generation + 1, wall_now_ms()))) {
		if (eng->http) /* back to the listeners in force */
			(void)http_server_set_listeners(eng->http, &cur->cfg, err, sizeof(err));
		dkim_keys_free(dkim);
		config_free(&cfg);
		append(&out->errors, "out of memory\n");
		goto failed;
	}
	config_gen_ref(next);              /* ours until the workers have it */
	/* http-access and http-api-token: policy, read per request; in force
	 * before the new generation shows in /api/v1/status, so a client that
	 * saw it finds its new token working */
	if (eng->http && http_server_set_access(eng->http, &next->cfg) < 0)
		append(&out->warnings, "out of memory: http-access and http-api-token keep their old values\n");
	config_current_publish(&eng->conf, next);
	post_to_workers(eng, next);
	webhooks_restart(eng, next, &out->warnings);
	wait_adopted(eng, next->generation, &out->warnings);
	out->ok = true;
	out->generation = next->generation;
	out->loaded_ms = next->loaded_ms;
	config_gen_put(next);
	__atomic_add_fetch(&eng->reloads_ok, 1, __ATOMIC_RELAXED);
	goto done;
failed:
	__atomic_add_fetch(&eng->reloads_failed, 1, __ATOMIC_RELAXED);
done:
	config_gen_put(cur);
	log_result(eng, out);
	pthread_mutex_unlock(&eng->reload_mu);
}

/* ---- on the worker ---------------------------------------------------------- */

void worker_config_rebind(struct worker *w, struct mailbox_item *it)
{
	struct config_mail *m = container_of(it, struct config_mail, link);
	struct config_gen *old = w->gen;
	const struct config *cfg = &m->gen->cfg;
	struct sched *s = &w->sched;
	bool short_of_memory = false;

	w->gen = m->gen;
	w->cfg = cfg;
	free(m);
	if (sched_rebind(s, cfg) < 0)
		short_of_memory = true;
	for (size_t b = 0; b < s->n_buckets; b++) {
		for (struct sched_queue *q = s->buckets[b]; q; q = q->hnext) {
			struct egress_queue *eq = q->egress;

			if (eq) {
				if (egress_units_grow(eq, cfg->n_vmtas ? cfg->n_vmtas : 1) < 0)
					short_of_memory = true;
				/* settings through a vmta's nested <domain> are
				 * resolved again under the new generation */
				egress_units_forget_doms(eq);
				/* routes and rollup membership are looked at again
				 * (in the background; sessions keep the old targets) */
				eq->rollup_checked = false;
				if (eq->have_route && !eq->resolving)
					eq->route_expires = 0;
			}
			if (q->n_ready)
				sched_kick(s, q);
		}
	}
	w->adopt_warn[0] = '\0';
	if (w->srv) {
		char err[200];

		if (smtp_server_listen(w->srv, cfg->smtp_listeners, cfg->n_smtp_listeners, cfg->smtps_listeners,
				       cfg->n_smtps_listeners, err, sizeof(err)) < 0)
			snprintf(w->adopt_warn, sizeof(w->adopt_warn), "%s", err);
	}
	if (short_of_memory)
		snprintf(w->adopt_warn, sizeof(w->adopt_warn), "out of memory: queues lack the new virtual MTAs or pools");
	if (w->adopt_warn[0])
		fprintf(stderr, "salvod: worker %u: configuration generation %llu: %s\n", w->index,
			(unsigned long long)w->gen->generation, w->adopt_warn);
	/* last: connections opened under it keep their own references */
	config_gen_put(old);
	__atomic_store_n(&w->gen_adopted, w->gen->generation, __ATOMIC_RELEASE);
}

void worker_config_discard(struct mailbox_item *it)
{
	struct config_mail *m = container_of(it, struct config_mail, link);

	config_gen_put(m->gen);
	free(m);
}
