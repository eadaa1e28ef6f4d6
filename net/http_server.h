/*
 * http_server.h - the HTTP listener of the injection and management API, on
 * libmicrohttpd (its own polling thread per listener; HTTP/1.1 keep-alive;
 * HTTPS on listeners marked tls=yes).
 *
 * Access is decided on the request's headers, before any of its body is
 * read (so an anonymous client cannot make salvod hold a body): the role
 * is that of the API token the request carries (`Authorization: Bearer
 * TOKEN` or `X-Api-Token: TOKEN`; a token that matches none is a 401), else
 * the one http-access gives the client's address (config_http_role_for).
 * Role none is a 401; a role the policy callback turns down for this method
 * and path is a 403. Those answers go out at once and the connection is
 * closed without reading the body (a client that sends its body without
 * waiting for "100 Continue" may then see the connection reset instead of
 * the answer: that is the price of not reading what an unauthorised client
 * sends). A Content-Length above max_body is a 413, at once when the client
 * waits for "100 Continue", else after its body has been read and dropped.
 * Then the server collects the body (up to max_body bytes, else 413)
 * and hands the request to one handler. The handler answers with
 * http_reply() exactly once: at once, or later from any thread (the
 * connection is suspended meanwhile) - e.g. after the spool commit that
 * makes injected mail durable.
 *
 * Connections: at most max_conns open per listener and max_conns_per_ip
 * from one address (libmicrohttpd closes the ones beyond at accept).
 *
 * Ownership: a struct http_request belongs to the server; it stays valid
 * until http_reply() for it returns. The reply body is copied. The config
 * passed in opts must outlive the server.
 */
#ifndef SALVO_HTTP_SERVER_H
#define SALVO_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "core/config.h"

struct http_server;

struct http_request {
	const char *method;            /* "GET", "POST", ... */
	const char *path;              /* without the query string */
	const char *body;              /* NUL-terminated copy; "" when none */
	size_t body_len;
	const struct sockaddr *peer;
	enum config_http_role role;    /* never CONFIG_HTTP_NONE here */
	void *priv;                    /* the server's */
};

typedef void (*http_handler)(void *ctx, struct http_request *req);
/* May role (monitor or admin) make this request? NULL: yes; else the
 * reason for the 403. Called with the headers only, on MHD's thread. */
typedef const char *(*http_policy)(void *ctx, enum config_http_role role, const char *method, const char *path);

/* A query argument ("?limit=10") or request header, or NULL. */
const char *http_query(struct http_request *req, const char *key);
const char *http_header(struct http_request *req, const char *name);

/* Answer req (any thread, exactly once). */
void http_reply(struct http_request *req, unsigned status, const char *content_type,
		const char *body, size_t len);
/* {"error": msg, "field": field} with status (field may be NULL). */
void http_reply_error(struct http_request *req, unsigned status, const char *msg, const char *field);

/* A streamed answer (chunked, for as long as it lasts): read() fills buf
 * with up to max bytes and returns how many; 0 when it has nothing now
 * (the connection then waits, costing no thread, until http_stream_wake());
 * -1 at the end. read() runs on MHD's thread. done() is called exactly once
 * when the stream is over (ended, or the client went away, or the server
 * stops): after it returns, nobody may call http_stream_wake() for it. */
struct http_stream;
typedef ssize_t (*http_stream_read)(void *ctx, char *buf, size_t max);
typedef void (*http_stream_done)(void *ctx);
/* Answer req with a stream (instead of http_reply; from the handler, on
 * its thread). NULL when out of memory: req was answered 500 and done() is
 * never called. */
struct http_stream *http_reply_stream(struct http_request *req, unsigned status, const char *content_type,
				      http_stream_read read, http_stream_done done, void *ctx);
/* Data is ready (or the end): any thread. */
void http_stream_wake(struct http_stream *hs);

struct http_server_opts {
	const struct config *cfg;      /* http_listeners (and their tls flags),
					* http-access, tokens, limits, TLS files */
	unsigned threads;              /* MHD worker threads per listener (>= 1) */
	http_policy policy;            /* NULL: every role may do everything */
};

/* Start listening. 0, or -1 with a message in err. */
int http_server_start(struct http_server **out, const struct http_server_opts *o, http_handler h, void *ctx,
		      char *err, size_t errlen);
/* Take http-access and http-api-token from cfg for every request from now
 * on (a reload; any thread; cfg is copied). 0, or -1 (out of memory: the
 * old ones stay). */
int http_server_set_access(struct http_server *s, const struct config *cfg);
/* The listeners of cfg->http_listeners (a reload; one thread at a time):
 * an address already open stays (its connections untouched), a new one
 * opens, one no longer listed stops accepting at once and is stopped when
 * its last connection (a live trace too) has ended - http_server_reap().
 * 0, or -1 with err when a new address cannot listen: then nothing
 * changed. tls= and http-max-* of a kept address do not change. */
int http_server_set_listeners(struct http_server *s, const struct config *cfg, char *err, size_t errlen);
/* Stop the retired listeners that have no connection left (call now and
 * then, e.g. once a second). NULL is fine. */
void http_server_reap(struct http_server *s);
/* Stop accepting, finish or drop connections, join the threads, free. A
 * handler must not reply after this returns. */
void http_server_stop(struct http_server *s);

#endif
