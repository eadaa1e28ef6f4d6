#!/usr/bin/python3
"""test_pmta_meanings.py - PowerMTA directives at work in delivery and intake (issue 18).

  nested_vmta_domain  a <domain> nested in each of two <virtual-mta>s, with different
                      max-smtp-out, max-msg-rate and max-msg-per-connection for one
                      domain: at the sink (which counts per client IP, the vmta's
                      smtp-source-host) each source IP keeps its own vmta's limits
  source_ip_limits    source-ip-max-smtp-out 1 and source-ip-max-msg-rate 30/m for one of
                      two source addresses of a pool, in the domain's own block: that
                      address keeps them at the sink, the other one the domain's
  named_source        `source {name}` in <smtp-user>: after AUTH (swaks) the session takes
                      that <source {name}>: its default-virtual-mta picks the source IP the
                      mail leaves from, and its max-message-size is the limit; without
                      AUTH the address's <source> (another vmta) applies
  domain_switches     <domain> directives with PowerMTA's meaning in delivery:
                      bounce-upon-no-mx (a domain with only an A record bounces 5.1.2, one
                      without the directive is delivered to its A), ignore-8bitmime (no
                      BODY=8BITMIME to Postfix's smtp-sink, which offers it; sent for the
                      other domain), max-errors-per-connection 2 (a session that got two
                      550s ends: at most 2 messages per session at the sink),
                      max-msg-per-connection 0 (unlimited: one session carries 110); each
                      also through --check-config --show
  run_as_root_no      `run-as-root no` with `run-as-user nobody`: salvod, started as root,
                      binds its listeners (one on port 587), then runs as nobody (every
                      uid in /proc/PID/status), and still accepts, spools, delivers and
                      logs; an unknown run-as-user stops it with a clear message
  smtp_hosts_auth     smtp-hosts (a dead [IP]:port first, then a name:port) with
                      auth-username/auth-password: mail goes to the smarthost, a second
                      salvod that requires AUTH (STARTTLS, AUTH PLAIN), which relays it to
                      the sink; a wrong password is deferred with the 535, and a domain
                      whose sessions cannot be encrypted never sends the password
  backoff_after_delivery  backoff-to-normal-after-delivery yes: a 421 matching mode=backoff
                      puts both queues in backoff; the retry's delivery returns that queue
                      to normal at once (GET /api/v1/queues/NAME), the other stays in backoff
  pool_sessions       two pools (one vmta each) to one domain with a 60 s idle timeout: a
                      message for pool b arrives while pool a's idle session is still open
                      (only a pool's own vmtas' sessions carry its backlog); before, b's
                      message waited for a's session to close
  disable_mx_rollup   two domains whose MX matches an <mx-rollup-list> pattern: one goes out
                      through the rollup queue, the one with disable-mx-rollup yes through
                      its own (the queue in its delivery record)
"""

import collections
import glob
import json
import os
import urllib.request
import random
import re
import subprocess
import time

import harness
from harness import Fail, Injected, find_records, log, make_body

SENDER = "owner@senders.test"


def _msgs(rng, prefix, rcpts_by_msg, size=400):
    return harness.make_msgs(rng, prefix, rcpts_by_msg, SENDER, size)


def _msg_events(sink):
    return [e for e in sink.events() if e["ev"] == "msg"]


