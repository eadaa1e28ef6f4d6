/*
 * sink.c - salvo-sink: a fast SMTP sink over io_uring for tests and benchmarks.
 *
 * Owns: the command line, the listening sockets, the pid file, start-up checks and
 * the order of start and shutdown. The loop is in sink_loop.c, the SMTP dialogue in
 * sink_session.c, counting and files in sink_stats.c, faults in sink_faults.c.
 *
 * Start: parse options (bad ones: exit 1), block SIGTERM/SIGINT for the signalfd,
 * open the ring, bind every listener (failure: exit 1), check --stats and --dump are
 * writable, write the pid file, run. Stop: on SIGTERM/SIGINT the loop returns, open
 * sessions are cut off, the final --stats is written, the pid file removed, exit 0.
 *
 * Diagnostics on stderr: one "listening on" line per listener at start, and setup
 * errors. Nothing per message or connection.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "sink.h"
#include "sink_events.h"

void sink_format_ip(const struct sockaddr_storage *ss, char *out, size_t n)
{
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)ss;
        if (IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr))
            inet_ntop(AF_INET, &a6->sin6_addr.s6_addr[12], out, (socklen_t)n);
        else
            inet_ntop(AF_INET6, &a6->sin6_addr, out, (socklen_t)n);
    } else if (ss->ss_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, out, (socklen_t)n);
    } else {
        snprintf(out, n, "unknown");
    }
}

struct listen_spec {
    const char             *text;
    struct sockaddr_storage addr;
    socklen_t               len;
};

static int parse_listen(const char *text, struct listen_spec *ls, char *err, size_t errlen)
{
    char host[128];
    const char *port;
    memset(ls, 0, sizeof *ls);
    ls->text = text;
    if (text[0] == '[') {
        const char *close = strstr(text, "]:");
        if (!close || (size_t)(close - text - 1) >= sizeof host)
            goto bad;
        memcpy(host, text + 1, (size_t)(close - text - 1));
        host[close - text - 1] = '\0';
        port = close + 2;
    } else {
        const char *colon = strrchr(text, ':');
        if (!colon || (size_t)(colon - text) >= sizeof host || memchr(text, ':', (size_t)(colon - text)))
            goto bad;
        memcpy(host, text, (size_t)(colon - text));
        host[colon - text] = '\0';
        port = colon + 1;
    }
    char *end;
    errno = 0;
    unsigned long p = strtoul(port, &end, 10);
    if (!*port || *end || errno || p > 65535)
        goto bad;

    struct sockaddr_in *a4 = (struct sockaddr_in *)&ls->addr;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ls->addr;
    if (text[0] != '[' && inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)p);
        ls->len = sizeof *a4;
        return 0;
    }
    if (text[0] == '[' && inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)p);
        ls->len = sizeof *a6;
        return 0;
    }
bad:
    snprintf(err, errlen, "bad listen address '%s' (want IPv4:PORT or [IPv6]:PORT)", text);
    return -1;
}

static int listener_open(struct sink_listener *l, const struct listen_spec *ls, char *err,
                         size_t errlen)
{
    int one = 1;
    l->fd = socket(ls->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (l->fd < 0) {
        snprintf(err, errlen, "cannot create socket for %s: %s", ls->text, strerror(errno));
        return -1;
    }
    setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ls->addr.ss_family == AF_INET6)
        setsockopt(l->fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(l->fd, (const struct sockaddr *)&ls->addr, ls->len) < 0 ||
        listen(l->fd, 4096) < 0) {
        snprintf(err, errlen, "cannot bind %s: %s", ls->text, strerror(errno));
        return -1;
    }
    /* The bound address names the listener: port 0 becomes the real port. */
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char ip[INET6_ADDRSTRLEN];
    getsockname(l->fd, (struct sockaddr *)&ss, &len);
    sink_format_ip(&ss, ip, sizeof ip);
    if (ss.ss_family == AF_INET6)
        snprintf(l->name, sizeof l->name, "[%s]:%u", ip,
                 ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
    else
        snprintf(l->name, sizeof l->name, "%s:%u", ip, ntohs(((struct sockaddr_in *)&ss)->sin_port));
    return 0;
}

