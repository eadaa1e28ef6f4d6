/*
 * loop.c - the per-thread io_uring loop: ring setup, the provided-buffer
 * ring for receives, op submission helpers and the completion dispatcher.
 *
 * Invariants: every SQE carries a struct loop_op pointer as user_data (the
 * loop's own internal ops included); user_data 0 is never issued and CQEs
 * with it are ignored. SQEs are submitted in one batch per loop turn, so a
 * turn that queues many sends costs one io_uring_enter.
 */
#include "net/loop.h"
#include "core/valgrind_probe.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

/* Under valgrind (memcheck), a thread blocked in io_uring_enter keeps
 * valgrind's single execution lock (its wrapper does not mark the call as
 * blocking), so every other thread of salvod stops until a completion
 * arrives. The loop then keeps a 2 ms timeout op armed so that it never
 * waits longer, and calls sched_yield() (which valgrind does treat as
 * blocking) after each wait to hand the lock on; run valgrind with
 * --fair-sched=yes. (The wait-with-timeout variant of io_uring_enter does
 * not survive valgrind 3.19's syscall wrapper.) SALVO_UNDER_VALGRIND()
 * costs a few no-op instructions natively. */

static void loop_stop_done(struct loop_op *op, int res, unsigned flags)
{
	struct loop *l = container_of(op, struct loop, stop_op);
	l->stop = 1;
}

static int loop_setup_bufs(struct loop *l, unsigned count, unsigned size)
{
	struct io_uring_buf_reg reg;
	size_t ring_bytes = (size_t)count * sizeof(struct io_uring_buf);
	void *ring_mem;
	int ret;

	ring_mem = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (ring_mem == MAP_FAILED)
		return -errno;
	l->buf_mem = malloc((size_t)count * size);
	if (!l->buf_mem) {
		munmap(ring_mem, ring_bytes);
		return -ENOMEM;
	}
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (unsigned long)ring_mem;
	reg.ring_entries = count;
	reg.bgid = LOOP_BUF_GROUP;
	ret = io_uring_register_buf_ring(&l->ring, &reg, 0);
	if (ret < 0) {
		free(l->buf_mem);
		l->buf_mem = NULL;
		munmap(ring_mem, ring_bytes);
		return ret;
	}
	l->bufs = ring_mem;
	l->buf_count = count;
	l->buf_size = size;
	l->buf_mask = io_uring_buf_ring_mask(count);
	io_uring_buf_ring_init(l->bufs);
	for (unsigned i = 0; i < count; i++)
		io_uring_buf_ring_add(l->bufs, l->buf_mem + (size_t)i * size, size, (unsigned short)i,
				      l->buf_mask, (int)i);
	io_uring_buf_ring_advance(l->bufs, (int)count);
	return 0;
}

int loop_init(struct loop *l, unsigned entries, unsigned bufs, unsigned buf_size)
{
	struct io_uring_params p;
	int ret;

	memset(l, 0, sizeof(*l));
	memset(&p, 0, sizeof(p));
	/* The CQ ring is sized generously: a burst of completions must never be
	 * dropped, and multishot ops can post many per submission. */
	p.flags = IORING_SETUP_CQSIZE;
	p.cq_entries = entries * 4;
	ret = io_uring_queue_init_params(entries, &l->ring, &p);
	if (ret < 0)
		return ret;
	ret = loop_setup_bufs(l, bufs, buf_size);
	if (ret < 0) {
		io_uring_queue_exit(&l->ring);
		return ret;
	}
	l->stop_efd = eventfd(0, EFD_CLOEXEC);
	if (l->stop_efd < 0) {
		ret = -errno;
		loop_fini(l);
		return ret;
	}
	loop_op_init(&l->stop_op, loop_stop_done);
	loop_read(l, &l->stop_op, l->stop_efd, &l->stop_val, sizeof(l->stop_val));
	return 0;
}

void loop_orphan_add(struct loop *l, struct loop_orphan *o, void (*free_fn)(struct loop_orphan *o))
{
	if (o->listed)
		return;
	o->free_fn = free_fn;
	o->prev = NULL;
	o->next = l->orphans;
	if (l->orphans)
		l->orphans->prev = o;
	l->orphans = o;
	o->listed = true;
}

void loop_orphan_del(struct loop *l, struct loop_orphan *o)
{
	if (!o->listed)
		return;
	if (o->prev)
		o->prev->next = o->next;
	else
		l->orphans = o->next;
	if (o->next)
		o->next->prev = o->prev;
	o->prev = o->next = NULL;
	o->listed = false;
}

void loop_fini(struct loop *l)
{
	if (l->bufs) {
		munmap(l->bufs, (size_t)l->buf_count * sizeof(struct io_uring_buf));
		l->bufs = NULL;
	}
	free(l->buf_mem);
	l->buf_mem = NULL;
	io_uring_queue_exit(&l->ring);
	/* no completion can come now: what waited for one is freed here */
	while (l->orphans) {
		struct loop_orphan *o = l->orphans;

		loop_orphan_del(l, o);
		o->free_fn(o);
	}
	if (l->stop_efd > 0)
		close(l->stop_efd);
	l->stop_efd = -1;
}

void loop_stop(struct loop *l)
{
	uint64_t one = 1;
	ssize_t n = write(l->stop_efd, &one, sizeof(one));
	(void)n; /* an eventfd write only fails on overflow, which still wakes the loop */
}