def test_nested_vmta_domain(env):
    rng = random.Random(181)
    env.dns(mx={"nv.test": [(10, "mx.nv.test")]}, a={"mx.nv.test": "127.0.0.2"}, check=[("nv.test", "MX")])
    # replies 10 ms late: sessions overlap, so a cap of 1 is visible as a peak of 1
    sink = env.salvo_sink("sink", "127.0.0.2:25", dump=False, extra_args=["--reply-delay", "10"])
    extra = "\n".join([
        "<virtual-mta slow>", "  smtp-source-host 127.0.0.11 slow.itest",
        "  <domain nv.test>", "    max-smtp-out 1", "    max-msg-rate 30/m", "  </domain>",
        "</virtual-mta>",
        "<virtual-mta fast>", "  smtp-source-host 127.0.0.12 fast.itest",
        "  <domain nv.test>", "    max-msg-per-connection 2", "  </domain>",
        "</virtual-mta>",
        "<virtual-mta-pool both>", "  virtual-mta slow", "  virtual-mta fast", "</virtual-mta-pool>",
    ])
    d = env.salvod_daemon(
        sources={"127.0.0.1": {"always-allow-relaying": "yes", "default-virtual-mta": "both"}},
        domains={"nv.test": {"max-smtp-out": "10", "max-msg-per-connection": "100"}}, extra=extra)
    d.start()
    n = 60
    t0 = time.monotonic()
    harness.inject_all(_msgs(rng, "nv", [["u%d@nv.test" % i] for i in range(n)]), threads=2, per_conn=30)
    if not harness.wait_until(lambda: len(_msg_events(sink)) >= n, 40, what="all messages at the sink"):
        raise Fail("only %d of %d delivered" % (len(_msg_events(sink)), n))
    took = time.monotonic() - t0
    harness.wait_until(lambda: False, 0.5)   # the stats file is rewritten every 200 ms
    by_ip = collections.Counter(e["client"] for e in _msg_events(sink))
    clients = (sink.stats() or {}).get("clients", {})
    slow, fast = clients.get("127.0.0.11", {}), clients.get("127.0.0.12", {})
    log("in %.1f s: %r; slow peak %s max/conn %s; fast peak %s max/conn %s" % (
        took, dict(by_ip), slow.get("peak_active"), slow.get("max_msgs_per_conn"),
        fast.get("peak_active"), fast.get("max_msgs_per_conn")))
    # slow: max-msg-rate 30/m is one message per 2 s (plus the first at once)
    if by_ip["127.0.0.11"] > 2 + int(took / 2):
        raise Fail("vmta slow sent %d messages in %.1f s under its nested max-msg-rate 30/m"
                   % (by_ip["127.0.0.11"], took))
    if slow and slow.get("peak_active", 0) > 1:
        raise Fail("vmta slow had %d sessions at once under its nested max-smtp-out 1" % slow["peak_active"])
    if not fast or fast.get("max_msgs_per_conn", 0) > 2:
        raise Fail("vmta fast sent %s messages in one session under its nested max-msg-per-connection 2"
                   % fast.get("max_msgs_per_conn"))
    if by_ip["127.0.0.12"] < n - 2 - int(took / 2):
        raise Fail("vmta fast carried only %d messages" % by_ip["127.0.0.12"])


def test_source_ip_limits(env):
    rng = random.Random(188)
    env.dns(mx={"sl.test": [(10, "mx.sl.test")]}, a={"mx.sl.test": "127.0.0.2"}, check=[("sl.test", "MX")])
    sink = env.salvo_sink("sink", "127.0.0.2:25", dump=False, extra_args=["--reply-delay", "10"])
    extra = "\n".join([
        "<virtual-mta s1>", "  smtp-source-host 127.0.0.31 s1.itest", "</virtual-mta>",
        "<virtual-mta s2>", "  smtp-source-host 127.0.0.32 s2.itest", "</virtual-mta>",
        "<virtual-mta-pool both>", "  virtual-mta s1", "  virtual-mta s2", "</virtual-mta-pool>"])
    d = env.salvod_daemon(
        sources={"127.0.0.1": {"always-allow-relaying": "yes", "default-virtual-mta": "both"}},
        domains={"sl.test": {"max-smtp-out": "10", "source-ip-max-smtp-out": "127.0.0.31 1",
                             "source-ip-max-msg-rate": "127.0.0.31 30/m"}}, extra=extra)
    d.start()
    n = 60
    t0 = time.monotonic()
    harness.inject_all(_msgs(rng, "sl", [["u%d@sl.test" % i] for i in range(n)]), threads=2, per_conn=30)
    if not harness.wait_until(lambda: len(_msg_events(sink)) >= n, 40, what="all messages at the sink"):
        raise Fail("only %d of %d delivered" % (len(_msg_events(sink)), n))
    took = time.monotonic() - t0
    harness.wait_until(lambda: False, 0.5)
    by_ip = collections.Counter(e["client"] for e in _msg_events(sink))
    clients = (sink.stats() or {}).get("clients", {})
    log("in %.1f s: %r; .31 peak %s" % (took, dict(by_ip), clients.get("127.0.0.31", {}).get("peak_active")))
    if by_ip["127.0.0.31"] > 2 + int(took / 2):
        raise Fail("127.0.0.31 sent %d messages in %.1f s under source-ip-max-msg-rate 30/m" % (by_ip["127.0.0.31"], took))
    if clients.get("127.0.0.31", {}).get("peak_active", 0) > 1:
        raise Fail("127.0.0.31 had %d sessions at once under source-ip-max-smtp-out 1"
                   % clients["127.0.0.31"]["peak_active"])
    if by_ip["127.0.0.32"] < n - 2 - int(took / 2):
        raise Fail("127.0.0.32 carried only %d" % by_ip["127.0.0.32"])


def _swaks(args):
    p = subprocess.run(["swaks", "--server", "%s:%d" % harness.SALVOD_SMTP, "--from", SENDER,
                        "--timeout", "20"] + args, capture_output=True, timeout=60)
    return p.returncode, p.stdout.decode("utf-8", "replace")


