/*
 * sink.h - salvo-sink's internal contract between its files.
 *
 *   sink.c          the process: options, listeners, pid file, start and shutdown
 *   sink_loop.c     the io_uring ring, every op and its completion, session lifetime
 *   sink_session.c  one SMTP session's protocol: bytes in -> replies out, DATA unstuffing,
 *                   BDAT chunks
 *   sink_stats.c    counters per client IP and per listener, the --stats JSON, --dump files
 *   sink_faults.c   the fault rule table (--defer-first, --reject, ...); see sink_faults.h
 *
 * Threading: everything runs on the one thread that owns the ring; nothing here is
 * thread-safe and nothing needs to be.
 *
 * Ownership: struct sink owns listeners, sessions (through the slot table), the stats
 * and the fault table; a session owns its buffers and strings and is freed in exactly
 * one place (sink_loop.c, session_release) once no io_uring op refers to it.
 */
#ifndef SALVO_SINK_H
#define SALVO_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <liburing.h>
#include <sys/socket.h>
#include <sys/signalfd.h>

#include "sink_faults.h"
#include "sink_rules.h"
#include <stdio.h>

#define SINK_LINE_MAX     4096u             /* command line bytes, CRLF excluded */
#define SINK_MSG_MAX      (64u << 20)       /* unstuffed DATA bytes */
#define SINK_RCPT_MAX     1000u             /* recipients per transaction */
#define SINK_OUT_MAX      (1u << 20)        /* unsent replies before we drop a client that never reads */
#define SINK_HELO_MAX     64u               /* distinct HELO names remembered per client IP */
#define SINK_NAME_MAX     64u               /* "[v6 addr]:port" and IP strings */

/* Growable byte buffer; p == NULL when empty and never allocated. */
struct sink_buf {
    char  *p;
    size_t len;
    size_t cap;
};

