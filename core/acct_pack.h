/*
 * acct_pack.h - an accounting event as bytes, for the spool's outbox
 * (queue/outbox.c): the record is stored in the same LMDB transaction as
 * the state change it reports and turned back into a struct acct_event
 * when it is written to the log, so the log (and its CSV tap) format it
 * exactly as they would have at the time: same bytes, same event_id.
 *
 * Layout (version 1, little-endian):
 *   u8 version, u8 type, u8 flags (bit 0: has_size; bit 1: 19 strings
 *   follow, else the first 14; bit 2 (with bit 1): 20, envid last; bit 3
 *   (with bits 1 and 2): 21, orcpt last), u8 0,
 *   i64 time_ms, u64 id, u32 attempt, i64 queued_time_ms, u64 size,
 *   i32 response_code, u64 dsn_id,
 *   then the 19 strings in struct order (sender, recipient, queue, vmta,
 *   source_ip, mx_host, mx_ip, response_enhanced, response_text,
 *   bounce_category, kind, campaign, tls, filter, src_type, pool, esmtp,
 *   headers, dsn_action), each a u32 length (0xffffffff: NULL) then that many bytes
 *   and a NUL. Strings are only ever appended: a record without flag bit 1
 *   (written before the last five existed) has 14 and unpacks with the
 *   others NULL. (Bit 1 with 19 strings came in one change: no record has
 *   another count.)
 * Nothing else: unpack refuses trailing bytes, a length past the end, a
 * string without its NUL or with one inside it, an unknown version, type
 * or flag (-EBADMSG; *ev is then unspecified).
 */
#ifndef SALVO_ACCT_PACK_H
#define SALVO_ACCT_PACK_H

#include <stddef.h>

#include "core/acct_log.h"

struct json_buf;

#define ACCT_PACK_VERSION 1

/* Append ev's bytes to b. time_ms 0 is stored as the current time (the
 * record must format the same way every time it is written). 0, -EINVAL
 * (type out of range, a string of 4 GiB or more) or -ENOMEM; on error b
 * keeps its previous length. */
int acct_event_pack(struct json_buf *b, const struct acct_event *ev);

/* Decode p[0..n) into *ev; its strings point into p (valid while p is).
 * 0 or -EBADMSG. */
int acct_event_unpack(const void *p, size_t n, struct acct_event *ev);

#endif
