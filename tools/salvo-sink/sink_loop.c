/*
 * sink_loop.c - salvo-sink's io_uring loop: the ring, every operation, session lifetime.
 *
 * Owns: the one ring and its buffer ring, the session slot table, arming each op and
 * handling each completion. The SMTP dialogue is in sink_session.c; this file only
 * moves bytes and decides when a session lives and dies.
 *
 * The loop, one thread, one ring:
 *   - a multishot ACCEPT per listener;
 *   - a multishot RECV per session, into provided buffers from one buffer ring
 *     (a buffer goes back to the ring as soon as its bytes are parsed, so the ring
 *     never holds more than one loop turn's worth of data);
 *   - at most one SEND per session: replies accumulate in s->out during a loop turn
 *     and go out in one send at its end (pipelined commands -> one reply packet);
 *   - TIMEOUTs: one per session for --greeting-delay, and a 200 ms TICK that writes
 *     --stats when something changed and, once a second, times out idle sessions;
 *   - a READ on a signalfd for SIGTERM/SIGINT.
 *
 * user_data is (generation, owner, op): the op selects the handler pair in ops[], the
 * owner is a listener index (ACCEPT) or a session slot (RECV, SEND, GREET); TICK,
 * SIGNAL and CANCEL have none. A session is freed (session_release) only in state
 * CLOSING with none of its three ops in flight, so a CQE's owner is always a live
 * session; owner_session() aborts loudly if that invariant ever breaks.
 *
 * Diagnostics: SALVO_SINK_TRACE=1 traces every completion; nothing otherwise.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "sink.h"
#include "sink_events.h"

#define SINK_BGID         1
#ifndef SINK_NBUFS                      /* overridable to exercise the ENOBUFS path */
#define SINK_NBUFS        1024u         /* power of two */
#endif
#define SINK_BUFSZ        (16u << 10)
#define SINK_TICK_MS      200u
#define SINK_SWEEP_MS     1000u
#define SINK_QUIT_GRACE_MS 10000u       /* after a 421, how long the client has to read it */

enum sink_op {
    OP_ACCEPT = 1,
    OP_RECV,
    OP_SEND,
    OP_GREET,
    OP_TICK,
    OP_SIGNAL,
    OP_CANCEL,
    OP__COUNT,
};

/*
 * user_data = gen << 32 | owner << 8 | op. The generation makes a session's
 * user_data unique for the life of the process although slot ids are reused, so a
 * late cancel can never hit the next session in the same slot.
 */
static inline __u64 ud_pack(enum sink_op op, uint32_t owner, uint32_t gen)
{
    return (__u64)gen << 32 | (__u64)(owner & 0xffffff) << 8 | (__u64)op;
}

static inline __u64 ud_session(enum sink_op op, const struct sink_session *s)
{
    return ud_pack(op, s->id, s->gen);
}

static inline enum sink_op ud_op(__u64 ud)
{
    return (enum sink_op)(ud & 0xff);
}

static inline uint32_t ud_owner(__u64 ud)
{
    return (uint32_t)(ud >> 8) & 0xffffff;
}

static inline uint32_t ud_gen(__u64 ud)
{
    return (uint32_t)(ud >> 32);
}

static void panic(const char *fn, const char *what)
{
    fprintf(stderr, "salvo-sink: %s: %s\n", fn, what);
    abort();
}

static uint64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static struct io_uring_sqe *get_sqe(struct sink *sk)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&sk->ring);
    if (!sqe) {
        io_uring_submit(&sk->ring);
        sqe = io_uring_get_sqe(&sk->ring);
        if (!sqe)
            panic(__func__, "submission queue full after submit");
    }
    return sqe;
}

static void ms_to_ts(struct __kernel_timespec *ts, unsigned ms)
{
    ts->tv_sec = ms / 1000;
    ts->tv_nsec = (long long)(ms % 1000) * 1000000;
}

/* ---- arming ops ---- */

static void accept_arm(struct sink *sk, struct sink_listener *l)
{
    struct io_uring_sqe *sqe = get_sqe(sk);
    io_uring_prep_multishot_accept(sqe, l->fd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, ud_pack(OP_ACCEPT, l->id, 0));
    l->accept_armed = true;
}

