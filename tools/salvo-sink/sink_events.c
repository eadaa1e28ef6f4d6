/*
 * sink_events.c - the `--events FILE` JSON-lines log (see sink_events.h).
 * One stdio stream with a 1 MiB buffer: lines are formatted into a
 * sink_buf and written in one fwrite; the tick flushes.
 */
#include "sink_events.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "sink.h"

static double now_s(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

int sink_events_open(struct sink *sk, const char *path)
{
    sk->events = fopen(path, "w");
    if (!sk->events)
        return -errno;
    setvbuf(sk->events, NULL, _IOFBF, 1 << 20);
    return 0;
}

static void put(struct sink *sk, struct sink_buf *b)
{
    sink_buf_puts(b, "}\n");
    fwrite(b->p, 1, b->len, sk->events);
    sink_buf_free(b);
}

static void head(struct sink_buf *b, const char *ev, const struct sink_session *s)
{
    sink_buf_printf(b, "{\"ev\":\"%s\",\"time\":%.6f,\"conn\":%" PRIu32, ev, now_s(), s->gen);
}

void sink_events_conn(struct sink *sk, struct sink_session *s, unsigned open_from_client)
{
    struct sink_buf b = {0};
    if (!sk->events)
        return;
    head(&b, "conn", s);
    sink_buf_puts(&b, ",\"client\":");
    sink_json_str(&b, s->client->ip, strlen(s->client->ip));
    sink_buf_puts(&b, ",\"listen\":");
    sink_json_str(&b, s->listener->name, strlen(s->listener->name));
    sink_buf_printf(&b, ",\"open_from_client\":%u", open_from_client);
    put(sk, &b);
}

void sink_events_msg(struct sink *sk, struct sink_session *s)
{
    struct sink_buf b = {0};
    const char *r = s->rcpts.p;
    if (!sk->events)
        return;
    head(&b, "msg", s);
    sink_buf_printf(&b, ",\"n_in_conn\":%u,\"seq\":%" PRIu64 ",\"client\":", s->n_msgs, sk->next_seq);
    sink_json_str(&b, s->client->ip, strlen(s->client->ip));
    sink_buf_puts(&b, ",\"listen\":");
    sink_json_str(&b, s->listener->name, strlen(s->listener->name));
    sink_buf_puts(&b, ",\"helo\":");
    if (s->helo)
        sink_json_str(&b, s->helo, strlen(s->helo));
    else
        sink_buf_puts(&b, "null");
    sink_buf_puts(&b, ",\"mail_from\":");
    sink_json_str(&b, s->mail_from.p ? s->mail_from.p : "", s->mail_from.p ? strlen(s->mail_from.p) : 0);
    sink_buf_puts(&b, ",\"rcpt_to\":[");
    for (unsigned i = 0; i < s->nrcpt; i++, r += strlen(r) + 1) {
        if (i)
            sink_buf_puts(&b, ",");
        sink_json_str(&b, r, strlen(r));
    }
    sink_buf_printf(&b, "],\"size\":%" PRIu64 ",\"via\":\"%s\"", s->msg_size, s->bdat ? "bdat" : "data");
    put(sk, &b);
}

void sink_events_reply(struct sink *sk, struct sink_session *s, const char *at, const char *reply,
                       const char *subject)
{
    struct sink_buf b = {0};
    if (!sk->events)
        return;
    head(&b, "reply", s);
    sink_buf_printf(&b, ",\"at\":\"%s\",\"code\":%d,\"subject\":", at, atoi(reply));
    sink_json_str(&b, subject ? subject : "", subject ? strlen(subject) : 0);
    put(sk, &b);
}

void sink_events_close(struct sink *sk, struct sink_session *s)
{
    struct sink_buf b = {0};
    if (!sk->events)
        return;
    head(&b, "close", s);
    put(sk, &b);
}

void sink_events_flush(struct sink *sk)
{
    if (sk->events)
        fflush(sk->events);
}

void sink_events_close_file(struct sink *sk)
{
    if (sk->events)
        fclose(sk->events);
    sk->events = NULL;
}
