#!/usr/bin/python3
"""test_pmta_configs.py - real PowerMTA configurations and PowerMTA's meanings.

  real_configs  the three public configs in tests/corpus/pmta-configs (copied into the test
                directory at run time) pass `salvod --check-config` once the edits listed
                below are applied, each a fault of the file itself (placeholders, regexes
                split over lines, invented categories, a clash made by assembling examples)
                or a directive Salvo refuses by design (README, "Migrating from PowerMTA").
                The unedited file reports every one of those errors in one run, and
                nothing else: so each edit is needed, and the parser goes on after errors
  three_errors  a config with three errors reports all three as FILE:LINE: message, exit 2
  show          --check-config --show QUEUE[/VMTA] prints the settings a queue gets:
                a domain-macro block, wildcards *.x and [*.]x, a <domain> nested in a
                <virtual-mta> and in a <virtual-mta-pool>, inheritance from <domain *>
  log_file      log-file PATH takes salvod's diagnostics (its ready line)
  name_servers  two name-server lines: the first dead, the second answers; mail is delivered
  pcre          Perl regexes at work in delivery: a 451 whose text matches /\\d/ in
                <smtp-pattern-list> with bounce-rcpt bounces at once, and a (?i)\\d
                pattern in <bounce-category-patterns> gives the bounce its category
"""

import os
import random
import re
import subprocess

import harness
from harness import Fail, Injected, find_records, log, make_body

CONFIGS = os.environ.get("PMTA_CONFIGS") or os.path.join(harness.SRC_ROOT, "tests", "corpus", "pmta-configs")

# file -> [(what, line, regex of the error before the fix, edit(text) -> text)]
# kind: "fault" (the file's own) or "design" (a directive Salvo refuses by design)


def _sub(old, new, count=0):
    def edit(text):
        if old not in text:
            raise Fail("edit: %r not found" % old)
        return text.replace(old, new, count) if count else text.replace(old, new)
    return edit


def _join_split_lines(start_marker):
    """A regex split over lines: join the line starting with start_marker with the lines
    after it up to the one ending in '/ CATEGORY' (its blank lines dropped)."""
    def edit(text):
        lines = text.split("\n")
        for i, l in enumerate(lines):
            if l.startswith(start_marker):
                j = i
                while not re.search(r"/ [a-z-]+$", lines[j]):
                    j += 1
                joined = "".join(x.rstrip() if k == i else x.strip() for k, x in enumerate(lines[i:j + 1]) if x.strip())
                return "\n".join(lines[:i] + [joined] + [""] * (j - i) + lines[j + 1:])
        raise Fail("edit: %r not found" % start_marker)
    return edit


FIXES = {
    "signals-demo.config": [
        ("fault", 57, r"missing value for password", _sub("password ## YOUR PASSWORD HERE ##", "password s3cret")),
        ("fault", 56, r"<smtp-user SMTP_Injection> has no password", lambda t: t),
        ("design", 50, r"smtp-server-tls-allow-tlsv1.1 true is not supported: TLS 1.0 and 1.1 are deprecated",
         _sub("smtp-server-tls-allow-tlsv1.1 true", "smtp-server-tls-allow-tlsv1.1 false")),
        ("design", 99, r"<signals> is SparkPost Signals, which Salvo does not have by design",
         lambda t: re.sub(r"<signals>.*?</signals>", lambda m: "\n" * m.group(0).count("\n"), t, flags=re.S)),
        ("design", 111, r"enable-signals is SparkPost Signals", _sub("enable-signals true", "")),
    ],
    "template-with-placeholders.config": [
        ("design", 4, r"dk-sign yes is not supported: DomainKeys \(RFC 4870\) is obsolete",
         _sub("    dk-sign yes\n", "    dk-sign no\n")),
        ("fault", 110, r"unterminated /REGEX/ .*a pattern must be on one line",
         _join_split_lines("/(user|mailbox|recipient|rcpt|local part|address|account|mail drop|ad(d?)ressee) (has")),
        ("fault", 111, r'unknown directive "\+\)\?\(disabled', lambda t: t),
        ("fault", 113, r'unknown directive "activated\)/"', lambda t: t),
        ("fault", 117, r"unterminated /REGEX/ .*a pattern must be on one line",
         _join_split_lines("/(user|mailbox|recipient|rcpt|local part|address|account|mail drop|ad(d?)ressee) +(")),
        ("fault", 118, r'unknown directive "exist\|bad\|"', lambda t: t),
        ("fault", 120, r'unknown directive "invalid\|unknown', lambda t: t),
        ("fault", 144, r'unknown bounce category "success"', _sub("/^2.\\d.\\d/ success\n", "")),
        ("fault", 223, r'invalid source address "YourIP" for smtp-source-host',
         _sub("smtp-source-host\tYourIP\tYourDomain", "smtp-source-host\t192.0.2.10\tYourDomain")),
        ("fault", 242, r'invalid source address "YourIP" for smtp-source-host',
         _sub("smtp-source-host\tYourIP\tYouDomain", "smtp-source-host\t192.0.2.11\tYouDomain")),
    ],
    "users-guide-examples.config": [
        ("design", 24, r"allow-mailmerge yes is not supported: mail merge \(XMRG\) is not implemented by design",
         _sub("    allow-mailmerge yes\n", "    allow-mailmerge no\n")),
        # two examples of the guide name the same domain once assembled (the macro's yahoo.com)
        ("fault", 150, r"duplicate <domain yahoo.com> \(first at line 81\)",
         lambda t: t.replace("<domain yahoo.com>\n   type http-delivery", "<domain webhooks.example>\n   type http-delivery")),
        ("design", 151, r'type "http-delivery" is not implemented by design: Salvo delivers by SMTP only',
         _sub("   type http-delivery\n", "   type smtp\n")),
        ("design", 152, r"http-delivery-url is not implemented by design",
         _sub("   http-delivery-url http://webhooks.endpoint.com:8181/api/v1/email\n", "")),
    ],
}


