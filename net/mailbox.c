/*
 * mailbox.c - eventfd-signalled inboxes between threads (see mailbox.h).
 */
#include "net/mailbox.h"

#include <errno.h>
#include <sys/eventfd.h>
#include <unistd.h>

static void mailbox_wake(struct loop_op *op, int res, unsigned flags)
{
	struct mailbox *mb = container_of(op, struct mailbox, op);
	struct mailbox_item *items;

	mb->armed = 0;
	if (res < 0 && res != -EINTR && res != -EAGAIN && res != -ECANCELED)
		return; /* the eventfd is gone: the loop is shutting down */
	if (res == -ECANCELED)
		return;
	items = mailbox_take(mb);
	mailbox_arm(mb);
	if (items)
		mb->handler(mb, items);
}

int mailbox_init(struct mailbox *mb, struct loop *l, mailbox_fn fn, void *owner)
{
	mb->head = mb->tail = NULL;
	mb->loop = l;
	mb->handler = fn;
	mb->owner = owner;
	mb->armed = 0;
	mb->efd = eventfd(0, EFD_CLOEXEC);
	if (mb->efd < 0)
		return -errno;
	pthread_mutex_init(&mb->mu, NULL);
	loop_op_init(&mb->op, mailbox_wake);
	return 0;
}

void mailbox_arm(struct mailbox *mb)
{
	if (mb->armed)
		return;
	mb->armed = 1;
	loop_read(mb->loop, &mb->op, mb->efd, &mb->val, sizeof(mb->val));
}

void mailbox_fini(struct mailbox *mb)
{
	if (mb->efd >= 0)
		close(mb->efd);
	mb->efd = -1;
	pthread_mutex_destroy(&mb->mu);
}

void mailbox_post_list(struct mailbox *mb, struct mailbox_item *head, struct mailbox_item *tail)
{
	int was_empty;

	if (!head)
		return;
	pthread_mutex_lock(&mb->mu);
	was_empty = mb->head == NULL;
	if (mb->tail)
		mb->tail->next = head;
	else
		mb->head = head;
	mb->tail = tail;
	pthread_mutex_unlock(&mb->mu);
	if (was_empty) {
		uint64_t one = 1;
		ssize_t n = write(mb->efd, &one, sizeof(one));
		(void)n; /* only fails on counter overflow, which still leaves it readable */
	}
}

void mailbox_post(struct mailbox *mb, struct mailbox_item *it)
{
	it->next = NULL;
	mailbox_post_list(mb, it, it);
}

struct mailbox_item *mailbox_take(struct mailbox *mb)
{
	struct mailbox_item *items;

	pthread_mutex_lock(&mb->mu);
	items = mb->head;
	mb->head = mb->tail = NULL;
	pthread_mutex_unlock(&mb->mu);
	return items;
}