void  sink_buf_append(struct sink_buf *b, const void *data, size_t n);
void  sink_buf_puts(struct sink_buf *b, const char *s);
void  sink_buf_printf(struct sink_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void  sink_buf_free(struct sink_buf *b);
void  sink_json_str(struct sink_buf *b, const char *s, size_t n); /* "..." escaped, UTF-8 safe */
void *sink_xmalloc(size_t n);  /* abort on out-of-memory: a test tool has nothing better to do */
void *sink_xrealloc(void *p, size_t n);
char *sink_xstrndup(const char *s, size_t n);

/* What was accepted, per client IP, per listener and in total. */
struct sink_counts {
    uint64_t messages;
    uint64_t recipients;
    uint64_t connections;
};

struct sink_client {
    char                ip[SINK_NAME_MAX];
    struct sink_counts  counts;
    char              **helo;          /* distinct names in the order first seen */
    size_t              nhelo;
    unsigned            active;        /* sessions open from this IP now */
    unsigned            peak_active;
    unsigned            max_msgs_per_conn;
    struct sink_client *hash_next;
    struct sink_client *order_next;    /* insertion order, for stable JSON output */
};

struct sink_listener {
    int                fd;
    uint32_t           id;             /* index in sink.listeners, the user_data owner */
    bool               accept_armed;
    char               name[SINK_NAME_MAX];   /* "127.0.0.2:25", "[::1]:25" */
    struct sink_counts counts;
};

struct sink_stats {
    uint64_t messages, recipients, connections, active, aborted;
    uint64_t rcpt_rejected, rcpt_deferred, data_deferred, data_rejected;
    bool     dirty;                    /* changed since the last write of --stats */
    struct sink_client  *buckets[256];
    struct sink_client  *first, *last;
};

/*
 * The one state enum of a session. Transitions (traced on stderr with SALVO_SINK_TRACE=1):
 *   GREETING -> CMD            banner queued (at once, or when --greeting-delay fires)
 *   CMD      -> DATA           "354" sent for DATA
 *   DATA     -> CMD            terminator seen, message answered
 *   CMD      -> BDAT           "BDAT n [LAST]" with n > 0: the next n bytes are chunk data
 *   BDAT     -> CMD            the chunk consumed and answered (LAST: like DATA's terminator)
 *   CMD      -> QUIT           "221" (or "421") queued: close once it is sent
 *   any      -> CLOSING        socket shut down; freed when no op is in flight
 */
enum sink_state {
    SINK_S_GREETING,
    SINK_S_CMD,
    SINK_S_DATA,
    SINK_S_BDAT,
    SINK_S_QUIT,
    SINK_S_CLOSING,
};

/* Where the DATA unstuffer is within a line (only "\r\n" ends a line). */
enum sink_data_pos {
    SINK_D_BOL,      /* at the start of a line */
    SINK_D_MID,      /* inside a line */
    SINK_D_CR,       /* just after a '\r' inside a line */
    SINK_D_DOT,      /* after a '.' at the start of a line (not emitted) */
    SINK_D_DOT_CR,   /* after ".\r" at the start of a line (not emitted) */
};

struct sink_session {
    enum sink_state       state;
    int                   fd;
    uint32_t              id;          /* slot index, the user_data owner */
    uint32_t              gen;         /* distinguishes this session from the slot's others */
    struct sink_listener *listener;
    struct sink_client   *client;
    uint64_t              deadline_ms; /* idle timeout, monotonic */

    /* ops in flight: the session is freed only when all three are false */
    bool recv_armed, send_busy, greet_pending;
    bool on_flush;                     /* queued to send at the end of this loop turn */
    bool close_logged;                 /* the "close" event is out (when closing began) */
    struct sink_session *flush_next;
    struct __kernel_timespec greet_ts; /* read by the kernel at submission */

    /* replies: appended to out; out_wire is what the kernel is sending right now */
    struct sink_buf out, out_wire;
    size_t          wire_off;

    /* command line assembly */
    char   line[SINK_LINE_MAX + 2];
    size_t line_len;
    bool   line_too_long;              /* discarding until the next LF */

    /* transaction */
    char           *helo;              /* last HELO/EHLO argument, NULL before */
    unsigned        n_msgs;            /* messages accepted on this connection */
    unsigned        pending_delay_ms;  /* a --fault delay= for the replies queued now */
    bool            delay_elapsed;     /* the reply delay has run: send */
    bool            has_mail;
    unsigned        rcpt_tried;        /* RCPT commands in this transaction */
    unsigned        nrcpt;             /* accepted ones, NUL-separated in rcpts */
    struct sink_buf mail_from;         /* NUL-terminated */
    struct sink_buf rcpts;

    bool            bdat;              /* a chunk of this transaction was taken: DATA is refused */

    /* DATA */
    enum sink_data_pos dpos;
    uint64_t           msg_size;       /* unstuffed bytes, counted even past the limit */
    struct sink_buf    msg;            /* unstuffed bytes, only with --dump */

    /* the current BDAT chunk (RFC 3030), set by each BDAT command */
    uint64_t    chunk_left;            /* its bytes still to come */
    uint64_t    chunk_size;            /* as declared, for "250 ... <n> octets received" */
    bool        chunk_last;            /* LAST: it ends the message */
    const char *chunk_refusal;         /* a static reply if the chunk is refused, else NULL */
};

struct sink_options {
    const char *hostname;
    const char *stats_path;
    const char *events_path;
    const char *dump_dir;
    const char *pid_file;
    unsigned    greeting_delay_ms;
    unsigned    reply_delay_ms;        /* --reply-delay: every reply waits this long */
    unsigned    idle_timeout_s;
    bool        chunking;              /* advertise CHUNKING and take BDAT (off: --no-chunking) */
    bool        trace;
};

struct sink {
    struct sink_options    opt;
    struct io_uring        ring;
    bool                   ring_up;    /* ring initialised: io_uring_queue_exit due */
    struct io_uring_buf_ring *br;
    char                  *bufs;       /* provided recv buffers, mmap'd */
    size_t                 br_size;
    unsigned               br_returned; /* buffers re-added this turn, not yet advanced */

    struct sink_listener  *listeners;
    size_t                 nlisteners;
    bool                   accept_retry; /* an accept stopped on EMFILE: rearm on the tick */

    struct sink_session  **slots;
    size_t                 nslots;
    uint32_t              *free_ids;
    size_t                 nfree;
    struct sink_session   *flush_head;
    uint32_t               next_gen;

    int                    sigfd;
    struct signalfd_siginfo siginfo;   /* read target of the signalfd op */
    struct __kernel_timespec tick_ts;
    uint64_t               now_ms;
    uint64_t               last_sweep_ms;
    bool                   stop;

    uint64_t               next_seq;   /* "queued as N" and the dump file names */
    struct sink_stats      stats;
    bool                   stats_failing; /* the last --stats write failed (reported) */
    struct sink_faults     faults;
    struct sink_rules      rules;      /* --fault SPEC, --max-conn-per-ip */
    FILE                  *events;     /* --events */
};

/* sink.c */
void sink_format_ip(const struct sockaddr_storage *ss, char *out, size_t n);

/*
 * sink_loop.c. open: the ring and the buffer ring (0, or -1 with err filled).
 * run: arm accept on every listener, the tick and the signal read, then loop until
 * SIGTERM/SIGINT (0) or a ring failure (-1, reported). close: cut off every session
 * (one in DATA or inside a BDAT chunk counts as aborted), exit the ring, free sessions and buffers; safe
 * after a failed or partial open.
 */
int  sink_loop_open(struct sink *sk, char *err, size_t errlen);
int  sink_loop_run(struct sink *sk);
void sink_loop_close(struct sink *sk);

/* sink_session.c */
void sink_session_greet(struct sink *sk, struct sink_session *s);
void sink_session_feed(struct sink *sk, struct sink_session *s, const char *p, size_t n);
void sink_session_timeout(struct sink *sk, struct sink_session *s);
void sink_session_reset(struct sink_session *s);   /* drop the transaction */
void sink_session_free(struct sink_session *s);    /* free what the session owns, not s */
void sink_session_set_state(struct sink *sk, struct sink_session *s, enum sink_state to);

/* sink_stats.c */
struct sink_client *sink_stats_client(struct sink_stats *st, const char *ip);
void sink_stats_helo(struct sink_stats *st, struct sink_client *c, const char *name);
void sink_stats_message(struct sink_stats *st, struct sink_session *s);
int  sink_stats_write(const struct sink *sk);      /* 0 or -errno */
int  sink_stats_flush(struct sink *sk);  /* write if --stats; reports a failure once; 0 or -errno */
void sink_stats_free(struct sink_stats *st);
int  sink_dump_message(const struct sink *sk, const struct sink_session *s, uint64_t seq);

#endif
