#!/usr/bin/python3
"""test_pmta_configs.py - real PowerMTA configurations and PowerMTA's meanings.

  real_configs  the public configs in tests/corpus/pmta-configs (copied into the test
                directory at run time) pass `salvod --check-config` once the edits listed
                below are applied, each a fault of the file itself (placeholders, regexes
                split over lines, directives no PowerMTA has, a clash made by assembling
                examples) or a directive Salvo refuses by design (README, "Migrating from
                PowerMTA"). The unedited file reports every one of those errors in one run,
                and nothing else: so each edit is needed, and the parser goes on after
                errors. A file with no edits must load as it is; SHOW_REAL checks what
                some of them mean through --show
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
# kind: "fault" (the file's own), "design" (a directive Salvo refuses by design),
# "deploy" (a path of the machine it was written for) or "undocumented" (a directive
# the PowerMTA 5.0 User's Guide does not have, so Salvo does not know it) or "salvo" (a
# PowerMTA construct Salvo does not support yet: a known gap, found in the held-out configs)


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


def _join_lines(first, last, sep=" "):
    """A pattern wrapped over lines first..last (1-based): one line again, the
    others left blank so that the line numbers stay."""
    def edit(text):
        lines = text.split("\n")
        part = lines[first - 1:last]
        lines[first - 1:last] = [part[0].rstrip() + sep + sep.join(x.strip() for x in part[1:])] + [""] * (last - first)
        return "\n".join(lines)
    return edit


def _drop_lines(prefix):
    """Every line whose first word starts with prefix goes (its line stays, blank)."""
    def edit(text):
        out = [("" if l.strip().startswith(prefix) else l) for l in text.split("\n")]
        if out == text.split("\n"):
            raise Fail("edit: no line starts with %r" % prefix)
        return "\n".join(out)
    return edit


def _blank_lines(*nums):
    """Lines nums (1-based) blanked, so that the others keep their numbers."""
    def edit(text):
        lines = text.split("\n")
        for n in nums:
            lines[n - 1] = ""
        return "\n".join(lines)
    return edit


def _stub_pools(*names):
    """Pools a file's include defines (not in the repository): one stub virtual MTA for them."""
    def edit(text):
        return text + "\n<virtual-mta stub>\n smtp-source-host 192.0.2.99 stub.example.com\n</virtual-mta>\n" + "".join(
            "<virtual-mta-pool %s>\n virtual-mta stub\n</virtual-mta-pool>\n" % n for n in names)
    return edit


# manager-frontend.config is a config as a web UI showed it: its long pattern lines are cut
MF_CUT_REPLY = (533, 543, 546, 558, 559, 560, 562, 564, 566, 567, 571, 572, 573, 574, 575, 576, 577, 579, 580, 581,
                582, 585, 588, 589, 590)
MF_CUT_REPLY_NO_ACTION = (551, 552, 553, 554, 561, 563, 565, 568, 569, 570, 578, 583, 584, 586, 587)
MF_CUT_CATEGORY = (647, 669, 680, 681, 685, 689, 692, 693, 698, 711, 712, 713, 718, 719, 720, 721, 722, 723, 725, 726,
                   727, 728, 729, 730, 731, 733, 735, 737, 738, 739, 743, 746, 747, 750, 751, 752, 753, 755, 756, 757,
                   758, 760, 761, 762, 763)
MF_CUT_CATEGORY_NAME = (648, 682, 691, 732, 734, 736, 741, 742, 745, 748, 749, 754, 759)
MF_INCLUDED_POOLS = ((27, "gleemate.com-pool-test"), (38, "gleemate.com-pool-unthrottled"),
                     (39, "securesoulmate.com-pool-unthrottled"), (40, "soulmateplay.com-pool-unthrottled"),
                     (57, "gleemate.com-pool-fresh"), (58, "securesoulmate.com-pool-fresh"),
                     (59, "soulmateplay.com-pool-fresh"), (65, "test.com-pool-fresh"), (77, "gleemate.com-pool"),
                     (78, "securesoulmate.com-pool"), (79, "soulmateplay.com-pool"))


