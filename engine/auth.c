/*
 * auth.c - SMTP AUTH account checks and the failed-attempt throttle (see
 * auth.h).
 */
#include "engine/auth.h"

#include <crypt.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/config.h"

#define SLOTS 1024

struct auth_slot {
	uint8_t addr[16];
	time_t since;
	unsigned failures;
};

int auth_failures_init(struct auth_failures *f)
{
	memset(f, 0, sizeof(*f));
	if (!(f->slots = calloc(SLOTS, sizeof(*f->slots))))
		return -1;
	f->n = SLOTS;
	pthread_mutex_init(&f->mu, NULL);
	return 0;
}

void auth_failures_fini(struct auth_failures *f)
{
	if (!f->slots)
		return;
	free(f->slots);
	f->slots = NULL;
	pthread_mutex_destroy(&f->mu);
}

static void key_of(const struct sockaddr *sa, uint8_t k[16])
{
	memset(k, 0, 16);
	if (sa && sa->sa_family == AF_INET6)
		memcpy(k, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
	else if (sa && sa->sa_family == AF_INET)
		memcpy(k + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
}

/* The slot for k: its own, else a free or expired one (or the oldest). */
static struct auth_slot *slot_for(struct auth_failures *f, const uint8_t k[16], time_t now)
{
	uint32_t h = 2166136261u;
	struct auth_slot *best = NULL;

	for (int i = 0; i < 16; i++)
		h = (h ^ k[i]) * 16777619u;
	for (size_t i = 0; i < 8; i++) {
		struct auth_slot *s = &f->slots[(h + i) % f->n];

		if (!memcmp(s->addr, k, 16) && s->failures)
			return s;
		if (!best || !s->failures || now - s->since > AUTH_WINDOW_S || s->since < best->since)
			best = s;
	}
	memcpy(best->addr, k, 16);
	best->failures = 0;
	best->since = now;
	return best;
}

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
	/* struct crypt_data is tens of KiB: not for a worker thread's stack */
	if (!(cd = calloc(1, sizeof(*cd))))
		return false;
	/* crypt_rn: libxcrypt's own, not intercepted by ASan (whose crypt_r hook
	 * assumes glibc's smaller struct crypt_data) */
	h = crypt_rn(given, stored, cd, (int)sizeof(*cd));
	ok = h && h[0] != '*' && same(stored, h);
	free(cd);
	return ok;
}

int auth_check(const struct config *cfg, struct auth_failures *f, const struct sockaddr *client,
	       const char *user, const char *pass)
{
	time_t now = time(NULL);
	uint8_t k[16];
	struct auth_slot *s;
	bool ok = false;

	key_of(client, k);
	pthread_mutex_lock(&f->mu);
	s = slot_for(f, k, now);
	if (s->failures && now - s->since > AUTH_WINDOW_S)
		s->failures = 0;
	if (s->failures >= AUTH_MAX_FAILURES) {
		pthread_mutex_unlock(&f->mu);
		return 2;
	}
	pthread_mutex_unlock(&f->mu);
	for (size_t i = 0; i < cfg->n_smtp_users && !ok; i++)
		if (!strcmp(cfg->smtp_users[i].name, user))
			ok = password_ok(cfg->smtp_users[i].password, pass);
	if (ok)
		return 0;
	pthread_mutex_lock(&f->mu);
	s = slot_for(f, k, now);
	if (!s->failures)
		s->since = now;
	s->failures++;
	pthread_mutex_unlock(&f->mu);
	return 1;
}
