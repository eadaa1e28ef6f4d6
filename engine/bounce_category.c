/*
 * bounce_category.c - what a bounce means (see bounce_report.h): the
 * category table shared by synchronous replies during delivery and by
 * asynchronous reports. In order: a few reasons that hold whatever the
 * code (a virus, sender authentication, a rate limit, the vendors' own
 * diagnostic identifiers); a specific enhanced status code, with its
 * meaning in IANA's registry; for a generic one (X.Y.0, X.7.1) or none,
 * the phrase families, taken from the MTAs' own message texts and tagged
 * with them (so leave-one-family-out scoring can switch a family off),
 * within what the code's subject allows; then the basic reply code.
 * Also the stage rule ("user unknown" without an X.1.x code is a bad
 * mailbox when it refused RCPT TO, else a filter) and the per-recipient
 * rules only a report can apply (the remote's own code in the diagnostic,
 * delays and expiries).
 */
#include "engine/bounce_report.h"
#include "core/pcre_re.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---- phrase families ------------------------------------------------------------------------- */

/*
 * What MTAs write when they refuse or give up, grouped by what it means.
 * Each family names its sources: the MTAs whose own message texts (their
 * source code or published bounce/NDR documentation) contain it, or
 * "rfc" for the reply texts of RFC 5321 and the registry's descriptions,
 * "common" for wording that many unrelated servers share. Families are
 * tried in order; the first match wins, so the more specific come first.
 *
 * The sources are what leave-one-family-out scoring switches off
 * (bounce_rules_without): a family is off when every source it names is.
 */
struct phrase {
	const char *re;
	const char *category;
	const char *sources;
	bool off;
	struct pcre_re *compiled;   /* PCRE2, case-insensitive, like every pattern of the
				     * configuration (core/pcre_re.h); NULL: did not compile */
};

#define P(re, cat, src) {re, cat, src, false, NULL}

/* Reasons that hold whatever code came with them: a virus, and the
 * vendors' own diagnostic identifiers, more specific than the enhanced
 * code their servers put in front (Exchange sends "5.1.10
 * RESOLVER.ADR.RecipientNotFound", a missing mailbox, where the registry
 * says X.1.10 is a null MX). */
static struct phrase overriding[] = {
	P("virus|malware|infected|trojan", "virus-related", "common"),
	P("resolver\\.adr\\.(recip(ient)?notfound|exrecipnotfound|recipnotfound)|recipient not found by smtp address lookup",
	  "bad-mailbox", "microsoft"),
	/* Exchange Online's directory-based edge blocking: no such recipient
	 * (its NDR documentation), whatever the X.4.1 in front says */
	P("recipient address rejected: access denied", "bad-mailbox", "microsoft"),
	/* sender authentication and rate limits are about the sender,
	 * whichever code carries them */
	P("(^|[^a-z])(spf|dkim|dmarc)([^a-z]|$)|sender policy framework|unauthenticated|"
	  "authentication (checks? )?(failed|failure|required)|not authenticated", "policy-related", "common"),
	P("fails to pass authentication|does not have authentication information", "policy-related", "gmail"),
	P("not allowed to send from", "policy-related", "godaddy"),
	P("rate limit|sending rate|too many (recipients|messages|connections|mails|emails) (this|per|in the last)",
	  "policy-related", "common"),
	P("receiving mail (at a rate|too quickly)|daily (user )?sending quota", "policy-related", "gmail"),
	P("resolver\\.(rst\\.(authrequired|notauthorized)|adr\\.recipientlimit)", "policy-related", "microsoft"),
	P("resolver\\.rst\\.(recipsizelimit|sendsizelimit)", "content-related", "microsoft"),
};

