/*
 * api_stubs.c - a placeholder for the injection endpoint while it is being
 * built: it answers 501 with a clear message rather than a misleading 404.
 */
#include <string.h>

#include "engine/api.h"
#include "net/http_server.h"

bool api_inject_route(struct engine *eng, struct http_request *req)
{
	(void)eng;
	if (strcmp(req->path, "/api/inject/v1") != 0)
		return false;
	http_reply_error(req, 501, "HTTP injection is not available in this build yet", NULL);
	return true;
}
