/*
 * trace.c - SMTP transcripts: the transcript file and live subscribers
 * (see trace.h), the sink behind net/smtp_trace.h.
 *
 * Locks: tr->mu guards the subscriber list (taken by workers only for
 * sessions being traced, and by the trace thread and HTTP threads);
 * sub->mu guards one subscriber's buffer; tr->fmu the file buffer and the
 * thread's sleep. Order: tr->mu, then sub->mu, then (inside wake) the HTTP
 * stream's own mutex. No lock is held across I/O but the file write's own
 * buffer swap.
 */
#include "engine/trace.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "net/smtp_trace.h"

_Static_assert((unsigned)CONFIG_LOG_CONNECTIONS == (unsigned)SMTP_TRACE_CONN &&
	       (unsigned)CONFIG_LOG_COMMANDS == (unsigned)SMTP_TRACE_CMDS &&
	       (unsigned)CONFIG_LOG_DATA == (unsigned)SMTP_TRACE_DATA && (unsigned)CONFIG_LOG_TLS == (unsigned)SMTP_TRACE_TLS,
	       "<source> log flags are the session's trace flags");

#define SUB_BUF (256 * 1024)       /* a live reader's backlog */
#define FILE_BUF (1024 * 1024)     /* the file's backlog between writes */
#define TICK_MS 100                /* live readers are woken this often at most */
#define KEEPALIVE_MS 2000          /* an idle stream sends "\n" this often */
#define LINE_MAX_OUT (4 * 1024 + 512)

/* A bounded byte ring. */
struct ring {
	char *data;
	size_t cap, head, len;
	uint64_t dropped;          /* lines refused since the last marker */
};

struct trace_sub {
	struct trace *tr;
	struct trace_sub *prev, *next;
	struct trace_filter f;
	pthread_mutex_t mu;
	struct ring buf;
	int64_t end_ms;            /* monotonic */
	int64_t last_out_ms;
	bool waiting;              /* the reader found nothing and waits for wake() */
	bool ended;
	void (*wake)(void *arg);
	void *wake_arg;
};

struct trace {
	pthread_mutex_t mu;
	struct trace_sub *subs;
	unsigned n_subs;           /* atomic reads */
	bool closing;              /* trace_end_streams(): new subscribers end at once */
	uint64_t dropped;          /* atomic */
	uint64_t next_id;          /* atomic */

	pthread_mutex_t fmu;
	pthread_cond_t cv;
	char *fbuf;                /* lines for the file */
	size_t flen;
	uint64_t fdropped;
	bool stop;
	pthread_t thread;
	char *path;
	int fd;
	bool open_failed;
};

/* Per session, made at its first line. */
struct trace_sess {
	uint64_t id;
	bool named;
	struct sockaddr_storage peer;
	char peer_text[72], local_text[72];
};

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- rings ------------------------------------------------------------------- */

static void ring_put(struct ring *r, const char *p, size_t n)
{
	size_t tail = (r->head + r->len) % r->cap, first = r->cap - tail < n ? r->cap - tail : n;

	memcpy(r->data + tail, p, first);
	memcpy(r->data, p + first, n - first);
	r->len += n;
}

static size_t ring_get(struct ring *r, char *out, size_t max)
{
	size_t n = r->len < max ? r->len : max, first = r->cap - r->head < n ? r->cap - r->head : n;

	memcpy(out, r->data + r->head, first);
	memcpy(out + first, r->data, n - first);
	r->head = (r->head + n) % r->cap;
	r->len -= n;
	return n;
}

static int drop_marker(char *buf, size_t cap, uint64_t n)
{
	return snprintf(buf, cap, "[%llu events dropped]\n", (unsigned long long)n);
}

/* A line into a ring, after the marker for lines dropped before it;
 * false when it was dropped (counted). */
static bool ring_line(struct ring *r, const char *line, size_t n)
{
	char mark[64];
	int m = r->dropped ? drop_marker(mark, sizeof(mark), r->dropped) : 0;

	if (r->cap - r->len < (size_t)m + n) {
		r->dropped++;
		return false;
	}
	if (m) {
		ring_put(r, mark, (size_t)m);
		r->dropped = 0;
	}
	ring_put(r, line, n);
	return true;
}

/* ---- configured flags ---------------------------------------------------------- */

static ssize_t key_conn = -1, key_cmds = -1, key_data = -1, key_tls = -1;
static pthread_once_t keys_once = PTHREAD_ONCE_INIT;