static struct phrase phrases[] = {
	/* the recipient's mailbox is gone for good, but was there */
	P("(mailbox|inbox|account|user|address|recipient)[^.,;]{0,40} (is|has been|was) (disabled|inactive|suspended|"
	  "deactivated|discontinued|closed|terminated|expired|locked|frozen|deleted|cancell?ed)|"
	  "(mailbox|inbox|account) (disabled|inactive|suspended|deactivated|expired|locked|frozen)|"
	  "no longer (active|in use|available|on (this )?server|valid)|not an active (address|mailbox|account)",
	  "inactive-mailbox", "common"),
	P("account that you tried to reach is disabled", "inactive-mailbox", "gmail"),
	P("this (mailbox|account) (is|has been) disabled|disabled or discontinued", "inactive-mailbox", "yahoo"),
	P("is a deactivated mailbox|\\[suspend\\]|mailbox (currently )?suspended|mailbox unavailable \\(disabled\\)",
	  "inactive-mailbox", "common"),
	/* relaying: the server does not take mail for that domain */
	P("relay access denied", "relaying-issues", "postfix"),
	P("relay not permitted|relaying not permitted", "relaying-issues", "exim"),
	P("relaying denied|we do not relay", "relaying-issues", "sendmail"),
	P("(is|isn't) (not )?in my list of allowed rcpthosts|rcpthosts", "relaying-issues", "qmail"),
	P("unable to relay", "relaying-issues", "microsoft"),
	P("relay(ing)? (is )?(denied|not permitted|prohibited|not allowed|refused)|not permitted to relay|"
	  "(no|not a) relay|as a relay", "relaying-issues", "common"),
	/* Amazon SES refuses to send for an identity it has not verified */
	P("email address is not verified|identities failed the check", "relaying-issues", "amazonses"),
	/* a message refused for what it carries (an attachment type), not as spam */
	P("content presents a potential security issue", "policy-related", "gmail"),
	P("security (issue|risk|polic)", "policy-related", "common"),
	/* the sending host's name and its reverse DNS */
	P("cannot find your (reverse )?hostname", "policy-related", "postfix"),
	P("does not have a ptr record", "policy-related", "gmail"),
	P("reverse (dns|lookup|hostname)|rdns|ptr (record|lookup)|no ptr|hostname (does not|doesn't) match",
	  "policy-related", "common"),
	P("too many (recipients|messages|connections|concurrent)|too many invalid recipients|"
	  "(temporarily )?deferred due to", "policy-related", "common"),
	/* the sender refused: its address, its domain, a list it may not post to */
	P("sender address rejected|need fully-qualified address|multi-recipient bounce", "invalid-sender", "postfix"),
	P("sender verify failed|unrouteable sender", "invalid-sender", "exim"),
	P("domain of sender address [^ ]* does not exist", "invalid-sender", "sendmail"),
	P("but sender was rejected", "invalid-sender", "qmail"),
	P("(sender|from)( address)? (was |is )?(rejected|refused|invalid|unknown|not verified|not allowed|denied)|"
	  "(unroutable|invalid|bad|unknown) sender|sender domain (must exist|not found|does not exist)|"
	  "not (a )?member of|permission to post|not (allowed|permitted) to post", "invalid-sender", "common"),
	/* the sending host refused: its name, address or network (blocklists below) */
	P("client host rejected|helo command rejected|invalid ip", "spam-related", "postfix"),
	P("but my name was rejected", "spam-related", "qmail"),
	P("banned sending ip|traffic not accepted from this ip", "spam-related", "microsoft"),
	P("connections will not be accepted from", "spam-related", "yahoo"),
	P("unusual rate of unsolicited mail|likely unsolicited mail", "spam-related", "gmail"),
	P("(helo|ehlo) (command )?(rejected|refused|invalid)|dynamic (ip|address)|dial-?up|residential|"
	  "smtp server of your isp|(^|[^a-z])ube([^a-z]|$)|(ip|address) (is )?(blocked|blacklisted|listed)|access denied",
	  "spam-related", "common"),
	/* protocol */
	P("improper use of smtp command pipelining", "protocol-errors", "postfix"),
	P("data format error", "protocol-errors", "sendmail"),
	P("not rfc 5322 compliant|multiple addresses in from", "protocol-errors", "gmail"),
	P("command unrecognized|bad sequence of commands|syntax error", "protocol-errors", "rfc"),
	P("not (rfc|compliant)|rfc ?(2822|5322|822|5321) |improper|malformed (message|header|address)|bare (lf|cr)|"
	  "header (is )?missing|missing (required )?header", "protocol-errors", "common"),
	/* quota */
	P("insufficient system storage", "quota-issues", "postfix rfc"),
	P("quota exceeded while writing|(exim|system) quota exceeded|over quota", "quota-issues", "exim"),
	P("disk quota exceeded|insufficient disk space", "quota-issues", "sendmail postfix"),
	P("mailfolder is over the allowed quota|user is over quota|over quota", "quota-issues", "qmail"),
	P("account that you tried to reach is over quota|out of storage space", "quota-issues", "gmail"),
	P("recipient's mailbox is full|mailbox full", "quota-issues", "microsoft"),
	P("exceeded storage allocation", "quota-issues", "rfc"),
	P("(mailbox|quota|disk|storage|inbox|mail ?box|mail ?folder|mail ?directory)( is)? (full|exceeded|over)|"
	  "over ?quota|quota (exceeded|exceed|limit)|exceeds? (its |the )?(storage|quota)|mailbox size limit|"
	  "out of (disk )?space|limit set by (the )?recipient|(user|recipient|mailbox) has exceeded|"
	  "not enough (disk )?space|mail ?box would exceed|mail ?box exceeds (the )?(allowed|maximum)? ?size",
	  "quota-issues", "common"),
	/* the domain does not take mail */
	P("null mx|does(n't| not) (accept|receive) (e-?)?mail", "bad-domain", "rfc"),
	P("find the recipient domain", "bad-domain", "gmail"),
	P("domain lookup failed|dns domain does not exist", "bad-domain", "microsoft"),
	P("domain [^ ]* ?(couldn't|could not|cannot|can't) be found", "bad-domain", "common"),
	/* transient DNS failures and loops: the route, not the domain */
	P("host not found, try again|name server reply|loops back to myself|unable to look up", "routing-errors",
	  "postfix"),
	P("suspected mail loop|host lookup did not complete", "routing-errors", "exim"),
	P("too many hops|points back to|host name lookup failure", "routing-errors", "sendmail"),
	P("message is looping|it already has my delivered-to line", "routing-errors", "qmail"),
	P("not found, try again|dns (error|failure|timeout)|temporary (dns|lookup) failure|routing loop|mail loop|"
	  "loop detected|hop count|no route to host|network is unreachable|host unreachable", "routing-errors",
	  "common"),
	P("host or domain name not found|name service error", "bad-domain", "postfix"),
	P("unrouteable address|all relevant mx records point to non-existent hosts", "bad-domain", "exim"),
	P("host unknown|name server: [^ ]*: host not found", "bad-domain", "sendmail"),
	P("couldn't find any host (named|by that name)|couldn't find a mail exchanger", "bad-domain", "qmail"),
	P("host (not found|unknown)|domain (not found|does not exist|doesn't exist|name not found|unknown)|"
	  "no such domain|unroutable|name or service not known|no mx|domain (is )?invalid", "bad-domain", "common"),
	/* the mailbox does not exist */
	P("user unknown in (local|virtual|relay) (recipient|mailbox|alias) table|unknown user: ", "bad-mailbox",
	  "postfix"),
	P("unknown user|no such user here", "bad-mailbox", "exim"),
	P("user unknown|unknown mailbox", "bad-mailbox", "sendmail"),
	P("no mailbox here by that name|badrcptto", "bad-mailbox", "qmail"),
	P("recipient name is not recognized|email address you entered couldn't be found|"
	  "requested action not taken: mailbox unavailable|recipient not found", "bad-mailbox", "microsoft"),
	P("account that you tried to reach does not exist", "bad-mailbox", "gmail"),
	P("doesn't have a [^ ]* account|mailbox not found", "bad-mailbox", "yahoo"),
	P("not listed in (domino directory|public name & address book)", "bad-mailbox", "domino"),
	P("mailbox unavailable|user not local|mailbox name not allowed", "bad-mailbox", "rfc"),
	P("(user|mailbox|recipient|address|account|addressee|local part)( name)? (is )?(unknown|not found|does not exist|"
	  "doesn't exist|invalid|not exist|not valid|not recogni[sz]ed|not available|unavailable)|"
	  "no such (user|mailbox|recipient|address|account|person)|unknown (user|recipient|mailbox|local[- ]part|address)|"
	  "invalid (recipient|mailbox|address)|does not exist|not our customer|no mailbox|"
	  "no account by that name|not a (valid|known) (user|recipient)|no valid recipients?|mailbox not found|"
	  "no mail ?box (here|available)|bad.?recipient|address (is )?not found", "bad-mailbox", "common"),
	/* expiry */
	P("retry timeout exceeded|retry time not reached", "message-expired", "exim"),
	P("cannot send message for|could not be delivered for|delivery time \\([0-9]+s\\) expired", "message-expired",
	  "sendmail"),
	P("in the queue too long", "message-expired", "qmail"),
	P("message expired|delivery time (expired|exceeded)", "message-expired", "microsoft sendmail"),
	P("retry time(out)? (exceeded|expired)|(been|too long) in (the )?queue|message (has )?expired|"
	  "could not be delivered within|could not deliver for|"
	  "(cannot|can't|unable to) (send|deliver) (the )?(message|mail) for|failed [0-9]+ attempts|"
	  "(has been|was) delayed|will be retried|delivery (is )?delayed|warning message only|expired|giving up",
	  "message-expired", "common"),
	/* the message's content or the sending network's reputation */
	P("blocked using", "spam-related", "postfix"),
	P("temporarily deferred due to .*complaints|user complaints", "spam-related", "yahoo"),
	P("spam|blacklist|blocklist|black list|block list|listed (at|in|on)|(^|[^a-z])rbl|spamhaus|spamcop|"
	  "reputation|junk|blocked|bulk mail|unsolicited|content filter|filtered", "spam-related", "common"),
	P("message size exceeds fixed limit|too much mail data|exceeds size limit of server", "content-related",
	  "postfix"),
	P("message too big|message size exceeds maximum", "content-related", "exim"),
	P("message is too large", "content-related", "sendmail"),
	P("exceeds my databytes limit", "content-related", "qmail"),
	P("exceeded google's message size limits", "content-related", "gmail"),
	P("not accepting mail with attachments", "content-related", "aol"),
	P("(message|mail) (size|too (big|large))|too large|exceeds (the )?(maximum|size)|message length|size limit|"
	  "(illegal|prohibited|blocked) attachment|content (rejected|not allowed)", "content-related", "common"),
	P("sender domain|domain of sender", "invalid-sender", "common"),
	P("policy|violation|not authori[sz]ed|not allowed|too many|try again later|refused|rejected|denied|greylist",
	  "policy-related", "common"),
	P("lost connection with|conversation with [^ ]* timed out", "bad-connection", "postfix"),
	P("connection (refused|reset|closed|dropped|lost)|lost connection|socket error|refused to talk",
	  "bad-connection", "common"),
	P("wasn't able to establish an smtp connection", "no-answer-from-host", "qmail"),
	P("did not accept our requests to connect", "no-answer-from-host", "gmail"),
	P("timed? ?out|timeout|unreachable", "no-answer-from-host", "common"),
};

