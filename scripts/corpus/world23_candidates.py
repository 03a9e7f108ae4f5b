"""Candidates for tests/data/corpus/train/world23.yaml (issue #8, the twenty-fifth round, branch
world23), aimed at the confusion families the issue names (SPF vs policy, the client's rDNS vs block
lists, unknown vs disabled vs full mailboxes, recipient vs protocol syntax, relaying vs a login's
sender identity, greylisting that does not say so, the sending side's own TLS/DANE/AUTH texts without
a reply code), from a source no earlier round read: IndiMail-MTA (Manvendra Bhangui's qmail
derivative, used by IndiMail virtual-domain hosts), its SMTP server (indimail-mta-x/smtpd.c: the
replies of its HELO, badhelo, badmailfrom, badrcptto, badip, badhost, PTR, hostaccess, closed user
group, CHECKSENDER, CHECKRECIPIENT, SPF (the qmail-spf patch's default explanation), BATV, SRS,
greylisting, early-talker, virus/bodycheck, relay, AUTH and protocol code), its DNSBL plugin
(indimail-mta-x/dnsbl.c) and the texts its qmail-remote writes into a bounce without a reply code
(indimail-mta-x/qmail-remote.c: connection, STARTTLS/TLS verification, DANE/TLSA and SMTP AUTH
towards the next hop). Facts only: the texts as the programs send or record them, placeholders
(addresses, hosts, IPs, a configured description) filled with documentation values; each entry names
its file.

Labelled by reading, before any rule was run on them, with the corpus README's conventions: a HELO
name on a local list, the client's IP or host name on a local list and a DNSBL naming the client
blocklisted about the session; a HELO that is not a FQDN, does not resolve or claims a local name
policy_rejected about the session; the client's PTR missing or pointing elsewhere auth_failed about
the session; the sender's domain without DNS, a local sender that does not exist (CHECKSENDER) and an
SPF fail auth_failed about the sender; a DNS temporary failure of that check temporary_failure about
the sender; a sender on the local badmailfrom list policy_rejected about the sender (as seed.yaml
labels qmail's badmailfrom); relaying refused relay_denied about the session, a login that may not
use a sender identity ("masquerading/forging") relay_denied about the sender, a closed user group's
refusal of an outside sender relay_denied about the session (as "Local user only"); a recipient on
the local badrcptto list or refused by the site's sender/recipient access list policy_rejected about
the recipient; the message's format (bare LF, a bounce to several recipients) policy_rejected about
the message; protocol syntax and sequence errors and a cancelled or malformed AUTH exchange
protocol_error about the session; an early talker protocol_error about the session (as qpsmtpd's
check_earlytalker in world22); internal failures temporary_failure about the session; a mail loop
routing_dns about the message; the sending side's own connection failure routing_dns about the relay,
its TLS failures temporary_failure about the relay, a DNS lookup for DANE routing_dns about the
relay (changed after the first pass, below), SMTP AUTH refused by the next hop auth_failed about the session. Where the source says what a
reply means, that is the label: "450 try again later (#4.3.0)" after DATA is IndiMail's greylisting
(err_grey: greylisted); "is absent / is inactive / is overquota on this domain" are CHECKRECIPIENT's
answers for a user that does not exist, an inactive user and a user over quota (unknown_recipient,
mailbox_disabled, mailbox_full); "553 Not our message", "553 message format wrong" and "553 message
expired" are BATV's refusals of a bounce whose recipient carries no, a malformed or a stale signature
(backscatter: policy_rejected about the message, not an expiry or a format); "421 your ip is currently
blacklisted, try to auth first (<ip>.<list>)" is its DNSBL plugin (blocklisted); "553 No mail accepted
from an open relay" refuses a client listed as an open relay (blocklisted, as the corpus labels ORBS's
open-relay list); "557 sorry, too many recipients" is its MAXRECIPIENTS limit (rate_limited about the
message); "553 sorry, your host has been denied" is its hostaccess table (the client IP may not send
for the sender's domain: policy_rejected about the session).

After the first pass (measured on the labels of 54cdc2b), before any rule changed, one label was set to the
corpus's own label of the same kind of text, no rule involved: qmail-remote's "<_25._tcp.host>: Unable to fetch
TLSA RR." temporary_failure about the relay (first read as a DNS failure, routing_dns; world21 labels the sending
side's DANE lookups - "DANE failed to authenticate ...: No TLSA records found" - temporary_failure about the relay).

Each tuple: (provider, reply, category, scope, stage, source).
"""
IM = "https://github.com/indimail/indimail-mta "
SD = IM + "indimail-mta-x/smtpd.c"
QR = IM + "indimail-mta-x/qmail-remote.c (the text qmail-remote writes into the bounce; no reply code)"
DB = IM + "indimail-mta-x/dnsbl.c (qmail-smtpd plugin)"
P = "IndiMail-MTA (qmail-smtpd)"
R = "IndiMail-MTA (qmail-remote)"

