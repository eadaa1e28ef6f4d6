/*
 * dns.h - asynchronous MX and address resolution for delivery (c-ares driven
 * from a worker's io_uring loop), with a TTL cache.
 *
 * dns_resolve_route() turns a destination domain into an ordered list of
 * delivery targets: MX hosts by preference (RFC 5321 5.1; equal preferences
 * in random order), each host expanded to its IPv4 then IPv6 addresses; no MX
 * record -> the domain's own A/AAAA (implicit MX); a null MX (RFC 7505:
 * one MX "." preference 0) -> DNS_NULL_MX. Answers (positive and negative)
 * are cached for their TTL (clamped to [5 s, 1 h]); temporary failures are
 * not cached. Concurrent requests for the same domain share one lookup.
 *
 * Stale-while-error: when the refresh of an expired positive answer fails
 * temporarily, the last answer is served (route->stale) for up to
 * DNS_STALE_MAX_MS past its TTL, and the domain is asked again only after a
 * backoff (5 s doubling to 5 min); a definite new answer replaces it.
 *
 * Threading: a struct dns belongs to one loop/thread. Callbacks run on that
 * thread, either later from the loop or immediately (cache hit) from inside
 * dns_resolve_route(). The struct dns_route passed to a callback is valid only
 * during the callback: copy what you need.
 *
 * Teardown: dns_free() drops pending requests WITHOUT calling their callbacks.
 */
#ifndef SALVO_DNS_H
#define SALVO_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct loop;
struct config_addr;
struct dns;

enum dns_status {
	DNS_OK = 0,          /* n_targets >= 1 */
	DNS_NXDOMAIN,        /* domain does not exist: permanent (bounce 5.1.2) */
	DNS_NO_ADDRESS,      /* domain exists but no MX and no A/AAAA, or MX hosts without addresses: permanent */
	DNS_NULL_MX,         /* RFC 7505: domain accepts no mail: permanent (bounce 5.1.10) */
	DNS_TEMPFAIL,        /* SERVFAIL, timeout, refused...: defer */
};

#define DNS_MAX_TARGETS 32

struct dns_target {
	struct sockaddr_storage addr;  /* port set to 0: the caller sets the port */
	socklen_t addrlen;
	char host[256];                /* MX host name (or the domain for implicit MX) */
	unsigned pref;                 /* MX preference (0 for implicit MX) */
	bool implicit_mx;              /* the domain has no MX: this is its own A/AAAA */
};

/* How long past its TTL a positive answer may be served while refreshes fail. */
#define DNS_STALE_MAX_MS 3600000u

struct dns_route {
	enum dns_status status;
	const char *error;             /* short human text for logs when status != DNS_OK */
	bool stale;                    /* a past answer: the refresh failed (see above) */
	uint64_t ttl_ms;               /* good for this long (stale: until the next retry); 0 = do not keep */
	size_t n_targets;
	struct dns_target targets[DNS_MAX_TARGETS];
};

typedef void (*dns_route_cb)(void *arg, const struct dns_route *route);

/* server == NULL: use the system resolver configuration (/etc/resolv.conf). */
int dns_init(struct dns **out, struct loop *l, const struct config_addr *server);
/* Several servers (PowerMTA's repeated `name-server`): asked in order, the
 * next when one fails or times out. n == 0: the system resolver. */
int dns_init_servers(struct dns **out, struct loop *l, const struct config_addr *servers, size_t n);
void dns_free(struct dns *d);
void dns_resolve_route(struct dns *d, const char *domain, dns_route_cb cb, void *arg);
/* The next request for domain asks DNS again (a positive answer stays
 * available as stale should that fail). */
void dns_route_invalidate(struct dns *d, const char *domain);
/* Drop expired cache entries in the next n_buckets buckets (of 4096): an
 * answer nobody asks for again (the long tail of domains) would otherwise
 * stay until the cache fills. On the loop's thread. */
void dns_cache_sweep(struct dns *d, size_t n_buckets);
const char *dns_status_str(enum dns_status s);

/* Smallest TTL (seconds) in the answer section of a raw DNS response, or -1
 * when it has no answers or is malformed. Pure; exported for tests. */
long dns_answer_min_ttl(const unsigned char *p, size_t len);

/* The cache's decision for one entry at now (loop clock): pure, for tests. */
enum dns_cache_use {
	DNS_USE_FRESH,    /* within its TTL: answer from the cache */
	DNS_USE_STALE,    /* positive, expired, a refresh failed and the retry is not due: serve stale */
	DNS_USE_REFRESH,  /* positive, expired, within the stale window: ask DNS, keep it as fallback */
	DNS_USE_DROP,     /* past any use: forget it and ask DNS */
};
struct dns_cache_times {
	uint64_t expires, stale_until, retry_at;
	bool positive;
};
enum dns_cache_use dns_cache_use(const struct dns_cache_times *t, uint64_t now);
/* Delay before asking again after `failures` failed refreshes in a row (>= 1). */
uint64_t dns_stale_retry_ms(unsigned failures);

#endif
