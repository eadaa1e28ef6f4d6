/*
 * campaign_metrics.c - campaigns in /metrics, bounded: a spool may hold
 * millions of campaigns, and a series per campaign would swamp Prometheus.
 * Exported per campaign (label campaign="ID"): only the CAMPAIGN_METRICS_TOP
 * campaigns with the most recipients queued (ties: the older id), among
 * those with mail queued or a pause; the totals over every campaign are
 * exported unlabelled.
 */
#include <stdlib.h>
#include <string.h>

#include "core/json_str.h"
#include "engine/api.h"
#include "engine/campaign.h"

struct top_ent {
	int64_t queued;
	uint32_t id;
};

/* a before b in the final order: more queued first, then the older id */
static bool ranks_before(const struct top_ent *a, const struct top_ent *b)
{
	return a->queued != b->queued ? a->queued > b->queued : a->id < b->id;
}

/* A min-heap on rank: the root is the weakest kept. */
static void sift_down(struct top_ent *h, size_t n, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		struct top_ent t;

		if (l < n && ranks_before(&h[m], &h[l]))
			m = l;
		if (r < n && ranks_before(&h[m], &h[r]))
			m = r;
		if (m == i)
			return;
		t = h[i];
		h[i] = h[m];
		h[m] = t;
		i = m;
	}
}

static void sift_up(struct top_ent *h, size_t i)
{
	while (i > 0) {
		size_t p = (i - 1) / 2;
		struct top_ent t;

		if (!ranks_before(&h[p], &h[i]))
			return;
		t = h[i];
		h[i] = h[p];
		h[p] = t;
		i = p;
	}
}

static int cmp_rank(const void *a, const void *b)
{
	return ranks_before(a, b) ? -1 : ranks_before(b, a) ? 1 : 0;
}

static int series(struct json_buf *b, const char *name, const char *type, const char *help,
		  const struct campaigns *c, const struct top_ent *top, size_t n, size_t field)
{
	int rc = json_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);

	for (size_t i = 0; i < n && !rc; i++) {
		const struct campaign *e = campaign_get(c, top[i].id);
		int64_t v;

		switch (field) {
		case 0: v = top[i].queued; break;
		case 1: v = __atomic_load_n(&e->deferred, __ATOMIC_RELAXED); break;
		case 2: v = (int64_t)__atomic_load_n(&e->delivered, __ATOMIC_RELAXED); break;
		case 3: v = (int64_t)__atomic_load_n(&e->bounced, __ATOMIC_RELAXED); break;
		default: v = __atomic_load_n(&e->paused, __ATOMIC_RELAXED); break;
		}
		rc = json_buf_printf(b, "%s{campaign=\"", name) | metrics_label(b, e->name) |
		     json_buf_printf(b, "\"} %lld\n", (long long)(v > 0 ? v : 0));
	}
	return rc;
}

int campaign_metrics(struct campaigns *c, struct json_buf *b)
{
	uint32_t n = campaigns_count(c);
	struct top_ent *top = malloc(CAMPAIGN_METRICS_TOP * sizeof(*top));
	size_t k = 0;
	int64_t total = 0;
	uint32_t paused = 0;
	int rc;

	if (!top)
		return -1;
	for (uint32_t id = 1; id <= n; id++) {
		const struct campaign *e = campaign_get(c, id);
		struct top_ent t;
		bool p;

		if (!e)
			continue;
		t = (struct top_ent){.queued = __atomic_load_n(&e->queued, __ATOMIC_RELAXED), .id = id};
		p = __atomic_load_n(&e->paused, __ATOMIC_RELAXED);
		if (t.queued < 0)
			t.queued = 0;
		total += t.queued;
		paused += p;
		if (!t.queued && !p)
			continue;
		if (k < CAMPAIGN_METRICS_TOP) {
			top[k] = t;
			sift_up(top, k++);
		} else if (ranks_before(&t, &top[0])) {
			top[0] = t;
			sift_down(top, k, 0);
		}
	}
	qsort(top, k, sizeof(*top), cmp_rank);
	rc = json_buf_printf(b, "# HELP salvo_campaigns Campaigns known (seen since start, or paused).\n"
			     "# TYPE salvo_campaigns gauge\nsalvo_campaigns %u\n", n) |
	     json_buf_printf(b, "# HELP salvo_campaigns_paused Campaigns paused.\n"
			     "# TYPE salvo_campaigns_paused gauge\nsalvo_campaigns_paused %u\n", paused) |
	     json_buf_printf(b, "# HELP salvo_campaigns_queued Recipients queued in all campaigns.\n"
			     "# TYPE salvo_campaigns_queued gauge\nsalvo_campaigns_queued %lld\n", (long long)total);
	rc |= series(b, "salvo_campaign_queued", "gauge",
		     "Recipients queued per campaign (only the campaigns with the most queued, see README).", c, top, k, 0);
	rc |= series(b, "salvo_campaign_deferred", "gauge", "Queued recipients whose last attempt was deferred.", c,
		     top, k, 1);
	rc |= series(b, "salvo_campaign_delivered_total", "counter", "Recipients of the campaign delivered.", c, top,
		     k, 2);
	rc |= series(b, "salvo_campaign_bounced_total", "counter", "Recipients of the campaign bounced or expired.", c,
		     top, k, 3);
	rc |= series(b, "salvo_campaign_paused", "gauge", "1 when the campaign is paused.", c, top, k, 4);
	free(top);
	return rc;
}
