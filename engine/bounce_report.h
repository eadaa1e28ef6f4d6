/*
 * bounce_report.h - what an incoming report says, in the standard formats:
 * RFC 3464 delivery status notifications (multipart/report;
 * report-type=delivery-status) and RFC 5965 ARF feedback reports
 * (report-type=feedback-report), found by walking the MIME tree; plus the
 * headers of the original message they quote (text/rfc822-headers or
 * message/rfc822), whose Return-Path carries our VERP address.
 *
 * Pure: no I/O, no allocation that outlives the call; bounded work on any
 * input (depth and part counts are capped, every length is checked).
 */
#ifndef SALVO_BOUNCE_REPORT_H
#define SALVO_BOUNCE_REPORT_H

#include <stdbool.h>
#include <stddef.h>

#define BOUNCE_MAX_RCPTS 32

enum bounce_kind {
	BOUNCE_KIND_UNKNOWN = 0,
	BOUNCE_KIND_DSN,
	BOUNCE_KIND_ARF,
	BOUNCE_KIND_AUTOREPLY,
};

/* The SMTP stage a reply answered, when known: a report may say so in its
 * text (Postfix's "in reply to RCPT TO command", Exim's "after RCPT TO:",
 * a Sendmail transcript); a synchronous reply is known by when it came. */
enum bounce_phase {
	BOUNCE_PHASE_UNKNOWN = 0,
	BOUNCE_PHASE_RCPT,         /* RCPT TO or earlier: the envelope */
	BOUNCE_PHASE_DATA,         /* DATA or the end of data: the recipient was accepted first */
	BOUNCE_PHASE_MAIL,         /* before any recipient: the greeting, HELO/EHLO, MAIL FROM */
};

struct bounce_rcpt {
	char addr[320];            /* Final-Recipient (else Original-Recipient) */
	char action[16];           /* failed, delayed, delivered, relayed, expanded */
	char status[16];           /* "5.1.1" */
	int code;                  /* the SMTP code from Diagnostic-Code, 0 when none */
	char diag[1024];           /* Diagnostic-Code text (else the readable part's explanation) */
	enum bounce_phase phase;   /* the stage the reply answered, where the report says */
};

struct bounce_report {
	enum bounce_kind kind;
	struct bounce_rcpt rcpts[BOUNCE_MAX_RCPTS];
	size_t n_rcpts;
	char feedback_type[32];    /* ARF: abuse, fraud, opt-out, ... */
	char orig_rcpt[320];       /* ARF: Original-Rcpt-To (else the original's To) */
	char orig_sender[320];     /* the original's Return-Path / ARF Original-Mail-From */
	char orig_message_id[256];
	char text_diag[1024];      /* the readable part's reason, for recipients the report explains nowhere else */
};

/* Parse msg[0..len) (CRLF or LF lines). Always fills out (kind UNKNOWN when
 * nothing standard is found); returns out->kind. */
enum bounce_kind bounce_report_parse(const char *msg, size_t len, struct bounce_report *out);

/* The non-standard bounces (bounce_text.c): addresses named in the readable
 * part before the quoted original, each with the reply found near it;
 * skip1/skip2 (may be NULL) are never taken as recipients unless nothing
 * else is named. Appends to r->rcpts; returns how many it found. */
int bounce_text_scan(const char *msg, size_t len, const char *skip1, const char *skip2, struct bounce_report *r);

/* What the readable part adds to recipients already found (bounce_text.c):
 * r->text_diag; a diag for each recipient without one (its paragraph, else
 * text_diag); the phase where the text says which command the reply
 * answered. */
void bounce_text_explain(const char *msg, size_t len, struct bounce_report *r);

/* Whether the readable start of a message body says a delivery failed
 * (for bounces whose headers do not say so). */
bool bounce_text_says_failed(const char *body, size_t len);

/* The brief's category for a reply code, enhanced status code and text
 * (a specific enhanced code by its IANA registry meaning; the text where
 * the code is generic or absent; see bounce_category.c), and whether it
 * suppresses. */
const char *bounce_category(int code, const char *enhanced, const char *text);
bool bounce_category_hard(const char *category);

/* For measurement only (salvoctl classify --without, leave-one-family-out
 * scoring): switch off the phrase families every one of whose sources is
 * in tags, a comma-separated list of source names ("postfix,exim"); NULL
 * switches all back on. Not thread-safe: call before classifying. */
void bounce_rules_without(const char *tags);

/* Whether the format rules of a source (a parser for one MTA's layout:
 * "exim" for X-Failed-Recipients, "microsoft" for JMRP, ...) are on; off
 * only when bounce_rules_without listed it. */
bool bounce_source_on(const char *source);

/* bounce_category, knowing (or not) which command the reply answered:
 * "user unknown" without an X.1.x code is a bad mailbox only at RCPT TO
 * (or, when the stage is unknown, when the delivery program or a
 * RCPT-style reply confirms it); otherwise a filter ("policy-related").
 * Before any recipient (BOUNCE_PHASE_MAIL) a refusal is about the sender
 * or its host, never the recipient's mailbox: what would suppress is
 * "invalid-sender". Synchronous replies pass the stage they came at. */
const char *bounce_reply_category(int code, const char *enhanced, const char *text, enum bounce_phase phase);

/* One recipient of a parsed report: its category (bounce_category over its
 * status, reply, text and stage (bounce_reply_category), then what the
 * report adds: a delay or a final 4.x.x bounce is an expiry),
 * and whether the report is a final failure for it (not a delay). */
const char *bounce_rcpt_category(const struct bounce_rcpt *x);
bool bounce_rcpt_failed(const struct bounce_rcpt *x);

#endif
