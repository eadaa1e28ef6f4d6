#!/usr/bin/perl
# peer_bounceparser.pl - the peer classifier for comparison: Debian's
# Mail::DeliveryStatus::BounceParser (libmail-deliverystatus-bounceparser-perl)
# over one message, printed in `salvoctl classify`'s JSON-lines form so that
# tests/corpus/score.py --peer scores it the same way:
#   {"recipient":..., "category":..., "hard":true|false, "kind":"dsn"}
# BounceParser's std_reason maps onto Salvo's categories as below (hard: the
# ones Salvo suppresses). A message it does not call a bounce prints nothing.
use strict;
use warnings;
use Mail::DeliveryStatus::BounceParser;

my %category = (
    user_unknown      => 'bad-mailbox',
    user_disabled     => 'inactive-mailbox',
    domain_error      => 'bad-domain',
    over_quota        => 'quota-issues',
    spam              => 'spam-related',
    message_too_large => 'content-related',
    unknown           => 'other',
    no_problemo       => undef,
);
my %hard = ('bad-mailbox' => 1, 'inactive-mailbox' => 1, 'bad-domain' => 1);

sub js { my $s = shift; return 'null' unless defined $s; $s =~ s/(["\\])/\\$1/g; $s =~ s/[\x00-\x1f]/ /g; return "\"$s\""; }

my $path = shift or die "usage: peer_bounceparser.pl FILE\n";
open(my $fh, '<:raw', $path) or die "cannot read $path: $!\n";
my $msg = do { local $/; <$fh> };
close $fh;
my $bounce = eval { Mail::DeliveryStatus::BounceParser->new($msg) };
exit 0 unless $bounce && $bounce->is_bounce;
for my $r ($bounce->reports) {
    my $reason = $r->get('std_reason') // 'unknown';
    next if $reason eq 'no_problemo';
    my $cat = $category{$reason} // 'other';
    my $addr = $r->get('email');
    printf "{\"recipient\":%s,\"category\":%s,\"hard\":%s,\"kind\":\"dsn\"}\n", js($addr), js($cat),
        $hard{$cat} ? 'true' : 'false';
}