static int write_pid_file(const char *path)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    fprintf(f, "%ld\n", (long)getpid());
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        return -1;
    return 0;
}

static void usage(FILE *out)
{
    fputs("usage: salvo-sink -l ADDR:PORT [-l [ADDR6]:PORT ...] [options]\n"
          "  -l, --listen ADDR:PORT     listen here (repeatable; port 0 = any free port)\n"
          "  --hostname NAME            name in the banner and EHLO reply (default: gethostname)\n"
          "  --stats FILE               JSON counters, rewritten atomically every 200 ms and at exit\n"
          "  --dump DIR                 write DIR/N.eml and DIR/N.json for each accepted message\n"
          "  --greeting-delay MS        wait MS milliseconds before the 220 banner\n"
          "  --idle-timeout SECONDS     close idle sessions with 421 (default 300)\n"
          "  --pid-file FILE            write the pid once listening; removed at exit\n"
          "  --events FILE              JSON lines: every connection, message, fault reply, close\n"
          "  --max-conn-per-ip N        a client IP with N sessions open gets 421 and is closed\n"
          "  --fault SPEC               at=connect|helo|mail|rcpt|data,match=REGEX,percent=P,first=N,\n"
          "                             close,reply=CODE TEXT (reply last; see README.md)\n"
          "  --reply-delay MS           every reply waits MS milliseconds (sessions keep running)\n"
          "  --no-chunking              do not advertise CHUNKING; BDAT gets 502 5.5.1\n"
          "  --profile realistic        20 ms per reply, 2%% 451 and 1%% 550 at RCPT, 20 connections per IP\n",
          out);
    for (size_t i = 0; sink_faults_option(i); i++) {
        char opt[64];
        snprintf(opt, sizeof opt, "%s REGEX", sink_faults_option(i));
        fprintf(out, "  --%-24s %s\n", opt, sink_faults_help(i));
    }
    fputs("  fault REGEX: POSIX extended, case-insensitive, matched against the recipient\n"
          "  address; rules are tried in command-line order, the first that fires answers.\n",
          out);
}

enum {
    OPT_STATS = 256, OPT_DUMP, OPT_GREETING_DELAY, OPT_IDLE_TIMEOUT, OPT_PID_FILE, OPT_HOSTNAME,
    OPT_EVENTS, OPT_MAX_CONN_PER_IP, OPT_GENERAL_FAULT, OPT_PROFILE, OPT_REPLY_DELAY,
    OPT_NO_CHUNKING,
    OPT_FAULT = 512,                    /* + index into the fault option table */
};

static int parse_uint(const char *s, unsigned max, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (!*s || *end || errno || v > max || *s == '-')
        return -1;
    *out = (unsigned)v;
    return 0;
}

