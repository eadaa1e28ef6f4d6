#!/usr/bin/python3
"""test_address_lists.py - PowerMTA's <address-list> and `suppression-lists` in <source>.

suppression_lists: a relaying source with `suppression-lists stop` refuses at RCPT
(550 5.7.1, naming the list) each recipient that <address-list stop> lists - by local
part, by full address, by domain, by /REGEX/ and from its address-file (a relative name,
taken from the configuration's directory) - and accepts
the others; a mixed transaction queues only the unlisted recipient.

relay_domain: `relay-domain inbound.test` and `relay-domain [*.]wild.test` take mail for
exactly those domains (and wild.test's subdomains) from a client no <source> lets relay;
it is delivered (to salvo-sink, the MX); any other domain, a lookalike
(evilwild.test), a subdomain of the exact name and an address literal stay refused.

processors: the <address-list> of a <feedback-loop-processor> (`address fbl@fbl.isp.test`)
and of a <bounce-processor> (`domain dsn.test`) take the bounce domain's path: from any
client, an ARF complaint to fbl@fbl.isp.test quoting Salvo's mail logs a `feedback`
record and suppresses the recipient, a DSN to x@dsn.test logs a `bounce`; neither is
delivered onward; an unlisted address at the same domain stays refused.
"""

import json
import smtplib
import urllib.error
import urllib.request

import harness
from harness import Fail
from test_suppression import ARF, DSN


def _rcpt(source, rcpt):
    s = smtplib.SMTP(harness.SALVOD_SMTP[0], harness.SALVOD_SMTP[1], local_hostname="lists.client",
                     timeout=10, source_address=(source, 0))
    try:
        s.ehlo()
        code, resp = s.mail("sender@example.org")
        if code != 250:
            return code, "MAIL: " + resp.decode("utf-8", "replace")
        code, resp = s.rcpt(rcpt)
        return code, resp.decode("utf-8", "replace")
    finally:
        try:
            s.quit()
        except (smtplib.SMTPException, OSError):
            s.close()


def test_suppression_lists(env):
    env.dns(mx={"dest.test": [(10, "mx.dest.test")]}, a={"mx.dest.test": "127.0.0.9"})
    # a relative address-file is taken from the configuration's directory (salvod's own is elsewhere)
    env.write("stop.txt", "# the file's entries\nfromfile@dest.test\n/^rx\\d+@/\n")
    extra = ("<address-list stop>\n  address postmaster\n  address Full@Dest.Test\n"
             "  address /^news-\\d+@/\n  domain blocked.test\n  address-file stop.txt\n</address-list>\n")
    d = env.salvod_daemon(sources={"127.0.0.1": {"always-allow-relaying": "yes", "suppression-lists": "stop"}},
                          extra=extra)
    d.start()
    problems = []
    for rcpt in ("postmaster@dest.test", "full@dest.test", "news-7@dest.test", "x@blocked.test",
                 "fromfile@dest.test", "rx12@dest.test"):
        code, text = _rcpt("127.0.0.1", rcpt)
        if code != 550 or not text.startswith("5.7.1") or "suppression list stop" not in text:
            problems.append("listed %s: got %s %r, want 550 5.7.1 naming the list" % (rcpt, code, text))
    for rcpt in ("someone@dest.test", "news-x@dest.test", "x@sub.blocked.test", "postmaster2@dest.test"):
        code, text = _rcpt("127.0.0.1", rcpt)
        if code != 250:
            problems.append("unlisted %s: got %s %r, want 250" % (rcpt, code, text))
    s = smtplib.SMTP(harness.SALVOD_SMTP[0], harness.SALVOD_SMTP[1], timeout=10, source_address=("127.0.0.1", 0))
    try:
        refused = s.sendmail("sender@example.org", ["ok@dest.test", "postmaster@dest.test"],
                             b"Subject: lists\r\n\r\nhello\r\n")
        if list(refused) != ["postmaster@dest.test"]:
            problems.append("mixed transaction: refused %r, want postmaster@dest.test only" % refused)
    except smtplib.SMTPException as e:
        problems.append("mixed transaction: %r" % e)
    finally:
        s.close()
    if not harness.wait_until(lambda: harness.find_records(d.acct(), type="reception", recipient="ok@dest.test"),
                              5, what="reception"):
        problems.append("no reception record for ok@dest.test")
    bad = [r for r in harness.find_records(d.acct(), type="reception") if r.get("recipient") == "postmaster@dest.test"]
    if bad:
        problems.append("a suppressed recipient was received: %s" % bad)
    d.check_alive()
    if problems:
        raise Fail("\n  - " + "\n  - ".join(problems))


