#!/usr/bin/python3
"""test_source_directives.py - PowerMTA's <source> intake settings and <pattern-list>
at work (issue 18 item 3); smtplib clients, salvo-sink keeping each message.

  headers        127.0.0.1 (add-message-id-header, hide-message-source,
                 remove-received-headers, retain-x-job, jobid-header X-Campaign): a
                 message without Message-ID gets exactly one, one with it keeps its own;
                 the client's Received: lines (one folded) are gone, salvod's own names
                 neither the client's address nor its HELO; X-Campaign stays and is the
                 reception record's campaign, X-Job is an ordinary header there.
                 127.0.0.5 (add-received-header no, retain-x-virtual-mta yes): no
                 Received: from salvod, the client's own kept, X-Virtual-MTA chooses the
                 vmta (its source IP at the sink) and stays in the message.
  pattern_list   <pattern-list> mail-from / rcpt-to / header rules: each recipient
                 leaves from the vmta of the first matching rule (the sink sees the
                 vmta's source IP); two recipients of one message go two ways; an
                 X-Virtual-MTA the source honours wins over the list. A rule naming no
                 vmta is a --check-config error at its line.
  verp           with bounce-domain set, a source with verp-default no sends with the
                 client's own return path; MAIL ... XVERP asks for VERP anyway; another
                 source keeps Salvo's VERP (b-ID-IDX-HASH@bounce-domain).
  envid          process-x-envid yes: X-Envid: is taken out of the message and is its
                 ENVID: the JSON log's reception and delivery records carry "envid", a
                 bounce's DSN has Original-Envelope-Id; from a source without the
                 setting the header stays and no record has an envid.
  auth_rate      smtp-max-auth-failure-rate 2/m: the third failed AUTH from one address
                 within the minute gets 454 4.7.0, and so does the right password then
                 (the built-in throttle would allow 5).
  max_rcpt       max-rcpt-per-message 2 in 127.0.0.1's source: the third RCPT of one
                 transaction gets 452 4.5.3, the client sends it in a second transaction
                 and all three arrive; 127.0.0.5 (no setting) gets 250 for the third;
                 after AUTH as a user with `source {bulk}` (max-rcpt-per-message 1) the
                 second RCPT gets 452.
  timeouts       smtp-command-timeout 1s, smtp-data-timeout 3s in 127.0.0.1's source: an
                 idle session after EHLO gets 421 within a few seconds; one silent inside
                 DATA outlives the command timeout and gets 421 by the data timeout;
                 127.0.0.5 (server-wide 5m) still answers NOOP after both.
  remove_header  remove-header X-Mailer, x-originating-ip (two lines, one folded) in
                 127.0.0.1's source: both fields are gone, the others and the body stay;
                 127.0.0.5 (no setting) delivers them.
"""

import re
import smtplib
import socket
import time
import subprocess

import harness
from harness import Fail, find_records, log, wait_until

SENDER = "owner@senders.test"
VMTAS = "\n".join([
    "<virtual-mta v1>", "  smtp-source-host 127.0.0.21 v1.itest", "</virtual-mta>",
    "<virtual-mta v2>", "  smtp-source-host 127.0.0.22 v2.itest", "</virtual-mta>",
    "<virtual-mta v3>", "  smtp-source-host 127.0.0.23 v3.itest", "</virtual-mta>",
    "<virtual-mta-pool p3>", "  virtual-mta v3", "</virtual-mta-pool>",
])


def _send(sender, rcpts, data, source=None, helo="client.inside.test", mail_options=()):
    with smtplib.SMTP(*harness.SALVOD_SMTP, local_hostname=helo, timeout=30,
                      source_address=(source, 0) if source else None) as s:
        s.sendmail(sender, rcpts, data.replace("\n", "\r\n").encode(), mail_options=list(mail_options))


def _by_rcpt(sink, n):
    if not wait_until(lambda: sum(len(a.rcpt_to) for a in sink.arrivals()) >= n, 30, what="%d recipients" % n):
        raise Fail("only %r arrived" % [a.rcpt_to for a in sink.arrivals()])
    out = {}
    for a in sink.arrivals():
        for r in a.rcpt_to:
            out[r] = a
    return out