/* "User unknown" and its kin: what a server says of a mailbox that does
 * not exist, and also what many filters say to refuse a message they will
 * not take (a carrier's domain filter after DATA, a gateway's content
 * filter). Alone it does not tell the two apart. */
static struct phrase user_unknown =
	P("user (is )?unknown|unknown (user|recipient)|no such (user|recipient)|(user|recipient) (is )?not found|"
	  "user (does )?not exist", "bad-mailbox", "common");

/* What tells them apart, in a report that does not say which command the
 * reply answered: the program that delivers to the mailbox itself said so
 * (sendmail's mail.local, procmail, maildrop); or, weaker, the reply
 * names the recipient the way an MTA answers RCPT TO ("<a@b>... User
 * unknown", Sendmail's form). */
static struct phrase local_agent =
	P("(^|[^a-z])(mail\\.local|procmail|maildrop):|local delivery (agent|failed)", NULL, "sendmail");
/* Exchange's own store/directory (its IMS diagnostic, "MSEXCH:IMS:...")
 * is the recipient's system speaking: as good as the delivery agent */
static struct phrase exchange_store = P("msexch:ims", NULL, "microsoft");
static struct phrase rcpt_echo = P("@[a-z0-9.-]+>?\\.\\.\\. ", NULL, "sendmail");

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static pthread_once_t rules_once = PTHREAD_ONCE_INIT;

