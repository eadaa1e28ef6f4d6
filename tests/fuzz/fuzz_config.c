/* fuzz_config.c - libFuzzer harness: the PowerMTA-style config parser
 * (core/config_*.c) on arbitrary text. A load either succeeds (and frees
 * cleanly) or fails with one "FILE:LINE: message" line (config_load) or
 * a list of them (config_load_report); LeakSanitizer
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
		struct config_domain d;

		config_domain_for(&cfg, "example.com");
		config_domain_for(&cfg, "a.b.example.com");
		config_rollup_for(&cfg, "mx.example.com");
		for (size_t i = 0; i < cfg.n_vmtas; i++)
			if (config_domain_resolve(&cfg, "a.example.com", cfg.vmtas[i].name, &d) == 0)
				config_domain_release(&d);
		config_free(&cfg);
	} else if (strncmp(err, "fuzz.conf", 9) != 0 || strchr(err, '\n')) {
		abort();
	}
	/* every error of the load: each line "fuzz.conf..." */
	{
		struct config_report rep;

		if (config_load_string_report(&cfg, "fuzz.conf", text, &rep) == 0)
			config_free(&cfg);
		for (const char *l = rep.errors; l && *l; l = strchr(l, '\n') + 1)
			if (strncmp(l, "fuzz.conf", 9) != 0 || !strchr(l, '\n'))
				abort();
		config_report_free(&rep);
	}
	free(text);
	return 0;
}
