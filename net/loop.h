/*
 * loop.h - one io_uring ring per thread, and the operations Salvo issues on it.
 *
 * Every in-flight operation is a `struct loop_op` embedded in its owner (a
 * session, a resolver, a timer). The SQE's user_data is the op's address; on
 * completion the loop calls op->done(op, res, flags) and the owner recovers
 * itself with container_of. An op may be reused only after its done() ran
 * (for multishot ops: after a completion without IORING_CQE_F_MORE).
 *
 * Receives use a ring of provided buffers (one buffer group per loop): a
 * completion of loop_recv() carries the buffer in `flags`; the owner copies
 * what it needs with loop_buf_data() and must give the buffer back with
 * loop_buf_return() before returning from done().
 *
 * Threading: a loop and everything issued on it belong to the thread that
 * runs loop_run(); only loop_stop() may be called from elsewhere (it is
 * async-signal-safe).
 *
 * Errors: loop_init() returns -errno; -ENOSYS/-EPERM mean io_uring is not
 * available (kernel too old, io_uring_disabled sysctl, seccomp).
 */
#ifndef SALVO_LOOP_H
#define SALVO_LOOP_H

#include <liburing.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

struct loop_op;
typedef void (*loop_done_fn)(struct loop_op *op, int res, unsigned flags);

struct loop_op {
	loop_done_fn done;
	struct __kernel_timespec ts; /* storage for timeouts issued with this op */
};

/* An owner that nothing points at any more but its in-flight ops (a closed
 * session waiting for their completions, which free it). Should the loop
 * stop first, loop_fini() calls free_fn for each one still listed, after the
 * ring is gone (no completion can come), so stopping does not leak them. */
struct loop_orphan {
	struct loop_orphan *prev, *next;
	void (*free_fn)(struct loop_orphan *o);
	bool listed;
};

#define LOOP_BUF_GROUP 1

struct loop {
	struct io_uring ring;
	struct io_uring_buf_ring *bufs;
	char *buf_mem;
	unsigned buf_count;
	unsigned buf_size;
	unsigned buf_mask;
	volatile int stop;
	int stop_efd;              /* written by loop_stop() */
	uint64_t stop_val;
	struct loop_op stop_op;
	struct loop_op tick_op;    /* under valgrind only: see loop_run() */
	struct __kernel_timespec tick_ts;
	bool tick_armed;
	struct loop_orphan *orphans; /* loop_orphan_add() */
};

static inline void loop_op_init(struct loop_op *op, loop_done_fn fn)
{
	op->done = fn;
}

/* entries: SQ size; bufs: provided buffer count (power of two); buf_size each. */
int loop_init(struct loop *l, unsigned entries, unsigned bufs, unsigned buf_size);
void loop_fini(struct loop *l);

/* List o (once; a second add does nothing) / take it off (unlisted: nothing). */
void loop_orphan_add(struct loop *l, struct loop_orphan *o, void (*free_fn)(struct loop_orphan *o));
void loop_orphan_del(struct loop *l, struct loop_orphan *o);

/* Run completions until loop_stop(). Returns 0, or -errno on a ring failure. */
int loop_run(struct loop *l);
/* Ask the loop to return from loop_run(); safe from any thread or a signal handler. */
void loop_stop(struct loop *l);

/* An SQE for op, flushing the SQ when it is full. Never NULL. */
struct io_uring_sqe *loop_sqe(struct loop *l, struct loop_op *op);

void loop_accept(struct loop *l, struct loop_op *op, int fd, struct sockaddr *sa, socklen_t *salen);
void loop_connect(struct loop *l, struct loop_op *op, int fd, const struct sockaddr *sa, socklen_t salen);
/* recv into a provided buffer: done() gets res = bytes (0 = EOF) and flags with the buffer id. */
void loop_recv(struct loop *l, struct loop_op *op, int fd);
void loop_send(struct loop *l, struct loop_op *op, int fd, const void *buf, size_t len);
void loop_read(struct loop *l, struct loop_op *op, int fd, void *buf, size_t len);
/* Fires once after ms milliseconds (res = -ETIME), or earlier when cancelled. */
void loop_timeout(struct loop *l, struct loop_op *op, uint64_t ms);
void loop_poll(struct loop *l, struct loop_op *op, int fd, unsigned poll_mask);
/* Cancel the in-flight op `target` (its done() gets -ECANCELED); `op` gets the cancel's own result. */
void loop_cancel(struct loop *l, struct loop_op *op, struct loop_op *target);

/* The provided buffer named in a recv completion's flags, and giving it back. */
const char *loop_buf_data(struct loop *l, unsigned flags);
void loop_buf_return(struct loop *l, unsigned flags);

/* Monotonic milliseconds, and wall-clock milliseconds since the epoch. */
uint64_t loop_now_ms(void);
int64_t wall_now_ms(void);

#endif