def test_named_source(env):
    env.dns(mx={"ns.test": [(10, "mx.ns.test")]}, a={"mx.ns.test": "127.0.0.2"}, check=[("ns.test", "MX")])
    sink = env.salvo_sink("sink", "127.0.0.2:25", dump=False)
    extra = "\n".join([
        "<virtual-mta plain>", "  smtp-source-host 127.0.0.21 plain.itest", "</virtual-mta>",
        "<virtual-mta blast>", "  smtp-source-host 127.0.0.22 blast.itest", "</virtual-mta>",
        "<source {bulk}>", "  default-virtual-mta blast", "  max-message-size 20k", "</source>",
        "<source {lst}>", "  always-allow-relaying yes", "  default-virtual-mta blast", "</source>",
        "smtp-listener 127.0.0.1:2526 source={lst}",
        "<smtp-user alice>", "  password s3cret", "  source {bulk}", "</smtp-user>",
    ])
    d = env.salvod_daemon(sources={"127.0.0.1": {"always-allow-relaying": "yes", "default-virtual-mta": "plain",
                                                 "allow-unencrypted-plain-auth": "yes"}}, extra=extra)
    d.start()
    auth = ["--auth", "PLAIN", "--auth-user", "alice", "--auth-password", "s3cret"]
    rc, out = _swaks(["--to", "anon@ns.test"])
    if rc:
        raise Fail("swaks without AUTH: %d\n%s" % (rc, out[-1500:]))
    # the listener's source=: its <source {lst}> whoever connects
    p = subprocess.run(["swaks", "--server", "127.0.0.1:2526", "--from", SENDER, "--to", "lst@ns.test",
                        "--timeout", "20"], capture_output=True, timeout=60)
    if p.returncode:
        raise Fail("swaks to the source= listener: %d\n%s" % (p.returncode, p.stdout.decode()[-1500:]))
    rc, out = _swaks(["--to", "authed@ns.test"] + auth)
    if rc:
        raise Fail("swaks with AUTH: %d\n%s" % (rc, out[-1500:]))
    # the named source's max-message-size 20k (the listener's is 50 MiB)
    rc, out = _swaks(["--to", "big@ns.test", "--body", "x" * 30000] + auth)
    if "552" not in out:
        raise Fail("a 30 KB message after AUTH was not refused under the named source's 20k:\n%s" % out[-1500:])
    if not harness.wait_until(lambda: len(_msg_events(sink)) >= 3, 20, what="the three messages"):
        raise Fail("only %d messages arrived" % len(_msg_events(sink)))
    got = {e["rcpt_to"][0]: e["client"] for e in _msg_events(sink)}
    log("arrived from: %r" % got)
    if got.get("anon@ns.test") != "127.0.0.21":
        raise Fail("without AUTH the address's <source> (vmta plain, 127.0.0.21) applies: %r" % got)
    if got.get("lst@ns.test") != "127.0.0.22":
        raise Fail("on the listener with source={lst}, <source {lst}> (vmta blast) applies: %r" % got)
    if got.get("authed@ns.test") != "127.0.0.22":
        raise Fail("after AUTH as alice, <source {bulk}> (vmta blast, 127.0.0.22) applies: %r" % got)


def _show(conf, spec):
    p = subprocess.run([harness._find_binary("SALVOD", "--salvod", "engine/salvod"), "--check-config", "-c", conf, "--show", spec],
                       capture_output=True, timeout=30)
    if p.returncode:
        raise Fail("--show %s: exit %d: %s" % (spec, p.returncode, p.stderr.decode()))
    return dict(ln.split(" ", 1) for ln in p.stdout.decode().splitlines() if " " in ln)


def _outcomes(recs, rcpt):
    return [x for x in find_records(recs, recipient=rcpt) if x["type"] != "reception"]


