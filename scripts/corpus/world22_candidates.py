"""Candidates for tests/data/corpus/train/world22.yaml (issue #8, the twenty-fourth round, branch
world22), aimed at the confusion families the issue names, from sources no earlier round read:
sendmail's own configuration rulesets (cf/m4/proto.m4: the texts its check_relay, check_mail,
check_rcpt, trust_auth and TLS_connection rulesets send - client rDNS, sender domains without
good MX records, unqualified senders and recipients, relaying refused for a client whose name
does not resolve, a login acting as another sender, TLS requirements, connection limits), Cyrus
IMAP's LMTP server (imap/lmtpengine.c: its delivery errors - unknown mailbox, ACL refusal, over
quota, message format, storage and backend failures - and its protocol and SASL replies), the
Proxmox Mail Gateway's policy service (src/bin/pmgpolicy: its greylisting and SPF-fail actions
as Postfix sends them at RCPT), and two issue threads. A second batch, labelled and committed after the
first batch's first pass and before any rule changed: qpsmtpd's plugins (helo, dmarc, headers,
check_basicheaders, bogus_bounce, greylisting, check_earlytalker, karma, dnsbl; the codes its SMTP.pm
gives each hook), more of Cyrus's LMTP replies, Exchange Online's documented NDR texts (Microsoft
Learn; the enhanced code and text as documented, the reply code as Exchange Online sends them),
Cisco IronPort's poor-reputation refusal, Trend Micro DDEI's ERS refusals and IceWarp's documented
5xx replies.

Facts only (the texts as the programs send them, placeholders filled with documentation values);
each entry names its source. Labelled by reading, before any rule was run on them, with the
corpus README's conventions: the sender's domain or its MX records failing a check auth_failed
about the sender (a temporary DNS failure of that check temporary_failure about the sender); a
client whose reverse DNS fails auth_failed about the session; relaying refused relay_denied about
the session whatever the reason given for not trusting the client; a login that may not use a
sender identity relay_denied about the sender; an unqualified recipient syntax_error about the
recipient; the message's format (NUL, bare LF, 8-bit headers, bad headers) policy_rejected about
the message; protocol syntax and sequence errors protocol_error about the session; a failed SASL
exchange auth_failed about the session; TLS required or too weak relay_denied about the session
(as the corpus labels "530 encryption required"); STARTTLS failing protocol_error about the
session (as the corpus labels sendmail's "403 4.7.0 TLS handshake failed."); a mailbox ACL that
refuses the sender policy_rejected about the recipient; the sending side's own DANE failure
temporary_failure about the relay (Exchange Online's own MTA-STS/DANE/TLS NDRs too); a recipient that
accepts only authenticated (internal) senders or listed senders policy_rejected about the recipient, as
the corpus labels Exchange's 5.7.133/5.7.134/5.7.12; an outbound account banned or over its submission
quota policy_rejected / rate_limited about the sender, as the corpus labels 5.7.501; a mail loop
routing_dns about the message. Where the source says what a reply means, that is the label:
PMG's "Service is unavailable (try later)" is its greylisting (greylisted), its REJECT with
Mail::SPF's authority explanation "Please see http://www.open-spf.org/Why?..." an SPF fail
(auth_failed about the sender).

After the first pass (measured on both batches, labels of a57a349), before any rule changed, twelve labels
were set to the corpus's own label of the same kind of text and one candidate dropped, no rule involved:
sendmail's "Real domain name required for sender address" protocol_error (the corpus's label of "domain
name required for sender address", sender-address-syntax); qpsmtpd's "HELO name contains invalid FQDN
characters" and "Plain IP is invalid HELO hostname" protocol_error (the corpus labels "Invalid EHLO
domain.", "invalid HELO <name>" so) and "That HELO hostname fails FCrDNS" policy_rejected (as "HELO <n>
does not match client <n> [<ip>]"); Exchange Online's "5.7.502 Access denied, banned sender" blocklisted
about the sender (as its 5.7.511 "banned sender[<ip>]"); its 5.4.8 MTA-STS and 5.7.321/322/323/325
TLS/DANE NDRs routing_dns about the recipient (as world16 labels 5.7.324 "dnssec-invalid: Destination
domain returned invalid DNSSEC records"; first read as the sending side's own TLS failures); a cancelled
AUTH exchange (Cyrus "client canceled authentication", IceWarp "Authentication canceled") protocol_error
(the project's reading of RFC 4954's cancel, protocol-sequence). Cyrus's "552 5.2.2 Over quota SESSIONID=<..>"
was dropped: a training entry has the same wording.

Each tuple: (provider, reply, category, scope, stage, source).
"""
SM = "https://github.com/freebsd/freebsd-src contrib/sendmail/cf/m4/proto.m4 (sendmail's cf rulesets)"
CY = "https://github.com/cyrusimap/cyrus-imapd imap/lmtpengine.c"
QP = "https://github.com/smtpd/qpsmtpd "
EXO = "https://learn.microsoft.com/en-us/exchange/mail-flow-best-practices/non-delivery-reports-in-exchange-online/non-delivery-reports-in-exchange-online (OfficeDocs-Exchange source; enhanced code and text as documented, reply code 550/450 as Exchange Online sends them)"
ICE = "https://esupport.icewarp.com/index.php?/Knowledgebase/Article/View/12/29/interpretation-of-5xx-errors-in-icewarp-smtp"
PMG = "https://github.com/proxmox/pmg-api src/bin/pmgpolicy (its action as Postfix sends it at RCPT, smtpd_check.c)"

