"""Candidates for tests/data/corpus/train/world19.yaml (issue #8, the twenty-first round, branch
world19), aimed at the confusion families the issue names: authentication and relay refusals that
name a recipient or say "no such user" (an AUTH username, a login's relay permissions, an account
that may not receive outside mail), the sending side's own DNS, connection and TLS texts without a
reply code, block lists vs policy vs greylisting, recipient vs protocol syntax, message-format
policies vs content.

Facts only (the texts as the programs send or record them, placeholders filled with documentation
values); no earlier round read any of these sources:

- LBBS, Naveen Albert's Lightweight Bulletin Board System, whose SMTP server many small hosts run
  (`InterLinked1/lbbs`, GPL-2.0): `nets/net_smtp.c` (its MTA and MSA replies: sequence, AUTH, MAIL
  and RCPT checks, the sender blacklist, DATA, loops, size, line length, STARTTLS; `smtp_reply(smtp,
  550, 5.7.1, "...")` sends "550 5.7.1 ..."), `modules/mod_smtp_delivery_local.c` (an account that may
  not receive outside mail, a full mailbox), `modules/mod_smtp_delivery_external.c` (the submission
  side's relay refusals and null-MX / NXDOMAIN refusals, and the texts its queue writes into its own
  DSNs without a reply code: "Domain does not accept mail", "No MX record(s) located for hostname
  <d>", "Connection refused", "STARTTLS not supported", "Message too large (...)", "XOAUTH2 not
  supported"), `modules/mod_smtp_greylisting.c`.
- Citadel, the groupware server (`mingodad/citadel`, a mirror of citadel.org's tree, GPL-3.0):
  `citadel/modules/smtp/serv_smtp.c` (its SMTP/LMTP server: the RBL text of `domain.c`'s rbl_check,
  "Invalid recipient: <a>" of `msgbase.c`'s validate_recipients, AUTH, relay and sequence replies,
  the DATA filter and delivery errors), and the delivery statuses its SMTP client records without a
  reply code (`serv_smtp.c` smtp_try, `smtp_clienthandlers.c` ReadErrors, `serv_smtpeventclient.c`).
- OpenSMTPD filters (the smtpd filter protocol: "reject|550 ..." is sent as is, a "disconnect"
  result as "421 ..." - libopensmtpd's osmtpd_filter_disconnect): `catap/opensmtpd-filter-dnsbl`
  (`main.c`, ISC), `ajdiaz/opensmtpd-filter-spam` (`src/filter_spam.c`: its DNSBL and SPF verdict
  "Blacklisted", its greylisting "Temporary error"), `jdelic/opensmtpd-filter-dnsbl`,
  `jdelic/opensmtpd-filter-greylistd`, `jdelic/opensmtpd-filter-denyrelay` (`main.go`, with
  `jdelic/opensmtpd-filters-go eventresponder.go`: HardReject "550 %s", SoftReject "451 %s",
  Greylist "421 %s"), `mocheryl/opensmtpd-filter-clamav` (`filter-clamav.go`),
  `Al2Klimov/opensmtpd-filter-qdgrey` (`src/main.rs`), `Al2Klimov/opensmtpd-filter-nobcc`
  (`src/main.rs`), `marco-schm/opensmtpd-filter-mimetype` (`internal/protocol/handler.go`,
  `internal/mail/checker.go`).
- Replies quoted in issue threads no earlier round used: rspamd/rspamd #3174 (a force_actions DMARC
  reject), foxcpp/maddy #627 (maddy's DMARC check at DATA), mysociety/alaveteli #3745 (a greylisting
  ACL's reply as Exim logged it).

Gathered and labelled by reading, before any rule was run on them. Labels follow the corpus README's
conventions: protocol syntax and sequence errors (including "Syntax error in RCPT command", as the
corpus labels "501 5.5.2 RCPT TO syntax error", and unknown AUTH mechanisms) protocol_error about the
session, a malformed MAIL argument protocol_error about the sender; a failed SMTP AUTH auth_failed
about the session (Citadel's "500 No such user." answers AUTH LOGIN's username, not a recipient);
"authentication required" and STARTTLS-first relay_denied about the session; a server or login that
may not relay relay_denied about the session, a sender the login may not use or "You must log in to
send mail from <domain>" relay_denied about the sender; a DNSBL naming the client blocklisted about
the session, a listed sender address or domain blocklisted about the sender; the message's format
(headers, MIME, line length, Bcc recipients) policy_rejected about the message; viruses
and banned attachment types spam_content (as the corpus labels mime_banned_file); internal errors
(even under 550) temporary_failure about the session; a mail loop routing_dns about the message; the sending side's own texts: a domain with null MX or without MX/A,
routing_dns about the recipient, a lost or refused connection temporary_failure / routing_dns about
the relay, TLS or AUTH it requires and cannot get temporary_failure / auth_failed. Where the source
says what a reply means, that is the label: LBBS's "550 5.1.1 User unauthorized to receive external
mail" refuses an existing mailbox whose owner may not receive outside mail (policy_rejected about the
recipient, never listed, whatever its X.1.1); its "550 5.7.1 Message rejected due to policy failure"
is its DMARC reject (auth_failed about the sender); its "554 5.7.1 This message has been rejected by
the recipient" a recipient's Sieve or MailScript rule (policy_rejected about the message);
ajdiaz's "550 Blacklisted" at MAIL is an SPF fail, at connect a DNSBL hit, its "451 Temporary error"
at MAIL greylisting; Citadel's "550 Message rejected by filter" the default text of a spam or virus
scanner hook (spam_content).

Each tuple: (provider, reply, category, scope, stage, source).
"""
LB = "https://github.com/InterLinked1/lbbs nets/net_smtp.c"
LBX = "https://github.com/InterLinked1/lbbs modules/mod_smtp_delivery_external.c"
LBL = "https://github.com/InterLinked1/lbbs modules/mod_smtp_delivery_local.c"
LBG = "https://github.com/InterLinked1/lbbs modules/mod_smtp_greylisting.c"
CS = "https://github.com/mingodad/citadel citadel/modules/smtp/serv_smtp.c"
CR = "https://github.com/mingodad/citadel citadel/modules/smtp/serv_smtp.c (rbl_check text: citadel/domain.c)"
CV = "https://github.com/mingodad/citadel citadel/modules/smtp/serv_smtp.c (validate_recipients text: citadel/msgbase.c)"
CC = "https://github.com/mingodad/citadel citadel/modules/smtp/smtp_clienthandlers.c (ReadErrors), serv_smtp.c smtp_try"
CE = "https://github.com/mingodad/citadel citadel/modules/smtp/serv_smtpeventclient.c, serv_smtp.c smtp_try"
OD = "https://github.com/catap/opensmtpd-filter-dnsbl main.c (disconnect result: libopensmtpd osmtpd_filter_disconnect, \"421 \")"
OS = "https://github.com/ajdiaz/opensmtpd-filter-spam src/filter_spam.c"
JD = "https://github.com/jdelic/opensmtpd-filter-dnsbl main.go (HardReject/SoftReject: jdelic/opensmtpd-filters-go eventresponder.go)"
JG = "https://github.com/jdelic/opensmtpd-filter-greylistd main.go (responder texts: jdelic/opensmtpd-filters-go eventresponder.go)"
JR = "https://github.com/jdelic/opensmtpd-filter-denyrelay main.go (responder texts: jdelic/opensmtpd-filters-go eventresponder.go)"
CL = "https://github.com/mocheryl/opensmtpd-filter-clamav filter-clamav.go"
QG = "https://github.com/Al2Klimov/opensmtpd-filter-qdgrey src/main.rs"
NB = "https://github.com/Al2Klimov/opensmtpd-filter-nobcc src/main.rs"
MT = "https://github.com/marco-schm/opensmtpd-filter-mimetype internal/protocol/handler.go, internal/mail/checker.go"

