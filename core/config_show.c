/*
 * config_show.c - what `salvod --check-config --show QUEUE[/VMTA]` prints:
 * the settings a queue really gets through a virtual MTA once domain
 * macros, wildcards, nesting in <virtual-mta>/<virtual-mta-pool> and
 * inheritance from <domain *> are applied (config_domain_resolve), one
 * `directive value` per line under PowerMTA's names, in directive-table
 * order, values as written (or the built-in default); then the virtual
 * MTA's own: its source address, cold partner and DKIM keys.
 */
#include "core/config.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

int config_show(void *outp, const struct config *cfg, const char *spec, char *err, size_t cap)
{
	FILE *out = outp;
	char queue[300], *vmta;
	struct config_domain d;

	if (!strncmp(spec, "source:", 7))
		return config_show_source(out, cfg, spec + 7, err, cap);
	if (strlen(spec) >= sizeof(queue)) {
		snprintf(err, cap, "--show: queue name too long");
		return -1;
	}
	strcpy(queue, spec);
	if ((vmta = strchr(queue, '/')))
		*vmta++ = '\0';
	if (!*queue || (vmta && !*vmta)) {
		snprintf(err, cap, "--show wants QUEUE or QUEUE/VMTA, not \"%s\"", spec);
		return -1;
	}
	if (vmta && config_pool_find(cfg, vmta) < 0) {
		snprintf(err, cap, "--show %s: no virtual-mta or virtual-mta-pool \"%s\"", spec, vmta);
		return -1;
	}
	if (config_domain_resolve(cfg, queue, vmta, &d) < 0) {
		snprintf(err, cap, "--show: out of memory");
		return -1;
	}
	for (size_t k = 0; config_domain_key_name(k); k++)
		if (d.values && d.values[k])
			fprintf(out, "%s %s\n", config_domain_key_name(k),
				/* a secret is shown as set, never as written */
				strcmp(config_domain_key_name(k), "auth-password") ? d.values[k] : "(set)");
	config_domain_release(&d);
	/* the virtual MTA's own settings that decide this queue's mail:
	 * its cold partner (warm-up) and the DKIM keys it signs with, its own
	 * first, then the top-level ones (engine/dkim.c's order) */
	for (size_t v = 0; v < cfg->n_vmtas; v++) {
		const struct config_vmta *m = &cfg->vmtas[v];

		/* no VMTA named: the default one's */
		if (vmta ? strcasecmp(m->name, vmta) != 0 : v != 0)
			continue;
		if (m->has_source)
			fprintf(out, "smtp-source-host %s %s\n", m->source.text,
				m->helo ? m->helo : cfg->host_name ? cfg->host_name : "(host-name)");
		if (!vmta)
			break;
		if (cfg->vmtas[v].has_cold)
			fprintf(out, "cold-virtual-mta %s\n", cfg->vmtas[cfg->vmtas[v].cold].name);
		for (int pass = 0; pass < 2; pass++)
			for (size_t i = 0; i < cfg->n_domain_keys; i++)
				if (cfg->domain_keys[i].vmta == (pass ? SIZE_MAX : v))
					fprintf(out, "domain-key %s,%s,%s\n", cfg->domain_keys[i].selector,
						cfg->domain_keys[i].domain, cfg->domain_keys[i].path);
	}
	return 0;
}
