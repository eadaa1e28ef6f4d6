/*
 * inject_smtp.c - the SMTP injector: P threads, each a blocking ESMTP
 * session that pipelines MAIL, RCPT and DATA, sends the message in one
 * write, and stamps the recipient's acceptance time on the final 250.
 * A session sends per_conn messages, QUITs and reconnects. For the loopback
 * target each thread talks to one sink and takes only the messages whose
 * domain that sink receives (MX routing done by hand).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include "bench.h"

struct route {
	char ip[32];
	unsigned port;
	unsigned stride, offset;   /* messages offset, offset+stride, ... (of their domains) */
	unsigned next;             /* atomic: the route's next message number */
};

struct injector {
	struct campaign *c;
	const struct bench_opts *o;
	struct route routes[BENCH_MAX_SINKS];
	unsigned nroutes;
	unsigned accepted, refused, errors;  /* atomic */
	unsigned ticket;                     /* atomic: messages started, for --rate */
	int64_t start_ns;
};

struct session {
	int fd;
	char buf[8192];
	size_t have, pos;
};

static int split_addr(const char *addr, char *ip, size_t iplen, unsigned *port)
{
	const char *colon = strrchr(addr, ':');
	if (!colon || (size_t)(colon - addr) >= iplen)
		return -1;
	memcpy(ip, addr, (size_t)(colon - addr));
	ip[colon - addr] = '\0';
	*port = (unsigned)atoi(colon + 1);
	return *port ? 0 : -1;
}

static int write_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* One reply (multi-line aware); returns its code, or -1 on EOF/timeout/garbage. */
static int read_reply(struct session *s)
{
	for (;;) {
		char *nl = memchr(s->buf + s->pos, '\n', s->have - s->pos);
		if (nl) {
			char *line = s->buf + s->pos;
			size_t ll = (size_t)(nl - line) + 1;
			s->pos += ll;
			if (ll < 4)
				return -1;
			if (line[3] == '-')
				continue;
			return atoi(line);
		}
		if (s->pos) {
			memmove(s->buf, s->buf + s->pos, s->have - s->pos);
			s->have -= s->pos;
			s->pos = 0;
		}
		if (s->have == sizeof s->buf)
			return -1;
		ssize_t n = recv(s->fd, s->buf + s->have, sizeof s->buf - s->have, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		s->have += (size_t)n;
	}
}

static int session_open(struct session *s, const struct route *r)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)r->port) };
	if (inet_pton(AF_INET, r->ip, &sa.sin_addr) != 1)
		return -1;
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	s->have = s->pos = 0;
	if (s->fd < 0)
		return -1;
	struct timeval tv = { .tv_sec = 60 };
	int one = 1;
	setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(s->fd, (struct sockaddr *)&sa, sizeof sa) < 0 || read_reply(s) != 220 ||
	    write_all(s->fd, "EHLO bench.client.test\r\n", 24) < 0 || read_reply(s) != 250) {
		close(s->fd);
		s->fd = -1;
		return -1;
	}
	return 0;
}

static void session_close(struct session *s)
{
	if (s->fd < 0)
		return;
	if (write_all(s->fd, "QUIT\r\n", 6) == 0)
		read_reply(s);
	close(s->fd);
	s->fd = -1;
}

/* 1 accepted, 0 refused (the session goes on), -1 the session broke. */
static int send_one(struct injector *inj, struct session *s, unsigned i)
{
	char rcpt[64], cmds[256], *msg;
	campaign_rcpt(i, inj->c->domains, rcpt, sizeof rcpt);
	int cl = snprintf(cmds, sizeof cmds, "MAIL FROM:<bench@src.bench.test>\r\nRCPT TO:<%s>\r\nDATA\r\n", rcpt);
	if (write_all(s->fd, cmds, (size_t)cl) < 0)
		return -1;
	int mail = read_reply(s), rc = read_reply(s), data = read_reply(s);
	if (mail < 0 || rc < 0 || data < 0)
		return -1;
	if (data != 354)
		return 0;       /* MAIL or RCPT refused; the server answered DATA with 503/554 */
	size_t len = campaign_message(inj->c, i, false, &msg);
	if (!msg)
		return -1;
	int w = write_all(s->fd, msg, len);
	free(msg);
	if (w < 0 || write_all(s->fd, ".\r\n", 3) < 0)
		return -1;
	int end = read_reply(s);
	if (end < 0)
		return -1;
	if (end / 100 != 2)
		return 0;
	inj->c->accepted_ns[i] = now_ns();
	return 1;
}

