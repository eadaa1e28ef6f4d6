/*
 * sink_events.h - salvo-sink's event log (`--events FILE`): one JSON line per
 * connection, message, fault reply and close, buffered and flushed on the
 * 200 ms tick and at exit. Tests compute concurrency per client, messages
 * per connection and rates from it.
 *   {"ev":"conn","time":T,"conn":N,"client":"IP","listen":"ADDR:PORT","open_from_client":K}
 *   {"ev":"msg","time":T,"conn":N,"n_in_conn":I,"client":"IP","listen":"…","helo":"…",
 *    "mail_from":"…","rcpt_to":["…"],"size":S}
 *   {"ev":"reply","time":T,"conn":N,"at":"rcpt","code":451,"subject":"…"}
 *   {"ev":"close","time":T,"conn":N}
 * T is wall-clock seconds with microseconds.
 */
#ifndef SALVO_SINK_EVENTS_H
#define SALVO_SINK_EVENTS_H

#include <stdio.h>

struct sink;
struct sink_session;

int  sink_events_open(struct sink *sk, const char *path);   /* 0 or -errno */
void sink_events_conn(struct sink *sk, struct sink_session *s, unsigned open_from_client);
void sink_events_msg(struct sink *sk, struct sink_session *s);
void sink_events_reply(struct sink *sk, struct sink_session *s, const char *at, const char *reply,
                       const char *subject);
void sink_events_close(struct sink *sk, struct sink_session *s);
void sink_events_flush(struct sink *sk);
void sink_events_close_file(struct sink *sk);

#endif
