/*
 * spool.h - the durable spool in LMDB: messages, recipients, due index.
 *
 * Layout (one LMDB environment in SPOOL_DIR/data/, named databases):
 *   "msg"  key = message id (u64 big-endian)
 *          value = fixed header + sender\0 + campaign\0 + source_ip\0 + body
 *          written once, never rewritten; deleted with its last recipient.
 *   "rcpt" key = message id (u64 BE) + recipient index (u32 BE)
 *          value = fixed state (next attempt, queued time, attempts) +
 *                  address\0 + last response\0
 *   "due"  key = next attempt (u64 BE, ms since epoch) + id + index; empty
 *          value. Kept exactly in step with "rcpt" by spool_put_rcpt() and
 *          spool_del_rcpt(): the index by next attempt time.
 *   "meta" key "next_id" -> u64: message ids are never reused.
 *   (others in the same environment: "suppress", "sent", "pause",
 *   "campaign": see suppress.h, sent.h, pause.h, campaign_stats.h)
 *   "outbox" accounting records until they are in the log (queue/outbox.h).
 *
 * Threads: exactly one thread writes (spool_wtxn_*; see spool_writer.h for
 * the group-commit front end), one write txn at a time. Any thread may read
 * with its own read txn. A write transaction is durable (fsync'd) when
 * spool_wtxn_commit() returns 0. After any write call fails with an error
 * other than SPOOL_NOTFOUND, abort the txn (commit would return that error).
 *
 * Records are versioned binary (fixed little-endian headers; see spool.c);
 * a record that does not decode is reported as -EBADMSG, never read past
 * its end. Message ids come from spool_alloc_id(): increasing, never reused
 * (not even after the spool empties, or by this process after an abort),
 * seeded from the wall clock when the spool is created.
 *
 * Memory: pointers in struct spool_msg / spool_rcpt filled by spool_get_* and
 * passed to spool_recover() callbacks point into the LMDB map and are valid
 * only until the transaction that produced them ends. Nothing is malloc'd
 * for the caller.
 *
 * Errors: functions return 0, SPOOL_NOTFOUND, or a negative value: -errno or
 * an LMDB error code (mdb_strerror() names it; spool_strerror() wraps both).
 * SPOOL_FULL (== MDB_MAP_FULL) or -ENOSPC mean the disk or map is full.
 */
#ifndef SALVO_SPOOL_H
#define SALVO_SPOOL_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct spool;
struct spool_wtxn;
struct spool_rtxn;

#define SPOOL_NOTFOUND 1
#define SPOOL_FULL (-30792) /* MDB_MAP_FULL: the map (or the disk under it) is full */
/* The spool stopped taking writes after an unrecoverable error (see
 * spool_is_fatal()): salvod refuses mail and exits for a restart. */
#define SPOOL_STOPPED (-ESHUTDOWN)

/* A message as stored. On put, the caller's strings are copied in. */
struct spool_msg {
	uint64_t id;
	int64_t arrival_ms;        /* wall clock, ms since the epoch */
	uint32_t n_rcpt;           /* recipients at injection */
	const char *sender;        /* envelope sender, "" for the null sender */
	const char *campaign;      /* "" when none */
	const char *source_ip;     /* injecting client, "" when internal (DSN) */
	const char *body;          /* full RFC 5322 message, CRLF lines, unstuffed */
	size_t body_len;
	bool smtputf8;             /* came with SMTPUTF8 (RFC 6531): send it with it */
	const char *envid;         /* the message's ENVID (process-x-envid); "" (or NULL
				    * when writing) for none; at most 255 bytes */
	bool no_verp;              /* its <source> has verp-default no (and MAIL had no
				    * XVERP): it goes with its own return path */
	uint8_t src_type;          /* SPOOL_SRC_*: how it came in (accounting's srcType) */
	bool dkim_at_delivery;     /* not signed at intake: each delivery signs with
				    * its vmta's key (flags bit 4) */
	uint8_t ret;               /* RFC 3461 RET=: SPOOL_RET_* (flags bits 5-6; older
				    * records: not given) */
};

