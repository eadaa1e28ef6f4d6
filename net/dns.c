/*
 * dns.c - MX and address resolution with c-ares on a worker's io_uring loop,
 * and the per-worker route cache (see dns.h).
 *
 * c-ares tells us which sockets it wants watched (sock_state_cb); each gets a
 * struct dns_sock with one oneshot poll in flight, re-armed after
 * ares_process_fd() while c-ares still wants it. A socket c-ares gives up is
 * marked gone and freed once its poll completion (cancelled) has come back,
 * so a reused fd number never confuses two entries. One timer follows
 * ares_timeout().
 *
 * A lookup (one per domain in flight; later requests for the same domain
 * wait on it): MX query -> for each MX host (or the domain itself when there
 * is no MX: implicit MX) an A/AAAA getaddrinfo, all in parallel -> the route,
 * cached for the smallest TTL seen (clamped to [5 s, 1 h]); temporary
 * failures are not cached.
 *
 * Stale-while-error (RFC 8767): a positive answer stays in the cache for
 * DNS_STALE_MAX_MS past its TTL. A request for an expired entry starts a
 * refresh; when that refresh fails temporarily (SERVFAIL, timeout,
 * REFUSED), the waiters get the old answer marked stale and the domain is
 * not asked again before a backoff (dns_stale_retry_ms(): 5 s doubling to
 * 5 min) - requests meanwhile get the stale answer at once. A definite
 * answer (a new MX set, NXDOMAIN, null MX) replaces it at once. Negative
 * answers are never served stale.
 *
 * Invariants: dns_sock entries are freed only in dns_sock_gc(), never while
 * c-ares may be calling back about them; a lookup is freed after its waiters
 * ran; during dns_free() (destroying) no waiter is ever called.
 */
#include "net/dns.h"

#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "net/loop.h"

#define DNS_TTL_MIN_MS 5000u
#define DNS_TTL_MAX_MS 3600000u
#define DNS_NEG_TTL_MS 60000u
#define DNS_RETRY_MIN_MS 5000u
#define DNS_RETRY_MAX_MS 300000u
#define DNS_MAX_HOSTS 16
#define DNS_CACHE_BUCKETS 4096
#define DNS_CACHE_MAX 100000

struct dns_sock {
	struct dns_sock *next;
	struct dns *d;
	int fd;
	bool want_read, want_write;
	bool in_flight, gone;
	struct loop_op op;
};

struct dns_waiter {
	struct dns_waiter *next;
	dns_route_cb cb;
	void *arg;
};

struct dns_host {
	char name[256];
	unsigned pref;
	bool implicit_mx;          /* no MX: the domain itself */
	size_t n_addrs;
	struct sockaddr_storage addrs[DNS_MAX_TARGETS];
	socklen_t lens[DNS_MAX_TARGETS];
	bool tempfail;
};

struct dns_lookup {
	struct dns_lookup *next;
	struct dns *d;
	char *domain;
	struct dns_waiter *waiters;
	size_t n_hosts, pending;
	uint64_t ttl_ms;
	struct dns_host hosts[DNS_MAX_HOSTS];
};

struct dns_cached {
	struct dns_cached *next;
	char *domain;
	uint64_t expires;
	uint64_t stale_until;      /* positive answers: kept for stale-while-error until then */
	uint64_t retry_at;         /* a refresh failed: serve stale, do not ask before then */
	unsigned failures;         /* refreshes failed in a row */
	enum dns_status status;
	size_t n_targets;
	struct dns_target *targets;
};

struct dns {
	struct loop *loop;
	ares_channel ch;
	struct dns_sock *socks;
	struct dns_lookup *lookups[DNS_CACHE_BUCKETS]; /* in flight, by dns_hash(domain):
							  * thousands at once must not make
							  * each new one a list walk */
	struct dns_cached *cache[DNS_CACHE_BUCKETS];
	size_t sweep_bucket;       /* dns_cache_sweep() goes on from here */
	size_t n_cached;
	struct loop_op timer_op;
	bool timer_armed;
	bool destroying;
};

static pthread_once_t ares_once = PTHREAD_ONCE_INIT;
static int ares_init_status;

