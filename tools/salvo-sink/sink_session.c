/*
 * sink_session.c - the SMTP server side of one salvo-sink session.
 *
 * Owns: turning received bytes into replies. Input arrives in arbitrary pieces
 * (sink_session_feed); commands are assembled into s->line, answered in order by
 * appending to s->out (so pipelined commands get their replies in one send, in
 * order), and DATA is unstuffed byte-exactly by a small state machine
 * (enum sink_data_pos) that survives any packet split, including splits inside
 * "\r\n.\r\n". BDAT chunks (RFC 3030 CHUNKING) are counted off s->chunk_left and
 * taken literally. This file does no I/O: sink_loop.c sends s->out and closes the
 * session when the state becomes QUIT and the output has drained.
 *
 * Invariants:
 *   - only "\r\n" ends a DATA line; a bare '\n' is message content.
 *   - the message bytes are those received minus the stuffing dots and minus the
 *     terminating ".\r\n"; the CRLF before the terminator belongs to the message.
 *   - a session leaving DATA other than through its terminator, or BDAT before the
 *     chunk's last byte, is counted aborted (sink_session_set_state), whatever the
 *     cause: EOF, reset, timeout, shutdown.
 *   - a BDAT chunk is always consumed, exactly its declared size, before its reply,
 *     whether it is taken or refused; a BDAT line whose size cannot be read gets 501
 *     and the session is closed, since the bytes after it can no longer be framed.
 *   - the LAST chunk ends the message through end_of_data(), like DATA's terminator:
 *     the same size limit, fault rules, --dump, stats and events.
 *   - command lines longer than SINK_LINE_MAX bytes get 500 and are discarded up to
 *     their LF; DATA lines have no length limit, only the message size does.
 * Diagnostics: state transitions on stderr with SALVO_SINK_TRACE=1; a failed dump
 * write is reported on stderr (and the message gets 451). Nothing per message.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sink.h"
#include "sink_events.h"

static const char *const state_names[] = {
    [SINK_S_GREETING] = "GREETING",
    [SINK_S_CMD] = "CMD",
    [SINK_S_DATA] = "DATA",
    [SINK_S_BDAT] = "BDAT",
    [SINK_S_QUIT] = "QUIT",
    [SINK_S_CLOSING] = "CLOSING",
};

void sink_session_set_state(struct sink *sk, struct sink_session *s, enum sink_state to)
{
    if (s->state == to)
        return;
    if (sk->opt.trace)
        fprintf(stderr, "salvo-sink: session %u %s -> %s\n", s->id,
                state_names[s->state], state_names[to]);
    if ((s->state == SINK_S_DATA || s->state == SINK_S_BDAT) && to != SINK_S_CMD) {
        sk->stats.aborted++;
        sk->stats.dirty = true;
    }
    s->state = to;
}

static void reply(struct sink_session *s, const char *text)
{
    sink_buf_puts(&s->out, text);
    sink_buf_append(&s->out, "\r\n", 2);
}

void sink_session_reset(struct sink_session *s)
{
    s->has_mail = false;
    s->rcpt_tried = 0;
    s->nrcpt = 0;
    s->mail_from.len = 0;
    s->rcpts.len = 0;
    s->bdat = false;
    s->msg.len = 0;
    s->msg_size = 0;
    /* Why: one 64 MiB message must not pin 64 MiB for the rest of the session. */
    if (s->msg.cap > (1u << 20))
        sink_buf_free(&s->msg);
}

void sink_session_free(struct sink_session *s)
{
    free(s->helo);
    s->helo = NULL;
    sink_buf_free(&s->out);
    sink_buf_free(&s->out_wire);
    sink_buf_free(&s->mail_from);
    sink_buf_free(&s->rcpts);
    sink_buf_free(&s->msg);
}

/* A --fault rule that fires answers with its reply (and may close). */
static bool rule_fires(struct sink *sk, struct sink_session *s, enum sink_rule_at at, const char *at_name,
                       const char *subjects, unsigned n)
{
    const struct sink_rule *r = sink_rules_fire(&sk->rules, at, subjects, n);
    if (!r)
        return false;
    if (r->delay_ms > s->pending_delay_ms)
        s->pending_delay_ms = r->delay_ms;
    if (!r->reply)
        return false;                   /* a delay only: the normal reply follows */
    sink_events_reply(sk, s, at_name, r->reply, n == 1 ? subjects : NULL);
    sink_buf_printf(&s->out, "%s\r\n", r->reply);
    if (r->close)
        sink_session_set_state(sk, s, SINK_S_QUIT);
    return true;
}