/* RET= (the values of net/smtp_cmd.h's enum smtp_ret). */
enum { SPOOL_RET_UNSPEC = 0, SPOOL_RET_FULL = 1, SPOOL_RET_HDRS = 2 };
/* NOTIFY= bits (the values of net/smtp_cmd.h's SMTP_NOTIFY_*); 0: not given. */
enum {
	SPOOL_NOTIFY_GIVEN = 1 << 0,
	SPOOL_NOTIFY_NEVER = 1 << 1,
	SPOOL_NOTIFY_SUCCESS = 1 << 2,
	SPOOL_NOTIFY_FAILURE = 1 << 3,
	SPOOL_NOTIFY_DELAY = 1 << 4,
};

/* How a message came in; stored in the message's flags (bits 1-2), so
 * messages spooled before it existed read SPOOL_SRC_UNKNOWN. */
enum {
	SPOOL_SRC_UNKNOWN = 0,
	SPOOL_SRC_SMTP = 1,
	SPOOL_SRC_API = 2,
	SPOOL_SRC_LOCAL = 3,       /* made by salvod: a DSN */
};

/* "smtp", "api", "local", or NULL for SPOOL_SRC_UNKNOWN. */
const char *spool_src_name(unsigned src_type);

/* One recipient's durable state. */
struct spool_rcpt {
	uint64_t msg_id;
	uint32_t idx;              /* 0..n_rcpt-1 within its message */
	uint32_t attempts;         /* delivery attempts made so far */
	int64_t next_attempt_ms;   /* wall clock, ms since the epoch */
	int64_t queued_ms;         /* when the message was accepted */
	const char *addr;          /* recipient address as given, NUL-terminated */
	const char *last_response; /* "" before the first attempt */
	const char *pool;          /* virtual MTA pool name; "" (or NULL when
				    * writing) for the default pool */
	uint8_t notify;            /* RFC 3461 NOTIFY=: SPOOL_NOTIFY_* bits, 0 not given
				    * (so in records older than the field) */
	const char *orcpt;         /* RFC 3461 ORCPT= as "type;address" (decoded);
				    * "" (or NULL when writing) for none; at most 1000 bytes */
};

/* Open (creating) the spool under dir (mkdir -p dir and dir/data, mode
 * 0750). map_size 0 = default (64 GiB, sparse: address space, not disk).
 * Clears reader slots left by dead processes (kill -9). One open per
 * process per spool: LMDB's locks are per process. */
int spool_open(struct spool **out, const char *dir, uint64_t map_size);
void spool_close(struct spool *s);
const char *spool_strerror(int err);

/* --- write side: one thread only ----------------------------------------- */
int spool_wtxn_begin(struct spool *s, struct spool_wtxn **out);
int spool_wtxn_commit(struct spool_wtxn *t);   /* frees t; durable on 0 */
void spool_wtxn_abort(struct spool_wtxn *t);   /* frees t */
/* A fresh message id (persisted with the transaction). */
int spool_alloc_id(struct spool_wtxn *t, uint64_t *id);
/* MDB_KEYEXIST if m->id is stored already (messages are written once).
 * New mail must leave the headroom (map and disk reserves) free, so that
 * the outcomes that drain the spool can still commit; SPOOL_FULL when it
 * would not. */
int spool_put_msg(struct spool_wtxn *t, const struct spool_msg *m);
/* The same for a message made by an outcome (a DSN): it may use the
 * reserve that new mail leaves, down to a quarter of it, because the
 * outcome that makes it also frees what it reports on. */
int spool_put_msg_reserve(struct spool_wtxn *t, const struct spool_msg *m);
/* Insert or replace a recipient; keeps the due index in step (exactly one
 * due key per recipient). -EINVAL for a negative next_attempt_ms. */
int spool_put_rcpt(struct spool_wtxn *t, const struct spool_rcpt *r);
/* Read a message inside the write transaction (e.g. to quote it in a DSN
 * before its last recipient is removed). Pointers valid until the txn ends
 * or the next write to it. */
int spool_wtxn_get_msg(struct spool_wtxn *t, uint64_t id, struct spool_msg *out);
/* Read a recipient inside the write transaction (same validity). */
int spool_wtxn_get_rcpt(struct spool_wtxn *t, uint64_t msg_id, uint32_t idx, struct spool_rcpt *out);
/* Remove a recipient (done: delivered, bounced, expired, suppressed). When it
 * was the message's last, the message is deleted too and *msg_gone is set
 * (msg_gone may be NULL). A recipient that is not stored: SPOOL_NOTFOUND,
 * nothing changed. */
int spool_del_rcpt(struct spool_wtxn *t, uint64_t msg_id, uint32_t idx, bool *msg_gone);