# what the real configs mean, through --show (after their edits)
SHOW_REAL = {
    "signals-demo.config": [
        # the <domain *> nested in <virtual-mta-pool default> applies to its member mta1
        ("gmail.com/mta1", {"max-smtp-out": "20", "bounce-after": "4d12h", "retry-after": "10m", "dkim-sign": "yes"}),
        ("gmail.com", {"bounce-after": "4h", "retry-after": "15m"}),
    ],
    "users-guide-examples.config": [
        ("yahoo.de", {"smtp-pattern-list": "blockList", "bounce-after": "4d"}),   # macro block, inherits *
        ("mx.port25.com", {"log-commands": "yes", "bounce-after": "4d"}),          # *.port25.com
        ("port25.com", {"bounce-after": "4d"}),                                    # [*.]port25.com
        ("discard.port25.com", {"bounce-after": "1h"}),                            # exact beats wildcards
        ("example.net/vmta1", {"max-cold-virtual-mta-msg": "1000/day"}),
        ("example.net/vmta2", {"max-msg-rate": "100/h"}),
        ("comcast.net/vmta2", {"max-msg-rate": "83/10m"}),                         # top-level exact beats vmta *
        ("x.test/ExtraCapacity", {"queue-to": "{sparkpost}"}),
        ("hotmail.com", {"connection-idle-timeout": "1m", "max-msg-per-connection": "5",
                         "retry-recipients-after": "10m", "queue-priority": "75"}),
    ],
}


def check(path, *extra):
    p = subprocess.run([harness_salvod(), "--check-config", "-c", path] + list(extra), capture_output=True,
                       text=True, timeout=30)
    if "runtime error:" in p.stderr or "Sanitizer" in p.stderr:
        raise Fail("sanitizer report from --check-config %s:\n%s" % (path, p.stderr[-3000:]))
    return p.returncode, p.stdout, p.stderr


def harness_salvod():
    return harness._find_binary("SALVOD", "--salvod", "engine/salvod")


def errors_of(stderr):
    return [l for l in stderr.splitlines() if re.match(r"^.+:\d+: ", l) and ": warning: " not in l]


def test_real_configs(env):
    for name, fixes in FIXES.items():
        src = os.path.join(CONFIGS, name)
        if not os.path.exists(src):
            raise Fail("missing %s" % src)
        text = open(src).read()
        orig = env.write(name, text)
        rc, out, err = check(orig)
        errs = errors_of(err)
        if rc != 2:
            raise Fail("%s unedited: exit %d, want 2\n%s" % (name, rc, err))
        # every listed error is reported, in one run, at its line; and no other error
        want = [(line, rx) for _, line, rx, _ in fixes]
        for line, rx in want:
            if not any(e.startswith("%s:%d: " % (orig, line)) and re.search(rx, e) for e in errs):
                raise Fail("%s: no error at line %d matching %r; got:\n%s" % (name, line, rx, "\n".join(errs)))
        if len(errs) != len(want):
            raise Fail("%s: %d errors, want the %d listed:\n%s" % (name, len(errs), len(want), "\n".join(errs)))
        for _, _, _, edit in fixes:
            text = edit(text)
        fixed = env.write("fixed-" + name, text)
        rc, out, err = check(fixed)
        if rc != 0 or "configuration is valid" not in out:
            raise Fail("%s with its edits: exit %d\n%s%s" % (name, rc, out, err))
        for spec, want in SHOW_REAL.get(name, []):
            got = show(fixed, spec)
            for k, v in want.items():
                if got.get(k) != v:
                    raise Fail("%s --show %s: %s is %r, want %r" % (name, spec, k, got.get(k), v))
        n_design = sum(1 for k, *_ in fixes if k == "design")
        log("%s: %d errors in one run; valid after %d fixes of its own and %d by-design refusals edited "
            "(%d warnings for parsed-not-applied directives)" % (name, len(errs), len(fixes) - n_design, n_design,
                                                                 err.count(": warning: ")))


