"""Candidates for tests/data/corpus/train/world25.yaml (issue #8, the twenty-seventh round, branch
world25), aimed at the confusion families the hidden judge reported and world24 did not cover:

1. block lists vs policy vs rate limits: the connecting IP on a DNSBL (Spamhaus SBL/XBL/CBL, SORBS,
   SpamCop, Barracuda's BRBL, Invaluement's ivmSIP behind Cox's IPBL code) or on a provider's own list
   (Outlook.com/Hotmail's S3140/AS3140/SC-001 "part of their network is on our block list", Yahoo's
   BL21/BL23 and "Mail from <ip> not allowed", T-Online's "(BL)", Comcast's BL000010, a "Customer Block
   list", Spamhaus's "open resolver" answer); Yahoo's TS01/TSS04/4.16.50 deferrals (complaints, volume) as
   rate limits about the session, as the corpus labels TSS04; a URL in the message body listed by a URI
   list at DATA is spam content about the message, not a block of the connection; a sender address on a
   recipient's own list is the sender's;
2. authentication vs policy: DMARC, SPF and DKIM refusals of Gmail (5.7.26, the 421 4.7.0 deferral),
   Outlook.com (5.7.509, 5.7.515), Yahoo (5.7.9 unauthenticated), Apple iCloud, Comcast (550 5.2.0
   "Message rejected due to DMARC"), mail.com/GMX ("Reject due to domain's DMARC policy"), and a filter's
   custom "Email rejected per DMARC policy": auth_failed about the sender, whatever the enhanced code
   (5.7.1, 5.2.0, 5.7.9);
3. unknown vs disabled mailboxes: disabled/inactive/suspended/locked accounts (mailbox_disabled) vs
   nonexistent users (unknown_recipient) across providers.

Sources no earlier round read (checked against every `source` in tests/data/corpus/train and the other
candidates files): spamresource.com's "A sampling of DMARC rejection examples" (2024-04), mail.com's
postmaster case page r2001, Microsoft's support page for NDR 550 5.7.515, DMARCTrust's troubleshooting
page, Mithi's help centre, itechtics.com, Plesk's KB article on "554 host refused to talk to me",
takisathanassiou.com (Cox), RackAID's Yahoo blacklist article, Yahoo's help article SLN5066, zort.org
(Yahoo VS1-IP transcript), Secuserve's help desk (Yahoo TSS04), smtp-error-codes.info (Yahoo 4.16.50),
bobbingwide.com (a URL in the body listed on a URI list), hosting.xyz's blacklist page, virusfree.cz's
FAQ, help.szhot.com (a Chinese host's bounce glossary), MxToolbox's blog (2011-09 bounce examples),
DreamHost's "Blocked email" page, and issue threads: regnull/ubikom#26, root-io/vmail#71,
postalserver/postal#433, mailcow/mailcow#374, mailcow/mailcow#241, docker-mailserver#197, #2253 and
#2996, YunoHost-Apps/roundcube_ynh#91, QubesOS/qubes-issues#4304, nextcloud/news#2124,
springcomp/self-hosted-simplelogin#37, virtualmin/virtualmin-install#46, MyCaert/Issues-Enhancements#367,
skylines-project/skylines#2490, MicrosoftDocs/OfficeDocs-Exchange#1230 (the 5.7.513 customer block list
line), openstreetmap/operations#674 (the maintainer's own Exim reply for a listed client), netdata/netdata-cloud#530,
TheEnbyperor/zuegli#9, mail-in-a-box/mailinabox#1638; in a second batch Vade Secure's (Open-Xchange)
postmaster page of inbound error codes, a Spectrum community thread and a Suped page quoting Charter's
AUP#I-1010 reply, Proximus's and TransIP's help pages and STRATO's two FAQ pages of refusals. sisimai's own
issue threads were left out (the hidden judge's pool is sisimai's).

Facts only: the texts as the sources quote them. Wrappers ("host ... said:", "(in reply to ... command)",
Postfix's "NOQUEUE: reject: RCPT from ...:" log prefix and its trailing "; from=<...> to=<...> proto=...
helo=<...>") are removed and the command becomes `stage`; Postfix flattens multi-line replies into one
line ("550-5.7.26 ... 550-5.7.26 ..."), which is put back into lines; redacted or real IPs become
documentation values (192.0.2.0/24, 198.51.100.0/24), redacted domains example.com/.net.

Labelled by reading, before any rule was run on them, with the corpus README's conventions and the labels
the corpus already gives the same kind of text: a client IP on a DNS or provider list blocklisted about the
session (also Spamhaus's "open resolver" answer and T-Online's "(BL)", as the corpus labels them); Yahoo's
TS01/TSS04/4.16.5x deferrals rate_limited about the session (as TSS04 and VS1-IP are labelled); Yahoo's
"554 5.7.9 Message not accepted for policy reasons" policy_rejected about the message (the corpus's label
for that wording, even where the source tells it was a DMARC refusal); a URL/domain in the body on a list
spam_content about the message; DMARC/SPF/DKIM refusals auth_failed about the sender (permanent or not);
"You are not allowed to connect" blocklisted about the session (the corpus's label); a sender on a
recipient's blacklist blocklisted about the sender; disabled, inactive, locked or "disabled or
discontinued" accounts mailbox_disabled about the recipient; "doesn't have a <domain> account" and other
nonexistent users unknown_recipient.

build_world.py keeps 42 of the 65 candidates: none shares a key with the held-out part, 23 are
near-duplicates of training entries or of each other (most block-list and DMARC texts of the big providers are
already in the corpus under the same labels: S3140/AS3140, SORBS, SpamCop, the Spamhaus "open resolver" answer,
T-Online's (BL), Yahoo's BL21/TSS04/4.16.50 and 5.7.9, Gmail's 5.7.26 variants, Outlook.com's 5.7.515).

After the first pass (measured on the labels of f7eaa6c), before any rule changed, two labels were set to the
corpus's own label of the same kind of text, no rule involved: STRATO's "(B-ATTACH)" marker and its outbound
"Message contains a dangerous attachment!" (first read as policy_rejected about the message: an attachment type
the filter forbids) spam_content about the message, as the corpus labels forbidden, banned, illegal or dangerous
attachments in twelve entries (Gmail's "illegal attachment", "mime_banned_file", IronPort's IB_FEB, "Forbidden
attachment name extension", "Executable attachment"; one "These attachments are not allowed -- Please compress"
is policy_rejected).

Each tuple: (provider, reply, category, scope, stage, source).
"""
SR = "https://www.spamresource.com/2024/04/a-sampling-of-dmarc-rejection-examples.html"
DT = "https://www.dmarctrust.com/troubleshooting/unauthenticated-email-rejected"
PL = "https://www.plesk.com/kb/support/unable-to-send-mail-in-plesk-error-554-host-refused-to-talk-to-me/"
RA = "https://www.rackaid.com/blog/how-to-remove-your-email-server-from-yahoos-blacklist/"
SZ = "http://help.szhot.com/text_show.php?id=170"
MB = "https://blog.mxtoolbox.com/2011/09/"
G = "https://github.com/"
VI = "https://postmaster-oxseu.vadesecure.com/inbound_error_codes (placeholders filled)"
ST1 = "https://www.strato.de/faq/mail/fehlermeldungen-bei-e-mails/ (the page gives the markers B-URL, B-TEXT, B-SCORE, B-EX, B-ATTACH that follow the text in parentheses)"
ST2 = "https://www.strato.de/faq/article/2304/Ich-habe-eine-E-Mail-ueber-den-Versand-von-Spam-erhalten.html (STRATO's outbound filter)"

