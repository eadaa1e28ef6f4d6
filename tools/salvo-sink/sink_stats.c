/*
 * sink_stats.c - what salvo-sink counts and what it writes to disk.
 *
 * Owns: the per-client-IP records (counts and distinct HELO names), the --stats
 * JSON file and the --dump files, plus the small buffer/JSON helpers the other
 * files share.
 *
 * Files are replaced atomically: written to NAME.tmp, then renamed over NAME, so a
 * reader never sees a half-written file. For a dump, NNN.eml is renamed into place
 * before NNN.json, so a reader that sees NNN.json can trust NNN.eml is complete.
 * Writes are plain blocking write(2): the sink is a test tool and stats files are
 * small, but a --dump of large messages does stall the loop while it writes.
 *
 * Clients are never forgotten while the process runs (a test talks from a handful
 * of addresses); HELO names are capped at SINK_HELO_MAX distinct ones per client.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sink.h"

/* ---- memory and buffers ---- */

void *sink_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fputs("salvo-sink: out of memory\n", stderr);
        abort();
    }
    return p;
}

void *sink_xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p) {
        fputs("salvo-sink: out of memory\n", stderr);
        abort();
    }
    return p;
}

char *sink_xstrndup(const char *s, size_t n)
{
    char *d = sink_xmalloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static void buf_reserve(struct sink_buf *b, size_t extra)
{
    if (b->len + extra <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra)
        cap *= 2;
    b->p = sink_xrealloc(b->p, cap);
    b->cap = cap;
}

void sink_buf_append(struct sink_buf *b, const void *data, size_t n)
{
    buf_reserve(b, n);
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

void sink_buf_puts(struct sink_buf *b, const char *s)
{
    sink_buf_append(b, s, strlen(s));
}

void sink_buf_printf(struct sink_buf *b, const char *fmt, ...)
{
    /* Format straight into the spare room; grow and format again if it did not fit. */
    buf_reserve(b, 128);
    for (;;) {
        size_t room = b->cap - b->len;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, room, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        buf_reserve(b, (size_t)n + 1);
    }
}

void sink_buf_free(struct sink_buf *b)
{
    free(b->p);
    *b = (struct sink_buf){ 0 };
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t len;
    unsigned min;
    unsigned cp;
    if (s[0] < 0xc2 || s[0] > 0xf4)
        return 0;
    if (s[0] < 0xe0) {
        len = 2, min = 0x80, cp = s[0] & 0x1f;
    } else if (s[0] < 0xf0) {
        len = 3, min = 0x800, cp = s[0] & 0x0f;
    } else {
        len = 4, min = 0x10000, cp = s[0] & 0x07;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

void sink_json_str(struct sink_buf *b, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    buf_reserve(b, n + 2);
    sink_buf_append(b, "\"", 1);
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        if (c == '"' || c == '\\') {
            char esc[2] = { '\\', (char)c };
            sink_buf_append(b, esc, 2);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            sink_buf_printf(b, "\\u%04x", c);
            i++;
        } else if (c < 0x80) {
            sink_buf_append(b, &s[i], 1);
            i++;
        } else {
            size_t len = utf8_len(s + i, n - i);
            if (len) {
                sink_buf_append(b, s + i, len);
                i += len;
            } else {
                sink_buf_puts(b, "\\ufffd");   /* not UTF-8: keep the JSON valid */
                i++;
            }
        }
    }
    sink_buf_append(b, "\"", 1);
}

/* ---- counting ---- */

static unsigned ip_bucket(const char *ip)
{
    unsigned h = 5381;
    for (; *ip; ip++)
        h = h * 33 + (unsigned char)*ip;
    return h % 256;
}

struct sink_client *sink_stats_client(struct sink_stats *st, const char *ip)
{
    unsigned b = ip_bucket(ip);
    for (struct sink_client *c = st->buckets[b]; c; c = c->hash_next)
        if (strcmp(c->ip, ip) == 0)
            return c;
    struct sink_client *c = sink_xmalloc(sizeof *c);
    *c = (struct sink_client){ 0 };
    snprintf(c->ip, sizeof c->ip, "%s", ip);
    c->hash_next = st->buckets[b];
    st->buckets[b] = c;
    if (st->last)
        st->last->order_next = c;
    else
        st->first = c;
    st->last = c;
    return c;
}

void sink_stats_helo(struct sink_stats *st, struct sink_client *c, const char *name)
{
    for (size_t i = 0; i < c->nhelo; i++)
        if (strcmp(c->helo[i], name) == 0)
            return;
    if (c->nhelo >= SINK_HELO_MAX)
        return;
    c->helo = sink_xrealloc(c->helo, (c->nhelo + 1) * sizeof *c->helo);
    c->helo[c->nhelo++] = sink_xstrndup(name, strlen(name));
    st->dirty = true;
}

void sink_stats_message(struct sink_stats *st, struct sink_session *s)
{
    struct sink_counts *counts[] = { &s->client->counts, &s->listener->counts };
    for (size_t i = 0; i < 2; i++) {
        counts[i]->messages++;
        counts[i]->recipients += s->nrcpt;
    }
    st->messages++;
    st->recipients += s->nrcpt;
    st->dirty = true;
}

void sink_stats_free(struct sink_stats *st)
{
    struct sink_client *c = st->first;
    while (c) {
        struct sink_client *next = c->order_next;
        for (size_t i = 0; i < c->nhelo; i++)
            free(c->helo[i]);
        free(c->helo);
        free(c);
        c = next;
    }
    *st = (struct sink_stats){ 0 };
}

/* ---- files ---- */

/* Write data to path.tmp and rename it over path. Returns 0 or -errno. */
static int write_atomic(const char *path, const char *data, size_t n)
{
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        return -ENAMETOOLONG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    int rc = 0;
    while (n > 0) {
        ssize_t w = write(fd, data, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            rc = -errno;
            break;
        }
        data += w;
        n -= (size_t)w;
    }
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -errno;
    if (rc < 0)
        unlink(tmp);
    return rc;
}

static void json_counts(struct sink_buf *b, const struct sink_counts *c)
{
    sink_buf_printf(b, "\"messages\":%" PRIu64 ",\"recipients\":%" PRIu64
                       ",\"connections\":%" PRIu64, c->messages, c->recipients, c->connections);
}

int sink_stats_write(const struct sink *sk)
{
    const struct sink_stats *st = &sk->stats;
    struct sink_buf b = { 0 };
    sink_buf_printf(&b,
                    "{\"messages\":%" PRIu64 ",\"recipients\":%" PRIu64
                    ",\"connections\":%" PRIu64 ",\"active\":%" PRIu64
                    ",\"aborted\":%" PRIu64 ",\"rcpt_deferred\":%" PRIu64
                    ",\"rcpt_rejected\":%" PRIu64 ",\"data_deferred\":%" PRIu64
                    ",\"data_rejected\":%" PRIu64 ",\n\"clients\":{",
                    st->messages, st->recipients, st->connections, st->active, st->aborted,
                    st->rcpt_deferred, st->rcpt_rejected, st->data_deferred, st->data_rejected);
    for (const struct sink_client *c = st->first; c; c = c->order_next) {
        if (c != st->first)
            sink_buf_puts(&b, ",");
        sink_buf_puts(&b, "\n ");
        sink_json_str(&b, c->ip, strlen(c->ip));
        sink_buf_puts(&b, ":{");
        json_counts(&b, &c->counts);
        sink_buf_printf(&b, ",\"peak_active\":%u,\"max_msgs_per_conn\":%u", c->peak_active,
                        c->max_msgs_per_conn);
        sink_buf_puts(&b, ",\"helo\":[");
        for (size_t i = 0; i < c->nhelo; i++) {
            if (i)
                sink_buf_puts(&b, ",");
            sink_json_str(&b, c->helo[i], strlen(c->helo[i]));
        }
        sink_buf_puts(&b, "]}");
    }
    sink_buf_puts(&b, "},\n\"listen\":{");
    for (size_t i = 0; i < sk->nlisteners; i++) {
        const struct sink_listener *l = &sk->listeners[i];
        sink_buf_puts(&b, i ? ",\n " : "\n ");
        sink_json_str(&b, l->name, strlen(l->name));
        sink_buf_puts(&b, ":{");
        json_counts(&b, &l->counts);
        sink_buf_puts(&b, "}");
    }
    sink_buf_puts(&b, "}}\n");
    int rc = write_atomic(sk->opt.stats_path, b.p, b.len);
    sink_buf_free(&b);
    return rc;
}

int sink_dump_message(const struct sink *sk, const struct sink_session *s, uint64_t seq)
{
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%" PRIu64 ".eml", sk->opt.dump_dir, seq)
        >= sizeof path - 8)
        return -ENAMETOOLONG;
    int rc = write_atomic(path, s->msg.p ? s->msg.p : "", s->msg.len);
    if (rc < 0)
        return rc;

    struct sink_buf b = { 0 };
    sink_buf_printf(&b, "{\"seq\":%" PRIu64 ",\"client_ip\":", seq);
    sink_json_str(&b, s->client->ip, strlen(s->client->ip));
    sink_buf_puts(&b, ",\"listen\":");
    sink_json_str(&b, s->listener->name, strlen(s->listener->name));
    sink_buf_puts(&b, ",\"helo\":");
    if (s->helo)
        sink_json_str(&b, s->helo, strlen(s->helo));
    else
        sink_buf_puts(&b, "null");
    sink_buf_puts(&b, ",\"mail_from\":");
    sink_json_str(&b, s->mail_from.p, strlen(s->mail_from.p));
    sink_buf_puts(&b, ",\"rcpt_to\":[");
    const char *a = s->rcpts.p;
    for (unsigned i = 0; i < s->nrcpt; i++, a += strlen(a) + 1) {
        if (i)
            sink_buf_puts(&b, ",");
        sink_json_str(&b, a, strlen(a));
    }
    sink_buf_printf(&b, "],\"size\":%" PRIu64 "}\n", s->msg_size);

    snprintf(path, sizeof path, "%s/%" PRIu64 ".json", sk->opt.dump_dir, seq);
    rc = write_atomic(path, b.p, b.len);
    sink_buf_free(&b);
    return rc;
}

/* Returns 0 or -errno; a failure is reported once until a write succeeds again. */
int sink_stats_flush(struct sink *sk)
{
    if (!sk->opt.stats_path)
        return 0;
    int rc = sink_stats_write(sk);
    if (rc < 0 && !sk->stats_failing)
        fprintf(stderr, "salvo-sink: cannot write %s: %s\n", sk->opt.stats_path, strerror(-rc));
    sk->stats_failing = rc < 0;
    sk->stats.dirty = false;
    return rc;
}