def _headers(data):
    """[(name lower-case, unfolded value)] of the header block."""
    head = data.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    fields = []
    for ln in head.split("\r\n"):
        if ln[:1] in (" ", "\t") and fields:
            fields[-1][1] += " " + ln.strip()
        elif ":" in ln:
            k, v = ln.split(":", 1)
            fields.append([k.lower(), v.strip()])
    return fields


def _values(data, name):
    return [v for k, v in _headers(data) if k == name.lower()]


def test_headers(env):
    env.dns(mx={"hd.test": [(10, "mx.hd.test")]}, a={"mx.hd.test": "127.0.0.2"}, check=[("hd.test", "MX")])
    sink = env.salvo_sink("sink", "127.0.0.2:25")
    d = env.salvod_daemon(sources={
        "127.0.0.1": {"always-allow-relaying": "yes", "process-x-job": "yes", "add-message-id-header": "yes",
                      "hide-message-source": "yes", "remove-received-headers": "yes", "retain-x-job": "yes",
                      "jobid-header": "X-Campaign"},
        "127.0.0.5": {"always-allow-relaying": "yes", "process-x-virtual-mta": "yes",
                      "add-received-header": "no", "retain-x-virtual-mta": "yes"}},
        default_domain={"max-msg-per-connection": "1"}, extra=VMTAS)
    d.start()
    inner = ("Received: from app1.inside.test (app1 [10.1.2.3])\n\tby relay.inside.test; Mon, 7 Dec 2026\n"
             "Received: from app0\n  (folded [10.9.9.9])\n  by app1; Mon, 7 Dec 2026\n")
    _send(SENDER, ["noid@hd.test"], inner + "X-Campaign: spring-sale\nX-Job: not-the-job\n"
          "Subject: no id\n\nbody one\n")
    _send(SENDER, ["hasid@hd.test"], inner + "Message-ID: <mine@app.test>\nSubject: has id\n\nbody two\n")
    _send(SENDER, ["v2@hd.test"], inner + "X-Virtual-MTA: v2\nSubject: from .5\n\nbody three\n",
          source="127.0.0.5")
    got = _by_rcpt(sink, 3)

    noid, hasid, v2 = got["noid@hd.test"].data, got["hasid@hd.test"].data, got["v2@hd.test"].data
    log("noid header block:\n" + noid.split(b"\r\n\r\n")[0].decode())
    ids = _values(noid, "Message-ID")
    if len(ids) != 1 or not ids[0].endswith("@salvo.itest>"):
        raise Fail("add-message-id-header yes: want one Message-ID <...@salvo.itest>, got %r" % ids)
    if _values(hasid, "Message-ID") != ["<mine@app.test>"]:
        raise Fail("a message with its own Message-ID must keep just it: %r" % _values(hasid, "Message-ID"))
    for data in (noid, hasid):
        rec = _values(data, "Received")
        if len(rec) != 1:
            raise Fail("remove-received-headers yes: want only salvod's Received:, got %r" % rec)
        if "127.0.0.1" in rec[0] or "client.inside.test" in rec[0] or not rec[0].startswith("by salvo.itest"):
            raise Fail("hide-message-source yes: salvod's Received: names the client: %r" % rec[0])
        if b"10.1.2.3" in data or b"10.9.9.9" in data:
            raise Fail("an inner hop survived remove-received-headers")
    if _values(noid, "X-Campaign") != ["spring-sale"] or _values(noid, "X-Job") != ["not-the-job"]:
        raise Fail("retain-x-job with jobid-header X-Campaign: X-Campaign %r, X-Job %r" % (
            _values(noid, "X-Campaign"), _values(noid, "X-Job")))
    recs = find_records(d.acct(), type="reception", recipient="noid@hd.test")
    if not recs or recs[0].get("campaign") != "spring-sale":
        raise Fail("jobid-header X-Campaign: the reception's campaign is %r" % [r.get("campaign") for r in recs])

    rec = _values(v2, "Received")
    if len(rec) != 2 or not all("inside.test" in r or "app1" in r for r in rec):
        raise Fail("add-received-header no: want only the client's two Received:, got %r" % rec)
    if _values(v2, "X-Virtual-MTA") != ["v2"]:
        raise Fail("retain-x-virtual-mta yes: X-Virtual-MTA %r" % _values(v2, "X-Virtual-MTA"))
    if got["v2@hd.test"].client_ip != "127.0.0.22":
        raise Fail("X-Virtual-MTA v2 (127.0.0.22) delivered from %s" % got["v2@hd.test"].client_ip)
    if _values(v2, "Message-ID"):
        raise Fail("127.0.0.5 does not add a Message-ID: %r" % _values(v2, "Message-ID"))


