/* fuzz_inject.c - libFuzzer harness: the HTTP injection request checks
 * (engine/inject_check.c) on arbitrary JSON, and, for requests that pass,
 * the MIME builder (engine/mime_build.c) on their content object. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_str.h"
#include "engine/inject_check.h"
#include "engine/mime_build.h"

static const char *str(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *root = json_loadb((const char *)data, size, 0, NULL), *o;
	const char *why, *field;

	if (!root)
		return 0;
	if (inject_check(root, 1 << 20, &why, &field) == 0 && json_is_object(o = json_object_get(root, "content"))) {
		json_t *atts = json_object_get(o, "attachments"), *hdrs = json_object_get(o, "headers"), *v;
		size_t na = json_array_size(atts), nh = json_object_size(hdrs), k = 0;
		struct mime_attachment *a = calloc(na + 1, sizeof(*a));
		struct mime_header *h = calloc(nh + 1, sizeof(*h));
		struct json_buf out = {0};
		const char *key;

		for (size_t i = 0; i < na; i++) {
			json_t *e = json_array_get(atts, i);

			a[i] = (struct mime_attachment){str(e, "data"), json_string_length(json_object_get(e, "data")),
							json_is_true(json_object_get(e, "base64")), str(e, "content_type"),
							str(e, "file_name"), str(e, "content_id")};
		}
		json_object_foreach(hdrs, key, v) h[k++] = (struct mime_header){key, json_string_value(v)};
		struct mime_message m = {
			.from_email = str(json_object_get(o, "from"), "email"),
			.from_name = str(json_object_get(o, "from"), "name"),
			.to_email = "x@example.com",
			.subject = str(o, "subject"),
			.headers = h,
			.n_headers = k,
			.text = str(o, "text_body"),
			.text_len = json_string_length(json_object_get(o, "text_body")),
			.html = str(o, "html_body"),
			.html_len = json_string_length(json_object_get(o, "html_body")),
			.att = a,
			.n_att = na,
			.host_name = "fuzz.example",
		};
		/* what passed the checks never yields a bare CR or LF: no field
		 * can start a line of its own in the header */
		if (mime_build(&m, &out) == 0)
			for (size_t i = 0; i < out.len; i++)
				if ((out.data[i] == '\n' && (!i || out.data[i - 1] != '\r')) ||
				    (out.data[i] == '\r' && (i + 1 >= out.len || out.data[i + 1] != '\n')))
					abort();
		json_buf_free(&out);
		free(a);
		free(h);
	}
	json_decref(root);
	return 0;
}