static void keys_find(void)
{
	const char *name;

	for (size_t i = 0; (name = config_domain_key_name(i)); i++) {
		if (!strcmp(name, "log-connections"))
			key_conn = (ssize_t)i;
		else if (!strcmp(name, "log-commands"))
			key_cmds = (ssize_t)i;
		else if (!strcmp(name, "log-data"))
			key_data = (ssize_t)i;
		else if (!strcmp(name, "log-tls"))
			key_tls = (ssize_t)i;
	}
}

/* The block's own value, else <domain *>'s (the typed fields are merged
 * into each block at load; the values as written are not). */
static bool value_yes(const struct config *cfg, const struct config_domain *d, ssize_t k)
{
	const char *v = k >= 0 && d->values ? d->values[k] : NULL;
	bool b = false;

	if (!v && k >= 0 && cfg->n_domains && cfg->domains[0].values)
		v = cfg->domains[0].values[k];
	return v && config_parse_bool(v, &b) == 0 && b;
}

unsigned trace_domain_flags(const struct config *cfg, const struct config_domain *d)
{
	pthread_once(&keys_once, keys_find);
	return (value_yes(cfg, d, key_conn) ? SMTP_TRACE_CONN : 0u) |
	       (value_yes(cfg, d, key_cmds) ? SMTP_TRACE_CMDS : 0u) | (value_yes(cfg, d, key_data) ? SMTP_TRACE_DATA : 0u) |
	       (value_yes(cfg, d, key_tls) ? SMTP_TRACE_TLS : 0u);
}

/* ---- matching ------------------------------------------------------------------- */

static unsigned ev_kind(enum smtp_trace_ev ev)
{
	switch (ev) {
	case SMTP_TRACE_EV_TLS: return SMTP_TRACE_CONN | SMTP_TRACE_TLS; /* log-tls: this line alone */
	case SMTP_TRACE_EV_CONNECT: case SMTP_TRACE_EV_CLOSE: return SMTP_TRACE_CONN;
	case SMTP_TRACE_EV_DATA: return SMTP_TRACE_DATA;
	default: return SMTP_TRACE_CMDS;
	}
}

static bool sub_matches(const struct trace_sub *s, const struct smtp_trace *t, const struct sockaddr_storage *peer)
{
	if (t->inbound)
		return s->f.has_net && peer && peer->ss_family && config_cidr_match(&s->f.net, (const struct sockaddr *)peer);
	return s->f.domain[0] && t->queue && !strcasecmp(s->f.domain, t->queue);
}

static unsigned sink_refresh(struct smtp_trace *t)
{
	struct trace *tr = t->sink_ctx;
	struct sockaddr_storage peer = {0};
	socklen_t len = sizeof(peer);
	unsigned f = t->cfg_flags;

	if (!__atomic_load_n(&tr->n_subs, __ATOMIC_RELAXED))
		return f;
	if (t->inbound && getpeername(t->fd, (struct sockaddr *)&peer, &len) < 0)
		peer.ss_family = 0;
	pthread_mutex_lock(&tr->mu);
	for (struct trace_sub *s = tr->subs; s; s = s->next)
		if (sub_matches(s, t, &peer))
			f |= SMTP_TRACE_CONN | SMTP_TRACE_CMDS | (s->f.data ? SMTP_TRACE_DATA : 0u);
	pthread_mutex_unlock(&tr->mu);
	return f;
}

/* ---- lines ------------------------------------------------------------------------ */

static void addr_text(const struct sockaddr_storage *sa, char *out, size_t cap)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	if (sa->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)sa;

		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], ip, sizeof(ip));
			snprintf(out, cap, "%s:%u", ip, ntohs(s6->sin6_port));
		} else {
			inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
			snprintf(out, cap, "[%s]:%u", ip, ntohs(s6->sin6_port));
		}
	} else if (sa->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)sa;

		inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
		snprintf(out, cap, "%s:%u", ip, ntohs(s4->sin_port));
	} else {
		snprintf(out, cap, "-");
	}
}

static struct trace_sess *sess_of(struct smtp_trace *t)
{
	struct trace *tr = t->sink_ctx;
	struct trace_sess *st = t->state;

	if (!st) {
		if (!(st = calloc(1, sizeof(*st))))
			return NULL;
		st->id = __atomic_add_fetch(&tr->next_id, 1, __ATOMIC_RELAXED);
		t->state = st;
	}
	if (!st->named) {
		struct sockaddr_storage local = {0};
		socklen_t pl = sizeof(st->peer), ll = sizeof(local);

		/* an outbound session still connecting has no names yet */
		if (getpeername(t->fd, (struct sockaddr *)&st->peer, &pl) == 0 &&
		    getsockname(t->fd, (struct sockaddr *)&local, &ll) == 0)
			st->named = true;
		else
			memset(&st->peer, 0, sizeof(st->peer));
		addr_text(&st->peer, st->peer_text, sizeof(st->peer_text));
		addr_text(&local, st->local_text, sizeof(st->local_text));
	}
	return st;
}