static void recv_arm(struct sink *sk, struct sink_session *s)
{
    struct io_uring_sqe *sqe = get_sqe(sk);
    io_uring_prep_recv_multishot(sqe, s->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = SINK_BGID;
    io_uring_sqe_set_data64(sqe, ud_session(OP_RECV, s));
    s->recv_armed = true;
}

static void send_arm(struct sink *sk, struct sink_session *s)
{
    struct io_uring_sqe *sqe = get_sqe(sk);
    io_uring_prep_send(sqe, s->fd, s->out_wire.p + s->wire_off, s->out_wire.len - s->wire_off,
                       MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, ud_session(OP_SEND, s));
    s->send_busy = true;
}

static void tick_arm(struct sink *sk)
{
    struct io_uring_sqe *sqe = get_sqe(sk);
    ms_to_ts(&sk->tick_ts, SINK_TICK_MS);
    io_uring_prep_timeout(sqe, &sk->tick_ts, 0, 0);
    io_uring_sqe_set_data64(sqe, ud_pack(OP_TICK, 0, 0));
}

static void signal_arm(struct sink *sk)
{
    struct io_uring_sqe *sqe = get_sqe(sk);
    io_uring_prep_read(sqe, sk->sigfd, &sk->siginfo, sizeof sk->siginfo, 0);
    io_uring_sqe_set_data64(sqe, ud_pack(OP_SIGNAL, 0, 0));
}

static void cancel_op(struct sink *sk, __u64 ud)
{
    struct io_uring_sqe *sqe = get_sqe(sk);
    io_uring_prep_cancel64(sqe, ud, 0);
    io_uring_sqe_set_data64(sqe, ud_pack(OP_CANCEL, 0, 0));
}

static void buffer_return(struct sink *sk, unsigned bid)
{
    io_uring_buf_ring_add(sk->br, sk->bufs + (size_t)bid * SINK_BUFSZ, SINK_BUFSZ, (unsigned short)bid,
                          io_uring_buf_ring_mask(SINK_NBUFS), (int)sk->br_returned++);
}

/* ---- session lifetime ---- */

/* Slot ids are 24 bits of user_data: more sessions than that would need more fds anyway. */
static uint32_t slot_alloc(struct sink *sk, struct sink_session *s)
{
    if (sk->nfree == 0) {
        size_t old = sk->nslots, n = old ? old * 2 : 64;
        sk->slots = sink_xrealloc(sk->slots, n * sizeof *sk->slots);
        sk->free_ids = sink_xrealloc(sk->free_ids, n * sizeof *sk->free_ids);
        for (size_t i = old; i < n; i++) {
            sk->slots[i] = NULL;
            sk->free_ids[sk->nfree++] = (uint32_t)(n - 1 - (i - old));
        }
        sk->nslots = n;
    }
    if (sk->nslots > 0xffffff)
        panic(__func__, "more than 16M sessions");
    uint32_t id = sk->free_ids[--sk->nfree];
    sk->slots[id] = s;
    return id;
}

/*
 * The "close" event is stamped when the session ends for the peer (its last reply,
 * 221 or 421, handed to the kernel; EOF
 * read, a fault, shutdown), not when the cancelled ops have come back: a client
 * that read 221 and connected again must not look like two sessions at once.
 */
static void log_close(struct sink *sk, struct sink_session *s)
{
    if (s->close_logged)
        return;
    s->close_logged = true;
    sink_events_close(sk, s);
}

/* The one place a session is freed. */
static void session_release(struct sink *sk, struct sink_session *s)
{
    if (s->state != SINK_S_CLOSING || s->recv_armed || s->send_busy || s->greet_pending ||
        s->on_flush)
        return;
    close(s->fd);
    sk->slots[s->id] = NULL;
    sk->free_ids[sk->nfree++] = s->id;
    sk->stats.active--;
    sk->stats.dirty = true;
    s->client->active--;
    log_close(sk, s);
    sink_session_free(s);
    free(s);
}

/*
 * Start closing: the ops in flight are cancelled and their completions free the
 * session. Never frees s itself, so a caller still holding s ends with
 * session_release(sk, s) as its last use of s.
 */
static void session_close(struct sink *sk, struct sink_session *s)
{
    if (s->state == SINK_S_CLOSING)
        return;
    sink_session_set_state(sk, s, SINK_S_CLOSING);
    log_close(sk, s);
    shutdown(s->fd, SHUT_RDWR);
    if (s->recv_armed)
        cancel_op(sk, ud_session(OP_RECV, s));
    if (s->send_busy)
        cancel_op(sk, ud_session(OP_SEND, s));
    if (s->greet_pending)
        cancel_op(sk, ud_session(OP_GREET, s));
}

/* Send what the session has to say at the end of this loop turn. */
static void flush_queue(struct sink *sk, struct sink_session *s)
{
    if (s->on_flush)
        return;
    s->on_flush = true;
    s->flush_next = sk->flush_head;
    sk->flush_head = s;
}

static void session_flush(struct sink *sk, struct sink_session *s)
{
    if (s->state == SINK_S_CLOSING) {
        session_release(sk, s);
        return;
    }
    if (s->send_busy)
        return;                         /* its completion queues us again */
    unsigned delay = s->pending_delay_ms > sk->opt.reply_delay_ms ? s->pending_delay_ms : sk->opt.reply_delay_ms;
    if (s->out.len && delay && !s->delay_elapsed && s->state != SINK_S_GREETING) {
        /* hold the replies: the timer's completion flushes them */
        if (!s->greet_pending) {
            struct io_uring_sqe *sqe = get_sqe(sk);
            ms_to_ts(&s->greet_ts, delay);
            io_uring_prep_timeout(sqe, &s->greet_ts, 0, 0);
            io_uring_sqe_set_data64(sqe, ud_session(OP_GREET, s));
            s->greet_pending = true;
        }
        return;
    }
    s->delay_elapsed = false;
    s->pending_delay_ms = 0;
    if (s->out.len == 0) {
        if (s->state == SINK_S_QUIT) {
            session_close(sk, s);
            session_release(sk, s);
        }
        return;
    }
    if (s->state == SINK_S_QUIT)
        log_close(sk, s);               /* the 221 goes out now: the session ends for the peer */
    struct sink_buf t = s->out_wire;    /* swap: the kernel reads out_wire until done */
    s->out_wire = s->out;
    s->out = t;
    s->out.len = 0;
    s->wire_off = 0;
    send_arm(sk, s);
}

static void flush_all(struct sink *sk)
{
    struct sink_session *s;
    while ((s = sk->flush_head)) {
        sk->flush_head = s->flush_next;
        s->on_flush = false;
        session_flush(sk, s);
    }
}

static void session_begin(struct sink *sk, struct sink_session *s)
{
    sink_session_greet(sk, s);
    recv_arm(sk, s);
    flush_queue(sk, s);
}

static void session_open(struct sink *sk, struct sink_listener *l, int fd)
{
    struct sockaddr_storage peer;
    socklen_t plen = sizeof peer;
    char ip[SINK_NAME_MAX];
    if (getpeername(fd, (struct sockaddr *)&peer, &plen) < 0) {
        close(fd);                      /* already gone */
        return;
    }
    sink_format_ip(&peer, ip, sizeof ip);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

    struct sink_session *s = calloc(1, sizeof *s);
    if (!s)
        panic(__func__, "out of memory");
    s->fd = fd;
    s->state = SINK_S_GREETING;
    s->id = slot_alloc(sk, s);
    s->gen = ++sk->next_gen;
    s->listener = l;
    s->client = sink_stats_client(&sk->stats, ip);
    s->deadline_ms = sk->now_ms + sk->opt.greeting_delay_ms + sk->opt.idle_timeout_s * 1000ull;

    s->client->counts.connections++;
    if (++s->client->active > s->client->peak_active)
        s->client->peak_active = s->client->active;
    sink_events_conn(sk, s, s->client->active);
    l->counts.connections++;
    sk->stats.connections++;
    sk->stats.active++;
    sk->stats.dirty = true;

    if (sk->opt.greeting_delay_ms == 0) {
        session_begin(sk, s);
        return;
    }
    struct io_uring_sqe *sqe = get_sqe(sk);
    ms_to_ts(&s->greet_ts, sk->opt.greeting_delay_ms);
    io_uring_prep_timeout(sqe, &s->greet_ts, 0, 0);
    io_uring_sqe_set_data64(sqe, ud_session(OP_GREET, s));
    s->greet_pending = true;
}

static void sweep_idle(struct sink *sk)
{
    for (size_t i = 0; i < sk->nslots; i++) {
        struct sink_session *s = sk->slots[i];
        if (!s || sk->now_ms < s->deadline_ms || s->state == SINK_S_CLOSING)
            continue;
        if (s->state == SINK_S_CMD || s->state == SINK_S_DATA || s->state == SINK_S_BDAT) {
            sink_session_timeout(sk, s);
            s->deadline_ms = sk->now_ms + SINK_QUIT_GRACE_MS;
            flush_queue(sk, s);
        } else {
            session_close(sk, s);       /* GREETING, or QUIT and the client won't read */
            session_release(sk, s);
        }
    }
}

/* ---- completion handlers: done (res >= 0, or the op's expected error) and fail ---- */

static struct sink_session *owner_session(struct sink *sk, const struct io_uring_cqe *cqe)
{
    uint32_t id = ud_owner(cqe->user_data);
    if (id >= sk->nslots || !sk->slots[id] || sk->slots[id]->gen != ud_gen(cqe->user_data))
        panic(__func__, "completion for a freed session");
    return sk->slots[id];
}

static void accept_done(struct sink *sk, struct io_uring_cqe *cqe)
{
    struct sink_listener *l = &sk->listeners[ud_owner(cqe->user_data)];
    if (!(cqe->flags & IORING_CQE_F_MORE))
        l->accept_armed = false;
    session_open(sk, l, cqe->res);
    if (!l->accept_armed)
        accept_arm(sk, l);
}

static void accept_fail(struct sink *sk, struct io_uring_cqe *cqe)
{
    struct sink_listener *l = &sk->listeners[ud_owner(cqe->user_data)];
    if (!(cqe->flags & IORING_CQE_F_MORE))
        l->accept_armed = false;
    if (l->accept_armed)
        return;
    /* Out of descriptors or memory: rearming now would spin; the tick retries. */
    if (cqe->res == -EMFILE || cqe->res == -ENFILE || cqe->res == -ENOMEM || cqe->res == -ENOBUFS)
        sk->accept_retry = true;
    else
        accept_arm(sk, l);
}

static void recv_done(struct sink *sk, struct io_uring_cqe *cqe)
{
    struct sink_session *s = owner_session(sk, cqe);
    if (!(cqe->flags & IORING_CQE_F_MORE))
        s->recv_armed = false;
    if (cqe->res == 0) {
        /* EOF. A client that half-closes after its last command ("printf ... | nc")
         * still gets the replies: stop reading, send them, then close. */
        if (s->state != SINK_S_CLOSING && (s->out.len || s->send_busy)) {
            sink_session_set_state(sk, s, SINK_S_QUIT);
            flush_queue(sk, s);
        } else {
            session_close(sk, s);
        }
        session_release(sk, s);
        return;
    }
    if (!(cqe->flags & IORING_CQE_F_BUFFER))
        panic(__func__, "recv completion without a buffer");
    unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
    if (s->state == SINK_S_CMD || s->state == SINK_S_DATA || s->state == SINK_S_BDAT) {
        s->deadline_ms = sk->now_ms + sk->opt.idle_timeout_s * 1000ull;
        sink_session_feed(sk, s, sk->bufs + (size_t)bid * SINK_BUFSZ, (size_t)cqe->res);
    }
    buffer_return(sk, bid);

    if (s->out.len > SINK_OUT_MAX) {    /* pipelining without ever reading replies */
        session_close(sk, s);
    } else if (s->state != SINK_S_CLOSING) {
        if (s->out.len || s->state == SINK_S_QUIT)
            flush_queue(sk, s);
        if (!s->recv_armed)
            recv_arm(sk, s);
    }
    session_release(sk, s);
}

static void recv_fail(struct sink *sk, struct io_uring_cqe *cqe)
{
    struct sink_session *s = owner_session(sk, cqe);
    if (!(cqe->flags & IORING_CQE_F_MORE))
        s->recv_armed = false;
    if (cqe->res == -ENOBUFS && s->state != SINK_S_CLOSING) {
        /* Every buffer is waiting in this turn's CQEs; they are back before the
         * rearm is submitted, or the rearm ends here again. */
        if (!s->recv_armed)
            recv_arm(sk, s);
        return;
    }
    session_close(sk, s);               /* reset, cancelled, ... */
    session_release(sk, s);
}

static void send_done(struct sink *sk, struct io_uring_cqe *cqe)
{
    struct sink_session *s = owner_session(sk, cqe);
    s->send_busy = false;
    if (s->state == SINK_S_CLOSING) {
        session_release(sk, s);
        return;
    }
    s->wire_off += (size_t)cqe->res;
    if (s->wire_off < s->out_wire.len) {
        send_arm(sk, s);                /* short send: the rest of the same bytes */
        return;
    }
    s->out_wire.len = 0;
    s->wire_off = 0;
    flush_queue(sk, s);                 /* more replies, or close after QUIT */
}

static void send_fail(struct sink *sk, struct io_uring_cqe *cqe)
{
    struct sink_session *s = owner_session(sk, cqe);
    s->send_busy = false;
    session_close(sk, s);
    session_release(sk, s);
}

static void greet_done(struct sink *sk, struct io_uring_cqe *cqe)
{
    struct sink_session *s = owner_session(sk, cqe);
    s->greet_pending = false;
    if (s->state == SINK_S_GREETING) {
        session_begin(sk, s);
    } else if (s->state != SINK_S_CLOSING) {
        s->delay_elapsed = true;        /* a reply delay ran out */
        flush_queue(sk, s);
    }
    session_release(sk, s);
}

static void greet_fail(struct sink *sk, struct io_uring_cqe *cqe)
{
    struct sink_session *s = owner_session(sk, cqe);
    s->greet_pending = false;
    session_close(sk, s);
    session_release(sk, s);
}

static void tick_done(struct sink *sk, struct io_uring_cqe *cqe)
{
    if (sk->stats.dirty)
        sink_stats_flush(sk);
    sink_events_flush(sk);
    if (sk->now_ms - sk->last_sweep_ms >= SINK_SWEEP_MS) {
        sk->last_sweep_ms = sk->now_ms;
        sweep_idle(sk);
    }
    if (sk->accept_retry) {
        sk->accept_retry = false;
        for (size_t i = 0; i < sk->nlisteners; i++)
            if (!sk->listeners[i].accept_armed)
                accept_arm(sk, &sk->listeners[i]);
    }
    tick_arm(sk);
}

static void tick_fail(struct sink *sk, struct io_uring_cqe *cqe)
{
    panic(__func__, strerror(-cqe->res));
}

static void signal_done(struct sink *sk, struct io_uring_cqe *cqe)
{
    sk->stop = true;
}

static void signal_fail(struct sink *sk, struct io_uring_cqe *cqe)
{
    if (cqe->res == -EINTR || cqe->res == -EAGAIN) {
        signal_arm(sk);
        return;
    }
    panic(__func__, strerror(-cqe->res));
}

static void cancel_done(struct sink *sk, struct io_uring_cqe *cqe)
{
    /* Nothing to do: the cancelled op's own completion does the bookkeeping. */
}

static const struct {
    const char *name;
    int         expected_error;        /* a res < 0 that still means "done" */
    void (*done)(struct sink *sk, struct io_uring_cqe *cqe);
    void (*fail)(struct sink *sk, struct io_uring_cqe *cqe);
} ops[OP__COUNT] = {
    [OP_ACCEPT] = { "accept", 0, accept_done, accept_fail },
    [OP_RECV] = { "recv", 0, recv_done, recv_fail },
    [OP_SEND] = { "send", 0, send_done, send_fail },
    [OP_GREET] = { "greet", -ETIME, greet_done, greet_fail },
    [OP_TICK] = { "tick", -ETIME, tick_done, tick_fail },
    [OP_SIGNAL] = { "signal", 0, signal_done, signal_fail },
    [OP_CANCEL] = { "cancel", 0, cancel_done, cancel_done },
};

static void handle_cqe(struct sink *sk, struct io_uring_cqe *cqe)
{
    enum sink_op op = ud_op(cqe->user_data);
    if (op <= 0 || op >= OP__COUNT)
        panic(__func__, "completion with an unknown op");
    if (sk->opt.trace && op != OP_TICK)
        fprintf(stderr, "salvo-sink: cqe %s owner %u res %d flags %#x\n", ops[op].name,
                ud_owner(cqe->user_data), cqe->res, cqe->flags);
    if (cqe->res >= 0 || cqe->res == ops[op].expected_error)
        ops[op].done(sk, cqe);
    else
        ops[op].fail(sk, cqe);
}

int sink_loop_run(struct sink *sk)
{
    sk->now_ms = sk->last_sweep_ms = monotonic_ms();
    for (size_t i = 0; i < sk->nlisteners; i++)
        accept_arm(sk, &sk->listeners[i]);
    tick_arm(sk);
    signal_arm(sk);
    while (!sk->stop) {
        int rc = io_uring_submit_and_wait(&sk->ring, 1);
        if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY && rc != -ETIME) {
            fprintf(stderr, "salvo-sink: io_uring_submit_and_wait: %s\n", strerror(-rc));
            return -1;
        }
        sk->now_ms = monotonic_ms();
        unsigned head, seen = 0;
        struct io_uring_cqe *cqe;
        io_uring_for_each_cqe(&sk->ring, head, cqe) {
            handle_cqe(sk, cqe);
            seen++;
        }
        io_uring_cq_advance(&sk->ring, seen);
        if (sk->br_returned) {
            io_uring_buf_ring_advance(sk->br, (int)sk->br_returned);
            sk->br_returned = 0;
        }
        flush_all(sk);
    }
    return 0;
}

