/*
 * http_server.c - the API's HTTP listener on libmicrohttpd (see
 * http_server.h).
 *
 * One MHD daemon per listener, each with its own polling thread(s). A
 * request's state (struct req_state) lives from MHD's first call for it to
 * its "completed" notification: body collection, the auth check, the
 * handler call, and the reply hand-off. The hand-off is guarded by a mutex
 * because a handler may answer from another thread: if the answer is not
 * there when the handler returns, the connection is suspended, and
 * http_reply() resumes it; MHD then calls us again and we queue the reply.
 */
#include "net/http_server.h"

#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/json_str.h"

struct http_server {
	struct MHD_Daemon **daemons;
	size_t n_daemons;
	size_t max_body;
	char *token;
	http_handler handler;
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

static bool is_loopback(const struct sockaddr *sa)
{
	if (!sa)
		return false;
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;

		if (IN6_IS_ADDR_LOOPBACK(a))
			return true;
		return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
	}
	return false;
}

/* Constant time in the length of the presented token. */
static bool token_ok(const char *want, const char *got)
{
	size_t n = strlen(got), m = strlen(want);
	unsigned char diff = n != m;

	for (size_t i = 0; i < n; i++)
		diff |= (unsigned char)got[i] ^ (unsigned char)want[i < m ? i : 0];
	return diff == 0;
}

static bool authorized(struct req_state *st)
{
	const char *auth, *tok = NULL;

	if (is_loopback(st->pub.peer))
		return true;
	if (!st->srv->token)
		return false;
	auth = MHD_lookup_connection_value(st->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	if (auth && strncasecmp(auth, "Bearer ", 7) == 0)
		tok = auth + 7;
	else
		tok = MHD_lookup_connection_value(st->conn, MHD_HEADER_KIND, "X-Api-Token");
	return tok && token_ok(st->srv->token, tok);
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
		} else if (!authorized(st)) {
			http_reply_error(&st->pub, MHD_HTTP_UNAUTHORIZED, "an API token is required", NULL);
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

static void on_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	fputs("salvod: http: ", stderr);
	vfprintf(stderr, fmt, ap);
}

int http_server_start(struct http_server **out, const struct http_server_opts *o, http_handler h, void *ctx,
		      char *err, size_t errlen)
{
	struct http_server *s = calloc(1, sizeof(*s));

	*out = NULL;
	if (!s || !(s->daemons = calloc(o->n_listeners ? o->n_listeners : 1, sizeof(*s->daemons))) ||
	    (o->token && !(s->token = strdup(o->token)))) {
		snprintf(err, errlen, "out of memory");
		http_server_stop(s);
		return -1;
	}
	s->max_body = o->max_body;
	s->handler = h;
	s->ctx = ctx;
	for (size_t i = 0; i < o->n_listeners; i++) {
		const struct config_addr *a = &o->listeners[i];
		unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME |
				 MHD_USE_EPOLL | (a->sa.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0);
		uint16_t port = a->sa.ss_family == AF_INET6 ? ntohs(((const struct sockaddr_in6 *)&a->sa)->sin6_port)
							    : ntohs(((const struct sockaddr_in *)&a->sa)->sin_port);
		struct MHD_Daemon *d;

		errno = 0;
		d = MHD_start_daemon(flags, port, NULL, NULL, on_request, s,
				     MHD_OPTION_EXTERNAL_LOGGER, on_log, NULL,
				     MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)&a->sa,
				     MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
				     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
				     MHD_OPTION_CONNECTION_LIMIT, (unsigned)1000,
				     MHD_OPTION_THREAD_POOL_SIZE, o->threads ? o->threads : 1u,
				     MHD_OPTION_END);
		if (!d) {
			snprintf(err, errlen, "cannot listen for HTTP on %s: %s", a->text,
				 errno ? strerror(errno) : "libmicrohttpd refused to start");
			http_server_stop(s);
			return -1;
		}
		s->daemons[s->n_daemons++] = d;
	}
	*out = s;
	return 0;
}

void http_server_stop(struct http_server *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n_daemons; i++)
		MHD_stop_daemon(s->daemons[i]);
	free(s->daemons);
	free(s->token);
	free(s);
}
