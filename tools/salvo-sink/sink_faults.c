/*
 * sink_faults.c - the fault rule table of salvo-sink and its per-rule address sets.
 *
 * Owns: fault_kinds[] (what each --option does: the stage it acts at, whether it
 * fires only the first time per address, the reply), the compiled rules, and the
 * "seen" hash sets of the first-only rules. Addresses are case-folded (ASCII) before
 * they go into a set, matching the case-insensitive regex.
 *
 * Invariants: rules keep command-line order; a rule's seen set only grows.
 * Diagnostics: only at option parsing (bad regex), through the caller's err buffer.
 */
#include "sink_faults.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sink.h"

struct sink_fault_kind {
    const char           *option;
    enum sink_fault_stage stage;
    bool                  first_only;
    const char           *reply;
    const char           *help;
};

static const struct sink_fault_kind fault_kinds[] = {
    { "defer-first", SINK_FAULT_RCPT, true, "451 4.3.0 try again later",
      "RCPT to a matching address gets 451 the first time it is seen, 250 after" },
    { "reject", SINK_FAULT_RCPT, false, "550 5.1.1 no such user",
      "RCPT to a matching address gets 550" },
    { "defer-data-first", SINK_FAULT_DATA, true, "451 4.3.0 try later",
      "end of DATA gets 451 the first time a message has a matching recipient" },
};

#define NKINDS (sizeof fault_kinds / sizeof fault_kinds[0])

const char *sink_faults_option(size_t i)
{
    return i < NKINDS ? fault_kinds[i].option : NULL;
}

const char *sink_faults_help(size_t i)
{
    return i < NKINDS ? fault_kinds[i].help : NULL;
}

/* ---- address set: open addressing, linear probing, FNV-1a over folded bytes ---- */

static uint64_t addr_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (unsigned char)tolower((unsigned char)*s);
        h *= 1099511628211ull;
    }
    return h;
}

static char **addrset_find(struct sink_addrset *set, const char *addr)
{
    size_t mask = set->cap - 1;
    for (size_t i = addr_hash(addr) & mask;; i = (i + 1) & mask)
        if (!set->slot[i] || strcasecmp(set->slot[i], addr) == 0)
            return &set->slot[i];
}

static void addrset_grow(struct sink_addrset *set)
{
    struct sink_addrset bigger = { .cap = set->cap ? set->cap * 2 : 64 };
    bigger.slot = calloc(bigger.cap, sizeof *bigger.slot);
    if (!bigger.slot)
        abort();
    for (size_t i = 0; i < set->cap; i++)
        if (set->slot[i]) {
            *addrset_find(&bigger, set->slot[i]) = set->slot[i];
            bigger.count++;
        }
    free(set->slot);
    *set = bigger;
}

static bool addrset_contains(struct sink_addrset *set, const char *addr)
{
    return set->cap && *addrset_find(set, addr) != NULL;
}

/* Returns true when addr was not in the set before. */
static bool addrset_insert(struct sink_addrset *set, const char *addr)
{
    if ((set->count + 1) * 10 > set->cap * 7)
        addrset_grow(set);
    char **slot = addrset_find(set, addr);
    if (*slot)
        return false;
    char *copy = sink_xstrndup(addr, strlen(addr));
    for (char *c = copy; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    *slot = copy;
    set->count++;
    return true;
}

static void addrset_free(struct sink_addrset *set)
{
    for (size_t i = 0; i < set->cap; i++)
        free(set->slot[i]);
    free(set->slot);
    *set = (struct sink_addrset){ 0 };
}

/* ---- rules ---- */

int sink_faults_add(struct sink_faults *f, const char *option, const char *pattern,
                    char *err, size_t errlen)
{
    const struct sink_fault_kind *kind = NULL;
    for (size_t i = 0; i < NKINDS; i++)
        if (strcmp(fault_kinds[i].option, option) == 0)
            kind = &fault_kinds[i];
    if (!kind) {
        snprintf(err, errlen, "unknown fault option --%s", option);
        return -1;
    }

    struct sink_fault_rule rule = { .kind = kind };
    int rc = regcomp(&rule.re, pattern, REG_EXTENDED | REG_ICASE | REG_NOSUB);
    if (rc != 0) {
        char msg[256];
        regerror(rc, &rule.re, msg, sizeof msg);
        snprintf(err, errlen, "--%s: bad regular expression '%s': %s", option, pattern, msg);
        return -1;
    }
    rule.pattern = sink_xstrndup(pattern, strlen(pattern));
    f->rules = sink_xrealloc(f->rules, (f->n + 1) * sizeof *f->rules);
    f->rules[f->n++] = rule;
    return 0;
}

static bool rule_matches(const struct sink_fault_rule *r, const char *addr)
{
    return regexec(&r->re, addr, 0, NULL, 0) == 0;
}

const char *sink_faults_rcpt(struct sink_faults *f, const char *addr)
{
    for (size_t i = 0; i < f->n; i++) {
        struct sink_fault_rule *r = &f->rules[i];
        if (r->kind->stage != SINK_FAULT_RCPT || !rule_matches(r, addr))
            continue;
        if (r->kind->first_only && !addrset_insert(&r->seen, addr))
            continue;      /* fired for this address before: let later rules decide */
        return r->kind->reply;
    }
    return NULL;
}

const char *sink_faults_data(struct sink_faults *f, const char *rcpts, unsigned n)
{
    for (size_t i = 0; i < f->n; i++) {
        struct sink_fault_rule *r = &f->rules[i];
        if (r->kind->stage != SINK_FAULT_DATA)
            continue;
        bool any = false, fresh = false;
        const char *a = rcpts;
        for (unsigned k = 0; k < n; k++, a += strlen(a) + 1) {
            if (!rule_matches(r, a))
                continue;
            any = true;
            if (r->kind->first_only && !addrset_contains(&r->seen, a))
                fresh = true;
        }
        if (!any || (r->kind->first_only && !fresh))
            continue;
        if (r->kind->first_only) {
            a = rcpts;
            for (unsigned k = 0; k < n; k++, a += strlen(a) + 1)
                if (rule_matches(r, a))
                    addrset_insert(&r->seen, a);
        }
        return r->kind->reply;
    }
    return NULL;
}

void sink_faults_free(struct sink_faults *f)
{
    for (size_t i = 0; i < f->n; i++) {
        regfree(&f->rules[i].re);
        free(f->rules[i].pattern);
        addrset_free(&f->rules[i].seen);
    }
    free(f->rules);
    *f = (struct sink_faults){ 0 };
}
