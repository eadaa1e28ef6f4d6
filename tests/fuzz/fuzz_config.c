/* fuzz_config.c - libFuzzer harness: the PowerMTA-style config parser
 * (core/config_*.c) on arbitrary text. A load either succeeds (and frees
 * cleanly) or fails with one "FILE:LINE: message" line; LeakSanitizer
 * catches anything a failed load leaves behind. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	char err[CONFIG_ERR_MAX];
	struct config cfg;

	memcpy(text, data, size);
	text[size] = '\0';
	if (config_load_string(&cfg, "fuzz.conf", text, err) == 0) {
		config_domain_for(&cfg, "example.com");
		config_rollup_for(&cfg, "mx.example.com");
		config_free(&cfg);
	} else if (strncmp(err, "fuzz.conf", 9) != 0 || strchr(err, '\n')) {
		abort();
	}
	free(text);
	return 0;
}
