/*
 * http_server.c - the API's HTTP listener on libmicrohttpd (see
 * http_server.h).
 *
 * One MHD daemon per listener, each with its own polling thread(s); a TLS
 * listener holds the PEM certificate and key in memory for GnuTLS (TLS 1.2
 * and later). A request's state (struct req_state) lives from MHD's first
 * call for it to its "completed" notification: the access decision on the
 * first call (admit: headers only, nothing of the body read yet), body
 * collection, the handler call, and the reply hand-off. An answer queued on
 * that first call makes MHD skip the body and close the connection; MHD's
 * own per-address and per-listener limits refuse connections at accept.
 * The hand-off is guarded by a mutex
 * because a handler may answer from another thread: if the answer is not
 * there when the handler returns, the connection is suspended, and
 * http_reply() resumes it; MHD then calls us again and we queue the reply.
 */
#include "net/http_server.h"

#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include "core/config.h"
#include "core/json_str.h"

struct token_digest {
	unsigned char digest[SHA256_DIGEST_LENGTH];
	enum config_http_role role;
};

/* Who may call: http-access and the tokens' digests, copied from a config
 * and replaced whole by http_server_set_access (a reload). */
struct http_auth {
	struct token_digest *tokens;
	size_t n_tokens;
	struct config_http_access *access;
	size_t n_access;
};

struct http_server {
	/* The listeners (one daemon each), by address; a reload adds and
	 * retires some (http_server_set_listeners) under ls_mu. A retired
	 * one no longer accepts and is stopped once its last connection is
	 * gone (http_server_reap); its listening socket is closed then. */
	pthread_mutex_t ls_mu;
	struct http_listen {
		struct MHD_Daemon *d;
		char *addr;        /* config_addr.text */
	} *ls;
	size_t n_ls;
	struct http_retired {
		struct MHD_Daemon *d;
		MHD_socket fd;
		char *addr;
	} *retired;
	size_t n_retired;
	unsigned threads;
	size_t max_body;
	pthread_rwlock_t auth_lock; /* readers: each request's role; writer: a swap */
	struct http_auth *auth;
	char *tls_cert, *tls_key;  /* PEM, kept while the daemons run */
	http_handler handler;
	http_policy policy;
	void *ctx;
};

struct req_state {
	struct http_request pub;
	struct http_server *srv;
	struct MHD_Connection *conn;
	char *path;
	char *body;
	size_t len, cap;
	bool too_big;
	bool refused;              /* answered on the headers; the body is dropped */
	bool handled;              /* the handler has been called */
	pthread_mutex_t mu;
	bool suspended;
	struct MHD_Response *resp; /* the answer, until queued */
	unsigned status;
};

const char *http_query(struct http_request *req, const char *key)
{
	struct req_state *st = req->priv;

	return MHD_lookup_connection_value(st->conn, MHD_GET_ARGUMENT_KIND, key);
}

const char *http_header(struct http_request *req, const char *name)
{
	struct req_state *st = req->priv;

	return MHD_lookup_connection_value(st->conn, MHD_HEADER_KIND, name);
}

void http_reply(struct http_request *req, unsigned status, const char *content_type, const char *body,
		size_t len)
{
	struct req_state *st = req->priv;
	struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);

	if (r)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	pthread_mutex_lock(&st->mu);
	st->resp = r;
	st->status = r ? status : MHD_HTTP_INTERNAL_SERVER_ERROR;
	if (st->suspended) {
		st->suspended = false;
		MHD_resume_connection(st->conn);
	}
	pthread_mutex_unlock(&st->mu);
}

void http_reply_error(struct http_request *req, unsigned status, const char *msg, const char *field)
{
	struct json_buf b = {0};
	int rc = json_buf_puts(&b, "{\"error\":") | json_buf_strz(&b, msg);

	if (field)
		rc |= json_buf_puts(&b, ",\"field\":") | json_buf_strz(&b, field);
	rc |= json_buf_puts(&b, "}\n");
	if (rc)
		http_reply(req, status, "application/json", "{\"error\":\"out of memory\"}\n", 26);
	else
		http_reply(req, status, "application/json", b.data, b.len);
	json_buf_free(&b);
}

