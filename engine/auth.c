/*
 * auth.c - SMTP AUTH account checks, the failed-attempt throttle and the
 * checker thread (see auth.h).
 */
#include "engine/auth.h"
#include "engine/config_gen.h"

#include <crypt.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "net/loop.h"

static bool same(const char *a, const char *b)
{
	size_t n = strlen(a), m = strlen(b);
	unsigned char d = n != m;

	for (size_t i = 0; i < n; i++)
		d |= (unsigned char)a[i] ^ (unsigned char)(i < m ? b[i] : 0);
	return d == 0;
}

static bool password_ok(const char *stored, const char *given)
{
	struct crypt_data *cd;
	const char *h;
	bool ok;

	if (stored[0] != '$')
		return same(stored, given);
	/* struct crypt_data is tens of KiB: not for a thread's stack */
	if (!(cd = calloc(1, sizeof(*cd))))
		return false;
	/* crypt_rn: libxcrypt's own, not intercepted by ASan (whose crypt_r hook
	 * assumes glibc's smaller struct crypt_data) */
	h = crypt_rn(given, stored, cd, (int)sizeof(*cd));
	ok = h && h[0] != '*' && same(stored, h);
	free(cd);
	return ok;
}

/* A hash of a random password with the setting (algorithm and cost) of the
 * first crypt(3) account, so an unknown name costs what a known one does. */
static char *dummy_hash_for(const struct config *cfg)
{
	struct crypt_data *cd;
	char *out = NULL;
	const char *h;

	for (size_t i = 0; i < cfg->n_smtp_users; i++) {
		const char *stored = cfg->smtp_users[i].password;

		if (stored[0] != '$')
			continue;
		if (!(cd = calloc(1, sizeof(*cd))))
			return NULL;
		h = crypt_rn("salvo-no-such-user", stored, cd, (int)sizeof(*cd));
		if (h && h[0] != '*')
			out = strdup(h);
		free(cd);
		return out;
	}
	return NULL;
}

/* The failure window for client: its <source>'s smtp-max-auth-failure-rate,
 * else the built-in one. */
static struct addr_window *failure_window(struct auth_service *a, const struct config *cfg,
					  const struct sockaddr *client)
{
	const struct config_source *src = config_source_for(cfg, client);
	struct addr_window *w = &a->failures;
	const struct config_rate *r;

	if (!src || !src->auth_failure_rate.count)
		return w;
	r = &src->auth_failure_rate;
	pthread_mutex_lock(&a->mu);
	for (size_t i = 0; i < a->n_rated; i++)
		if (a->rated[i].count == r->count && a->rated[i].per_ms == r->per_ms)
			w = &a->rated[i].w;
	if (w == &a->failures && a->n_rated < AUTH_RATED_MAX &&
	    addr_window_init(&a->rated[a->n_rated].w, (unsigned)r->count, r->per_ms) == 0) {
		a->rated[a->n_rated].count = r->count;
		a->rated[a->n_rated].per_ms = r->per_ms;
		w = &a->rated[a->n_rated++].w;
	}
	pthread_mutex_unlock(&a->mu);
	return w;
}

int auth_verify(struct auth_service *a, const struct sockaddr *client, const char *user, const char *pass)
{
	struct config_gen *g;
	const struct config *cfg;
	struct addr_window *fw;
	const char *stored = NULL;
	bool ok;

	g = a->live ? config_current_get(a->live) : NULL;
	cfg = g ? &g->cfg : a->cfg;
	/* counted first, given back on success: see auth.h */
	fw = failure_window(a, cfg, client);
	if (!addr_window_take(fw, client, loop_now_ms())) {
		config_gen_put(g);
		return 2;
	}
	for (size_t i = 0; i < cfg->n_smtp_users; i++)
		if (!strcmp(cfg->smtp_users[i].name, user))
			stored = cfg->smtp_users[i].password;
	if (stored) {
		ok = password_ok(stored, pass);
	} else {
		(void)password_ok(a->dummy_hash ? a->dummy_hash : "salvo-no-such-user", pass);
		ok = false;
	}
	config_gen_put(g);
	if (!ok)
		return 1;
	addr_window_give(fw, client);
	return 0;
}

static void *auth_main(void *arg)
{
	struct auth_service *a = arg;

	pthread_mutex_lock(&a->mu);
	for (;;) {
		struct auth_job *j;

		while (!a->head && !a->stop)
			pthread_cond_wait(&a->cv, &a->mu);
		if (a->stop)
			break;
		j = a->head;
		a->head = j->next;
		if (!a->head)
			a->tail = NULL;
		pthread_mutex_unlock(&a->mu);
		j->result = auth_verify(a, (const struct sockaddr *)&j->peer, j->user, j->pass);
		explicit_bzero(j->pass, sizeof(j->pass));
		a->done(j);
		pthread_mutex_lock(&a->mu);
	}
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

int auth_service_start(struct auth_service *a, const struct config *cfg, void (*done)(struct auth_job *job))
{
	int ret;

	memset(a, 0, sizeof(*a));
	a->cfg = cfg;
	a->done = done;
	if ((ret = addr_window_init(&a->failures, AUTH_MAX_FAILURES, AUTH_WINDOW_S * 1000ULL)) < 0)
		return ret;
	a->dummy_hash = dummy_hash_for(cfg);
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->cv, NULL);
	if (!done)
		return 0; /* synchronous use only (tests) */
	if ((ret = -pthread_create(&a->thread, NULL, auth_main, a)) < 0) {
		auth_service_stop(a);
		return ret;
	}
	pthread_setname_np(a->thread, "salvo-auth"); /* tests and operators find it by name */
	a->running = true;
	return 0;
}

void auth_service_submit(struct auth_service *a, struct auth_job *job)
{
	job->next = NULL;
	pthread_mutex_lock(&a->mu);
	if (a->tail)
		a->tail->next = job;
	else
		a->head = job;
	a->tail = job;
	pthread_cond_signal(&a->cv);
	pthread_mutex_unlock(&a->mu);
}

void auth_service_stop(struct auth_service *a)
{
	if (!a->failures.slots)
		return;
	if (a->running) {
		pthread_mutex_lock(&a->mu);
		a->stop = true;
		pthread_cond_signal(&a->cv);
		pthread_mutex_unlock(&a->mu);
		pthread_join(a->thread, NULL);
		a->running = false;
	}
	while (a->head) {
		struct auth_job *j = a->head;

		a->head = j->next;
		explicit_bzero(j->pass, sizeof(j->pass));
		free(j);
	}
	a->tail = NULL;
	free(a->dummy_hash);
	a->dummy_hash = NULL;
	addr_window_fini(&a->failures);
	for (size_t i = 0; i < a->n_rated; i++)
		addr_window_fini(&a->rated[i].w);
	a->n_rated = 0;
	pthread_mutex_destroy(&a->mu);
	pthread_cond_destroy(&a->cv);
}