/* Returns 0, or -1 after printing why. */
static int parse_args(struct sink *sk, int argc, char **argv, struct listen_spec **specs,
                      size_t *nspecs)
{
    static const struct option base[] = {
        { "listen", required_argument, NULL, 'l' },
        { "stats", required_argument, NULL, OPT_STATS },
        { "dump", required_argument, NULL, OPT_DUMP },
        { "greeting-delay", required_argument, NULL, OPT_GREETING_DELAY },
        { "idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT },
        { "pid-file", required_argument, NULL, OPT_PID_FILE },
        { "hostname", required_argument, NULL, OPT_HOSTNAME },
        { "events", required_argument, NULL, OPT_EVENTS },
        { "max-conn-per-ip", required_argument, NULL, OPT_MAX_CONN_PER_IP },
        { "fault", required_argument, NULL, OPT_GENERAL_FAULT },
        { "profile", required_argument, NULL, OPT_PROFILE },
        { "reply-delay", required_argument, NULL, OPT_REPLY_DELAY },
        { "no-chunking", no_argument, NULL, OPT_NO_CHUNKING },
        { "help", no_argument, NULL, 'h' },
    };
    size_t nbase = sizeof base / sizeof base[0], nfault = 0;
    while (sink_faults_option(nfault))
        nfault++;
    struct option *longopts = sink_xmalloc((nbase + nfault + 1) * sizeof *longopts);
    memcpy(longopts, base, sizeof base);
    for (size_t i = 0; i < nfault; i++)
        longopts[nbase + i] = (struct option){ sink_faults_option(i), required_argument, NULL,
                                               OPT_FAULT + (int)i };
    longopts[nbase + nfault] = (struct option){ 0 };

    char err[512];
    int c, rc = 0;
    opterr = 0;
    while (rc == 0 && (c = getopt_long(argc, argv, ":l:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'l':
            *specs = sink_xrealloc(*specs, (*nspecs + 1) * sizeof **specs);
            if (parse_listen(optarg, &(*specs)[*nspecs], err, sizeof err) < 0) {
                fprintf(stderr, "salvo-sink: %s\n", err);
                rc = -1;
            }
            (*nspecs)++;
            break;
        case OPT_STATS: sk->opt.stats_path = optarg; break;
        case OPT_DUMP: sk->opt.dump_dir = optarg; break;
        case OPT_PID_FILE: sk->opt.pid_file = optarg; break;
        case OPT_HOSTNAME: sk->opt.hostname = optarg; break;
        case OPT_EVENTS: sk->opt.events_path = optarg; break;
        case OPT_NO_CHUNKING: sk->opt.chunking = false; break;
        case OPT_REPLY_DELAY:
            if (parse_uint(optarg, 600000, &sk->opt.reply_delay_ms) < 0) {
                fprintf(stderr, "salvo-sink: --reply-delay wants milliseconds, not '%s'\n", optarg);
                rc = -1;
            }
            break;
        case OPT_MAX_CONN_PER_IP:
            if (parse_uint(optarg, 1000000, &sk->rules.max_conn_per_ip) < 0 || !sk->rules.max_conn_per_ip) {
                fprintf(stderr, "salvo-sink: --max-conn-per-ip wants a positive count, not '%s'\n", optarg);
                rc = -1;
            }
            break;
        case OPT_GENERAL_FAULT:
            if (sink_rules_add(&sk->rules, optarg, err, sizeof err) < 0) {
                fprintf(stderr, "salvo-sink: %s\n", err);
                rc = -1;
            }
            break;
        case OPT_PROFILE:
            if (strcmp(optarg, "realistic") != 0) {
                fprintf(stderr, "salvo-sink: --profile knows 'realistic' only, not '%s'\n", optarg);
                rc = -1;
                break;
            }
            /* appended rules come after any --fault given before: explicit rules win */
            if (sink_rules_add(&sk->rules, "at=rcpt,percent=2,reply=451 4.7.1 try again later", err, sizeof err) < 0 ||
                sink_rules_add(&sk->rules, "at=rcpt,percent=1,reply=550 5.1.1 no such user", err, sizeof err) < 0)
                abort(); /* our own constants */
            if (!sk->rules.max_conn_per_ip)
                sk->rules.max_conn_per_ip = 20;
            if (!sk->opt.reply_delay_ms)
                sk->opt.reply_delay_ms = 20;
            break;
        case OPT_GREETING_DELAY:
            if (parse_uint(optarg, 3600u * 1000, &sk->opt.greeting_delay_ms) < 0) {
                fprintf(stderr, "salvo-sink: --greeting-delay wants milliseconds, not '%s'\n", optarg);
                rc = -1;
            }
            break;
        case OPT_IDLE_TIMEOUT:
            if (parse_uint(optarg, 86400, &sk->opt.idle_timeout_s) < 0 || sk->opt.idle_timeout_s == 0) {
                fprintf(stderr, "salvo-sink: --idle-timeout wants seconds (1-86400), not '%s'\n", optarg);
                rc = -1;
            }
            break;
        case 'h':
            usage(stdout);
            free(longopts);
            exit(0);
        case ':':
            fprintf(stderr, "salvo-sink: %s needs an argument\n", argv[optind - 1]);
            rc = -1;
            break;
        case '?':
            fprintf(stderr, "salvo-sink: unknown option '%s'\n", argv[optind - 1]);
            rc = -1;
            break;
        default:
            if (c >= OPT_FAULT && c < OPT_FAULT + (int)nfault &&
                sink_faults_add(&sk->faults, sink_faults_option((size_t)(c - OPT_FAULT)), optarg,
                                err, sizeof err) < 0) {
                fprintf(stderr, "salvo-sink: %s\n", err);
                rc = -1;
            }
            break;
        }
    }
    free(longopts);
    if (rc == 0 && optind < argc) {
        fprintf(stderr, "salvo-sink: unexpected argument '%s'\n", argv[optind]);
        rc = -1;
    }
    if (rc == 0 && *nspecs == 0) {
        fprintf(stderr, "salvo-sink: no listen address (-l ADDR:PORT)\n");
        rc = -1;
    }
    if (rc < 0)
        fputs("salvo-sink: try 'salvo-sink --help'\n", stderr);
    return rc;
}

int main(int argc, char **argv)
{
    static struct sink sink;            /* static: it is large, and zeroed */
    struct sink *sk = &sink;
    struct listen_spec *specs = NULL;
    size_t nspecs = 0;
    char hostname[256], err[512];
    int status = 1;

    sk->sigfd = -1;
    sk->opt.idle_timeout_s = 300;
    sk->opt.chunking = true;
    sk->opt.trace = getenv("SALVO_SINK_TRACE") && *getenv("SALVO_SINK_TRACE") == '1';
    if (parse_args(sk, argc, argv, &specs, &nspecs) < 0)
        goto out;
    if (!sk->opt.hostname) {
        if (gethostname(hostname, sizeof hostname) < 0)
            snprintf(hostname, sizeof hostname, "localhost");
        hostname[sizeof hostname - 1] = '\0';
        sk->opt.hostname = hostname;
    }

    /* Hundreds of sessions need more descriptors than the usual soft limit. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    sk->sigfd = signalfd(-1, &mask, SFD_CLOEXEC);
    if (sk->sigfd < 0) {
        fprintf(stderr, "salvo-sink: signalfd: %s\n", strerror(errno));
        goto out;
    }

    if (sk->opt.events_path) {
        int erc = sink_events_open(sk, sk->opt.events_path);
        if (erc < 0) {
            fprintf(stderr, "salvo-sink: cannot write --events %s: %s\n", sk->opt.events_path, strerror(-erc));
            goto out;
        }
    }
    if (sink_loop_open(sk, err, sizeof err) < 0) {
        fprintf(stderr, "salvo-sink: %s\n", err);
        goto out;
    }

    sk->listeners = sink_xmalloc(nspecs * sizeof *sk->listeners);
    for (size_t i = 0; i < nspecs; i++) {
        struct sink_listener *l = &sk->listeners[i];
        *l = (struct sink_listener){ .fd = -1, .id = (uint32_t)i };
        sk->nlisteners++;
        if (listener_open(l, &specs[i], err, sizeof err) < 0) {
            fprintf(stderr, "salvo-sink: %s\n", err);
            goto out;
        }
        fprintf(stderr, "salvo-sink: listening on %s\n", l->name);
    }
    /* Unwritable --stats or --dump is a usage error, found now rather than mid-test. */
    if (sink_stats_flush(sk) < 0)
        goto out;
    if (sk->opt.dump_dir && access(sk->opt.dump_dir, W_OK | X_OK) < 0) {
        fprintf(stderr, "salvo-sink: cannot write to --dump %s: %s\n", sk->opt.dump_dir,
                strerror(errno));
        goto out;
    }
    if (sk->opt.pid_file && write_pid_file(sk->opt.pid_file) < 0) {
        fprintf(stderr, "salvo-sink: cannot write %s: %s\n", sk->opt.pid_file, strerror(errno));
        goto out;
    }

    if (sink_loop_run(sk) == 0)
        status = 0;
    if (sk->opt.pid_file)
        unlink(sk->opt.pid_file);

out:
    sink_loop_close(sk);
    if (status == 0)
        sink_stats_flush(sk);          /* after the cut-off: final counts, active 0 */
    for (size_t i = 0; i < sk->nlisteners; i++)
        if (sk->listeners[i].fd >= 0)
            close(sk->listeners[i].fd);
    if (sk->sigfd >= 0)
        close(sk->sigfd);
    free(sk->listeners);
    sink_events_close_file(sk);
    sink_stats_free(&sk->stats);
    sink_faults_free(&sk->faults);
    sink_rules_free(&sk->rules);
    free(specs);
    return status;
}
