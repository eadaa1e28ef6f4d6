/*
 * sink_faults.h - scripted faults of salvo-sink as a table of rules.
 *
 * A rule is a kind (one command-line option) plus a POSIX extended regex matched
 * case-insensitively against a recipient address (without the angle brackets).
 * Rules are tried in command-line order; the first one that fires supplies the reply.
 * Kinds are listed in sink_faults.c (fault_kinds[]); adding one is a table entry.
 *
 * "First" rules fire once per distinct address (case-folded) per sink process: the
 * rule remembers the addresses it has fired for in its own hash set.
 */
#ifndef SALVO_SINK_FAULTS_H
#define SALVO_SINK_FAULTS_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>

enum sink_fault_stage {
    SINK_FAULT_RCPT,    /* decides the reply to RCPT TO */
    SINK_FAULT_DATA,    /* decides the reply to the end of DATA */
};

struct sink_addrset {
    char  **slot;       /* open addressing, NULL = empty */
    size_t  cap;        /* power of two */
    size_t  count;
};

struct sink_fault_rule {
    const struct sink_fault_kind *kind;
    char                *pattern;
    regex_t              re;
    struct sink_addrset  seen;     /* addresses this rule fired for (first_only kinds) */
};

struct sink_faults {
    struct sink_fault_rule *rules;
    size_t                  n;
};

/*
 * The name of the i-th fault option (without "--"; each takes one REGEX argument),
 * or NULL past the end: sink.c builds its getopt table from this.
 */
const char *sink_faults_option(size_t i);

/* The usage text of the i-th fault option. */
const char *sink_faults_help(size_t i);

/*
 * Add a rule for OPTION with PATTERN. Returns 0, or -1 with a message in err
 * (unknown option, bad regex).
 */
int sink_faults_add(struct sink_faults *f, const char *option, const char *pattern,
                    char *err, size_t errlen);

/*
 * The reply line (no CRLF; static storage) for RCPT TO:<addr>, or NULL to accept.
 * A firing "first" rule remembers addr.
 */
const char *sink_faults_rcpt(struct sink_faults *f, const char *addr);

/*
 * The reply line for the end of DATA of a message to the n NUL-separated accepted
 * recipients in rcpts, or NULL to accept. A "first" rule fires when any matching
 * recipient has not fired it before, and then remembers every matching recipient.
 */
const char *sink_faults_data(struct sink_faults *f, const char *rcpts, unsigned n);

void sink_faults_free(struct sink_faults *f);

#endif
