/*
 * bounce_dsn.h - builds the delivery status notification (RFC 3464) that
 * goes back to a message's envelope sender when recipients fail or are
 * delayed.
 *
 * The result is a complete RFC 5322 message, CRLF line endings, no line
 * longer than 998 octets:
 *   From: "Mail Delivery System" <MAILER-DAEMON@HOST>
 *   To: <sender>
 *   Subject: Undelivered Mail Returned to Sender
 *            (or "Delayed Mail (still being retried)" when no recipient
 *            failed and one is "delayed", or "Successful Mail Delivery
 *            Report" when every recipient is "relayed")
 *   Date, Message-ID: <DSNID.dsn@HOST>, Auto-Submitted: auto-replied,
 *   MIME-Version: 1.0,
 *   Content-Type: multipart/report; report-type=delivery-status; boundary=...
 * and three parts: text/plain for people, message/delivery-status for
 * programs (Reporting-MTA, Arrival-Date, then per recipient
 * Original-Recipient (when the sender gave an ORCPT), Final-Recipient,
 * Action, Status, Remote-MTA, Diagnostic-Code, Last-Attempt-Date), and
 * text/rfc822-headers with the original's header section only (up to its
 * first empty line; all of it when it has none), at most DSN_HEADERS_MAX
 * bytes - or, when the sender asked for RET=FULL and a recipient failed,
 * message/rfc822 with the whole original, when it is at most
 * DSN_HEADERS_MAX bytes (a larger one is returned as headers only).
 *
 * Untrusted text: the remote reply, addresses and the original's headers
 * are never able to add a header or a MIME part. CR, LF and other control
 * characters in replies and addresses become spaces (runs of white space
 * collapse into one); replies are cut at DSN_DIAG_MAX bytes, non-ASCII
 * bytes in them become '?', and long fields are folded at white space
 * (or split, a space inserted, when a single word is too long). The
 * original's lines are copied with their line ends made CRLF, NULs and
 * bare CRs removed, and lines over 998 octets folded. The boundary is
 * derived from the ids and changed until it occurs in none of the parts.
 * Bytes >= 0x80 (UTF-8 addresses, raw 8-bit headers) are kept in
 * addresses and the original's headers; a part holding any is labelled
 * Content-Transfer-Encoding: 8bit (the RFC 6533 "global" types are not
 * used).
 *
 * Threads: no shared state; callable from any thread.
 */
#ifndef SALVO_BOUNCE_DSN_H
#define SALVO_BOUNCE_DSN_H

#include <stddef.h>
#include <stdint.h>

#define DSN_LINE_MAX 998             /* RFC 5322 2.1.1, without the CRLF */
#define DSN_HEADERS_MAX (64u << 10)  /* original headers quoted, at most */
#define DSN_DIAG_MAX 2048            /* remote reply text kept, at most */
#define DSN_ADDR_MAX 900             /* address bytes kept (SMTP allows 256) */

/* RFC 3461 RET (the spool's SPOOL_RET_* values): unspecified and HDRS
 * return the headers, FULL the whole message (in failure reports). */
enum { DSN_RET_UNSPEC = 0, DSN_RET_FULL = 1, DSN_RET_HDRS = 2 };

/* One recipient the report is about. All strings borrowed for the call. */
struct dsn_rcpt {
	const char *addr;        /* required: the recipient address, no <> */
	const char *action;      /* required: "failed", "delayed" or "relayed" (RFC 3461
				  * 4.4: passed to a host without DSN support) */
	const char *orcpt;       /* RFC 3461 ORCPT "type;address": Original-Recipient;
				  * NULL or "" = none */
	const char *status;      /* "5.1.1"; NULL or malformed: 5.0.0 (failed) / 4.0.0 (delayed) */
	const char *remote_mta;  /* host that answered; NULL = unknown (no Remote-MTA) */
	const char *diagnostic;  /* the remote reply, "550 5.1.1 no such user"; NULL = none */
	int64_t last_attempt_ms; /* wall clock ms; 0 = no Last-Attempt-Date */
};

struct dsn_info {
	const char *reporting_mta;    /* required: our host name */
	const char *sender;           /* required: the original envelope sender, no <> */
	uint64_t orig_id;             /* Salvo id of the original message */
	uint64_t dsn_id;              /* Salvo id of the DSN itself (Message-ID) */
	const char *orig;             /* the original message (headers + body) */
	size_t orig_len;
	int64_t arrival_ms;           /* when the original was accepted; 0 = no Arrival-Date */
	const char *envid;            /* the original's ENVID: Original-Envelope-Id; NULL/"" none */
	int ret;                      /* DSN_RET_*: what of the original a failure returns */
	int64_t date_ms;              /* Date: header; 0 = now */
	const struct dsn_rcpt *rcpts; /* at least one */
	size_t n_rcpts;
};

/*
 * Build the DSN. On success returns 0 and sets *out to a malloc'd buffer
 * of *out_len bytes (plus a NUL not counted), which the caller frees.
 * Errors (nothing allocated, *out untouched):
 *   -EINVAL  null sender ("" or "<>": a bounce is never bounced; the caller
 *            is expected to skip those), no recipient, or a required field
 *            missing, or an action other than "failed"/"delayed"/"relayed";
 *   -ENOMEM.
 */
int dsn_build(const struct dsn_info *info, char **out, size_t *out_len);

#endif
