/*
 * ctl.h - salvoctl's shared pieces: the connection to salvod's HTTP API
 * (libcurl), output helpers, and the subcommands' entry points.
 *
 * Exit status of every command: 0 done, 1 salvod answered with an error
 * (the message is printed), 2 usage error or salvod unreachable.
 */
#ifndef SALVO_CTL_H
#define SALVO_CTL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define CTL_DEFAULT_API "http://127.0.0.1:8025"

struct ctl {
	const char *api;           /* --api, $SALVO_API, else CTL_DEFAULT_API */
	const char *token;         /* --token, $SALVO_API_TOKEN */
	bool json;                 /* --json: machine-readable output */
	bool quiet_errors;         /* the TUI reports errors itself */
};

struct ctl_resp {
	long status;               /* HTTP status; 0 when unreachable */
	char *body;                /* NUL-terminated */
	size_t len;
	char error[256];           /* why it was unreachable */
};

/* One request. Returns 0 with out filled (any HTTP status), or -1 when
 * salvod could not be reached (out->error says why; printed unless quiet). */
int ctl_request(const struct ctl *c, const char *method, const char *path, const char *body,
		const char *content_type, struct ctl_resp *out);
void ctl_resp_free(struct ctl_resp *r);
/* GET path, expecting JSON: the parsed body, or NULL after printing why
 * (*status: 2 unreachable, 1 HTTP error or bad JSON). */
json_t *ctl_get_json(const struct ctl *c, const char *path, int *status);
/* Print "salvoctl: salvod answered STATUS: error (field)" for r; returns 1. */
int ctl_http_error(const struct ctl_resp *r);
/* Percent-encode s for a URL path segment into out. */
void ctl_urlencode(const char *s, char *out, size_t cap);
/* "12,345"; "1.2k/s"-style helpers for tables. */
const char *ctl_num(double v, char *buf, size_t cap);

/* commands (cmd_*.c, top*.c, classify.c) */
int cmd_status(struct ctl *c, int argc, char **argv);
int cmd_queues(struct ctl *c, int argc, char **argv);
int cmd_vmtas(struct ctl *c, int argc, char **argv);
int cmd_queue_action(struct ctl *c, int argc, char **argv);   /* pause|resume|retry DOMAIN */
int cmd_set_mode(struct ctl *c, int argc, char **argv);
int cmd_suppress(struct ctl *c, int argc, char **argv);
int cmd_inject(struct ctl *c, int argc, char **argv);
int cmd_top(struct ctl *c, int argc, char **argv);
int cmd_classify_main(struct ctl *c, int argc, char **argv);
int cmd_show(struct ctl *c, int argc, char **argv);
int cmd_message(struct ctl *c, int argc, char **argv);
int cmd_webhooks(struct ctl *c, int argc, char **argv);
/* cmd_campaigns.c: `campaigns`; `pause|resume [--campaign ID | DOMAIN]`;
 * a table row and header for one campaign (also for `top`). */
int cmd_campaigns(struct ctl *c, int argc, char **argv);
int cmd_pause_resume(struct ctl *c, int argc, char **argv);
void ctl_campaign_row(json_t *cp, char *out, size_t cap, int name_width);
void ctl_campaign_header(char *out, size_t cap, int name_width);
int cmd_reload(struct ctl *c, int argc, char **argv);
int cmd_delete(struct ctl *c, int argc, char **argv);
int cmd_trace(struct ctl *c, int argc, char **argv);
/* cmd_webhooks.c: "webhook NAME STALLED: ..." for the first stalled webhook
 * in a GET /api/v1/webhooks answer ("" when none); returns how many are. */
int ctl_webhook_stall_line(json_t *webhooks, char *out, size_t cap);

#endif