def test_domain_switches(env):
    rng = random.Random(183)
    env.dns(mx={"e8.test": [(10, "mx.pf.test")], "n8.test": [(10, "mx.pf.test")],
                "errs.test": [(10, "mx.errs.test")], "unl.test": [(10, "mx.unl.test")]},
            a={"nomx.test": "127.0.0.2", "amx.test": "127.0.0.2", "mx.pf.test": "127.0.0.3",
               "mx.errs.test": "127.0.0.4", "mx.unl.test": "127.0.0.5"},
            check=[("e8.test", "MX"), ("nomx.test", "A")])
    sink = env.salvo_sink("sink", "127.0.0.2:25", dump=False)
    pf = env.postfix_sink("pf", "127.0.0.3:25")
    errs = env.salvo_sink("errs", "127.0.0.4:25", dump=False, reject=[r"^bad"])
    unl = env.salvo_sink("unl", "127.0.0.5:25", dump=False)
    d = env.salvod_daemon(domains={
        "nomx.test": {"bounce-upon-no-mx": "yes"},
        "e8.test": {"ignore-8bitmime": "yes"},
        "errs.test": {"max-errors-per-connection": "2", "max-smtp-out": "1"},
        "unl.test": {"max-msg-per-connection": "0", "max-smtp-out": "1", "connection-idle-timeout": "30s"}})
    shown = _show(d.config, "nomx.test")
    if shown.get("bounce-upon-no-mx") != "yes" or _show(d.config, "amx.test").get("bounce-upon-no-mx") != "no":
        raise Fail("--show bounce-upon-no-mx: %r" % shown.get("bounce-upon-no-mx"))
    if _show(d.config, "e8.test").get("ignore-8bitmime") != "yes":
        raise Fail("--show ignore-8bitmime")
    if _show(d.config, "errs.test").get("max-errors-per-connection") != "2":
        raise Fail("--show max-errors-per-connection")
    if _show(d.config, "unl.test").get("max-msg-per-connection") != "0":
        raise Fail("--show max-msg-per-connection")
    d.start()
    msgs = [Injected("u%d" % i, SENDER, ["u%d@unl.test" % i], make_body(rng, "u%d" % i, SENDER, ["u%d@unl.test" % i], 200))
            for i in range(110)]
    msgs += [Injected("m%d" % i, SENDER, [r], make_body(rng, "m%d" % i, SENDER, [r], 300))
            for i, r in enumerate(["x@nomx.test", "x@amx.test", "x@e8.test", "x@n8.test"])]
    msgs += [Injected("e%d" % i, SENDER, ["ok%d@errs.test" % i, "bad%d@errs.test" % i],
                      make_body(rng, "e%d" % i, SENDER, ["ok%d@errs.test" % i], 300)) for i in range(12)]
    harness.inject(msgs, threads=1, per_conn=20)
    recs = harness.wait_for_records(
        env, lambda r: _outcomes(r, "x@nomx.test") and
        find_records(r, type="delivery", recipient="x@amx.test") and
        len(find_records(r, type="delivery", recipient="x@e8.test")) + len(find_records(r, type="delivery", recipient="x@n8.test")) == 2 and
        len([x for x in r if x.get("queue") == "errs.test" and x["type"] == "delivery"]) == 12 and
        len([x for x in r if x.get("queue") == "unl.test" and x["type"] == "delivery"]) == 110, 30,
        what="every outcome")
    nomx = _outcomes(recs, "x@nomx.test")
    if nomx[0]["type"] != "bounce" or (nomx[0].get("response") or {}).get("enhanced") != "5.1.2":
        raise Fail("bounce-upon-no-mx: x@nomx.test got %r" % nomx[0])
    # 8BITMIME: Postfix's smtp-sink writes the MAIL FROM arguments into each dump file
    harness.wait_until(lambda: False, 0.5)
    args = {}
    for path in glob.glob(os.path.join(pf.dump, "*")):
        text = open(path, "rb").read().decode("utf-8", "replace")
        mail = next((ln for ln in text.splitlines() if ln.startswith("X-Mail-Args:")), "")
        rcpt = next((ln for ln in text.splitlines() if ln.startswith("X-Rcpt-Args:")), "")
        args[rcpt] = mail
    e8 = [v for k, v in args.items() if "e8.test" in k]
    n8 = [v for k, v in args.items() if "n8.test" in k]
    if not e8 or not n8:
        raise Fail("smtp-sink dumps: %r" % args)
    if "8BITMIME" in e8[0].upper():
        raise Fail("ignore-8bitmime yes, and still: %s" % e8[0])
    if "BODY=8BITMIME" not in n8[0].upper():
        raise Fail("without ignore-8bitmime the 8-bit message went without BODY=8BITMIME: %s" % n8[0])
    per_conn = (errs.stats() or {}).get("clients", {}).get("127.0.0.1", {}).get("max_msgs_per_conn")
    log("no MX: %s; MAIL args e8 %r n8 %r; errs.test: at most %s messages per session" % (
        nomx[0]["response"], e8[0], n8[0], per_conn))
    if per_conn is None or per_conn > 2:
        raise Fail("max-errors-per-connection 2: a session carried %s messages, each with a 550" % per_conn)
    # max-msg-per-connection 0 is PowerMTA's unlimited: one session (max-smtp-out 1, kept
    # open 30 s when idle) carries past the default 100
    unl_conn = (unl.stats() or {}).get("clients", {}).get("127.0.0.1", {}).get("max_msgs_per_conn")
    log("unl.test: %s messages in one session" % unl_conn)
    if not unl_conn or unl_conn <= 100:
        raise Fail("max-msg-per-connection 0: at most %s messages per session" % unl_conn)


