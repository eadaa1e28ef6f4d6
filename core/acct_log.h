/*
 * acct_log.h - the accounting log: one JSON object per line, one line per
 * event (reception, delivery, transient failure, bounce, expiration,
 * feedback report, suppression, cancellation by an operator), in DIR/acct.jsonl.
 *
 * Record layout (fields in this order; absent ones are left out):
 *   {"time":"2026-11-22T10:01:02.345Z","type":"bounce","id":"00000000000004d2",
 *    "sender":"...","recipient":"...","queue":"...","vmta":"...",
 *    "source_ip":"...","mx_host":"...","mx_ip":"...","attempt":2,
 *    "queued_time":"2026-11-22T09:58:00.000Z","size":1234,
 *    "response":{"code":550,"enhanced":"5.1.1","text":"..."},
 *    "bounce_category":"bad-mailbox","kind":"dsn","campaign":"...",
 *    "tls":"TLSv1.3 TLS_AES_256_GCM_SHA384","dsn_id":"00000000000004d3",
 *    "filter":"{\"campaign\":\"c1\"}",
 *    "event_id":"00000000000004d29c1e0f3a57b2d4e8"}
 * Times are RFC 3339, UTC, millisecond precision. Message ids are 16
 * lower-case hex digits, quoted (a uint64 does not survive a JSON parser
 * that reads numbers as doubles).
 *
 * event_id, always present and always last: 32 lower-case hex digits, the
 * message id (16, zeros when none) then a 64-bit hash of the record's
 * bytes before it (16). Unique per event (those bytes carry the time, type,
 * message id, recipient and attempt) and stable: whoever forwards the
 * logged line (the webhooks) forwards the same id on every re-send. So a
 * complete line ends with ACCT_EVENT_ID_KEY, ACCT_EVENT_ID_LEN hex digits,
 * "\"}\n"; a line cut short by a crash does not. Strings are escaped by json_buf_str():
 * the output is valid UTF-8 whatever the input bytes were.
 *
 * Rotation: before a record is added, the current file is renamed to
 * DIR/acct-YYYYMMDDTHHMMSS.mmmZ.jsonl (UTC time of the rotation; when that
 * name exists, the next free millisecond is used, so archives never
 * overwrite each other and sort by name) and a fresh acct.jsonl is
 * opened, when either
 *   - the record would take the file past rotate_bytes (so a file holds at
 *     most rotate_bytes, except a lone record longer than that), or
 *   - rotate_ms is set and the file was started rotate_ms or more ago
 *     (an existing file's start is its birth time where the file system
 *     records one, else the time it was opened).
 * An empty file is never rotated. Records are only ever written whole
 * into one file: a line is never split across files.
 *
 * Buffering and errors: acct_log_write() formats into a buffer owned by
 * the log; acct_log_flush() appends the buffer to the file with write(2).
 * write() also flushes on its own when the buffer passes 64 KiB (while
 * the file keeps failing: every further 64 KiB) or a rotation is due. When write(2) fails (disk full...), the file is cut back
 * to its last whole line, the records stay buffered and the next flush
 * retries them; past 4 MiB of unwritten records the buffer is dropped
 * (counted in acct_log_dropped()) rather than growing without bound.
 * Files are not fsync'ed: the spool, not this log, is the durable record.
 *
 * Threads: a struct acct_log belongs to one thread (in salvod, the spool
 * writer thread: after each group commit, outbox_flush() - queue/outbox.h -
 * writes the records that commit put in the spool's outbox, then calls
 * acct_log_flush()). Nothing here locks. salvod code does not call
 * acct_log_write() itself: a record is put with outbox_put() in the
 * transaction of the change it reports, so a crash cannot lose it.
 *
 * Errors are negative errno values (-ENOMEM, -EACCES, -ENOSPC, ...).
 */
#ifndef SALVO_ACCT_LOG_H
#define SALVO_ACCT_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ACCT_ROTATE_BYTES_DEFAULT (256ull << 20) /* when rotate_bytes is 0 */
#define ACCT_EVENT_ID_KEY ",\"event_id\":\""
#define ACCT_EVENT_ID_LEN 32
#define ACCT_TIME_LEN 24 /* "2026-11-22T10:01:02.345Z" without its NUL */

enum acct_type {
	ACCT_RECEPTION,  /* "reception"  */
	ACCT_DELIVERY,   /* "delivery"   */
	ACCT_TRANSIENT,  /* "transient"  */
	ACCT_BOUNCE,     /* "bounce"     */
	ACCT_EXPIRATION, /* "expiration" */
	ACCT_FEEDBACK,   /* "feedback"   */
	ACCT_SUPPRESSED, /* "suppressed" */
	ACCT_CANCELLED,  /* "cancelled": removed by an operator (POST /api/v1/delete) */
	ACCT_REMOTE_STATUS, /* "remote_status": a DSN whose action is not failed (delayed,
			     * delivered, relayed, expanded) for mail we sent: PowerMTA's rs */
	ACCT_TYPE_COUNT
};

/*
 * One event. Strings are borrowed for the duration of acct_log_write()
 * only; a NULL string leaves its field out ("" is printed as ""). Numbers
 * are left out as noted.
 */
