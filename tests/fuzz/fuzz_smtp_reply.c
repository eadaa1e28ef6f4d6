/* fuzz_smtp_reply.c - libFuzzer harness: SMTP reply parsing and EHLO
 * extension reading (net/smtp_reply.c). Replies are consumed one after the
 * other as a client would; every prefix must give "need more" or the same
 * verdict (the parser promises a prefix of a valid reply never fails). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/smtp_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size ? size : 1);
	size_t off = 0;

	memcpy(buf, data, size);
	while (off < size) {
		struct smtp_reply r;
		uint64_t lim;
		ssize_t n = smtp_reply_parse(buf + off, size - off, &r);

		if (n <= 0)
			break;
		if ((size_t)n > size - off)
			abort();
		/* a shorter prefix of a complete reply is never "malformed" */
		if (n > 1 && smtp_reply_parse(buf + off, (size_t)n - 1, &r) < 0)
			abort();
		smtp_reply_parse(buf + off, (size_t)n, &r);
		smtp_reply_ehlo_exts(&r, &lim);
		off += (size_t)n;
	}
	free(buf);
	return 0;
}
