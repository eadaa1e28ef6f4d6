#!/bin/sh
# compare.sh - one run for bench/RESULTS.md: Salvo's classifier (in-sample and
# leave-one-family-out) and the peer, Debian's Mail::DeliveryStatus::BounceParser
# (peer_bounceparser.pl), over the same corpora, the added ones by split.
#   tests/corpus/compare.sh [SALVOCTL]   (default build/tools/salvoctl/salvoctl)
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
S=${1:-$HERE/../../build/tools/salvoctl/salvoctl}
ADDED="$HERE/bounceparser $HERE/flufl-bounce"
echo "### Salvo, public corpus, with leave-one-family-out"
python3 "$HERE/score.py" "$S" "$HERE/bounces" --lofo --report-only
for split in dev heldout; do
    echo "### Salvo, added corpora, $split split"
    python3 "$HERE/score.py" "$S" $ADDED --split $split --report-only
done
if perl -MMail::DeliveryStatus::BounceParser -e1 2>/dev/null; then
    echo "### peer: Mail::DeliveryStatus::BounceParser $(perl -MMail::DeliveryStatus::BounceParser -e 'print $Mail::DeliveryStatus::BounceParser::VERSION')"
    python3 "$HERE/score.py" --peer "$HERE/peer_bounceparser.pl" "$HERE/bounces" --report-only
    for split in dev heldout; do
        python3 "$HERE/score.py" --peer "$HERE/peer_bounceparser.pl" $ADDED --split $split --report-only
    done
else
    echo "### peer: Mail::DeliveryStatus::BounceParser not installed (libmail-deliverystatus-bounceparser-perl)"
fi
