/* test_reload.c - what a reload may change (reload_diff), configuration
 * generations' reference counting (config_gen), on configurations parsed from text,
 * and which files a reload refuses to read (reload_file). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/config.h"
#include "engine/config_gen.h"
#include "engine/reload_diff.h"
#include "engine/reload_file.h"
#include "engine/scheduler.h"

#define BASE                                                                                      \
	"spool-dir /tmp/x\n"                                                                      \
	"smtp-listener 127.0.0.1:2525\n"                                                          \
	"http-listener 127.0.0.1:8025\n"                                                          \
	"worker-threads 2\n"                                                                      \
	"<virtual-mta mta1>\n smtp-source-host 127.0.0.2 a.example\n</virtual-mta>\n"            \
	"<virtual-mta mta2>\n smtp-source-host 127.0.0.3 b.example\n</virtual-mta>\n"            \
	"<virtual-mta-pool blast>\n virtual-mta mta1\n virtual-mta mta2\n</virtual-mta-pool>\n"

static void load(struct config *c, const char *text)
{
	char err[CONFIG_ERR_MAX];

	if (config_load_string(c, "t.conf", text, err) < 0)
		fail_msg("%s", err);
}

/* reload_diff(old, old, neu): warnings and errors as two strings (freed by the caller) */
static unsigned diff(const char *old_text, const char *new_text, char **warn, char **err)
{
	struct config a, b;
	size_t wl = 0, el = 0;
	FILE *wf = open_memstream(warn, &wl), *ef = open_memstream(err, &el);
	unsigned n;

	load(&a, old_text);
	load(&b, new_text);
	n = reload_diff(&a, &a, &b, wf, ef);
	fclose(wf);
	fclose(ef);
	config_free(&a);
	config_free(&b);
	return n;
}

static void test_same_config_no_findings(void **state)
{
	char *w, *e;
	(void)state;

	assert_int_equal(diff(BASE, BASE, &w, &e), 0);
	assert_string_equal(w, "");
	assert_string_equal(e, "");
	free(w);
	free(e);
}

static void test_live_settings_are_silent(void **state)
{
	char *w, *e;
	(void)state;

	/* throttles, routes, patterns, sources, users, DKIM-less domain changes, a new
	 * virtual MTA and pool after the others: no warning, no error */
	assert_int_equal(diff(BASE "<domain x.test>\n max-msg-rate 5/s\n</domain>\n",
			      BASE "<domain x.test>\n max-msg-rate 50/s\n max-smtp-out 9\n route [127.0.0.1]:2600\n</domain>\n"
				   "<source 10.0.0.0/8>\n always-allow-relaying yes\n</source>\n"
				   "<smtp-user bob>\n password pw\n</smtp-user>\n"
				   "<virtual-mta mta3>\n smtp-source-host 127.0.0.4 c.example\n</virtual-mta>\n",
			      &w, &e),
			 0);
	assert_string_equal(w, "");
	assert_string_equal(e, "");
	free(w);
	free(e);
}

static void test_restart_only_warned(void **state)
{
	char *w, *e;
	(void)state;

	assert_int_equal(diff(BASE, "spool-dir /tmp/y\nsmtp-listener 127.0.0.1:2526\nhttp-listener 127.0.0.1:8025\n"
				    "worker-threads 4\nhttp-access 10.0.0.0/8 admin\n"
				    "<virtual-mta mta1>\n smtp-source-host 127.0.0.2 a.example\n</virtual-mta>\n"
				    "<virtual-mta mta2>\n smtp-source-host 127.0.0.3 b.example\n</virtual-mta>\n"
				    "<virtual-mta-pool blast>\n virtual-mta mta1\n virtual-mta mta2\n</virtual-mta-pool>\n",
			      &w, &e),
			 0);
	assert_non_null(strstr(w, "spool-dir changes on restart only\n"));
	assert_non_null(strstr(w, "worker-threads changes on restart only\n"));
	assert_null(strstr(w, "smtp-listener")); /* listeners follow a reload */
	assert_null(strstr(w, "http-access")); /* read per request: follows a reload */
	assert_null(strstr(w, "acct-webhook"));
	assert_string_equal(e, "");
	free(w);
	free(e);
	/* a new http-listener address and tokens follow a reload; tls= of a
	 * kept address and the limits do not */
	assert_int_equal(diff(BASE, BASE "http-listener 127.0.0.1:8026\nhttp-api-token abcdefghijklmnopq monitor\n", &w, &e),
			 0);
	assert_string_equal(w, "");
	free(w);
	free(e);
	assert_int_equal(diff(BASE, BASE "http-max-connections 50\n", &w, &e), 0);
	assert_non_null(strstr(w, "tls= of an open http-listener, and http-max-*, changes on restart only\n"));
	free(w);
	free(e);
}