static enum MHD_Result queue_answer(struct req_state *st);

/* ---- streamed answers ----------------------------------------------------
 * MHD asks stream_read() for more whenever the socket has room; with
 * nothing to give, the connection is suspended (returning 0 alone would
 * make MHD's polling thread spin) until http_stream_wake() resumes it. A
 * wake that comes between the application's "nothing" and the suspension
 * is kept in `woken`, so it is never lost. */
struct http_stream {
	pthread_mutex_t mu;
	struct MHD_Connection *conn;
	bool suspended, woken;
	http_stream_read read;
	http_stream_done done;
	void *ctx;
};

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct http_stream *hs = cls;
	ssize_t n = hs->read(hs->ctx, buf, max);
	(void)pos;

	if (n < 0)
		return MHD_CONTENT_READER_END_OF_STREAM;
	if (n > 0)
		return n;
	pthread_mutex_lock(&hs->mu);
	if (hs->woken) {
		hs->woken = false; /* MHD asks again at once */
	} else {
		hs->suspended = true;
		MHD_suspend_connection(hs->conn);
	}
	pthread_mutex_unlock(&hs->mu);
	return 0;
}

static void stream_free(void *cls)
{
	struct http_stream *hs = cls;

	hs->done(hs->ctx);
	pthread_mutex_destroy(&hs->mu);
	free(hs);
}

void http_stream_wake(struct http_stream *hs)
{
	pthread_mutex_lock(&hs->mu);
	if (hs->suspended) {
		hs->suspended = false;
		MHD_resume_connection(hs->conn);
	} else {
		hs->woken = true;
	}
	pthread_mutex_unlock(&hs->mu);
}

struct http_stream *http_reply_stream(struct http_request *req, unsigned status, const char *content_type,
				      http_stream_read read, http_stream_done done, void *ctx)
{
	struct req_state *st = req->priv;
	struct http_stream *hs = calloc(1, sizeof(*hs));
	struct MHD_Response *r;

	if (!hs) {
		http_reply_error(req, 500, "out of memory", NULL);
		return NULL;
	}
	pthread_mutex_init(&hs->mu, NULL);
	hs->conn = st->conn;
	hs->read = read;
	hs->done = done;
	hs->ctx = ctx;
	r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_read, hs, stream_free);
	if (!r) {
		pthread_mutex_destroy(&hs->mu);
		free(hs);
		http_reply_error(req, 500, "out of memory", NULL);
		return NULL;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	pthread_mutex_lock(&st->mu);
	st->resp = r;
	st->status = status;
	if (st->suspended) {
		st->suspended = false;
		MHD_resume_connection(st->conn);
	}
	pthread_mutex_unlock(&st->mu);
	return hs;
}

/* SHA-256 of a token: tokens are compared as digests, in constant time,
 * so neither their bytes nor their lengths leak through timing. */
static void token_digest(const char *tok, unsigned char out[SHA256_DIGEST_LENGTH])
{
	SHA256((const unsigned char *)tok, strlen(tok), out);
}