def _check_config(env, text):
    path = env.write("check.conf", text)
    exe = harness._find_binary("SALVOD", "--salvod", "engine/salvod")
    p = subprocess.run([exe, "--check-config", "-c", path], capture_output=True, timeout=30)
    return p.returncode, (p.stdout + p.stderr).decode()


def test_pattern_list(env):
    env.dns(mx={"pl.test": [(10, "mx.pl.test")]}, a={"mx.pl.test": "127.0.0.2"}, check=[("pl.test", "MX")])
    sink = env.salvo_sink("sink", "127.0.0.2:25")
    lists = "\n".join([
        "<pattern-list route>",
        r"  mail-from /@bulk\.test$/ virtual-mta=v1",
        r"  rcpt-to /(?i)^vip\d+@/ virtual-mta=v2",
        r"  header Subject /^\[news\]/ virtual-mta=p3",
        "</pattern-list>",
    ])
    d = env.salvod_daemon(sources={"127.0.0.1": {"always-allow-relaying": "yes", "process-x-virtual-mta": "yes",
                                                 "pattern-list": "route"}},
                          default_domain={"max-msg-per-connection": "1"}, extra=VMTAS + "\n" + lists)
    # a rule naming no vmta: an error at its line (the old code only warned)
    bad = open(d.config).read().replace("virtual-mta=p3", "virtual-mta=nosuch")
    rc, out = _check_config(env, bad)
    line = bad.splitlines().index(r"  header Subject /^\[news\]/ virtual-mta=nosuch") + 1
    if rc != 2 or ("check.conf:%d:" % line) not in out or "nosuch" not in out:
        raise Fail("virtual-mta=nosuch: want exit 2 and check.conf:%d:, got %d:\n%s" % (line, rc, out))
    d.start()
    _send("x@bulk.test", ["a@pl.test"], "Subject: [news] mail-from first\n\nb\n")
    _send(SENDER, ["VIP7@pl.test", "plain@pl.test"], "Subject: two ways\n\nb\n")
    _send(SENDER, ["news@pl.test"], "Subject:\n [news] folded\n\nb\n")
    _send(SENDER, ["xv@pl.test"], "X-Virtual-MTA: v1\nSubject: [news] header wins\n\nb\n")
    got = {r: a.client_ip for r, a in _by_rcpt(sink, 5).items()}
    log("delivered from: %r" % got)
    want = {"a@pl.test": "127.0.0.21", "VIP7@pl.test": "127.0.0.22", "news@pl.test": "127.0.0.23",
            "xv@pl.test": "127.0.0.21"}
    for r, ip in want.items():
        if got.get(r) != ip:
            raise Fail("%s left from %s, want %s: %r" % (r, got.get(r), ip, got))
    if got.get("plain@pl.test") in ("127.0.0.21", "127.0.0.22", "127.0.0.23"):
        raise Fail("plain@pl.test matched no rule but left from a list vmta: %r" % got)
    recs = find_records(d.acct(), type="reception", recipient="VIP7@pl.test")
    log("reception of VIP7: %r" % recs)