C = [
# LBBS net_smtp.c
("LBBS", "501 5.5.2 Syntax Error", "protocol_error", "session", None, LB),
("LBBS", "503 5.5.1 EHLO/HELO first.", "protocol_error", "session", "mail", LB),
("LBBS", "503 5.5.1 MAIL first.", "protocol_error", "session", "rcpt", LB),
("LBBS", "503 5.5.1 RCPT first.", "protocol_error", "session", "data", LB),
("LBBS", "421 Service unavailable, closing transmission channel", "temporary_failure", "session", "connect", LB),
("LBBS", "501 5.5.4 Empty HELO/EHLO argument not allowed, closing connection.", "protocol_error", "session", "helo", LB),
("LBBS", "501 5.5.2 Cannot decode response", "protocol_error", "session", None, LB),
("LBBS", "502 5.5.2 Decoding failure", "protocol_error", "session", None, LB),
("LBBS", "535 5.7.8 Authentication credentials invalid", "auth_failed", "session", None, LB),
("LBBS", "552 5.3.4 Message too large", "message_too_large", "message", "mail", LB),
("LBBS", "452 4.3.1 Insufficient system storage", "temporary_failure", "session", "mail", LB),
("LBBS", "455 4.5.1 Unsupported parameter", "protocol_error", "session", "mail", LB),
("LBBS", "502 5.5.1 Unsupported command", "protocol_error", "session", None, LB),
("LBBS", "501 5.5.1 Missing required parameter for ETRN", "protocol_error", "session", None, LB),
("LBBS", "501 5.5.4 Unrecognized parameter", "protocol_error", "session", "mail", LB),
("LBBS", "530 5.7.0 Authentication required", "relay_denied", "session", "mail", LB),
("LBBS", "501 5.1.7 Syntax error in MAIL command", "protocol_error", "sender", "mail", LB),
("LBBS", "530 5.7.0 HELO/EHLO domain does not match MAIL FROM domain", "policy_rejected", "session", "mail", LB),
("LBBS", "554 5.7.1 This domain is blacklisted", "blocklisted", "sender", "mail", LB),
("LBBS", "554 5.7.1 This email address is blacklisted", "blocklisted", "sender", "mail", LB),
("LBBS", "550 5.7.1 Mail not accepted externally here", "relay_denied", "session", "rcpt", LB),
("LBBS", "451 Local error in processing", "temporary_failure", "session", "rcpt", LB),
("LBBS", "501 5.1.7 Syntax error in RCPT command", "protocol_error", "session", "rcpt", LB),
("LBBS", "550 5.1.1 No such user here", "unknown_recipient", "recipient", "rcpt", LB),
("LBBS", "452 4.5.3 Your message has too many recipients", "rate_limited", "message", "rcpt", LB),
("LBBS", "550 5.7.1 Message rejected due to policy failure", "auth_failed", "sender", "data", LB),
("LBBS", "554 5.7.1 This message has been rejected by the recipient", "policy_rejected", "message", "data", LB),
("LBBS", "451 Delivery failed", "temporary_failure", "session", "data", LB),
("LBBS", "550 5.7.1 Malformed From header", "policy_rejected", "message", "data", LB),
("LBBS", "550 5.7.1 You are not authorized to send email using this identity", "relay_denied", "sender", "data", LB),
("LBBS", "550 5.7.1 Missing From header", "policy_rejected", "message", "data", LB),
("LBBS", "550 5.7.0 Mail relay rejected.", "relay_denied", "session", "data", LB),
("LBBS", "552 5.2.3 Your message exceeded our message size limits", "message_too_large", "message", "data", LB),
("LBBS", "451 4.3.0 Message not received successfully, try again", "temporary_failure", "session", "data", LB),
("LBBS", "554 5.6.0 Message exceeded 100 hops, this may indicate a mail loop", "routing_dns", "message", "data", LB),
("LBBS", "452 Server error, unable to allocate buffer", "temporary_failure", "session", "data", LB),
("LBBS", "550 Maximum line length exceeded", "policy_rejected", "message", "data", LB),
("LBBS", "454 5.5.1 STARTTLS may not be repeated", "protocol_error", "session", None, LB),
("LBBS", "454 5.5.1 STARTTLS not available", "temporary_failure", "session", None, LB),
("LBBS", "504 5.5.4 Must issue a STARTTLS command first", "relay_denied", "session", "mail", LB),
("LBBS", "503 5.7.0 Already authenticated, no identity changes permitted", "protocol_error", "session", None, LB),
("LBBS", "504 5.7.4 Unrecognized Authentication Type", "protocol_error", "session", None, LB),
("LBBS", "451 4.4.2 Timeout - closing connection", "temporary_failure", "session", None, LB),
("LBBS", "502 5.5.1 Unrecognized command", "protocol_error", "session", None, LB),
# LBBS delivery modules
("LBBS", "550 5.7.0 Mail relay denied.", "relay_denied", "session", "data", LBX),
("LBBS", "550 5.7.0 Mail relay denied. Unauthorized to relay external mail.", "relay_denied", "session", "data", LBX),
("LBBS", "553 5.1.2 Recipient domain does not accept mail.", "routing_dns", "recipient", "data", LBX),
("LBBS", "553 5.1.2 Recipient domain not found.", "routing_dns", "recipient", "data", LBX),
("LBBS", "550 5.7.0 Mail relay denied. Forwarding to remote hosts disabled", "relay_denied", "session", "rcpt", LBX),
("LBBS", "Domain does not accept mail", "routing_dns", "recipient", None, LBX),
("LBBS", "No MX record(s) located for hostname example.com", "routing_dns", "recipient", None, LBX),
("LBBS", "Connection refused", "routing_dns", "relay", None, LBX),
("LBBS", "STARTTLS not supported", "temporary_failure", "relay", None, LBX),
("LBBS", "Message too large (3145728 bytes, maximum is 1048576)", "message_too_large", "message", None, LBX),
("LBBS", "XOAUTH2 not supported", "auth_failed", "session", None, LBX),
("LBBS", "550 5.1.1 User unauthorized to receive external mail", "policy_rejected", "recipient", "rcpt", LBL),
("LBBS", "452 4.2.2 The mailbox you've tried to reach is full (over quota)", "mailbox_full", "recipient", "data", LBL),
("LBBS", "421 Message greylisted, retry delivery later", "greylisted", "session", "data", LBG),
# Citadel
("Citadel", "500 Too many users are already online (maximum is 20)", "too_many_connections", "session", "connect", CS),
("Citadel", "500 Only LHLO is allowed when running LMTP", "protocol_error", "session", "helo", CS),
("Citadel", "500 No such user.", "auth_failed", "session", None, CS),
("Citadel", "535 Authentication failed.", "auth_failed", "session", None, CS),
("Citadel", "504 Authentication failed.", "auth_failed", "session", None, CS),
("Citadel", "504 Already logged in.", "protocol_error", "session", None, CS),
("Citadel", "504 Unknown authentication method.", "protocol_error", "session", None, CS),
("Citadel", "503 Only one sender permitted", "protocol_error", "session", "mail", CS),
("Citadel", "501 Syntax error", "protocol_error", "session", "mail", CS),
("Citadel", "550 You must log in to send mail from example.org", "relay_denied", "sender", "mail", CS),
("Citadel", "503 Need MAIL before RCPT", "protocol_error", "session", "rcpt", CS),
("Citadel", "550 You must log in to send mail on this port.", "relay_denied", "session", "rcpt", CS),
("Citadel", "452 Too many recipients", "rate_limited", "message", "rcpt", CS),
("Citadel", "550 Message rejected due to known spammer source IP address", "blocklisted", "session", "rcpt", CR),
("Citadel", "550 Invalid recipient: bob@example.com", "unknown_recipient", "recipient", "rcpt", CV),
("Citadel", "551 <bob@example.com> - you do not have permission to send Internet mail", "relay_denied", "session", "rcpt", CS),
("Citadel", "551 <bob@example.com> - relaying denied", "relay_denied", "session", "rcpt", CS),
("Citadel", "503 Need MAIL command first.", "protocol_error", "session", "data", CS),
("Citadel", "503 Need RCPT command first.", "protocol_error", "session", "data", CS),
("Citadel", "550 Unable to save message: internal error.", "temporary_failure", "session", "data", CS),
("Citadel", "550 Message rejected by filter", "spam_content", "message", "data", CS),
("Citadel", "550 Internal delivery error", "temporary_failure", "session", "data", CS),
("Citadel", "550 Invalid sender 'app@example.org' - rejecting this message.", "relay_denied", "sender", "data", CS),
("Citadel", "554 TLS not supported here", "protocol_error", "session", None, CS),
("Citadel", "502 I'm afraid I can't do that.", "protocol_error", "session", None, CS),
("Citadel", "No MX hosts found for <example.com>", "routing_dns", "recipient", None, CE),
("Citadel", "Connection broken during SMTP RCPT", "temporary_failure", "relay", None, CC),
("Citadel", "Connection broken during SMTP conversation", "temporary_failure", "relay", None, CC),
("Citadel", "Could not connect: Connection timed out", "routing_dns", "relay", None, CS),
# OpenSMTPD filters
("OpenSMTPD filter-dnsbl", "421 Listed at zen.spamhaus.org", "blocklisted", "session", "connect", OD),
("OpenSMTPD filter-dnsbl", "421 DNS error on zen.spamhaus.org", "temporary_failure", "session", "connect", OD),
("OpenSMTPD filter-spam", "550 Blacklisted", "blocklisted", "session", "connect", OS),
("OpenSMTPD filter-spam", "451 Temporary error", "greylisted", "session", "mail", OS),
("OpenSMTPD filter-dnsbl (jdelic)", "550 Your host is listed on blacklist zen.spamhaus.org", "blocklisted", "session", "connect", JD),
("OpenSMTPD filter-dnsbl (jdelic)", "451 Failure in IP processing", "temporary_failure", "session", "connect", JD),
("OpenSMTPD filter-greylistd", "421 192.0.2.1 greylisted. Try again later.", "greylisted", "session", "connect", JG),
("OpenSMTPD filter-greylistd", "550 192.0.2.1 blacklisted. Transmission denied.", "blocklisted", "session", "connect", JG),
("OpenSMTPD filter-greylistd", "451 There seems to be a technical problem on our end. Please try again.", "temporary_failure", "session", "connect", JG),
("OpenSMTPD filter-denyrelay", "550 Authenticated user app@example.org is not permitted to relay to bob@example.com", "relay_denied", "session", "rcpt", JR),
("OpenSMTPD filter-denyrelay", "451 Temporary failure while checking relay policy", "temporary_failure", "session", "rcpt", JR),
("OpenSMTPD filter-denyrelay", "550 Valid email auth token required for relay", "relay_denied", "session", "data", JR),
("OpenSMTPD filter-clamav", "451 4.7.1 Virus filter failed", "temporary_failure", "session", "data", CL),
("OpenSMTPD filter-clamav", "554 5.7.1 Virus found", "spam_content", "message", "data", CL),
("OpenSMTPD filter-qdgrey", "450 Greylisted", "greylisted", "session", "rcpt", QG),
("OpenSMTPD filter-nobcc", "550 BCC not allowed", "policy_rejected", "message", "data", NB),
("OpenSMTPD filter-mimetype", "550 Policy violation: No valid headers", "policy_rejected", "message", "data", MT),
("OpenSMTPD filter-mimetype", "550 Policy violation: Forbidden MIME type: application/x-msdownload (File: invoice.exe)", "spam_content", "message", "data", MT),
("OpenSMTPD filter-mimetype", "550 Policy violation: Malformed multipart message: missing boundary", "policy_rejected", "message", "data", MT),
# issue threads
("rspamd", "554 5.7.1 Email rejected per DMARC policy", "auth_failed", "sender", "data", "https://github.com/rspamd/rspamd/issues/3174"),
("maddy", "550 5.7.1 DMARC check failed", "auth_failed", "sender", "data", "https://github.com/foxcpp/maddy/issues/627"),
("Exim greylisting ACL", "451-192.0.2.2 is not yet authorized to deliver mail from\n451-<app@example.org> to <bob@example.com>.\n451 Please try later.", "greylisted", "session", "rcpt", "https://github.com/mysociety/alaveteli/pull/3745"),
]
