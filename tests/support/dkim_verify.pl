#!/usr/bin/perl
# Verify every DKIM signature of the message on stdin with Mail::DKIM, asking
# the DNS server at 127.0.0.1:PORT (the tests' loopback server) for the keys.
# Prints one line per signature: result<TAB>domain<TAB>selector<TAB>algorithm<TAB>detail,
# then a last line: overall<TAB>result<TAB>detail.
use strict;
use warnings;
use Mail::DKIM::Verifier;
use Mail::DKIM::DNS;
use Net::DNS::Resolver;

my $port = shift @ARGV or die "usage: dkim_verify.pl DNS_PORT < message\n";
Mail::DKIM::DNS::resolver(Net::DNS::Resolver->new(
    nameservers => ['127.0.0.1'], port => $port, recurse => 1, tcp_timeout => 5, udp_timeout => 5));

binmode STDIN;
my $dkim = Mail::DKIM::Verifier->new();
while (my $chunk = <STDIN>) {
    $dkim->PRINT($chunk);
}
$dkim->CLOSE;

foreach my $sig ($dkim->signatures) {
    printf "%s\t%s\t%s\t%s\t%s\n", $sig->result // '', $sig->domain // '', $sig->selector // '',
        $sig->algorithm // '', $sig->result_detail // '';
}
printf "overall\t%s\t%s\n", $dkim->result // '', $dkim->result_detail // '';
