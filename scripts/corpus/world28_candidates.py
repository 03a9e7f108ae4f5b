"""Candidates for tests/data/corpus/train/world28.yaml (issue #8, the thirtieth round, branch world28),
aimed at the confusion families the issue names, from sources no earlier round read (checked against every
`source` of the training part and of the candidates files; the issue threads and pages the search tool
returned first for these families were mostly read by earlier rounds and were left out):

1. providers' and gateways' block-list and reputation refusals vs rate limits: Yahoo's "[TSS06] All
   messages from <ip> will be permanently deferred" (hardware/mailserver#206), its TSS04 deferral and BL23
   XBL refusal as ActiveCampaign/smtp-field-manual#88 and #64 quote them, Gandi's "blocked you may be
   infected" help page, a Spamhaus page's and mail.com's blog's quoted Spamhaus refusals, Cisco IronPort's
   and Mimecast's poor-reputation refusals and a Cloudmark RBL refusal in pastes;
2. authentication vs relaying vs policy at the submission relay: Exchange Online's "530 5.7.57 Client not
   authenticated" (wader/postfix-relay#79), Exchange's "5.7.1 Client was not authenticated"
   (jstedfast/MailKit#1265), "550 Authentication is required for relay" (4IceG/luci-app-sms-tool-js#45),
   Outlook's "5.7.60 ... permissions to send as this sender" (gophish/gophish#1600), a Swiss filter's "Forged
   sender domain from this server" (an SPF check of bluewin.ch senders);
3. unknown vs disabled mailbox and recipient-address syntax vs policy: iCloud's "user lookup success but
   no user record found" (SocketLabs' status page), Exchange's DBEB "5.4.1 Recipient address rejected:
   Access denied. AS(...)" (maxsptz/emailpyspam#23, MicrosoftDocs/OfficeDocs-Exchange#2336), Exchange
   Server's NDR table on TechNet (an invalid recipient address under X.1.3; reserved RFC 2606 domains and
   single-label domains refused by a receive connector), Postfix's "Recipient address rejected: Access
   denied" from an access table (Turgon37/docker-smtp-relay#25), Dutch hosts' help pages quoting replies
   (weboke.nl's unknown recipient under 5.1.0), carerix's quoted "554 Invalid recipient";
4. the sending side's own DNS and connection texts without a reply code: Postfix's connect time-outs in
   issue threads (huan/docker-simple-mail-forwarder#42, bokysan/docker-postfix#21, catatnight/docker-postfix#22,
   docker-mailserver/docker-mailserver#233 and #598), a mail server's "temporary MX resolution error"
   (NamelessMC/Nameless#3083), Exim's texts quoted by weboke.nl (unrouteable address, MX records pointing to
   non-existent hosts, retry time-out).

Facts only: the texts as the sources quote them. Wrappers ("host ... said:", "(in reply to ... command)",
log prefixes, client libraries' exception text) removed, the command becomes `stage`; flattened
multi-line replies put back into lines; placeholders (x.x.x.x, xxxxxxx, redacted addresses and IPs)
filled with documentation values (example.com, 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24).

Labelled by reading, before any rule was run on them, with the corpus README's conventions and the labels
the corpus already gives the same kind of text: a provider's own IP block or reputation block blocklisted
about the session (as Mimecast's "Poor Reputation Sender" and Yahoo's BL21), a deferral for complaints or
volume rate_limited about the session (as Yahoo's TSS04); authentication required before relaying
relay_denied about the session (as Exchange's 5.7.57), a login not allowed to send as the sender
relay_denied about the sender (as 5.7.60); an SPF-style forged sender domain auth_failed about the sender;
Exchange's DBEB 5.4.1 unknown_recipient (as the two entries the corpus holds); an invalid recipient address
under X.1.3 syntax_error; a receive connector's refusal of reserved or single-label domains policy_rejected
about the recipient (a rule of that server, not a malformed address); Postfix's "Recipient address
rejected: Access denied" from an access table policy_rejected about the recipient; connect time-outs and
DNS failures of the sending side routing_dns about the relay, a DNS answer about the recipient's domain
routing_dns about the recipient; Exim's retry time-out expired about the relay.

A second batch (after the first batch's labels were committed in 16cb478 and measured, and its rule changes
made; labelled and committed before any rule ran on it, its first pass measured with main's product as the
first batch's was): the service messages of FTGate's SMTP server (its documentation's table: disabled
mailbox, quota, disk space, concurrent sessions, an invalid EHLO, mailbox access errors), the replies of a
British relay service (iridis.uk's mailRelay: hourly and daily send rates, sender and recipient domains that do
not exist, an unknown recipient, RFC 2822 conformance, viruses and forbidden extensions, relay prohibited, as
"PREFIX: text" without an exact reply code), Gordano's "550 Mail Relay not allowed", a host's wiki
(polarismail: a daily send limit, the sender on its own blacklist) and Lotus Domino's inbound sender controls
and server mail rules (IBM's Domino 6 spam guide). Labels as above; a relay service's send rate per hour or day
rate_limited about the sender (as an ESP's quota), a disk of the receiving system out of space
temporary_failure about the session, FTGate's "Invalid EHLO" protocol_error about the session (the corpus's
"invalid HELO"), Domino's refusal of a denied sender policy_rejected about the sender.

Each tuple: (provider, reply, category, scope, stage, source).
"""
G = "https://github.com/"
TN = ("http://technet.microsoft.com/en-us/library/bb232118.aspx (Exchange Server's NDR table: enhanced status "
      "and its text, no reply code)")