static void ares_global_init(void)
{
	ares_init_status = ares_library_init(ARES_LIB_INIT_ALL);
}

const char *dns_status_str(enum dns_status s)
{
	switch (s) {
	case DNS_OK: return "ok";
	case DNS_NXDOMAIN: return "domain does not exist";
	case DNS_NO_ADDRESS: return "no MX or address records";
	case DNS_NULL_MX: return "domain accepts no mail (null MX)";
	case DNS_TEMPFAIL: return "temporary DNS failure";
	}
	return "unknown";
}

/* ---- sockets and timer ----------------------------------------------------- */

static void dns_timer_arm(struct dns *d);

static void dns_sock_gc(struct dns *d)
{
	struct dns_sock **pp = &d->socks;

	while (*pp) {
		struct dns_sock *s = *pp;

		if (s->gone && !s->in_flight) {
			*pp = s->next;
			free(s);
		} else {
			pp = &s->next;
		}
	}
}

static void dns_sock_arm(struct dns_sock *s)
{
	unsigned mask = (s->want_read ? POLLIN : 0) | (s->want_write ? POLLOUT : 0);

	if (s->in_flight || s->gone || !mask)
		return;
	s->in_flight = true;
	loop_poll(s->d->loop, &s->op, s->fd, mask);
}

static void dns_sock_done(struct loop_op *op, int res, unsigned flags)
{
	struct dns_sock *s = container_of(op, struct dns_sock, op);
	struct dns *d = s->d;

	s->in_flight = false;
	if (!s->gone && res >= 0) {
		ares_socket_t rfd = (res & (POLLIN | POLLERR | POLLHUP)) ? s->fd : ARES_SOCKET_BAD;
		ares_socket_t wfd = (res & (POLLOUT | POLLERR | POLLHUP)) ? s->fd : ARES_SOCKET_BAD;

		ares_process_fd(d->ch, rfd, wfd);
	}
	if (!s->gone)
		dns_sock_arm(s);
	dns_sock_gc(d);
	dns_timer_arm(d);
}

static void dns_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns *d = data;
	struct dns_sock *s;

	for (s = d->socks; s; s = s->next)
		if (s->fd == fd && !s->gone)
			break;
	if (!readable && !writable) {
		if (s) {
			s->gone = true;
			if (s->in_flight)
				loop_cancel(d->loop, NULL, &s->op);
		}
		return;
	}
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s)
			return; /* the query times out instead */
		s->d = d;
		s->fd = fd;
		loop_op_init(&s->op, dns_sock_done);
		s->next = d->socks;
		d->socks = s;
	}
	s->want_read = readable;
	s->want_write = writable;
	dns_sock_arm(s);
}

static void dns_timer_done(struct loop_op *op, int res, unsigned flags)
{
	struct dns *d = container_of(op, struct dns, timer_op);

	d->timer_armed = false;
	ares_process_fd(d->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	dns_sock_gc(d);
	dns_timer_arm(d);
}

/* Every query in a channel has the same timeout, so an armed timer is never
 * later than a newer query's deadline: arming only when idle is enough. */
static void dns_timer_arm(struct dns *d)
{
	struct timeval tv, *t;

	if (d->timer_armed || d->destroying)
		return;
	t = ares_timeout(d->ch, NULL, &tv);
	if (!t)
		return;
	d->timer_armed = true;
	loop_timeout(d->loop, &d->timer_op, (uint64_t)t->tv_sec * 1000u + (uint64_t)t->tv_usec / 1000u + 1);
}

/* ---- cache ------------------------------------------------------------------ */

static size_t dns_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	while (*s) {
		h ^= (unsigned char)*s++;
		h *= 0x100000001b3ULL;
	}
	return (size_t)(h ^ (h >> 32)) & (DNS_CACHE_BUCKETS - 1);
}

static void dns_cached_free(struct dns_cached *c)
{
	free(c->domain);
	free(c->targets);
	free(c);
}

static void dns_cache_clear(struct dns *d)
{
	for (size_t b = 0; b < DNS_CACHE_BUCKETS; b++) {
		while (d->cache[b]) {
			struct dns_cached *c = d->cache[b];

			d->cache[b] = c->next;
			dns_cached_free(c);
		}
	}
	d->n_cached = 0;
}