def _render_one_ip(text):
    """Three conf.d files of clibuild are Handlebars templates its pmta-cli renders
    ({{#each ips}} ... {{ip}}): rendered here for one documentation address."""
    text = re.sub(r"\{\{#each ips\}\}|\{\{/each\}\}|\{\{#with this *\}\}|\{\{/with\}\}", "", text)
    for k, v in (("ips.0.ip", "192.0.2.40"), ("ips.0.domain", "mail.example.com"), ("ip", "192.0.2.40"),
                 ("domain", "mail.example.com"), ("sub", "1")):
        text = text.replace("{{%s}}" % k, v)
    return text


def _join_continued(text):
    """domain-macro lists the file breaks over lines after a comma: one line each."""
    return re.sub(r",\n(?=[^\s#<])", ",", text)


VMTAS_FOR_POOL = """
<virtual-mta pmta-vmta0>
    smtp-source-host 192.0.2.30 vmta0.example.com
</virtual-mta>
<virtual-mta pmta-vmta1>
    smtp-source-host 192.0.2.31 vmta1.example.com
</virtual-mta>
"""

# What Salvo does not have by design but whose absence changes no delivery
# (SparkPost Signals, PowerMTA's test sink, TLS 1.0/1.1 switches) loads with a
# warning at its line: checked on the unedited file.
WARNED = {
    "signals-demo.config": [
        (50, r"smtp-server-tls-allow-tlsv1.1 true is accepted but has no effect: TLS 1.0 and 1.1 are deprecated"),
        (99, r"<signals> is accepted but has no effect: it is SparkPost Signals"),
        (111, r"enable-signals is accepted but has no effect"),
    ],
    "bouncy-sink.config": [(n, r"dummy-smtp-[a-z-]+ is accepted but has no effect: it is PowerMTA's built-in test sink")
                           for n in (28, 29, 30, 31, 32, 33, 34, 35, 37)]
                          + [(74, r"type file is not implemented by design"), (75, r"file-format is accepted"),
                             (76, r"file-destination is accepted")],
    "clibuild-include.config": [(42, r"dummy-smtp-port is accepted but has no effect")],
    # a delivery type Salvo does not have: the queue's mail is held, never sent by SMTP
    "users-guide-examples.config": [
        (151, r"type http-delivery is not implemented by design \(Salvo delivers by SMTP only\): this queue's "
              r"mail is held"),
        (152, r"http-delivery-url is accepted but has no effect"),
    ],
    "manager-frontend.config": [(90, r"type discard is not implemented: this queue's mail is held")],
    "vesta.config": [(207, r"dummy-smtp-port is accepted but has no effect")],
}

