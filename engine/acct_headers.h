/*
 * acct_headers.h - the message headers accounting records carry
 * (record-fields ... header_NAME in <acct-file>), see acct_headers.c.
 */
#ifndef SALVO_ACCT_HEADERS_H
#define SALVO_ACCT_HEADERS_H

#include <stddef.h>

struct config;

/* The headers cfg's <acct-file>s ask for, from the header block of
 * msg[0..len): "Name: value\n" lines (the name as configured), malloc'd,
 * the caller's to free; NULL when none is asked for or present, or out of
 * memory (the record then goes without). */
char *acct_headers_take(const struct config *cfg, const char *msg, size_t len);

#endif