struct acct_event {
	enum acct_type type;
	int64_t time_ms;          /* "time", wall clock ms; 0 = now */
	uint64_t id;              /* "id"; 0 = none (spool ids start at 1) */
	const char *sender;       /* "sender" ("" = null sender <>) */
	const char *recipient;    /* "recipient" */
	const char *queue;        /* "queue" */
	const char *vmta;         /* "vmta" */
	const char *source_ip;    /* "source_ip" */
	const char *mx_host;      /* "mx_host" */
	const char *mx_ip;        /* "mx_ip" */
	uint32_t attempt;         /* "attempt"; 0 = left out (no attempt yet) */
	int64_t queued_time_ms;   /* "queued_time", accept time; 0 = left out */
	uint64_t size;            /* "size" in bytes, when has_size */
	bool has_size;
	/* "response": printed when response_code != 0 or response_text is a
	 * non-empty string (a connection failure has text but no code); inside
	 * it, "code" is left out when 0, "enhanced" and "text" when NULL or "". */
	int response_code;
	const char *response_enhanced;
	const char *response_text;
	const char *bounce_category; /* "bounce_category", e.g. "bad-mailbox" */
	const char *kind;            /* "kind": "dsn" / "arf" for async reports */
	const char *campaign;        /* "campaign" */
	const char *tls;             /* "tls": protocol and cipher */
	uint64_t dsn_id;             /* "dsn_id" of the DSN sent for a bounce; 0 = none */
	const char *filter;          /* "filter": what removed a cancelled recipient, as
				      * compact JSON ({"campaign":"c1","older_than":"2h"}) */
	const char *src_type;        /* "src_type": how the message came in: "smtp", "api",
				      * or "local" (a DSN salvod made) */
	const char *pool;            /* "pool": the virtual-mta-pool it went through (none
				      * for the default pool) */
	const char *esmtp;           /* "esmtp": the EHLO extensions the receiver offered,
				      * comma-separated, e.g. "PIPELINING,SIZE,STARTTLS" */
	const char *headers;         /* "headers": message headers the <acct-file>s ask for
				      * (header_NAME): "Name: value\n" lines, values
				      * unfolded and cut (ACCT_HEADER_MAX); a JSON object */
	const char *dsn_action;      /* "dsn_action": a remote status report's Action
				      * (delayed, delivered, relayed, expanded) */
	const char *envid;           /* "envid": the message's ENVID (process-x-envid) */
	const char *orcpt;           /* "orcpt": the recipient's RFC 3461 ORCPT, "type;address" */
};

#define ACCT_HEADER_MAX 256 /* bytes of a header value an event carries */

/* The value of header name in an event's headers lines (into out, cap
 * bytes); NULL when absent. Case-insensitive on the name. */
const char *acct_event_header(const struct acct_event *ev, const char *name, char *out, size_t cap);

struct acct_log;
struct json_buf;

/*
 * Create dir if missing (with parents, mode 0750) and open DIR/acct.jsonl
 * for appending (mode 0640). rotate_bytes 0 = ACCT_ROTATE_BYTES_DEFAULT;
 * rotate_ms 0 = never by age. On success *out is the caller's, to be
 * released with acct_log_close(). Returns 0 or -errno (*out untouched).
 */
int acct_log_open(struct acct_log **out, const char *dir, uint64_t rotate_bytes, uint64_t rotate_ms);

/*
 * Add one record. It is buffered; it reaches the file at the next
 * acct_log_flush() (or earlier, see above). Returns 0, -EINVAL for a type
 * out of range (nothing added), -ENOMEM (nothing added), or the -errno of
 * a flush or rotation that this call triggered (the record is kept in the
 * buffer and retried).
 */
int acct_log_write(struct acct_log *log, const struct acct_event *ev);

/* Append everything buffered to the file. 0 or -errno (records kept, see above). */
int acct_log_flush(struct acct_log *log);

/* Flush (errors are lost: flush first to see them), close, free. NULL is a no-op. */
void acct_log_close(struct acct_log *log);

/* A second writer fed from the same events (PowerMTA's CSV files,
 * core/acct_csv.c): write() gets each event acct_log_write() accepts (in
 * the log's thread, the event borrowed for the call), flush() each
 * acct_log_flush(). write()'s errors are its own; a flush() that fails
 * (records kept, retried at the next flush) fails acct_log_flush() too,
 * so the outbox keeps the entries until both writers have them.
 * NULL removes it. The log does not own ctx. */
struct acct_tap {
	int (*write)(void *ctx, const struct acct_event *ev);
	int (*flush)(void *ctx);
	void *ctx;
};
void acct_log_set_tap(struct acct_log *log, const struct acct_tap *tap);

/* Records dropped because the file stayed unwritable (see above). */
uint64_t acct_log_dropped(const struct acct_log *log);

/* "type" string of an event type, or NULL when out of range. */
const char *acct_type_name(enum acct_type type);

/* Format ms since the epoch as RFC 3339 UTC with milliseconds into out
 * (at least ACCT_TIME_LEN + 1 bytes, NUL-terminated). Returns 0, or -EINVAL
 * when the time has no 4-digit year. */
int acct_time_rfc3339(int64_t ms, char *out, size_t cap);

/* Append the record's JSON object and its "\n" to a buffer (what
 * acct_log_write() does before buffering; exposed for tests and tools).
 * 0, -EINVAL (bad type or time; b unchanged) or -ENOMEM (b unchanged). */
int acct_event_format(struct json_buf *b, const struct acct_event *ev);

#endif