def test_relay_domain(env):
    env.dns(mx={"inbound.test": [(10, "mx.inbound.test")], "x.wild.test": [(10, "mx.inbound.test")]},
            a={"mx.inbound.test": "127.0.0.9"})
    sink = env.salvo_sink("sink", "127.0.0.9:25")
    d = env.salvod_daemon(extra="relay-domain inbound.test\nrelay-domain [*.]wild.test\n")
    d.start()
    problems = []
    for rcpt in ("a@inbound.test", "B@INBOUND.Test", "c@x.wild.test", "d@wild.test"):
        code, text = _rcpt("127.0.0.3", rcpt)
        if code != 250:
            problems.append("relay-domain %s from a stranger: got %s %r, want 250" % (rcpt, code, text))
    for rcpt in ("e@foreign.test", "f@sub.inbound.test", "g@evilwild.test", "h@inbound.test.evil.test",
                 "i@[127.0.0.9]"):
        code, text = _rcpt("127.0.0.3", rcpt)
        if not 500 <= code < 600:
            problems.append("not a relay-domain, %s from a stranger: got %s %r, want a 5xx refusal"
                            % (rcpt, code, text))
    s = smtplib.SMTP(harness.SALVOD_SMTP[0], harness.SALVOD_SMTP[1], timeout=10, source_address=("127.0.0.3", 0))
    try:
        refused = s.sendmail("far@elsewhere.test", ["in@inbound.test", "relay@foreign.test"],
                             b"Subject: inbound\r\n\r\nhello\r\n")
        if list(refused) != ["relay@foreign.test"]:
            problems.append("stranger's mixed transaction: refused %r, want relay@foreign.test only" % refused)
    except smtplib.SMTPException as e:
        problems.append("stranger's mixed transaction: %r" % e)
    finally:
        s.close()
    if not harness.wait_until(lambda: "in@inbound.test" in sink.delivered(), 15, what="delivery"):
        problems.append("in@inbound.test was not delivered to the MX (sink saw %r)" % sink.delivered())
    if "relay@foreign.test" in sink.delivered():
        problems.append("the refused foreign recipient was delivered")
    d.check_alive()
    if problems:
        raise Fail("\n  - " + "\n  - ".join(problems))


def _suppression(addr):
    try:
        with urllib.request.urlopen("http://%s:%d/api/v1/suppressions/%s" % (harness.SALVOD_HTTP + (addr,)),
                                    timeout=5) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, None


def test_processors(env):
    env.dns(mx={"v.test": [(10, "mx.sink.test")]}, a={"mx.sink.test": "127.0.0.2"})
    sink = env.salvo_sink("sink", "127.0.0.2:25")
    extra = ("bounce-domain bounces.salvo.test\n"
             "<feedback-loop-processor>\n  deliver-unmatched-email no\n  <address-list>\n"
             "    address fbl@fbl.isp.test\n  </address-list>\n</feedback-loop-processor>\n"
             "<bounce-processor>\n  deliver-unmatched-email no\n  <address-list>\n    domain dsn.test\n"
             "  </address-list>\n</bounce-processor>\n")
    d = env.salvod_daemon(extra=extra)
    d.start()
    problems = []
    with smtplib.SMTP(*harness.SALVOD_SMTP, timeout=10) as s:
        for r in ("angry@v.test", "dead@v.test"):
            s.sendmail("owner@senders.test", [r], ("Subject: offer\r\nTo: %s\r\n\r\nBuy now.\r\n" % r).encode())
    if not harness.wait_until(lambda: {"angry@v.test", "dead@v.test"} <= set(sink.delivered()), 15, what="delivery"):
        raise Fail("the two messages were not delivered: %r" % sink.delivered())
    verp = {a.rcpt_to[0].lower(): a.mail_from for a in sink.arrivals()}
    # a stranger reaches the processors' addresses, not their neighbours
    code, text = _rcpt("127.0.0.50", "other@fbl.isp.test")
    if code != 550:
        problems.append("unlisted other@fbl.isp.test from a stranger: got %s %r, want 550" % (code, text))
    with smtplib.SMTP(*harness.SALVOD_SMTP, timeout=10, source_address=("127.0.0.50", 0)) as s:
        s.ehlo("mx.isp.test")
        refused = s.sendmail("", ["fbl@fbl.isp.test"], ARF.format(verp=verp["angry@v.test"], rcpt="angry@v.test")
                             .replace("fbl@bounces.salvo.test", "fbl@fbl.isp.test").encode())
        if refused:
            problems.append("the ARF report to fbl@fbl.isp.test was refused: %r" % refused)
        refused = s.sendmail("", ["x@dsn.test"], DSN.format(verp="x@dsn.test", rcpt="dead@v.test")
                             .replace("Return-Path: <x@dsn.test>", "Return-Path: <%s>" % verp["dead@v.test"]).encode())
        if refused:
            problems.append("the DSN to x@dsn.test was refused: %r" % refused)
    fb = lambda r: harness.find_records(r, type="feedback", recipient="angry@v.test")
    if not fb(harness.wait_for_records(env, fb, 10, what="the feedback record")):
        problems.append("no feedback record for angry@v.test")
    st, e = _suppression("angry@v.test")
    if st != 200 or (e or {}).get("source") != "complaint":
        problems.append("angry@v.test not suppressed as a complaint: %s %r" % (st, e))
    bo = lambda r: harness.find_records(r, type="bounce", recipient="dead@v.test")
    if not bo(harness.wait_for_records(env, bo, 10, what="the bounce record")):
        problems.append("no bounce record for dead@v.test")
    onward = [a.rcpt_to for a in sink.arrivals() if any(r.endswith(("fbl.isp.test", "dsn.test")) for r in a.rcpt_to)]
    if onward:
        problems.append("reports were delivered onward: %r" % onward)
    d.check_alive()
    if problems:
        raise Fail("\n  - " + "\n  - ".join(problems))


if __name__ == "__main__":
    harness.main([test_suppression_lists, test_relay_domain, test_processors])
