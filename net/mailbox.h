/*
 * mailbox.h - how work crosses threads: a per-loop inbox of intrusive items,
 * signalled through an eventfd that the owning loop keeps a read on.
 *
 * Any thread may post; only the owning loop's thread receives. Items are
 * delivered in post order, in batches: the handler gets the whole list taken
 * at wake-up and owns every item in it. The eventfd is written only when the
 * inbox goes from empty to non-empty, so a burst costs one wake-up.
 */
#ifndef SALVO_MAILBOX_H
#define SALVO_MAILBOX_H

#include <pthread.h>
#include <stdint.h>

#include "net/loop.h"

struct mailbox_item {
	struct mailbox_item *next;
	int kind;                  /* the receiver's own discriminator */
};

struct mailbox;
typedef void (*mailbox_fn)(struct mailbox *mb, struct mailbox_item *items);

struct mailbox {
	pthread_mutex_t mu;
	struct mailbox_item *head, *tail;
	int efd;
	uint64_t val;
	struct loop *loop;
	struct loop_op op;
	mailbox_fn handler;
	void *owner;
	int armed;                 /* a read on efd is in flight */
};

/* Set up; starts receiving once mailbox_arm() ran on the owning thread. */
int mailbox_init(struct mailbox *mb, struct loop *l, mailbox_fn fn, void *owner);
void mailbox_arm(struct mailbox *mb);
/* Frees nothing still queued: the owner drains with mailbox_take() first. */
void mailbox_fini(struct mailbox *mb);
/* Post a list head..tail (tail->next must be NULL). Any thread. */
void mailbox_post_list(struct mailbox *mb, struct mailbox_item *head, struct mailbox_item *tail);
void mailbox_post(struct mailbox *mb, struct mailbox_item *it);
/* Take everything queued now (owner thread, or any thread after the loop stopped). */
struct mailbox_item *mailbox_take(struct mailbox *mb);

#endif
