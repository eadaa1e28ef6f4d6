/*
 * render_shim.c - compiles engine/api_inject.c unchanged into salvo-micro so
 * the benchmark calls its static render(), the per-recipient {{ }}
 * substitution of HTTP injection, and not a copy of it. This object then
 * defines api_inject.c's external symbols itself, so the linker never takes
 * api_inject.o from libsalvo_engine (no duplicates).
 *
 * C, not C++: api_inject.c is C11 (designated initialisers, implicit void *
 * conversions) that g++ does not compile.
 */
#include "engine/api_inject.c"

#include "bench/micro/render_shim.h"

struct micro_render {
	struct config cfg;
	struct engine eng;
	struct inj x;
};

struct micro_render *micro_render_new(const char *json, size_t len)
{
	struct micro_render *m = calloc(1, sizeof(*m));
	json_t *root = json_loadb(json, len, 0, NULL), *rc;

	if (!m || !root || config_defaults(&m->cfg) < 0)
		goto fail;
	m->eng.cfg = &m->cfg;
	m->x.eng = &m->eng;
	m->x.root = root;
	/* the fields render() reads, filled as inject() fills them */
	m->x.content = json_string_value(json_object_get(root, "content"));
	m->x.content_len = json_string_length(json_object_get(root, "content"));
	m->x.globals = json_object_get(root, "substitutions");
	m->x.uniform = !m->x.content || !strstr(m->x.content, "{{");
	snprintf(m->x.client_ip, sizeof(m->x.client_ip), "%s", "203.0.113.7");
	rc = json_object_get(root, "recipients");
	if (!m->x.content || !json_array_size(rc) || !(m->x.r = calloc(json_array_size(rc), sizeof(*m->x.r))))
		goto fail;
	for (size_t i = 0; i < json_array_size(rc); i++) {
		json_t *e = json_array_get(rc, i), *nm = json_object_get(e, "name"), *sb = json_object_get(e, "substitutions");

		m->x.r[m->x.n++] = (struct inj_rcpt){.email = json_string_value(json_object_get(e, "email")),
						      .name = json_is_string(nm) ? json_string_value(nm) : NULL,
						      .subs = json_is_object(sb) ? sb : NULL};
	}
	return m;
fail:
	json_decref(root);
	if (m) {
		m->x.root = NULL;
		micro_render_free(m);
	}
	return NULL;
}

size_t micro_render_recipients(const struct micro_render *m)
{
	return m->x.n;
}

int micro_render_one(const struct micro_render *m, size_t i, char **body, size_t *len)
{
	struct json_buf b = {0};

	if (render(&m->x, m->x.uniform ? NULL : &m->x.r[i % m->x.n], &b)) {
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
	free(m->x.r);
	json_decref(m->x.root);
	config_free(&m->cfg);
	free(m);
}