/* --rate: message k (over all sessions) starts no earlier than start + k/rate. */
static void pace(struct injector *inj)
{
	unsigned k = __atomic_fetch_add(&inj->ticket, 1, __ATOMIC_RELAXED);
	int64_t due = inj->start_ns + (int64_t)((double)k * 1e9 / inj->o->rate);
	int64_t wait = due - now_ns();
	if (wait > 0) {
		struct timespec ts = { .tv_sec = wait / 1000000000, .tv_nsec = wait % 1000000000 };
		nanosleep(&ts, NULL);
	}
}

static void *worker(void *arg)
{
	struct injector *inj = ((void **)arg)[0];
	struct route *r = ((void **)arg)[1];
	struct session s = { .fd = -1 };
	unsigned in_conn = 0;
	for (;;) {
		unsigned k = __atomic_fetch_add(&r->next, 1, __ATOMIC_RELAXED);
		unsigned i = r->offset + k * r->stride;
		if (i >= inj->c->n)
			break;
		if (inj->o->rate)
			pace(inj);
		int rc = -1;
		for (int attempt = 0; attempt < 3 && rc < 0; attempt++) {
			if (s.fd < 0 && session_open(&s, r) < 0) {
				__atomic_fetch_add(&inj->errors, 1, __ATOMIC_RELAXED);
				usleep(100000);
				continue;
			}
			rc = send_one(inj, &s, i);
			if (rc < 0) {
				__atomic_fetch_add(&inj->errors, 1, __ATOMIC_RELAXED);
				close(s.fd);
				s.fd = -1;
				in_conn = 0;
			}
		}
		if (rc == 1)
			__atomic_fetch_add(&inj->accepted, 1, __ATOMIC_RELAXED);
		else
			__atomic_fetch_add(&inj->refused, 1, __ATOMIC_RELAXED);
		if (s.fd >= 0 && ++in_conn >= inj->o->per_conn) {
			session_close(&s);
			in_conn = 0;
		}
	}
	session_close(&s);
	return NULL;
}

int inject_smtp(struct campaign *c, const struct bench_opts *o, const struct bench_env *e,
		enum bench_target t, struct inject_result *res)
{
	struct injector inj = { .c = c, .o = o };
	if (t == TARGET_LOOPBACK) {
		/* Domain dK goes to sink K % nsinks; with domains a multiple of nsinks,
		 * message i goes to sink i % nsinks. */
		if (o->domains % e->nsinks) {
			fprintf(stderr, "salvo-bench: loopback needs domains a multiple of the sinks (%u)\n", e->nsinks);
			return -1;
		}
		for (unsigned j = 0; j < e->nsinks; j++) {
			struct route *r = &inj.routes[inj.nroutes++];
			snprintf(r->ip, sizeof r->ip, "%s", e->sink_addr[j]);
			r->port = 25;
			r->stride = e->nsinks;
			r->offset = j;
		}
	} else {
		struct route *r = &inj.routes[inj.nroutes++];
		if (split_addr(e->inject_addr, r->ip, sizeof r->ip, &r->port) < 0) {
			fprintf(stderr, "salvo-bench: bad injection address %s\n", e->inject_addr);
			return -1;
		}
		r->stride = 1;
	}
	unsigned nt = o->sessions;
	pthread_t *th = calloc(nt, sizeof *th);
	void *(*args)[2] = calloc(nt, sizeof *args);
	if (!th || !args) {
		free(th);
		free(args);
		return -1;
	}
	res->start_ns = inj.start_ns = now_ns();
	unsigned started = 0;
	for (unsigned k = 0; k < nt; k++) {
		args[k][0] = &inj;
		args[k][1] = &inj.routes[k % inj.nroutes];
		if (pthread_create(&th[k], NULL, worker, args[k]) != 0)
			break;
		started++;
	}
	for (unsigned k = 0; k < started; k++)
		pthread_join(th[k], NULL);
	res->end_ns = now_ns();
	res->accepted = inj.accepted;
	res->refused = inj.refused;
	res->errors = inj.errors;
	free(th);
	free(args);
	return started ? 0 : -1;
}