def test_run_as_root_no(env):
    import pwd
    rng = random.Random(184)
    nobody = pwd.getpwnam("nobody")
    env.dns(mx={"ra.test": [(10, "mx.ra.test")]}, a={"mx.ra.test": "127.0.0.2"}, check=[("ra.test", "MX")])
    sink = env.salvo_sink("sink", "127.0.0.2:25", dump=False)
    d = env.salvod_daemon(extra="run-as-root no\nrun-as-user nobody\nsmtp-listener 127.0.0.1:587\n")
    d.start()
    with open("/proc/%d/status" % d.proc.pid) as f:
        uids = next(ln for ln in f if ln.startswith("Uid:")).split()[1:]
    if set(uids) != {str(nobody.pw_uid)}:
        raise Fail("run-as-root no: salvod's uids are %r, want nobody's %d" % (uids, nobody.pw_uid))
    if not harness.port_open(("127.0.0.1", 587)):
        raise Fail("the port-587 listener bound before the drop does not answer")
    msgs = [Injected("r%d" % i, SENDER, ["u%d@ra.test" % i], make_body(rng, "r%d" % i, SENDER, ["u%d@ra.test" % i], 300))
            for i in range(5)]
    harness.inject(msgs, threads=1)
    harness.wait_for_records(env, lambda r: len(find_records(r, type="delivery")) == 5, 20, what="5 deliveries")
    if len(_msg_events(sink)) != 5:
        raise Fail("%d messages at the sink" % len(_msg_events(sink)))
    d.stop()
    err = open(d.stderr_paths[-1]).read()
    if "running as nobody" not in err:
        raise Fail("no log line for the drop: %s" % err[-800:])
    # an unknown user: salvod refuses to go on as root
    cfg = open(d.config).read().replace("run-as-user nobody", "run-as-user no-such-user-18")
    bad = env.write("bad.conf", cfg)
    p = subprocess.run([harness._find_binary("SALVOD", "--salvod", "engine/salvod"), "-c", bad],
                       capture_output=True, timeout=30, cwd=env.dir)
    if p.returncode == 0 or b'no user "no-such-user-18"' not in p.stderr:
        raise Fail("unknown run-as-user: exit %d, %r" % (p.returncode, p.stderr[-500:]))
    log("uids %r after the drop; 5 delivered; unknown user: %s" % (uids, p.stderr.decode().strip().splitlines()[-1]))


