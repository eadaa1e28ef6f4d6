/*
 * config_show_source.c - `salvod --check-config --show source:ADDR` (or
 * `source:{name}`): the <source> a client at ADDR gets (the most specific
 * match; a named source by its name), one `directive value` per line under
 * PowerMTA's names, values as applied (the built-in default when not set).
 */
#include "core/config.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

static const char *yes_no(bool b)
{
	return b ? "yes" : "no";
}

/* A duration in the largest unit that divides it ("90s", "5m"). */
static void duration(FILE *out, const char *name, uint64_t ms)
{
	static const struct {
		uint64_t ms;
		const char *unit;
	} units[] = {{86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}};

	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (ms && ms % units[i].ms == 0) {
			fprintf(out, "%s %llu%s\n", name, (unsigned long long)(ms / units[i].ms), units[i].unit);
			return;
		}
	fprintf(out, "%s %llums\n", name, (unsigned long long)ms);
}

static void rate(FILE *out, const char *name, const struct config_rate *r)
{
	static const struct {
		uint64_t ms;
		const char *unit;
	} units[] = {{86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}};
	unsigned long long n = (unsigned long long)r->count;

	if (!r->count) {
		fprintf(out, "%s built-in (5/5m)\n", name);
		return;
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (r->per_ms % units[i].ms)
			continue;
		if (r->per_ms == units[i].ms)
			fprintf(out, "%s %llu/%s\n", name, n, units[i].unit);
		else
			fprintf(out, "%s %llu/%llu%s\n", name, n, (unsigned long long)(r->per_ms / units[i].ms), units[i].unit);
		return;
	}
	fprintf(out, "%s %llu/%llums\n", name, n, (unsigned long long)r->per_ms);
}

int config_show_source(void *outp, const struct config *cfg, const char *arg, char *err, size_t cap)
{
	FILE *out = outp;
	const struct config_source *s = NULL;
	struct sockaddr_in6 a6 = {.sin6_family = AF_INET6};
	struct sockaddr_in a4 = {.sin_family = AF_INET};
	char name[80], net[64] = "";
	size_t n = strlen(arg);

	if (n > 2 && n < sizeof(name) && arg[0] == '{' && arg[n - 1] == '}') {
		memcpy(name, arg + 1, n - 2);
		name[n - 2] = '\0';
		s = config_source_named(cfg, name);
	} else if (inet_pton(AF_INET, arg, &a4.sin_addr) == 1) {
		s = config_source_for(cfg, (const struct sockaddr *)&a4);
	} else if (inet_pton(AF_INET6, arg, &a6.sin6_addr) == 1) {
		s = config_source_for(cfg, (const struct sockaddr *)&a6);
	} else {
		snprintf(err, cap, "--show source:%s: want an IP address or {name}", arg);
		return -1;
	}
	if (!s) {
		snprintf(err, cap, "--show source:%s: no <source> matches", arg);
		return -1;
	}
	if (s->name)
		snprintf(net, sizeof(net), "{%s}", s->name);
	else
		config_cidr_format(&s->net, net, sizeof(net));
	fprintf(out, "source %s\n", net);
	fprintf(out, "always-allow-relaying %s\n", yes_no(s->always_allow_relaying));
	fprintf(out, "require-auth %s\n", yes_no(s->require_auth));
	fprintf(out, "process-x-virtual-mta %s\n", yes_no(s->process_x_virtual_mta));
	fprintf(out, "process-x-job %s\n", yes_no(s->process_x_job));
	fprintf(out, "process-x-envid %s\n", yes_no(s->process_x_envid));
	fprintf(out, "default-virtual-mta %s\n", s->default_virtual_mta ? s->default_virtual_mta : "default");
	fprintf(out, "pattern-list %s\n", s->intake_list ? cfg->intake_lists[s->intake_list - 1].name : "none");
	fprintf(out, "suppression-lists ");
	for (size_t i = 0; i < s->n_suppress; i++)
		fprintf(out, "%s%s", i ? "," : "", cfg->address_lists[s->suppress[i]].name);
	fprintf(out, "%s\n", s->n_suppress ? "" : "none");
	fprintf(out, "jobid-header %s\n", s->jobid_header ? s->jobid_header : "X-Job");
	fprintf(out, "add-message-id-header %s\n", yes_no(s->add_message_id));
	fprintf(out, "add-received-header %s\n", yes_no(!s->no_received_header));
	fprintf(out, "hide-message-source %s\n", yes_no(s->hide_message_source));
	fprintf(out, "remove-received-headers %s\n", yes_no(s->remove_received));
	fprintf(out, "retain-x-job %s\n", yes_no(s->retain_x_job));
	fprintf(out, "retain-x-virtual-mta %s\n", yes_no(s->retain_x_virtual_mta));
	fprintf(out, "verp-default %s\n", yes_no(!s->no_verp));
	rate(out, "smtp-max-auth-failure-rate", &s->auth_failure_rate);
	fprintf(out, "max-rcpt-per-message %u\n",
		s->max_rcpt_per_message ? s->max_rcpt_per_message : cfg->max_rcpt_per_session_message);
	duration(out, "smtp-command-timeout", s->command_timeout_ms ? s->command_timeout_ms : cfg->smtp_command_timeout_ms);
	duration(out, "smtp-data-timeout", s->data_timeout_ms ? s->data_timeout_ms : cfg->smtp_data_timeout_ms);
	fprintf(out, "remove-header ");
	for (size_t i = 0; i < s->n_remove_headers; i++)
		fprintf(out, "%s%s", i ? "," : "", s->remove_headers[i]);
	fprintf(out, "%s\n", s->n_remove_headers ? "" : "none");
	return 0;
}
