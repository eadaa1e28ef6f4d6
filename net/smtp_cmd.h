/*
 * smtp_cmd.h - SMTP command-line parsing for the intake server (RFC 5321).
 *
 * Pure functions over (buf, len): nothing is allocated, results point into
 * the caller's buffer and live as long as it does. Safe from any thread.
 *
 * smtp_line_find() frames one line; smtp_cmd_parse() parses one framed line
 * (without its CRLF). Errors are specific so the server can answer with the
 * right reply (see smtp_cmd_strerror()).
 */
#ifndef SALVO_SMTP_CMD_H
#define SALVO_SMTP_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* RFC 5321 4.5.3.1: command line 512 octets, path 256, domain 255. */
#define SMTP_MAX_CMD_LINE 512
/* RFC 3461 5: with DSN offered, RCPT may be 500 octets longer (NOTIFY,
 * ORCPT) and MAIL 100 (RET, ENVID); the server frames commands at this. */
#define SMTP_MAX_DSN_CMD_LINE (SMTP_MAX_CMD_LINE + 500)
#define SMTP_MAX_PATH 256
#define SMTP_MAX_DOMAIN 255
#define SMTP_MAX_LOCAL 64
/* RFC 3461: ENVID at most 100 characters; an ORCPT's "type;address" kept
 * at most this long once decoded (its line is at most 512 + 500 octets). */
#define SMTP_MAX_ENVID 100
#define SMTP_MAX_ORCPT 500

/* RFC 3461 NOTIFY=, as bits; 0 = not given. NEVER is never combined. */
enum {
	SMTP_NOTIFY_GIVEN = 1 << 0,
	SMTP_NOTIFY_NEVER = 1 << 1,
	SMTP_NOTIFY_SUCCESS = 1 << 2,
	SMTP_NOTIFY_FAILURE = 1 << 3,
	SMTP_NOTIFY_DELAY = 1 << 4,
};

/* RFC 3461 RET= on MAIL. */
enum smtp_ret { SMTP_RET_UNSPEC = 0, SMTP_RET_FULL = 1, SMTP_RET_HDRS = 2 };

enum smtp_verb {
	SMTP_VERB_UNKNOWN = 0,
	SMTP_VERB_HELO,
	SMTP_VERB_EHLO,
	SMTP_VERB_MAIL,
	SMTP_VERB_RCPT,
	SMTP_VERB_DATA,
	SMTP_VERB_RSET,
	SMTP_VERB_NOOP,
	SMTP_VERB_QUIT,
	SMTP_VERB_VRFY,
	SMTP_VERB_HELP,
	SMTP_VERB_STARTTLS,
	SMTP_VERB_AUTH,
	SMTP_VERB_BDAT,
};

enum smtp_body_type { SMTP_BODY_UNSPEC = 0, SMTP_BODY_7BIT, SMTP_BODY_8BITMIME };

struct smtp_cmd {
	enum smtp_verb verb;
	const char *arg;           /* everything after the verb and its space(s) */
	size_t arg_len;
	/* MAIL / RCPT: the path between < and >, without them; "" for <>. */
	const char *path;
	size_t path_len;
	/* MAIL parameters; BDAT puts its chunk size in has_size/size. */
	bool has_size;
	uint64_t size;
	enum smtp_body_type body;
	bool smtputf8;
	bool xverp;                /* MAIL ... XVERP[=..] (Postfix's and PowerMTA's): VERP wanted */
	bool bdat_last;            /* BDAT n LAST */
	/* RFC 3461 DSN parameters, syntax-checked; values point into the line
	 * still xtext-encoded (smtp_xtext_decode() gives the text). */
	enum smtp_ret ret;         /* MAIL RET= */
	const char *envid;         /* MAIL ENVID=; NULL when absent */
	size_t envid_len;
	unsigned notify;           /* RCPT NOTIFY=: SMTP_NOTIFY_* bits, 0 when absent */
	const char *orcpt;         /* RCPT ORCPT= "addr-type;xtext"; NULL when absent */
	size_t orcpt_len;
};