static void test_layout_change_refused(void **state)
{
	char *w, *e;
	(void)state;

	/* mta2 removed */
	assert_true(diff(BASE, "spool-dir /tmp/x\nsmtp-listener 127.0.0.1:2525\nhttp-listener 127.0.0.1:8025\nworker-threads 2\n"
			       "<virtual-mta mta1>\n smtp-source-host 127.0.0.2 a.example\n</virtual-mta>\n"
			       "<virtual-mta-pool blast>\n virtual-mta mta1\n</virtual-mta-pool>\n",
			 &w, &e) > 0);
	assert_non_null(strstr(e, "virtual-mta mta2 is removed or moved"));
	free(w);
	free(e);
	/* mta1 and mta2 swapped */
	assert_true(diff(BASE, "spool-dir /tmp/x\nsmtp-listener 127.0.0.1:2525\nhttp-listener 127.0.0.1:8025\nworker-threads 2\n"
			       "<virtual-mta mta2>\n smtp-source-host 127.0.0.3 b.example\n</virtual-mta>\n"
			       "<virtual-mta mta1>\n smtp-source-host 127.0.0.2 a.example\n</virtual-mta>\n"
			       "<virtual-mta-pool blast>\n virtual-mta mta1\n virtual-mta mta2\n</virtual-mta-pool>\n",
			 &w, &e) > 0);
	assert_non_null(strstr(e, "is removed or moved"));
	free(w);
	free(e);
}

/* a new pool and a new virtual MTA (whose implicit pool comes after the named
 * ones): existing pools keep their indexes, sources follow */
static void test_align_pools(void **state)
{
	struct config cur, neu;
	char *w, *e;
	size_t wl = 0, el = 0;
	FILE *wf, *ef;
	(void)state;

	load(&cur, BASE "<source 10.0.0.0/8>\n default-virtual-mta mta2\n</source>\n");
	load(&neu, BASE "<virtual-mta mta3>\n smtp-source-host 127.0.0.4 c.example\n</virtual-mta>\n"
			"<virtual-mta-pool more>\n virtual-mta mta3\n</virtual-mta-pool>\n"
			"<source 10.0.0.0/8>\n default-virtual-mta more\n</source>\n"
			"<source 11.0.0.0/8>\n default-virtual-mta mta2\n</source>\n");
	/* unaligned, the implicit pools moved: refused */
	assert_true(reload_diff(&cur, &cur, &neu, NULL, NULL) > 0);
	assert_int_equal(reload_align_pools(&cur, &neu), 0);
	wf = open_memstream(&w, &wl);
	ef = open_memstream(&e, &el);
	assert_int_equal(reload_diff(&cur, &cur, &neu, wf, ef), 0);
	fclose(wf);
	fclose(ef);
	assert_string_equal(e, "");
	for (size_t i = 0; i < cur.n_pools; i++)
		assert_string_equal(neu.pools[i].name, cur.pools[i].name);
	assert_int_equal(neu.n_pools, cur.n_pools + 2); /* "more" and mta3's own */
	assert_int_equal(config_pool_find(&neu, "mta2"), config_pool_find(&cur, "mta2"));
	for (size_t i = 0; i < neu.n_sources; i++) {
		const struct config_source *src = &neu.sources[i];

		if (src->default_virtual_mta)
			assert_int_equal(src->default_pool, (size_t)config_pool_find(&neu, src->default_virtual_mta));
	}
	free(w);
	free(e);
	config_free(&neu);
	/* a pool of cur missing: not aligned, reported */
	load(&neu, "spool-dir /tmp/x\n<virtual-mta mta1>\n smtp-source-host 127.0.0.2 a.example\n</virtual-mta>\n");
	assert_int_equal(reload_align_pools(&cur, &neu), -1);
	assert_true(reload_diff(&cur, &cur, &neu, NULL, NULL) > 0);
	config_free(&neu);
	config_free(&cur);
}

/* restart-only settings compare with the boot generation, layout with the one in force */
static void test_boot_vs_current(void **state)
{
	struct config boot, cur, neu;
	char *w;
	size_t wl = 0;
	FILE *wf;
	(void)state;

	load(&boot, BASE);
	load(&cur, "worker-threads 3\n" BASE);   /* a reload already warned about it */
	load(&neu, BASE);                        /* back to what runs: nothing to say */
	wf = open_memstream(&w, &wl);
	assert_int_equal(reload_diff(&boot, &cur, &neu, wf, NULL), 0);
	fclose(wf);
	assert_string_equal(w, "");
	free(w);
	config_free(&boot);
	config_free(&cur);
	config_free(&neu);
}

