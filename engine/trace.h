/*
 * trace.h - SMTP transcripts: the sink behind net/smtp_trace.h.
 *
 * Two destinations, one line format:
 *   - the transcript file spool-dir/log/smtp-trace.log, for the sessions
 *     whose <domain> (outbound) or <source> (inbound) has log-connections,
 *     log-commands or log-data;
 *   - live subscribers (GET /api/v1/trace, engine/api_trace.c), each with a
 *     filter: outbound sessions to a queue (domain), inbound sessions from
 *     a network (source).
 * A line: "TIME sID in|out PEER LOCAL EVENT TEXT", TIME RFC 3339 UTC with
 * milliseconds, EVENT one of connect tls close cmd reply data; control
 * bytes in TEXT are written \xNN.
 *
 * Workers never wait on I/O or on a reader: a line is copied into a
 * bounded buffer (the file's, each subscriber's) under a short mutex; when
 * one is full the line is dropped and counted, and the reader later sees
 * "[N events dropped]". The trace thread writes the file buffer out and
 * wakes live readers (their HTTP connections) that have something to read,
 * whose time is up, or that owe a keep-alive newline (how a client that
 * went away is noticed while nothing is traced).
 *
 * Ownership: struct trace is salvod's (trace_start .. trace_stop, after
 * every session is gone); a subscriber is its HTTP stream's, from
 * trace_subscribe() to trace_unsubscribe().
 */
#ifndef SALVO_TRACE_H
#define SALVO_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/config.h"

struct trace;
struct trace_sub;
struct smtp_trace;

#define TRACE_FILE_NAME "smtp-trace.log"
#define TRACE_SECONDS_DEFAULT 60
#define TRACE_SECONDS_MAX 3600
#define TRACE_SUBS_MAX 32          /* live subscribers at once (256 KiB each) */

/* Start the trace thread; the file (log_dir/smtp-trace.log) is opened when
 * its first line comes. 0 or -errno. */
int trace_start(struct trace **out, const char *log_dir);
/* End every live stream (they finish what they hold and close): before
 * the HTTP server stops. */
void trace_end_streams(struct trace *tr);
/* Stop the thread, write out what is buffered, free. After every session
 * ended (smtp_trace_end). NULL is fine. */
void trace_stop(struct trace *tr);

/* SMTP_TRACE_* from log-connections, log-commands, log-data, log-tls of a queue's
 * <domain> (config_domain_for), each inherited from <domain *>. */
unsigned trace_domain_flags(const struct config *cfg, const struct config_domain *d);
/* A session starts (on its worker): set its sink and configured flags.
 * tr NULL: the session stays untraced. */
void trace_session_out(struct trace *tr, struct smtp_trace *t, const char *queue, unsigned cfg_flags);
void trace_session_in(struct trace *tr, struct smtp_trace *t, unsigned cfg_flags);

/* A live subscriber's filter: outbound sessions to queue `domain` (when
 * set), inbound sessions from `net` (when has_net); data: message lines too. */
struct trace_filter {
	char domain[256];          /* lower-case; "" none */
	bool has_net;
	struct config_cidr net;
	bool data;
};

/* A new subscriber until seconds from now (clamped to 1..TRACE_SECONDS_MAX).
 * NULL on ENOMEM or when TRACE_SUBS_MAX are listening. */
struct trace_sub *trace_subscribe(struct trace *tr, const struct trace_filter *f, unsigned seconds);
/* Its reader (any one thread): bytes copied into buf, 0 when nothing is
 * there now (wake() will be called when there is), -1 at the end. */
ssize_t trace_sub_read(struct trace_sub *s, char *buf, size_t max);
/* How to wake the reader; called by the trace thread, never after
 * trace_unsubscribe() returned. */
void trace_sub_set_wake(struct trace_sub *s, void (*wake)(void *arg), void *arg);
void trace_unsubscribe(struct trace_sub *s);

/* For metrics: live subscribers now; lines dropped in all. */
unsigned trace_subscribers(const struct trace *tr);
uint64_t trace_dropped(const struct trace *tr);

#endif