/* Compiled once for the process; never freed (static tables). */
static void compile_one(struct phrase *r)
{
	char why[160];

	if (!(r->compiled = pcre_re_compile(r->re, why, sizeof(why))))
		fprintf(stderr, "salvod: bounce rule /%s/ does not compile: %s\n", r->re, why);
}

static void compile_rules(void)
{
	for (size_t i = 0; i < N_OF(overriding); i++)
		compile_one(&overriding[i]);
	for (size_t i = 0; i < N_OF(phrases); i++)
		compile_one(&phrases[i]);
	compile_one(&user_unknown);
	compile_one(&local_agent);
	compile_one(&exchange_store);
	compile_one(&rcpt_echo);
}

static bool matches(struct phrase *r, const char *text)
{
	pthread_once(&rules_once, compile_rules);
	return text && r->compiled && !r->off && pcre_re_match(r->compiled, text);
}

/* Whether every word of sources is in the comma-separated list tags. */
static bool all_listed(const char *sources, const char *tags)
{
	char word[32];

	for (const char *s = sources; *s;) {
		size_t n = strcspn(s, " ");
		bool found = false;

		snprintf(word, sizeof(word), "%.*s", (int)n, s);
		for (const char *t = tags; *t;) {
			size_t m = strcspn(t, ",");

			found |= m == strlen(word) && !strncasecmp(t, word, m);
			t += m + (t[m] == ',');
		}
		if (!found)
			return false;
		s += n + (s[n] == ' ');
	}
	return true;
}

