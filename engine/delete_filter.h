/*
 * delete_filter.h - the filter of an operator's delete (POST /api/v1/delete):
 * parsing its JSON body and matching one queued recipient against it.
 *
 *   {"queue":"example.com", "campaign":"c1", "sender":"a@b.test",
 *    "recipient":"x@y.test", "older_than":"2h", "dsn":false}
 *
 * Every given field must match (AND); at least one of the five filter fields
 * is required; dsn (default false) asks for a DSN to the sender. queue is
 * the recipient's queue (its domain, or the domain's queue-to) or its
 * domain; sender and recipient compare without regard to case ("" or "<>"
 * as the sender is the null sender: DSNs); campaign exactly; older_than is
 * a config duration ("30s", "2h", "4d12h") against the time the message
 * was accepted (more than 0, at most DELETE_AGE_MAX_MS). Unknown
 * fields, wrong types, empty strings (but the null sender), NUL and control
 * characters and bad durations are errors naming the field; a body that is
 * not a JSON object (or not JSON, or not UTF-8) names "body".
 *
 * Pure: no I/O, no shared state; any thread.
 */
#ifndef SALVO_DELETE_FILTER_H
#define SALVO_DELETE_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DELETE_FIELD_MAX 512 /* bytes in one filter string */
#define DELETE_AGE_MAX_MS (3650ull * 86400000ull) /* older_than: 1ms to ten years */

struct delete_filter {
	char *queue;               /* lower case; NULL: any */
	char *campaign;            /* NULL: any */
	char *sender;              /* "" is the null sender; NULL: any */
	char *recipient;           /* NULL: any */
	bool has_older_than;
	uint64_t older_than_ms;
	bool dsn;
	char *text;                /* the filter fields as compact JSON, for records */
};

/* Parse body[0..len). 0 and *f filled (free with delete_filter_free), or
 * -1 with err set and field naming the offending field ("" when the body
 * as a whole is wrong; an unknown field by its name, cut to field_cap);
 * *f is then empty. */
int delete_filter_parse(const char *body, size_t len, struct delete_filter *f, char *err, size_t cap,
			char *field, size_t field_cap);
void delete_filter_free(struct delete_filter *f);

/* Does a recipient match? queue: its queue name; domain: its lower-case
 * domain; queued_ms and now_ms wall clock. */
bool delete_filter_match(const struct delete_filter *f, const char *queue, const char *domain, const char *sender,
			 const char *campaign, const char *recipient, int64_t queued_ms, int64_t now_ms);

#endif
