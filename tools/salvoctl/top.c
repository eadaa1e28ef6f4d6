/*
 * top.c - `salvoctl top`: a live full-screen view of salvod (ncurses).
 *
 * Every second it reads /api/v1/status, /api/v1/queues and /api/v1/vmtas
 * (and /api/v1/webhooks: a stalled webhook is flagged on the sparkline's row)
 * and draws: a header (totals and per-second rates from the totals' deltas,
 * queued, connections, spool size), a sparkline of deliveries per second
 * over the last minutes, and the queue table, the virtual MTA table or
 * the campaign table (/api/v1/campaigns). Columns that do not fit the terminal are left out whole, never cut
 * in the middle; text that must be shortened ends at a word with "…".
 * Colour marks trouble only: backoff, paused, errors, disconnected.
 *
 * Keys: ↑/↓ select, s sort, / filter, p pause, r resume (the selected
 * queue, or campaign in the campaign view), b backoff, n normal, Tab
 * queues/vmtas/campaigns, ? help, q quit.
 */
#include <curses.h>
#include <langinfo.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "ctl.h"

#define HISTORY 600 /* seconds of deliveries/s kept for the sparkline */

enum sort_key { SORT_SIZE, SORT_RATE, SORT_ERRORS, SORT_NAME, SORT_N };
static const char *const sort_names[SORT_N] = {"size", "rate", "errors", "name"};

