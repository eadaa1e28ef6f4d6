/*
 * pcre_re.c - PCRE2 (8-bit) behind the small interface of pcre_re.h: one
 * compiled code and one match context (with the limits) per pattern.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "core/pcre_re.h"
#include "core/valgrind_probe.h"

#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pcre_re {
	pcre2_code *code;
	pcre2_match_context *mctx;
	char *text;
};

struct pcre_re *pcre_re_compile(const char *pattern, char *why, size_t cap)
{
	struct pcre_re *re;
	int code;
	PCRE2_SIZE off;
	size_t len = strlen(pattern);

	if (len > PCRE_RE_MAX_LEN) {
		snprintf(why, cap, "longer than %d characters", PCRE_RE_MAX_LEN);
		return NULL;
	}
	if (!(re = calloc(1, sizeof(*re))) || !(re->text = strdup(pattern))) {
		free(re);
		snprintf(why, cap, "out of memory");
		return NULL;
	}
	re->code = pcre2_compile((PCRE2_SPTR)pattern, len, PCRE2_CASELESS, &code, &off, NULL);
	if (!re->code) {
		PCRE2_UCHAR msg[120];

		pcre2_get_error_message(code, msg, sizeof(msg));
		snprintf(why, cap, "%s at offset %zu", (const char *)msg, (size_t)off);
		pcre_re_free(re);
		return NULL;
	}
	/* JIT is an optimisation: where it is unavailable the interpreter runs;
	 * under valgrind too (memcheck cannot follow the generated code and
	 * reports its reads as uninitialised) */
	if (!SALVO_UNDER_VALGRIND())
		(void)pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE);
	if (!(re->mctx = pcre2_match_context_create(NULL))) {
		snprintf(why, cap, "out of memory");
		pcre_re_free(re);
		return NULL;
	}
	pcre2_set_match_limit(re->mctx, PCRE_RE_MATCH_LIMIT);
	pcre2_set_depth_limit(re->mctx, PCRE_RE_DEPTH_LIMIT);
	pcre2_set_heap_limit(re->mctx, PCRE_RE_HEAP_LIMIT);
	return re;
}

bool pcre_re_match(const struct pcre_re *re, const char *s)
{
	pcre2_match_data *md;
	int rc;

	if (!re || !s)
		return false;
	if (!(md = pcre2_match_data_create(1, NULL)))
		return false;
	rc = pcre2_match(re->code, (PCRE2_SPTR)s, strlen(s), 0, 0, md, re->mctx);
	pcre2_match_data_free(md);
	return rc >= 0;
}

const char *pcre_re_text(const struct pcre_re *re)
{
	return re ? re->text : NULL;
}

void pcre_re_free(struct pcre_re *re)
{
	if (!re)
		return;
	pcre2_match_context_free(re->mctx);
	pcre2_code_free(re->code);
	free(re->text);
	free(re);
}
