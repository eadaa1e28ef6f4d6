/* fuzz_smtp_cmd.c - libFuzzer harness: SMTP line framing and command parsing
 * (net/smtp_cmd.c) on arbitrary bytes. Every line found is parsed; the
 * parser must neither crash nor read outside the line (ASan), and must
 * keep its contract (a line length within what was framed). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/smtp_cmd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* an exact-size copy, so ASan sees any read past the end */
	char *buf = malloc(size ? size : 1);
	size_t off = 0;

	memcpy(buf, data, size);
	while (off < size) {
		size_t line_len = 0;
		ssize_t n = smtp_line_find(buf + off, size - off, 512, &line_len);
		struct smtp_cmd cmd;

		if (n == 0)
			break;
		if (n < 0) {
			const char *lf = memchr(buf + off, '\n', size - off);
			if (!lf)
				break;
			off = (size_t)(lf - buf) + 1;
			continue;
		}
		if (line_len > (size_t)n)
			abort();
		char *line = malloc(line_len ? line_len : 1);
		memcpy(line, buf + off, line_len);
		smtp_cmd_parse(line, line_len, &cmd);
		smtp_mailbox_check(line, line_len, true);
		free(line);
		off += (size_t)n;
	}
	free(buf);
	return 0;
}
