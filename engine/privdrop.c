/*
 * privdrop.c - `run-as-root no` (see privdrop.h). Owns nothing after it
 * returns.
 */
#include "engine/privdrop.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/config.h"

#define PRIVDROP_DEFAULT_USER "salvo"

/* path, and below it down to depth more levels; symlinks are not followed */
static int chown_tree(const char *path, uid_t uid, gid_t gid, int depth, char *err, size_t cap)
{
	struct stat st;
	DIR *d;
	struct dirent *e;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : (snprintf(err, cap, "%s: %s", path, strerror(errno)), -1);
	if (S_ISLNK(st.st_mode))
		return 0;
	if (lchown(path, uid, gid) < 0) {
		snprintf(err, cap, "cannot hand %s to uid %u: %s", path, (unsigned)uid, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode) || depth <= 0 || !(d = opendir(path)))
		return 0;
	while ((e = readdir(d))) {
		char sub[4096];

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if ((size_t)snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name) >= sizeof(sub))
			continue;
		if (chown_tree(sub, uid, gid, depth - 1, err, cap) < 0) {
			closedir(d);
			return -1;
		}
	}
	closedir(d);
	return 0;
}

int privdrop_apply(const struct config *cfg, char *err, size_t cap)
{
	const char *user = cfg->run_as_user ? cfg->run_as_user : PRIVDROP_DEFAULT_USER;
	struct passwd pw, *found = NULL;
	char buf[4096];
	int rc;

	if (!cfg->drop_root)
		return 0;
	if (geteuid() != 0) {
		fprintf(stderr, "salvod: run-as-root no: already running as uid %u, nothing to drop\n",
			(unsigned)geteuid());
		return 0;
	}
	rc = getpwnam_r(user, &pw, buf, sizeof(buf), &found);
	if (rc != 0 || !found) {
		snprintf(err, cap, "run-as-root no: no user \"%s\" (set run-as-user)%s%s", user, rc ? ": " : "",
			 rc ? strerror(rc) : "");
		return -1;
	}
	if (pw.pw_uid == 0) {
		snprintf(err, cap, "run-as-root no: run-as-user %s is root", user);
		return -1;
	}
	if (chown_tree(cfg->spool_dir, pw.pw_uid, pw.pw_gid, 2, err, cap) < 0)
		return -1;
	if (cfg->log_file && chown_tree(cfg->log_file, pw.pw_uid, pw.pw_gid, 0, err, cap) < 0)
		return -1;
	for (size_t i = 0; i < cfg->n_acct_files; i++) {
		const struct config_acct_file *a = &cfg->acct_files[i];

		if (!a->pipe && chown_tree(a->path, pw.pw_uid, pw.pw_gid, 0, err, cap) < 0)
			return -1;
		/* rotated files are made there */
		if (a->move_to && chown_tree(a->move_to, pw.pw_uid, pw.pw_gid, 0, err, cap) < 0)
			return -1;
	}
	if (initgroups(user, pw.pw_gid) < 0 || setgid(pw.pw_gid) < 0 || setuid(pw.pw_uid) < 0) {
		snprintf(err, cap, "run-as-root no: cannot become %s: %s", user, strerror(errno));
		return -1;
	}
	if (setuid(0) == 0) {
		snprintf(err, cap, "run-as-root no: root could be regained after becoming %s", user);
		return -1;
	}
	fprintf(stderr, "salvod: run-as-root no: running as %s (uid %u, gid %u) from now on\n", user,
		(unsigned)pw.pw_uid, (unsigned)pw.pw_gid);
	return 0;
}