FIXES = {
    "signals-demo.config": [
        ("fault", 57, r"missing value for password", _sub("password ## YOUR PASSWORD HERE ##", "password s3cret")),
        ("fault", 56, r"<smtp-user SMTP_Injection> has no password", lambda t: t),
    ],
    "template-with-placeholders.config": [
        ("fault", 110, r"unterminated /REGEX/ .*a pattern must be on one line",
         _join_split_lines("/(user|mailbox|recipient|rcpt|local part|address|account|mail drop|ad(d?)ressee) (has")),
        ("fault", 111, r'unknown directive "\+\)\?\(disabled', lambda t: t),
        ("fault", 113, r'unknown directive "activated\)/"', lambda t: t),
        ("fault", 117, r"unterminated /REGEX/ .*a pattern must be on one line",
         _join_split_lines("/(user|mailbox|recipient|rcpt|local part|address|account|mail drop|ad(d?)ressee) +(")),
        ("fault", 118, r'unknown directive "exist\|bad\|"', lambda t: t),
        ("fault", 120, r'unknown directive "invalid\|unknown', lambda t: t),
        ("fault", 223, r'invalid source address "YourIP" for smtp-source-host',
         _sub("smtp-source-host\tYourIP\tYourDomain", "smtp-source-host\t192.0.2.10\tYourDomain")),
        ("fault", 242, r'invalid source address "YourIP" for smtp-source-host',
         _sub("smtp-source-host\tYourIP\tYouDomain", "smtp-source-host\t192.0.2.11\tYouDomain")),
    ],
    "users-guide-examples.config": [
        # (allow-mailmerge yes loads with a warning: Salvo never offers XMRG)

        # the guide's fragment names a vmta it never defines: an error since <pattern-list> is applied
        ("fault", 210, r"virtual-mta=high in <pattern-list myList>: no such virtual-mta or virtual-mta-pool",
         _sub("virtual-mta=high, ", "")),
        # the guide's example file of addresses is not on this machine: an error since address lists are applied
        ("deploy", 223, r'cannot read address-file "/etc/pmta/addresses": No such file or directory',
         _drop_lines("address-file /etc/pmta/addresses")),
    ],
    # issue 18, second round: the development set (README of the corpus; three more are held out)
    "bouncy-sink.config": [
        ("undocumented", 25, r'unknown directive "total-max-file"', _drop_lines("total-max-file")),
    ],
    "clibuild-include.config": [
        # /etc/pmta/conf.d is where the project installs its conf.d: here it sits next to the file
        ("deploy", 9, r"include: /etc/pmta/conf.d/mailer-main-vmtas.conf: no such file",
         _sub("include /etc/pmta/conf.d/", "include clibuild-include.d/")),
        ("deploy", 10, r"include: .*mailer-backoff-vmtas.conf: no such file", lambda t: t),
        ("deploy", 13, r"include: .*smtp-users.conf: no such file", lambda t: t),
        ("deploy", 15, r"include: .*virtual-mta.conf: no such file", lambda t: t),
        ("deploy", 16, r"include: .*mx-rollup-list.conf: no such file", lambda t: t),
        ("deploy", 17, r"include: .*domains.conf: no such file", lambda t: t),
        ("deploy", 62, r"include: .*bounce-category-patterns.conf: no such file", lambda t: t),
        ("deploy", 76, r"include: .*smtp-pattern-list-blocking-errors.conf: no such file", lambda t: t),
    ],
    "cold-email-backup.config": [
        # the backup lacks the virtual MTAs its installer generates (its own comment says so)
        ("fault", 64, r"<virtual-mta-pool pmta-pool>: no <virtual-mta pmta-vmta0>",
         _sub("<virtual-mta-pool pmta-pool>", VMTAS_FOR_POOL + "<virtual-mta-pool pmta-pool>", 1)),
    ],
    "installer-heredoc.config": [
        # written by another script of the same installer (src/9-PMTA-Config.sh)
        ("deploy", 69, r"include: /etc/pmta/virtualhost.txt: no such file", _drop_lines("include /etc/pmta/virtualhost.txt")),
        ("fault", 106, r"unterminated /REGEX/ .*a pattern must be on one line", _join_lines(106, 107, "")),
        ("fault", 107, r'unknown directive "ted\)/"', lambda t: t),
        ("fault", 111, r"unterminated /REGEX/ .*a pattern must be on one line", _join_lines(111, 112, "")),
        ("fault", 112, r'unknown directive "id\|unknown', lambda t: t),
    ],
    # (its "invalid-mailbox" bounce category loads: PowerMTA allows custom category names)
    "sos-transactional.config": [],
    "stock-sample-2012.config": [
        ("fault", 73, r"missing value for http-access", _sub("http-access #YOUR_IP admin", "http-access 192.0.2.20 admin")),
    ],
    "strict-domain-routing.config": [
        # (world-wide admin, then world-wide monitor: PowerMTA's first match decides, with a warning)
        ("fault", 742, r"unterminated /REGEX/", _join_lines(742, 744)),
        ("fault", 743, r'unknown directive "\(has\|has"', lambda t: t),
        ("fault", 744, r"unterminated /REGEX/", lambda t: t),
        ("fault", 745, r"unterminated /REGEX/", _join_lines(745, 746)),
        ("fault", 746, r"unterminated /REGEX/", lambda t: t),
        ("fault", 748, r"unterminated /REGEX/", _join_lines(748, 749)),
        ("fault", 749, r"unterminated /REGEX/", lambda t: t),
        ("fault", 750, r"unterminated /REGEX/", _join_lines(750, 751)),
        ("fault", 751, r'unknown directive "found\|does"', lambda t: t),
    ],
    # the held-out three, scored once after the changes above (bench/RESULTS.md). "salvo": a
    # PowerMTA construct Salvo does not support yet, edited out here so that the rest is checked
    "vesta.config": [
        ("fault", 130, r"unterminated /REGEX/", _join_lines(130, 131)),
        ("fault", 131, r'unknown directive "\+\)\?\(disabled', lambda t: t),
        ("fault", 135, r"unterminated /REGEX/", _join_lines(135, 136)),
        ("fault", 136, r'unknown directive "exist\|bad', lambda t: t),
    ],
    "clibuild-patch.config": [
        # (line 41's default-virtual-mta by-smtp-source-ip loads since it is built: no edit)
        ("fault", 50, r'pattern-list "pmta-pattern": no such <pattern-list>', _drop_lines("pattern-list pmta-pattern")),
        ("deploy", 53, r"include: /etc/pmta/virtualhost.txt: no such file", _drop_lines("include /etc/pmta/virtualhost.txt")),
        ("fault", 90, r"unterminated /REGEX/", _join_lines(90, 91, "")),
        ("fault", 91, r'unknown directive "ted\)/"', lambda t: t),
        ("fault", 95, r"unterminated /REGEX/", _join_lines(95, 96, "")),
        ("fault", 96, r'unknown directive "id\|unknown', lambda t: t),
    ],
    "cold-email-template.config": [
        ("undocumented", 32, r'unknown directive "bounce-classification-file"', _drop_lines("bounce-classification-file")),
        ("undocumented", 35, r'unknown directive "routing-file"', _drop_lines("routing-file")),
    ] + [("fault", line, r'invalid address "IP\d_ADDRESS:\d+" for smtp-listener', lambda t: t)
         for line in (40, 41, 42, 43, 44, 46, 47, 48)] + [
        ("undocumented", 67, r'unknown directive "map-header-to-column"', _drop_lines("map-header-to-column")),
        ("undocumented", 73, r'unknown directive "map-header-to-column"', lambda t: t),
        # require-starttls is a <domain> directive; in <source> PowerMTA has require-starttls-before-auth
        ("fault", 88, r'"require-starttls" is only valid inside <domain>',
         lambda t: t.replace("    require-auth true\n    require-starttls yes\n", "    require-auth true\n")),
        ("fault", 129, r'"require-starttls" is only valid inside <domain>', lambda t: t),
        # the placeholders its own header lists (IP1_ADDRESS ... IP5_ADDRESS)
        ("fault", 314, r'invalid source address "IP1_ADDRESS"',
         lambda t: re.sub(r"IP(\d)_ADDRESS", lambda m: "192.0.2.5" + m.group(1), t)),
        ("fault", 330, r'invalid source address "IP2_ADDRESS"', lambda t: t),
        ("fault", 347, r'invalid source address "IP3_ADDRESS"', lambda t: t),
        ("fault", 363, r'invalid source address "IP4_ADDRESS"', lambda t: t),
        ("fault", 374, r'invalid source address "IP5_ADDRESS"', lambda t: t),
        # (each vmta's own `domain-key dkim,*,FILE` loads since per-vmta keys: no edit)
        # pool weights and a selection policy: not PowerMTA syntax
        ("undocumented", 395, r"<virtual-mta-pool pool-cold> lists no virtual-mta",
         lambda t: re.sub(r"(virtual-mta [\w-]+) +weight \d+", r"\1", t)),
        ("undocumented", 396, r'unknown directive "domain-selection"', _drop_lines("domain-selection")),
        ("undocumented", 397, r'invalid virtual-mta name "mta-cold-1 +weight 100"', lambda t: t),
        ("undocumented", 398, r'invalid virtual-mta name "mta-standby-1 weight 10"', lambda t: t),
        ("undocumented", 399, r'invalid virtual-mta name "mta-standby-2 weight 0"', lambda t: t),
    ],
    # issue 18, third round: the development set (README of the corpus; five more are held out)
    "second-instance.config": [
        # pmtad's --pid-file is a command-line option; the 5.0 User's Guide has no such directive
        ("undocumented", 20, r'unknown directive "pid-file"', _drop_lines("pid-file")),
    ],
    # (`records all`, a second http-access for a network, custom bounce categories, max-smtp-out in a vmta,
    # auto-cold-virtual-mta, pickup, a bare-IP <domain>, an IP host-name: each loads, most with a warning)
    "installer-virtualhost.config": [],
    "kira-early.config": [],
    "enviofiles-mult.config": [],
    "esp-server-setup.config": [],
    "outreach-heredoc.config": [
        # settings indented under `smtp-listener IP:PORT` as if it were a block: PowerMTA has no such form
        ("fault", 11, r'"source" is only valid inside <smtp-user>', _blank_lines(11, 12, 13, 14, 15, 18, 19, 20)),
        ("fault", 12, r'"process-x-virtual-mta" is only valid inside <source>', lambda t: t),
        ("fault", 13, r'"require-starttls" is only valid inside <domain>', lambda t: t),
        ("fault", 14, r'"auth-username" is only valid inside <domain>', lambda t: t),
        ("fault", 15, r'"auth-password" is only valid inside <domain>', lambda t: t),
        ("fault", 18, r'"source" is only valid inside <smtp-user>', lambda t: t),
        ("fault", 19, r'"auth-username" is only valid inside <domain>', lambda t: t),
        ("fault", 20, r'"auth-password" is only valid inside <domain>', lambda t: t),
    ] + [("undocumented", line, r'unknown directive "dkim-(key|domain|selector)"',
          (lambda t: re.sub(r"\n *dkim-(key|domain|selector) [^\n]*", "\n", t)) if line == 51 else (lambda t: t))
         for line in (51, 52, 53, 63, 64, 65, 75, 76, 77)] + [
        # reply rules in a <pattern-list>: they belong in an <smtp-pattern-list>
        ("fault", 151, r'"reply" is only valid inside <smtp-pattern-list>',
         lambda t: re.sub(r"<pattern-list blocking-errors>(.*?)</pattern-list>",
                          r"<smtp-pattern-list blocking-errors>\1</smtp-pattern-list>", t, flags=re.S)),
    ] + [("fault", line, r'"reply" is only valid inside <smtp-pattern-list>', lambda t: t)
         for line in (152, 153, 154, 155, 156)],
    "cold-email-vps2.config": [
        # a listener with a { } block of options: not PowerMTA syntax
        ("undocumented", 12, r'unknown option "\{" for smtp-listener',
         lambda t: _blank_lines(13, 14, 15, 16)(t.replace("smtp-listener 0.0.0.0:2525 {", "smtp-listener 0.0.0.0:2525"))),
        ("undocumented", 13, r'unknown directive "listen-on-tcp"', lambda t: t),
        ("undocumented", 14, r'"process-x-virtual-mta" is only valid inside <source>', lambda t: t),
        ("undocumented", 15, r'unknown directive "process-x-sender"', lambda t: t),
        ("undocumented", 16, r'unknown directive "\}"', lambda t: t),
        # the installer writes the host name before the address
        ("fault", 81, r"smtp-source-host mail.hub-travelers.com 192.0.2.61: the address comes first",
         lambda t: re.sub(r"smtp-source-host (\S+) (\d+\.\d+\.\d+\.\d+)", r"smtp-source-host \2 \1", t)),
        ("fault", 103, r"the address comes first", lambda t: t),
        ("undocumented", 136, r'unknown directive "virtual-mta-pool-map"', _drop_lines("virtual-mta-pool-map")),
    ],
    "virtualbox-relay-doc.config": [
        # PowerMTA's names are auth-username, auth-password and require-starttls
        ("undocumented", 66, r'unknown directive "smtp-auth-username"',
         lambda t: t.replace("smtp-auth-", "auth-").replace("require-tls yes", "require-starttls yes")),
        ("undocumented", 67, r'unknown directive "smtp-auth-password"', lambda t: t),
        ("undocumented", 68, r'unknown directive "require-tls"', lambda t: t),
        ("undocumented", 82, r'unknown directive "smtp-auth-username"', lambda t: t),
        ("undocumented", 83, r'unknown directive "smtp-auth-password"', lambda t: t),
        ("undocumented", 84, r'unknown directive "require-tls"', lambda t: t),
    ],
    "manager-frontend.config": [
        # pools defined in /etc/pmta/includes/*.txt, which the repository does not have
        ("deploy", line, r"virtual-mta=%s in <pattern-list [\w.-]+>: no such virtual-mta or virtual-mta-pool" % re.escape(n),
         _stub_pools(*[x for _, x in MF_INCLUDED_POOLS]) if line == 27 else (lambda t: t))
        for line, n in MF_INCLUDED_POOLS] + [
        ("fault", MF_CUT_REPLY[0], r"reply: unterminated /REGEX/",
         _blank_lines(*(MF_CUT_REPLY + MF_CUT_REPLY_NO_ACTION + MF_CUT_CATEGORY + MF_CUT_CATEGORY_NAME))),
    ] + [("fault", line, r"reply: unterminated /REGEX/", lambda t: t) for line in MF_CUT_REPLY[1:]] + [
        ("fault", line, r"reply rule without actions", lambda t: t) for line in MF_CUT_REPLY_NO_ACTION] + [
        ("fault", line, r"bounce-category-pattern: unterminated /REGEX/", lambda t: t) for line in MF_CUT_CATEGORY] + [
        ("fault", line, r"missing bounce category after the pattern", lambda t: t) for line in MF_CUT_CATEGORY_NAME] + [
        # PowerMTA 4.x's outbound Sender ID / SPF checks and add-gm-token load with a warning (no edit)
    ],
    # the third round's held-out five, scored once (1 of 5 loaded with only their own faults fixed) and
    # then fixed for the classes they showed: no longer held out
    "enviofiles-single.config": [],
    # (its domain-macro lists on the line below the name, allow-mailmerge yes: both load since the scoring)
    "smarthost-generator.config": [],
    "mail6-expect.config": [  # (its log-messages, an older release's directive, loads with a warning)
        ("fault", 233, r"unterminated /REGEX/",
         _join_split_lines("/(user|mailbox|recipient|rcpt|local part|address|account|mail drop|ad(d?)ressee) (has")),
        ("fault", 234, r'unknown directive "\+\)\?\(disabled', lambda t: t),
        ("fault", 236, r'unknown directive "activated\)/"', lambda t: t),
        ("fault", 240, r"unterminated /REGEX/",
         _join_split_lines("/(user|mailbox|recipient|rcpt|local part|address|account|mail drop|ad(d?)ressee) +(")),
        ("fault", 241, r'unknown directive "exist\|bad\|"', lambda t: t),
        ("fault", 243, r'unknown directive "invalid\|unknown', lambda t: t),
    ],
    "php-server-generator.config": [
        # the generator's loops run from 1 over 0-based arrays: the last address of each list is empty
        ("fault", 49, r"missing argument for <source>", _sub("<source >", "<source 192.0.2.31>")),
        ("fault", 92, r'invalid source address "mta2.example.com"',
         _sub("smtp-source-host  mta2.", "smtp-source-host 192.0.2.31 mta2.")),
        ("fault", 150, r'invalid network "monitor" for http-access',
         _sub("http-access  monitor", "http-access 198.51.100.5 monitor")),
        ("fault", 152, r'invalid network "admin" for http-access', _sub("http-access  admin", "http-access 198.51.100.6 admin")),
    ],
    # backoff-max-msg-rate 0 (line 303) and max-smtp-out 0 (php-server-generator,
    # lines 87 and 100) load: the queue holds its mail, as in PowerMTA
    "ensure-line-installer.config": [],
}