static void test_gen_refcount(void **state)
{
	struct config c;
	struct config_current cur;
	struct config_gen *g1, *g2, *held;
	(void)state;

	load(&c, BASE);
	assert_int_equal(config_current_init(&cur), 0);
	g1 = config_gen_new(&c, NULL, 1, 0);
	assert_non_null(g1);
	assert_null(c.spool_dir); /* moved */
	config_current_publish(&cur, g1);
	held = config_current_get(&cur);  /* a reader keeps generation 1 */
	assert_ptr_equal(held, g1);
	load(&c, BASE "<domain x.test>\n max-msg-rate 50/s\n</domain>\n");
	g2 = config_gen_new(&c, NULL, 2, 0);
	config_current_publish(&cur, g2);
	/* the reader's generation is still whole (ASan/valgrind check the free) */
	assert_int_equal(held->generation, 1);
	assert_string_equal(held->cfg.spool_dir, "/tmp/x");
	assert_int_equal(__atomic_load_n(&held->refs, __ATOMIC_RELAXED), 1);
	config_gen_put(held);                 /* the last reference frees it */
	held = config_current_get(&cur);
	assert_int_equal(held->generation, 2);
	config_gen_put(held);
	config_current_fini(&cur);            /* frees generation 2 */
}

/* sched_rebind: queues take the new <domain> settings and FIFOs for added pools */
static void test_sched_rebind(void **state)
{
	struct config a, b;
	struct sched s;
	struct sched_queue *q;
	(void)state;

	load(&a, BASE "<domain x.test>\n max-msg-rate 5/s\n</domain>\n");
	load(&b, BASE "<domain x.test>\n max-msg-rate 50/s\n</domain>\n"
		      "<virtual-mta-pool more>\n virtual-mta mta1\n</virtual-mta-pool>\n");
	assert_int_equal(sched_init(&s, &a), 0);
	q = sched_queue_get(&s, "x.test");
	assert_non_null(q);
	assert_int_equal(q->cfg->max_msg_rate.count, 5);
	assert_int_equal(q->n_fifos, a.n_pools);
	assert_true(b.n_pools > a.n_pools);
	assert_int_equal(sched_rebind(&s, &b), 0);
	assert_int_equal(q->cfg->max_msg_rate.count, 50);
	assert_int_equal(q->n_fifos, b.n_pools);
	assert_int_equal(q->fifos[b.n_pools - 1].n, 0);
	sched_fini(&s, NULL);
	config_free(&a);
	config_free(&b);
}

/* ---- reload_file ------------------------------------------------------------ */

/* A file holding n bytes of text, its mtime a minute ago (its ctime is now:
 * each read waits out the quiet window, 100 ms). */
static void put_file(const char *path, const char *text, size_t n, mode_t mode)
{
	struct timespec old[2];
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, n), (ssize_t)n);
	close(fd);
	assert_int_equal(chmod(path, mode), 0);
	clock_gettime(CLOCK_REALTIME, &old[0]);
	old[0].tv_sec -= 60;
	old[1] = old[0];
	assert_int_equal(utimensat(AT_FDCWD, path, old, 0), 0);
}

static void expect_refused(const char *path, const char *why)
{
	char err[512], *text = (char *)1;
	size_t len = 7;

	assert_int_equal(reload_file_read(path, &text, &len, err, sizeof(err)), -1);
	assert_null(text);
	assert_int_equal(len, 0);
	if (!strstr(err, why) || strncmp(err, path, strlen(path)) != 0)
		fail_msg("%s: got \"%s\", want \"%s\" after the path", path, err, why);
}

static void test_reload_file(void **state)
{
	char dir[] = "/tmp/test_reload_file.XXXXXX", path[256], err[512], *text;
	size_t len;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/salvod.conf", dir);
	expect_refused(path, "cannot open: No such file");
	put_file(path, BASE, strlen(BASE), 0644);
	assert_int_equal(reload_file_read(path, &text, &len, err, sizeof(err)), 0);
	assert_int_equal(len, strlen(BASE));
	assert_string_equal(text, BASE);
	free(text);
	put_file(path, BASE, strlen(BASE), 0);
	expect_refused(path, "not readable: its mode 0000");
	put_file(path, "", 0, 0644);
	expect_refused(path, "empty");
	put_file(path, "# a comment\n\n  \t\r\n   # another\n", 31, 0644);
	expect_refused(path, "no directive");
	put_file(path, "spool-dir /tmp/x\nworker\0-threads 2\n", 35, 0644);
	expect_refused(path, ":2: a NUL byte");
	/* larger than the limit: refused by its size, never read */
	put_file(path, "x", 1, 0644);
	assert_int_equal(truncate(path, (off_t)RELOAD_FILE_MAX + 1), 0);
	expect_refused(path, "larger than 64 MiB");
	unlink(path);
	assert_int_equal(mkdir(path, 0755), 0);
	expect_refused(path, "not a regular file (a directory)");
	rmdir(path);
	assert_int_equal(mkfifo(path, 0644), 0);
	expect_refused(path, "not a regular file (a FIFO)"); /* and did not block */
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_same_config_no_findings),
		cmocka_unit_test(test_live_settings_are_silent),
		cmocka_unit_test(test_restart_only_warned),
		cmocka_unit_test(test_layout_change_refused),
		cmocka_unit_test(test_align_pools),
		cmocka_unit_test(test_boot_vs_current),
		cmocka_unit_test(test_gen_refcount),
		cmocka_unit_test(test_sched_rebind),
		cmocka_unit_test(test_reload_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
