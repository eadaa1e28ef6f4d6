/*
 * acct_csv_move.h - moving an <acct-file> aside (move-interval, max-size,
 * move-to) and removing old moved files (delete-after): PowerMTA's names,
 * NAME-YYYY-MM-DD-HHMM[.n].EXT (UTC), in move-to or beside the file.
 *
 * Threads: none of its own; called from the accounting log's thread.
 * Errors are negative errno values.
 */
#ifndef SALVO_ACCT_CSV_MOVE_H
#define SALVO_ACCT_CSV_MOVE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Move path to move_to (NULL: its own directory) as
 * NAME-YYYY-MM-DD-HHMM.EXT for begun, or NAME-...-HHMM.n.EXT with the
 * first free n; across file systems it is copied (synced) and then
 * removed. The new path goes into to. 0, or -errno with path untouched
 * and nothing left in move_to. */
int acct_csv_move(const char *path, const char *move_to, time_t begun, char *to, size_t cap);

/* Remove path's moved files (exactly NAME-YYYY-MM-DD-HHMM[.n].EXT: not
 * another file's, not a live file) in move_to (NULL: its own directory)
 * last written more than age_ms ago. */
void acct_csv_expire(const char *path, const char *move_to, uint64_t age_ms);

#endif