static const char *const ev_name[] = {
	[SMTP_TRACE_EV_CONNECT] = "connect", [SMTP_TRACE_EV_TLS] = "tls", [SMTP_TRACE_EV_CLOSE] = "close",
	[SMTP_TRACE_EV_CMD] = "cmd", [SMTP_TRACE_EV_SECRET] = "cmd", [SMTP_TRACE_EV_REPLY] = "reply",
	[SMTP_TRACE_EV_DATA] = "data",
};

static size_t format_line(char *out, size_t cap, const struct smtp_trace *t, const struct trace_sess *st,
			  enum smtp_trace_ev ev, const char *text, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	struct timespec ts;
	struct tm tm;
	size_t n;
	int k;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	k = snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ s%llu %s %s %s %s%s", tm.tm_year + 1900,
		     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ts.tv_nsec / 1000000),
		     (unsigned long long)st->id, t->inbound ? "in" : "out", st->peer_text, st->local_text,
		     ev_name[ev], len ? " " : "");
	n = k > 0 && (size_t)k < cap ? (size_t)k : 0;
	for (size_t i = 0; i < len && n + 5 < cap; i++) {
		unsigned char c = (unsigned char)text[i];

		if (c < 0x20 || c == 0x7f || c == '\\') {
			out[n++] = '\\';
			out[n++] = 'x';
			out[n++] = hex[c >> 4];
			out[n++] = hex[c & 15];
		} else {
			out[n++] = (char)c;
		}
	}
	out[n++] = '\n';
	return n;
}

static void file_line(struct trace *tr, const char *line, size_t n)
{
	pthread_mutex_lock(&tr->fmu);
	if (tr->flen + n + 64 > FILE_BUF) {
		tr->fdropped++;
		__atomic_add_fetch(&tr->dropped, 1, __ATOMIC_RELAXED);
	} else {
		if (tr->fdropped) {
			tr->flen += (size_t)drop_marker(tr->fbuf + tr->flen, 64, tr->fdropped);
			tr->fdropped = 0;
		}
		if (!tr->flen)
			pthread_cond_signal(&tr->cv);
		memcpy(tr->fbuf + tr->flen, line, n);
		tr->flen += n;
	}
	pthread_mutex_unlock(&tr->fmu);
}

static void sink_line(struct smtp_trace *t, enum smtp_trace_ev ev, const char *text, size_t len)
{
	struct trace *tr = t->sink_ctx;
	struct trace_sess *st = sess_of(t);
	unsigned kind = ev_kind(ev);
	char line[LINE_MAX_OUT];
	size_t n;

	if (!st)
		return;
	n = format_line(line, sizeof(line), t, st, ev, text, len);
	if (t->cfg_flags & kind)
		file_line(tr, line, n);
	if (!__atomic_load_n(&tr->n_subs, __ATOMIC_RELAXED))
		return;
	pthread_mutex_lock(&tr->mu);
	for (struct trace_sub *s = tr->subs; s; s = s->next) {
		if (!sub_matches(s, t, st->named ? &st->peer : NULL) || (kind == SMTP_TRACE_DATA && !s->f.data))
			continue;
		pthread_mutex_lock(&s->mu);
		if (!s->ended && !ring_line(&s->buf, line, n))
			__atomic_add_fetch(&tr->dropped, 1, __ATOMIC_RELAXED);
		pthread_mutex_unlock(&s->mu);
	}
	pthread_mutex_unlock(&tr->mu);
}

static void sink_release(struct smtp_trace *t)
{
	free(t->state);
	t->state = NULL;
}

static const struct smtp_trace_sink sink = {
	.refresh = sink_refresh,
	.line = sink_line,
	.release = sink_release,
};

static void session_start(struct trace *tr, struct smtp_trace *t, unsigned cfg_flags)
{
	if (!tr)
		return;
	t->sink = &sink;
	t->sink_ctx = tr;
	t->cfg_flags = cfg_flags;
	/* the generation first: a subscriber arriving after this read bumps it */
	t->gen = __atomic_load_n(&smtp_trace_gen, __ATOMIC_RELAXED);
	t->flags = cfg_flags;
	if (__atomic_load_n(&tr->n_subs, __ATOMIC_RELAXED))
		t->gen--; /* let the first event ask (an inbound peer is matched then) */
}