enum dns_cache_use dns_cache_use(const struct dns_cache_times *t, uint64_t now)
{
	if (now < t->expires)
		return DNS_USE_FRESH;
	if (!t->positive || now >= t->stale_until)
		return DNS_USE_DROP;
	return now < t->retry_at ? DNS_USE_STALE : DNS_USE_REFRESH;
}

uint64_t dns_stale_retry_ms(unsigned failures)
{
	uint64_t ms = DNS_RETRY_MIN_MS;

	for (unsigned i = 1; i < failures && ms < DNS_RETRY_MAX_MS; i++)
		ms *= 2;
	return ms < DNS_RETRY_MAX_MS ? ms : DNS_RETRY_MAX_MS;
}

static enum dns_cache_use dns_cached_use(const struct dns_cached *c, uint64_t now)
{
	struct dns_cache_times t = {
		.expires = c->expires,
		.stale_until = c->stale_until,
		.retry_at = c->retry_at,
		.positive = c->status == DNS_OK,
	};

	return dns_cache_use(&t, now);
}

/* The entry for domain, fresh or still usable as stale; one past any use
 * is dropped on the way. */
static struct dns_cached *dns_cache_find(struct dns *d, const char *domain)
{
	struct dns_cached **pp = &d->cache[dns_hash(domain)];

	while (*pp) {
		struct dns_cached *c = *pp;

		if (strcmp(c->domain, domain) == 0) {
			if (dns_cached_use(c, loop_now_ms()) != DNS_USE_DROP)
				return c;
			*pp = c->next;
			dns_cached_free(c);
			d->n_cached--;
			return NULL;
		}
		pp = &c->next;
	}
	return NULL;
}

static void dns_cache_remove(struct dns *d, const char *domain)
{
	struct dns_cached **pp = &d->cache[dns_hash(domain)];

	while (*pp) {
		struct dns_cached *c = *pp;

		if (strcmp(c->domain, domain) == 0) {
			*pp = c->next;
			dns_cached_free(c);
			d->n_cached--;
			return;
		}
		pp = &c->next;
	}
}

void dns_cache_sweep(struct dns *d, size_t n_buckets)
{
	uint64_t now = loop_now_ms();

	for (size_t i = 0; i < n_buckets && i < DNS_CACHE_BUCKETS; i++) {
		struct dns_cached **pp = &d->cache[d->sweep_bucket];

		while (*pp) {
			struct dns_cached *c = *pp;

			if (c->stale_until > now) { /* positive answers stay for stale-while-error */
				pp = &c->next;
				continue;
			}
			*pp = c->next;
			dns_cached_free(c);
			d->n_cached--;
		}
		d->sweep_bucket = (d->sweep_bucket + 1) % DNS_CACHE_BUCKETS;
	}
}

static void dns_cache_put(struct dns *d, const char *domain, const struct dns_route *r, uint64_t ttl_ms)
{
	struct dns_cached *c;
	size_t b = dns_hash(domain);

	dns_cache_remove(d, domain); /* a stale one this answer replaces */
	if (d->n_cached >= DNS_CACHE_MAX)
		dns_cache_clear(d); /* crude but bounded; refills at the lookup rate */
	c = calloc(1, sizeof(*c));
	if (!c || !(c->domain = strdup(domain)))
		goto fail;
	if (r->n_targets && !(c->targets = malloc(r->n_targets * sizeof(*c->targets))))
		goto fail;
	if (r->n_targets)
		memcpy(c->targets, r->targets, r->n_targets * sizeof(*c->targets));
	c->n_targets = r->n_targets;
	c->status = r->status;
	c->expires = loop_now_ms() + ttl_ms;
	c->stale_until = r->status == DNS_OK ? c->expires + DNS_STALE_MAX_MS : c->expires;
	c->next = d->cache[b];
	d->cache[b] = c;
	d->n_cached++;
	return;
fail:
	if (c) {
		free(c->domain);
		free(c);
	}
}

