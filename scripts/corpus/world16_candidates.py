"""Candidates for tests/data/corpus/train/world16.yaml (issue #8, eighteenth round "world16", branch
world16), aimed at the confusion families the issue names: an address parser's refusal of the sender
vs the recipient's syntax, recipient-address syntax vs protocol syntax, DNS/routing texts without a reply
code, authentication failures (sender verification, DMARC, SPF) vs policy and routing, and blocks of the
sending IP by the recipient's organisation vs rate limits. From MTA sources and a provider's reference
page (facts only: the texts, with placeholders filled with documentation values):

- Exim's address parser (`Exim/exim src/src/parse.c`: "missing or malformed local part (expected word or
  \"<\")", "domain missing or malformed"), as smtp_in.c answers MAIL and RCPT with them ("501 <address>:
  error"), its HELO check ("501 Syntactically invalid EHLO argument(s)", the text quoted in forum and
  issue posts about printers and PHPMailer hosts) and its sender verification's first line ("Verification
  failed for <address>", "Callback setup failed while verifying <address>", acl.c): a DSN often carries
  only the first line of a multi-line reply (PHP-Bounce-Handler's sendmail-dsn-hdrs-503.eml).
- OpenSMTPD's smtp_session.c: its RCPT and MAIL address syntax replies in the enhanced-code and the older
  forms, and its sequence replies.
- Postfix's smtpd_check.c reject_unknown_* texts for a DNS server's malformed reply (recipient domain,
  sender domain, HELO name; a real log line of the recipient form in a policy database's rules file).
- qmail's qmail-remote.c permanent and temporary DNS/connection texts (no reply code).
- Exim's router and transport texts for a domain whose MX hosts do not exist or whose addresses cannot be
  looked up (routers/dnslookup.c, transports/smtp.c; as sisimai's Exim module quotes them).
- Microsoft Learn's table of Exchange Online NDR codes, lines no earlier round took (5.7.507 a block of the
  IP by the recipient's organisation, 5.7.508 an IPv6 range over its limits, 5.4.300 message expired,
  5.7.324 DNSSEC of the destination invalid), and 5.7.509 DMARC as quoted in an issue note.

Gathered and labelled by reading, before any rule was changed for this round. Labels follow the corpus
README's conventions: an address parser's refusal of the envelope sender is protocol_error about the
sender (as "501 5.1.7 Bad sender address syntax"), of the recipient syntax_error about the recipient; a
refused HELO argument protocol_error about the session; a failed sender verification auth_failed about
the sender; the recipient domain's DNS routing_dns about the recipient, the sender domain's auth_failed
about the sender; the sending side unable to connect routing_dns about the relay; a block of the sending
IP blocklisted about the session; a range over its limits rate_limited about the session.

Each tuple: (provider, reply, category, scope, stage, source).
"""
G = "https://github.com/"
PARSE = G + "Exim/exim src/src/parse.c (read_addr_spec, read_local_part errors) as smtp_in.c answers MAIL/RCPT"
OSMTPD = G + "OpenSMTPD/OpenSMTPD usr.sbin/smtpd/smtp_session.c"
PF = G + "vdukhovni/postfix postfix/src/smtpd/smtpd_check.c (reject_unknown_address, reject_unknown_helo_hostname)"
QMAIL = "qmail-1.03 qmail-remote.c (perm_dns, perm_nomx, perm_ambigmx, temp_noconn)"
MS = "https://learn.microsoft.com/exchange/troubleshoot/email-delivery/ndr/non-delivery-reports-in-exchange-online"
C = [
# --- Exim's address parser: the envelope sender (MAIL, or a DSN without a stage) vs the recipient (RCPT)
("Exim", "501 <.app@example.org>: missing or malformed local part (expected word or \"<\")", "protocol_error", "sender", "mail", PARSE),
("Exim", "501 <app@>: domain missing or malformed", "protocol_error", "sender", "mail", PARSE),
("Exim", "501 <bob@>: domain missing or malformed", "syntax_error", "recipient", "rcpt", PARSE),
("Exim", "501 Syntactically invalid EHLO argument(s)", "protocol_error", "session", "helo", G + "Exim/exim src/src/smtp_in.c; quoted in posts about printers (DIGITAL_MFP) and PHPMailer hosts with non-ASCII names"),
("Exim", "550 Verification failed for <bounces+1234@example.org>", "auth_failed", "sender", "rcpt", G + "Exim/exim src/src/acl.c (sender_verified_failed); PHP-Bounce-Handler eml/sendmail-dsn-hdrs-503.eml"),
("Exim", "550 Callback setup failed while verifying <app@example.org>", "auth_failed", "sender", "rcpt", G + "Exim/exim src/src/acl.c (af_verify_nsfail)"),
# --- OpenSMTPD: recipient syntax, sender syntax, sequence
("OpenSMTPD", "501 5.1.3: Recipient address syntax error", "syntax_error", "recipient", "rcpt", OSMTPD),
("OpenSMTPD", "553 5.1.0: Sender address syntax error", "protocol_error", "sender", "mail", OSMTPD),
("OpenSMTPD", "553 No option supported on RCPT TO", "protocol_error", "session", "rcpt", OSMTPD + " (5.x)"),
("OpenSMTPD", "503 Need MAIL before RCPT", "protocol_error", "session", "rcpt", OSMTPD + " (4.x)"),
# --- Postfix: a DNS server's malformed reply for the recipient's domain, the sender's domain, the HELO name
("Postfix", "450 4.1.2 <bob@example.be>: Recipient address rejected: Malformed DNS server reply", "routing_dns", "recipient", "rcpt", PF + "; log line in a policy database's rules file"),
("Postfix", "450 4.1.8 <app@example.org>: Sender address rejected: Malformed DNS server reply", "auth_failed", "sender", "rcpt", PF),
("Postfix", "450 4.7.1 <mail.example.org>: Helo command rejected: Malformed DNS server reply", "policy_rejected", "session", "rcpt", PF),
# --- qmail-remote: DNS and connection texts without a reply code
("qmail", "Sorry, I couldn't find a mail exchanger or IP address. (#5.4.4)", "routing_dns", "recipient", None, QMAIL),
("qmail", "Sorry. Although I'm listed as a best-preference MX or A for that host, it isn't in my control/locals file, so I don't treat it as local. (#5.4.6)", "routing_dns", "recipient", None, QMAIL),
("qmail", "Sorry, I wasn't able to establish an SMTP connection. (#4.4.1)", "routing_dns", "relay", None, QMAIL),
# --- Exim: routers and transports
("Exim", "all relevant MX records point to non-existent hosts", "routing_dns", "recipient", None, G + "Exim/exim src/src/routers/dnslookup.c"),
("Exim", "all host address lookups failed permanently", "routing_dns", "recipient", None, G + "Exim/exim src/src/transports/smtp.c"),
# --- Microsoft Exchange Online's NDR table
("Microsoft Exchange Online", "550 5.7.507 Access denied, rejected by recipient", "blocklisted", "session", "rcpt", MS),
("Microsoft Exchange Online", "550 5.7.508 Access denied, [2001:db8::25] has exceeded permitted limits within /64 range", "rate_limited", "session", "rcpt", MS),
("Microsoft Exchange Online", "550 5.4.300 Message expired", "expired", "relay", None, MS),
("Microsoft Exchange Online", "550 5.7.324 dnssec-invalid: Destination domain returned invalid DNSSEC records", "routing_dns", "recipient", None, MS),
("Microsoft Exchange Online", "550 5.7.509 Access denied, sending domain example.org does not pass DMARC verification and has a DMARC policy of reject.", "auth_failed", "sender", "data", MS + "; quoted in an issue note on Hetzner outbound mail"),
]