WB = "https://www.weboke.nl/knowledgebase/6/Email-foutmeldingen-Mail-delivery-failed-returning-message-to-sender.html"
CX = "http://nl.help.carerix.com/nl/articles/2245905-e-mail-bounce (replies quoted by Carerix's help page)"

FT = ("http://docs.ftgate.com/ftgate-documentation/error-messages/service-error-messages/ (FTGate's table of its "
      "service messages; %s filled)")
IR = ("https://portal.iridis.uk/?action=article&cmd=knowledgebase&id=254 (the mailRelay service's responses as "
      "'Prefix: Specific Response'; the table gives 4xx/5xx, no exact reply code)")
PM = "http://wiki.polarismail.com/display/Support/Common+Problems"
DO = "https://www.manualowl.com/m/IBM/AH0QXML/Manual/336022?page=56 (Lotus Domino 6 spam survival guide)"

C = [
# ---- block lists and reputation vs rate limits -------------------------------------------------------
("Yahoo", "553 5.7.2 [TSS06] All messages from 192.0.2.239 will be permanently deferred; Retrying will NOT succeed. See https://help.yahoo.com/kb/postmaster/SLN3436.html",
 "blocklisted", "session", "mail", G + "hardware/mailserver/issues/206 (IP filled)"),
("Yahoo", "421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes",
 "rate_limited", "session", None, G + "ActiveCampaign/smtp-field-manual/pull/88 (the wording before the change)"),
("Yahoo", "553 Mail from 192.0.2.2 not allowed - 5.7.1 [BL23] Connections not accepted from IP addresses on Spamhaus XBL;",
 "blocklisted", "session", None, G + "ActiveCampaign/smtp-field-manual/pull/64"),
("Gandi", "554 5.7.1 Service unavailable; Client host [192.0.2.15] blocked you may be infected",
 "blocklisted", "session", None, "https://docs.gandi.net/en/gandimail/faq/error_types/554_5_7_1_service_unavailable.html (IP filled)"),
("Postfix (Spamhaus ZEN)", "554 5.7.1 Service unavailable; Client host [203.0.113.45] blocked using zen.spamhaus.org; https://www.spamhaus.org/query/ip/203.0.113.45",
 "blocklisted", "session", "rcpt", "https://www.simplefastwebsites.com/errors/email/smtp-554-5-7-1-client-host-blocked-spamhaus/"),
("mail server (Spamhaus)", "550 5.7.1 Service unavailable, Client host [192.0.2.16] blocked using Spamhaus. To request removal from this list see",
 "blocklisted", "session", "rcpt", "https://www.mail.com/blog/posts/spamhaus-bounce-email/62/ (the sample as the blog quotes it, cut off; IP filled)"),
("Cisco IronPort", "554-vgas1864.example.se\n554-your access to this mail system has been rejected due to the sending MTA poor reputation. If you believe that this failure is in error please contact the intended recipient via alternate means.\n554 https://www.talosintelligence.com/reputation_center",
 "blocklisted", "session", "connect", "https://pastebin.com/J4q2KYX2 (flattened lines put back; host name's domain replaced)"),
("Cisco IronPort", "554-gw-smtp3.example.com.br\n554 Your access to this mail system has been rejected due to the sending MTA's poor reputation. If you believe that this failure is in error, please contact the intended recipient via alternate means.",
 "blocklisted", "session", "connect", "https://pastebin.com/18ewYuZs (host's domain replaced)"),
("Mimecast", "550 csi.mimecast.org Poor Reputation Sender. - http://kb.mimecast.com/Mimecast_Knowledge_Base/Administration_Console/Monitoring/Mimecast_SMTP_Error_Codes#550",
 "blocklisted", "session", "rcpt", "https://pastebin.com/A5BgtgEm (the URL's line break joined)"),
("cPanel Exim (Cloudmark)", "550-\"JunkMail rejected - pluto.example.host [192.0.2.40]:40598 is in an RBL\n550-on csi.cloudmark.com/reset-request/?ip=192.0.2.40 , see Poor Reputation\n550 Sender\"",
 "blocklisted", "session", "rcpt", "https://pastebin.com/ZR4Gcwca (host and IP replaced)"),
("Cisco IronPort", "554-mail.example.com.mx\n554 Your access to this mail system has been rejected due to the sending MTA's poor reputation. If you believe that this failure is in error, please contact the intended recipient via alternate means.",
 "blocklisted", "session", "connect", "https://pastebin.com/gLEeaPm7 (the reply at the greeting; its wrapped lines joined; host replaced)"),
# ---- authentication vs relaying vs sender identity -------------------------------------------------
("Exchange Online", "530 5.7.57 Client not authenticated to send mail. [SI2PR01CA0016.apcprd01.prod.exchangelabs.com 2023-05-19T06:41:06.744Z 08DB57BE14497622]",
 "relay_denied", "session", "mail", G + "wader/postfix-relay/issues/79"),
("Exchange Server", "5.7.1 Client was not authenticated", "relay_denied", "session", None,
 G + "jstedfast/MailKit/issues/1265 (the client library's message; no reply code)"),
("mail server", "550 Authentication is required for relay", "relay_denied", "session", "mail",
 G + "4IceG/luci-app-sms-tool-js/issues/45 (MAIL FROM failed)"),
("Outlook.com", "550 5.7.60 SMTP; Client does not have permissions to send as this sender", "relay_denied", "sender", None,
 G + "gophish/gophish/issues/1600"),
("Cleanmail (Swiss filter)", "Forged sender domain from this server", "auth_failed", "sender", None,
 "https://www.cleanmail.ch/stricter-rules-for-bluewin/?lang=en (bluewin.ch senders not sent through Bluewin's servers, per its SPF record; no reply code)"),
# ---- unknown vs disabled, recipient syntax vs policy ----------------------------------------------
("iCloud", "550 5.1.1 <jane@icloud.com>: user lookup success but no user record found", "unknown_recipient", "recipient", "rcpt",
 "https://status.socketlabs.com/incident/306 (address filled)"),
("Exchange Online (DBEB)", "550 5.4.1 Recipient address rejected: Access denied. AS(201806281) [HE1EUR02FT003.eop-EUR02.prod.protection.outlook.com]",
 "unknown_recipient", "recipient", None, G + "maxsptz/emailpyspam/issues/23"),
("Exchange Online (DBEB)", "550 5.4.1 Recipient address rejected: Access denied. AS(201806281) [DM6NAM10FT025.eop-nam10.prod.protection.outlook.com]",
 "unknown_recipient", "recipient", None, G + "roundcube/roundcubemail/issues/7990"),
("Exchange Server", "5.1.3 STOREDRV.Submit; invalid recipient address", "syntax_error", "recipient", None, TN),
("Exchange Server", "5.1.4 Recipient address reserved by RFC 2606", "policy_rejected", "recipient", None, TN),
("Exchange Server", "5.1.6 Recipient addresses in single label domains not accepted", "policy_rejected", "recipient", None, TN),
("Exchange Server", "5.1.0 Sender denied", "policy_rejected", "sender", None, TN),
("Postfix", "554 5.7.1 <jane@example.com>: Recipient address rejected: Access denied", "policy_rejected", "recipient", "rcpt",
 G + "Turgon37/docker-smtp-relay/issues/25 (address filled)"),
("mail host", "550 5.1.0 Recipient rejected.", "unknown_recipient", "recipient", "rcpt", WB),
("Postini", "554 No relaying allowed - psmtp", "relay_denied", "session", "rcpt", WB),
("mail host", "554 Invalid recipient", "unknown_recipient", "recipient", "rcpt", CX),
("mail host", "550 sorry, no mailbox here by that name\n550 no mailbox by that name is currently available", "unknown_recipient", "recipient", "rcpt", CX),
("mail host", "5.7.1 Unable to relay", "relay_denied", "session", None, CX),
# ---- the sending side's DNS and connections, no reply code ---------------------------------------
("Postfix", "connect to alt2.gmail-smtp-in.l.google.com[192.0.2.26]:25: Connection timed out", "routing_dns", "relay", None,
 G + "huan/docker-simple-mail-forwarder/issues/42 (IP replaced)"),
("Postfix", "connect to alt4.gmail-smtp-in.l.google.com[192.0.2.27]:25: Operation timed out", "routing_dns", "relay", None,
 G + "bokysan/docker-postfix/issues/21 (IP replaced)"),
("Postfix", "connect to pb-mx10.pobox.com[192.0.2.51]:25: Connection timed out", "routing_dns", "relay", None,
 G + "catatnight/docker-postfix/issues/22 (IP replaced)"),
("Postfix", "connect to gmail-smtp-in.l.google.com[2001:db8:400d:c0e::1a]:25: Network is unreachable", "routing_dns", "relay", None,
 G + "docker-mailserver/docker-mailserver/issues/233 (IPv6 replaced)"),
("Postfix", "connect to mail.example.com[192.0.2.123]:25: Connection timed out", "routing_dns", "relay", None,
 G + "docker-mailserver/docker-mailserver/issues/374 (host and IP replaced)"),
("mail server", "Temporary error 249 (temporary MX resolution error) resolving .gmail.com", "routing_dns", "relay", None,
 G + "NamelessMC/Nameless/issues/3083"),
("Exim", "Unrouteable address", "routing_dns", "recipient", None, WB),
("Exim", "All relevant MX records point to non-existent hosts", "routing_dns", "recipient", None, WB),
("Exim", "Retry timeout exceeded", "expired", "relay", None, WB),
("Exim", "Retry time not reached for any host after a long failure period", "expired", "relay", None, WB),
# ---- rate limits vs reputation vs the receiving system's own trouble (issue threads) ---------------
("Outlook.com", "451 4.7.651 The mail server [192.0.2.1] has been temporarily rate limited due to IP reputation. For e-mail delivery information, see https://postmaster.live.com (S3114)",
 "rate_limited", "session", None, G + "ActiveCampaign/smtp-field-manual/pull/89 (its trailing placeholder for the server name left out; IP filled)"),
("Gmail", "421 4.3.0 Temporary System Problem.  Try again later (10). cx5-20020a17090afd8500b002135de3013fsm2332009pjb.32 - gsmtp",
 "temporary_failure", "session", "data", G + "fastify/help/issues/800"),
("mail server", "454 4.3.0 Try again later", "temporary_failure", "session", None, G + "hitobito/hitobito/issues/3795"),
("mail server", "452 4.3.1 Insufficient system storage", "temporary_failure", "session", "mail", G + "muquit/mailsend/issues/15"),
("Mandrill", "425 4.3.2 Insufficient system storage", "temporary_failure", "session", None, G + "sourcegraph/sourcegraph-public-snapshot/issues/54195"),
("Exim", "451 <ok4mpa@psrp.example.com> unable to verify address", "temporary_failure", "recipient", "rcpt", G + "postalserver/postal/issues/546 (domain replaced)"),
("Exim", "451 Temporary local problem - please try later", "temporary_failure", "session", None, G + "postalserver/postal/issues/546"),
("mail server", "451 4.7.1 Try again later", "temporary_failure", "session", None, G + "postalserver/postal/issues/576"),
("MailChannels", "550 5.7.1 [CS] Message blocked", "spam_content", "message", "data", G + "jeremydumais/CPP-SMTPClient-library/issues/46"),
# ---- second batch --------------------------------------------------------------------------------
("FTGate", "Mailbox Disabled (#1.00)", "mailbox_disabled", "recipient", None, FT),
("FTGate", "Allocated mailbox storage exceeded (#1.02)", "mailbox_full", "recipient", None, FT),
("FTGate", "Out of disk space (#1.03)", "temporary_failure", "session", None, FT),
("FTGate", "451 4.5.1 [192.0.2.1] Max concurrent sessions (#1.04)", "too_many_connections", "session", "connect", FT),
("FTGate", "Too many connections from your address (#1.04)", "too_many_connections", "session", None, FT),
("FTGate", "451 4.9.9 mail.example.com Invalid EHLO (#3.12)", "protocol_error", "session", "helo", FT),
("FTGate", "451 4.2.1 <bob@example.com> mailbox disabled (#3.13)", "mailbox_disabled", "recipient", "rcpt", FT),
("FTGate", "451 4.2.2 <bob@example.com> mailbox full (#3.14)", "mailbox_full", "recipient", "rcpt", FT),
("FTGate", "451 4.2.2 <bob@example.com> mailbox access error (#3.15)", "temporary_failure", "recipient", "rcpt", FT),
("iridis mailRelay", "HST-RTE: Hourly send rate exceeded, retry later.", "rate_limited", "sender", None, IR),
("iridis mailRelay", "HST-RTE: Daily send rate exceeded, retry later", "rate_limited", "sender", None, IR),
("iridis mailRelay", "SND-VFY: Sender domain does not exist", "auth_failed", "sender", None, IR),
("iridis mailRelay", "RPT-VFY: Recipient domain does not exist", "routing_dns", "recipient", None, IR),
("iridis mailRelay", "RPT-VFY: Recipient does not exist (bob@example.com)", "unknown_recipient", "recipient", None, IR),
("iridis mailRelay", "MSG-RFC: Your message does not conform to RFC2822 standard", "policy_rejected", "message", None, IR),
("iridis mailRelay", "MSG-VMS: This message contains a virus, malware or spam", "spam_content", "message", None, IR),
("iridis mailRelay", "MSG-EXT: Blacklisted high risk file extension detected", "spam_content", "message", None, IR),
("iridis mailRelay", "550 Recipient domain not found in DNS", "routing_dns", "recipient", "rcpt", IR),
("iridis mailRelay", "Relay Prohibited", "relay_denied", "session", None, IR),
("Gordano GMS", "550 Mail Relay not allowed", "relay_denied", "session", None, "http://www.gordano.com/kb.htm?q=475"),
("polarismail", "462 Daily send limit reached. Please try again tomorrow", "rate_limited", "sender", None, PM),
("polarismail", "Sorry, you are blacklisted on this server", "policy_rejected", "sender", None,
 PM + " (the sender's own address on its account's blacklist)"),
("Lotus Domino", "554 Mail from rejected for policy reasons.", "policy_rejected", "sender", "mail", DO + " (inbound sender controls)"),
("Lotus Domino", "Message rejected for policy reasons", "policy_rejected", "message", None, DO + " (a server mail rule)"),
]