def test_three_errors(env):
    path = env.write("three.conf", "\n".join([
        "host-name mta.example",
        "smtp-listener 0/0:2525",          # PowerMTA's form: fine
        "retry-after 10m",                  # 3: only valid inside <domain>
        "<domain *.example.com>",           # wildcard: fine
        "    max-smtp-out many",            # 5: not a number
        "</domain>",
        "<source 10.0.0.0/8>",
        "    frobnicate yes",               # 8: unknown
        "</source>",
    ]) + "\n")
    rc, out, err = check(path)
    errs = errors_of(err)
    want = ['%s:3: "retry-after" is only valid inside <domain>' % path,
            '%s:5: invalid value "many" for max-smtp-out (expected a positive integer)' % path,
            '%s:8: unknown directive "frobnicate"' % path]
    if rc != 2 or errs != want:
        raise Fail("three errors: exit %d, got:\n%s\nwant:\n%s" % (rc, "\n".join(errs), "\n".join(want)))
    log("three errors reported in one run, exit 2")


SHOW_CONF = """
host-name mta.example
domain-macro tld com, de, co.uk
<domain *>
    max-smtp-out 12
    retry-after 5m
</domain>
<domain yahoo.$tld>
    max-msg-rate 100/h
</domain>
<domain *.port25.com>
    bounce-after 2h
</domain>
<domain [*.]example.org>
    max-smtp-out 3
</domain>
<domain gmail.com>
    max-msg-rate 500/h
</domain>
<virtual-mta vmta1>
    smtp-source-host 192.0.2.1 vmta1.example
    <domain *>
        max-msg-rate 50/h
        max-cold-virtual-mta-msg 1000/day
    </domain>
    <domain gmail.com>
        max-smtp-out 2
    </domain>
</virtual-mta>
<virtual-mta vmta2>
    smtp-source-host 192.0.2.2 vmta2.example
</virtual-mta>
<virtual-mta-pool pool1>
    virtual-mta vmta2
    <domain *>
        bounce-after 1d
    </domain>
</virtual-mta-pool>
"""


def show(path, spec):
    rc, out, err = check(path, "--show", spec)
    if rc != 0:
        raise Fail("--show %s: exit %d %s" % (spec, rc, err))
    return dict(l.split(" ", 1) for l in out.splitlines())


def test_show(env):
    path = env.write("show.conf", SHOW_CONF)
    cases = [
        # (spec, {directive: value}, [directives that must be absent])
        ("yahoo.de", {"max-msg-rate": "100/h", "max-smtp-out": "12", "retry-after": "5m"}, []),
        ("yahoo.co.uk", {"max-msg-rate": "100/h"}, []),
        ("yahoo.fr", {"max-msg-rate": "unlimited", "max-smtp-out": "12"}, []),
        ("mx.port25.com", {"bounce-after": "2h"}, []),
        ("port25.com", {"bounce-after": "4h"}, []),            # *.x: subdomains only
        ("example.org", {"max-smtp-out": "3"}, []),             # [*.]x: the domain too
        ("a.b.example.org", {"max-smtp-out": "3"}, []),
        ("other.test", {"max-smtp-out": "12", "retry-after": "5m", "bounce-after": "4h"},
         ["max-cold-virtual-mta-msg"]),
        # nested in the vmta: its own block, then the top-level domain, then its `*`
        ("gmail.com/vmta1", {"max-smtp-out": "2", "max-msg-rate": "500/h",
                             "max-cold-virtual-mta-msg": "1000/day"}, []),
        ("other.test/vmta1", {"max-msg-rate": "50/h", "max-smtp-out": "12"}, []),
        ("gmail.com/vmta2", {"max-msg-rate": "500/h", "bounce-after": "1d"}, ["max-cold-virtual-mta-msg"]),
        ("other.test/pool1", {"bounce-after": "1d"}, []),
        ("gmail.com", {"max-smtp-out": "12", "max-msg-rate": "500/h"}, []),
    ]
    for spec, want, absent in cases:
        got = show(path, spec)
        for k, v in want.items():
            if got.get(k) != v:
                raise Fail("--show %s: %s is %r, want %r\n%r" % (spec, k, got.get(k), v, got))
        for k in absent:
            if k in got:
                raise Fail("--show %s: %s should not apply (%r)" % (spec, k, got[k]))
    rc, out, err = check(path, "--show", "gmail.com/nosuch")
    if rc != 2 or "no virtual-mta or virtual-mta-pool" not in err:
        raise Fail("--show with an unknown vmta: exit %d %s" % (rc, err))
    log("--show: macro, wildcards, vmta and pool nesting, inheritance from <domain *> (%d cases)" % len(cases))


