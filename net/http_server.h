/*
 * http_server.h - the HTTP listener of the injection and management API, on
 * libmicrohttpd (its own polling thread per listener; HTTP/1.1 keep-alive).
 *
 * The server collects each request's body (up to max_body bytes, else 413),
 * checks the API token (every request not from loopback must carry
 * `Authorization: Bearer TOKEN` or `X-Api-Token: TOKEN`, else 401; with no
 * token configured only loopback clients are served), and hands the request
 * to one handler. The handler answers with http_reply() exactly once: at
 * once, or later from any thread (the connection is suspended meanwhile) -
 * e.g. after the spool commit that makes injected mail durable.
 *
 * Ownership: a struct http_request belongs to the server; it stays valid
 * until http_reply() for it returns. The reply body is copied.
 */
#ifndef SALVO_HTTP_SERVER_H
#define SALVO_HTTP_SERVER_H

#include <stddef.h>
#include <sys/socket.h>

struct config_addr;
struct http_server;

struct http_request {
	const char *method;            /* "GET", "POST", ... */
	const char *path;              /* without the query string */
	const char *body;              /* NUL-terminated copy; "" when none */
	size_t body_len;
	const struct sockaddr *peer;
	void *priv;                    /* the server's */
};

typedef void (*http_handler)(void *ctx, struct http_request *req);

/* A query argument ("?limit=10") or request header, or NULL. */
const char *http_query(struct http_request *req, const char *key);
const char *http_header(struct http_request *req, const char *name);

/* Answer req (any thread, exactly once). */
void http_reply(struct http_request *req, unsigned status, const char *content_type,
		const char *body, size_t len);
/* {"error": msg, "field": field} with status (field may be NULL). */
void http_reply_error(struct http_request *req, unsigned status, const char *msg, const char *field);

struct http_server_opts {
	const struct config_addr *listeners;
	size_t n_listeners;
	size_t max_body;               /* bytes */
	const char *token;             /* NULL: loopback clients only */
	unsigned threads;              /* MHD worker threads per listener (>= 1) */
};

/* Start listening. 0, or -1 with a message in err. */
int http_server_start(struct http_server **out, const struct http_server_opts *o, http_handler h, void *ctx,
		      char *err, size_t errlen);
/* Stop accepting, finish or drop connections, join the threads, free. A
 * handler must not reply after this returns. */
void http_server_stop(struct http_server *s);

#endif