/* --- read side: any thread -------------------------------------------------
 * A read txn is a snapshot; it belongs to its handle, not to a thread (the
 * environment is opened with MDB_NOTLS), so any thread may begin one, hand
 * it to another thread and end it there, as long as two threads never use
 * one handle at the same time. A thread may hold several. Begin/end are
 * cheap: ended handles are reset (snapshot dropped, reader slot kept) and
 * renewed by the next begin. Keep them short: a live snapshot stops LMDB
 * from reusing the pages freed since it began, so the file grows. At most
 * 256 can be live at once (the reader table); all must be ended before
 * spool_close(). */
int spool_rtxn_begin(struct spool *s, struct spool_rtxn **out);
void spool_rtxn_end(struct spool_rtxn *t);
int spool_get_msg(struct spool_rtxn *t, uint64_t id, struct spool_msg *out);
int spool_get_rcpt(struct spool_rtxn *t, uint64_t msg_id, uint32_t idx, struct spool_rcpt *out);
/* Call cb for each recipient in key order (message id, then index),
 * starting after (after_id, after_idx) when `after`, else at the first;
 * at most `budget` records are looked at (0: no bound). A non-zero return
 * from cb stops the walk and is returned; *last is the key of the last
 * record looked at, that one included (so cb stops after taking a record,
 * and the next page starts after *last), *more whether records remain. A record that does not decode is skipped. r is valid during the call. */
int spool_walk_rcpts(struct spool_rtxn *t, bool after, uint64_t after_id, uint32_t after_idx, uint64_t budget,
		     int (*cb)(void *arg, const struct spool_rcpt *r), void *arg, uint64_t *last_id,
		     uint32_t *last_idx, bool *more);

/* Call cb for every queued recipient in due order (the "due" index). A
 * non-zero return from cb stops the walk and is returned. Runs in its own
 * read txn; r is valid only during the call. Should the index disagree with
 * "rcpt" (never, unless the file was damaged): a due key with no recipient,
 * or with a recipient due at another time, is skipped; a recipient with no
 * due key is still reported, after all the others (a second pass over
 * "rcpt", taken only when the first pass reported fewer recipients than
 * "rcpt" holds); a corrupt recipient record is skipped. Each kind is
 * logged once to stderr with its count. */
int spool_recover(struct spool *s, int (*cb)(void *arg, const struct spool_rcpt *r), void *arg);

/* The spool's secret for signing VERP return paths (32 bytes, made once
 * when the spool is created; valid while it is open). */
const uint8_t *spool_verp_key(const struct spool *s);

/* Counts for status and tests (O(1): from LMDB's page statistics). */
int spool_count(struct spool *s, uint64_t *n_msgs, uint64_t *n_rcpts);

/* Is err a "cannot store now" case (map full, ENOSPC, EDQUOT, or the spool
 * stopped: SPOOL_STOPPED)? Intake answers 452 / HTTP 503 for these instead
 * of acknowledging. */
bool spool_is_full(int err);
/* Is err unrecoverable in this process: MDB_PANIC, a damaged file, an I/O
 * error (after a failed fsync the page cache can no longer be trusted)?
 * Nothing more may be written or delivered; a restart recovers from what
 * is on disk. Full disks, ENOMEM and request-level errors are not fatal. */
bool spool_is_fatal(int err);

/* High-water mark of the data file and the map size, in bytes: lets intake
 * refuse new mail before the map is full, keeping room for the deletes and
 * updates that drain it. Any thread. */
int spool_usage(struct spool *s, uint64_t *used, uint64_t *map_size);

/* A full consistency check (O(n); for tests and tools, not the hot path):
 * every record decodes, each recipient has its message and exactly its due
 * key, each message has a recipient, each due key its recipient. */
struct spool_verify {
	uint64_t msgs, rcpts, due;   /* entries walked */
	uint64_t bad_records;        /* undecodable key or value */
	uint64_t msg_no_rcpt;        /* message with no recipient left */
	uint64_t rcpt_no_msg;        /* recipient whose message is missing */
	uint64_t rcpt_no_due;        /* recipient without its due key */
	uint64_t due_no_rcpt;        /* due key with no (matching) recipient */
	uint64_t problems;           /* sum of the five above */
};
int spool_verify(struct spool *s, struct spool_verify *out);

#endif