static void dns_route_from_cache(const struct dns_cached *c, struct dns_route *r)
{
	uint64_t now = loop_now_ms();

	r->status = c->status;
	r->error = c->status == DNS_OK ? NULL : dns_status_str(c->status);
	r->stale = now >= c->expires;
	r->ttl_ms = r->stale ? (c->retry_at > now ? c->retry_at - now : 0) : c->expires - now;
	r->n_targets = c->n_targets;
	if (c->n_targets)
		memcpy(r->targets, c->targets, c->n_targets * sizeof(r->targets[0]));
}

/* ---- TTLs from the raw MX answer --------------------------------------------- */

/* Skip a (possibly compressed) name at off; returns the offset after it or -1. */
static long dns_skip_name(const unsigned char *p, size_t len, size_t off)
{
	for (unsigned hops = 0; off < len && hops < 128; hops++) {
		unsigned char c = p[off];

		if (c == 0)
			return (long)off + 1;
		if ((c & 0xc0) == 0xc0)
			return off + 2 <= len ? (long)off + 2 : -1;
		if (c & 0xc0)
			return -1;
		off += 1u + c;
	}
	return -1;
}

/* Smallest TTL (seconds) of the answer section, or -1 when malformed/empty. */
long dns_answer_min_ttl(const unsigned char *p, size_t len)
{
	size_t off = 12;
	unsigned qd, an;
	long min = -1;

	if (len < 12)
		return -1;
	qd = (unsigned)(p[4] << 8 | p[5]);
	an = (unsigned)(p[6] << 8 | p[7]);
	for (unsigned i = 0; i < qd; i++) {
		long o = dns_skip_name(p, len, off);

		if (o < 0 || (size_t)o + 4 > len)
			return -1;
		off = (size_t)o + 4;
	}
	for (unsigned i = 0; i < an; i++) {
		long o = dns_skip_name(p, len, off);
		uint32_t ttl;
		unsigned rdlen;

		if (o < 0 || (size_t)o + 10 > len)
			return -1;
		off = (size_t)o;
		ttl = (uint32_t)p[off + 4] << 24 | (uint32_t)p[off + 5] << 16 | (uint32_t)p[off + 6] << 8 | p[off + 7];
		rdlen = (unsigned)(p[off + 8] << 8 | p[off + 9]);
		if (off + 10 + rdlen > len)
			return -1;
		if (ttl < 0x80000000u && (min < 0 || (long)ttl < min))
			min = (long)ttl;
		off += 10 + rdlen;
	}
	return min;
}

/* ---- lookups ------------------------------------------------------------------ */

static void lookup_free(struct dns_lookup *lk)
{
	struct dns_lookup **pp = &lk->d->lookups[dns_hash(lk->domain)];

	while (*pp && *pp != lk)
		pp = &(*pp)->next;
	if (*pp)
		*pp = lk->next;
	while (lk->waiters) {
		struct dns_waiter *w = lk->waiters;

		lk->waiters = w->next;
		free(w);
	}
	free(lk->domain);
	free(lk);
}

static void lookup_finish(struct dns_lookup *lk, struct dns_route *r)
{
	struct dns *d = lk->d;
	struct dns_waiter *w;
	struct dns_cached *c;

	if (r->status != DNS_TEMPFAIL) {
		uint64_t ttl = r->status == DNS_OK ? lk->ttl_ms : DNS_NEG_TTL_MS;

		if (ttl < DNS_TTL_MIN_MS)
			ttl = DNS_TTL_MIN_MS;
		if (ttl > DNS_TTL_MAX_MS)
			ttl = DNS_TTL_MAX_MS;
		dns_cache_put(d, lk->domain, r, ttl);
		r->ttl_ms = ttl;
	} else if ((c = dns_cache_find(d, lk->domain)) && c->status == DNS_OK) {
		/* Stale-while-error: the last good answer, and back off. */
		const char *why = r->error ? r->error : dns_status_str(r->status);

		c->failures++;
		c->retry_at = loop_now_ms() + dns_stale_retry_ms(c->failures);
		if (c->failures == 1)
			fprintf(stderr, "salvod: DNS: refreshing %s failed (%.100s); using its last answer for up to %u min past its TTL, retrying with backoff\n",
				lk->domain, why, (unsigned)(DNS_STALE_MAX_MS / 60000u));
		dns_route_from_cache(c, r);
	}
	/* Unlink first: a waiter may ask again for this domain from its callback. */
	w = lk->waiters;
	lk->waiters = NULL;
	lookup_free(lk);
	while (w) {
		struct dns_waiter *next = w->next;

		w->cb(w->arg, r);
		free(w);
		w = next;
	}
}