C = [
# sendmail's cf rulesets (batch 1)
("sendmail (cf: check_mail)", "553 5.5.4 <app@localhost>... Real domain name required for sender address", "protocol_error", "sender", "mail", SM),
("sendmail (cf: check_mail)", "553 5.5.4 <app>... Domain name required for sender address app", "policy_rejected", "sender", "mail", SM),
("sendmail (cf: check_mail, FEATURE(badmx))", "450 4.1.2 <app@example.com>... MX lookup failure for example.com", "temporary_failure", "sender", "mail", SM),
("sendmail (cf: check_mail, FEATURE(badmx))", "550 5.1.2 <app@example.com>... Illegal MX record for host example.com", "auth_failed", "sender", "mail", SM),
("sendmail (cf: check_mail, FEATURE(badmx))", "550 5.1.2 <app@example.com>... Invalid MX record for host example.com", "auth_failed", "sender", "mail", SM),
("sendmail (cf: check_rcpt)", "553 5.5.4 <jdoe>... Fully qualified domain name required", "syntax_error", "recipient", "rcpt", SM),
("sendmail (cf: check_rcpt)", "553 5.5.4 <jdoe>... Domain name required", "syntax_error", "recipient", "rcpt", SM),
("sendmail (cf: check_rcpt, relay_mx_served)", "450 4.4.0 <b@example.net>... Can not check MX records for recipient host example.net", "routing_dns", "recipient", "rcpt", SM),
("sendmail (cf: Relay_ok)", "450 4.4.0 <b@example.net>... Relaying temporarily denied. Cannot resolve PTR record for 192.0.2.1", "relay_denied", "session", "rcpt", SM),
("sendmail (cf: Relay_ok)", "550 5.7.1 <b@example.net>... Relaying denied. IP name possibly forged mail.example.com", "relay_denied", "session", "rcpt", SM),
("sendmail (cf: Relay_ok)", "550 5.7.1 <b@example.net>... Relaying denied. IP name lookup failed mail.example.com", "relay_denied", "session", "rcpt", SM),
("sendmail (cf: FEATURE(block_bad_helo))", "550 5.7.1 <b@example.net>... bogus HELO name used: localhost", "policy_rejected", "session", "rcpt", SM),
("sendmail (cf: trust_auth)", "550 5.7.1 not authenticated", "relay_denied", "session", "mail", SM),
("sendmail (cf: trust_auth)", "550 5.7.1 app@example.com not allowed to act as other@example.com", "relay_denied", "sender", "mail", SM),
("sendmail (cf: FEATURE(require_rdns))", "550 5.7.1 Fix reverse DNS for 192.0.2.1", "auth_failed", "session", None, SM),
("sendmail (cf: FEATURE(require_rdns))", "451 4.1.8 Client IP address 192.0.2.1 does not resolve", "auth_failed", "session", None, SM),
("sendmail (cf: FEATURE(require_rdns))", "451 4.1.8 Possibly forged hostname for 192.0.2.1", "auth_failed", "session", None, SM),
("sendmail (cf: FEATURE(enhdnsbl))", "451 4.4.3 Temporary lookup failure of 192.0.2.1 at zen.spamhaus.org", "temporary_failure", "session", None, "https://github.com/freebsd/freebsd-src contrib/sendmail/cf/feature/enhdnsbl.m4"),
("sendmail (cf: FEATURE(dnsbl))", "550 5.7.1 Rejected: 192.0.2.1 listed at zen.spamhaus.org", "blocklisted", "session", None, SM),
("sendmail (cf: FEATURE(conncontrol))", "452 4.3.2 Too many open connections.", "too_many_connections", "session", None, SM),
("sendmail (cf: TLS_connection)", "403 4.7.0 STARTTLS failed.", "protocol_error", "session", None, SM),
("sendmail (cf: TLS_connection, own client)", "403 4.7.0 DANE check failed.", "temporary_failure", "relay", None, SM),
("sendmail (cf: TLS_connection)", "403 4.7.0 encryption too weak 56 less than 128", "relay_denied", "session", None, SM),
("sendmail (cf: TLS_connection)", "403 4.7.0 authentication required", "relay_denied", "session", None, SM),
("sendmail (cf: TLS_connection)", "403 4.7.0 other side does not support STARTTLS", "relay_denied", "session", None, SM),
# Cyrus IMAP's LMTP server
("Cyrus IMAP (lmtpd)", "451 4.3.0 System I/O error", "temporary_failure", "session", None, CY),
("Cyrus IMAP (lmtpd)", "451 4.4.3 Remote server unavailable", "temporary_failure", "session", None, CY),
("Cyrus IMAP (lmtpd)", "451 4.3.1 cannot create file: out of space", "temporary_failure", "session", None, CY),
("Cyrus IMAP (lmtpd)", "451 4.3.0 transient system error", "temporary_failure", "session", None, CY),
("Cyrus IMAP (lmtpd)", "550-You do not have permission to post a message to this mailbox.\n550-Please contact the owner of this mailbox in order to submit\n550-your message, or postmaster@example.net if you believe you\n550-received this message in error.\n550 5.7.1 Permission denied", "policy_rejected", "recipient", "rcpt", CY),
# (dropped after the first pass: "552 5.2.2 Over quota SESSIONID=<...>" is a training entry's wording; only the
# session id's host differs, so the near-duplicate key missed it)
("Cyrus IMAP (lmtpd)", "451 4.2.0 Mailbox has an invalid format", "temporary_failure", "recipient", None, CY),
("Cyrus IMAP (lmtpd)", "451 4.2.1 Mailbox Moved", "temporary_failure", "recipient", None, CY),
("Cyrus IMAP (lmtpd)", "554 5.6.0 Message contains NUL characters", "policy_rejected", "message", "data", CY),
("Cyrus IMAP (lmtpd)", "554 5.6.0 Message contains bare newlines", "policy_rejected", "message", "data", CY),
("Cyrus IMAP (lmtpd)", "554 5.6.0 Message contains non-ASCII characters in headers", "policy_rejected", "message", "data", CY),
("Cyrus IMAP (lmtpd)", "554 5.6.0 Message contains invalid header", "policy_rejected", "message", "data", CY),
("Cyrus IMAP (lmtpd)", "554 5.6.0 Message has no header/body separator", "policy_rejected", "message", "data", CY),
("Cyrus IMAP (lmtpd)", "550-Mailbox unknown.  Either there is no mailbox associated with this\n550-name or you do not have authorization to see it.\n550 5.1.1 User unknown", "unknown_recipient", "recipient", "rcpt", CY),
("Cyrus IMAP (lmtpd)", "451 4.3.0 Unexpected internal error", "temporary_failure", "session", None, CY),
("Cyrus IMAP (lmtpd)", "451 4.3.1 cannot create temporary file: No space left on device", "temporary_failure", "session", "data", CY),
("Cyrus IMAP (lmtpd)", "451 4.3.2 cannot stat message temporary file: Input/output error", "temporary_failure", "session", "data", CY),
("Cyrus IMAP (lmtpd)", "501 5.5.4 authentication failure", "auth_failed", "session", None, CY + " (sasl_errstring of SASL_BADAUTH)"),
("Cyrus IMAP (lmtpd)", "501 5.5.4 client canceled authentication", "protocol_error", "session", None, CY),
("Cyrus IMAP (lmtpd)", "504 Unrecognized authentication type.", "protocol_error", "session", None, CY),
("Cyrus IMAP (lmtpd)", "503 5.5.0 AUTH not permitted now", "protocol_error", "session", None, CY),
("Cyrus IMAP (lmtpd)", "503 5.5.0 already authenticated", "protocol_error", "session", None, CY),
("Cyrus IMAP (lmtpd)", "552 5.2.3 Message size (31457280) exceeds fixed maximum message size (20971520)", "message_too_large", "message", "data", CY),
("Cyrus IMAP (lmtpd)", "430 Authentication required", "relay_denied", "session", "mail", CY),
("Cyrus IMAP (lmtpd)", "501 5.5.4 Unrecognized BODY type", "protocol_error", "session", "mail", CY),
("Cyrus IMAP (lmtpd)", "501 5.5.2 SIZE requires a value", "protocol_error", "session", "mail", CY),
("Cyrus IMAP (lmtpd)", "503 5.5.1 Need MAIL command", "protocol_error", "session", "rcpt", CY),
("Cyrus IMAP (lmtpd)", "454 4.3.3 Already successfully executed STARTTLS", "protocol_error", "session", None, CY),
("Cyrus IMAP (lmtpd)", "503 5.5.0 STARTTLS not permitted now", "protocol_error", "session", None, CY),
("Cyrus IMAP (lmtpd)", "454 4.3.3 Error initializing TLS", "temporary_failure", "session", None, CY),
("Cyrus IMAP (lmtpd)", "454 4.3.3 STARTTLS failed", "protocol_error", "session", None, CY),
("Cyrus IMAP (lmtpd)", "503 5.5.1 No recipients", "protocol_error", "session", "data", CY),
# Proxmox Mail Gateway's policy service
("Proxmox Mail Gateway (pmgpolicy greylisting)", "450 4.7.1 <b@example.net>: Recipient address rejected: Service is unavailable (try later)", "greylisted", "session", "rcpt", PMG),
("Proxmox Mail Gateway (pmgpolicy SPF)", "554 5.7.1 <b@example.net>: Recipient address rejected: Please see http://www.open-spf.org/Why?s=mfrom;id=app%40example.com;ip=192.0.2.1;r=mx.example.net", "auth_failed", "sender", "rcpt", PMG + "; Mail::SPF's default authority explanation"),
# issue threads
("unknown (an uncommon receiver, quoted anonymously)", "550 5.7.1 <b@example.net>: Recipient address rejected: Inactive MailBox, not poped for more than 6 months", "mailbox_disabled", "recipient", "rcpt", "https://github.com/ActiveCampaign/smtp-field-manual/issues/11"),
("NethServer (rspamd multimap)", "554 5.7.1 Forbidden attachment name extension", "spam_content", "message", "data", "https://github.com/NethServer/dev/issues/5811"),
# --- batch 2 (labelled and committed after batch 1's first pass, before any rule changed) ---
# qpsmtpd's plugins: HELO, rDNS, DMARC, header, bounce, greylisting, early-talker, karma and DNSBL
# refusals, with the codes its SMTP.pm gives each hook (helo 550/450, connect 550/450, mail and rcpt
# 550/450, data_post 552/452)
("qpsmtpd (plugins/helo)", "550 I do not believe you are yahoo.com.", "policy_rejected", "session", "helo", QP + "plugins/helo"),
("qpsmtpd (plugins/helo)", "550 Your HELO hostname is not allowed", "policy_rejected", "session", "helo", QP + "plugins/helo"),
("qpsmtpd (plugins/helo)", "550 You are not localhost", "policy_rejected", "session", "helo", QP + "plugins/helo"),
("qpsmtpd (plugins/helo)", "550 Plain IP is invalid HELO hostname (RFC 2821)", "protocol_error", "session", "helo", QP + "plugins/helo"),
("qpsmtpd (plugins/helo)", "550 RFC 2821 allows an address literal, but we do not", "policy_rejected", "session", "helo", QP + "plugins/helo"),
("qpsmtpd (plugins/helo)", "550 Forged IPs not accepted here", "policy_rejected", "session", "helo", QP + "plugins/helo"),
("qpsmtpd (plugins/helo)", "550 HELO name is not fully qualified. Read RFC 2821", "policy_rejected", "session", "helo", QP + "plugins/helo"),
("qpsmtpd (plugins/helo)", "550 HELO name contains invalid FQDN characters. Read RFC 1035", "protocol_error", "session", "helo", QP + "plugins/helo"),
("qpsmtpd (plugins/helo)", "550 HELO hostname does not exist", "policy_rejected", "session", "helo", QP + "plugins/helo"),
("qpsmtpd (plugins/helo)", "550 HELO hostname did not resolve", "policy_rejected", "session", "helo", QP + "plugins/helo"),
("qpsmtpd (plugins/helo)", "550 no rDNS for 192.0.2.1", "auth_failed", "session", "helo", QP + "plugins/helo"),
("qpsmtpd (plugins/helo)", "550 error getting reverse DNS for 192.0.2.1", "auth_failed", "session", "helo", QP + "plugins/helo"),
("qpsmtpd (plugins/helo)", "550 That HELO hostname fails FCrDNS", "policy_rejected", "session", "helo", QP + "plugins/helo"),
("qpsmtpd (plugins/dmarc)", "552 failed DMARC policy", "auth_failed", "sender", "data", QP + "plugins/dmarc"),
("qpsmtpd (plugins/dmarc)", "552 RFC5322.From host does not exist", "auth_failed", "sender", "data", QP + "plugins/dmarc"),
("qpsmtpd (plugins/headers)", "552 You must send some data first", "policy_rejected", "message", "data", QP + "plugins/headers"),
("qpsmtpd (plugins/headers)", "552 Headers are missing", "policy_rejected", "message", "data", QP + "plugins/headers"),
("qpsmtpd (plugins/check_basicheaders)", "552 We require a valid From header", "policy_rejected", "message", "data", QP + "plugins/check_basicheaders"),
("qpsmtpd (plugins/check_basicheaders)", "552 We require a valid Date header", "policy_rejected", "message", "data", QP + "plugins/check_basicheaders"),
("qpsmtpd (plugins/headers)", "552 The Date header is too far in the past", "policy_rejected", "message", "data", QP + "plugins/headers"),
("qpsmtpd (plugins/headers)", "552 The Date header is too far in the future", "policy_rejected", "message", "data", QP + "plugins/headers"),
("qpsmtpd (plugins/bogus_bounce)", "552 fail, this bounce message does not have 1 recipient", "policy_rejected", "message", "data", QP + "plugins/bogus_bounce"),
("qpsmtpd (plugins/bogus_bounce)", "552 a bounce return path must be empty (RFC 3834)", "policy_rejected", "message", "data", QP + "plugins/bogus_bounce"),
("qpsmtpd (plugins/greylisting)", "450 This mail is temporarily denied", "greylisted", "session", "mail", QP + "plugins/greylisting"),
("qpsmtpd (plugins/check_earlytalker)", "550 Connecting host started transmitting before SMTP greeting", "protocol_error", "session", "mail", QP + "plugins/check_earlytalker"),
("qpsmtpd (plugins/karma)", "550 You were naughty. You are penalized for 0.87 more days.", "blocklisted", "session", "connect", QP + "plugins/karma"),
("qpsmtpd (plugins/dnsbl)", "550 Listed by rbl-plus.mail-abuse.ja.net - see <URL:http://www.mail-abuse.org/cgi-bin/lookup?192.0.2.1>", "blocklisted", "session", "rcpt", QP + "plugins/dnsbl (its documented dnsbl_zones example)"),
("qpsmtpd (SMTP.pm connect_respond)", "550 Connection from you denied, bye bye.", "policy_rejected", "session", "connect", QP + "lib/Qpsmtpd/SMTP.pm"),
("qpsmtpd (SMTP.pm)", "501 ehlo requires domain/address - see RFC-2821 4.1.1.1", "protocol_error", "session", "helo", QP + "lib/Qpsmtpd/SMTP.pm"),
("qpsmtpd (SMTP.pm)", "503 but you already said HELO ...", "protocol_error", "session", "helo", QP + "lib/Qpsmtpd/SMTP.pm"),
("qpsmtpd (SMTP.pm fault)", "451 Internal error - try again later - program fault - command not performed", "temporary_failure", "session", None, QP + "lib/Qpsmtpd/SMTP.pm"),
# Cyrus IMAP's LMTP server, more of its replies
("Cyrus IMAP (lmtpd)", "552 5.2.3 Message SIZE exceeds fixed maximum message size (20971520)", "message_too_large", "message", "mail", CY),
("Cyrus IMAP (lmtpd)", "501 5.5.4 Unrecognized parameters", "protocol_error", "session", "mail", CY),
# Exchange Online's documented NDR texts (Microsoft Learn, "Email non-delivery reports and SMTP errors in Exchange Online")
("Exchange Online", "550 5.7.135 Sender was not authenticated for public folder", "policy_rejected", "recipient", "rcpt", EXO),
("Exchange Online", "550 5.7.136 Sender was not authenticated", "policy_rejected", "recipient", "rcpt", EXO),
("Exchange Online", "550 5.7.1 Delivery not authorized", "policy_rejected", "recipient", "rcpt", EXO),
("Exchange Online (own outbound)", "550 5.4.8 MX hosts of example.com failed MTA-STS validation", "routing_dns", "recipient", None, EXO),
("Exchange Online (own outbound)", "550 5.7.321 starttls-not-supported: Destination mail server must support TLS to receive mail.", "routing_dns", "recipient", None, EXO),
("Exchange Online (own outbound)", "550 5.7.322 certificate-expired: Destination mail server's certificate is expired.", "routing_dns", "recipient", None, EXO),
("Exchange Online (own outbound)", "550 5.7.323 tlsa-invalid: The domain failed DANE validation.", "routing_dns", "recipient", None, EXO),
("Exchange Online (own outbound)", "550 5.7.325 certificate-host-mismatch: Remote certificate MUST have a common name or subject alternative name matching the hostname (DANE)", "routing_dns", "recipient", None, EXO),
("Exchange Online", "550 5.7.25 Access denied, the sending IPv6 address [2001:db8::240] must have a reverse DNS record", "auth_failed", "session", None, EXO),
("Exchange Online", "450 4.7.26 Access denied, a message sent over IPv6 [2001:db8::240] must pass either SPF or DKIM validation, this message is not signed", "auth_failed", "sender", "data", EXO),
("Exchange Online (own outbound)", "550 5.7.502 Access denied, banned sender", "blocklisted", "sender", None, EXO),
("Exchange Online", "550 5.7.506 Access Denied, Bad HELO", "policy_rejected", "session", None, EXO),
("Exchange Online (own outbound)", "550 5.4.300 Message expired", "expired", "relay", None, EXO),
("Exchange Online", "550 5.6.11 Invalid characters", "policy_rejected", "message", "data", EXO),
("Exchange Online (own outbound)", "550 5.2.2 Submission quota exceeded", "rate_limited", "sender", None, EXO),
("Exchange Online", "550 5.4.14 Routing loop detected", "routing_dns", "message", None, EXO),
("Exchange Online", "550 5.1.10 Recipient not found", "unknown_recipient", "recipient", "rcpt", EXO),
("Exchange Online", "550 5.0.350 Requested action not taken: policy violation detected (AS345)", "policy_rejected", "message", "data", EXO),
("Exchange Online", "550 5.0.350 x-dg-ref header is too long", "policy_rejected", "message", "data", EXO),
# gateways' documented replies
("Cisco IronPort ESA", "554-gatekeeper1.example.com\n554 Your access to this mail system has been rejected due to the sending MTA's poor reputation. If you believe that this failure is in error, please contact the intended recipient via alternate means.", "blocklisted", "session", "connect", "https://cisco.com/c/en/us/support/docs/security/email-security-appliance/200436-Identify-and-allow-poor-SenderBase-Reput.html"),
("Trend Micro Deep Discovery Email Inspector", "450 Temporary denial of connection (450) for Zombie matches (ERS)", "blocklisted", "session", "connect", "https://docs.trendmicro.com/en-us/documentation/article/deep-discovery-email-inspector-51-online-help-smtp-error-codes"),
("Trend Micro Deep Discovery Email Inspector", "550 Permanent denial of connection (550) for RBL+ matches (ERS)", "blocklisted", "session", "connect", "https://docs.trendmicro.com/en-us/documentation/article/deep-discovery-email-inspector-51-online-help-smtp-error-codes"),
("IceWarp", "501 5.0.0 Authentication canceled", "protocol_error", "session", None, ICE),
("IceWarp", "501 5.7.1 Permission denied", "relay_denied", "sender", "mail", ICE + " (the AUTH user differs from the MAIL FROM sender, or an unauthenticated submission)"),
("IceWarp", "501 5.5.2 Unbalanced", "protocol_error", "session", None, ICE),
("IceWarp", "501 5.5.4 Syntax error in parameters scanning", "protocol_error", "session", None, ICE),
]