int sink_loop_open(struct sink *sk, char *err, size_t errlen)
{
    struct io_uring_params p = { 0 };
    p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    p.cq_entries = 16384;
    int rc = io_uring_queue_init_params(2048, &sk->ring, &p);
    if (rc == -EINVAL) {                /* kernel before 6.1: no DEFER_TASKRUN */
        memset(&p, 0, sizeof p);
        p.flags = IORING_SETUP_CQSIZE;
        p.cq_entries = 16384;
        rc = io_uring_queue_init_params(2048, &sk->ring, &p);
    }
    if (rc < 0) {
        snprintf(err, errlen, "io_uring_queue_init: %s", strerror(-rc));
        return -1;
    }
    sk->ring_up = true;

    sk->br_size = SINK_NBUFS * sizeof(struct io_uring_buf);
    /* mmap, not malloc: page-aligned as the kernel wants, and memory valgrind
     * considers defined although only the kernel writes it. */
    sk->br = mmap(NULL, sk->br_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    sk->bufs = mmap(NULL, (size_t)SINK_NBUFS * SINK_BUFSZ, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (sk->br == MAP_FAILED || sk->bufs == MAP_FAILED) {
        snprintf(err, errlen, "cannot map receive buffers: %s", strerror(errno));
        return -1;
    }
    struct io_uring_buf_reg reg = {
        .ring_addr = (unsigned long)(uintptr_t)sk->br,
        .ring_entries = SINK_NBUFS,
        .bgid = SINK_BGID,
    };
    rc = io_uring_register_buf_ring(&sk->ring, &reg, 0);
    if (rc < 0) {
        snprintf(err, errlen, "io_uring_register_buf_ring: %s (needs Linux 5.19 or later)",
                 strerror(-rc));
        return -1;
    }
    io_uring_buf_ring_init(sk->br);
    for (unsigned i = 0; i < SINK_NBUFS; i++)
        buffer_return(sk, i);
    io_uring_buf_ring_advance(sk->br, (int)sk->br_returned);
    sk->br_returned = 0;
    return 0;
}

void sink_loop_close(struct sink *sk)
{
    /* Sessions still open are cut off: one in DATA or inside a chunk counts as aborted. */
    for (size_t i = 0; i < sk->nslots; i++)
        if (sk->slots[i])
            sink_session_set_state(sk, sk->slots[i], SINK_S_CLOSING);
    if (sk->ring_up)
        io_uring_queue_exit(&sk->ring); /* cancels and reaps every op still in flight */
    sk->ring_up = false;
    for (size_t i = 0; i < sk->nslots; i++) {
        struct sink_session *s = sk->slots[i];
        if (!s)
            continue;
        close(s->fd);
        s->client->active--;
        log_close(sk, s);
        sink_session_free(s);
        free(s);
        sk->stats.active--;
    }
    free(sk->slots);
    free(sk->free_ids);
    sk->slots = NULL;
    sk->free_ids = NULL;
    sk->nslots = sk->nfree = 0;
    if (sk->br && sk->br != MAP_FAILED)
        munmap(sk->br, sk->br_size);
    if (sk->bufs && sk->bufs != MAP_FAILED)
        munmap(sk->bufs, (size_t)SINK_NBUFS * SINK_BUFSZ);
    sk->br = NULL;
    sk->bufs = NULL;
}
