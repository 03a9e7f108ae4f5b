"""Candidates for tests/data/corpus/train/world8.yaml (issue #8, tenth round "world8", branch
cls-grow8): real reply texts from sources no earlier round used - the reply texts of SMTP servers in
their public sources (hMailServer's SMTPConnection.cpp, go-guerrilla's canned responses, Apache
James's SMTP protocol handlers, Mireka's statuses, GNU Mailman 3's LMTP runner, lego's restricted-mail
handler), replies quoted in issue threads of mailers and applications (Mautic,
Mastodon, Nextcloud, MISP, RainLoop, Google Groups users, ...), and help pages (Vietnamese, Turkish,
Indonesian, Thai, Korean, Kerio, LogSat, ExchangeDefender, Microsoft 365 answers), chosen for the
confusion families the issue names. Gathered and labelled by reading, before any rule was changed for
this round, so that the shipped rules could first be measured on them as on unseen text. Labels follow
the README's conventions and the labels the corpus already gives the same wording; the held-out part
was never read. `scripts/corpus/build_world.py` drops every candidate that is a near-duplicate of a
corpus entry (a key shared with the held-out part drops it unseen).

Texts from sources are the replies as the program sends them, placeholders filled with documentation
values (example.com, 192.0.2.0/24): hMailServer's _SendErrorResponse writes "<code> <text>"; James's
DSNStatus.getStatus(class, detail) gives the enhanced code (SECURITY_AUTH 7.1, ADDRESS_MAILBOX 1.1,
ADDRESS_SYNTAX 1.3, ADDRESS_SYNTAX_SENDER 1.7, DELIVERY_OTHER 5.0, DELIVERY_SYNTAX 5.2,
DELIVERY_INVALID_ARG 5.4, DELIVERY_TOO_MANY_REC 5.3, NETWORK_DIR_SERVER 4.3, UNDEFINED_STATUS 0.0) and
a denied hook without its own code answers 554. James's greylist handler sends two texts: the one
that says the client reconnected too fast is labelled greylisted, the bare "Please try again later"
a deferral (labelled from the text, as hMailServer's greylisting reply is). Stage is the command the source answers; for
go-guerrilla's address errors it is RCPT, where its server.go sends them for a recipient.

Each tuple: (provider, reply, category, scope, stage, source).
"""
HM = "hmailserver/hmailserver hmailserver/source/Server/SMTP/SMTPConnection.cpp (hMailServer's SMTP server replies)"
GG = "flashmob/go-guerrilla response/enhanced.go (go-guerrilla's canned SMTP responses)"
JF = "apache/james-project protocols/smtp/src/main/java/org/apache/james/protocols/smtp/core/"
C1 = [
# --- hMailServer's SMTP server (source; _SendErrorResponse writes "<code> <text>")
("hMailServer", "500 Line to long.", "protocol_error", "session", None, HM),
("hMailServer", "503 Must have sender and recipient first.", "protocol_error", "session", "data", HM),
("hMailServer", "503 must have sender first.", "protocol_error", "session", "rcpt", HM),
("hMailServer", "550 Invalid syntax. Syntax should be MAIL FROM:<userdomain>[crlf]", "protocol_error", "session", "mail", HM),
("hMailServer", "550 Invalid syntax. Syntax should be RCPT TO:<userdomain>[crlf]", "protocol_error", "session", "rcpt", HM),
("hMailServer", "550 Login credentials no longer valid. Please re-authenticate.", "auth_failed", "session", "mail", HM),
("hMailServer", "550 Sender address must be specified.", "policy_rejected", "sender", "mail", HM),
("hMailServer", "550 The address is not valid.", "protocol_error", "sender", "mail", HM),
("hMailServer", "550 A valid address is required.", "syntax_error", "recipient", "rcpt", HM),
("hMailServer", "550 Too many recipients.", "rate_limited", "message", "rcpt", HM),
("hMailServer", "550 Unknown user", "unknown_recipient", "recipient", "rcpt", HM),
("hMailServer", "451 Please try again later.", "temporary_failure", "session", "rcpt", HM),
("hMailServer", "552 Message size exceeds fixed maximum message size. Size: 20480 KB, Max size: 10240 KB", "message_too_large", "message", "mail", HM),
("hMailServer", "552 Message size exceeds the drop maximum message size. Size: 40960 KB, Max size: 30720 KB - DROP!", "message_too_large", "message", "data", HM),
("hMailServer", "554 Rejected - Message size exceeds fixed maximum message size. Size: 20480 KB, Max size: 10240 KB", "message_too_large", "message", "data", HM),
("hMailServer", "554 Rejected - Message containing bare LF's.", "policy_rejected", "message", "data", HM),
("hMailServer", "451 Rejected - No data saved.", "temporary_failure", "session", "data", HM),
("hMailServer", "554 Your message was received but it could not be saved. Please retry later.", "temporary_failure", "session", "data", HM),
("hMailServer", "421 Excessive amounts of data sent to server.", "protocol_error", "session", None, HM),
("hMailServer", "504 Authentication type not specified.", "protocol_error", "session", None, HM),
("hMailServer", "504 Authentication mechanism not supported.", "protocol_error", "session", None, HM),
("hMailServer", "502 VRFY disallowed.", "protocol_error", "session", None, HM),
("hMailServer", "502 Use HELO/EHLO first.", "protocol_error", "session", None, HM),
("hMailServer", "554 Rejected", "policy_rejected", "message", "data", HM),
# --- go-guerrilla (source)
("go-guerrilla", "503 5.5.1 Error: No sender", "protocol_error", "session", "data", GG),
("go-guerrilla", "503 5.5.1 Error: No recipients", "protocol_error", "session", "data", GG),
("go-guerrilla", "554 5.5.1 Unrecognized command", "protocol_error", "session", None, GG),
("go-guerrilla", "554 5.5.1 Too many unrecognized commands", "protocol_error", "session", None, GG),
("go-guerrilla", "421 4.3.0 Server is shutting down. Please try again later. Sayonara!", "temporary_failure", "session", None, GG),
("go-guerrilla", "454 4.1.1 Error: Relay access denied: example.com", "relay_denied", "session", "rcpt", GG),
("go-guerrilla", "550 5.5.4 Path too long", "syntax_error", "recipient", "rcpt", GG),
("go-guerrilla", "501 5.5.4 Invalid address", "syntax_error", "recipient", "rcpt", GG),
("go-guerrilla", "550 5.5.4 Local part too long, cannot exceed 64 characters", "syntax_error", "recipient", "rcpt", GG),
("go-guerrilla", "550 5.5.4 Domain cannot exceed 255 characters", "syntax_error", "recipient", "rcpt", GG),
("go-guerrilla", "554 5.5.0 Transaction failed - backend not running", "temporary_failure", "session", "data", GG),
("go-guerrilla", "554 5.5.0 Error: transaction timeout", "temporary_failure", "session", "data", GG),
# --- Apache James's SMTP protocol handlers (source; DSNStatus codes filled as DSNStatus.getStatus builds them)
("Apache James", "550 5.1.1 Unknown user: user@example.com", "unknown_recipient", "recipient", "rcpt", JF + "fastfail/AbstractValidRcptHandler.java"),
("Apache James", "451 4.0.0 Unexpected error for user@example.com", "temporary_failure", "recipient", "rcpt", JF + "fastfail/AbstractValidRcptHandler.java"),
("Apache James", "554 5.7.1 Rejected: unauthenticated e-mail from 192.0.2.1 is restricted.  Contact the postmaster for details.", "blocklisted", "session", "rcpt", JF + "fastfail/DNSRBLHandler.java"),
("Apache James", "451 4.4.3 Temporary rejected: Reconnect to fast. Please try again later", "greylisted", "session", "rcpt", JF + "fastfail/AbstractGreylistHandler.java"),
("Apache James", "451 4.4.3 Temporary rejected: Please try again later", "temporary_failure", "session", "rcpt", JF + "fastfail/AbstractGreylistHandler.java"),
("Apache James", "452 4.5.3 Requested action not taken: max recipients reached", "rate_limited", "message", "rcpt", JF + "fastfail/MaxRcptHandler.java"),
("Apache James", "501 5.5.4 Provided EHLO/HELO mx.example.com can not resolved.", "policy_rejected", "session", "rcpt", JF + "fastfail/ResolvableEhloHeloHandler.java"),
("Apache James", "501 5.1.7 sender user@example.com contains a domain with no valid MX records", "auth_failed", "sender", "mail", JF + "fastfail/ValidSenderDomainHandler.java"),
("Apache James", "530 5.7.1 Authentication Required", "relay_denied", "session", "rcpt", JF + "AbstractAuthRequiredToRelayRcptHook.java"),
("Apache James", "550 5.7.1 Requested action not taken: relaying denied", "relay_denied", "session", "rcpt", JF + "AbstractAuthRequiredToRelayRcptHook.java"),
("Apache James", "503 5.5.0 Sender already specified", "protocol_error", "session", "mail", JF + "MailCmdHandler.java"),
("Apache James", "503 5.5.0 Need HELO or EHLO before MAIL", "protocol_error", "session", "mail", JF + "MailCmdHandler.java"),
("Apache James", "501 5.5.4 Usage: MAIL FROM:<sender>", "protocol_error", "session", "mail", JF + "MailCmdHandler.java"),
("Apache James", "501 5.1.7 Syntax error in MAIL command", "protocol_error", "sender", "mail", JF + "MailCmdHandler.java"),
("Apache James", "501 5.1.7 Syntax error in sender address", "protocol_error", "sender", "mail", JF + "MailCmdHandler.java"),
("Apache James", "503 5.5.0 Need MAIL before RCPT", "protocol_error", "session", "rcpt", JF + "RcptCmdHandler.java"),
("Apache James", "501 5.5.2 Usage: RCPT TO:<recipient>", "protocol_error", "session", "rcpt", JF + "RcptCmdHandler.java"),
("Apache James", "553 5.1.3 Syntax error in recipient address", "syntax_error", "recipient", "rcpt", JF + "RcptCmdHandler.java"),
("Apache James", "555 Unrecognized or unsupported option: NOTIFY", "protocol_error", "session", "rcpt", JF + "RcptCmdHandler.java"),
("Apache James", "501 5.7.1 Authentication aborted", "protocol_error", "session", None, JF + "esmtp/AuthCmdHandler.java"),
("Apache James", "503 5.5.0 User has previously authenticated.  Further authentication is not required!", "protocol_error", "session", None, JF + "esmtp/AuthCmdHandler.java"),
("Apache James", "503 5.7.1 Incorrect Authentication for Specified Email Address", "relay_denied", "sender", "rcpt", JF + "AbstractSenderAuthIdentifyVerificationRcptHook.java"),
# --- issue threads of mailers and applications
("Symantec Email Security.cloud", "553-DMARC domain authentication fail. Refer to the\n553-Troubleshooting page at http://www.symanteccloud.com/troubleshooting for more information. (#5.7.1)", "auth_failed", "sender", "data", "https://github.com/mysociety/fixmystreet/issues/1070"),
("unknown (milter)", "5.7.1 rejected by DMARC policy for daily.dev with invalid ARC result.", "auth_failed", "sender", "data", "https://github.com/dailydotdev/daily/issues/1760"),
("Gmail", "550-5.7.26 This mail is unauthenticated, which poses a security risk to the\n550-5.7.26 sender and Gmail users, and has been blocked. The sender must\n550-5.7.26 authenticate with at least one of SPF or DKIM. For this message,\n550-5.7.26 DKIM checks did not pass and SPF check for [misp.gov.test] did not\n550-5.7.26 pass with ip: [199.203.204.1]. The sender should visit\n550-5.7.26  https://support.google.com/mail/answer/81126#authentication for\n550 5.7.26 instructions on setting up authentication.  - gsmtp", "auth_failed", "sender", "data", "https://github.com/MISP/MISP/issues/9284"),
("Postfix (submission)", "553 5.7.1 <support+bounce_692a43e8e4bcd@example.com>: Sender address rejected: not owned by user support@example.com", "relay_denied", "sender", "rcpt", "https://github.com/mautic/mautic/issues/15673"),
("Gmail (submission)", "534-5.7.14 Please log in via your web browser and 534-5.7.14 then try again. 534-5.7.14 Learn more at 534 5.7.14 https://support.google.com/mail/answer/78754 gw4sm371307wjc.45 - gsmtp", "auth_failed", "session", None, "https://github.com/mautic/mautic/issues/2092"),
("T-Online", "554 IP=192.0.2.1 - A problem occurred. (Ask your postmaster for help or to contact tosa@rx.t-online.de to clarify.) (BL)", "blocklisted", "session", "connect", "https://github.com/mailcow/mailcow-dockerized/issues/2532"),
("SMTP2GO", "550 relay access denied - please authenticate", "relay_denied", "session", "rcpt", "https://github.com/mastodon/mastodon/issues/22669"),
("SparkPost", "550 5.7.1 Unconfigured Sending Domain <mapzen.com>", "relay_denied", "sender", "data", "https://github.com/transitland/transitland-datastore/issues/1231"),
("Gmail (submission)", "555 5.5.2 Syntax error. nb15sm15097998qcb.26", "protocol_error", "session", None, "https://github.com/oneclickorgs/one-click-orgs/issues/150"),
("163.com (submission)", "553 authentication is required,126 smtp1,C8mowADnHOa6K15YNQFmAw--.10596S3 1482566588", "relay_denied", "session", None, "https://github.com/sj26/mailcatcher/issues/73"),
("Google Groups", "We're writing to let you know that the group you tried to contact (security)\nmay not exist, or you may not have permission to post messages to the\ngroup.", "policy_rejected", "sender", None, "https://github.com/opencollective/opencollective/issues/2760"),
("Google Groups", "Message rejected by Google Groups. Please visit http://mail.google.com/support/answer/188131?hl=en to review our Bulk Email Senders Guidelines.", "blocklisted", "session", None, "https://github.com/DynamoRIO/dynamorio/issues/5897"),
("Protonmail", "504 5.5.2 <root@nextcloud>: Sender address rejected: need fully-qualified address", "policy_rejected", "sender", "rcpt", "https://github.com/nextcloud/vm/issues/2726"),
("Postfix (submission)", "554 5.7.1 <user2@gmail.com>: Recipient address rejected: Access denied", "policy_rejected", "recipient", "rcpt", "https://github.com/RainLoop/rainloop-webmail/issues/2018"),
("Free", "550 5.7.1 Spam Detected - Mail Rejected.  Please see our policy at: http://postmaster.free.fr/#spam_detected", "spam_content", "message", "data", "https://github.com/nextcloud/server/issues/31919"),
("Gmail", "550-5.7.1 [2001:320:11:248:546f:4bff:fef8:c9] Gmail has detected that this\n550-5.7.1 message does not meet IPv6 sending guidelines regarding PTR records\n550-5.7.1 and authentication. For more information, go to\n550 5.7.1 https://support.google.com/mail/?p=IPv6AuthError 41be03b00d2f7-78e41c8cf4dsi11013936a12.313 - gsmtp", "auth_failed", "session", "data", "https://wiki.kreonet.net/pages/viewpage.action?pageId=198181008"),
]
C2 = [
# --- help pages (Vietnamese, Turkish, Indonesian, Thai, Korean, vendors)
("Hai Nhan mail", "Host name: mx.example.com, message: A connection attempt failed because the connected party did not properly respond after a period of time, or established connection failed because connected host has failed to respond. Tried 5 time(s)", "routing_dns", "relay", None, "https://www.hainhan.com/vn/ho-tro/huong-dan/cac-thong-bao-email-thuong-gap/"),
("Hai Nhan mail", "Inbox is full. Additional information: The recipients inbox is full.", "mailbox_full", "recipient", None, "https://www.hainhan.com/vn/ho-tro/huong-dan/cac-thong-bao-email-thuong-gap/"),
("Gmail", "550-5.7.1 This message does not have authentication information or fails to pass authentication checks.", "auth_failed", "sender", "data", "https://vietnap.vn/a/loi-thu-dien-tu/"),
("unknown (content filter)", "550.5.7.1 Message rejecte as spam by content filltering.", "spam_content", "message", "data", "https://thailandemailhosting.com/reject-message-as-spam-by-filltering/"),
("Exim (sending MTA)", "MX records point to non-existent hosts or (invalidly) to IP addresses", "routing_dns", "recipient", None, "https://thailandemailhosting.com/reject-message-as-spam-by-filltering/"),
("Exchange (NDR)", "The format of the email address isn't correct.", "syntax_error", "recipient", None, "https://thailandemailhosting.com/reject-message-as-spam-by-filltering/"),
("unknown", "550 No such person at this address", "unknown_recipient", "recipient", "rcpt", "https://backlink.name/blog/smtp-550-hata-kodu-ayrintilari"),
("unknown", "550 Recipient Rejected: No account by that name here", "unknown_recipient", "recipient", "rcpt", "https://backlink.name/blog/smtp-550-hata-kodu-ayrintilari"),
("Exchange (on-premises)", "550 5.1.10 RESOLVER.ADR.RecipientNotFound; not found", "unknown_recipient", "recipient", None, "https://kozyatagibilisim.com/blog/exchange-ndr-no-such-user-550-5-1-10"),
("Gmail", "550-5.7.1 [103.12.84.170      18] Ou system has detected that this message is\n550-5.7.1 likely suspicious due to the very low reputation of the sending IP\n550-5.7.1 address. To best protect our users from spam, the message has been\n550-5.7.1 blocked. Please visit\n550 5.7.1  https://support.google.com/mail/answer/188131 for more information. d30-v6si1296965pld.428 - gsmtp", "blocklisted", "session", "data", "https://www.mail-archive.com/mdaemon-l@dutaint.com/msg43515.html"),
("unknown", "550 <user@example.com>, Recipient unknown", "unknown_recipient", "recipient", "rcpt", "https://www.mail-archive.com/mdaemon-l@dutaint.com/msg40709.html"),
("Kerio Connect (sending MTA)", "Result: delayed, Status: 4.4.1 Cannot connect to host", "routing_dns", "relay", None, "https://support.kerioconnect.gfi.com/hc/en-us/articles/4416310418706-Outbound-Email-Delivery-Troubleshooting-Article"),
("Kerio Connect", "550 5.7.1 Relaying is denied", "relay_denied", "session", "rcpt", "https://support.kerioconnect.gfi.com/hc/en-us/articles/4416310418706-Outbound-Email-Delivery-Troubleshooting-Article"),
("ExchangeDefender", "550 ExchangeDefender is not allowed to send mail on behalf of your email address.", "relay_denied", "sender", None, "https://www.anythingdown.com/sa-view.php?id=82161242827b703e6acf9c726942a1e4"),
("LogSat SpamFilter", "421 Your IP is temporarily blocked, please try again later", "blocklisted", "session", "connect", "https://logsat.com/spamfilter/forums/printer_friendly_posts.asp?TID=6127"),
("Exchange Online", "Your message can't be delivered because messages to user@example.com are blocked by your organization using Tenant Allow Block List.", "policy_rejected", "recipient", None, "https://azure.microsofts.workers.dev/en-us/Exchange/mail-flow-best-practices/non-delivery-reports-in-exchange-online/fix-error-code-5-7-700-through-5-7-750"),
("Exchange Online", "550 5.1.8 Access denied, bad outbound sender", "blocklisted", "sender", None, "https://gcvs.900983.xyz/en-us/answers/questions/5853737/how-to-fix-daily-email-limit"),
("Exchange Online", "5.7.750 Client blocked from sending from unregistered domain", "blocklisted", "sender", None, "https://gcvs.900983.xyz/en-us/answers/questions/5853737/how-to-fix-daily-email-limit"),
]

