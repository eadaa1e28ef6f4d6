/* render_shim.h - plain C entry points for BM_InjectRender: an injection
 * request parsed once, then one recipient rendered by inject_render() (see
 * render_shim.c). */
#ifndef SALVO_MICRO_RENDER_SHIM_H
#define SALVO_MICRO_RENDER_SHIM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct micro_render;

/* An /api/inject/v1 request body (JSON, content as a string) prepared the
 * way inject() prepares it; NULL when it does not parse or has no
 * recipients. */
struct micro_render *micro_render_new(const char *json, size_t len);
size_t micro_render_recipients(const struct micro_render *m);
/* Render the content for recipient i (as inj_next() does): a malloc'd body
 * in *body (free() it), its length in *len. 0, or -1 on out of memory. */
int micro_render_one(const struct micro_render *m, size_t i, char **body, size_t *len);
void micro_render_free(struct micro_render *m);

#ifdef __cplusplus
}
#endif

#endif