def test_verp(env):
    env.dns(mx={"vp.test": [(10, "mx.vp.test")]}, a={"mx.vp.test": "127.0.0.2"}, check=[("vp.test", "MX")])
    sink = env.salvo_sink("sink", "127.0.0.2:25")
    d = env.salvod_daemon(sources={"127.0.0.1": {"always-allow-relaying": "yes", "verp-default": "no"},
                                   "127.0.0.5": {"always-allow-relaying": "yes"}},
                          extra="bounce-domain bounces.itest\n")
    d.start()
    _send(SENDER, ["plain@vp.test"], "Subject: v\n\nb\n")
    _send(SENDER, ["asked@vp.test"], "Subject: v\n\nb\n", mail_options=["XVERP"])
    _send(SENDER, ["other@vp.test"], "Subject: v\n\nb\n", source="127.0.0.5")
    got = {r: a.mail_from for r, a in _by_rcpt(sink, 3).items()}
    log("return paths: %r" % got)
    if got["plain@vp.test"] != SENDER:
        raise Fail("verp-default no: the return path is %r, not the client's %s" % (got["plain@vp.test"], SENDER))
    for r in ("asked@vp.test", "other@vp.test"):
        if not re.match(r"^b-[0-9a-f]{16}-0-[0-9a-f]{12}@bounces\.itest$", got[r]):
            raise Fail("%s: want a VERP return path, got %r" % (r, got[r]))


def test_envid(env):
    env.dns(mx={"ev.test": [(10, "mx.ev.test")], "senders.test": [(10, "mx.ev.test")]},
            a={"mx.ev.test": "127.0.0.2"}, check=[("ev.test", "MX")])
    sink = env.salvo_sink("sink", "127.0.0.2:25", reject=[r"^bad@"])
    d = env.salvod_daemon(sources={"127.0.0.1": {"always-allow-relaying": "yes", "process-x-envid": "yes"},
                                   "127.0.0.5": {"always-allow-relaying": "yes"}})
    d.start()
    _send(SENDER, ["good@ev.test", "bad@ev.test"], "X-Envid: camp7-msg42\nSubject: e\n\nb\n")
    _send(SENDER, ["plain@ev.test"], "X-Envid: not-taken\nSubject: e\n\nb\n", source="127.0.0.5")
    got = _by_rcpt(sink, 3)   # good, plain and the DSN to the sender
    if _values(got["good@ev.test"].data, "X-Envid"):
        raise Fail("process-x-envid yes: X-Envid reached the recipient")
    if _values(got["plain@ev.test"].data, "X-Envid") != ["not-taken"]:
        raise Fail("without process-x-envid the header is the message's own: %r" %
                   _values(got["plain@ev.test"].data, "X-Envid"))
    dsn = got[SENDER].data.decode("utf-8", "replace")
    if "Original-Envelope-Id: camp7-msg42\r\n" not in dsn:
        raise Fail("the DSN has no Original-Envelope-Id: camp7-msg42:\n%s" % dsn[:1500])
    recs = d.acct()
    for typ, rcpt in (("reception", "good@ev.test"), ("delivery", "good@ev.test"), ("bounce", "bad@ev.test")):
        r = find_records(recs, type=typ, recipient=rcpt)
        if not r or r[0].get("envid") != "camp7-msg42":
            raise Fail("%s record of %s: envid %r" % (typ, rcpt, [x.get("envid") for x in r]))
    if any(x.get("envid") for x in find_records(recs, recipient="plain@ev.test")):
        raise Fail("plain@ev.test's records have an envid")


def _auth(password):
    with smtplib.SMTP(*harness.SALVOD_SMTP, timeout=30) as s:
        s.ehlo()
        s.user, s.password = "alice", password
        try:
            s.auth("PLAIN", s.auth_plain)   # one mechanism: 454 closes the session
            return 235
        except smtplib.SMTPAuthenticationError as e:
            return e.smtp_code
        except smtplib.SMTPResponseException as e:
            return e.smtp_code


