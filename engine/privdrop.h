/*
 * privdrop.h - PowerMTA's `run-as-root no`: a salvod started as root gives
 * up root once its listeners are bound (ports under 1024 need it only for
 * that), becoming `run-as-user` (default "salvo").
 */
#ifndef SALVO_PRIVDROP_H
#define SALVO_PRIVDROP_H

#include <stddef.h>

struct config;

/* When cfg->drop_root and the process is root: hand the spool directory
 * (and what is in it, two levels deep), the log file, the <acct-file>s
 * and their move-to directories to the user, then set the groups, gid and uid (every thread: glibc's
 * setuid applies process-wide). Not root: nothing to do (a note on
 * stderr). Returns 0, or -1 with the reason in err (an unknown user, a
 * failed call): salvod must not go on as root then. */
int privdrop_apply(const struct config *cfg, char *err, size_t cap);

#endif
