/*
 * config_gen.c - reference-counted configuration generations (config_gen.h).
 */
#include "engine/config_gen.h"

#include <stdlib.h>
#include <string.h>

#include "engine/dkim.h"

struct config_gen *config_gen_new(struct config *cfg, struct dkim_keys *dkim, uint64_t generation, int64_t loaded_ms)
{
	struct config_gen *g = calloc(1, sizeof(*g));

	if (!g)
		return NULL;
	g->cfg = *cfg;
	memset(cfg, 0, sizeof(*cfg));
	g->dkim = dkim;
	g->generation = generation;
	g->loaded_ms = loaded_ms;
	g->refs = 1;
	return g;
}

struct config_gen *config_gen_borrow(const struct config *cfg, uint64_t generation, int64_t loaded_ms)
{
	struct config_gen *g = calloc(1, sizeof(*g));

	if (!g)
		return NULL;
	g->cfg = *cfg;
	g->borrowed = true;
	g->generation = generation;
	g->loaded_ms = loaded_ms;
	g->refs = 1;
	return g;
}

void config_gen_ref(struct config_gen *g)
{
	__atomic_add_fetch(&g->refs, 1, __ATOMIC_RELAXED);
}

void config_gen_put(struct config_gen *g)
{
	if (!g || __atomic_sub_fetch(&g->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	dkim_keys_free(g->dkim);
	if (!g->borrowed)
		config_free(&g->cfg);
	free(g);
}

int config_current_init(struct config_current *c)
{
	c->gen = NULL;
	return -pthread_mutex_init(&c->mu, NULL);
}

void config_current_publish(struct config_current *c, struct config_gen *g)
{
	struct config_gen *old;

	pthread_mutex_lock(&c->mu);
	old = c->gen;
	c->gen = g;
	pthread_mutex_unlock(&c->mu);
	config_gen_put(old);
}

struct config_gen *config_current_get(struct config_current *c)
{
	struct config_gen *g;

	pthread_mutex_lock(&c->mu);
	g = c->gen;
	if (g)
		config_gen_ref(g);
	pthread_mutex_unlock(&c->mu);
	return g;
}

void config_current_fini(struct config_current *c)
{
	config_current_publish(c, NULL);
	pthread_mutex_destroy(&c->mu);
}
