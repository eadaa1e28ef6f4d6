/*
 * acct_csv_fields.h - the field names of PowerMTA's CSV accounting records
 * (User's Guide §11.2) that <acct-file> writes, in their default order; the
 * parser checks `record-fields` against them, acct_csv.c fills them.
 * `header_NAME` (a message header) is accepted too, and the fields of
 * acct_csv_extra_fields: PowerMTA's, not in its default set, written empty
 * (Salvo has nothing to put there: timeImprinted is the time of
 * gm-imprinting, which Salvo does not do).
 */
#ifndef SALVO_ACCT_CSV_FIELDS_H
#define SALVO_ACCT_CSV_FIELDS_H

#include <stdbool.h>
#include <stddef.h>
#include <strings.h>

static const char *const acct_csv_fields[] = {
	"type", "timeLogged", "timeQueued", "orig", "rcpt", "orcpt", "dsnAction", "dsnStatus", "dsnDiag",
	"dsnMta", "bounceCat", "srcType", "srcMta", "dlvType", "dlvSourceIp", "dlvDestinationIp",
	"dlvEsmtpAvailable", "dlvSize", "vmta", "jobId", "envId", "queue", "vmtaPool",
};

#define ACCT_CSV_N_FIELDS (sizeof(acct_csv_fields) / sizeof(acct_csv_fields[0]))

static const char *const acct_csv_extra_fields[] = {
	"timeImprinted", "totalSecondsQueued", "userString", "dlvTlsProtocol", "dlvTlsCipher", "rcvSmtpUser",
	"rcvSourceIp", "rcvDestinationIp", "dsnReportingMta", "feedbackType", "format", "userAgent", "reportingMTA",
	"repSourceIp", "reportedDomain", "nRcpt", "size",
};

#define ACCT_CSV_N_EXTRA_FIELDS (sizeof(acct_csv_extra_fields) / sizeof(acct_csv_extra_fields[0]))

/* The canonical spelling of a field name (an element of one of the lists
 * above; header_X: name itself), NULL when unknown. */
static inline const char *acct_csv_field_name(const char *name)
{
	if (!strncasecmp(name, "header_", 7) && name[7])
		return name;
	for (size_t i = 0; i < ACCT_CSV_N_FIELDS; i++)
		if (!strcasecmp(name, acct_csv_fields[i]))
			return acct_csv_fields[i];
	for (size_t i = 0; i < ACCT_CSV_N_EXTRA_FIELDS; i++)
		if (!strcasecmp(name, acct_csv_extra_fields[i]))
			return acct_csv_extra_fields[i];
	return NULL;
}

/* Is canon (from acct_csv_field_name) one of the fields written empty? */
static inline bool acct_csv_field_is_extra(const char *canon)
{
	for (size_t i = 0; i < ACCT_CSV_N_EXTRA_FIELDS; i++)
		if (canon == acct_csv_extra_fields[i])
			return true;
	return false;
}

#endif
