#!/usr/bin/python3
"""test_address_lists.py - PowerMTA's <address-list> and `suppression-lists` in <source>.

suppression_lists: a relaying source with `suppression-lists stop` refuses at RCPT
(550 5.7.1, naming the list) each recipient that <address-list stop> lists - by local
part, by full address, by domain, by /REGEX/ and from its address-file - and accepts
the others; a mixed transaction queues only the unlisted recipient.

relay_domain: `relay-domain inbound.test` and `relay-domain [*.]wild.test` take mail for
exactly those domains (and wild.test's subdomains) from a client no <source> lets relay;
it is delivered (to salvo-sink, the MX); any other domain, a lookalike
(evilwild.test), a subdomain of the exact name and an address literal stay refused.
"""

import smtplib

import harness
from harness import Fail


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
    listfile = env.write("stop.txt", "# the file's entries\nfromfile@dest.test\n/^rx\\d+@/\n")
    extra = ("<address-list stop>\n  address postmaster\n  address Full@Dest.Test\n"
             "  address /^news-\\d+@/\n  domain blocked.test\n  address-file %s\n</address-list>\n" % listfile)
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


if __name__ == "__main__":
    harness.main([test_suppression_lists, test_relay_domain])
