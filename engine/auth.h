/*
 * auth.h - SMTP AUTH accounts (<smtp-user>) and the per-client throttle on
 * failed attempts: after AUTH_MAX_FAILURES failures from one address within
 * AUTH_WINDOW_S seconds, that address is refused for the rest of the window.
 */
#ifndef SALVO_AUTH_H
#define SALVO_AUTH_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#define AUTH_MAX_FAILURES 5
#define AUTH_WINDOW_S 300

struct config;

struct auth_failures {
	pthread_mutex_t mu;
	struct auth_slot *slots;   /* a small open table, oldest reused */
	size_t n;
};

int auth_failures_init(struct auth_failures *f);
void auth_failures_fini(struct auth_failures *f);

/* 0 good, 1 wrong, 2 this client is throttled. Passwords are compared in
 * constant time; a crypt(3) hash ("$...") is checked with crypt_rn. */
int auth_check(const struct config *cfg, struct auth_failures *f, const struct sockaddr *client,
	       const char *user, const char *pass);

#endif