static char off_tags[256];

bool bounce_source_on(const char *source)
{
	return !off_tags[0] || !all_listed(source, off_tags);
}

void bounce_rules_without(const char *tags)
{
	snprintf(off_tags, sizeof(off_tags), "%s", tags ? tags : "");
	struct phrase *all[] = {&user_unknown, &local_agent, &exchange_store, &rcpt_echo};

	for (size_t i = 0; i < N_OF(overriding); i++)
		overriding[i].off = tags && all_listed(overriding[i].sources, tags);
	for (size_t i = 0; i < N_OF(phrases); i++)
		phrases[i].off = tags && all_listed(phrases[i].sources, tags);
	for (size_t i = 0; i < N_OF(all); i++)
		all[i]->off = tags && all_listed(all[i]->sources, tags);
}

static const char *by_text(struct phrase *list, size_t n, const char *text)
{
	for (size_t i = 0; i < n; i++)
		if (matches(&list[i], text))
			return list[i].category;
	return NULL;
}

static bool is(const char *t, const char *category)
{
	return t && !strcmp(t, category);
}

/* ---- the enhanced status code ------------------------------------------------------------------ */

/* IANA's SMTP Enhanced Status Codes registry (RFC 3463, 4468, 4954, 5248,
 * 6531, 7293 (X.7.17-19), 7372 (X.7.20-26), 7505 (X.1.10, X.7.27), 8617,
 * 8689 and later registrations): the category each
 * specific subject.detail means. NULL: generic (X.Y.0 "other", and
 * X.7.1 "delivery not authorized, message refused", which servers give
 * for every kind of refusal): the text decides within what the subject
 * allows. */
static const char *by_registry(int subj, int det)
{
	switch (subj * 1000 + det) {
	case 1001: return "bad-mailbox";      /* bad destination mailbox address */
	case 1002: return "bad-domain";       /* bad destination system address */
	case 1003: return "bad-mailbox";      /* bad destination mailbox address syntax */
	case 1004: return "bad-mailbox";      /* destination mailbox address ambiguous */
	case 1006: return "bad-mailbox";      /* mailbox has moved, no forwarding address */
	case 1007: case 1008: return "invalid-sender"; /* bad sender's mailbox address syntax / system address */
	case 1010: return "bad-domain";       /* recipient address has null MX (RFC 7505) */
	case 2001: return "inactive-mailbox"; /* mailbox disabled, not accepting messages */
	case 2002: return "quota-issues";     /* mailbox full */
	case 2003: return "content-related";  /* message length exceeds administrative limit */
	case 2004: return "other";            /* mailing list expansion problem */
	case 3001: return "quota-issues";     /* mail system full */
	case 3002: return "other";            /* system not accepting network messages */
	case 3003: return "protocol-errors";  /* system not capable of selected features */
	case 3004: return "content-related";  /* message too big for system */
	case 3005: return "bad-configuration"; /* system incorrectly configured */
	case 4001: return "no-answer-from-host";
	case 4002: return "bad-connection";
	case 4003: return "routing-errors";   /* directory server failure */
	case 4004: return "bad-domain";       /* unable to route */
	case 4005: return "routing-errors";   /* mail system congestion */
	case 4006: return "routing-errors";   /* routing loop detected */
	case 4007: return "message-expired";  /* delivery time expired */
	case 5001: case 5002: case 5004: case 5005: case 5006: return "protocol-errors";
	case 5003: return "policy-related";   /* too many recipients */
	case 6001: case 6002: case 6003: case 6004: case 6005: case 6006: return "content-related";
	case 6007: case 6008: case 6009: case 6010: return "protocol-errors"; /* SMTPUTF8 */
	case 7002: case 7003: case 7004: case 7005: case 7006: case 7007: case 7008: case 7009:
	case 7010: case 7011: case 7012: case 7013: case 7014: case 7015:
		return "policy-related";
	case 7016: return "content-related";  /* message too big for the specified priority */
	case 7017: return "bad-mailbox";      /* mailbox owner has changed */
	case 7018: return "bad-domain";       /* domain owner has changed */
	case 7019: case 7020: case 7021: case 7022: case 7023: case 7024: case 7025: case 7026:
	case 7029: case 7030:
		return "policy-related";           /* RRVS, DKIM, SPF, reverse DNS, ARC, REQUIRETLS */
	case 7027: return "invalid-sender";   /* sender address has null MX */
	case 7028: return "spam-related";     /* mail flood detected */
	default: return NULL;
	}
}

