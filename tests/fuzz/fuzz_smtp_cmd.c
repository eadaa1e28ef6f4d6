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
		ssize_t n = smtp_line_find(buf + off, size - off, SMTP_MAX_DSN_CMD_LINE, &line_len);
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
		char dec[SMTP_MAX_ORCPT + 1];

		/* a DSN parameter the parser took decodes (the server relies on it) */
		if (smtp_cmd_parse(line, line_len, &cmd) == SMTP_CMD_OK &&
		    ((cmd.orcpt && smtp_orcpt_decode(cmd.orcpt, cmd.orcpt_len, dec, sizeof(dec)) < 0) ||
		     (cmd.envid && smtp_xtext_decode(cmd.envid, cmd.envid_len, dec, SMTP_MAX_ENVID + 1) < 0)))
			abort();
		smtp_mailbox_check(line, line_len, true);
		smtp_xtext_decode(line, line_len, dec, sizeof(dec));
		free(line);
		off += (size_t)n;
	}
	free(buf);
	return 0;
}