void trace_session_out(struct trace *tr, struct smtp_trace *t, const char *queue, unsigned cfg_flags)
{
	t->queue = queue;
	session_start(tr, t, cfg_flags);
}

void trace_session_in(struct trace *tr, struct smtp_trace *t, unsigned cfg_flags)
{
	session_start(tr, t, cfg_flags);
}

/* ---- live subscribers -------------------------------------------------------------- */

struct trace_sub *trace_subscribe(struct trace *tr, const struct trace_filter *f, unsigned seconds)
{
	struct trace_sub *s = calloc(1, sizeof(*s));

	if (!s || !(s->buf.data = malloc(SUB_BUF))) {
		free(s);
		return NULL;
	}
	if (seconds < 1)
		seconds = 1;
	if (seconds > TRACE_SECONDS_MAX)
		seconds = TRACE_SECONDS_MAX;
	s->buf.cap = SUB_BUF;
	s->tr = tr;
	s->f = *f;
	s->end_ms = mono_ms() + (int64_t)seconds * 1000;
	s->last_out_ms = mono_ms();
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_lock(&tr->mu);
	if (tr->n_subs >= TRACE_SUBS_MAX) {
		pthread_mutex_unlock(&tr->mu);
		pthread_mutex_destroy(&s->mu);
		free(s->buf.data);
		free(s);
		return NULL;
	}
	/* at shutdown a stream must not wait (a suspended connection would
	 * stop the HTTP server for good): it ends at once */
	s->ended = tr->closing;
	s->next = tr->subs;
	if (tr->subs)
		tr->subs->prev = s;
	tr->subs = s;
	__atomic_add_fetch(&tr->n_subs, 1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&tr->mu);
	smtp_trace_bump();
	pthread_mutex_lock(&tr->fmu);
	pthread_cond_signal(&tr->cv); /* the thread ticks while anyone listens */
	pthread_mutex_unlock(&tr->fmu);
	return s;
}

void trace_sub_set_wake(struct trace_sub *s, void (*wake)(void *arg), void *arg)
{
	pthread_mutex_lock(&s->tr->mu);
	s->wake = wake;
	s->wake_arg = arg;
	pthread_mutex_unlock(&s->tr->mu);
}

ssize_t trace_sub_read(struct trace_sub *s, char *buf, size_t max)
{
	int64_t now = mono_ms();
	size_t n;

	pthread_mutex_lock(&s->mu);
	n = ring_get(&s->buf, buf, max);
	if (!n && s->buf.dropped && max >= 64) {
		n = (size_t)drop_marker(buf, max, s->buf.dropped);
		s->buf.dropped = 0;
	}
	if (!n && s->ended) {
		pthread_mutex_unlock(&s->mu);
		return -1;
	}
	if (!n && now - s->last_out_ms >= KEEPALIVE_MS) {
		buf[0] = '\n'; /* a client that left is noticed when this fails */
		n = 1;
	}
	if (n)
		s->last_out_ms = now;
	else
		s->waiting = true;
	pthread_mutex_unlock(&s->mu);
	return (ssize_t)n;
}

void trace_unsubscribe(struct trace_sub *s)
{
	struct trace *tr;

	if (!s)
		return;
	tr = s->tr;
	pthread_mutex_lock(&tr->mu);
	if (s->prev)
		s->prev->next = s->next;
	else
		tr->subs = s->next;
	if (s->next)
		s->next->prev = s->prev;
	__atomic_sub_fetch(&tr->n_subs, 1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&tr->mu);
	smtp_trace_bump();
	pthread_mutex_destroy(&s->mu);
	free(s->buf.data);
	free(s);
}

/* Wake the readers that have something to do (the trace thread). */
static void subs_tick(struct trace *tr, bool end_all)
{
	int64_t now = mono_ms();

	pthread_mutex_lock(&tr->mu);
	for (struct trace_sub *s = tr->subs; s; s = s->next) {
		bool wake;

		pthread_mutex_lock(&s->mu);
		if (end_all || now >= s->end_ms)
			s->ended = true;
		wake = s->waiting && s->wake &&
		       (s->buf.len || s->buf.dropped || s->ended || now - s->last_out_ms >= KEEPALIVE_MS);
		if (wake)
			s->waiting = false;
		pthread_mutex_unlock(&s->mu);
		if (wake)
			s->wake(s->wake_arg); /* under tr->mu: s cannot be unsubscribed meanwhile */
	}
	pthread_mutex_unlock(&tr->mu);
}