/* What a generic code of a subject allows the text to say, and what it
 * means when the text says nothing of it. */
static const char *by_subject(int subj, const char *t)
{
	static const char *const within[][8] = {
		[1] = {"bad-mailbox", "bad-domain", "inactive-mailbox", "invalid-sender", "relaying-issues", "spam-related",
		       "virus-related", NULL},
		[2] = {"quota-issues", "inactive-mailbox", "bad-mailbox", "content-related", "spam-related", "policy-related",
		       NULL},
		[4] = {"routing-errors", "bad-domain", "no-answer-from-host", "bad-connection", "message-expired",
		       "relaying-issues", NULL},
		[6] = {"content-related", "virus-related", "spam-related", "protocol-errors", NULL},
	};
	static const char *const fallback[] = {"other", "bad-mailbox", "quota-issues", "other", "routing-errors",
					       "protocol-errors", "content-related", "policy-related"};

	if (subj < 0 || subj > 7)
		return t ? t : "other";
	if (!t)
		return fallback[subj];
	if (subj == 1 || subj == 2 || subj == 4 || subj == 6) {
		for (size_t i = 0; within[subj][i]; i++)
			if (is(t, within[subj][i]))
				return t;
		return fallback[subj];
	}
	return t; /* X.0.0, X.3.0, X.5.0 (said for anything), X.7.0 and X.7.1: the text */
}

/* The basic reply code, when no enhanced code says more (RFC 5321 4.2,
 * RFC 7504): 521 and 556, a domain that takes no mail; 552, storage. */
static const char *by_reply(int code, const char *t)
{
	if (t)
		return t;
	switch (code) {
	case 521: case 556: return "bad-domain";
	case 552: return "quota-issues";
	default: return "other";
	}
}

/* Where servers use a specific code for a neighbour of its meaning, and
 * the text says which: X.2.1 "mailbox disabled" for a mailbox that never
 * existed (both suppress); X.4.4 "unable to route" for a DNS failure that
 * may pass; X.4.1 and X.4.2, which a sending MTA puts on any network
 * failure, for the one its text names. */
static const char *refine(int subj, int det, const char *reg, const char *t)
{
	if (subj == 2 && det == 1 && is(t, "bad-mailbox"))
		return t;
	if (subj == 4 && det == 4 && is(t, "routing-errors"))
		return t;
	if (subj == 4 && (det == 1 || det == 2) &&
	    (is(t, "routing-errors") || is(t, "no-answer-from-host") || is(t, "bad-connection")))
		return t;
	return reg;
}

const char *bounce_category(int code, const char *e, const char *text)
{
	const char *o = by_text(overriding, N_OF(overriding), text), *t, *r;
	int cls = 0, subj = -1, det = -1;

	if (o)
		return o;
	if (e && sscanf(e, "%d.%d.%d", &cls, &subj, &det) != 3)
		cls = 0;
	t = by_text(phrases, N_OF(phrases), text);
	if (cls && (r = by_registry(subj, det)))
		return refine(subj, det, r, t);
	if (cls)
		return by_subject(subj, t);
	return by_reply(code, t);
}

