/*
 * sink_rules.h - salvo-sink's general fault rules (`--fault SPEC`) and its
 * per-client connection cap: the receiver that pushes back.
 *
 * SPEC is comma-separated key=value, `reply=` last (it takes the rest):
 *   at=connect|helo|mail|rcpt|data   when the rule is consulted (data = the
 *                                    reply after the end of DATA)
 *   match=REGEX                      POSIX ERE, case-insensitive, against the
 *                                    client IP / HELO name / sender / recipient
 *                                    (data: any accepted recipient); absent = all
 *   percent=P                        fires for P% of matching events (0-100,
 *                                    fractions allowed); absent = 100
 *   first=N                          fires only for the first N matching events
 *   close                            close the connection after the reply
 *   delay=MS                         hold the replies this long (alone: only delay)
 *   reply=CODE TEXT                  e.g. reply=421 4.7.0 try again later
 * Rules are tried in command-line order; the first that fires answers.
 */
#ifndef SALVO_SINK_RULES_H
#define SALVO_SINK_RULES_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum sink_rule_at {
    SINK_AT_CONNECT,
    SINK_AT_HELO,
    SINK_AT_MAIL,
    SINK_AT_RCPT,
    SINK_AT_DATA,
};

struct sink_rule {
    enum sink_rule_at at;
    bool              has_re;
    regex_t           re;
    double            percent;
    uint64_t          first;       /* 0 = no limit */
    uint64_t          fired;
    bool              close;
    unsigned          delay_ms;    /* delay=MS: hold the replies this long */
    char             *reply;       /* NULL: a delay-only rule */
};

struct sink_rules {
    struct sink_rule *r;
    size_t            n;
    unsigned          max_conn_per_ip;   /* 0 = no cap */
    uint64_t          rng;
};

/* Parse and add one SPEC. 0, or -1 with a message in err. */
int sink_rules_add(struct sink_rules *rs, const char *spec, char *err, size_t errlen);
/* The rule that fires for this event, or NULL. subjects: n NUL-separated
 * strings (one for every stage but data). */
const struct sink_rule *sink_rules_fire(struct sink_rules *rs, enum sink_rule_at at,
                                        const char *subjects, unsigned n);
void sink_rules_free(struct sink_rules *rs);

#endif
