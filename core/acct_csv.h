/*
 * acct_csv.h - PowerMTA's accounting files (<acct-file PATH> and
 * <acct-file |PROGRAM>): CSV as in RFC 4180 (CRLF, quoting), one header
 * line naming the columns (the union of the fields of the file's record
 * types, `type` first), then one record per event, fed from the same
 * events as the JSON log (acct_log_set_tap).
 *
 * Record types from events: delivery d, bounce b (an asynchronous DSN: rb),
 * expiration b (bounceCat message-expired), transient t (and, for one
 * without an SMTP reply, a queue-wide tq once per queue and diagnostic per
 * second), reception r, feedback report f. `records` picks the types (default d,b);
 * `record-fields TYPE LIST` the fields, in that order (`*` the default
 * fields not listed yet, `!name` drops one, `header_NAME` a message header;
 * `timeImprinted` written empty). Columns: `type`, then each type's fields
 * (d b t tq r f rb rs), a field kept at its first place. Times are UNIX
 * time_t seconds (the guide's default). Values are valid UTF-8.
 *
 * Files: opened for appending (the header is written when the file is
 * empty). Before a record, the file is moved when it is not empty and
 * either its move-interval period has ended or the record
 * would take it past max-size: renamed (copied across file systems) to
 * NAME-YYYY-MM-DD-HHMM[.n].EXT (UTC, the start of its move-interval period:
 * periods are aligned, 1d moves at midnight) in move-to (default: its own directory);
 * then archives there older than delete-after are removed. A failed move
 * keeps the file in use, retried a second later. A failed write (disk
 * full) cuts the file back to its last whole record: the records wait in
 * memory (up to 64 MiB) and acct_csv_flush() fails, so the log's flush
 * fails and the spool's outbox keeps them too (queue/outbox.h).
 * Pipes: the program runs under /bin/sh -c with the records on its
 * standard input (header first), written without blocking; while it does
 * not keep up, records wait in memory up to 4 MiB, then are dropped and
 * counted (acct_csv_dropped_total(): never a stall, never a failed flush);
 * a program that exits is started again a second later and gets the
 * record it took part of again, whole.
 *
 * Threads: like struct acct_log, one thread (the log's). Errors are
 * reported once per file and state change on stderr; they never fail the
 * caller (the spool, not the accounting, is the durable record).
 */
#ifndef SALVO_ACCT_CSV_H
#define SALVO_ACCT_CSV_H

#include <stddef.h>
#include <stdint.h>

#include "core/acct_log.h"
#include "core/config.h"

struct acct_csv;

/* Build writers for files[0..n) (borrowed: they must outlive the writer)
 * and open them. 0, or -errno with a message in err (nothing to free). */
int acct_csv_open(struct acct_csv **out, const struct config_acct_file *files, size_t n, char *err, size_t cap);

/* acct_tap functions: ctx is the struct acct_csv. */
int acct_csv_write(void *ctx, const struct acct_event *ev);
int acct_csv_flush(void *ctx);

/* Records dropped in all (pipes that did not keep up, files that failed). */
uint64_t acct_csv_dropped(const struct acct_csv *c);
/* The same over every writer of the process (any thread: the metric
 * salvo_acct_csv_dropped_total). */
uint64_t acct_csv_dropped_total(void);

/* Flush, close files, end pipes (their stdin closed; waited for). NULL: no-op. */
void acct_csv_close(struct acct_csv *c);

#endif