C3 = [
# --- mailing-list and application LMTP/SMTP handlers (source)
("GNU Mailman 3 (LMTP)", "451 Requested action aborted: error in processing", "temporary_failure", "session", "data", "GNU Mailman 3 src/mailman/runners/lmtp.py (its LMTP runner's replies; copy in wikimedia/operations-debs-mailman3)"),
("GNU Mailman 3 (LMTP)", "501 Message has defects", "policy_rejected", "message", "data", "GNU Mailman 3 src/mailman/runners/lmtp.py (its LMTP runner's replies; copy in wikimedia/operations-debs-mailman3)"),
("GNU Mailman 3 (LMTP)", "502 Error: command HELO not implemented", "protocol_error", "session", "helo", "GNU Mailman 3 src/mailman/runners/lmtp.py (its LMTP runner's replies; copy in wikimedia/operations-debs-mailman3)"),
("GNU Mailman 3 (LMTP)", "550 No Message-ID header provided", "policy_rejected", "message", "data", "GNU Mailman 3 src/mailman/runners/lmtp.py (its LMTP runner's replies; copy in wikimedia/operations-debs-mailman3)"),
("lego (restricted mail)", "511 Mailbox nonexistent", "unknown_recipient", "recipient", "data", "webkom/lego lego/apps/restricted/smtp/handler.py (its restricted-mail SMTP handler's replies)"),
("Mireka", "421 4.3.2 System not accepting network messages", "temporary_failure", "session", "connect", "hontvari/mireka src/mireka/smtp/EnhancedStatus.java (Mireka's SMTP statuses)"),
("Mireka", "450 4.4.3 Directory server failure", "temporary_failure", "session", "rcpt", "hontvari/mireka src/mireka/smtp/EnhancedStatus.java (Mireka's SMTP statuses)"),
("Mireka", "451 4.3.0 Local error in processing", "temporary_failure", "session", None, "hontvari/mireka src/mireka/smtp/EnhancedStatus.java (Mireka's SMTP statuses)"),
("Mireka", "553 5.1.3 Bad destination mailbox address syntax", "syntax_error", "recipient", "rcpt", "hontvari/mireka src/mireka/smtp/EnhancedStatus.java (Mireka's SMTP statuses)"),
("Mireka", "554 5.3.0 Internal error", "temporary_failure", "session", None, "hontvari/mireka src/mireka/smtp/EnhancedStatus.java (Mireka's SMTP statuses)"),
("Mireka", "554 5.6.0 Message body is invalid", "policy_rejected", "message", "data", "hontvari/mireka src/mireka/smtp/EnhancedStatus.java (Mireka's SMTP statuses)"),
("Mireka", "554 5.3.5 System incorrectly configured", "temporary_failure", "session", None, "hontvari/mireka src/mireka/smtp/EnhancedStatus.java (Mireka's SMTP statuses)"),
]

C4 = [
# --- two more issue threads
("Exchange Online", "Your message couldn't be delivered to the recipient because you don't have permission to send to it.\nAsk the recipient's email admin to add you to the accept list for the recipient.\nFor more information, see DSN 5.7.129 Errors in Exchange Online and Office 365.", "policy_rejected", "recipient", None, "https://github.com/MicrosoftDocs/OfficeDocs-Exchange/issues/1208"),
("Free", "421 Refused. Your reverse DNS entry does not resolve to an IP.", "auth_failed", "session", "connect", "https://github.com/iredmail/iRedMail/issues/156"),
]

C = C1 + C2 + C3 + C4