static void lookup_fail(struct dns_lookup *lk, enum dns_status st, const char *why)
{
	struct dns_route *r = calloc(1, sizeof(*r));

	if (!r) {
		lookup_free(lk); /* waiters are dropped; their queues retry on the next kick */
		return;
	}
	r->status = st;
	r->error = why ? why : dns_status_str(st);
	lookup_finish(lk, r);
	free(r);
}

static void lookup_ttl(struct dns_lookup *lk, long ttl_s)
{
	uint64_t ms = ttl_s < 0 ? DNS_TTL_MAX_MS : (uint64_t)ttl_s * 1000u;

	if (ms < lk->ttl_ms)
		lk->ttl_ms = ms;
}

static void lookup_build(struct dns_lookup *lk)
{
	struct dns_route *r = calloc(1, sizeof(*r));
	bool tempfail = false;

	if (!r) {
		lookup_free(lk);
		return;
	}
	for (size_t h = 0; h < lk->n_hosts; h++) {
		struct dns_host *host = &lk->hosts[h];

		tempfail |= host->tempfail;
		for (size_t a = 0; a < host->n_addrs && r->n_targets < DNS_MAX_TARGETS; a++) {
			struct dns_target *t = &r->targets[r->n_targets++];

			memcpy(&t->addr, &host->addrs[a], host->lens[a]);
			t->addrlen = host->lens[a];
			snprintf(t->host, sizeof(t->host), "%s", host->name);
			t->pref = host->pref;
			t->implicit_mx = host->implicit_mx;
		}
	}
	r->status = r->n_targets ? DNS_OK : tempfail ? DNS_TEMPFAIL : DNS_NO_ADDRESS;
	r->error = r->n_targets ? NULL : tempfail ? "MX host lookup failed" : "no address for any MX host";
	lookup_finish(lk, r);
	free(r);
}

struct host_ctx {
	struct dns_lookup *lk;
	size_t idx;
};

static void host_add(struct dns_host *host, const struct sockaddr *sa, socklen_t len)
{
	if (host->n_addrs >= DNS_MAX_TARGETS)
		return;
	memcpy(&host->addrs[host->n_addrs], sa, len);
	host->lens[host->n_addrs++] = len;
}

static void addr_cb(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
	struct host_ctx *hc = arg;
	struct dns_lookup *lk = hc->lk;
	struct dns_host *host = &lk->hosts[hc->idx];

	free(hc);
	if (lk->d->destroying) {
		if (res)
			ares_freeaddrinfo(res);
		if (--lk->pending == 0)
			lookup_free(lk);
		return;
	}
	if (status == ARES_SUCCESS && res) {
		/* IPv4 first, then IPv6: most receivers still prefer v4 for bulk mail. */
		for (int pass = 0; pass < 2; pass++)
			for (struct ares_addrinfo_node *n = res->nodes; n; n = n->ai_next) {
				if (n->ai_family != (pass == 0 ? AF_INET : AF_INET6))
					continue;
				host_add(host, n->ai_addr, n->ai_addrlen);
				lookup_ttl(lk, n->ai_ttl);
			}
	} else if (status != ARES_ENOTFOUND && status != ARES_ENODATA) {
		host->tempfail = true;
	}
	if (res)
		ares_freeaddrinfo(res);
	if (--lk->pending == 0)
		lookup_build(lk);
}

static int mx_cmp(const void *a, const void *b)
{
	const struct dns_host *x = a, *y = b;

	return x->pref < y->pref ? -1 : x->pref > y->pref;
}