/* An enhanced code "c.s.d" whose subject is s (any class). */
static bool subject_is(const char *e, char s)
{
	return e && e[0] && e[1] == '.' && e[2] == s && e[3] == '.';
}

/* A code that says nothing about the reason: none, or X.0.0. */
static bool generic_code(const char *e)
{
	return !e || !e[0] || (e[1] == '.' && !strcmp(e + 2, "0.0"));
}

const char *bounce_reply_category(int code, const char *e, const char *text, enum bounce_phase phase)
{
	const char *c = bounce_category(code, e, text);

	/* refused before any recipient was named: the sender or its host */
	if (phase == BOUNCE_PHASE_MAIL && bounce_category_hard(c))
		return "invalid-sender";
	if (!is(c, "bad-mailbox") || !matches(&user_unknown, text) || subject_is(e, '1'))
		return c;
	/* "user unknown" with no X.1.x code to confirm it: a bad mailbox when
	 * the reply refused the recipient at RCPT TO, or when the delivery
	 * program said so; in answer to DATA (the recipient was accepted
	 * first), or with nothing to say which, a filter at the recipient's
	 * end. A code that says something else (X.2.1 "mailbox disabled",
	 * X.3.0 "system") takes the stated stage; a generic one (none, X.0.0)
	 * is also confirmed by a RCPT-style reply. */
	if (phase == BOUNCE_PHASE_RCPT)
		return c;
	if (phase == BOUNCE_PHASE_UNKNOWN &&
	    (matches(&local_agent, text) || matches(&exchange_store, text) ||
	     (generic_code(e) && matches(&rcpt_echo, text))))
		return c;
	return "policy-related";
}

bool bounce_category_hard(const char *c)
{
	return c && (!strcmp(c, "bad-mailbox") || !strcmp(c, "bad-domain") || !strcmp(c, "inactive-mailbox") ||
		     !strcmp(c, "complaint"));
}

/* ---- one recipient of a report ---------------------------------------------------------------- */

/* The first enhanced status code in a reply text, into out (cap >= 16). */
static bool enhanced_in(const char *text, char *out, size_t cap)
{
	for (const char *p = text; *p; p++) {
		int a, b, k = 0;

		if ((p[0] != '4' && p[0] != '5') || p[1] != '.' || (p > text && isalnum((unsigned char)p[-1])))
			continue;
		if (sscanf(p + 2, "%3d.%3d%n", &a, &b, &k) == 2 && k > 0 && a < 10 && !isalnum((unsigned char)p[2 + k]))
			return snprintf(out, cap, "%c.%d.%d", p[0], a, b) > 0;
	}
	return false;
}

const char *bounce_rcpt_category(const struct bounce_rcpt *x)
{
	char own[16];
	const char *e = x->status, *c;
	bool delay = !strcasecmp(x->action, "delayed") || !strcasecmp(x->action, "expired");

	/* the remote server's own code is more specific than the reporting
	 * MTA's Status, unless that says the message expired */
	if (enhanced_in(x->diag, own, sizeof(own)) && (!e[0] || (own[0] == e[0] && strcmp(e + 1, ".4.7"))))
		e = own;
	else if (x->code && e[0] && strcmp(e + 1, ".4.7")) {
		/* the remote answered with a bare reply code: the Status is the
		 * reporting MTA's reading of it (550 became 5.1.1 or 5.0.0), so
		 * what the reply says comes first */
		const char *t = bounce_reply_category(x->code, NULL, x->diag, x->phase);

		if (!is(t, "other") && !is(t, "policy-related"))
			e = "";
	}
	c = bounce_reply_category(x->code, e, x->diag, x->phase);
	/* a delay warning, a final bounce for a temporary failure, or one for
	 * a host that could not be reached (no MTA bounces that at once: it
	 * retries until the message's queue life ends): an expiry */
	if ((delay || ((e[0] == '4' || (!e[0] && x->code / 100 == 4)) && bounce_rcpt_failed(x)) ||
	     is(c, "no-answer-from-host") || is(c, "bad-connection")) &&
	    (is(c, "other") || is(c, "no-answer-from-host") || is(c, "bad-connection")))
		return "message-expired";
	return c;
}

bool bounce_rcpt_failed(const struct bounce_rcpt *x)
{
	return !strcasecmp(x->action, "failed") || x->status[0] == '5' || (!x->action[0] && x->code >= 500);
}
