/*
 * salvoctl.c - the operator's command line: global options, then one
 * subcommand (see `salvoctl --help`). Everything but `classify` talks to
 * salvod's HTTP API: --api URL, else $SALVO_API, else http://127.0.0.1:8025;
 * --token / $SALVO_API_TOKEN for a salvod that is not on this host.
 *
 * Exit status: 0 done, 1 salvod answered with an error (or `suppress check`
 * found the address not suppressed), 2 usage error or salvod unreachable.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

struct command {
	const char *name;
	int (*run)(struct ctl *c, int argc, char **argv);
	const char *usage;
};

static const struct command commands[] = {
	{"status", cmd_status, "totals, rates, queued, connections"},
	{"queues", cmd_queues, "[--sort=size|rate|errors] [--mode=backoff|paused|normal] [DOMAIN]"},
	{"vmtas", cmd_vmtas, "virtual MTAs: source IP, connections, disabled"},
	{"show", cmd_show, "QUEUE [--limit N]   the queue's recipients (message, attempts, next attempt, last response)"},
	{"message", cmd_message, "ID   one message: headers, size, every recipient's state"},
	{"top", cmd_top, "live full-screen view"},
	{"webhooks", cmd_webhooks, "accounting webhooks: sent, failures, backlog, stalled"},
	{"campaigns", cmd_campaigns, "[--paused] [ID]   per campaign: queued, deferred, delivered, bounced, paused"},
	{"pause", cmd_pause_resume, "DOMAIN | --campaign ID"},
	{"resume", cmd_pause_resume, "DOMAIN | --campaign ID"},
	{"reload", cmd_reload, "re-read salvod's configuration file (errors: nothing changes)"},
	{"trace", cmd_trace, "DOMAIN | --source CIDR [--seconds N] [--data]   live SMTP transcripts"},
	{"retry", cmd_queue_action, "DOMAIN   (every waiting recipient is due now)"},
	{"set-mode", cmd_set_mode, "DOMAIN normal|backoff"},
	{"suppress", cmd_suppress, "add ADDR [REASON] | del ADDR | check ADDR | list | import FILE.csv | export"},
	{"delete", cmd_delete, "--queue Q --campaign C --sender S --recipient R --older-than 2h [--dsn]  (any, ANDed)"},
	{"inject", cmd_inject, "--from ADDR --to ADDR [--to ...] FILE.eml"},
	{"classify", cmd_classify_main, "[FILE]   classify a bounce or ARF report (offline, no daemon)"},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: salvoctl [--api URL] [--token TOKEN] [--json] COMMAND [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].usage);
	fprintf(f, "\nsalvod's API: --api URL, else $SALVO_API, else %s\n", CTL_DEFAULT_API);
}

int main(int argc, char **argv)
{
	struct ctl c = {.api = getenv("SALVO_API"), .token = getenv("SALVO_API_TOKEN")};
	int i = 1, rc;

	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--json")) {
			c.json = true;
		} else if (!strcmp(argv[i], "--api") && i + 1 < argc) {
			c.api = argv[++i];
		} else if (!strncmp(argv[i], "--api=", 6)) {
			c.api = argv[i] + 6;
		} else if (!strcmp(argv[i], "--token") && i + 1 < argc) {
			c.token = argv[++i];
		} else if (!strncmp(argv[i], "--token=", 8)) {
			c.token = argv[i] + 8;
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "salvoctl: unknown option %s\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (!c.api || !*c.api)
		c.api = CTL_DEFAULT_API;
	if (i >= argc) {
		usage(stderr);
		return 2;
	}
	/* options may also follow the command: salvoctl queues --json */
	for (int k = i + 1; k < argc; k++)
		if (!strcmp(argv[k], "--json")) {
			c.json = true;
			memmove(&argv[k], &argv[k + 1], (size_t)(argc - k) * sizeof(argv[0]));
			argc--;
			k--;
		}
	for (size_t k = 0; k < sizeof(commands) / sizeof(commands[0]); k++) {
		if (strcmp(argv[i], commands[k].name) != 0)
			continue;
		curl_global_init(CURL_GLOBAL_DEFAULT);
		rc = commands[k].run(&c, argc - i, argv + i);
		curl_global_cleanup();
		return rc;
	}
	fprintf(stderr, "salvoctl: unknown command \"%s\"\n", argv[i]);
	usage(stderr);
	return 2;
}
