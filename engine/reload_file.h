/*
 * reload_file.h - reading the configuration file for a reload (reload.c).
 *
 * A running salvod must not take a file the operator is still writing, or
 * one that is plainly not a configuration, as its next generation: the
 * parser would accept many of those (an empty file is the built-in
 * defaults, which drop every listener, domain and source; a file cut in
 * the middle of an edit is often valid). reload_file_read() refuses, with
 * "FILE: reason":
 *   - what cannot be opened (missing, EACCES, EMFILE...), never blocking:
 *     a FIFO is opened non-blocking and refused;
 *   - anything but a regular file (a directory, a FIFO, a device);
 *   - a file whose mode gives read permission to no one (chmod 000: salvod
 *     usually runs as root, which could read it all the same);
 *   - more than RELOAD_FILE_MAX bytes (not read at all);
 *   - a NUL byte (the parser would stop there and take the rest as absent);
 *   - no directive at all (empty, blanks and comments only);
 *   - a file that changed while it was read (size, mtime, ctime or, by
 *     name, inode differ before and after): an editor still writing. A
 *     writer that stops for a moment mid-file would look finished, so the
 *     file is read only once it has not changed for RELOAD_FILE_QUIET_MS
 *     (a reload right after an edit waits that long; one that keeps
 *     changing for RELOAD_FILE_SETTLE_MS is refused).
 * Files named by `include` are read by the parser (core/config_parse.c);
 * only the checks it makes apply to them.
 */
#ifndef SALVO_RELOAD_FILE_H
#define SALVO_RELOAD_FILE_H

#include <stddef.h>

#define RELOAD_FILE_MAX ((size_t)64 << 20)
#define RELOAD_FILE_QUIET_MS 100   /* unchanged this long before it is read */
#define RELOAD_FILE_SETTLE_MS 2000 /* waiting for that at most */

/* The whole file, NUL-terminated, in *text (the caller frees) and its
 * length in *len: 0. -1 with "PATH: reason" in err (nothing allocated). */
int reload_file_read(const char *path, char **text, size_t *len, char *err, size_t cap);

#endif
