/*
 * webhook_seen.h - internal to the webhook sender (webhook.c): the event_ids
 * a webhook took lately, so a record the accounting log holds twice (the
 * spool's outbox writes the records of the last flush again after a
 * kill -9: the same line, the same event_id, further down the log) is sent
 * once.
 *
 * Remembers at least the last WH_SEEN_GEN ids added (two generations of
 * an open-addressing set; the older one is dropped when the newer fills),
 * which covers far more log than one flush of the accounting log (64 KiB).
 */
#ifndef SALVO_WEBHOOK_SEEN_H
#define SALVO_WEBHOOK_SEEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WH_SEEN_GEN 2048u            /* ids per generation */
#define WH_SEEN_SLOTS (2 * WH_SEEN_GEN)

struct wh_seen_gen {
	uint64_t key[WH_SEEN_SLOTS][2]; /* {0,0}: empty */
	size_t n;
};

struct wh_seen {
	struct wh_seen_gen gen[2];      /* gen[cur] is filling */
	unsigned cur;
};

/* hex: ACCT_EVENT_ID_LEN lowercase hex digits. */
bool wh_seen_has(const struct wh_seen *s, const char *hex);
void wh_seen_add(struct wh_seen *s, const char *hex);

/* Add the ids of the whole records among the n bytes at text (lines; the
 * first is cut unless at_start). */
void wh_seen_add_lines(struct wh_seen *s, const char *text, size_t n, bool at_start);

#endif