void sink_session_greet(struct sink *sk, struct sink_session *s)
{
    if (sk->rules.max_conn_per_ip && s->client->active > sk->rules.max_conn_per_ip) {
        sink_events_reply(sk, s, "connect", "421", s->client->ip);
        sink_buf_printf(&s->out, "421 4.7.0 %s too many connections from your IP\r\n", sk->opt.hostname);
        sink_session_set_state(sk, s, SINK_S_QUIT);
        return;
    }
    if (rule_fires(sk, s, SINK_AT_CONNECT, "connect", s->client->ip, 1)) {
        if (s->state == SINK_S_GREETING)
            sink_session_set_state(sk, s, SINK_S_CMD);
        return;
    }
    sink_buf_printf(&s->out, "220 %s ESMTP salvo-sink\r\n", sk->opt.hostname);
    sink_session_set_state(sk, s, SINK_S_CMD);
}

void sink_session_timeout(struct sink *sk, struct sink_session *s)
{
    sink_buf_printf(&s->out, "421 4.4.2 %s Error: timeout exceeded\r\n", sk->opt.hostname);
    sink_session_set_state(sk, s, SINK_S_QUIT);
}

/* ---- commands ---- */

/*
 * Parse a reverse- or forward-path at p ("<addr> params" or, leniently, "addr params").
 * NUL-terminates the address in place; *rest points after it. Returns the address or
 * NULL on a syntax error. A source route "<@a,@b:user@d>" yields "user@d".
 */
static char *parse_path(char *p, char **rest)
{
    while (*p == ' ')
        p++;
    char *addr, *end;
    if (*p == '<') {
        addr = ++p;
        bool quoted = false;
        for (; *p && (quoted || *p != '>'); p++) {
            if (*p == '\\' && quoted && p[1])
                p++;
            else if (*p == '"')
                quoted = !quoted;
        }
        if (*p != '>')
            return NULL;
        end = p;
        *rest = p + 1;
    } else {
        addr = p;
        while (*p && *p != ' ')
            p++;
        end = p;
        *rest = *p ? p + 1 : p;
    }
    *end = '\0';
    if (*addr == '@') {
        char *colon = strchr(addr, ':');
        if (!colon)
            return NULL;
        addr = colon + 1;
    }
    return addr;
}

static void cmd_helo_ehlo(struct sink *sk, struct sink_session *s, char *arg, bool ehlo)
{
    size_t n = strlen(arg);
    while (n && arg[n - 1] == ' ')
        arg[--n] = '\0';
    if (n == 0) {
        reply(s, ehlo ? "501 5.5.4 Syntax: EHLO hostname" : "501 5.5.4 Syntax: HELO hostname");
        return;
    }
    free(s->helo);
    s->helo = sink_xstrndup(arg, n);
    sink_stats_helo(&sk->stats, s->client, s->helo);
    sink_session_reset(s);
    if (rule_fires(sk, s, SINK_AT_HELO, "helo", s->helo, 1))
        return;
    if (!ehlo) {
        sink_buf_printf(&s->out, "250 %s\r\n", sk->opt.hostname);
        return;
    }
    sink_buf_printf(&s->out,
                    "250-%s\r\n"
                    "250-PIPELINING\r\n"
                    "250-SIZE %u\r\n"
                    "250-8BITMIME\r\n"
                    "250-ENHANCEDSTATUSCODES\r\n"
                    "%s"
                    "250 SMTPUTF8\r\n",
                    sk->opt.hostname, SINK_MSG_MAX, sk->opt.chunking ? "250-CHUNKING\r\n" : "");
}

static void cmd_helo(struct sink *sk, struct sink_session *s, char *arg)
{
    cmd_helo_ehlo(sk, s, arg, false);
}

static void cmd_ehlo(struct sink *sk, struct sink_session *s, char *arg)
{
    cmd_helo_ehlo(sk, s, arg, true);
}

