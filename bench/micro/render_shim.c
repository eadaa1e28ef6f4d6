/*
 * render_shim.c - the C side of BM_InjectRender: parses an /api/inject/v1
 * request body the way api_inject.c does (content string, global and
 * per-recipient substitutions) and renders one recipient through
 * inject_render(), the function HTTP injection calls per recipient.
 */
#include "bench/micro/render_shim.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_str.h"
#include "engine/inject_render.h"

struct micro_render {
	json_t *root;              /* owns every string below */
	struct inject_content c;
	struct inject_rcpt *r;
	size_t n;
	int uniform;               /* no placeholders: rendered once, unsubstituted */
};

struct micro_render *micro_render_new(const char *json, size_t len)
{
	struct micro_render *m = calloc(1, sizeof(*m));
	json_t *rc;

	if (!m || !(m->root = json_loadb(json, len, 0, NULL)))
		goto fail;
	m->c.content = json_string_value(json_object_get(m->root, "content"));
	m->c.content_len = json_string_length(json_object_get(m->root, "content"));
	m->c.globals = json_object_get(m->root, "substitutions");
	m->c.client_ip = "203.0.113.7";
	m->c.host_name = "mta.example.com";
	m->uniform = !m->c.content || !strstr(m->c.content, "{{");
	rc = json_object_get(m->root, "recipients");
	if (!m->c.content || !json_array_size(rc) || !(m->r = calloc(json_array_size(rc), sizeof(*m->r))))
		goto fail;
	for (size_t i = 0; i < json_array_size(rc); i++) {
		json_t *e = json_array_get(rc, i), *nm = json_object_get(e, "name"), *sb = json_object_get(e, "substitutions");

		m->r[m->n++] = (struct inject_rcpt){.email = json_string_value(json_object_get(e, "email")),
						    .name = json_is_string(nm) ? json_string_value(nm) : NULL,
						    .subs = json_is_object(sb) ? sb : NULL};
	}
	return m;
fail:
	micro_render_free(m);
	return NULL;
}

size_t micro_render_recipients(const struct micro_render *m)
{
	return m->n;
}

int micro_render_one(const struct micro_render *m, size_t i, char **body, size_t *len)
{
	struct json_buf b = {0};

	if (inject_render(&m->c, m->uniform ? NULL : &m->r[i % m->n], &b)) {
		json_buf_free(&b);
		return -1;
	}
	*body = b.data;
	*len = b.len;
	return 0;
}

void micro_render_free(struct micro_render *m)
{
	if (!m)
		return;
	free(m->r);
	json_decref(m->root);
	free(m);
}
