/*
 * inject_check.h - whole-request validation of an HTTP injection
 * (KumoMTA's /api/inject/v1 schema), pure: the handler and the fuzzer both
 * run exactly this. A request that fails is refused whole (400 with the
 * reason and the JSON path of the culprit); per-recipient address problems
 * are not failures here (they are listed in failed_recipients).
 */
#ifndef SALVO_INJECT_CHECK_H
#define SALVO_INJECT_CHECK_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define INJECT_MAX_RCPTS 100000

/* 0, or -1 with *why and *field (static or thread-local strings). */
int inject_check(json_t *root, size_t max_message_size, const char **why, const char **field);
/* RFC 5321 mailbox syntax (UTF-8 allowed). */
bool inject_valid_address(const char *s);

#endif
