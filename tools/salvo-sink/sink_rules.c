/*
 * sink_rules.c - parsing and firing salvo-sink's `--fault SPEC` rules (see
 * sink_rules.h). Percentages draw from a xorshift generator seeded from the
 * clock and the pid: runs and sinks differ, as real receivers would.
 */
#include "sink_rules.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static const char *const at_names[] = {"connect", "helo", "mail", "rcpt", "data"};

static int fail(char *err, size_t n, const char *spec, const char *why)
{
    snprintf(err, n, "--fault '%s': %s", spec, why);
    return -1;
}

int sink_rules_add(struct sink_rules *rs, const char *spec, char *err, size_t errlen)
{
    struct sink_rule r = { .at = SINK_AT_RCPT, .percent = 100.0 };
    char *copy = strdup(spec), *p = copy, *re_text = NULL;
    bool have_at = false;

    if (!copy)
        return fail(err, errlen, spec, "out of memory");
    while (p && *p) {
        char *next = NULL;
        if (strncmp(p, "reply=", 6) != 0) {   /* reply= takes the rest */
            next = strchr(p, ',');
            if (next)
                *next++ = '\0';
        }
        if (strncmp(p, "at=", 3) == 0) {
            size_t i;
            for (i = 0; i < sizeof at_names / sizeof at_names[0]; i++)
                if (strcmp(p + 3, at_names[i]) == 0)
                    break;
            if (i == sizeof at_names / sizeof at_names[0]) {
                free(copy);
                return fail(err, errlen, spec, "at= wants connect, helo, mail, rcpt or data");
            }
            r.at = (enum sink_rule_at)i;
            have_at = true;
        } else if (strncmp(p, "match=", 6) == 0) {
            re_text = p + 6;
        } else if (strncmp(p, "percent=", 8) == 0) {
            char *end;
            r.percent = strtod(p + 8, &end);
            if (*end || end == p + 8 || r.percent < 0 || r.percent > 100) {
                free(copy);
                return fail(err, errlen, spec, "percent= wants 0-100");
            }
        } else if (strncmp(p, "first=", 6) == 0) {
            char *end;
            r.first = strtoull(p + 6, &end, 10);
            if (*end || end == p + 6 || r.first == 0) {
                free(copy);
                return fail(err, errlen, spec, "first= wants a positive count");
            }
        } else if (strncmp(p, "delay=", 6) == 0) {
            char *end;
            unsigned long ms = strtoul(p + 6, &end, 10);
            if (*end || end == p + 6 || ms > 600000) {
                free(copy);
                return fail(err, errlen, spec, "delay= wants milliseconds (0-600000)");
            }
            r.delay_ms = (unsigned)ms;
        } else if (strcmp(p, "close") == 0) {
            r.close = true;
        } else if (strncmp(p, "reply=", 6) == 0) {
            const char *t = p + 6;
            if (strlen(t) < 3 || t[0] < '2' || t[0] > '5' || t[1] < '0' || t[1] > '9' || t[2] < '0' ||
                t[2] > '9' || (t[3] && t[3] != ' ') || strpbrk(t, "\r\n")) {
                free(copy);
                return fail(err, errlen, spec, "reply= wants \"CODE TEXT\" with a 2xx-5xx code");
            }
            r.reply = strdup(t);
        } else {
            free(copy);
            return fail(err, errlen, spec, "unknown key (at, match, percent, first, close, delay, reply)");
        }
        p = next;
    }
    (void)have_at;
    if (!r.reply && !r.delay_ms) {
        free(copy);
        return fail(err, errlen, spec, "reply= (or delay=) is required");
    }
    if (re_text) {
        int rc = regcomp(&r.re, re_text, REG_EXTENDED | REG_ICASE | REG_NOSUB);
        if (rc) {
            char why[160], msg[200];
            regerror(rc, &r.re, why, sizeof why);
            snprintf(msg, sizeof msg, "bad regex: %s", why);
            free(r.reply);
            free(copy);
            return fail(err, errlen, spec, msg);
        }
        r.has_re = true;
    }
    free(copy);
    struct sink_rule *grown = realloc(rs->r, (rs->n + 1) * sizeof *grown);
    if (!grown) {
        if (r.has_re)
            regfree(&r.re);
        free(r.reply);
        return fail(err, errlen, spec, "out of memory");
    }
    rs->r = grown;
    rs->r[rs->n++] = r;
    return 0;
}

static double draw(struct sink_rules *rs)
{
    if (!rs->rng) {
        /* the clock's nanoseconds and the pid: sinks started in the same
         * second (a benchmark starts four at once) must not draw alike */
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        rs->rng = ((((uint64_t)ts.tv_sec * 1000000007u + (uint64_t)ts.tv_nsec) * 2654435761u) ^
                   ((uint64_t)getpid() << 40)) | 1;
    }
    rs->rng ^= rs->rng << 13;
    rs->rng ^= rs->rng >> 7;
    rs->rng ^= rs->rng << 17;
    return (double)(rs->rng >> 11) / 9007199254740992.0 * 100.0;
}

const struct sink_rule *sink_rules_fire(struct sink_rules *rs, enum sink_rule_at at, const char *subjects,
                                        unsigned n)
{
    for (size_t i = 0; i < rs->n; i++) {
        struct sink_rule *r = &rs->r[i];
        bool match = !r->has_re;
        const char *s = subjects;

        if (r->at != at || (r->first && r->fired >= r->first))
            continue;
        for (unsigned k = 0; k < n && !match; k++, s += strlen(s) + 1)
            match = regexec(&r->re, s, 0, NULL, 0) == 0;
        if (!match)
            continue;
        if (r->percent < 100.0 && draw(rs) >= r->percent)
            continue;
        r->fired++;
        return r;
    }
    return NULL;
}

void sink_rules_free(struct sink_rules *rs)
{
    for (size_t i = 0; i < rs->n; i++) {
        if (rs->r[i].has_re)
            regfree(&rs->r[i].re);
        free(rs->r[i].reply);
    }
    free(rs->r);
    rs->r = NULL;
    rs->n = 0;
}
