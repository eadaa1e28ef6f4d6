/*
 * webhook_backlog.h - internal to the webhook sender (webhook.c): how many
 * bytes, and records of a webhook's types, the accounting log holds after
 * its acknowledged position (its backlog).
 *
 * Counted incrementally: per file of the log (by inode, so a rotation
 * keeps the count), the whole lines from a start offset to where counting
 * got, and only what was appended or acknowledged since is read again.
 * Each update reads at most a budget of bytes, so a backlog of gigabytes
 * (a receiver down for hours, or the first count after a restart) is
 * counted over several updates; until then the count is not exact.
 */
#ifndef SALVO_WEBHOOK_BACKLOG_H
#define SALVO_WEBHOOK_BACKLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/webhook_log.h"

struct wh_count {
	uint64_t ino;
	uint64_t start;    /* counting began here (0, or the acknowledged offset) */
	uint64_t off;      /* counted up to here: just after a line */
	uint64_t n;        /* records wanted in [start, off) */
	bool seen;         /* still in the log's directory (this update) */
};

struct wh_backlog {
	struct wh_count *files;    /* owned; wh_backlog_free */
	size_t n, cap;
	uint64_t records;          /* after the position, as far as counted */
	uint64_t bytes;            /* log bytes after the position */
	bool exact;                /* every file counted to its end */
	/* the last update's position: its file and the sender's count of
	 * records taken up to it (see wh_backlog_update's acked_wanted) */
	bool have_last;
	uint64_t last_ino, last_wanted;
	unsigned updates;
};

/* Does the webhook take records of this type ("delivery", ...)? */
typedef bool (*wh_wants_fn)(const void *ctx, const char *type, size_t len);

/* Bring b up to date for the log in dir_fd after pos (ino 0: all of it),
 * reading at most budget bytes. acked_wanted: how many records of the
 * webhook's types its reader took from the log up to pos, as a running
 * count (WH_WANTED_UNKNOWN: not known); when pos moved on within the same
 * file, the difference is what it passed, and those bytes are not read
 * again (every 64th update reads them anyway, so a miscount cannot last). */
#define WH_WANTED_UNKNOWN UINT64_MAX
void wh_backlog_update(struct wh_backlog *b, int dir_fd, const struct wh_pos *pos, wh_wants_fn wants,
		       const void *ctx, uint64_t budget, uint64_t acked_wanted);
void wh_backlog_free(struct wh_backlog *b);

#endif