static void lookup_hosts(struct dns_lookup *lk)
{
	struct ares_addrinfo_hints hints = {.ai_family = AF_UNSPEC, .ai_flags = ARES_AI_NOSORT};
	size_t n = lk->n_hosts;

	/* RFC 5321 5.1: equal preferences in random order. */
	qsort(lk->hosts, n, sizeof(lk->hosts[0]), mx_cmp);
	for (size_t i = 0; i + 1 < n; i++) {
		size_t j = i;

		while (j + 1 < n && lk->hosts[j + 1].pref == lk->hosts[i].pref)
			j++;
		for (size_t k = j; k > i; k--) {
			size_t r = i + (size_t)rand() % (k - i + 1);
			struct dns_host tmp = lk->hosts[k];

			lk->hosts[k] = lk->hosts[r];
			lk->hosts[r] = tmp;
		}
		i = j;
	}
	lk->pending = n;
	for (size_t i = 0; i < n; i++) {
		struct host_ctx *hc = malloc(sizeof(*hc));

		if (!hc) {
			lk->hosts[i].tempfail = true;
			if (--lk->pending == 0)
				lookup_build(lk);
			continue;
		}
		hc->lk = lk;
		hc->idx = i;
		ares_getaddrinfo(lk->d->ch, lk->hosts[i].name, NULL, &hints, addr_cb, hc);
	}
}

static void mx_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_lookup *lk = arg;
	struct ares_mx_reply *mx = NULL;

	if (lk->d->destroying) {
		lookup_free(lk);
		return;
	}
	if (status == ARES_SUCCESS)
		status = ares_parse_mx_reply(abuf, alen, &mx);
	if (status == ARES_ENODATA || (status == ARES_SUCCESS && !mx)) {
		/* No MX: the domain itself is the mail host (RFC 5321 5.1). */
		lk->n_hosts = 1;
		lk->hosts[0].implicit_mx = true;
		snprintf(lk->hosts[0].name, sizeof(lk->hosts[0].name), "%s", lk->domain);
		lookup_hosts(lk);
		return;
	}
	if (status == ARES_ENOTFOUND) {
		lookup_fail(lk, DNS_NXDOMAIN, NULL);
		return;
	}
	if (status != ARES_SUCCESS) {
		lookup_fail(lk, DNS_TEMPFAIL, ares_strerror(status));
		return;
	}
	lookup_ttl(lk, dns_answer_min_ttl(abuf, (size_t)alen));
	if (!mx->next && (mx->host[0] == 0 || strcmp(mx->host, ".") == 0)) {
		ares_free_data(mx);
		lookup_fail(lk, DNS_NULL_MX, NULL);
		return;
	}
	for (struct ares_mx_reply *m = mx; m && lk->n_hosts < DNS_MAX_HOSTS; m = m->next) {
		if (m->host[0] == 0 || strcmp(m->host, ".") == 0)
			continue; /* a null MX mixed with real ones: ignore it */
		snprintf(lk->hosts[lk->n_hosts].name, sizeof(lk->hosts[0].name), "%s", m->host);
		lk->hosts[lk->n_hosts++].pref = m->priority;
	}
	ares_free_data(mx);
	if (!lk->n_hosts) {
		lookup_fail(lk, DNS_NO_ADDRESS, NULL);
		return;
	}
	lookup_hosts(lk);
}

/* The cache key: lower case, cut to 255 bytes. */
static void dns_name_lower(const char *domain, char name[256])
{
	size_t n = strlen(domain);

	if (n > 255)
		n = 255;
	for (size_t i = 0; i < n; i++)
		name[i] = (domain[i] >= 'A' && domain[i] <= 'Z') ? (char)(domain[i] - 'A' + 'a') : domain[i];
	name[n] = 0;
}

void dns_route_invalidate(struct dns *d, const char *domain)
{
	char name[256];
	struct dns_cached *c;

	dns_name_lower(domain, name);
	if ((c = dns_cache_find(d, name))) {
		c->expires = 0;
		c->retry_at = 0;
		if (c->status != DNS_OK)
			dns_cache_remove(d, name);
	}
}