C = [
# HELO
(P, "451 invalid HELO greeting for local (#4.3.0)", "policy_rejected", "session", "helo", SD),
(P, "553 sorry, your HELO/EHLO greeting is in my badhelo list (#5.7.1)", "blocklisted", "session", "helo", SD),
(P, "451 unable to accept non-FQDN HELO (#4.3.0)", "policy_rejected", "session", "helo", SD),
(P, "553 sorry, helo domain must exist (#5.1.8)", "policy_rejected", "session", "helo", SD),
(P, "554 SMTP protocol violation. Polite people say hello after the server greets them (#5.7.1)", "protocol_error", "session", "connect", SD),
(P, "503 Polite people say hello first (#5.5.4)", "protocol_error", "session", "mail", SD),
# the client
(P, "421 sorry, your IP (192.0.2.10) is temporarily denied (#4.7.1)", "blocklisted", "session", "mail", SD),
(P, "553 sorry, your host (dsl-10.example.net) has been denied (#5.7.1)", "blocklisted", "session", "mail", SD),
(P, "553 No mail accepted from an open relay (192.0.2.10); check your server configs (#5.7.1)", "blocklisted", "session", "mail", SD),
(P, "553 sorry, your IP address (192.0.2.10) PTR (reverse DNS) record points to wrong hostname [mail.example.net] (#5.7.1)", "auth_failed", "session", "mail", SD),
(P, "553  Sorry, no PTR (reverse DNS) record for (192.0.2.10) (#5.7.1)", "auth_failed", "session", "mail", SD),
(P, "553 sorry, your host has been denied (#5.7.1)", "policy_rejected", "session", "mail", SD),
("IndiMail-MTA (dnsbl plugin)", "421 your ip is currently blacklisted, try to auth first (10.2.0.192.zen.spamhaus.org) #5.7.1", "blocklisted", "session", "mail", DB),
("IndiMail-MTA (dnsbl plugin)", "451 Requested action aborted: unable to read controls (#4.3.0)", "temporary_failure", "session", "mail", DB),
# the sender
(P, "553 Bad sender's system address (#5.1.8)", "auth_failed", "sender", "mail", SD),
(P, "451 Sorry, there is a DNS temporary failure (#4.4.3)", "temporary_failure", "sender", "mail", SD),
(P, "553 sorry, your envelope sender has been denied (#5.7.1)", "policy_rejected", "sender", "mail", SD),
(P, "550 See http://spf.pobox.com/why.html?sender=alice%40example.org&ip=192.0.2.10&receiver=mx.example.com (#5.7.1)", "auth_failed", "sender", "mail", SD),
(P, "553 authorization failure (#5.7.1)", "auth_failed", "sender", "mail", SD),
(P, "553 sorry, this MTA does not accept masquerading/forging#5.7.1", "relay_denied", "sender", "mail", SD),
(P, "553 sorry, this MTA does not accept masquerading/forging, auth <bob@example.com> #5.7.1", "relay_denied", "sender", "mail", SD),
(P, "553 sorry, this MTA is a closed user group system (#5.7.1)", "relay_denied", "session", "mail", SD),
(P, "530 authentication required (#5.7.1)", "relay_denied", "session", "mail", SD),
(P, "530 must issue STARTTLS first (#5.7.0)", "relay_denied", "session", "mail", SD),
# the recipient
(P, "553 sorry, that domain isn't allowed to be relayed thru this MTA without authentication#5.7.1", "relay_denied", "session", "rcpt", SD),
(P, "550 we don't relay (#5.7.1)", "relay_denied", "session", "rcpt", SD),
(P, "553 sorry, your envelope recipient has been denied (#5.7.1)", "policy_rejected", "recipient", "rcpt", SD),
(P, "553 sorry, sites access list denies transaction (#5.7.1)", "policy_rejected", "recipient", "rcpt", SD),
(P, "550 sorry, alice@example.org mailbox <nosuch@example.com> is absent on this domain (#5.1.1)", "unknown_recipient", "recipient", "rcpt", SD),
(P, "550 sorry, alice@example.org mailbox <bob@example.com> is inactive on this domain (#5.2.1)", "mailbox_disabled", "recipient", "rcpt", SD),
(P, "550 sorry, alice@example.org mailbox <carol@example.com> is overquota on this domain (#5.2.2)", "mailbox_full", "recipient", "rcpt", SD),
(P, "555 syntax error in address (#5.1.3)", "syntax_error", "recipient", "rcpt", SD),
(P, "421 too many invalid addresses, goodbye (#4.7.1)", "rate_limited", "session", "rcpt", SD),
(P, "557 sorry, too many recipients (#5.7.1)", "rate_limited", "message", "rcpt", SD),
(P, "553 sorry, bounce messages should have a single envelope recipient (#5.7.1)", "policy_rejected", "message", "rcpt", SD),
(P, "553 Not our message (#5.7.1)", "policy_rejected", "message", "rcpt", SD),
(P, "553 message format wrong (#5.7.1)", "policy_rejected", "message", "rcpt", SD),
(P, "553 message expired (#5.7.1)", "policy_rejected", "message", "rcpt", SD),
(P, "451 failed to decode srs address (#4.3.0)", "temporary_failure", "recipient", "rcpt", SD),
(P, "451 unable to decode SRS address (#4.3.5)", "temporary_failure", "recipient", "rcpt", SD),
(P, "451 unable to check recipients (#4.3.2)", "temporary_failure", "session", "rcpt", SD),
(P, "451 Sorry, I got a temporary database error (#4.3.2)", "temporary_failure", "session", "rcpt", SD),
(P, "451 Sorry, there is a local system failure (#4.3.0)", "temporary_failure", "session", "rcpt", SD),
# DATA
(P, "450 try again later (#4.3.0)", "greylisted", "session", "data", SD),
(P, "451 greylist temporary failure - Timeout (#4.3.0)", "temporary_failure", "session", "data", SD),
(P, "451 Sorry, I received Bare LF. (#4.6.0)", "policy_rejected", "message", "data", SD),
(P, "554 too many hops, this message is looping (#5.4.6)", "routing_dns", "message", "data", SD),
(P, "552-we don't accept email with the below content (#5.3.4)\n552 Further Information: Executable attachment", "spam_content", "message", "data", SD),
(P, "451 Sorry, I got a temporary queue failure (#4.3.0)", "temporary_failure", "session", "data", SD),
(P, "451 Sorry, I reached a timeout reading from client (#4.4.2)", "temporary_failure", "session", "data", SD),
# protocol and AUTH
(P, "553 sorry, the given command is too long! (#5.5.2)", "protocol_error", "session", None, SD),
(P, "502 command XYZZY not recognized (#5.5.2)", "protocol_error", "session", None, SD),
(P, "502 disabled by the lord in her infinite wisdom (#5.5.1)", "protocol_error", "session", None, SD),
(P, "501 invalid parameter syntax (#5.3.2)", "protocol_error", "session", "data", SD),
(P, "503 bad sequence of commands (#5.3.2)", "protocol_error", "session", None, SD),
(P, "503 MAIL first (#5.5.1)", "protocol_error", "session", "rcpt", SD),
(P, "503 RCPT first (#5.5.1)", "protocol_error", "session", "data", SD),
(P, "503 no auth during mail transaction (#5.5.0)", "protocol_error", "session", None, SD),
(P, "504 auth type unimplemented (#5.5.1)", "protocol_error", "session", None, SD),
(P, "538 Encryption required for requested authentication mechanism (#5.7.11)", "relay_denied", "session", None, SD),
(P, "501 auth exchange cancelled (#5.0.0)", "protocol_error", "session", None, SD),
(P, "501 malformed auth input (#5.5.4)", "protocol_error", "session", None, SD),
(P, "421 mail.example.com Service not available, closing tranmission channel (#4.3.2)", "temporary_failure", "session", None, SD),
# qmail-remote: the sending side's own texts (no reply code)
(R, "Sorry, I wasn't able to establish an SMTP connection for example.com to 192.0.2.25 port 25 bind IP [198.51.100.7]. (#4.4.1)", "routing_dns", "relay", None, QR),
(R, "TLS connect failed: error:0A000086:SSL routines::certificate verify failed; connected to 192.0.2.25.", "temporary_failure", "relay", None, QR),
(R, "TLS unable to verify server mx.example.com: received certificate for mail.example.net; connected to 192.0.2.25.", "temporary_failure", "relay", None, QR),
(R, "TLS unable to verify server mx.example.com: no certificate provided; connected to 192.0.2.25.", "temporary_failure", "relay", None, QR),
(R, "No TLS achieved while /etc/indimail/certs/tlshosts/mx.example.com.pem exists; connecting to 192.0.2.25.", "temporary_failure", "relay", None, QR),
(R, "STARTTLS rejected while /etc/indimail/certs/tlshosts/mx.example.com.pem exists; connecting to 192.0.2.25.", "temporary_failure", "relay", None, QR),
(R, "_25._tcp.mx.example.com: Unable to fetch TLSA RR. (#4.5.0)", "temporary_failure", "relay", None, QR),
(R, "TLS Connected to 192.0.2.25 but greeting failed.", "temporary_failure", "relay", None, QR),
(R, "Connected to 192.0.2.25 but authentication was rejected (password).", "auth_failed", "session", None, QR),
(R, "Connected to 192.0.2.25 but authentication was rejected (username+digest).", "auth_failed", "session", None, QR),
(R, "recipient did not talk proper QMTP (#4.3.0)", "protocol_error", "relay", None, QR),
]