struct top {
	struct ctl *c;
	json_t *status, *queues, *vmtas;  /* last good answers */
	json_t *campaigns;                /* NULL when salvod has no such endpoint */
	char stall[256];                  /* a stalled webhook, "" when none */
	bool connected;
	char why[160];                    /* the last failure */
	double last_fetch;                /* monotonic seconds */
	/* rates from the totals' deltas */
	double prev_t;
	long long prev[4];                /* received, delivered, deferred, bounced */
	double rate[4];
	double hist[HISTORY];
	size_t hist_n;
	/* view */
	bool show_vmtas, show_campaigns, help, utf8;
	enum sort_key sort;
	char filter[64];
	int sel, scroll;
	char msg[160];
	double msg_until;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long long gi(json_t *o, const char *k)
{
	return (long long)json_integer_value(json_object_get(o, k));
}

static double gf(json_t *o, const char *k)
{
	return json_number_value(json_object_get(o, k));
}

static const char *gs(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "";
}

/* ---- data ------------------------------------------------------------------------ */

static void fetch(struct top *t)
{
	int st;
	json_t *s = ctl_get_json(t->c, "/api/v1/status", &st), *q = NULL, *v = NULL;
	double now = now_s();

	if (s)
		q = ctl_get_json(t->c, "/api/v1/queues", &st);
	if (q)
		v = ctl_get_json(t->c, "/api/v1/vmtas", &st);
	t->last_fetch = now;
	if (!s || !q || !v) {
		json_decref(s);
		json_decref(q);
		json_decref(v);
		t->connected = false;
		snprintf(t->why, sizeof(t->why), "%s", st == 2 ? "salvod is not answering" : "salvod answered an error");
		t->prev_t = 0;
		return;
	}
	json_t *tot = json_object_get(s, "totals");
	long long cur[4] = {gi(tot, "received"), gi(tot, "delivered"), gi(tot, "deferred"),
			    gi(tot, "bounced") + gi(tot, "expired")};
	if (t->prev_t > 0 && now > t->prev_t) {
		for (int i = 0; i < 4; i++)
			t->rate[i] = (double)(cur[i] - t->prev[i]) / (now - t->prev_t);
		if (t->hist_n == HISTORY)
			memmove(t->hist, t->hist + 1, (HISTORY - 1) * sizeof(t->hist[0]));
		else
			t->hist_n++;
		t->hist[t->hist_n - 1] = t->rate[1] > 0 ? t->rate[1] : 0;
	}
	memcpy(t->prev, cur, sizeof(cur));
	t->prev_t = now;
	json_decref(t->status);
	json_decref(t->queues);
	json_decref(t->vmtas);
	t->status = s;
	t->queues = q;
	t->vmtas = v;
	t->connected = true;
	/* optional: an older salvod has no campaigns; the view says so */
	{
		struct ctl_resp r;

		json_decref(t->campaigns);
		t->campaigns = NULL;
		if (ctl_request(t->c, "GET", "/api/v1/campaigns", NULL, NULL, &r) == 0) {
			if (r.status == 200)
				t->campaigns = json_loads(r.body, 0, NULL);
			ctl_resp_free(&r);
		}
	}
	/* optional: a salvod without webhooks (or the endpoint) just shows none */
	{
		struct ctl_resp r;
		json_t *w = NULL;

		t->stall[0] = 0;
		if (ctl_request(t->c, "GET", "/api/v1/webhooks", NULL, NULL, &r) == 0) {
			if (r.status == 200 && (w = json_loads(r.body, 0, NULL)))
				ctl_webhook_stall_line(w, t->stall, sizeof(t->stall));
			json_decref(w);
			ctl_resp_free(&r);
		}
	}
}

static enum sort_key g_sort;

static int row_cmp(const void *x, const void *y)
{
	json_t *a = *(json_t *const *)x, *b = *(json_t *const *)y;
	double va = 0, vb = 0;

	switch (g_sort) {
	case SORT_SIZE: va = (double)gi(a, "size"); vb = (double)gi(b, "size"); break;
	case SORT_RATE: va = gf(a, "delivered_per_min"); vb = gf(b, "delivered_per_min"); break;
	case SORT_ERRORS:
		va = gf(a, "deferred_per_min") + gf(a, "bounced_per_min");
		vb = gf(b, "deferred_per_min") + gf(b, "bounced_per_min");
		break;
	default: break;
	}
	if (va != vb)
		return va < vb ? 1 : -1;
	return strcmp(gs(a, "domain"), gs(b, "domain"));
}

/* arr's items whose `key` contains the filter (and that skip() does not
 * refuse), in arr's order. Caller frees the array (not the items). */
static json_t **visible_items(json_t *arr, const char *key, const char *filter, bool (*skip)(json_t *it),
			      size_t *n)
{
	json_t **v = calloc(json_array_size(arr) + 1, sizeof(*v));

	*n = 0;
	for (size_t i = 0; v && i < json_array_size(arr); i++) {
		json_t *it = json_array_get(arr, i);

		if ((filter[0] && !strcasestr(gs(it, key), filter)) || (skip && skip(it)))
			continue;
		v[(*n)++] = it;
	}
	return v;
}

static bool empty_rollup_member(json_t *q)
{
	return json_is_string(json_object_get(q, "rollup_member_of")) && !gi(q, "size");
}

/* The queues shown, in order: filtered, sorted, rollup member stubs that
 * hold nothing left out. Caller frees the array (not the items). */
static json_t **visible_queues(struct top *t, size_t *n)
{
	json_t **v = visible_items(json_object_get(t->queues, "queues"), "domain", t->filter, empty_rollup_member, n);

	g_sort = t->sort;
	if (v)
		qsort(v, *n, sizeof(*v), row_cmp);
	return v;
}

/* ---- drawing --------------------------------------------------------------------------- */

enum { C_TROUBLE = 1, C_WARN, C_DIM };

static void num(char *buf, size_t cap, double v)
{
	ctl_num(v, buf, cap);
}

/* Put s at (y, x) within w columns; shortened at a word boundary with "…"
 * (or "~" in an ASCII locale) when it does not fit. */
static void put_fit(struct top *t, int y, int x, int w, const char *s)
{
	int len = (int)strlen(s);

	if (w <= 0)
		return;
	if (len <= w) {
		mvaddnstr(y, x, s, len);
		return;
	}
	int cut = w - 1;
	while (cut > 0 && s[cut] != ' ')
		cut--;
	if (cut < w / 2)
		cut = w - 1; /* one long word: cut it, marked */
	while (cut > 0 && (s[cut - 1] == ' ' || ((unsigned char)s[cut] & 0xc0) == 0x80))
		cut--;
	mvaddnstr(y, x, s, cut);
	addstr(t->utf8 ? "…" : "~");
}

static void draw_header(struct top *t, int cols)
{
	char a[32], b[32], c[32], d[32], line[512];
	time_t now = time(NULL);
	struct tm tm;
	char clock[16];

	localtime_r(&now, &tm);
	strftime(clock, sizeof(clock), "%H:%M:%S", &tm);
	attron(A_BOLD);
	if (t->connected || t->status)
		snprintf(line, sizeof(line), "salvod %s  %s  up %lldh%02lldm  %lld workers", gs(t->status, "version"),
			 gs(t->status, "host_name"), gi(t->status, "uptime_s") / 3600, gi(t->status, "uptime_s") / 60 % 60,
			 gi(t->status, "workers"));
	else
		snprintf(line, sizeof(line), "salvod at %s", t->c->api);
	put_fit(t, 0, 0, cols - 10, line);
	attroff(A_BOLD);
	mvaddstr(0, cols - 8, clock);
	if (!t->connected) {
		attron(COLOR_PAIR(C_TROUBLE) | A_BOLD);
		snprintf(line, sizeof(line), "disconnected %s retrying (%s)", t->utf8 ? "—" : "-", t->why);
		put_fit(t, 1, 0, cols, line);
		attroff(COLOR_PAIR(C_TROUBLE) | A_BOLD);
		return;
	}
	json_t *q = json_object_get(t->status, "queued"), *sp = json_object_get(t->status, "spool");
	num(a, sizeof(a), t->rate[0]);
	num(b, sizeof(b), t->rate[1]);
	num(c, sizeof(c), t->rate[2]);
	num(d, sizeof(d), t->rate[3]);
	snprintf(line, sizeof(line), "per second: received %s  delivered %s  deferred %s  bounced %s", a, b, c, d);
	put_fit(t, 1, 0, cols, line);
	snprintf(line, sizeof(line), "queued %lld  connections %lld  queues %lld (backoff %lld, paused %lld)  spool %.0f MiB",
		 gi(q, "recipients"), gi(t->status, "connections"), gi(t->status, "queues"),
		 gi(t->status, "queues_in_backoff"), gi(t->status, "queues_paused"),
		 (double)gi(sp, "used_bytes") / 1048576.0);
	put_fit(t, 2, 0, cols, line);
}

static void draw_spark(struct top *t, int y, int cols)
{
	static const char *const bars8[] = {" ", "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
	static const char bars_ascii[] = " .:-=+*#%@";
	const char *label = "delivered/s ";
	int w = cols - (int)strlen(label) - 12, n = (int)t->hist_n < w ? (int)t->hist_n : w;
	double max = 1;
	char peak[32];

	if (w < 10)
		return;
	for (int i = 0; i < n; i++)
		max = fmax(max, t->hist[t->hist_n - n + i]);
	mvaddstr(y, 0, label);
	for (int i = 0; i < n; i++) {
		double v = t->hist[t->hist_n - n + i] / max;

		if (t->utf8)
			addstr(bars8[(int)lround(v * 8)]);
		else
			addch((chtype)bars_ascii[(int)lround(v * 9)]);
	}
	num(peak, sizeof(peak), max);
	mvprintw(y, cols - 11, "max %6s", peak);
}

struct col {
	const char *title;
	int w;
	bool right;
};

static void draw_queues(struct top *t, int y0, int rows, int cols)
{
	/* fixed columns first; LAST RESPONSE only when it gets a useful width */
	struct col cs[] = {{"QUEUE", 22, false}, {"QUEUED", 7, true}, {"INFLT", 5, true}, {"CONN/LIM", 8, true},
			   {"DLV/m", 6, true}, {"DEF/m", 6, true}, {"BNC/m", 6, true}, {"MODE", 7, false}};
	int ncols = (int)(sizeof(cs) / sizeof(cs[0])), used = 0, x;
	size_t n;
	json_t **v = visible_queues(t, &n);
	char title[96];

	for (int i = 0; i < ncols; i++)
		used += cs[i].w + 1;
	while (used > cols && ncols > 1)
		used -= cs[--ncols].w + 1;
	if (cols - used > 60)
		cs[0].w += (cols - used - 60) < 14 ? cols - used - 60 : 14, used += 0;
	int resp_w = cols - used - (cs[0].w - 22);
	snprintf(title, sizeof(title), "QUEUES  sort: %s%s%s  (%zu)", sort_names[t->sort], t->filter[0] ? "  filter: " : "",
		 t->filter, n);
	attron(A_BOLD);
	put_fit(t, y0, 0, cols, title);
	x = 0;
	for (int i = 0; i < ncols; i++) {
		if (cs[i].right)
			mvprintw(y0 + 1, x, "%*s", cs[i].w, cs[i].title);
		else
			mvprintw(y0 + 1, x, "%-*s", cs[i].w, cs[i].title);
		x += cs[i].w + 1;
	}
	if (resp_w >= 20)
		mvaddstr(y0 + 1, x, "LAST RESPONSE");
	attroff(A_BOLD);
	if (t->sel >= (int)n)
		t->sel = n ? (int)n - 1 : 0;
	if (t->sel < t->scroll)
		t->scroll = t->sel;
	if (t->sel >= t->scroll + rows - 2)
		t->scroll = t->sel - (rows - 3);
	for (int r = 0; r < rows - 2 && t->scroll + r < (int)n; r++) {
		json_t *q = v[t->scroll + r];
		const char *mode = gs(q, "mode");
		bool trouble = !strcmp(mode, "backoff") || !strcmp(mode, "paused");
		bool errors = gf(q, "bounced_per_min") > 0 || gf(q, "deferred_per_min") > gf(q, "delivered_per_min");
		char cell[8][48];
		int yy = y0 + 2 + r;

		snprintf(cell[0], sizeof(cell[0]), "%s", gs(q, "domain"));
		snprintf(cell[1], sizeof(cell[1]), "%lld", gi(q, "size"));
		snprintf(cell[2], sizeof(cell[2]), "%lld", gi(q, "in_flight"));
		snprintf(cell[3], sizeof(cell[3]), "%lld/%lld", gi(q, "connections"), gi(q, "connection_limit"));
		num(cell[4], sizeof(cell[4]), gf(q, "delivered_per_min"));
		num(cell[5], sizeof(cell[5]), gf(q, "deferred_per_min"));
		num(cell[6], sizeof(cell[6]), gf(q, "bounced_per_min"));
		snprintf(cell[7], sizeof(cell[7]), "%s", mode);
		if (t->scroll + r == t->sel && !t->show_vmtas)
			attron(A_REVERSE);
		move(yy, 0);
		clrtoeol();
		x = 0;
		for (int i = 0; i < ncols; i++) {
			bool mark = (i == 7 && trouble) || ((i == 5 || i == 6) && errors);

			if (mark)
				attron(COLOR_PAIR(i == 7 && !strcmp(mode, "paused") ? C_WARN : C_TROUBLE) | A_BOLD);
			if (cs[i].right)
				mvprintw(yy, x, "%*s", cs[i].w, cell[i]);
			else
				put_fit(t, yy, x, cs[i].w, cell[i]);
			if (mark)
				attroff(COLOR_PAIR(i == 7 && !strcmp(mode, "paused") ? C_WARN : C_TROUBLE) | A_BOLD);
			x += cs[i].w + 1;
		}
		if (resp_w >= 20)
			put_fit(t, yy, x, resp_w - 1, gs(q, "last_error"));
		attroff(A_REVERSE);
	}
	if (!n)
		mvaddstr(y0 + 2, 2, t->filter[0] ? "(no queue matches the filter)" : "(no queues yet)");
	free(v);
}

static void draw_vmtas(struct top *t, int y0, int rows, int cols)
{
	json_t *arr = json_object_get(t->vmtas, "vmtas");
	int n = (int)json_array_size(arr);

	attron(A_BOLD);
	mvaddstr(y0, 0, "VIRTUAL MTAS");
	mvprintw(y0 + 1, 0, "%-16s %-16s %6s %10s  %s", "VMTA", "SOURCE IP", "CONNS", "DELIVERED", "DISABLED UNTIL");
	attroff(A_BOLD);
	if (t->sel >= n)
		t->sel = n ? n - 1 : 0;
	for (int r = 0; r < rows - 2 && r < n; r++) {
		json_t *m = json_array_get(arr, (size_t)r), *dis = json_object_get(m, "disabled");
		char line[512];

		snprintf(line, sizeof(line), "%-16.16s %-16.16s %6lld %10lld  ", gs(m, "name"),
			 json_is_string(json_object_get(m, "source_ip")) ? gs(m, "source_ip") : "(any)",
			 gi(m, "connections"), gi(m, "delivered"));
		if (r == t->sel)
			attron(A_REVERSE);
		mvaddstr(y0 + 2 + r, 0, line);
		if (json_array_size(dis)) {
			char d[256];

			snprintf(d, sizeof(d), "%s (%s)", gs(json_array_get(dis, 0), "until"), gs(json_array_get(dis, 0), "queue"));
			attron(COLOR_PAIR(C_TROUBLE) | A_BOLD);
			put_fit(t, y0 + 2 + r, (int)strlen(line), cols - (int)strlen(line), d);
			attroff(COLOR_PAIR(C_TROUBLE) | A_BOLD);
		} else {
			addstr("-");
		}
		attroff(A_REVERSE);
	}
}

/* The campaigns whose name matches the filter, in the API's order (first
 * seen first). Caller frees the array (not the items). */
static json_t **visible_campaigns(struct top *t, size_t *n)
{
	return visible_items(json_object_get(t->campaigns, "campaigns"), "campaign", t->filter, NULL, n);
}

static void draw_campaigns(struct top *t, int y0, int rows, int cols)
{
	/* the name takes what the numbers leave (12 to 40 columns); the
	 * reception times only when they fit whole */
	bool times = cols >= 12 + 4 * 10 + 8 + 2 * 15;
	int name_w = cols - 4 * 10 - 8 - (times ? 2 * 15 : 0);
	size_t n;
	json_t **v = visible_campaigns(t, &n);
	char line[512], title[96];

	if (name_w > 40)
		name_w = 40;
	if (name_w < 12)
		name_w = 12;
	snprintf(title, sizeof(title), "CAMPAIGNS%s%s  (%zu)", t->filter[0] ? "  filter: " : "", t->filter, n);
	attron(A_BOLD);
	put_fit(t, y0, 0, cols, title);
	snprintf(line, sizeof(line), "%-*s %9s %9s %9s %9s %-7s%s", name_w, "CAMPAIGN", "QUEUED", "DEFERRED", "DELIVERED",
		 "BOUNCED", "STATE", times ? " FIRST          LAST" : "");
	mvaddnstr(y0 + 1, 0, line, cols);
	attroff(A_BOLD);
	if (t->sel >= (int)n)
		t->sel = n ? (int)n - 1 : 0;
	if (t->sel < t->scroll)
		t->scroll = t->sel;
	if (t->sel >= t->scroll + rows - 2)
		t->scroll = t->sel - (rows - 3);
	for (int r = 0; r < rows - 2 && t->scroll + r < (int)n; r++) {
		json_t *cp = v[t->scroll + r];
		bool paused = json_is_true(json_object_get(cp, "paused"));
		const char *fr = gs(cp, "first_received"), *la = gs(cp, "last_received");
		char when[40] = "";
		int yy = y0 + 2 + r;

		/* "2026-12-07T03:41:07.123Z" shown as "12-07 03:41:07" */
		if (times)
			snprintf(when, sizeof(when), " %-14.14s %-14.14s", strlen(fr) >= 19 ? fr + 5 : "-",
				 strlen(la) >= 19 ? la + 5 : "-");
		for (char *p = when; *p; p++)
			if (*p == 'T')
				*p = ' ';
		if (t->scroll + r == t->sel)
			attron(A_REVERSE);
		move(yy, 0);
		clrtoeol();
		put_fit(t, yy, 0, name_w, gs(cp, "campaign"));
		mvprintw(yy, name_w, " %9lld %9lld %9lld %9lld ", gi(cp, "queued"), gi(cp, "deferred"), gi(cp, "delivered"),
			 gi(cp, "bounced"));
		if (paused)
			attron(COLOR_PAIR(C_WARN) | A_BOLD);
		printw("%-7s", paused ? "paused" : "active");
		if (paused)
			attroff(COLOR_PAIR(C_WARN) | A_BOLD);
		if (times)
			addstr(when);
		attroff(A_REVERSE);
	}
	if (!n)
		mvaddstr(y0 + 2, 2, !t->campaigns ? "(this salvod reports no campaigns)"
				    : t->filter[0] ? "(no campaign matches the filter)" : "(no campaigns yet)");
	free(v);
}

static void draw_help(int rows, int cols)
{
	static const char *const lines[] = {
		"salvoctl top - keys",
		"",
		"Up/Down, PgUp/PgDn  select a queue",
		"s        sort: size, rate, errors, name",
		"/        filter queues by name (empty clears)",
		"p / r    pause / resume the selected queue",
		"         (campaign view: the selected campaign)",
		"b / n    backoff / normal mode for it",
		"Tab      queues / virtual MTAs / campaigns",
		"?        this help (any key closes)",
		"q        quit",
	};
	int n = (int)(sizeof(lines) / sizeof(lines[0])), h = n + 4, w = 52;
	int y = (rows - h) / 2, x = (cols - w) / 2;

	if (w > cols)
		w = cols, x = 0;
	if (h > rows)
		h = rows, y = 0;
	for (int i = 0; i < h; i++)
		mvhline(y + i, x, ' ', w);
	mvhline(y, x + 1, ACS_HLINE, w - 2);
	mvhline(y + h - 1, x + 1, ACS_HLINE, w - 2);
	mvvline(y + 1, x, ACS_VLINE, h - 2);
	mvvline(y + 1, x + w - 1, ACS_VLINE, h - 2);
	mvaddch(y, x, ACS_ULCORNER);
	mvaddch(y, x + w - 1, ACS_URCORNER);
	mvaddch(y + h - 1, x, ACS_LLCORNER);
	mvaddch(y + h - 1, x + w - 1, ACS_LRCORNER);
	attron(A_BOLD);
	mvaddnstr(y + 1, x + 3, lines[0], w - 6);
	attroff(A_BOLD);
	for (int i = 1; i < n && 2 + i < h - 1; i++)
		mvaddnstr(y + 2 + i, x + 3, lines[i], w - 6);
}

static void draw(struct top *t)
{
	int rows, cols;

	getmaxyx(stdscr, rows, cols);
	erase();
	draw_header(t, cols);
	draw_spark(t, 3, cols);
	if (t->connected && t->stall[0]) {
		attron(COLOR_PAIR(C_TROUBLE) | A_BOLD);
		move(3, 0);
		clrtoeol();
		put_fit(t, 3, 0, cols, t->stall);
		attroff(COLOR_PAIR(C_TROUBLE) | A_BOLD);
	}
	if (t->show_campaigns)
		draw_campaigns(t, 5, rows - 6, cols);
	else if (t->show_vmtas)
		draw_vmtas(t, 5, rows - 6, cols);
	else
		draw_queues(t, 5, rows - 6, cols);
	if (t->msg[0] && now_s() < t->msg_until)
		put_fit(t, rows - 1, 0, cols, t->msg);
	else
		put_fit(t, rows - 1, 0, cols, t->show_campaigns ? "? help  / filter  p pause  r resume  Tab queues  q quit"
				    : t->show_vmtas ? "? help  Tab campaigns  q quit"
				    : "? help  s sort  / filter  p pause  r resume  b backoff  Tab vmtas  q quit");
	if (t->help)
		draw_help(rows, cols);
	refresh();
}

/* ---- actions ---------------------------------------------------------------------------- */

/* p / r in the campaign view: the selected campaign. */
static void act_campaign(struct top *t, const char *verb, const char *done)
{
	size_t n;
	json_t **v = visible_campaigns(t, &n);
	char path[700], enc[520];
	struct ctl_resp r;

	if (!v || !n) {
		snprintf(t->msg, sizeof(t->msg), "select a campaign first");
	} else {
		const char *name = gs(v[t->sel < (int)n ? t->sel : 0], "campaign");

		ctl_urlencode(name, enc, sizeof(enc));
		snprintf(path, sizeof(path), "/api/v1/campaigns/%s/%s", enc, verb);
		if (ctl_request(t->c, "POST", path, "", NULL, &r) < 0)
			snprintf(t->msg, sizeof(t->msg), "campaign %s: salvod is not answering", name);
		else if (r.status == 200)
			snprintf(t->msg, sizeof(t->msg), "campaign %s: %s", name, done);
		else
			snprintf(t->msg, sizeof(t->msg), "campaign %s: refused (HTTP %ld)", name, r.status);
		ctl_resp_free(&r);
		t->last_fetch = 0;
	}
	t->msg_until = now_s() + 4;
	free(v);
}

static void act(struct top *t, const char *verb, const char *body, const char *done)
{
	size_t n;
	json_t **v;
	char path[700], enc[520];
	struct ctl_resp r;

	if (t->show_campaigns) {
		if (!strcmp(verb, "pause") || !strcmp(verb, "resume"))
			act_campaign(t, verb, done);
		return;
	}
	v = visible_queues(t, &n);
	if (!v || !n || t->show_vmtas) {
		snprintf(t->msg, sizeof(t->msg), "select a queue first");
	} else {
		const char *name = gs(v[t->sel < (int)n ? t->sel : 0], "domain");

		ctl_urlencode(name, enc, sizeof(enc));
		snprintf(path, sizeof(path), "/api/v1/queues/%s/%s", enc, verb);
		if (ctl_request(t->c, "POST", path, body ? body : "", NULL, &r) < 0)
			snprintf(t->msg, sizeof(t->msg), "%s: salvod is not answering", name);
		else if (r.status == 200)
			snprintf(t->msg, sizeof(t->msg), "%s: %s", name, done);
		else
			snprintf(t->msg, sizeof(t->msg), "%s: refused (HTTP %ld)", name, r.status);
		ctl_resp_free(&r);
		t->last_fetch = 0; /* show the effect now */
	}
	t->msg_until = now_s() + 4;
	free(v);
}

static void prompt_filter(struct top *t)
{
	int rows, cols;
	char buf[64] = "";

	getmaxyx(stdscr, rows, cols);
	move(rows - 1, 0);
	clrtoeol();
	mvaddstr(rows - 1, 0, "filter: ");
	echo();
	curs_set(1);
	timeout(-1);
	getnstr(buf, (int)sizeof(buf) - 1 < cols - 9 ? (int)sizeof(buf) - 1 : cols - 9);
	noecho();
	curs_set(0);
	timeout(100);
	snprintf(t->filter, sizeof(t->filter), "%s", buf);
	t->sel = t->scroll = 0;
}

int cmd_top(struct ctl *c, int argc, char **argv)
{
	struct top t = {.c = c, .sort = SORT_SIZE};
	bool quit = false;

	(void)argv;
	if (argc > 1) {
		fprintf(stderr, "usage: salvoctl top\n");
		return 2;
	}
	setlocale(LC_ALL, "");
	t.utf8 = strcmp(nl_langinfo(CODESET), "UTF-8") == 0;
	c->quiet_errors = true;
	if (!initscr()) {
		fprintf(stderr, "salvoctl: cannot start the terminal UI\n");
		return 2;
	}
	cbreak();
	noecho();
	keypad(stdscr, TRUE);
	curs_set(0);
	timeout(100);
	if (has_colors()) {
		start_color();
		use_default_colors();
		init_pair(C_TROUBLE, COLOR_RED, -1);
		init_pair(C_WARN, COLOR_YELLOW, -1);
		init_pair(C_DIM, COLOR_BLUE, -1);
	}
	fetch(&t);
	while (!quit) {
		if (now_s() - t.last_fetch >= 1.0)
			fetch(&t);
		draw(&t);
		int ch = getch();

		if (ch == ERR)
			continue;
		if (t.help) {
			t.help = false;
			continue;
		}
		switch (ch) {
		case 'q': case 'Q': quit = true; break;
		case '?': case 'h': t.help = true; break;
		case '\t': /* queues -> vmtas -> campaigns -> queues */
			if (t.show_campaigns)
				t.show_campaigns = false;
			else if (t.show_vmtas)
				t.show_vmtas = false, t.show_campaigns = true;
			else
				t.show_vmtas = true;
			t.sel = t.scroll = 0;
			break;
		case 's': t.sort = (enum sort_key)((t.sort + 1) % SORT_N); break;
		case '/': prompt_filter(&t); break;
		case KEY_UP: case 'k': if (t.sel > 0) t.sel--; break;
		case KEY_DOWN: case 'j': t.sel++; break;
		case KEY_PPAGE: t.sel = t.sel > 10 ? t.sel - 10 : 0; break;
		case KEY_NPAGE: t.sel += 10; break;
		case 'p': act(&t, "pause", NULL, "paused"); break;
		case 'r': act(&t, "resume", NULL, "resumed"); break;
		case 'b': act(&t, "mode", "{\"mode\":\"backoff\"}", "backoff mode"); break;
		case 'n': act(&t, "mode", "{\"mode\":\"normal\"}", "normal mode"); break;
		case KEY_RESIZE: clear(); break;
		default: break;
		}
	}
	endwin();
	json_decref(t.status);
	json_decref(t.queues);
	json_decref(t.vmtas);
	json_decref(t.campaigns);
	return 0;
}