/* The token the request carries, or NULL. */
static const char *presented_token(struct MHD_Connection *conn)
{
	const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);

	const char *tok;

	if (auth && strncasecmp(auth, "Bearer ", 7) == 0)
		return auth + 7;
	if ((tok = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Api-Token")))
		return tok;
	return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-API-Key"); /* PowerMTA's http-api-key */
}

/* The request's role from its token or its address; *bad_token when it
 * carries a token that matches none. Every configured token is compared. */
static enum config_http_role request_role(struct http_server *srv, struct MHD_Connection *conn,
					  const struct sockaddr *peer, bool *bad_token)
{
	const char *tok = presented_token(conn);
	unsigned char d[SHA256_DIGEST_LENGTH];
	enum config_http_role role = CONFIG_HTTP_NONE;
	const struct http_auth *a;
	bool found = false;

	*bad_token = false;
	if (tok)
		token_digest(tok, d);
	pthread_rwlock_rdlock(&srv->auth_lock);
	a = srv->auth;
	if (!tok) {
		role = config_http_role_in(a->access, a->n_access, peer);
		pthread_rwlock_unlock(&srv->auth_lock);
		return role;
	}
	for (size_t i = 0; i < a->n_tokens; i++) {
		bool eq = CRYPTO_memcmp(d, a->tokens[i].digest, sizeof(d)) == 0;

		found |= eq;
		role = eq ? a->tokens[i].role : role;
	}
	pthread_rwlock_unlock(&srv->auth_lock);
	*bad_token = !found;
	return role;
}

/* Answer now, on MHD's first call for the request (its body unread). */
static enum MHD_Result refuse(struct req_state *st, unsigned status, const char *msg)
{
	st->refused = true;
	http_reply_error(&st->pub, status, msg, NULL);
	if (st->resp && status == MHD_HTTP_UNAUTHORIZED)
		MHD_add_response_header(st->resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
	/* the body is never read: the connection cannot carry another request */
	if (st->resp)
		MHD_add_response_header(st->resp, MHD_HTTP_HEADER_CONNECTION, "close");
	return queue_answer(st);
}

/* The access decision on the headers (the first call); MHD_YES with
 * nothing queued lets the body come. */
static enum MHD_Result admit(struct req_state *st)
{
	struct http_server *srv = st->srv;
	const char *len = MHD_lookup_connection_value(st->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	const char *why;
	bool bad_token;
	char msg[96];

	st->pub.role = request_role(srv, st->conn, st->pub.peer, &bad_token);
	if (bad_token)
		return refuse(st, MHD_HTTP_UNAUTHORIZED, "invalid API token");
	if (st->pub.role == CONFIG_HTTP_NONE)
		return refuse(st, MHD_HTTP_UNAUTHORIZED, "an API token is required");
	if (srv->policy && (why = srv->policy(srv->ctx, st->pub.role, st->pub.method, st->pub.path)))
		return refuse(st, MHD_HTTP_FORBIDDEN, why);
	if (len && strtoull(len, NULL, 10) > srv->max_body) {
		const char *expect = MHD_lookup_connection_value(st->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);

		/* A client that waits for "100 Continue" has sent no body: it
		 * gets the 413 now. Others are sending it already: closing on
		 * them would lose the answer in a reset, so an authorised client's
		 * body is read and dropped (never stored) and the 413 follows. */
		if (expect && strcasestr(expect, "100-continue")) {
			snprintf(msg, sizeof(msg), "request body larger than %zu bytes", srv->max_body);
			return refuse(st, MHD_HTTP_CONTENT_TOO_LARGE, msg);
		}
		st->too_big = true;
	}
	return MHD_YES;
}

static enum MHD_Result queue_answer(struct req_state *st)
{
	struct MHD_Response *r = st->resp;
	enum MHD_Result ret;

	st->resp = NULL;
	if (!r)
		return MHD_NO;
	ret = MHD_queue_response(st->conn, st->status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
				  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	struct http_server *srv = cls;
	struct req_state *st = *con_cls;
	enum MHD_Result ret = MHD_YES;
	(void)version;

	if (!st) {
		st = calloc(1, sizeof(*st));
		if (!st || !(st->path = strdup(url))) {
			free(st);
			return MHD_NO;
		}
		pthread_mutex_init(&st->mu, NULL);
		st->srv = srv;
		st->conn = conn;
		st->pub.method = method;
		st->pub.path = st->path;
		st->pub.body = "";
		st->pub.priv = st;
		st->pub.peer = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS)->client_addr;
		*con_cls = st;
		return admit(st);
	}
	if (st->refused) {
		*upload_size = 0;
		return MHD_YES;
	}
	if (*upload_size) {
		size_t n = *upload_size;

		*upload_size = 0;
		if (st->too_big || st->len + n > srv->max_body) {
			st->too_big = true;
			return MHD_YES;
		}
		if (st->len + n + 1 > st->cap) {
			size_t cap = st->cap ? st->cap : 4096;
			char *grown;

			while (cap < st->len + n + 1)
				cap *= 2;
			if (!(grown = realloc(st->body, cap)))
				return MHD_NO;
			st->body = grown;
			st->cap = cap;
		}
		memcpy(st->body + st->len, upload, n);
		st->len += n;
		st->body[st->len] = '\0';
		return MHD_YES;
	}
	if (!st->handled) {
		st->handled = true;
		if (st->body) {
			st->pub.body = st->body;
			st->pub.body_len = st->len;
		}
		if (st->too_big) {
			char msg[96];

			snprintf(msg, sizeof(msg), "request body larger than %zu bytes", srv->max_body);
			http_reply_error(&st->pub, MHD_HTTP_CONTENT_TOO_LARGE, msg, NULL);
		} else {
			srv->handler(srv->ctx, &st->pub);
		}
	}
	pthread_mutex_lock(&st->mu);
	if (st->resp) {
		ret = queue_answer(st);
	} else if (!st->suspended) {
		st->suspended = true;
		MHD_suspend_connection(conn);
	}
	pthread_mutex_unlock(&st->mu);
	return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode why)
{
	struct req_state *st = *con_cls;
	(void)cls;
	(void)conn;
	(void)why;

	if (!st)
		return;
	if (st->resp)
		MHD_destroy_response(st->resp);
	pthread_mutex_destroy(&st->mu);
	free(st->body);
	free(st->path);
	free(st);
	*con_cls = NULL;
}

/* libmicrohttpd's diagnostics, at most one a second: out of descriptors it
 * busy-waits and says so on every turn (millions of lines a minute). What
 * is left out is counted and said with the next line that goes out. */
static void on_log(void *cls, const char *fmt, va_list ap)
{
	static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	static uint64_t last_ms;
	static unsigned long skipped;
	struct timespec ts;
	uint64_t now;

	(void)cls;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	pthread_mutex_lock(&mu);
	if (last_ms && now - last_ms < 1000) {
		skipped++;
		pthread_mutex_unlock(&mu);
		return;
	}
	last_ms = now;
	if (skipped)
		fprintf(stderr, "salvod: http: (%lu more diagnostics in the last second)\n", skipped);
	skipped = 0;
	fputs("salvod: http: ", stderr);
	vfprintf(stderr, fmt, ap);
	pthread_mutex_unlock(&mu);
}

/* The whole of path, NUL-terminated (PEM for GnuTLS), or NULL with err. */
static char *read_pem(const char *what, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t n = 0, cap = 0;

	if (!f) {
		snprintf(err, errlen, "cannot open %s %s: %s", what, path, strerror(errno));
		return NULL;
	}
	for (;;) {
		if (n + 4096 + 1 > cap) {
			char *grown = cap > (1u << 20) ? NULL : realloc(buf, cap = cap ? cap * 2 : 8192);

			if (!grown) {
				snprintf(err, errlen, "%s %s: too large or out of memory", what, path);
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = grown;
		}
		size_t k = fread(buf + n, 1, 4096, f);

		n += k;
		if (k < 4096)
			break;
	}
	if (ferror(f)) {
		snprintf(err, errlen, "cannot read %s %s: %s", what, path, strerror(errno));
		free(buf);
		buf = NULL;
	} else {
		buf[n] = '\0';
	}
	fclose(f);
	return buf;
}

static int start_tls(struct http_server *s, const struct config *cfg, char *err, size_t errlen)
{
	if (s->tls_cert)
		return 0;
	if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
		snprintf(err, errlen, "http-listener tls=yes: this libmicrohttpd has no TLS support");
		return -1;
	}
	if (!cfg->tls_certificate || !cfg->tls_private_key) {
		snprintf(err, errlen, "http-listener tls=yes needs tls-certificate and tls-private-key");
		return -1;
	}
	if (!(s->tls_cert = read_pem("tls-certificate", cfg->tls_certificate, err, errlen)) ||
	    !(s->tls_key = read_pem("tls-private-key", cfg->tls_private_key, err, errlen)))
		return -1;
	return 0;
}

static void auth_free(struct http_auth *a)
{
	if (!a)
		return;
	if (a->tokens)
		OPENSSL_cleanse(a->tokens, a->n_tokens * sizeof(*a->tokens));
	free(a->tokens);
	free(a->access);
	free(a);
}

static struct http_auth *auth_new(const struct config *cfg)
{
	struct http_auth *a = calloc(1, sizeof(*a));

	if (!a || !(a->tokens = calloc(cfg->n_http_tokens ? cfg->n_http_tokens : 1, sizeof(*a->tokens))) ||
	    !(a->access = calloc(cfg->n_http_access ? cfg->n_http_access : 1, sizeof(*a->access)))) {
		auth_free(a);
		return NULL;
	}
	for (size_t i = 0; i < cfg->n_http_tokens; i++) {
		token_digest(cfg->http_tokens[i].token, a->tokens[i].digest);
		a->tokens[i].role = cfg->http_tokens[i].role;
	}
	a->n_tokens = cfg->n_http_tokens;
	if (cfg->n_http_access)
		memcpy(a->access, cfg->http_access, cfg->n_http_access * sizeof(*a->access));
	a->n_access = cfg->n_http_access;
	return a;
}

int http_server_set_access(struct http_server *s, const struct config *cfg)
{
	struct http_auth *a = auth_new(cfg), *old;

	if (!a)
		return -1;
	pthread_rwlock_wrlock(&s->auth_lock);
	old = s->auth;
	s->auth = a;
	pthread_rwlock_unlock(&s->auth_lock);
	auth_free(old);
	return 0;
}

/* One listener's daemon, or NULL with err. */
static struct MHD_Daemon *daemon_start(struct http_server *s, const struct config *cfg, const struct config_addr *a,
				       bool tls, char *err, size_t errlen)
{
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME |
			 MHD_USE_ITC | MHD_USE_EPOLL | (a->sa.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0) |
			 (tls ? MHD_USE_TLS : 0);
	uint16_t port = a->sa.ss_family == AF_INET6 ? ntohs(((const struct sockaddr_in6 *)&a->sa)->sin6_port)
						    : ntohs(((const struct sockaddr_in *)&a->sa)->sin_port);
	struct MHD_Daemon *d;

	if (tls && start_tls(s, cfg, err, errlen) < 0)
		return NULL;
	errno = 0;
	/* for a plain daemon the option list ends before the TLS options (one
	 * call for both kinds) */
	d = MHD_start_daemon(flags, port, NULL, NULL, on_request, s,
			     MHD_OPTION_EXTERNAL_LOGGER, on_log, NULL,
			     MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)&a->sa,
			     MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
			     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
			     MHD_OPTION_CONNECTION_LIMIT, cfg->http_max_connections,
			     MHD_OPTION_PER_IP_CONNECTION_LIMIT, cfg->http_max_connections_per_ip,
			     MHD_OPTION_THREAD_POOL_SIZE, s->threads,
			     tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, s->tls_cert,
			     MHD_OPTION_HTTPS_MEM_KEY, s->tls_key,
			     MHD_OPTION_HTTPS_PRIORITIES, "NORMAL:-VERS-TLS1.0:-VERS-TLS1.1",
			     MHD_OPTION_END);
	if (!d)
		snprintf(err, errlen, "cannot listen for HTTP%s on %s: %s", tls ? "S" : "", a->text,
			 errno ? strerror(errno) : "libmicrohttpd refused to start (for HTTPS: check the "
						   "certificate and key)");
	return d;
}

static bool cfg_has(const struct config *cfg, const char *addr)
{
	for (size_t i = 0; i < cfg->n_http_listeners; i++)
		if (!strcmp(cfg->http_listeners[i].text, addr))
			return true;
	return false;
}

static ssize_t ls_find(const struct http_server *s, const char *addr)
{
	for (size_t i = 0; i < s->n_ls; i++)
		if (!strcmp(s->ls[i].addr, addr))
			return (ssize_t)i;
	return -1;
}

int http_server_set_listeners(struct http_server *s, const struct config *cfg, char *err, size_t errlen)
{
	struct http_listen *next;
	struct http_retired *ret;
	size_t n = 0, n_old;
	int rc = 0;

	pthread_mutex_lock(&s->ls_mu);
	n_old = s->n_ls;
	next = calloc(cfg->n_http_listeners + n_old + 1, sizeof(*next));
	ret = realloc(s->retired, (s->n_retired + n_old + 1) * sizeof(*ret));
	if (ret)
		s->retired = ret;
	if (!next || !ret) {
		free(next);
		pthread_mutex_unlock(&s->ls_mu);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	/* new addresses first: one that cannot listen changes nothing */
	for (size_t i = 0; i < cfg->n_http_listeners && !rc; i++) {
		const struct config_addr *a = &cfg->http_listeners[i];
		ssize_t k = ls_find(s, a->text);

		if (k >= 0) {
			next[n++] = s->ls[k];
			continue;
		}
		next[n].addr = strdup(a->text);
		if (!next[n].addr) {
			snprintf(err, errlen, "out of memory");
			rc = -1;
		} else if (!(next[n].d = daemon_start(s, cfg, a, cfg->http_listener_tls && cfg->http_listener_tls[i],
						       err, errlen))) {
			free(next[n].addr);
			rc = -1;
		} else {
			n++;
		}
	}
	if (rc) {
		for (size_t i = 0; i < n; i++)
			if (ls_find(s, next[i].addr) < 0) {
				MHD_stop_daemon(next[i].d);
				free(next[i].addr);
			}
		free(next);
		pthread_mutex_unlock(&s->ls_mu);
		return -1;
	}
	/* addresses gone: stop accepting now (shutdown makes the kernel refuse
	 * new connections too); their connections finish */
	for (size_t i = 0; i < n_old; i++) {
		MHD_socket fd;

		if (cfg_has(cfg, s->ls[i].addr))
			continue;
		fd = MHD_quiesce_daemon(s->ls[i].d);
		if (fd != MHD_INVALID_SOCKET)
			shutdown(fd, SHUT_RDWR);
		s->retired[s->n_retired++] = (struct http_retired){s->ls[i].d, fd, s->ls[i].addr};
	}
	free(s->ls);
	s->ls = next;
	s->n_ls = n;
	pthread_mutex_unlock(&s->ls_mu);
	return 0;
}

static bool idle(struct MHD_Daemon *d)
{
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);

	return info && info->num_connections == 0;
}

static void retired_stop(struct http_retired *r)
{
	MHD_stop_daemon(r->d);
	if (r->fd != MHD_INVALID_SOCKET)
		close(r->fd);
	free(r->addr);
}

void http_server_reap(struct http_server *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->ls_mu);
	for (size_t i = 0; i < s->n_retired;) {
		if (!idle(s->retired[i].d)) {
			i++;
			continue;
		}
		retired_stop(&s->retired[i]);
		s->retired[i] = s->retired[--s->n_retired];
	}
	pthread_mutex_unlock(&s->ls_mu);
}

int http_server_start(struct http_server **out, const struct http_server_opts *o, http_handler h, void *ctx,
		      char *err, size_t errlen)
{
	const struct config *cfg = o->cfg;
	struct http_server *s = calloc(1, sizeof(*s));

	*out = NULL;
	if (s) {
		pthread_rwlock_init(&s->auth_lock, NULL);
		pthread_mutex_init(&s->ls_mu, NULL);
	}
	if (!s || !(s->auth = auth_new(cfg))) {
		snprintf(err, errlen, "out of memory");
		http_server_stop(s);
		return -1;
	}
	s->max_body = cfg->http_max_body_size;
	s->handler = h;
	s->policy = o->policy;
	s->ctx = ctx;
	s->threads = o->threads ? o->threads : 1u;
	if (http_server_set_listeners(s, cfg, err, errlen) < 0) {
		http_server_stop(s);
		return -1;
	}
	*out = s;
	return 0;
}

void http_server_stop(struct http_server *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n_ls; i++) {
		MHD_stop_daemon(s->ls[i].d);
		free(s->ls[i].addr);
	}
	free(s->ls);
	for (size_t i = 0; i < s->n_retired; i++)
		retired_stop(&s->retired[i]);
	free(s->retired);
	pthread_mutex_destroy(&s->ls_mu);
	auth_free(s->auth);
	pthread_rwlock_destroy(&s->auth_lock);
	if (s->tls_key)
		OPENSSL_cleanse(s->tls_key, strlen(s->tls_key));
	free(s->tls_key);
	free(s->tls_cert);
	free(s);
}