struct io_uring_sqe *loop_sqe(struct loop *l, struct loop_op *op)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);

	while (!sqe) {
		io_uring_submit(&l->ring);
		sqe = io_uring_get_sqe(&l->ring);
	}
	io_uring_sqe_set_data(sqe, op);
	return sqe;
}

void loop_accept(struct loop *l, struct loop_op *op, int fd, struct sockaddr *sa, socklen_t *salen)
{
	struct io_uring_sqe *sqe = loop_sqe(l, op);

	io_uring_prep_accept(sqe, fd, sa, salen, SOCK_CLOEXEC | SOCK_NONBLOCK);
	io_uring_sqe_set_data(sqe, op);
}

void loop_connect(struct loop *l, struct loop_op *op, int fd, const struct sockaddr *sa, socklen_t salen)
{
	struct io_uring_sqe *sqe = loop_sqe(l, op);

	io_uring_prep_connect(sqe, fd, sa, salen);
	io_uring_sqe_set_data(sqe, op);
}

void loop_recv(struct loop *l, struct loop_op *op, int fd)
{
	struct io_uring_sqe *sqe = loop_sqe(l, op);

	io_uring_prep_recv(sqe, fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = LOOP_BUF_GROUP;
	io_uring_sqe_set_data(sqe, op);
}

void loop_send(struct loop *l, struct loop_op *op, int fd, const void *buf, size_t len)
{
	struct io_uring_sqe *sqe = loop_sqe(l, op);

	io_uring_prep_send(sqe, fd, buf, len, MSG_NOSIGNAL);
	io_uring_sqe_set_data(sqe, op);
}

void loop_read(struct loop *l, struct loop_op *op, int fd, void *buf, size_t len)
{
	struct io_uring_sqe *sqe = loop_sqe(l, op);

	io_uring_prep_read(sqe, fd, buf, (unsigned)len, 0);
	io_uring_sqe_set_data(sqe, op);
}

void loop_timeout(struct loop *l, struct loop_op *op, uint64_t ms)
{
	struct io_uring_sqe *sqe = loop_sqe(l, op);

	op->ts.tv_sec = (long long)(ms / 1000);
	op->ts.tv_nsec = (long long)(ms % 1000) * 1000000LL;
	io_uring_prep_timeout(sqe, &op->ts, 0, 0);
	io_uring_sqe_set_data(sqe, op);
}

void loop_poll(struct loop *l, struct loop_op *op, int fd, unsigned poll_mask)
{
	struct io_uring_sqe *sqe = loop_sqe(l, op);

	io_uring_prep_poll_add(sqe, fd, poll_mask);
	io_uring_sqe_set_data(sqe, op);
}

void loop_cancel(struct loop *l, struct loop_op *op, struct loop_op *target)
{
	struct io_uring_sqe *sqe = loop_sqe(l, op);

	io_uring_prep_cancel(sqe, target, 0);
	io_uring_sqe_set_data(sqe, op);
}

const char *loop_buf_data(struct loop *l, unsigned flags)
{
	unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;

	return l->buf_mem + (size_t)bid * l->buf_size;
}

void loop_buf_return(struct loop *l, unsigned flags)
{
	unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;

	io_uring_buf_ring_add(l->bufs, l->buf_mem + (size_t)bid * l->buf_size, l->buf_size,
			      (unsigned short)bid, l->buf_mask, 0);
	io_uring_buf_ring_advance(l->bufs, 1);
}

static void loop_tick_done(struct loop_op *op, int res, unsigned flags)
{
	struct loop *l = container_of(op, struct loop, tick_op);

	l->tick_armed = false;
}

static void loop_arm_tick(struct loop *l)
{
	struct io_uring_sqe *sqe;

	if (l->tick_armed || !(sqe = io_uring_get_sqe(&l->ring)))
		return;
	l->tick_ts.tv_sec = 0;
	l->tick_ts.tv_nsec = 2 * 1000 * 1000;
	loop_op_init(&l->tick_op, loop_tick_done);
	io_uring_prep_timeout(sqe, &l->tick_ts, 0, 0);
	io_uring_sqe_set_data(sqe, &l->tick_op);
	l->tick_armed = true;
}

int loop_run(struct loop *l)
{
	bool capped = SALVO_UNDER_VALGRIND();

	while (!l->stop) {
		struct io_uring_cqe *cqe;
		unsigned batch = 0;
		int ret;

		if (capped)
			loop_arm_tick(l);
		ret = io_uring_submit_and_wait(&l->ring, 1);
		if (capped)
			sched_yield();
		if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY)
			return ret;
		/* Mark each CQE seen before dispatching it, so a handler that
		 * re-enters the ring never sees it again; bound the batch so new
		 * submissions go out regularly under a flood of completions. */
		while (batch++ < 4096 && io_uring_peek_cqe(&l->ring, &cqe) == 0) {
			struct loop_op *op = io_uring_cqe_get_data(cqe);
			int res = cqe->res;
			unsigned flags = cqe->flags;

			io_uring_cqe_seen(&l->ring, cqe);
			if (op)
				op->done(op, res, flags);
		}
	}
	return 0;
}

uint64_t loop_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int64_t wall_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