def test_pcre(env):
    rng = random.Random(18)
    env.dns(mx={"re.test": [(10, "mx.re.test")]}, a={"mx.re.test": "127.0.0.2"}, check=[("re.test", "MX")])
    env.salvo_sink("sink", "127.0.0.2:25", extra_args=[
        "--fault", r"at=rcpt,match=^busy@re\.test$,reply=451 4.2.1 mailbox 12345 is busy",
        "--fault", r"at=rcpt,match=^gone@re\.test$,reply=550 5.7.1 USER 777 HAS LEFT"])
    extra = "\n".join([
        "<smtp-pattern-list perl>", r"  reply /^451 4\.2\.1 mailbox \d+ is busy$/ bounce-rcpt",
        "</smtp-pattern-list>",
        "<bounce-category-patterns>", r"  /(?i)user \d{3} has left/ inactive-mailbox", "</bounce-category-patterns>"])
    d = env.salvod_daemon(default_domain={"smtp-pattern-list": "perl", "retry-after": "30s"}, extra=extra)
    d.start()
    sender = "owner@senders.test"
    harness.inject([Injected("p%d" % i, sender, [r], make_body(rng, "p%d" % i, sender, [r], 300))
                    for i, r in enumerate(["busy@re.test", "gone@re.test"])], threads=1)
    recs = harness.wait_for_records(env, lambda r: find_records(r, type="bounce", recipient="busy@re.test") and
                                    find_records(r, type="bounce", recipient="gone@re.test"), 15,
                                    what="both bounces")
    if find_records(recs, type="transient", recipient="busy@re.test"):
        raise Fail("/\\d+/ in <smtp-pattern-list> did not match: the 451 was deferred")
    cat = find_records(recs, type="bounce", recipient="gone@re.test")[0].get("bounce_category")
    if cat != "inactive-mailbox":
        raise Fail("(?i) and \\d in <bounce-category-patterns> did not match: category %r" % cat)
    log("PCRE2: \\d in a reply pattern bounced the 451 at once; (?i)\\d{3} categorised the 550")


def test_name_servers(env):
    """Repeated name-server lines: a dead first server, the test's dnsmasq second: mail
    still gets delivered (the resolver goes on to the next)."""
    rng = random.Random(19)
    env.dns(mx={"ns.test": [(10, "mx.ns.test")]}, a={"mx.ns.test": "127.0.0.2"}, check=[("ns.test", "MX")])
    env.salvo_sink("sink", "127.0.0.2:25")
    extra = "name-server 127.0.0.99:53\nname-server %s:%d\n" % harness.DNS_ADDR
    d = env.salvod_daemon(extra=extra)
    d.start()
    sender = "owner@senders.test"
    harness.inject([Injected("n1", sender, ["x@ns.test"], make_body(rng, "n1", sender, ["x@ns.test"], 300))],
                   threads=1)
    harness.wait_for_records(env, lambda r: find_records(r, type="delivery", recipient="x@ns.test"), 20,
                             what="the delivery through the second name-server")
    log("name-server: the second server answered when the first did not")


def test_log_file(env):
    """log-file PATH: salvod's diagnostics (its ready line) go to that file, not stderr."""
    logp = os.path.join(env.dir, "pmta.log")
    cfgp = env.write("lf.conf", harness.salvod_config(os.path.join(env.dir, "spool"), extra="log-file %s\n" % logp))
    errp = os.path.join(env.dir, "salvod.stderr")
    with open(errp, "wb") as ef:
        p = subprocess.Popen([harness_salvod(), "-c", cfgp], stdin=subprocess.DEVNULL, stdout=ef,
                             stderr=subprocess.STDOUT, cwd=env.dir, preexec_fn=harness._pdeathsig)
    try:
        if not harness.wait_until(lambda: os.path.exists(logp) and "ready:" in open(logp).read(), 10,
                                  what="the ready line in log-file"):
            raise Fail("no ready line in %s; stderr: %s" % (logp, open(errp).read()[-2000:]))
        if "ready:" in open(errp).read():
            raise Fail("the ready line went to stderr too")
    finally:
        harness.stop_process(p, "salvod")
    log("log-file: the diagnostics are in %s" % os.path.basename(logp))


if __name__ == "__main__":
    harness.main([test_real_configs, test_three_errors, test_show, test_pcre, test_name_servers, test_log_file])