static void cmd_mail(struct sink *sk, struct sink_session *s, char *arg)
{
    char *rest, *addr;
    if (strncasecmp(arg, "FROM:", 5) != 0 || !(addr = parse_path(arg + 5, &rest))) {
        reply(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
        return;
    }
    if (s->has_mail) {
        reply(s, "503 5.5.1 Error: nested MAIL command");
        return;
    }
    char *save = NULL;
    for (char *tok = strtok_r(rest, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        if (strncasecmp(tok, "SIZE=", 5) == 0 && strtoull(tok + 5, NULL, 10) > SINK_MSG_MAX) {
            reply(s, "552 5.3.4 Error: message size exceeds fixed limit");
            return;
        }
    }
    if (rule_fires(sk, s, SINK_AT_MAIL, "mail", addr, 1))
        return;
    sink_buf_append(&s->mail_from, addr, strlen(addr) + 1);
    s->has_mail = true;
    reply(s, "250 2.1.0 Ok");
}

static void cmd_rcpt(struct sink *sk, struct sink_session *s, char *arg)
{
    if (!s->has_mail) {
        reply(s, "503 5.5.1 Error: need MAIL command");
        return;
    }
    char *rest, *addr;
    if (strncasecmp(arg, "TO:", 3) != 0 || !(addr = parse_path(arg + 3, &rest)) || !*addr) {
        reply(s, "501 5.5.4 Syntax: RCPT TO:<address>");
        return;
    }
    s->rcpt_tried++;
    if (s->nrcpt >= SINK_RCPT_MAX) {
        reply(s, "452 4.5.3 Error: too many recipients");
        return;
    }
    if (rule_fires(sk, s, SINK_AT_RCPT, "rcpt", addr, 1)) {
        /* the reply just queued is the rule's: count it like the other faults */
        const char *last = s->out.p + s->out.len;
        while (last > s->out.p && last[-1] != '\n') last--;
        for (last -= last > s->out.p ? 1 : 0; last > s->out.p && last[-1] != '\n'; last--) {}
        if (*last == '4')
            sk->stats.rcpt_deferred++;
        else
            sk->stats.rcpt_rejected++;
        sk->stats.dirty = true;
        return;
    }
    const char *fault = sink_faults_rcpt(&sk->faults, addr);
    if (fault) {
        if (fault[0] == '4')
            sk->stats.rcpt_deferred++;
        else
            sk->stats.rcpt_rejected++;
        sk->stats.dirty = true;
        reply(s, fault);
        return;
    }
    sink_buf_append(&s->rcpts, addr, strlen(addr) + 1);
    s->nrcpt++;
    reply(s, "250 2.1.5 Ok");
}

/* Why message content (DATA or a BDAT chunk) cannot be taken now, or NULL. */
static const char *content_refusal(const struct sink_session *s)
{
    if (!s->has_mail)
        return "503 5.5.1 Error: need MAIL command";
    if (s->nrcpt == 0)
        return s->rcpt_tried ? "554 5.5.1 Error: no valid recipients" : "503 5.5.1 Error: need RCPT command";
    return NULL;
}

static void cmd_data(struct sink *sk, struct sink_session *s, char *arg)
{
    const char *refusal = s->bdat ? "503 5.5.1 Error: DATA after BDAT" : content_refusal(s);

    if (refusal) {
        reply(s, refusal);
        return;
    }
    s->dpos = SINK_D_BOL;
    s->msg_size = 0;
    s->msg.len = 0;
    reply(s, "354 End data with <CR><LF>.<CR><LF>");
    sink_session_set_state(sk, s, SINK_S_DATA);
}

/*
 * "chunk-size [LAST]": 1-20 decimal digits fitting uint64, then optionally LAST (any
 * case), spaces between and after. 0, or -1 for anything else.
 */
static int parse_bdat(const char *arg, uint64_t *size, bool *last)
{
    uint64_t v = 0;
    size_t nd = 0;
    for (; *arg >= '0' && *arg <= '9'; arg++, nd++) {
        unsigned d = (unsigned)(*arg - '0');
        if (nd == 20 || v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    if (nd == 0 || (*arg && *arg != ' '))
        return -1;
    while (*arg == ' ')
        arg++;
    *last = strncasecmp(arg, "LAST", 4) == 0 && (arg[4] == '\0' || arg[4] == ' ');
    if (*last)
        arg += 4;
    while (*arg == ' ')
        arg++;
    if (*arg)
        return -1;
    *size = v;
    return 0;
}

static void end_of_chunk(struct sink *sk, struct sink_session *s);

/*
 * BDAT chunk-size [LAST] (RFC 3030). The chunk is judged now and answered once its
 * bytes are consumed (end_of_chunk). A refused chunk is still consumed, and its
 * reply resets the transaction, so the later chunks of that transaction find no
 * MAIL and are refused (503) and consumed in turn.
 */
static void cmd_bdat(struct sink *sk, struct sink_session *s, char *arg)
{
    if (!sk->opt.chunking) {
        reply(s, "502 5.5.1 Error: command not implemented");
        return;
    }
    uint64_t size;
    bool last;
    if (parse_bdat(arg, &size, &last) < 0) {
        /* Why close: the chunk's size is not known, so its bytes cannot be told from commands. */
        reply(s, "501 5.5.4 Syntax: BDAT chunk-size [LAST]");
        sink_session_set_state(sk, s, SINK_S_QUIT);
        return;
    }
    s->chunk_left = s->chunk_size = size;
    s->chunk_last = last;
    s->chunk_refusal = content_refusal(s);
    if (!s->chunk_refusal && !s->bdat) {
        s->bdat = true;                 /* the message starts with this chunk */
        s->msg_size = 0;
        s->msg.len = 0;
    }
    if (size == 0)
        end_of_chunk(sk, s);
    else
        sink_session_set_state(sk, s, SINK_S_BDAT);
}

static void cmd_rset(struct sink *sk, struct sink_session *s, char *arg)
{
    sink_session_reset(s);
    reply(s, "250 2.0.0 Ok");
}

static void cmd_noop(struct sink *sk, struct sink_session *s, char *arg)
{
    reply(s, "250 2.0.0 Ok");
}

static void cmd_quit(struct sink *sk, struct sink_session *s, char *arg)
{
    reply(s, "221 2.0.0 Bye");
    sink_session_set_state(sk, s, SINK_S_QUIT);
}

static const struct {
    const char *verb;
    void (*run)(struct sink *sk, struct sink_session *s, char *arg);
} commands[] = {
    { "EHLO", cmd_ehlo }, { "HELO", cmd_helo }, { "MAIL", cmd_mail },
    { "RCPT", cmd_rcpt }, { "DATA", cmd_data }, { "RSET", cmd_rset },
    { "NOOP", cmd_noop }, { "QUIT", cmd_quit }, { "BDAT", cmd_bdat },
};

/* line is NUL-terminated, without its line ending, and writable. */
static void run_command(struct sink *sk, struct sink_session *s, char *line, size_t len)
{
    if (memchr(line, '\0', len)) {
        reply(s, "500 5.5.2 Error: bad syntax");
        return;
    }
    size_t vlen = strcspn(line, " ");
    char *arg = line + vlen;
    while (*arg == ' ')
        arg++;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (vlen == 4 && strncasecmp(line, commands[i].verb, 4) == 0) {
            commands[i].run(sk, s, arg);
            return;
        }
    reply(s, "500 5.5.2 Error: command not recognized");
}

/* Consume up to one line's worth of p; returns the bytes used. */
static size_t feed_line(struct sink *sk, struct sink_session *s, const char *p, size_t n)
{
    const char *lf = memchr(p, '\n', n);
    size_t take = lf ? (size_t)(lf - p) + 1 : n;

    if (s->line_too_long) {
        if (lf) {
            s->line_too_long = false;
            reply(s, "500 5.5.0 Error: line too long");
        }
        return take;
    }
    if (s->line_len + take > sizeof s->line) {
        s->line_len = 0;
        if (lf)
            reply(s, "500 5.5.0 Error: line too long");
        else
            s->line_too_long = true;
        return take;
    }
    memcpy(s->line + s->line_len, p, take);
    s->line_len += take;
    if (!lf)
        return take;

    size_t len = s->line_len - 1;
    if (len && s->line[len - 1] == '\r')
        len--;
    s->line_len = 0;
    if (len > SINK_LINE_MAX) {
        reply(s, "500 5.5.0 Error: line too long");
        return take;
    }
    s->line[len] = '\0';
    run_command(sk, s, s->line, len);
    return take;
}

static void end_of_data(struct sink *sk, struct sink_session *s)
{
    sink_session_set_state(sk, s, SINK_S_CMD);
    const char *fault = NULL;
    if (s->msg_size > SINK_MSG_MAX) {
        fault = "552 5.3.4 Error: message too big";
    } else {
        fault = sink_faults_data(&sk->faults, s->rcpts.p, s->nrcpt);
        if (!fault && rule_fires(sk, s, SINK_AT_DATA, "data", s->rcpts.p, s->nrcpt)) {
            sk->stats.data_deferred++;
            sk->stats.dirty = true;
            sink_session_reset(s);
            return;
        }
    }
    if (fault) {
        if (fault[0] == '4')
            sk->stats.data_deferred++;
        else
            sk->stats.data_rejected++;
        sk->stats.dirty = true;
        reply(s, fault);
        sink_session_reset(s);
        return;
    }

    uint64_t seq = sk->next_seq + 1;
    if (sk->opt.dump_dir) {
        int rc = sink_dump_message(sk, s, seq);
        if (rc < 0) {
            fprintf(stderr, "salvo-sink: cannot write dump %s/%" PRIu64 ".eml: %s\n",
                    sk->opt.dump_dir, seq, strerror(-rc));
            reply(s, "451 4.3.0 Error: cannot write dump file");
            sink_session_reset(s);
            return;
        }
    }
    sk->next_seq = seq;
    s->n_msgs++;
    if (s->n_msgs > s->client->max_msgs_per_conn)
        s->client->max_msgs_per_conn = s->n_msgs;
    sink_stats_message(&sk->stats, s);
    sink_events_msg(sk, s);
    sink_buf_printf(&s->out, "250 2.0.0 Ok: queued as %" PRIu64 "\r\n", seq);
    sink_session_reset(s);
}

static inline void emit(struct sink *sk, struct sink_session *s, const char *p, size_t n)
{
    s->msg_size += n;
    if (sk->opt.dump_dir && s->msg_size <= SINK_MSG_MAX)
        sink_buf_append(&s->msg, p, n);
}

/*
 * Unstuff DATA bytes from p until the terminator; returns the bytes used (all of
 * them, or up to and including the terminator's LF).
 */
static size_t feed_data(struct sink *sk, struct sink_session *s, const char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        switch (s->dpos) {
        case SINK_D_MID: {
            /* The hot path: copy up to and including the next "\r" (and its "\n"). */
            const char *cr = memchr(p + i, '\r', n - i);
            if (!cr) {
                emit(sk, s, p + i, n - i);
                return n;
            }
            size_t span = (size_t)(cr - (p + i)) + 1;
            if (i + span < n && cr[1] == '\n') {
                span++;
                s->dpos = SINK_D_BOL;
            } else {
                s->dpos = SINK_D_CR;
            }
            emit(sk, s, p + i, span);
            i += span;
            break;
        }
        case SINK_D_CR: {
            char c = p[i++];
            emit(sk, s, &c, 1);
            s->dpos = c == '\n' ? SINK_D_BOL : c == '\r' ? SINK_D_CR : SINK_D_MID;
            break;
        }
        case SINK_D_BOL:
            if (p[i] == '.') {
                i++;
                s->dpos = SINK_D_DOT;
            } else {
                s->dpos = SINK_D_MID;
            }
            break;
        case SINK_D_DOT:
            /* The dot is dropped either way: stuffing, or the terminator's. */
            if (p[i] == '\r') {
                i++;
                s->dpos = SINK_D_DOT_CR;
            } else {
                s->dpos = SINK_D_MID;
            }
            break;
        case SINK_D_DOT_CR:
            if (p[i] == '\n') {
                end_of_data(sk, s);
                return i + 1;
            }
            /* ".\r" then not "\n": a stuffed line starting with "\r"; p[i] is next. */
            emit(sk, s, "\r", 1);
            s->dpos = SINK_D_CR;
            break;
        }
    }
    return n;
}

/* The current chunk is all in: answer it. */
static void end_of_chunk(struct sink *sk, struct sink_session *s)
{
    if (s->chunk_refusal) {
        sink_session_set_state(sk, s, SINK_S_CMD);
        reply(s, s->chunk_refusal);
        sink_session_reset(s);
        return;
    }
    if (s->chunk_last) {
        end_of_data(sk, s);             /* sets CMD first, so this is not an abort */
        return;
    }
    sink_session_set_state(sk, s, SINK_S_CMD);
    sink_buf_printf(&s->out, "250 2.0.0 %" PRIu64 " octets received\r\n", s->chunk_size);
}

/* Take the current chunk's bytes from p, literally; returns the bytes used. */
static size_t feed_chunk(struct sink *sk, struct sink_session *s, const char *p, size_t n)
{
    size_t take = s->chunk_left < n ? (size_t)s->chunk_left : n;
    if (!s->chunk_refusal)
        emit(sk, s, p, take);
    s->chunk_left -= take;
    if (s->chunk_left == 0)
        end_of_chunk(sk, s);
    return take;
}

void sink_session_feed(struct sink *sk, struct sink_session *s, const char *p, size_t n)
{
    while (n > 0) {
        size_t used;
        switch (s->state) {
        case SINK_S_CMD:
            used = feed_line(sk, s, p, n);
            break;
        case SINK_S_DATA:
            used = feed_data(sk, s, p, n);
            break;
        case SINK_S_BDAT:
            used = feed_chunk(sk, s, p, n);
            break;
        default:
            /* QUIT/CLOSING: anything after QUIT is ignored. GREETING: recv is not
             * armed before the banner, so nothing can arrive. */
            return;
        }
        p += used;
        n -= used;
    }
}
