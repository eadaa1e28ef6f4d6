/* fuzz_bounce_report.c - libFuzzer harness: the DSN/ARF parser
 * (engine/bounce_report.c), the non-standard text scan (bounce_text.c) and
 * the per-recipient category on arbitrary messages; every other input with
 * some sources switched off (leave-one-family-out's path). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/bounce_report.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *msg = malloc(size ? size : 1);
	struct bounce_report r;

	memcpy(msg, data, size);
	bounce_rules_without(size && (data[0] & 1) ? "postfix,exim,sendmail,common,microsoft" : NULL);
	bounce_report_parse(msg, size, &r);
	if (r.kind == BOUNCE_KIND_ARF && !memchr(r.orig_rcpt, '\0', sizeof(r.orig_rcpt)))
		abort();
	if (r.n_rcpts > BOUNCE_MAX_RCPTS)
		abort();
	for (size_t i = 0; i < r.n_rcpts; i++)
		if (bounce_rcpt_failed(&r.rcpts[i]) && !bounce_category_hard(bounce_rcpt_category(&r.rcpts[i])))
			bounce_category(r.rcpts[i].code, r.rcpts[i].status, r.rcpts[i].diag);
	free(msg);
	return 0;
}