void trace_end_streams(struct trace *tr)
{
	if (!tr)
		return;
	pthread_mutex_lock(&tr->mu);
	tr->closing = true;
	pthread_mutex_unlock(&tr->mu);
	subs_tick(tr, true);
}

unsigned trace_subscribers(const struct trace *tr)
{
	return tr ? __atomic_load_n(&tr->n_subs, __ATOMIC_RELAXED) : 0;
}

uint64_t trace_dropped(const struct trace *tr)
{
	return tr ? __atomic_load_n(&tr->dropped, __ATOMIC_RELAXED) : 0;
}

/* ---- the thread ---------------------------------------------------------------------- */

static void file_write(struct trace *tr, const char *p, size_t n)
{
	if (tr->fd < 0 && !tr->open_failed) {
		tr->fd = open(tr->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
		if (tr->fd < 0) {
			tr->open_failed = true; /* said once; lines are dropped */
			fprintf(stderr, "salvod: cannot open the SMTP transcript %s: %s\n", tr->path, strerror(errno));
		}
	}
	while (tr->fd >= 0 && n) {
		ssize_t w = write(tr->fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			fprintf(stderr, "salvod: writing %s: %s; transcript lines lost\n", tr->path,
				w < 0 ? strerror(errno) : "short write");
			return;
		}
		p += w;
		n -= (size_t)w;
	}
}

static void *trace_thread(void *arg)
{
	struct trace *tr = arg;
	char *spare = malloc(FILE_BUF);

	pthread_setname_np(pthread_self(), "salvo-trace");
	pthread_mutex_lock(&tr->fmu);
	while (spare) {
		bool stop = tr->stop;

		if (tr->flen && (spare != NULL)) {
			char *full = tr->fbuf;
			size_t n = tr->flen;

			tr->fbuf = spare;
			tr->flen = 0;
			pthread_mutex_unlock(&tr->fmu);
			file_write(tr, full, n);
			spare = full;
			pthread_mutex_lock(&tr->fmu);
			continue;
		}
		if (stop)
			break;
		pthread_mutex_unlock(&tr->fmu);
		subs_tick(tr, false);
		pthread_mutex_lock(&tr->fmu);
		if (tr->stop || tr->flen)
			continue;
		if (__atomic_load_n(&tr->n_subs, __ATOMIC_RELAXED)) {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += TICK_MS * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&tr->cv, &tr->fmu, &ts);
		} else {
			pthread_cond_wait(&tr->cv, &tr->fmu);
		}
	}
	pthread_mutex_unlock(&tr->fmu);
	free(spare);
	return NULL;
}

int trace_start(struct trace **out, const char *log_dir)
{
	struct trace *tr = calloc(1, sizeof(*tr));
	size_t plen = strlen(log_dir) + sizeof(TRACE_FILE_NAME) + 2;
	int ret;

	*out = NULL;
	if (!tr || !(tr->fbuf = malloc(FILE_BUF)) || !(tr->path = malloc(plen))) {
		if (tr)
			free(tr->fbuf);
		free(tr);
		return -ENOMEM;
	}
	snprintf(tr->path, plen, "%s/%s", log_dir, TRACE_FILE_NAME);
	tr->fd = -1;
	pthread_mutex_init(&tr->mu, NULL);
	pthread_mutex_init(&tr->fmu, NULL);
	pthread_cond_init(&tr->cv, NULL);
	if ((ret = pthread_create(&tr->thread, NULL, trace_thread, tr)) != 0) {
		pthread_cond_destroy(&tr->cv);
		pthread_mutex_destroy(&tr->fmu);
		pthread_mutex_destroy(&tr->mu);
		free(tr->path);
		free(tr->fbuf);
		free(tr);
		return -ret;
	}
	*out = tr;
	return 0;
}

void trace_stop(struct trace *tr)
{
	if (!tr)
		return;
	pthread_mutex_lock(&tr->fmu);
	tr->stop = true;
	pthread_cond_signal(&tr->cv);
	pthread_mutex_unlock(&tr->fmu);
	pthread_join(tr->thread, NULL);
	if (tr->flen) /* the thread could not get its spare buffer */
		file_write(tr, tr->fbuf, tr->flen);
	while (tr->subs)
		trace_unsubscribe(tr->subs);
	if (tr->fd >= 0)
		close(tr->fd);
	pthread_cond_destroy(&tr->cv);
	pthread_mutex_destroy(&tr->fmu);
	pthread_mutex_destroy(&tr->mu);
	free(tr->path);
	free(tr->fbuf);
	free(tr);
}