def test_smtp_hosts_auth(env):
    rng = random.Random(185)
    cert, key = os.path.join(env.dir, "cert.pem"), os.path.join(env.dir, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=relay.test", "-keyout", key, "-out", cert], check=True, capture_output=True)
    env.dns(mx={"far.test": [(10, "mx.far.test")]}, a={"mx.far.test": "127.0.0.2", "relay.test": "127.0.0.5"},
            check=[("far.test", "MX"), ("relay.test", "A")])
    sink = env.salvo_sink("sink", "127.0.0.2:25", dump=False)
    # the smarthost: another salvod that relays only for authenticated clients
    spool2 = os.path.join(env.dir, "relay-spool")
    relay_conf = env.write("relay.conf", "\n".join([
        "host-name relay.test", "spool-dir %s" % spool2, "smtp-listener 127.0.0.5:2525",
        "http-listener 127.0.0.5:18026", "dns-server %s:%d" % harness.DNS_ADDR, "worker-threads 1",
        "tls-certificate %s" % cert, "tls-private-key %s" % key,
        "<source 0/0>", "  require-auth yes", "</source>",
        "<smtp-user alice>", "  password s3cret", "</smtp-user>",
        "<domain *>", "  retry-after 2s", "</domain>", ""]))
    relay = env._spawn("relay-salvod", [env.salvod, "-c", relay_conf], os.path.join(env.dir, "relay.stderr"))
    env.on_fail_show.append(("relay salvod stderr", os.path.join(env.dir, "relay.stderr")))
    if not harness.wait_until(lambda: relay.poll() is None and (harness.read_banner(("127.0.0.5", 2525)) or b"")
                              .startswith(b"220"), 10, what="the relay salvod"):
        raise Fail("the relay salvod did not start")
    hosts = "[127.0.0.9]:2525, relay.test:2525"
    d = env.salvod_daemon(domains={
        "far.test": {"smtp-hosts": hosts, "auth-username": "alice", "auth-password": '"s3cret"'},
        "wrong.test": {"smtp-hosts": "relay.test:2525", "auth-username": "alice", "auth-password": "nope"},
        "clear.test": {"smtp-hosts": "relay.test:2525", "auth-username": "alice", "auth-password": "s3cret",
                       "use-starttls": "no"},
        # a smarthost that offers no AUTH at all (salvo-sink): deferred, never sent unauthenticated
        "noauth.test": {"smtp-hosts": "[127.0.0.2]:25", "auth-username": "alice", "auth-password": "s3cret",
                        "allow-unencrypted-plain-auth": "yes"}},
        default_domain={"retry-after": "30s"})
    shown = _show(d.config, "far.test")
    if shown.get("smtp-hosts") != hosts or shown.get("auth-password") != "(set)":
        raise Fail("--show far.test: smtp-hosts %r, auth-password %r" % (shown.get("smtp-hosts"),
                                                                        shown.get("auth-password")))
    d.start()
    msgs = [Injected("h%d" % i, SENDER, [r], make_body(rng, "h%d" % i, SENDER, [r], 300))
            for i, r in enumerate(["x@far.test", "y@wrong.test", "z@clear.test", "n@noauth.test"])]
    harness.inject(msgs, threads=1)
    recs = harness.wait_for_records(
        env, lambda r: find_records(r, type="delivery", recipient="x@far.test") and
        find_records(r, type="transient", recipient="y@wrong.test") and
        find_records(r, type="transient", recipient="z@clear.test") and
        find_records(r, type="transient", recipient="n@noauth.test"), 20, what="the four outcomes")
    dl = find_records(recs, type="delivery", recipient="x@far.test")[0]
    if dl.get("mx_ip") != "127.0.0.5" or not dl.get("tls"):
        raise Fail("x@far.test went to %s (tls %r), want the smarthost 127.0.0.5 over TLS" % (dl.get("mx_ip"), dl.get("tls")))
    if not harness.wait_until(lambda: "x@far.test" in sink.delivered(), 15, what="the relayed message"):
        raise Fail("the smarthost did not relay x@far.test to the sink")
    wrong = find_records(recs, type="transient", recipient="y@wrong.test")[0]
    if "AUTH refused: 535" not in (wrong.get("response") or {}).get("text", ""):
        raise Fail("a wrong auth-password: %r" % wrong.get("response"))
    clear = find_records(recs, type="transient", recipient="z@clear.test")[0]
    if "not encrypted" not in (clear.get("response") or {}).get("text", ""):
        raise Fail("no TLS, and: %r" % clear.get("response"))
    noauth = find_records(recs, type="transient", recipient="n@noauth.test")[0]
    if "offers no AUTH" not in (noauth.get("response") or {}).get("text", "") or "n@noauth.test" in sink.delivered():
        raise Fail("a smarthost without AUTH: %r; at the sink: %r" % (noauth.get("response"), sink.delivered()))
    relay_log = harness.read_acct(spool2)
    if find_records(relay_log, type="reception", recipient="z@clear.test"):
        raise Fail("the clear session still got its message to the smarthost")
    if find_records(recs, type="bounce", recipient="y@wrong.test"):
        raise Fail("a refused AUTH bounced the recipient")
    log("via %s (%s); wrong password: %s; clear: %s" % (dl["mx_ip"], dl.get("tls"), wrong["response"]["text"],
                                                      clear["response"]["text"]))


def _queue_mode(name):
    with urllib.request.urlopen("http://%s:%d/api/v1/queues/%s" % (harness.SALVOD_HTTP + (name,)), timeout=5) as r:
        return json.load(r).get("mode")


def test_backoff_after_delivery(env):
    rng = random.Random(186)
    env.dns(mx={"bn.test": [(10, "mx.b.test")], "bk.test": [(10, "mx.b.test")]}, a={"mx.b.test": "127.0.0.2"},
            check=[("bn.test", "MX")])
    sink = env.salvo_sink("sink", "127.0.0.2:25", dump=False, extra_args=[
        "--fault", r"at=rcpt,match=^x@b[nk]\.test$,first=2,reply=421 4.7.0 try again later"])
    extra = "<smtp-pattern-list bo>\n  reply /try again later/ mode=backoff\n</smtp-pattern-list>\n"
    d = env.salvod_daemon(default_domain={"smtp-pattern-list": "bo", "backoff-retry-after": "1s",
                                          "backoff-to-normal-after": "1h"},
                          domains={"bn.test": {"backoff-to-normal-after-delivery": "yes"}}, extra=extra)
    if _show(d.config, "bn.test").get("backoff-to-normal-after-delivery") != "yes":
        raise Fail("--show backoff-to-normal-after-delivery")
    d.start()
    harness.inject([Injected("b%d" % i, SENDER, [r], make_body(rng, "b%d" % i, SENDER, [r], 300))
                    for i, r in enumerate(["x@bn.test", "x@bk.test"])], threads=1)
    if not harness.wait_until(lambda: {"x@bn.test", "x@bk.test"} <= set(sink.delivered()), 20,
                              what="both delivered on retry"):
        raise Fail("not delivered: %r" % sink.delivered())
    harness.wait_until(lambda: False, 1.5)   # the API's snapshot is refreshed every second
    modes = {q: _queue_mode(q) for q in ("bn.test", "bk.test")}
    log("after the retries' deliveries: %r" % modes)
    if modes["bk.test"] != "backoff":
        raise Fail("the 421 did not put bk.test in backoff (mode %r): the test proves nothing" % modes["bk.test"])
    if modes["bn.test"] != "normal":
        raise Fail("backoff-to-normal-after-delivery yes: bn.test is still %r after a delivery" % modes["bn.test"])


def _queue(name):
    with urllib.request.urlopen("http://%s:%d/api/v1/queues/%s" % (harness.SALVOD_HTTP + (name,)), timeout=5) as r:
        return json.load(r)


def _reload():
    req = urllib.request.Request("http://%s:%d/api/v1/reload" % harness.SALVOD_HTTP, data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, json.load(r)


def test_zero_holds(env):
    """PowerMTA's 0: max-smtp-out 0 and max-msg-rate 0/h hold a queue's mail (no
    session at all) while a queue beside them delivers; backoff-max-msg-rate 0 holds a
    queue only once it is in backoff; type http-delivery (not Salvo's) holds it too; a
    reload that lifts the 0s and sets type smtp sends everything, once."""
    rng = random.Random(188)
    doms = ["h0.test", "hr.test", "ok.test", "bz.test", "ht.test"]
    env.dns(mx={d: [(10, "mx.z.test")] for d in doms}, a={"mx.z.test": "127.0.0.2"}, check=[("h0.test", "MX")])
    sink = env.salvo_sink("sink", "127.0.0.2:25", dump=False, extra_args=[
        "--fault", r"at=rcpt,match=^y@bz\.test$,first=1,reply=421 4.7.0 try again later"])
    extra = "<smtp-pattern-list bo>\n  reply /try again later/ mode=backoff\n</smtp-pattern-list>\n"
    d = env.salvod_daemon(default_domain={"smtp-pattern-list": "bo", "backoff-retry-after": "1s",
                                          "retry-after": "1s", "backoff-to-normal-after": "1h"},
                          domains={"h0.test": {"max-smtp-out": "0"}, "hr.test": {"max-msg-rate": "0/h"},
                                   "bz.test": {"backoff-max-msg-rate": "0"},
                                   "ht.test": {"type": "http-delivery"}}, extra=extra)
    if _show(d.config, "h0.test").get("max-smtp-out") != "0":
        raise Fail("--show h0.test: max-smtp-out is not 0")
    d.start()
    rcpts = ["x@h0.test", "x@hr.test", "x@ok.test", "y@bz.test", "x@ht.test"]
    harness.inject([Injected("z%d" % i, SENDER, [r], make_body(rng, "z%d" % i, SENDER, [r], 300))
                    for i, r in enumerate(rcpts)], threads=1)
    if not harness.wait_until(lambda: "x@ok.test" in sink.delivered(), 20, what="ok.test delivered"):
        raise Fail("the queue beside the held ones got nothing: %r" % sink.delivered())
    harness.wait_until(lambda: False, 4)     # retries every 1 s: time for a held queue to leak
    got = set(sink.delivered())
    if got & {"x@h0.test", "x@hr.test", "y@bz.test", "x@ht.test"}:
        raise Fail("a held queue delivered: %r" % sorted(got))
    log("held 4 s: delivered %r" % sorted(got))
    q = _queue("h0.test")
    if q.get("connection_limit") != 0 or q.get("connections"):
        raise Fail("GET /api/v1/queues/h0.test: %r, want connection_limit 0 and no connection" % q)
    if _queue("bz.test").get("mode") != "backoff":
        raise Fail("the 421 did not put bz.test in backoff: the backoff hold proves nothing")
    text = open(d.config).read()
    for pat, repl in ((r"^(\s*)max-smtp-out\s+0$", r"\1max-smtp-out 2"),
                      (r"^(\s*)max-msg-rate\s+0/h$", r"\1max-msg-rate unlimited"),
                      (r"^(\s*)backoff-max-msg-rate\s+0$", r"\1backoff-max-msg-rate unlimited"),
                      (r"^(\s*)type\s+http-delivery$", r"\1type smtp")):
        text, n = re.subn(pat, repl, text, flags=re.M)
        if n != 1:
            raise Fail("the config has %d lines matching %r to lift: %s" % (n, pat, text))
    with open(d.config, "w") as f:
        f.write(text)
    st, j = _reload()
    if st != 200:
        raise Fail("reload lifting the zeros: %s %r" % (st, j))
    if not harness.wait_until(lambda: set(rcpts) <= set(sink.delivered()), 20, what="all delivered after the reload"):
        raise Fail("after the reload lifted the zeros: delivered %r" % sorted(sink.delivered()))
    if any(n != 1 for n in sink.delivered().values()):
        raise Fail("delivered twice: %r" % sink.delivered())
    log("a reload lifted max-smtp-out 0, max-msg-rate 0/h, backoff-max-msg-rate 0 and type http-delivery: "
        "all 5 delivered once")


def test_disable_mx_rollup(env):
    rng = random.Random(187)
    env.dns(mx={"r1.test": [(10, "mx-a.roll.test")], "r2.test": [(10, "mx-a.roll.test")]},
            a={"mx-a.roll.test": "127.0.0.2"}, check=[("r1.test", "MX")])
    env.salvo_sink("sink", "127.0.0.2:25", dump=False)
    extra = "<mx-rollup-list>\n  mx *.roll.test roll.q\n</mx-rollup-list>\n"
    d = env.salvod_daemon(domains={"r2.test": {"disable-mx-rollup": "yes"}}, extra=extra)
    if _show(d.config, "r2.test").get("disable-mx-rollup") != "yes":
        raise Fail("--show disable-mx-rollup")
    d.start()
    harness.inject([Injected("r%d" % i, SENDER, [r], make_body(rng, "r%d" % i, SENDER, [r], 300))
                    for i, r in enumerate(["a@r1.test", "a@r2.test"])], threads=1)
    recs = harness.wait_for_records(env, lambda r: find_records(r, type="delivery", recipient="a@r1.test") and
                                    find_records(r, type="delivery", recipient="a@r2.test"), 20,
                                    what="both deliveries")
    queues = {r: find_records(recs, type="delivery", recipient=r)[0].get("queue") for r in ("a@r1.test", "a@r2.test")}
    log("delivered through queues %r" % queues)
    if queues != {"a@r1.test": "roll.q", "a@r2.test": "r2.test"}:
        raise Fail("want r1.test through roll.q and r2.test (disable-mx-rollup yes) through its own: %r" % queues)


def test_pool_sessions(env):
    rng = random.Random(189)
    env.dns(mx={"pp.test": [(10, "mx.pp.test")]}, a={"mx.pp.test": "127.0.0.2"}, check=[("pp.test", "MX")])
    sink = env.salvo_sink("sink", "127.0.0.2:25", dump=False)
    extra = "\n".join([
        "<virtual-mta va>", "  smtp-source-host 127.0.0.41 va.itest", "</virtual-mta>",
        "<virtual-mta vb>", "  smtp-source-host 127.0.0.42 vb.itest", "</virtual-mta>",
        "<virtual-mta-pool pa>", "  virtual-mta va", "</virtual-mta-pool>",
        "<virtual-mta-pool pb>", "  virtual-mta vb", "</virtual-mta-pool>"])
    d = env.salvod_daemon(
        sources={"127.0.0.1": {"always-allow-relaying": "yes", "process-x-virtual-mta": "yes",
                               "default-virtual-mta": "pa"}},
        domains={"pp.test": {"connection-idle-timeout": "60s", "max-msg-per-connection": "100"}}, extra=extra)
    d.start()

    def send(mid, pool):
        body = make_body(rng, mid, SENDER, ["%s@pp.test" % mid], size=300)
        body = ("X-Virtual-MTA: %s\r\n" % pool).encode() + body
        harness.inject_all([Injected(mid, SENDER, ["%s@pp.test" % mid], body)], threads=1, per_conn=1)

    send("first", "pa")
    if not harness.wait_until(lambda: len(_msg_events(sink)) >= 1, 15, what="pool a's message"):
        raise Fail("pool a's message not delivered")
    t0 = time.monotonic()
    send("second", "pb")
    ok = harness.wait_until(lambda: len(_msg_events(sink)) >= 2, 20, what="pool b's message")
    took = time.monotonic() - t0
    clients = [e["client"] for e in _msg_events(sink)]
    log("pool b's message after %.1f s; clients %r" % (took, clients))
    if not ok:
        raise Fail("pool b's message waited more than 20 s while pool a's idle session stayed open")
    if clients != ["127.0.0.41", "127.0.0.42"]:
        raise Fail("messages left from %r, not va then vb" % clients)


if __name__ == "__main__":
    harness.main([test_nested_vmta_domain, test_source_ip_limits, test_named_source, test_domain_switches, test_run_as_root_no, test_smtp_hosts_auth, test_backoff_after_delivery, test_zero_holds,
                  test_disable_mx_rollup, test_pool_sessions], needs_postfix=True)