def test_auth_rate(env):
    env.dns(mx={"ar.test": [(10, "mx.ar.test")]}, a={"mx.ar.test": "127.0.0.2"}, check=[("ar.test", "MX")])
    d = env.salvod_daemon(sources={"127.0.0.1": {"require-auth": "yes", "always-allow-relaying": "yes",
                                                 "allow-unencrypted-plain-auth": "yes",
                                                 "smtp-max-auth-failure-rate": "2/m"}},
                          extra="<smtp-user alice>\n  password s3cret\n</smtp-user>\n")
    d.start()
    if _auth("s3cret") != 235:
        raise Fail("the right password was refused before any failure")
    codes = [_auth("wrong") for _ in range(3)] + [_auth("s3cret")]
    log("AUTH replies: %r" % codes)
    if codes != [535, 535, 454, 454]:
        raise Fail("smtp-max-auth-failure-rate 2/m: want 535 535 454 454, got %r" % codes)


def test_max_rcpt(env):
    env.dns(mx={"mr.test": [(10, "mx.mr.test")]}, a={"mx.mr.test": "127.0.0.2"}, check=[("mr.test", "MX")])
    sink = env.salvo_sink("sink", "127.0.0.2:25")
    d = env.salvod_daemon(sources={"127.0.0.1": {"always-allow-relaying": "yes", "max-rcpt-per-message": "2"},
                                   "127.0.0.5": {"always-allow-relaying": "yes", "allow-unencrypted-plain-auth": "yes"}},
                          extra="<source {bulk}>\n  max-rcpt-per-message 1\n</source>\n"
                                "<smtp-user alice>\n  password s3cret\n  source {bulk}\n</smtp-user>\n")
    d.start()
    msg = b"Subject: many\r\n\r\nbody\r\n"
    with smtplib.SMTP(*harness.SALVOD_SMTP, timeout=30) as s:
        s.ehlo()
        s.mail(SENDER)
        codes = [s.rcpt("r%d@mr.test" % i) for i in range(3)]
        log("RCPT replies at 127.0.0.1: %r" % codes)
        if [c for c, _ in codes] != [250, 250, 452] or b"4.5.3" not in codes[2][1]:
            raise Fail("max-rcpt-per-message 2: want 250 250 452 4.5.3, got %r" % codes)
        s.data(msg)
        s.sendmail(SENDER, ["r2@mr.test"], msg)
    with smtplib.SMTP(*harness.SALVOD_SMTP, timeout=30, source_address=("127.0.0.5", 0)) as s:
        s.ehlo()
        s.mail(SENDER)
        codes = [s.rcpt("o%d@mr.test" % i)[0] for i in range(3)]
        if codes != [250, 250, 250]:
            raise Fail("a source without max-rcpt-per-message: want 250 x3, got %r" % codes)
        s.rset()
    with smtplib.SMTP(*harness.SALVOD_SMTP, timeout=30, source_address=("127.0.0.5", 0)) as s:
        s.login("alice", "s3cret")
        s.mail(SENDER)
        codes = [s.rcpt("a%d@mr.test" % i)[0] for i in range(2)]
        if codes != [250, 452]:
            raise Fail("after AUTH into <source {bulk}> (max-rcpt-per-message 1): want 250 452, got %r" % codes)
        s.rset()
    got = _by_rcpt(sink, 3)
    if sorted(got) != ["r0@mr.test", "r1@mr.test", "r2@mr.test"]:
        raise Fail("want r0..r2 delivered, got %r" % sorted(got))


def _raw(source=None):
    c = socket.create_connection(harness.SALVOD_SMTP, timeout=10, source_address=(source, 0) if source else None)
    _reply(c)
    return c


def _reply(c, timeout=10):
    """The next whole reply ("" when the server closed first)."""
    c.settimeout(timeout)
    buf = b""
    while not re.search(rb"(^|\r\n)\d{3} [^\r\n]*\r\n$", buf):
        try:
            got = c.recv(4096)
        except socket.timeout:
            break
        if not got:
            break
        buf += got
    return buf.decode("utf-8", "replace")