enum smtp_cmd_err {
	SMTP_CMD_OK = 0,
	SMTP_CMD_EUNKNOWN = -1,    /* unrecognised verb: 500 5.5.2 */
	SMTP_CMD_ESYNTAX = -2,     /* bad arguments: 501 5.5.4 */
	SMTP_CMD_EPATH = -3,       /* malformed path / address: 501 5.1.3 (MAIL 5.1.7) */
	SMTP_CMD_EPARAM = -4,      /* unknown or bad MAIL/RCPT parameter: 555 5.5.4 */
	SMTP_CMD_ETOOLONG = -5,    /* path or domain over the RFC limits: 501 5.5.4 */
};

/* Frame one line in buf. Returns the bytes the line occupies including its
 * terminator (> 0) and sets *line_len to its length without CR LF; 0 when no
 * LF has arrived yet (need more); -1 when no LF is found within max_line
 * bytes (the caller answers 500 5.5.6 and discards through the next LF).
 * A bare LF terminates a line too; a CR before it is not part of the line.
 * max_line counts the line with its CRLF (RFC 5321's 512): a line whose
 * length without the terminator exceeds max_line - 2 is too long (-1), with
 * either terminator. Reads at most min(len, max_line) bytes; every prefix of
 * an acceptable line gives 0, so the answer never flips as input grows. */
ssize_t smtp_line_find(const char *buf, size_t len, size_t max_line, size_t *line_len);

/* Parse one command line (no CRLF). Verbs are case-insensitive. out is
 * always written (zeroed first); out->verb is set even on error. MAIL paths
 * are validated with smtp_mailbox_check() under the command's own SMTPUTF8
 * parameter, RCPT paths with UTF-8 allowed (the caller re-checks with the
 * transaction's flag). "RCPT TO:<Postmaster>" is accepted (RFC 5321
 * 4.1.1.3) although smtp_mailbox_check() refuses it (no domain). The path
 * limit SMTP_MAX_PATH counts the angle brackets and any source route. */
int smtp_cmd_parse(const char *line, size_t len, struct smtp_cmd *out);

/* Validate a mailbox "local@domain" (RFC 5321 Mailbox; quoted local parts,
 * address literals like [127.0.0.1]; UTF-8 allowed when utf8). Returns 0 or
 * SMTP_CMD_EPATH / SMTP_CMD_ETOOLONG. */
int smtp_mailbox_check(const char *addr, size_t len, bool utf8);

/* The domain part of a mailbox (after the last '@'), or NULL. */
const char *smtp_mailbox_domain(const char *addr, size_t len, size_t *dom_len);

const char *smtp_cmd_strerror(int err);

/* RFC 3461 4.1 NOTIFY value: "NEVER", or a comma list of SUCCESS, FAILURE,
 * DELAY (any case; NEVER with anything else is an error). Sets *bits to
 * SMTP_NOTIFY_GIVEN plus the keywords' bits. 0 or SMTP_CMD_EPARAM. */
int smtp_notify_parse(const char *p, size_t n, unsigned *bits);

/* Decode RFC 3461 xtext (chars 33..126 but '+' and '='; "+XX" with two
 * upper-case hex digits) into out (cap bytes, NUL-terminated). The decoded
 * text must be printable US-ASCII (32..126; no controls, no 8-bit), since
 * it goes into DSN header fields. Returns the decoded length, or -1 when
 * malformed (bad or short hex, '+' at the end, a raw '=' or byte outside
 * 33..126, a non-printable decoded byte, empty) or when it does not fit. */
ssize_t smtp_xtext_decode(const char *in, size_t n, char *out, size_t cap);

/* Encode text as xtext into out (cap bytes, NUL-terminated): every byte
 * outside 33..126, and '+' and '=', as "+XX". Returns the length, or -1
 * when it does not fit. */
ssize_t smtp_xtext_encode(const char *in, size_t n, char *out, size_t cap);

/* An ORCPT value "addr-type;xtext" decoded into out as "addr-type;address"
 * (the type an RFC 5322 atom, the address xtext-decoded, printable, the
 * whole at most SMTP_MAX_ORCPT bytes; cap must be larger). Returns the
 * length or -1 when malformed. */
ssize_t smtp_orcpt_decode(const char *in, size_t n, char *out, size_t cap);

#endif
