"""Candidates for tests/data/corpus/train/world2.yaml (issue #8, fourth round): real
replies quoted in public issue threads, providers' help and postmaster pages and
products' reference pages, each with its source. Labelled by reading the text (README,
"Format"), consistently with the labels the corpus already gives the same wording (Exim's
"Unrouteable address", "Your access to submit messages", "#5.1.0 Address rejected"); the
held-out part was never read. `scripts/corpus/build_world.py` drops every
candidate that is a near-duplicate of a corpus entry (a key shared with the held-out part
drops it unseen).

Each tuple: (provider, reply, category, scope, stage, source).
"""
I = "https://github.com/"
C = [
# --- issue threads (round 9)
("Dovecot", "452 mailbox full", "mailbox_full", "recipient", None, I+"customeros/mailsherpa/issues/32"),
("Microsoft Outlook", "450 4.7.3 Organization queue quota exceeded. [outlook.com]", "rate_limited", "recipient", None, I+"ActiveCampaign/smtp-field-manual/issues/42"),
("Postfix", "552 5.3.4 Error: message file too big", "message_too_large", "message", "data", I+"freescout-help-desk/freescout/issues/4976"),
("Exchange Online", "554 5.2.0 STOREDRV.Submission.Exception:MessageSubmissionExceededException.MapiExceptionMaxSubmissionExceeded; Failed to process message due to a permanent exception with message [BeginDiagnosticData]Cannot save changes made to an item to store.", "message_too_large", "message", "data", I+"pankleks/pm2-health/issues/52"),
("unknown", "552 message line is too long", "policy_rejected", "message", "data", I+"swiftmailer/swiftmailer/issues/989"),
("Haraka", "550 Message too big!", "message_too_large", "message", "data", I+"zone-eu/wildduck/issues/762"),
("unknown", "552 #5.3.4 message size exceeds limit", "message_too_large", "message", "data", I+"codeforamerica/clean/issues/331"),
("Postfix", "552 5.3.4 Message size exceeds fixed limit", "message_too_large", "message", "data", I+"zokradonh/kopano-docker/issues/409"),
("maddy", "552 Maximum message size exceeded", "message_too_large", "message", "data", I+"foxcpp/maddy/issues/772"),
("Gmail", "552-5.7.0 Our system detected an illegal attachment on your message", "spam_content", "message", "data", I+"ActiveCampaign/smtp-field-manual/pull/63"),
("policyd-spf", "550 SPF fail - not authorized", "auth_failed", "sender", None, I+"allink/pennyblack/issues/25"),
("MailChannels", "550 5.7.1 [BFD] Sender prohibited by SPF", "auth_failed", "sender", "data", I+"justingit/dada-mail/issues/717"),
("SimpleLogin", "550 5.7.23 <user@example.com>: Recipient address rejected: Message rejected due to: SPF fail - not authorized. Please see http://www.openspf.net/Why?s=mfrom;id=user@example.org;ip=192.0.2.193;r=<UNKNOWN>", "auth_failed", "sender", "rcpt", I+"simple-login/app/issues/1556"),
("Postfix", "delivery temporarily suspended: Host or domain name not found. Name service error for name=example.co.id type=MX: Host not found, try again", "routing_dns", "relay", None, I+"panubo/docker-postfix/issues/37"),
("OpenSMTPD", "No MX found for domain", "routing_dns", "relay", None, I+"OpenSMTPD/OpenSMTPD/issues/639"),
("Postfix", "421 4.4.2 Error: timeout exceeded", "temporary_failure", "session", None, I+"chatmail/core/pull/5665"),
("Symantec Email Security.cloud", "501 Connection rejected by policy [7.7]", "blocklisted", "session", "connect", I+"docker-mailserver/docker-mailserver/issues/534"),
("Forward Email", "450 4.2.1 Message was greylisted, try again in 59 seconds", "greylisted", "session", None, I+"forwardemail/forwardemail.net/issues/554"),
("Postfix", "delivery temporarily suspended: connect to alt2.gmail-smtp-in.l.google.com[192.0.2.26]:25: Connection timed out", "routing_dns", "relay", None, I+"sentora/sentora-core/issues/346"),
("OpenSMTPD", "451 Temporary failure", "temporary_failure", "session", "rcpt", I+"OpenSMTPD/OpenSMTPD/issues/546"),
# --- ZoneMTA's bounce rules file: the replies its comments quote as examples
('unknown', '550 192.0.2.44 blacklisted see http://www.spamhaus.org/query/bl?ip=192.0.2.44', 'blocklisted', 'session', None, 'zone-eu/zone-mta config/bounces.txt (example replies in its comments)'),
('unknown', '550 5.2.1 Mailbox unavailable. Your IP address 192.0.2.44 is blacklisted using SPAMHAUS-XBL. Details: https://www.spamhaus.org/query/ip/192.0.2.44.', 'blocklisted', 'session', None, 'zone-eu/zone-mta config/bounces.txt (example replies in its comments)'),
('unknown', '550 5.7.0 Your server IP address is in the SpamHaus SBL-XBL database, bye', 'blocklisted', 'session', None, 'zone-eu/zone-mta config/bounces.txt (example replies in its comments)'),
('unknown', '550 5.7.1 192.0.2.44 has been blocked by zen.spamhaus.org', 'blocklisted', 'session', None, 'zone-eu/zone-mta config/bounces.txt (example replies in its comments)'),
('unknown', '554 5.7.1 Service unavailable; Client host [192.0.2.4] blocked using ee.countries.nerd.dk; Your IP is in ee, rejected based on geographical location', 'blocklisted', 'session', None, 'zone-eu/zone-mta config/bounces.txt (example replies in its comments)'),
('unknown', '421 4.7.1 Service unavailable; Client host [192.0.2.4] blocked using grey.rbl - Rechazo temporal, intentelo mas tarde por favor...Greylisting in action, please try again later', 'greylisted', 'session', None, 'zone-eu/zone-mta config/bounces.txt (example replies in its comments)'),
('unknown', '550 5.7.1 :127.0.0.4:Client host 192.0.2.44 blocked using 87.blocklist.zap; Mail from IP banned. To request removal from this list please visit http://www.spamhaus.org/query/bl?ip=192.0.2.44', 'blocklisted', 'session', None, 'zone-eu/zone-mta config/bounces.txt (example replies in its comments)'),
('unknown', '550 5.7.1 <sender@example.com>... 192.0.2.44 listed at zen.spamhaus.org', 'blocklisted', 'session', None, 'zone-eu/zone-mta config/bounces.txt (example replies in its comments)'),
('unknown', '550 5.7.1 Blacklisted by zen.spamhaus.org. To avoid this problem on this particular server please visit http://spamfiltered.extra-dns.com/resolve/000-00-00-000-00-00-00-id-00000-00000 - Bezoek de site om dit probleem te verhelpen', 'blocklisted', 'session', None, 'zone-eu/zone-mta config/bounces.txt (example replies in its comments)'),
('unknown', '550 5.7.1 Client address [192.0.2.44] blocked. You are in the SPAMMER List - Listed on The Spamhaus Project. See http://www.spamhaus.org/query/bl?ip=192.0.2.44', 'blocklisted', 'session', None, 'zone-eu/zone-mta config/bounces.txt (example replies in its comments)'),
('unknown', '550 5.7.1 Rejected. Sender 192.0.2.44 found in SPL-XBL listing; see http://www.spamhaus.org/query/bl?ip=192.0.2.44', 'blocklisted', 'session', None, 'zone-eu/zone-mta config/bounces.txt (example replies in its comments)'),
('unknown', '554 5.7.1 Service unavailable; Client host [mail.example.com] blocked using multi.uribl.com', 'blocklisted', 'session', None, 'zone-eu/zone-mta config/bounces.txt (example replies in its comments)'),
('unknown', '550 5.7.1 The IP address was rejected by the Realtime Block List provider zen.spamhaus.org.', 'blocklisted', 'session', None, 'zone-eu/zone-mta config/bounces.txt (example replies in its comments)'),
('unknown', "550 5.7.1 This system is configured to reject mail from mta.example.com. Connecting host [192.0.2.44] is listed by the lookup site 'zen.spamhaus.org.'.", 'blocklisted', 'session', None, 'zone-eu/zone-mta config/bounces.txt (example replies in its comments)'),
('unknown', '550 5.7.1 Your IP address is listed by https://spamhaus.org/zen, correct this', 'blocklisted', 'session', None, 'zone-eu/zone-mta config/bounces.txt (example replies in its comments)'),
('unknown', '550 5.7.107 The IP address was rejected by the sbl.spamhaus.org RBL.', 'blocklisted', 'session', None, 'zone-eu/zone-mta config/bounces.txt (example replies in its comments)'),
('unknown', '550 Email blocked by SPAMHAUS', 'blocklisted', 'session', None, 'zone-eu/zone-mta config/bounces.txt (example replies in its comments)'),
('unknown', '550-IP 192.0.2.44 is blacklisted (xbl.spamhaus.org). Help at/Hilfe unter www.mfaq.info', 'blocklisted', 'session', None, 'zone-eu/zone-mta config/bounces.txt (example replies in its comments)'),
('unknown', '550-Rejected message because 192.0.2.44 is in a black list at sbl-xbl.spamhaus.org', 'blocklisted', 'session', None, 'zone-eu/zone-mta config/bounces.txt (example replies in its comments)'),
('unknown', '553 5.3.0 <recipient@example.com>... Mail from 192.0.2.44 rejected,see http://www.spamhaus.org/lookup/', 'blocklisted', 'session', None, 'zone-eu/zone-mta config/bounces.txt (example replies in its comments)'),
('unknown', '554 5.7.1 <recipient@example.com>: Recipient address rejected: https://www.spamhaus.org/query/ip/192.0.2.44', 'blocklisted', 'session', 'rcpt', 'zone-eu/zone-mta config/bounces.txt (example replies in its comments)'),
('unknown', '554 5.7.1 You are sending spam (check http://www.spamhaus.org/query/bl?ip=192.0.2.44)', 'blocklisted', 'session', None, 'zone-eu/zone-mta config/bounces.txt (example replies in its comments)'),
('unknown', '554 Denied [SHXBL] - Denied by Spamhaus XBL - See http://www.spamhaus.org/query/bl?ip=192.0.2.44 (Mode: normal)', 'blocklisted', 'session', None, 'zone-eu/zone-mta config/bounces.txt (example replies in its comments)'),
('unknown', '554 Refused. Your IP address is listed in the RBL at xbl.spamhaus.org', 'blocklisted', 'session', None, 'zone-eu/zone-mta config/bounces.txt (example replies in its comments)'),
('unknown', '554 mx.example.com bizsmtp IB105. Connection refused. 192.0.2.44 is listed on the Exploits Block List (XBL) <http://www.spamhaus.org/query/ip/192.0.2.44> Please visit http://www.spamhaus.org/xbl/ for more information.', 'blocklisted', 'session', None, 'zone-eu/zone-mta config/bounces.txt (example replies in its comments)'),
('unknown', '591 user@example.com your host [192.0.2.4] is blacklisted by dnsbl.sorbs.net. Currently Sending Spam See: http://www.sorbs.net/lookup.shtml?192.0.2.4. Send your questions to blacklist-admin@mx01.cmailpro.net', 'blocklisted', 'session', None, 'zone-eu/zone-mta config/bounces.txt (example replies in its comments)'),
('unknown', '550 Rejected due to DNSBL server response (dnsbl.cobion.com - 192.0.2.4)', 'blocklisted', 'session', None, 'zone-eu/zone-mta config/bounces.txt (example replies in its comments)'),
('unknown', '550 Service unavailable; Client Host [192.0.2.4] blocked using Trend Micro RBL+. Please see http://www.mail-abuse.com/cgi-bin/lookup?ip_address=192.0.2.4', 'blocklisted', 'session', None, 'zone-eu/zone-mta config/bounces.txt (example replies in its comments)'),
('unknown', '550 5.7.1 --- SAATKE SEE TEADE OMA IT-MEHELE! --- TEIE server 192.0.2.4 on BLACKLISTIS dnsbl.sorbs.net, Sorbs blokeeris kirja! YOUR server 192.0.2.4 is in the blacklist dnsbl.sorbs.net, your message was blocked by Sorbs! Check http://www.robtex.com/ip/192.0.2.4.html#blacklists', 'blocklisted', 'session', None, 'zone-eu/zone-mta config/bounces.txt (example replies in its comments)'),
('unknown', '554 Connection from 192.0.2.4 rejected for policy reasons. Host found in DNS blacklist at dnsbl.sorbs.net', 'blocklisted', 'session', None, 'zone-eu/zone-mta config/bounces.txt (example replies in its comments)'),
('unknown', '554 5.7.1 SORBS DNSBL Entry - see <http://www.us.sorbs.net/lookup.shtml?192.0.2.4>', 'blocklisted', 'session', None, 'zone-eu/zone-mta config/bounces.txt (example replies in its comments)'),
('unknown', '451 Currently Sending Spam See: http://www.sorbs.net/lookup.shtml?192.0.2.4', 'blocklisted', 'session', None, 'zone-eu/zone-mta config/bounces.txt (example replies in its comments)'),
('unknown', '501 5.7.1 <sender@example.com>... Sender refused by the DNSBL dnsbl.sorbs.net', 'blocklisted', 'session', None, 'zone-eu/zone-mta config/bounces.txt (example replies in its comments)'),
('unknown', '450 Requested action not taken:c1mx2, IwENCgC3+s5MYEpYXlIcAA--.4588S3, dnsbl.sorbs.net, please try again', 'blocklisted', 'session', None, 'zone-eu/zone-mta config/bounces.txt (example replies in its comments)'),
('unknown', '554 mx.example.com cmsmtp 5.7.1 Service unavailable; Client host [192.0.2.4] blocked using cm-csi-v11; Cloudmark Poor Reputation Sender Blacklist http://csi.cloudmark.com/reset-request/?ip=192.0.2.4', 'blocklisted', 'session', None, 'zone-eu/zone-mta config/bounces.txt (example replies in its comments)'),
('unknown', '554 5.5.4 Your IP 192.0.2.4 address has a bad reputation. To unblock visit http://cloud-security.net/unblock?id=0000', 'blocklisted', 'session', None, 'zone-eu/zone-mta config/bounces.txt (example replies in its comments)'),
('AT&T', '553 5.3.0 flph825 DNSBL:ATTRBL 521< 192.0.2.4 >_is_blocked.For assistance forward this email to abuse@example.com', 'blocklisted', 'session', None, 'zone-eu/zone-mta config/bounces.txt (example replies in its comments)'),
('unknown', "554-mx.example.com Your access to this mail system has been rejected due to the sending MTA's poor reputation. If you believe that this failure is in error, please contact the intended recipient", 'blocklisted', 'session', None, 'zone-eu/zone-mta config/bounces.txt (example replies in its comments)'),
('unknown', '553 5.7.1 <mta.example.com[192.0.2.4]>: Client host rejected: Relaying denied - Your IP identified as spammer. Please contact 123', 'blocklisted', 'session', None, 'zone-eu/zone-mta config/bounces.txt (example replies in its comments)'),
('Microsoft Outlook', '550 5.7.511 Access denied, banned sender[192.0.2.4]. To request removal from this list please forward this message to delist@messaging.microsoft.com. For more information please go to http://go.microsoft.com/fwlink/?LinkId=526653. AS(508) [AM5EUR02FT019.eop-EUR02.prod.protection.outlook.com]', 'blocklisted', 'session', None, 'zone-eu/zone-mta config/bounces.txt (example replies in its comments)'),
('Mimecast', '550 csi.mimecast.org Poor Reputation Sender. - https://community.mimecast.com/docs/DOC-1369#550 [vH7Ns8biNg-p6EfZ0QaVMQ.us149]', 'blocklisted', 'session', None, 'zone-eu/zone-mta config/bounces.txt (example replies in its comments)'),
('unknown', '550 Too many invalid recipients', 'rate_limited', 'session', None, 'zone-eu/zone-mta config/bounces.txt (example replies in its comments)'),
('unknown', '550 Black listed at hostkarma http://ipadmin.junkemailfilter.com/remove.php?ip=192.0.2.4', 'blocklisted', 'session', None, 'zone-eu/zone-mta config/bounces.txt (example replies in its comments)'),
('unknown', '550 The sending IP (192.0.2.4) is listed on https://spamrl.com/. Please resolve this and retry.', 'blocklisted', 'session', None, 'zone-eu/zone-mta config/bounces.txt (example replies in its comments)'),
('Comcast', '554 resimta-po-11v.sys.comcast.net resimta-po-11v.sys.comcast.net 192.0.2.4 found on one or more DNSBLs, see http://postmaster.comcast.net/smtp-error-codes.php#BL000010', 'blocklisted', 'session', None, 'zone-eu/zone-mta config/bounces.txt (example replies in its comments)'),
]
C += [
("Mimecast", "550 Administrative prohibition - envelope blocked - https://community.mimecast.com/docs/DOC-1369#550 [0000]", "policy_rejected", "sender", None, "ActiveCampaign/smtp-field-manual data/codes/550.json"),
("Mimecast", "550 Rejected by header based Anti-Spoofing policy: email@example.com - https://community.mimecast.com/docs/DOC-1369#550 [0000]", "policy_rejected", "sender", None, "ActiveCampaign/smtp-field-manual data/codes/550.json"),
("Barracuda", "550 cuda_nsu 5.1.1 <email@example.com>... User unknown", "unknown_recipient", "recipient", "rcpt", "ActiveCampaign/smtp-field-manual data/codes/550.json"),
("Barracuda", "550 cuda_nsu 5.4.1 [email@example.com]: Recipient address rejected: Access denied [example.com]", "unknown_recipient", "recipient", "rcpt", "ActiveCampaign/smtp-field-manual data/codes/550.json"),
]
C += [
("Postal", "550 relay not permitted!", "relay_denied", "session", "rcpt", I+"postalserver/postal/issues/647"),
("mailcow", "550 Relay denied for <user@example.com>", "relay_denied", "session", "rcpt", I+"mailcow/mailcow-dockerized/issues/2095"),
("Postfix", "454 4.7.1 <bounce+c5e8a8.afb32-user=example.it@mail.example.it>: Relay access denied", "relay_denied", "session", "rcpt", I+"mailcow/mailcow-dockerized/issues/643"),
("GoDaddy", "554 p3plibsmtp03-07.prod.phx3.secureserver.net CMGW IB103. Connection refused. 192.0.2.198 has a poor reputation on Cloudmark Sender Intelligence (CSI). Please visit http://csi.cloudmark.com/reset-request/?ip=192.0.2.198 to request a delisting.", "blocklisted", "session", "connect", I+"jstanden/cerb/issues/1628"),
("Trend Micro", "Recipient address rejected: Mail from <192.0.2.11> was refused due to the sender IP found in ERS-DUL. For details, query the IP reputation on https://servicecentral.trendmicro.com/en-US/ers/.", "blocklisted", "session", "rcpt", I+"thunderbird/mailstrom/issues/197"),
("Proofpoint", "554 Blocked - see https://ipcheck.proofpoint.com/?ip=192.0.2.77", "blocklisted", "session", "connect", I+"zone-eu/zone-mta/issues/447"),
("Orange", "550 mwinf5c14 ME Adresse IP source bloquee pour incident de spam. Client host blocked for spamming issues. OFR006_102 Ref http://csi.cloudmark.com/reset-request/?ip=192.0.2.1 [102]", "blocklisted", "session", "connect", I+"ActiveCampaign/smtp-field-manual/pull/60"),
("unknown", "421 4.7.1 Intrusion prevention active for [192.0.2.1][R]", "blocklisted", "session", None, I+"zytzagoo/smtp-validate-email/issues/9"),
("Microsoft Outlook", "4.7.650 The mail server [192.0.2.6] has been temporarily rate limited due to IP reputation. For e-mail delivery information, see https://postmaster.live.com (S775) [Name=Protocol Filter Agent][AGT=PFA][MxId=11B9A39F520F25FB] [AMS0EPF000001B0.eurprd05.prod.outlook.com 2024-10-07T11:32:37.217Z 08DCD1CFD0B7A9E3]", "rate_limited", "session", None, I+"ppresume/community/issues/104"),
]
C += [
("unknown", "421 NSO example.com Unable to contact destination SMTP demon example.net", "routing_dns", "relay", None, "jeffpar/kbarchive kb/169/Q169781/README.md (Microsoft KB Q169781)"),
("Exchange Online", "554 5.2.0 STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; Failed to process message due to a permanent exception with message Cannot submit message.", "relay_denied", "sender", "data", I+"MicrosoftDocs/OfficeDocs-Support/issues/1187"),
("Outlook.com", "554 5.2.252 SendAsDenied; user@outlook.com not allowed to send as security@example.com; STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; Failed to process message due to a permanent exception with message [BeginDiagnosticData]Cannot submit message.", "relay_denied", "sender", "data", I+"gophish/gophish/issues/2900"),
("Microsoft Exchange", "550 5.7.1 Client does not have permissions to send as this sender", "relay_denied", "sender", "data", I+"nodemailer/nodemailer/issues/145"),
("Exchange Online", "550 5.7.513 Service unavailable, Client host [192.0.2.1] blocked by example.com using Customer Block list (AS16012607)", "blocklisted", "session", None, I+"MicrosoftDocs/OfficeDocs-Exchange/pull/1230"),
("Exchange Online", "550 5.7.512 Access denied, message must be RFC 5322 section 3.6.2 compliant", "policy_rejected", "message", "data", I+"MicrosoftDocs/OfficeDocs-Exchange/pull/1230"),
("Haraka", "552 Too many received headers - possible mail loop (187DB187-812C-4995-BC87-D9657C56AB3A.1) (E7E743CB-4B72-43F5-A2E6-1AC163E4C81A.1)", "routing_dns", "message", "data", I+"haraka/Haraka/issues/1150"),
("Postfix", "554 5.4.0 Error: too many hops", "routing_dns", "message", "data", I+"Billionmail/BillionMail/issues/79"),
("Postal", "550 Loop detected", "routing_dns", "message", "data", I+"postalserver/postal/issues/1074"),
("Exchange", "554 5.4.14 Hop count exceeded - possible mail loop", "routing_dns", "message", None, I+"MicrosoftDocs/OfficeDocs-Support/issues/1252"),
("Mailprotector", "421 4.4.2 Message submission rate for this client has exceeded the configured limit", "rate_limited", "session", "mail", "https://support.mailprotector.com/hc/en-us/articles/360048244891-Common-Email-Bouncebacks"),
("VPOP3", "550 5.7.1 Recipient Prohibited (3)", "policy_rejected", "recipient", "rcpt", "https://wiki.pscs.co.uk/_export/raw/how_to:550_5.7.1_recipient_prohibited_x"),
]
P = "https://pastebin.com/"
C += [
("hMailServer", "554 Sender domain does not have any MX records.", "auth_failed", "sender", "data", I+"hmailserver/hmailserver/issues/260"),
("Exchange Online", "530 5.7.57 Client not authenticated to send mail. [BN1P110CA0052.NAMP110.PROD.OUTLOOK.COM 2023-11-29T14:52:57.126Z 08DBE7319275F6BA]", "relay_denied", "session", "mail", P+"SuB30vi5"),
("Postfix", "553 5.7.1 <user@example.net>: Sender address rejected: not logged in", "relay_denied", "sender", "rcpt", P+"iZTjg9SQ"),
("GoDaddy", "550 5.1.1 <recipient@example.com> recipient rejected. This is a default recipient used as a placeholder in many web applications. Please check your settings and try again.", "unknown_recipient", "recipient", "rcpt", P+"RJeh1Bwk"),
("Exim", "No Such User Here", "unknown_recipient", "recipient", None, P+"zci0Kp1W"),
("Exim", "Unrouteable address", "unknown_recipient", "recipient", None, P+"ugEgT7s2"),
("Exim", "Mailing to remote domains not supported", "routing_dns", "relay", None, P+"L98SVDPu"),
("EarthLink", "550 user@earthlink.net...User account is overquota", "mailbox_full", "recipient", None, P+"MMGUFmXp"),
("AT&T", "553 5.3.0 <user@worldnet.att.net>... 550 worldnet addressee unknown, relay=[192.0.2.156]", "unknown_recipient", "recipient", None, P+"MMGUFmXp"),
("Symantec MessageLabs", "550-Invalid recipient <user@example.co.uk>\n550 (#5.1.1)", "unknown_recipient", "recipient", "rcpt", P+"7HST6vSQ"),
("WP.pl", "554 sorry, refused mailfrom because return MX does not exist", "auth_failed", "sender", "mail", P+"w116qRkA"),
("AOL", "521 5.2.1 : (CON:B1) http://postmaster.info.aol.com/errors/554conb1.html", "rate_limited", "session", None, P+"WuxZTzm8"),
("Dovecot", "550 5.1.1 <user@example.in> User doesn't exist: user@example.in", "unknown_recipient", "recipient", "rcpt", P+"h1UJjjS0"),
("Postfix", "554 5.7.1 <barman@host.example.prod>: Sender address rejected: Access denied", "policy_rejected", "sender", "rcpt", P+"gf1TwE62"),
("Postfix", "bad address syntax", "syntax_error", "recipient", None, P+"CPiQbc4a"),
("Postfix", "Command died with status 255: \"procmail -a \"$EXTENSION\"\"", "other", "recipient", None, P+"8H3mTzMM"),
]
C += [
("Google Workspace", "550 Invalid recipient: samuel.ferry", "unknown_recipient", "recipient", "rcpt", P+"xxj5LiFS"),
("qmail", "Connected to 192.0.2.5 but connection died. (#4.4.2)\nI'm not going to try again; this message has been in the queue too long.", "expired", "relay", None, P+"tt5hdnmc"),
("unknown", "421 Refused. Your reverse DNS entry does not resolve.", "auth_failed", "session", "rcpt", P+"VSzBjb7D"),
("php.net", "451 4.7.1 greylisting, please try again later", "greylisted", "session", "rcpt", P+"gzYuEyr5"),
("unknown", "550 5.7.1 Requested action not taken: message refused", "policy_rejected", "message", "data", P+"XgicFi2n"),
("Gmail", "The recipient server did not accept our requests to connect. Learn more at https://support.google.com/mail/answer/7720 [(0) mx.example.com. [192.0.2.96]:465: socket error]", "routing_dns", "relay", None, P+"xBT4cWzD"),
("qmail", "553 sorry, this recipient is not in my validrcptto list (#5.7.1)", "unknown_recipient", "recipient", "rcpt", P+"sRe9t6bn"),
("Gmail", "DNS Error: DNS server returned answer with no data", "routing_dns", "recipient", None, P+"FFbF5ezY"),
("Bluehost", "550 550 unknown user (state 14).", "unknown_recipient", "recipient", "rcpt", P+"Bv7SeYDG"),
("Exim", "retry time not reached for any host after a long failure period", "expired", "relay", None, P+"YGSVtzJn"),
]
C += [
("GoDaddy", "550 #5.1.0 Address rejected user@example.co.uk", "other", "recipient", "rcpt", P+"TuTFHMDq"),
("1&1 IONOS", "554-kundenserver.de (mxeue106) Nemesis ESMTP Service not available\n554-No SMTP service\n554-IP address is black listed.\n554 For explanation visit http://postmaster.1and1.com/en/error-messages?ip=192.0.2.176&c=bip", "blocklisted", "session", "connect", P+"ttzFAhDJ"),
("unknown", "554 Transaction failed", "policy_rejected", "session", "connect", P+"uqn1m9qf"),
("unknown", "550 5.1.7 <SRS0=3Xv7n4=65=example.lol=was@example.net>: Sender address rejected: undeliverable address: host mx.example.net[192.0.2.66] said: 550 <srs0=3xv7n4=65=example.lol=was@example.net> recipient rejected (in reply to RCPT TO command)", "policy_rejected", "sender", "rcpt", P+"NBuLYjju"),
("unknown", "554 inchng01.example.com", "policy_rejected", "session", "connect", P+"AAXTRfvC"),
("unknown", "501 Domain must resolve", "auth_failed", "sender", None, P+"6jWTqzEG"),
("Microsoft Exchange", "550 #5.7.1 Your access to submit messages to this e-mail system has been rejected.", "policy_rejected", "session", "rcpt", P+"i3WV22Bp"),
("bigmir.net", "550 Mailbox is frozen. See http://mail.bigmir.net/err/3/", "mailbox_disabled", "recipient", "rcpt", P+"UWADPXYL"),
("Mail.ru", "550 Message was not accepted -- invalid mailbox. Local mailbox user@mail.ru is unavailable: user is terminated", "mailbox_disabled", "recipient", "data", P+"UWADPXYL"),
("freehost.com.ua", "550 Relay not permitted", "relay_denied", "session", "rcpt", P+"UWADPXYL"),
("AOL", "550 5.1.1 <user@aol.com>: Recipient address rejected: aol.com", "unknown_recipient", "recipient", "rcpt", P+"UWADPXYL"),
("Sendmail", "451 <user@example.com>... Requested mail action not taken: mailbox unavailable", "temporary_failure", "recipient", "rcpt", P+"UFk3P2PX"),
("Postfix", "connect to alt2.gmail-smtp-in.l.google.com[2001:db8:400b:c03::1b]:25: Network is unreachable", "routing_dns", "relay", None, P+"1bksmd9p"),
("Halon", "400 Could not connect to [example.co.uk->MX]:25", "routing_dns", "relay", None, P+"S3dz220t"),
]
C += [
("T-Online", "450 4.7.1 [EAB] 554 IP=192.0.2.30 - A problem occurred. (Ask your postmaster for help or to contact tosa@rx.t-online.de to clarify.) (BL)", "blocklisted", "session", "connect", P+"sSR9QSuC"),
("unknown", "554 nycirprmg02.iap.example.com", "policy_rejected", "session", "connect", P+"zvxsPjWy"),
("Microsoft Frontbridge", "550 <example.com[192.0.2.222]>: Client host rejected: Access Denied", "policy_rejected", "session", "rcpt", P+"UyYmyNYV"),
("Hotmail", "550 SC-001 (SNT004-MC4F53) Unfortunately, messages from 192.0.2.137 weren't sent. Please contact your Internet service provider since part of their network is on our block list. You can also refer your provider to http://mail.live.com/mail/troubleshooting.aspx#errors.", "blocklisted", "session", "mail", P+"aEkGUxq1"),
("MailEnable", "522 5.7.1 MailDomain example.com Disk quota has been exceeded", "mailbox_full", "recipient", None, P+"a3CnB5k5"),
("qmail", "user is over quota", "mailbox_full", "recipient", None, P+"c2hsSsdk"),
("1&1 IONOS", "552-Requested mail action aborted: exceeded storage allocation\n552-Quota exceeded.\n552 For explanation visit http://postmaster.1and1.com/en/error-messages?ip=192.0.2.24&c=quot", "mailbox_full", "recipient", "rcpt", P+"dS0JkYBA"),
("CommuniGate Pro", "account is full (quota exceeded)", "mailbox_full", "recipient", None, P+"UBXPuzBK"),
("Exim", "mailbox is full: retry timeout exceeded", "mailbox_full", "recipient", None, P+"44P1faxw"),
("Microsoft Exchange", "554 5.2.2 mailbox full; STOREDRV.Deliver.Exception:QuotaExceededException.MapiExceptionShutoffQuotaExceeded; Failed to process message due to a permanent exception with message Cannot open mailbox /o=Example/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Configuration/cn=Servers/cn=SRV1/cn=Microsoft System Attendant.", "mailbox_full", "recipient", None, P+"CtFSTqdA"),
]
C += [
("1&1 IONOS", "delivery retry timeout exceeded", "expired", "relay", None, P+"8MufPjWC"),
("Exchange Online", "550 5.7.520 Message blocked because it contains content identified as spam. AS(4810)", "spam_content", "message", None, "https://gitlab.com/stavros/Spamnesty/-/work_items/183"),
("Microsoft Exchange", "550 5.7.1 Message rejected as spam by Content Filtering.", "spam_content", "message", "data", P+"zFzcEWws"),
("Free", "550 spam detected", "spam_content", "message", "data", P+"s6J1ggmv"),
]
C += [
("unknown", "450 too many connections from your IP (rate controlled)", "too_many_connections", "session", "rcpt", "https://gist.github.com/pbruna/4595838"),
("Com Hem", "421 Too many concurrent SMTP connections from this IP address; please try again later.", "too_many_connections", "session", "connect", P+"WNnATukB"),
("PowerMTA", "Remote side closed connection during MAIL FROM", "temporary_failure", "relay", "mail", P+"Cymg8y1u"),
("PowerMTA", "remote side unexpectedly closed the connection with no status", "temporary_failure", "relay", None, P+"Cymg8y1u"),
]
C += [
("Postfix", "552 552 5.3.4 Error: message file too big (state 18).", "message_too_large", "message", "data", P+"HCfTUB06"),
("Yahoo", "552 message size exceeds maximum message size", "message_too_large", "message", "mail", P+"MAjBV3zj"),
("Sendmail", "501 5.0.0 HELO requires domain address", "protocol_error", "session", "helo", "https://www.oreilly.com/library/view/sendmail-3rd-edition/1565928393/re702.html"),
("Sendmail", "501 5.0.0 Invalid domain name", "protocol_error", "session", "helo", "https://www.oreilly.com/library/view/sendmail-3rd-edition/1565928393/re702.html"),
]
C += [
("NetEase 163", "554 DT:SPM 163 smtp12,EMCowACnzwc_BjhcKMZmAQ--.20404S2 1547175487,please see http://mail.163.com/help/help_spam_16.htm?ip=192.0.2.2&hostid=smtp12&time=1547175487", "spam_content", "message", "data", I+"zabbix-book/zabbix_mail_with_graph/issues/1"),
("amavis", "554 5.7.1 Rejected for policy reasons (4009BC600FD506A44DB)", "policy_rejected", "message", "data", P+"DYMqRFvT"),
("bmail.ru", "551 5.9.9 Message you sent blocked by our bulk spam email filter. If you feel we mistreat you, do contact us: abuse@email.ru", "spam_content", "message", "data", P+"mdrmw62V"),
("Yandex", "554 5.7.1 Service unavailable; Client host [192.0.2.40] blocked using spamsource.yandex.ru; Blocked by spam statistics - see http://feedback.yandex.ru/?from=mail-rejects&subject=192.0.2.40", "blocklisted", "session", "connect", P+"wWEpeehX"),
("Mail.ru", "550 5.7.1 This message was not accepted due to domain (mail.ru) owner DMARC policy (RFC 7489) https://help.mail.ru/mail-help/postmaster/dmarc", "auth_failed", "sender", "data", P+"fpJZapwZ"),
("Cisco IronPort", "550 Denied by policy", "policy_rejected", "message", None, P+"81nr4HxE"),
("Yahoo", "554 Message not allowed - [PH01] Email not accepted for policy reasons. Please visit http://postmaster.yahoo.com/errors/postmaster-27.html", "spam_content", "message", "data", P+"hcGMu8wW"),
]
C += [
("Gmail", "The recipient server did not accept our requests to connect. For more information, go to https://support.google.com/mail/answer/7720 [example.de 192.0.2.242: FAILED_PRECONDITION: connect error (111): Connection refused]", "routing_dns", "relay", None, P+"CPtD6DUA"),
("qmail", "454 454 TLS not available due to temporary reason (state 9).", "temporary_failure", "session", None, P+"NyGj4hum"),
("qmail", "553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)", "relay_denied", "session", "rcpt", P+"V22msPMs"),
("HP", "550 5.5.1 Protocol error", "protocol_error", "session", "rcpt", P+"6UJWHCNY"),
("Bell Canada", "550 you are not allowed to send mail to <user@sympatico.ca>", "relay_denied", "session", "rcpt", P+"Y6mnKJ1Z"),
("Haraka", "550 5.1.1 <doesntexist@test.local>: Recipient address rejected: undeliverable address: host 192.0.2.131[192.0.2.131] said: 550 sorry, no mailbox here by that name (in reply to RCPT TO command)", "unknown_recipient", "recipient", "rcpt", P+"45SNf1Ec"),
]
C += [
("Postfix", "554 5.7.1 <host-192-0-2-53.example.pl>: Helo command rejected: Generic / dynamic helo/ehlo is not allowed here", "policy_rejected", "session", "rcpt", P+"TVZVzp5w"),
("HostGator", "550 5.7.1 <gateway36.example.com[192.0.2.2]>: Client host rejected: Rejected : Phishing", "policy_rejected", "session", "rcpt", P+"HucQjivi"),
("Microsoft Exchange", "#550 5.1.1 RESOLVER.ADR.RecipNotFound; not found ##", "unknown_recipient", "recipient", None, P+"2SNHTj4Y"),
("Microsoft Exchange", "550 5.1.1 RESOLVER.ADR.ExRecipNotFound; not found", "unknown_recipient", "recipient", None, P+"JHaPQHk7"),
]
C += [
("Wedos", "550 5.7.1 <user@example.cz>: Sender address rejected: mailbox disabled - DEBUG: dom example.cz", "policy_rejected", "sender", "rcpt", P+"6JA7cVwM"),
("UPC chello", "550 5.1.1 <user@chello.nl> inactive recipient rejected", "mailbox_disabled", "recipient", "rcpt", P+"Mssd7NsK"),
("unknown", "557 Email address - user@example.com - is not available here. Disconnecting...", "other", "recipient", "rcpt", P+"5RThtzeu"),
("Postfix", "553 5.7.1 <john@example.co.uk>: Sender address rejected: not owned by user mail@example.co.uk", "relay_denied", "sender", "rcpt", P+"zxBiePqa"),
("safe4mail", "553 sorry, your envelope sender domain must exist (#5.7.1)", "auth_failed", "sender", "mail", P+"wQKuV2Cw"),
("Sendmail", "553 5.1.8 <user@host.example.host>... Domain of sender address user@host.example.host does not exist", "auth_failed", "sender", "mail", P+"uMZauzC7"),
("Zimbra", "550 5.1.0 <admin@host.example.com>: Sender address rejected: host.example.com", "policy_rejected", "sender", "rcpt", P+"V0YmbcGE"),
]
C += [
("Amazon SES", "454 Throttling failure: Maximum sending rate exceeded.", "rate_limited", "sender", "data", I+"hackclub/hackathons-backend/issues/543"),
("SendGrid", "550 The from address does not match a verified Sender Identity. Mail cannot be sent until this error is resolved. Visit https://sendgrid.com/docs/for-developers/sending-email/sender-identity/ to see the Sender Identity requirements", "relay_denied", "sender", "data", I+"sahat/hackathon-starter/issues/1083"),
("SendGrid", "550 Unauthenticated senders not allowed", "relay_denied", "session", None, I+"sendgrid/docs/issues/6473"),
("SendGrid", "451 Authentication failed: Maximum credits exceeded", "rate_limited", "sender", None, I+"mautic/mautic/issues/8721"),
("Amazon SES", "554 Message rejected: Email address is not verified. The following identities failed the check in region US-WEST-2: user@example.com", "relay_denied", "sender", "data", I+"sul-dlss/dlme/issues/813"),
]
Z = "zone-eu/zone-mta config/bounces.txt (example replies in its comments)"
C += [
("Postfix", "452 4.3.1 Insufficient system storage", "temporary_failure", "session", "mail", P+"zTbyE479"),
("Postfix", "503 5.5.1 Error: need MAIL command", "protocol_error", "session", "rcpt", P+"zTbyE479"),
("unknown", "550 192.0.2.44 listed at spamhaus, see http://www.spamhaus.org", "blocklisted", "session", None, Z),
("unknown", "550 5.7.1 Mail from 192.0.2.44 rejected using zen.spamhaus.org. Please see http://www.spamhaus.org/query/bl?ip=192.0.2.44", "blocklisted", "session", None, Z),
("unknown", "553 5.3.0 192.0.2.44 Rejected - see http://www.spamhaus.org", "blocklisted", "session", None, Z),
("unknown", "554 Service unavailable; Client host [mta.example.com] blocked by zen.spamhaus.org; 192.0.2.44", "blocklisted", "session", None, Z),
("unknown", "550 Mail from 192.0.2.4 rejected see: http://www.dnsbl.sorbs.net/", "blocklisted", "session", None, Z),
("unknown", "550-\"JunkMail rejected - mta.example.com [192.0.2.4] is in an RBL on csi.cloudmark.com/reset-request/?ip=192.0.2.4 , see Poor Reputation Sender\"", "blocklisted", "session", None, Z),
]