# Files a config includes (a directory next to it) and the edits they need: their
# errors only show once the include resolves, so they are fixed with the file's.
INCLUDED = {
    "clibuild-include.config": ("clibuild-include.d", {
        # domain-macro lists broken over lines after a comma (PowerMTA documents no continuation)
        "domains.conf": [_join_continued,
                         # type discard: Salvo delivers by SMTP only (design)
                         _sub("  type discard\n", "")],
        "bounce-category-patterns.conf": [_join_lines(45, 46, ""), _join_lines(50, 51, "")],
        # (each vmta includes /etc/pmta/dkimlist.txt, which the repository does not have; its
        # max-smtp-out for the whole vmta is accepted with a warning: Salvo limits per queue)
        "virtual-mta.conf": [_render_one_ip, _drop_lines("include /etc/pmta/dkimlist.txt")],
        "mailer-main-vmtas.conf": [_render_one_ip, _drop_lines("include /etc/pmta/dkimlist.txt")],
        "mailer-backoff-vmtas.conf": [_render_one_ip, _drop_lines("include /etc/pmta/dkimlist.txt")],
    }),
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
    "manager-frontend.config": [
        # <domain $yahoo_isp.$isp_tld>: every isp with every tld
        ("yahoo.co.uk", {"queue-to": "yahooaol.rollup"}),
        ("rocketmail.com.au", {"queue-to": "yahooaol.rollup"}),
        ("live.com.br", {"queue-to": "hotmail.rollup"}),
        ("tampabay.rr.com", {"max-msg-rate": "10/h"}),                            # $sub.rr.com
    ],
    "cold-email-vps2.config": [
        # <domain outlook.com hotmail.com live.com>: each name, top level and nested in a vmta
        ("live.com", {"max-msg-rate": "30/h", "max-smtp-out": "3", "retry-after": "30m"}),
        ("yahoo.fr", {"max-msg-rate": "40/h"}),
        ("live.com/vmta-hub-travelers", {"max-msg-rate": "1/h", "max-smtp-out": "1", "retry-after": "60m",
                                         "smtp-source-host": "192.0.2.61 mail.hub-travelers.com"}),
    ],
    "smarthost-generator.config": [
        ("orange.fr", {"queue-to": "orange.queue"}),                                # macro list on the next line
        ("yahoo.co.th", {"queue-to": "yahoo.queue"}),
        ("x.test/mta12", {"smtp-hosts": "smtp.relay.example", "auth-username": "sender12@example.net",
                          "auth-password": "(set)", "max-connect-rate": "10/m"}),
    ],
    "ensure-line-installer.config": [
        ("x.test/vmta1", {"smtp-source-host": "192.119.169.123 mail.quickey.com"}),  # A-B: the first address
        ("aol.be", {"max-msg-rate": "1/20m", "bounce-after": "10d"}),
    ],
    "esp-server-setup.config": [
        ("x.test/server221.pool221", {"smtp-source-host": "192.0.2.21 mail21.example.com", "max-smtp-out": "2"}),
        ("203.0.113.9", {"max-smtp-out": "2"}),                                   # <domain IP>
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


def check_show_real(name, path):
    for spec, want in SHOW_REAL.get(name, []):
        got = show(path, spec)
        for k, v in want.items():
            if got.get(k) != v:
                raise Fail("%s --show %s: %s is %r, want %r" % (name, spec, k, got.get(k), v))


def test_real_configs(env):
    for name, fixes in FIXES.items():
        src = os.path.join(CONFIGS, name)
        if not os.path.exists(src):
            raise Fail("missing %s" % src)
        text = open(src).read()
        orig = env.write(name, text)
        rc, out, err = check(orig)
        errs = errors_of(err)
        for line, rx in WARNED.get(name, []):
            if not any(w.startswith("%s:%d: warning: " % (orig, line)) and re.search(rx, w) for w in err.split("\n")):
                raise Fail("%s: no warning at line %d matching %r; got:\n%s" % (name, line, rx, err))
        if not fixes:
            # loads as it is: no fault of its own, nothing Salvo refuses
            if rc != 0 or "configuration is valid" not in out or errs:
                raise Fail("%s unedited: exit %d, want 0\n%s%s" % (name, rc, out, err))
            log("%s: valid as it is (%d warnings for parsed-not-applied directives)" % (name, err.count(": warning: ")))
            check_show_real(name, orig)
            continue
        if rc != 2:
            raise Fail("%s unedited: exit %d, want 2\n%s" % (name, rc, err))
        # every listed error is reported, in one run, at its line; and no other error
        # (line None: an edit whose errors show only once an earlier one is made)
        want = [(line, rx) for _, line, rx, _ in fixes if line is not None]
        for line, rx in want:
            if not any(e.startswith("%s:%d: " % (orig, line)) and re.search(rx, e) for e in errs):
                raise Fail("%s: no error at line %d matching %r; got:\n%s" % (name, line, rx, "\n".join(errs)))
        if len(errs) != len(want):
            raise Fail("%s: %d errors, want the %d listed:\n%s" % (name, len(errs), len(want), "\n".join(errs)))
        for _, _, _, edit in fixes:
            text = edit(text)
        if name in INCLUDED:
            sub, edits = INCLUDED[name]
            os.makedirs(os.path.join(env.dir, sub), exist_ok=True)
            for f in sorted(os.listdir(os.path.join(CONFIGS, sub))):
                t = open(os.path.join(CONFIGS, sub, f)).read()
                for edit in edits.get(f, []):
                    t = edit(t)
                env.write(os.path.join(sub, f), t)
        fixed = env.write("fixed-" + name, text)
        rc, out, err = check(fixed)
        if rc != 0 or "configuration is valid" not in out:
            raise Fail("%s with its edits: exit %d\n%s%s" % (name, rc, out, err))
        check_show_real(name, fixed)
        n_design = sum(1 for k, *_ in fixes if k == "design")
        n_salvo = sum(1 for k, *_ in fixes if k == "salvo")
        log("%s: %d errors in one run; valid after %d fixes of its own, %d by-design refusals and %d Salvo gaps "
            "edited (%d warnings for parsed-not-applied directives)"
            % (name, len(errs), len(fixes) - n_design - n_salvo, n_design, n_salvo, err.count(": warning: ")))


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
            '%s:5: invalid value "many" for max-smtp-out (expected a positive integer or unlimited)' % path,
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
    # top-level smtp-source-host: the default virtual MTA's and that of each one naming none
    src = env.write("source.conf", "host-name mta.example\nsmtp-source-host 192.0.2.7 out.example\n"
                    "<virtual-mta a>\n smtp-source-host 192.0.2.9 a.example\n</virtual-mta>\n"
                    "<virtual-mta b>\n host-name b.example\n</virtual-mta>\n")
    for spec, want in (("x.test", "192.0.2.7 out.example"), ("x.test/a", "192.0.2.9 a.example"),
                       ("x.test/b", "192.0.2.7 b.example")):
        got = show(src, spec).get("smtp-source-host")
        if got != want:
            raise Fail("--show %s: smtp-source-host is %r, want %r" % (spec, got, want))
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