def _cmd(c, line, want):
    c.sendall(line.encode() + b"\r\n")
    r = _reply(c)
    if not r.startswith(want):
        raise Fail("%s: want %s, got %r" % (line, want, r))


def test_timeouts(env):
    env.dns(mx={"to.test": [(10, "mx.to.test")]}, a={"mx.to.test": "127.0.0.2"}, check=[("to.test", "MX")])
    d = env.salvod_daemon(sources={
        "127.0.0.1": {"always-allow-relaying": "yes", "smtp-command-timeout": "1s", "smtp-data-timeout": "3s"},
        "127.0.0.5": {"always-allow-relaying": "yes"}})
    d.start()
    idle, data, other = _raw(), _raw(), _raw("127.0.0.5")
    for c in (idle, data, other):
        _cmd(c, "EHLO client.test", "250")
    t_idle = time.monotonic()
    for line, want in (("MAIL FROM:<%s>" % SENDER, "250"), ("RCPT TO:<a@to.test>", "250"), ("DATA", "354")):
        _cmd(data, line, want)
    data.sendall(b"Subject: slow\r\n")
    t_data = time.monotonic()
    r = _reply(idle, 8)
    took = time.monotonic() - t_idle
    log("idle after EHLO: %r after %.1fs" % (r, took))
    if not r.startswith("421") or took > 6:
        raise Fail("smtp-command-timeout 1s: want 421 within 6s, got %r after %.1fs" % (r, took))
    r = _reply(data, 10)
    took = time.monotonic() - t_data
    log("silent in DATA: %r after %.1fs" % (r, took))
    if not r.startswith("421") or took < 2 or took > 8:
        raise Fail("smtp-data-timeout 3s: want 421 after 2-8s (not the 1s command timeout), got %r after %.1fs"
                   % (r, took))
    _cmd(other, "NOOP", "250")
    for c in (idle, data, other):
        c.close()


def test_remove_header(env):
    env.dns(mx={"rh.test": [(10, "mx.rh.test")]}, a={"mx.rh.test": "127.0.0.2"}, check=[("rh.test", "MX")])
    sink = env.salvo_sink("sink", "127.0.0.2:25")
    d = env.salvod_daemon(sources={
        "127.0.0.1": {"always-allow-relaying": "yes", "remove-header": "X-Mailer, x-originating-ip"},
        "127.0.0.5": {"always-allow-relaying": "yes"}})
    d.start()
    msg = ("X-Mailer: Bulk 1.0\nX-Originating-IP: [10.1.2.3]\nX-Originating-IP: [10.4.5.6]\n  folded\n"
           "Subject: keep me\nX-Mailer-Keep: not named\n\nX-Mailer: in the body stays\n")
    _send(SENDER, ["cut@rh.test"], msg)
    _send(SENDER, ["all@rh.test"], msg, source="127.0.0.5")
    got = _by_rcpt(sink, 2)
    cut, full = got["cut@rh.test"].data, got["all@rh.test"].data
    log("cut header block:\n" + cut.split(b"\r\n\r\n")[0].decode())
    if _values(cut, "X-Mailer") or _values(cut, "X-Originating-IP") or b"folded" in cut or b"10.4.5.6" in cut:
        raise Fail("remove-header X-Mailer, x-originating-ip: still there in %r" % cut)
    if _values(cut, "Subject") != ["keep me"] or _values(cut, "X-Mailer-Keep") != ["not named"]:
        raise Fail("remove-header took other fields: %r" % _headers(cut))
    if b"X-Mailer: in the body stays" not in cut:
        raise Fail("remove-header touched the body: %r" % cut)
    if _values(full, "X-Mailer") != ["Bulk 1.0"] or len(_values(full, "X-Originating-IP")) != 2:
        raise Fail("a source without remove-header lost fields: %r" % _headers(full))


if __name__ == "__main__":
    harness.main([test_headers, test_pattern_list, test_verp, test_envid, test_auth_rate, test_max_rcpt,
                  test_timeouts, test_remove_header])