C = [
# ---- 1. block lists vs policy vs rate limits -------------------------------------------------
# Outlook.com / Hotmail's own list (S3140 / AS3140 / SC-001)
("Outlook.com", "550 5.7.1 Unfortunately, messages from [192.0.2.245] weren't sent. Please contact your Internet service provider since part of their network is on our block list (S3140). You can also refer your provider to http://mail.live.com/mail/troubleshooting.aspx#errors. [DB8EUR06FT039.eop-eur06.prod.protection.outlook.com]",
 "blocklisted", "session", "mail", G + "regnull/ubikom/issues/26"),
("Hotmail", "550 SC-001 (BAY004-MC4F27) Unfortunately, messages from 192.0.2.129 weren't sent. Please contact your Internet service provider since part of their network is on our block list. You can also refer your provider to http://mail.live.com/mail/troubleshooting.aspx#errors.",
 "blocklisted", "session", "mail", G + "root-io/vmail/issues/71"),
("Hotmail", "550 SC-001 (BAY004-MC1F10) Unfortunately, messages from 192.0.2.100 weren't sent. Please contact your Internet service provider since part of their network is on our block list. You can also refer your provider to http://mail.live.com/mail/troubleshooting.aspx#errors.",
 "blocklisted", "session", "mail", G + "mailcow/mailcow/issues/374"),
("Outlook.com", "550 5.7.1 Unfortunately, messages from [192.0.2.7] weren't sent. Please contact your Internet service provider since part of their network is on our block list (AS3140). You can also refer your provider to http://mail.live.com/mail/troubleshooting.aspx#errors. [AM5EUR03FT018.eop-EUR03.prod.protection.outlook.com]",
 "blocklisted", "session", None, G + "postalserver/postal/issues/433"),
("Exchange Online", "550 5.7.513 Service unavailable, Client host [192.0.2.33] blocked by example.com using Customer Block list (AS16012607)",
 "blocklisted", "session", None, G + "MicrosoftDocs/OfficeDocs-Exchange/pull/1230 (the NDR table line; placeholders filled)"),
# public DNSBLs through Postfix's reject_rbl_client
("Postfix (SORBS)", "550 5.7.1 Service unavailable; client blocked using dnsbl.sorbs.net",
 "blocklisted", "session", "rcpt", G + "mailcow/mailcow/issues/241"),
("Postfix (SORBS)", "554 5.7.1 Service unavailable; Client host [192.0.2.196] blocked using dnsbl.sorbs.net; Currently Sending Spam See: http://www.sorbs.net/lookup.shtml?192.0.2.196",
 "blocklisted", "session", "rcpt", G + "docker-mailserver/docker-mailserver/issues/197"),
("Postfix (SpamCop)", "554 5.7.1 Service unavailable; Client host [192.0.2.61] blocked using bl.spamcop.net; Blocked - see https://www.spamcop.net/bl.shtml?192.0.2.61",
 "blocklisted", "session", "rcpt", G + "YunoHost-Apps/roundcube_ynh/issues/91"),
("Google Groups / riseup (Spamhaus SBL)", "5.7.1 Service unavailable; Client host [192.0.2.22] blocked using sbl.dnsbl; https://www.spamhaus.org/sbl/query/SBL398362.",
 "blocklisted", "session", "rcpt", G + "QubesOS/qubes-issues/issues/4304"),
("Postfix (CBL via Spamhaus)", "554 5.7.1 Service unavailable; Client host [192.0.2.200] blocked using cbl.abuseat.org; Error: open resolver; https://www.spamhaus.org/returnc/pub/198.51.100.232",
 "blocklisted", "session", "rcpt", G + "nextcloud/news/issues/2124"),
("Postfix (Spamhaus ZEN)", "554 5.7.1 Service unavailable; Client host [192.0.2.80] blocked using zen.spamhaus.org; Error: open resolver; https://check.spamhaus.org/returnc/pub/198.51.100.230/",
 "blocklisted", "session", "rcpt", G + "springcomp/self-hosted-simplelogin/issues/37"),
("Postfix (Spamhaus ZEN)", "554 5.7.1 Service unavailable; Client host [192.0.2.44] blocked using zen.spamhaus.org",
 "blocklisted", "session", "rcpt", G + "docker-mailserver/docker-mailserver/issues/2253"),
("Exim (openstreetmap.org)", "550-Rejected because 192.0.2.9 is in a black list at zen.spamhaus.org\n550 Listed by SBL, see https://check.spamhaus.org/sbl/query/SBL123456",
 "blocklisted", "session", "rcpt", G + "openstreetmap/operations/issues/674 (the maintainer's quote of the reply format: 'Rejected because <address> is in a black list at zen.spamhaus.org / <spamhaus description>'; description filled with a documentation value)"),
# providers' own lists and reputation blocks
("T-Online", "554 IP=192.0.2.1 - A problem occurred. (Ask your postmaster for help or to contact tosa@rx.t-online.de to clarify.) (BL)",
 "blocklisted", "session", "connect", PL),
("unknown receiving MTA", "554 5.7.1 You are not allowed to connect.", "blocklisted", "session", "connect", PL),
("Comcast", "554 example.com example.com 203.0.113.2 found on one or more DNSBLs, see http://postmaster.comcast.net/smtp-error-codes.php#BL000010",
 "blocklisted", "session", "connect", PL),
("Cox", "554 fed1rmimpi309 cox 192.0.2.70 blocked. Error Code: IPBL0100 - Refer to Error Codes section at http://postmaster.cox.net/confluence/display/postmaster/Error+Codes for more information.",
 "blocklisted", "session", None, "https://takisathanassiou.com/5-things-you-can-do-if-your-ip-address-is-blacklisted/"),
("Yahoo", "553 5.7.1 [BL21] Connections will not be accepted from 192.0.2.4, because the ip is in Spamhaus's list; see http://postmaster.yahoo.com/550-bl23.html",
 "blocklisted", "session", None, RA),
("Yahoo", "421 4.7.0 [TS01] Messages from 192.0.2.4 temporarily deferred due to user complaints - 192.0.2.4; see http://postmaster.yahoo.com/421-ts01.html",
 "rate_limited", "session", None, RA),
("Yahoo", "553 Mail from 192.0.2.15 not allowed", "blocklisted", "session", None, "https://help.yahoo.com/kb/SLN5066.html"),
("Yahoo", "421 VS1-IP Excessive unknown recipients - possible Open Relay http://help.yahoo.com/help/us/mail/spam/spam-18.html (#4.1.8)",
 "rate_limited", "session", "connect", "http://zort.org/email/excessive-unknown-recipients"),
("Yahoo", "421 4.7.0 [TSS04] Messages from 192.0.2.35 temporarily deferred due to unexpected volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes",
 "rate_limited", "session", "mail", "https://secuserve.zammad.com/help/en-us/5-f-a-q/397-deferred-yahoo-said-421-4-7-0-tss04"),
("Yahoo", "421 Message from 192.0.2.8 temporarily deferred - 4.16.50", "rate_limited", "session", None,
 "http://www.smtp-error-codes.info/bounce/yahoo/bounce_421_4.16.50.php"),
("Barracuda", "554 Service unavailable; Client host [mail.example.com] blocked using Barracuda Reputation", "blocklisted", "session", None, MB),
("unknown receiving MTA", "554 Your access to this mail system has been rejected due to the sending MTA's poor reputation", "blocklisted", "session", None, MB),
("Postini", "571 spam source blocked - psmtp", "blocklisted", "session", None, MB),
("unknown receiving MTA", "551 Denied for Spam", "spam_content", "message", None, MB),
("unknown receiving MTA", "550 5.7.1 Message rejected as spam by Content Filtering", "spam_content", "message", None, MB),
("web.de / GMX", "550-Requested action not taken: mailbox unavailable\n550-Reject due to policy restrictions.", "policy_rejected", "message", None,
 "https://help.dreamhost.com/hc/en-us/articles/115005095667-Blocked-email"),
# a URL in the body on a URI list: the message's content, not the connection
("hosting provider's Exim", "550 A URL in this email (companies . to) is listed on spamrl.com. Please resolve and retry",
 "spam_content", "message", "data", "https://bobbingwide.com/problem-solving/problem/smtp-550-a-url-in-this-email-companies-to-is-listed-on-spamrl-com/"),
# the sender on a recipient's own blacklist; a scanner's content refusal
("hosting.xyz", "550 5.7.1 Sender blacklisted", "blocklisted", "sender", None, "https://hosting.xyz/wiki/hosting/mail/blacklist/"),
("VirusFree.cz", "554 Message refused by the scanner", "spam_content", "message", None, "https://www.virusfree.cz/en/faq"),

# ---- 2. authentication (DMARC/SPF/DKIM) vs policy ----------------------------------------------
("Gmail", "550-5.7.26 Unauthenticated email from example.com is not accepted due to\n550-5.7.26 domain's DMARC policy. Please contact the administrator of\n550-5.7.26 example.com domain if this was a legitimate mail. To learn about\n550 5.7.26 the DMARC initiative, go to 7-xyz.88 - gsmtp",
 "auth_failed", "sender", "data", SR),
("Yahoo", "554 5.7.9 Message not accepted for policy reasons. See\nhttps://senders.yahooinc.com/error-codes", "policy_rejected", "message", "data", SR),
("Outlook.com", "550 5.7.509 Access denied, sending domain [EXAMPLE.COM] does not pass DMARC verification and has a DMARC policy of reject. 2024-04-16T14:40:38.687Z 08DC5BFD8763316E] [MN2PR18CA0015.namprd18.prod.outlook.com 2024-04-16T14:40:38.708Z XYZ] [BL6PEPF0001AB57.namprd02.prod.outlook.com 2024-04-16T14:40:38.698Z ABC]",
 "auth_failed", "sender", "data", SR),
("Apple iCloud", "554 5.7.1 Your message was rejected due to example.com's DMARC policy.", "auth_failed", "sender", "data", SR),
("Comcast", "550 5.2.0 xyz Message rejected due to DMARC. Please see", "auth_failed", "sender", "data", SR),
("mail.com / GMX", "554 Transaction failed Reject due to domain's DMARC policy", "auth_failed", "sender", None, "https://postmaster.mail.com/en/case?c=r2001"),
("Outlook.com", "550 5.7.515 Access denied, sending domain example.com does not meet the required authentication level.",
 "auth_failed", "sender", None, "https://support.microsoft.com/en-au/topic/fix-ndr-error-550-5-7-515-in-outlook-com-34cfe8f8-6fbf-457e-9e8b-9e4dbaf4e0ef"),
("Gmail", "550-5.7.26 Unauthenticated email from example.com is not accepted due to\n550-5.7.26 domain's DMARC policy. Please visit\n550-5.7.26 https://support.google.com/mail/answer/81126#authentication for\n550-5.7.26 more information.",
 "auth_failed", "sender", None, DT),
("Gmail", "550-5.7.1 This message does not have authentication information or fails to\n550-5.7.1 pass authentication checks. To best protect our users from spam, the\n550-5.7.1 message has been blocked. Please visit\n550-5.7.1 https://support.google.com/mail/answer/81126 for more information.",
 "auth_failed", "sender", None, DT),
("Gmail", "550 5.7.26 This mail has been blocked because the sender is unauthenticated. Gmail requires all senders to authenticate with either SPF or DKIM. Authentication results: DKIM = did not pass, SPF = did not pass",
 "auth_failed", "sender", "data", "https://helpcenter.mithi.com/support/solutions/articles/48001268407-issue-gmail-senders-not-receiving-bounce-notifications"),
("Outlook.com", "550 5.7.509: Access denied, sending domain example.com does not pass DMARC verification and has a DMARC policy of reject",
 "auth_failed", "sender", None, "https://www.itechtics.com/sending-domain-dmarc-failure/"),
("Gmail", "550-5.7.26 This message does not have authentication information or fails\n550-5.7.26 to pass authentication checks. To best protect our users from\n550-5.7.26 spam, the message has been blocked. Please visit\n550-5.7.26 https://support.google.com/mail/answer/81126#authentication for more\n550 5.7.26 information. t17si19162202pgh.400 - gsmtp",
 "auth_failed", "sender", "data", G + "virtualmin/virtualmin-install/issues/46"),
("Gmail", "550-5.7.26 This message does not pass authentication checks (SPF and DKIM both\n550-5.7.26 do not pass). SPF check for [example.net] does not pass with ip:\n550-5.7.26 [192.0.2.46].To best protect our users from spam, the message has\n550-5.7.26 been blocked. Please visit\n550-5.7.26 https://support.google.com/mail/answer/81126#authentication for more\n550 5.7.26 information. lp15-20020a17090b4a8f00b00219f65e19fcsi5522582pjb.170 - gsmtp",
 "auth_failed", "sender", None, G + "MyCaert/Issues-Enhancements/issues/367"),
("Gmail", "421-4.7.0 This message does not pass authentication checks (SPF and DKIM both do\n421-4.7.0 not pass). SPF check for [example.com] does not pass with ip:\n421-4.7.0 [192.0.2.17].To best protect our users from spam, the message has\n421-4.7.0 been blocked. Please visit\n421-4.7.0  https://support.google.com/mail/answer/81126#authentication for more\n421 4.7.0 information. g206-20020a2552d7000000b006fcc3d767efsi15421136ybb.469 - gsmtp",
 "auth_failed", "sender", "data", G + "docker-mailserver/docker-mailserver/issues/2996"),
("Gmail", "550-5.7.26 This mail is unauthenticated, which poses a security risk to the\n550-5.7.26 sender and Gmail users, and has been blocked. The sender must\n550-5.7.26 authenticate with at least one of SPF or DKIM. For this message,\n550-5.7.26 DKIM checks did not pass and SPF check for [example.aero] did not\n550-5.7.26 pass with ip: [192.0.2.222]. The sender should visit\n550-5.7.26  https://support.google.com/mail/answer/81126#authentication for\n550 5.7.26 instructions on setting up authentication. p4-20020a1709060e8400b009531dd67612si2726368ejf.70 - gsmtp",
 "auth_failed", "sender", None, G + "skylines-project/skylines/issues/2490"),

# ---- 3. unknown vs disabled mailboxes ------------------------------------------------------------
("21cn.com", "550 a@example.net is now disabled with SMTP service.", "mailbox_disabled", "recipient", None, SZ),
("Yahoo China", "554 delivery error: Sorry your message to a@example.cn cannot be delivered. This account has been disabled or discontinued.",
 "mailbox_disabled", "recipient", None, SZ),
# ---- second batch (same families; sources no earlier round read) --------------------------------
# Vade Secure's (Open-Xchange) postmaster pages: inbound and outbound refusals
("Vade Secure (OX)", "550 5.7.1 Connection refused - [192.0.2.1] blocked by Vade Threat List", "blocklisted", "session", "connect", VI),
("Vade Secure (OX)", "550 5.7.1 Connection refused - [192.0.2.1] blocked by Validity - https://senderscore.org/blocklist-lookup/", "blocklisted", "session", "connect", VI),
("Vade Secure (OX)", "550 5.7.1 Connection refused - 192.0.2.1 - https://check.spamhaus.org/results?query=192.0.2.1", "blocklisted", "session", "connect", VI),
# Spectrum / Charter
("Spectrum (Charter)", "554 impin004.msg.chrl.nc.charter.net cmsmtp 192.0.2.1 blocked. Please see for more information. AUP#In-1020",
 "blocklisted", "session", "connect", "https://community.spectrum.net/discussion/172891/i-manage-a-domain-stovebolt-com-that-is-having-emails-to-spectum-users-blocked (the link the reply carries was removed by the page)"),
("Spectrum (Charter)", "554 dnvrco-cmimta15 esmtp ESMTP server not available AUP#I-1010", "blocklisted", "session", "connect",
 "https://www.suped.com/knowledge/email-deliverability/troubleshooting/how-to-troubleshoot-email-delivery-issues-with-chartertwc-spectrumroadrunner-customers-including"),
# Proximus's outbound relay refusing a customer IP on its blacklist
("Proximus", "554 Access denied - Under investigation for spam abuse. Contact your email provider for more info", "blocklisted", "session", None,
 "https://www.proximus.be/support/en/id_sfaqs_mail_blacklist/self-employed-and-small-companies/support/internet/e-mails/problems-with-your-mailbox/your-ip-address-is-in-our-blacklist.html"),
# TransIP's own outbound spam check
("TransIP", "550-5.7.1 Our system has detected that this message is likely unsolicited mail (SPAM). To reduce the amount of spam, this message has been blocked. (12zGg44vPFz5Bcw7)",
 "spam_content", "message", "data", "https://transip.be/knowledgebase/email/1959-de-550-5-e-mail-bouncemelding"),
# STRATO: its filter's markers (B-URL: a URL in the body) and its outbound refusals
("STRATO", "Refused by local policy. No SPAM please! (B-URL)", "spam_content", "message", None, ST1),
("STRATO", "Refused by local policy. No SPAM please! (B-ATTACH)", "spam_content", "message", None, ST1),
("STRATO", "550 5.7.1 Refused by local policy. No SPAM please", "spam_content", "message", None, ST1),
("STRATO", "550 recipient e-mail adress unknown", "unknown_recipient", "recipient", None, ST1),
("STRATO", "550 5.7.1 Refused by local policy. Message contains a dangerous attachment!", "spam_content", "message", "data", ST2),
("STRATO", "550 5.7.1 Refused by local policy. Sending of SPAM is not permitted!", "spam_content", "message", "data", ST2),
# SPF refusals: a policy service behind Postfix's "Recipient address rejected" wrapper, a milter at the final dot
("Postfix + policyd-spf", "550 5.7.23 <a@example.com>: Recipient address rejected: Message rejected due to: SPF fail - not authorized. Please see http://www.openspf.net/Why?s=mfrom;id=bounces+8647778-1ae0-a=example.com@em1860.example.net;ip=192.0.2.246;r=<UNKNOWN>",
 "auth_failed", "sender", "rcpt", G + "netdata/netdata-cloud/issues/530"),
("Postfix milter (SPF)", "5.7.23 SPF validation failed.", "auth_failed", "sender", "data", G + "TheEnbyperor/zuegli/issues/9"),
# Spamhaus's CSS through zen for an IPv6 client
("Postfix (Spamhaus ZEN)", "554 5.7.1 Service unavailable; Client host [2001:db8:1000:910:acc1:5bff:fe5e:125c] blocked using zen.spamhaus.org; https://www.spamhaus.org/sbl/query/SBLCSS",
 "blocklisted", "session", "rcpt", G + "mail-in-a-box/mailinabox/issues/1638"),
]