void dns_resolve_route(struct dns *d, const char *domain, dns_route_cb cb, void *arg)
{
	char name[256];
	struct dns_cached *c;
	struct dns_lookup *lk;
	struct dns_waiter *w;

	dns_name_lower(domain, name);

	if ((c = dns_cache_find(d, name)) && dns_cached_use(c, loop_now_ms()) != DNS_USE_REFRESH) {
		struct dns_route *r = malloc(sizeof(*r));

		if (r) {
			dns_route_from_cache(c, r);
			cb(arg, r);
			free(r);
			return;
		}
	}
	w = calloc(1, sizeof(*w));
	if (!w)
		goto oom;
	w->cb = cb;
	w->arg = arg;
	for (lk = d->lookups[dns_hash(name)]; lk; lk = lk->next) {
		if (strcmp(lk->domain, name) == 0) {
			w->next = lk->waiters;
			lk->waiters = w;
			return;
		}
	}
	lk = calloc(1, sizeof(*lk));
	if (!lk || !(lk->domain = strdup(name))) {
		free(lk);
		free(w);
		goto oom;
	}
	lk->d = d;
	lk->waiters = w;
	lk->ttl_ms = DNS_TTL_MAX_MS;
	lk->next = d->lookups[dns_hash(name)];
	d->lookups[dns_hash(name)] = lk;
	ares_query(d->ch, name, C_IN, T_MX, mx_cb, lk);
	dns_timer_arm(d);
	return;
oom: {
	struct dns_route r = {.status = DNS_TEMPFAIL, .error = "out of memory"};
	cb(arg, &r);
}
}

/* "a:53,[b]:5353,..." for c-ares: the servers in order. */
static int servers_csv(const struct config_addr *servers, size_t n, char *csv, size_t cap)
{
	size_t len = 0;

	csv[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		char host[64];
		uint16_t port;
		int w;

		if (servers[i].sa.ss_family == AF_INET6) {
			const struct sockaddr_in6 *s6 = (const void *)&servers[i].sa;
			inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
			port = ntohs(s6->sin6_port);
			w = snprintf(csv + len, cap - len, "%s[%s]:%u", i ? "," : "", host, port ? port : 53);
		} else {
			const struct sockaddr_in *s4 = (const void *)&servers[i].sa;
			inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
			port = ntohs(s4->sin_port);
			w = snprintf(csv + len, cap - len, "%s%s:%u", i ? "," : "", host, port ? port : 53);
		}
		if (w < 0 || (size_t)w >= cap - len)
			return -EINVAL;
		len += (size_t)w;
	}
	return 0;
}

int dns_init_servers(struct dns **out, struct loop *l, const struct config_addr *servers, size_t n)
{
	struct ares_options opts;
	struct dns *d;
	int ret;

	pthread_once(&ares_once, ares_global_init);
	if (ares_init_status != ARES_SUCCESS)
		return -ENOMEM;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->loop = l;
	loop_op_init(&d->timer_op, dns_timer_done);
	memset(&opts, 0, sizeof(opts));
	opts.sock_state_cb = dns_sock_state;
	opts.sock_state_cb_data = d;
	opts.timeout = 2000;
	opts.tries = 2;
	ret = ares_init_options(&d->ch, &opts, ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
	if (ret != ARES_SUCCESS) {
		free(d);
		return ret == ARES_ENOMEM ? -ENOMEM : -EINVAL;
	}
	if (n) {
		char csv[1024];

		if (servers_csv(servers, n, csv, sizeof(csv)) < 0 ||
		    ares_set_servers_ports_csv(d->ch, csv) != ARES_SUCCESS) {
			ares_destroy(d->ch);
			free(d);
			return -EINVAL;
		}
	}
	*out = d;
	return 0;
}

int dns_init(struct dns **out, struct loop *l, const struct config_addr *server)
{
	return dns_init_servers(out, l, server, server ? 1 : 0);
}

void dns_free(struct dns *d)
{
	if (!d)
		return;
	d->destroying = true;
	ares_destroy(d->ch); /* pending callbacks run now with destroying set */
	for (size_t b = 0; b < DNS_CACHE_BUCKETS; b++)
		while (d->lookups[b])
			lookup_free(d->lookups[b]);
	while (d->socks) {
		struct dns_sock *s = d->socks;

		d->socks = s->next;
		free(s);
	}
	dns_cache_clear(d);
	free(d);
}
