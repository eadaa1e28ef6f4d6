/*
 * api_stubs.c - placeholders for the injection and suppression endpoints
 * while they are being built: they answer 501 with a clear message rather
 * than a misleading 404.
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

bool api_suppress_route(struct engine *eng, struct http_request *req)
{
	(void)eng;
	if (strncmp(req->path, "/api/v1/suppressions", 20) != 0)
		return false;
	http_reply_error(req, 501, "the suppression list is not available in this build yet", NULL);
	return true;
}
