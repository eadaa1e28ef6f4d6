#!/usr/bin/python3
"""test_relay.py - salvod is never an open relay; --check-config.

With `<source 127.0.0.2>` allowed to relay and no rule for 127.0.0.1, a client bound
to 127.0.0.1 gets `550 5.7.1` for a foreign recipient, and one bound to 127.0.0.2 gets
250 (and its message is accepted). `salvod --check-config -c FILE` exits 0 for a valid
file and 2 with `FILE:LINE: message` on stderr for an unknown directive.
"""

import os
import re
import smtplib
import subprocess

import harness
from harness import Fail


def _rcpt_from(source, rcpt):
    s = smtplib.SMTP(harness.SALVOD_SMTP[0], harness.SALVOD_SMTP[1], local_hostname="relay.client",
                     timeout=10, source_address=(source, 0))
    try:
        s.ehlo()
        code, resp = s.mail("someone@example.org")
        if code != 250:
            return ("MAIL", code, resp)
        code, resp = s.rcpt(rcpt)
        return ("RCPT", code, resp.decode("utf-8", "replace"))
    finally:
        try:
            s.quit()
        except (smtplib.SMTPException, OSError):
            s.close()


def test_no_open_relay(env):
    env.dns(mx={"foreign.test": [(10, "mx.foreign.test")]}, a={"mx.foreign.test": "127.0.0.9"})
    d = env.salvod_daemon(sources={"127.0.0.2": {"always-allow-relaying": "yes"}})
    d.start()
    problems = []
    for rcpt in ("victim@foreign.test", "victim@gmail.com"):
        step, code, text = _rcpt_from("127.0.0.1", rcpt)
        if step != "RCPT" or code != 550 or not str(text).startswith("5.7.1"):
            problems.append("unlisted client 127.0.0.1, RCPT %s: got %s %s %s, want 550 5.7.1"
                            % (rcpt, step, code, text))
    # an address literal must not open a way around the rule (any 5xx will do)
    step, code, text = _rcpt_from("127.0.0.1", "x@[127.0.0.9]")
    if not (500 <= code < 600):
        problems.append("unlisted client 127.0.0.1, RCPT x@[127.0.0.9]: got %s %s %s, want a 5xx refusal"
                        % (step, code, text))
    step, code, text = _rcpt_from("127.0.0.2", "friend@foreign.test")
    if step != "RCPT" or code != 250:
        problems.append("allowed source 127.0.0.2, RCPT friend@foreign.test: got %s %s %s, want 250" % (step, code, text))
    # the allowed source can really inject; the unlisted one cannot, even with DATA
    s = smtplib.SMTP(harness.SALVOD_SMTP[0], harness.SALVOD_SMTP[1], timeout=10, source_address=("127.0.0.2", 0))
    try:
        refused = s.sendmail("someone@example.org", ["friend@foreign.test"], b"Subject: ok\r\n\r\nhello\r\n")
        if refused:
            problems.append("allowed source: refused %r" % refused)
    except smtplib.SMTPException as e:
        problems.append("allowed source: sendmail failed: %s" % e)
    finally:
        s.close()
    s = smtplib.SMTP(harness.SALVOD_SMTP[0], harness.SALVOD_SMTP[1], timeout=10, source_address=("127.0.0.1", 0))
    try:
        s.sendmail("someone@example.org", ["victim@foreign.test"], b"Subject: relay\r\n\r\nspam\r\n")
        problems.append("unlisted client: sendmail to a foreign domain was accepted")
    except smtplib.SMTPRecipientsRefused as e:
        c = e.recipients["victim@foreign.test"][0]
        if c != 550:
            problems.append("unlisted client: sendmail refused with %s, want 550" % c)
    except smtplib.SMTPException as e:
        problems.append("unlisted client: unexpected %r" % e)
    finally:
        s.close()
    recs = d.acct()
    bad = [r for r in harness.find_records(recs, type="reception") if "victim" in (r.get("recipient") or "")]
    if bad:
        problems.append("a refused relay recipient was logged as received: %s" % bad)
    if not harness.wait_until(lambda: [r for r in d.acct() if r.get("recipient") == "friend@foreign.test"
                                       and r.get("type") == "reception"], 5, what="reception"):
        problems.append("no reception record for friend@foreign.test")
    d.check_alive()
    if problems:
        raise Fail("\n  - " + "\n  - ".join(problems))


def _check_config(env, text, name):
    path = env.write(name, text)
    p = subprocess.run([env.salvod, "--check-config", "-c", path], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=10)
    return path, p.returncode, p.stderr.decode("utf-8", "replace"), p.stdout.decode("utf-8", "replace")


def test_check_config(env):
    spool = os.path.join(env.dir, "spool")
    good = harness.salvod_config(spool, domains={"example.test": {"route": "[127.0.0.1]:2600"}})
    problems = []
    path, rc, err, out = _check_config(env, good, "good.conf")
    if rc != 0:
        problems.append("valid config: exit %d (want 0); stderr: %s" % (rc, err.strip()))
    lines = good.splitlines()
    # an unknown directive at the top level and one inside a block
    for where, idx, bogus in (("top level", 3, "frobnicate-the-queue yes"),
                              ("<domain *>", None, "    frobnicate-the-queue yes")):
        ls = list(lines)
        if idx is None:
            idx = next(i for i, l in enumerate(ls) if l.startswith("<domain *>")) + 1
        ls.insert(idx, bogus)
        path, rc, err, out = _check_config(env, "\n".join(ls) + "\n", "bad%d.conf" % idx)
        want = "%s:%d:" % (path, idx + 1)
        if rc != 2:
            problems.append("unknown directive (%s): exit %d, want 2; stderr: %s" % (where, rc, err.strip()))
        if not re.search(r"(^|\n)" + re.escape(want) + r" \S", err):
            problems.append("unknown directive (%s): stderr %r lacks %r followed by a message" % (where, err.strip(), want))
        elif "frobnicate-the-queue" not in err:
            problems.append("unknown directive (%s): the message does not name the directive: %r" % (where, err.strip()))
    # an unterminated block is an error too, still with file:line
    ls = [l for l in lines if l != "</domain>"]
    path, rc, err, out = _check_config(env, "\n".join(ls) + "\n", "unterminated.conf")
    if rc != 2 or (path + ":") not in err:
        problems.append("unterminated <domain>: exit %d, stderr %r (want 2 and FILE:LINE:)" % (rc, err.strip()))
    if problems:
        raise Fail("\n  - " + "\n  - ".join(problems))


if __name__ == "__main__":
    harness.main([test_no_open_relay, test_check_config], needs_sink=False)
