"""Candidates for tests/data/corpus/train/world21.yaml (issue #8, the twenty-third round, branch
world21), aimed at the confusion families the issue names: the sending MTA's own DNS, connection
and TLS texts without a reply code (Postfix, Exim, Haraka, Stalwart's and KumoMTA's outbound
queues, Exchange's queue viewer), blocklisting by DNSBLs and providers (Spamhaus's open-resolver
answers, NiX Spam, UCEPROTECT, SpamCop, Outlook.com, a Korean portal's page of an IP list) and a few
provider replies (QQ, Apple, ukr.net, Baruwa). Two batches, both labelled and committed before any
rule changed: the first (47 candidates, 43 kept) was measured alone, then a second (62 candidates:
Orange and La Poste texts, mx-connect's (ZoneMTA's) delivery texts, more of Exim's, Postfix's,
sendmail's, Exchange's, Symantec Messaging Gateway's, KumoMTA's and Stalwart's own texts, SASL and
greeting failures) brought the round to 100; most texts the search tool's issue threads and help
pages hold for these families were already in the corpus.

Facts only (the texts as the programs send or log them, placeholders filled with documentation
values); each entry names its source. Labelled by reading, before any rule was run on them, with
the corpus README's conventions: the sending side's own connect/timeout/unreachable texts
routing_dns about the relay, its conversation/TLS/MTA-STS failures temporary_failure about the
relay, "retry time not reached ... after a long failure" expired; a recipient domain that does not
exist or says it takes no mail routing_dns about the recipient; a listed client blocklisted about
the session (a listed sender domain about the sender); the receiver's own HELO refusal
policy_rejected about the session; a recipient's personal block list policy_rejected about the
recipient. Where the source says what a reply means, that is the label: hardwaresecrets.com's
page lists "553 User defined policy matched for <ip>" among block-list refusals (blocklisted); QQ's
page says "Domain frequency limited" is the sender domain's rate (rate_limited about the sender)
and "Mail is rejected by recipients" a recipient's personal block list or filter.

Two labels of the first batch were set to the corpus's own label of the same meaning before the second
batch was committed (no rule had changed): a recipient's personal block list of the sender ("550 Your
message was rejected by this user", QQ's "Mail is rejected by recipients") is policy_rejected about the
sender, as the corpus labels Mimecast's "Envelope blocked - User Entry"; both were first read as about
the recipient. Neither lists either way. After the first pass, one label was set to the corpus's own label of the
same wording: Exchange's failover error quoting "454 4.7.0 Temporary authentication failure." is a
temporary failure about the session, as the corpus labels that RFC 4954 reply itself (world7, public);
it was first read as an authentication failure; Exim's "Malformed SMTP reply (an empty line) in response to
end of data" is the next hop's answer that is not SMTP, protocol_error about the relay as the corpus labels
Haraka's "Unrecognized response from upstream server" and msmtp's "the server sent an invalid reply"; it
was first read as a temporary failure. Neither is listed either way.

Each tuple: (provider, reply, category, scope, stage, source).
"""
PF = "Postfix (own)"
ST = "https://github.com/stalwartlabs/mail-server crates/smtp/src/outbound/mod.rs and queue Display for Error ({})"
KU = "https://github.com/KumoCorp/kumomta crates/kumod/src/smtp_dispatcher.rs"
EX = "https://github.com/Exim/exim src/src/transports/smtp.c"

C = [
# blocklists and provider blocks quoted in issue threads and pages
("Postfix + Spamhaus DBL (open resolver)", "554 5.7.1 Service unavailable; Helo command [mail-a.protonmail.ch] blocked using dbl.spamhaus.org; Error: open resolver; https://www.spamhaus.org/returnc/pub/192.0.2.1", "blocklisted", "session", "rcpt", "https://github.com/anonaddy/anonaddy/issues/533"),
("unknown (Spamhaus open resolver)", "550 Error: open resolver; https://www.spamhaus.org/returnc/pub/2001:db8:377:1024::ac46:58b3", "blocklisted", "session", None, "https://github.com/openstreetmap/operations/issues/674"),
("NiX Spam (manitu) user", "550 rejected because 192.0.2.12 is in a black list at ix.dnsbl.manitu.net Your e-mail service was detected by spam.over.port25.me (NiX Spam) as spamming at Mon, 27 Mar 2017 14:52:05 +0200. Your admin should visit http://www.dnsbl.manitu.net/lookup.php?value=192.0.2.12", "blocklisted", "session", None, "https://github.com/mitodl/micromasters/issues/2958 (Mailgun log; Mailgun's repeated '550' prefix removed)"),
("directnic", '550 "JunkMail rejected - so254-12.mailgun.net [192.0.2.12]:16742 is in an RBL, see Known spammer, see https://directnic.com/knowledge#/knowledge/article/321"', "blocklisted", "session", None, "https://github.com/mitodl/micromasters/issues/2958 (Mailgun log; Mailgun's repeated '550' prefix removed)"),
("Outlook.com", "550 OU-001 (SNT004-MC11F3) Unfortunately, messages from 192.0.2.18 weren't sent. Please contact your Internet service provider since part of their network is on our block list. You can also refer your provider to http://mail.live.com/mail/troubleshooting.aspx#errors.", "blocklisted", "session", None, "https://github.com/portier/portier-broker/issues/128 (Mailgun log; Mailgun's repeated '550' prefix removed)"),
("UCEPROTECT user (a German municipality)", "553 Your IP is BLACKLISTED at UCEPROTECT-LEVEL 1 - See: http://www.uceprotect.net/rblcheck.php?ipr=192.0.2.166", "blocklisted", "session", "rcpt", "https://github.com/dragokas/hijackthis/issues/190"),
("SpamCop user", "Service unavailable; Client host [example.com] blocked by bl.spamcop.net; 192.0.2.1 (example.com:blocked)", "blocklisted", "session", None, "https://help.mailgun.com/hc/en-us/articles/23504153869723-Bounce-Classification"),
("unknown (a block-list refusal)", "553 User defined policy matched for 192.0.2.1", "blocklisted", "session", None, "https://hardwaresecrets.com/understanding-email-bounce-messages/4/"),
("Baruwa gateway", "The sender 192.0.2.1 is banned", "blocklisted", "session", None, "https://bastion.umanix.net/info"),
("Baruwa gateway", "The domain example.com is banned", "blocklisted", "sender", None, "https://bastion.umanix.net/info"),
("Baruwa gateway", "Sender verification failed", "auth_failed", "sender", None, "https://bastion.umanix.net/info"),
("ZoneMTA user (a mailbox provider)", "550 Your message was rejected by this user and was not delivered", "policy_rejected", "sender", None, "https://github.com/zone-eu/zone-mta/pull/251"),
("QQ Mail", "550 Domain frequency limited", "rate_limited", "sender", None, "http://qiao.yimirj.com/article/detail/2261"),
("QQ Mail", "550 Mail is rejected by recipients", "policy_rejected", "sender", None, "https://smtp.codes/qq"),
("Apple iCloud", "554 5.7.1 [HM08] Message rejected due to local policy.", "policy_rejected", "message", None, "https://www.suped.com/learn/email-deliverability/what-does-apples-message-rejected-due-to-local-policy-error-mean-and-how-can-it-be-resolved"),
("ukr.net", "550 invalid helo given", "policy_rejected", "session", None, "https://github.com/roundcube/roundcubemail/issues/6110"),
("unknown (Korean help page)", "451 4.3.0 Other or undefined mail system status", "temporary_failure", "session", None, "http://blog.jinbo.net/007/archive/20051107"),
("Microsoft SMTP service (Korean help page)", "421-Microsoft ESMTP MAIL Service, Version: 5.0.2195.5600 ready at Service not available, closing transmission channel", "temporary_failure", "session", None, "http://blog.jinbo.net/007/archive/20051107"),
# the sending side's own texts: Postfix, Exim, Haraka, Exchange
(PF, "connect to mx.example.se[2001:db8:d:151::151:246]:25: Cannot assign requested address", "routing_dns", "relay", None, "https://github.com/docker-mailserver/docker-mailserver/issues/762"),
(PF, "TLS is required, but was not offered by host mail.example.net[192.0.2.1]", "temporary_failure", "relay", None, "https://github.com/alterrebe/docker-mail-relay/pull/2"),
(PF, "Server certificate not verified", "temporary_failure", "relay", None, "https://github.com/csware/postfix-tls-policy/issues/9"),
("Haraka (own, outbound)", "Outbound connection timed out to 192.0.2.27:25", "routing_dns", "relay", None, "https://github.com/haraka/Haraka/issues/1897"),
("Exim (own)", "Connection timed out", "routing_dns", "relay", None, "https://github.com/roundcube/roundcubemail/issues/6110 ('R=dnslookup T=remote_smtp defer (110): Connection timed out')"),
("Exim (own)", "retry time not reached for any host for 'example.com'", "temporary_failure", "relay", None, "https://github.com/ix-ai/smtp/issues/8"),
("Exim (own)", "all hosts for 'example.org' have been failing for a long time (and retry time not reached)", "expired", "relay", None, "a bounce quoted on the Linux kernel mailing list (crypto: octeontx2 patch thread, 2024), Exim's text"),
("Exim (own)", "an MX or SRV record indicated no SMTP service", "routing_dns", "recipient", None, "https://github.com/Exim/exim src/src/routers/dnslookup.c (addr->message)"),
("Exim (own)", "a TLS session is required, but the server did not offer TLS support", "temporary_failure", "relay", None, EX),
("Exim (own)", "a TLS session is required, but an attempt to start TLS failed", "temporary_failure", "relay", None, EX),
("Exim (own)", "send() to mx.example.com [192.0.2.1] failed: Connection reset by peer", "temporary_failure", "relay", None, EX),
("Exchange Server (own, queue viewer)", "451 4.4.0 DNS query failed. The error was: DNS query failed with error ErrorDnsQueryFailed", "routing_dns", "relay", None, "https://medhacloud.com/blog/error-451-440-dns-query-failed"),
("Exchange Server (own, queue viewer)", "451 4.4.0 DNS query failed. The error was: DNS query failed with error ServerFailure", "routing_dns", "relay", None, "https://kx.cloudingenium.com/exchange-edge-2010-451-4-4-0-dns-query-failed"),
("Exchange Server (own, queue viewer)", "451 4.4.0 DNS query failed. The error was: ErrorTimeout", "routing_dns", "relay", None, "https://kx.cloudingenium.com/exchange-edge-2010-451-4-4-0-dns-query-failed"),
# Stalwart's outbound queue (its delivery status texts; issue #260 quotes the first)
("Stalwart (own, outbound)", "TLS error from 'mx.example.com': STARTTLS not advertised by host.", "temporary_failure", "relay", None, "https://github.com/stalwartlabs/stalwart/issues/260"),
("Stalwart (own, outbound)", "TLS error from 'mx.example.com': TLS handshake timed out", "temporary_failure", "relay", None, ST.format("from_tls_error")),
("Stalwart (own, outbound)", "TLS error from 'mx.example.com': Invalid hostname", "temporary_failure", "relay", None, ST.format("from_tls_error")),
("Stalwart (own, outbound)", "DNS lookup failed: Domain not found: NXDomain", "routing_dns", "recipient", None, ST.format("from_mail_auth_error")),
("Stalwart (own, outbound)", "MTA-STS auth failed: Timeout fetching policy.", "temporary_failure", "relay", None, ST.format("from_mta_sts_error")),
("Stalwart (own, outbound)", "MTA-STS auth failed: Could not reach policy host.", "temporary_failure", "relay", None, ST.format("from_mta_sts_error")),
("Stalwart (own, outbound)", "MTA-STS auth failed: Policy not found.", "temporary_failure", "relay", None, ST.format("from_mta_sts_error")),
("Stalwart (own, outbound)", "MTA-STS auth failed: Failed to fetch policy.", "temporary_failure", "relay", None, ST.format("from_mta_sts_error")),
("Stalwart (own, outbound)", "MTA-STS auth failed: Failed to parse MTA-STS DNS record.", "temporary_failure", "relay", None, ST.format("from_mta_sts_error")),
("Stalwart (own, outbound)", "Too many concurrent connections to remote server", "too_many_connections", "relay", None, ST.format("ConcurrencyLimited")),
("Stalwart (own, outbound)", "Connection to 'localhost' failed: Could not deliver message locally.", "temporary_failure", "relay", None, ST.format("local_error")),
# KumoMTA's own outbound texts
("KumoMTA (own)", "451 4.4.4 MX didn't resolve to any hosts", "routing_dns", "recipient", None, KU),
("KumoMTA (own)", "550 5.4.4 MX consisted solely of hosts on the skip_hosts list", "routing_dns", "relay", None, KU),
("KumoMTA (own)", "KumoMTA internal: failed to connect to any candidate hosts: All failures are related to OpportunisticInsecure STARTTLS. Consider setting enable_tls=Disabled for this site", "temporary_failure", "relay", None, "https://github.com/KumoCorp/kumomta (the shipped shaping rules: an automation rule on this text)"),
("KumoMTA (own)", "KumoMTA internal: failed to send message: Error Connection closed by peer reading response to cmd=RSET", "temporary_failure", "relay", None, KU + " ('KumoMTA internal: failed to send message: {err:#}')"),
# ---- second batch (labelled by reading, committed before any rule change; the first batch's first
# pass had been measured, no rule had changed) ----
# Orange / La Poste texts quoted in bounce-parser issue threads
("La Poste", "550 5.5.0 SPF: 192.0.2.126 is not allowed to send mail. LPN004_401", "auth_failed", "sender", None, "https://github.com/sisimai/p5-sisimai/issues/241"),
("La Poste", "550 5.1.1 Boite du destinataire archivee. Archived recipient. LPN004_420 [420]", "mailbox_disabled", "recipient", "rcpt", "https://github.com/sisimai/p5-sisimai/issues/241"),
("La Poste", "550 5.5.0 Service refuse. Veuillez essayer plus tard. service refused, please try later. LPN007_510", "blocklisted", "session", "data", "https://github.com/JamBrain/JamBrain/issues/270 (the issue thread sisimai/p5-sisimai#241 reads LPN007_510 as a block)"),
("La Poste", "550 5.1.1 Adresse d au moins un destinataire invalide. Invalid recipient. LPN416 416", "unknown_recipient", "recipient", None, "https://github.com/sisimai/p5-sisimai/issues/241"),
("Orange", "5.2.0 Taille limite du message atteinte. Maximum size of the message reached. OFR_514 [514]", "message_too_large", "message", None, "https://github.com/sisimai/p5-sisimai/issues/240"),
("Orange", "421 mwinf5c27 ME Trop de connexions, veuillez verifier votre configuration. Too many connections, slow down. OFR004_104 [104]", "too_many_connections", "session", "connect", "https://github.com/sisimai/p5-sisimai/issues/240"),
("Orange", "421 4.2.0 Service refuse. Veuillez essayer plus tard. Service refused, please try later. OFR005_505 [505]", "temporary_failure", "session", "data", "https://github.com/sisimai/p5-sisimai/pull/353"),
# providers' replies quoted in issue threads
("Forward Email", "550 The email you sent has an invalid DKIM signature, please try again or check your email service's DKIM configuration. If you believe this is an error, please forward this email to: support@forwardemail.net", "auth_failed", "sender", None, "https://github.com/forwardemail/free-email-forwarding/issues/108"),
("unknown (a DSN's supplementary info)", '550 "Unknown User"', "unknown_recipient", "recipient", None, "https://github.com/sisimai/p5-sisimai/issues/312"),
("Gmail", "550-5.7.26 This message does not pass authentication checks (SPF and DKIM both 550-5.7.26 do not pass). SPF check for [orange.fr] does not pass with ip: 550-5.7.26 [192.0.2.194].To best protect our users from spam, the message 550-5.7.26 has been blocked. Please visit 550-5.7.26 https://support.google.com/mail/answer/81126#authentication for more 550 5.7.26 information. s17-20020adfea91000000b002c552f5db89si6436405wrm.137 - gsmtp", "auth_failed", "sender", "data", "https://github.com/stephane-klein/backlog/issues/149 (a Postfix log line, the reply as Postfix joins it)"),
("Proofpoint (via Nodemailer's greeting check)", "Invalid greeting. response=554 5.7.0 Blocked - see https://support.proofpoint.com/dnsbl-lookup.cgi?ip=192.0.2.1: 554 5.7.0 Blocked - see https://support.proofpoint.com/dnsbl-lookup.cgi?ip=192.0.2.1", "blocklisted", "session", "connect", "https://github.com/zone-eu/zone-mta/issues/301"),
("unknown (via Nodemailer's greeting check)", "Invalid greeting. response=554 5.7.1 You are not allowed to connect.: 554 5.7.1 You are not allowed to connect.", "blocklisted", "session", "connect", "https://github.com/zone-eu/zone-mta/pull/496"),
("Postfix submission (SASL backend)", "535 5.7.8 Error: authentication failed: Connection lost to authentication server", "auth_failed", "session", None, "https://github.com/neomutt/neomutt/issues/2690"),
# the sending side's own texts: Postfix, sendmail, Exim, ZoneMTA / mx-connect, Exchange, Symantec Messaging Gateway
(PF, "SASL authentication failed; server smtp.outlook.com[192.0.2.210] said: 535 5.7.3 Authentication unsuccessful [YT1PR01CA0061.CANPRD01.PROD.OUTLOOK.COM]", "auth_failed", "session", None, "https://github.com/tarickb/sasl-xoauth2/pull/5"),
(PF, "SASL authentication failed: server smtp.example.com[192.0.2.1] offered no compatible authentication mechanisms for this type of connection security", "auth_failed", "session", None, "https://github.com/Oefenweb/ansible-postfix/issues/45"),
(PF, "unable to find primary relay for example.com", "routing_dns", "relay", None, "https://github.com/vdukhovni/postfix postfix/src/smtp/smtp_addr.c"),
("sendmail (own)", "Deferred: Connection timed out with alt4.gmail-smtp-in.l.google.com", "routing_dns", "relay", None, "https://github.com/trustedsec/social-engineer-toolkit/issues/355"),
("Exim (own)", "mailbox is full (MTA-imposed quota exceeded while writing to file /var/mail/bob)", "mailbox_full", "recipient", None, "https://github.com/voku/PHPMailer-BMH (rule 0166's sample; Exim's appendfile.c text)"),
("Exim (own)", "SMTP timeout after end of data (2048 bytes written)", "temporary_failure", "relay", None, EX + " (check_response)"),
("Exim (own)", "SMTP timeout after initial connection", "temporary_failure", "relay", None, EX + " (check_response)"),
("Exim (own)", "Malformed SMTP reply (an empty line) in response to end of data", "protocol_error", "relay", None, EX + " (check_response)"),
("Exim (own)", "bad first read from TLS conn", "temporary_failure", "relay", None, EX + " (check_response)"),
("Exim (own)", "Remote host closed connection in response to initial connection", "temporary_failure", "relay", None, EX + " (check_response)"),
("Exim (own)", "Remote host closed connection in response to end of data", "temporary_failure", "relay", None, EX + " (check_response)"),
("Exim (own)", "transport filter process failed (127): unable to execute command", "other", "relay", None, EX + " (check_response)"),
("Exim (own)", "failed to write a data block", "temporary_failure", "relay", None, EX + " (check_response)"),
("ZoneMTA (own)", "450 Network error when connecting to MX server mail.example.com[192.0.2.1] for example.com: Connection refused", "routing_dns", "relay", None, "https://github.com/zone-eu/zone-mta/issues/182"),
("mx-connect (ZoneMTA / WildDuck / EmailEngine delivery)", "Network error: Connection timed out when connecting to MX server", "routing_dns", "relay", None, "https://github.com/zone-eu/mx-connect lib/get-connection.js"),
("mx-connect (ZoneMTA / WildDuck / EmailEngine delivery)", "Network error: Network error when connecting to MX server mx.example.com[192.0.2.1] for example.com: Connection refused", "routing_dns", "relay", None, "https://github.com/zone-eu/mx-connect lib/get-connection.js, lib/net-errors.js"),
("mx-connect (ZoneMTA / WildDuck / EmailEngine delivery)", 'Network error: Unable to establish a connection with any of the Mail Exchange (MX) servers listed for "example.com"', "routing_dns", "relay", None, "https://github.com/zone-eu/mx-connect lib/get-connection.js"),
("mx-connect (ZoneMTA / WildDuck / EmailEngine delivery)", 'Network error: Connection to the Mail Exchange (MX) server of "example.com" failed', "routing_dns", "relay", None, "https://github.com/zone-eu/mx-connect lib/get-connection.js"),
("mx-connect (ZoneMTA / WildDuck / EmailEngine delivery)", 'DNS Error: No Mail Exchange (MX) servers were found for "example.com"', "routing_dns", "recipient", None, "https://github.com/zone-eu/mx-connect lib/get-connection.js"),
("mx-connect (ZoneMTA / WildDuck / EmailEngine delivery)", "DNS Error: DNS error occurred while resolving the Mail Exchange (MX) server for the specified domain (example.com). Domain name not found", "routing_dns", "recipient", None, "https://github.com/zone-eu/mx-connect lib/resolve-mx.js, lib/dns-errors.js"),
("mx-connect (ZoneMTA / WildDuck / EmailEngine delivery)", 'DNS Error: Unable to deliver email to the IP address [127.0.0.1] resolved for the Mail Exchange (MX) server of "example.com". This IP address falls within the prohibited "loopback" address range, which is not valid for external communication.', "routing_dns", "recipient", None, "https://github.com/zone-eu/mx-connect lib/resolve-mx.js, lib/tools.js"),
("mx-connect (ZoneMTA / WildDuck / EmailEngine delivery)", "Policy error: MTA-STS policy check failed for mx.example.com[192.0.2.1] for example.com", "temporary_failure", "relay", None, "https://github.com/zone-eu/mx-connect lib/get-connection.js"),
("Exchange Server (own, queue viewer)", '451 4.4.0 primary target IP address responded with "421.4.4.2 unable to connect." Attempted failover to alternate host, but that did not succeed. Either there are no alternate hosts, or delivery failed to all alternate hosts.', "routing_dns", "relay", None, "http://nuangel.net/2013/01/exchange-error-attempted-to-failover/"),
("Exchange Server (own, queue viewer)", '451 4.4.0 Primary target IP address responded with: "451 5.7.3 Cannot achieve Exchange Server authentication." Attempted failover to alternate host, but that did not succeed. Either there are no alternate hosts, or delivery failed to all alternate hosts.', "auth_failed", "session", None, "http://support.microsoft.com/kb/979175/en-US"),
("Exchange Server (own, queue viewer)", '451 4.4.0 Primary target IP address responded with: "454 4.7.0 Temporary authentication failure." Attempted failover to alternate host, but that did not succeed. Either there are no alternate hosts, or delivery failed to all alternate hosts.', "temporary_failure", "session", None, "https://e-com-net.com/article/4120151.htm (Microsoft KB 979174's text)"),
("Exchange Server 2003 (own NDR)", "Could not deliver the message in the time limit specified. Please retry or contact your administrator.", "expired", "relay", None, "http://www.madvigsolutions.com/helpdesk/Non-Delivery.htm"),
("Symantec Messaging Gateway (own)", "451 4.4.1 [internal] connection was not attempted: domain is marked down (too many connection failures)", "routing_dns", "relay", None, "https://support.symantec.com/us/en/article.tech201354.html"),
("Symantec Messaging Gateway (own)", "421 4.4.4 [internal] domain does not resolve", "routing_dns", "recipient", None, "https://knowledge.broadcom.com/external/article/263759/smtp-status-421-444-internal-domain-does.html"),
("Symantec Messaging Gateway (own)", "451 4.4.2 [internal] no RCPT TO response", "temporary_failure", "relay", None, "https://knowledge.broadcom.com/external/article/177591/email-remains-in-the-delivery-queue-with.html"),
("Symantec Messaging Gateway", "421 4.4.0 Unable to connect to DNS - try again later", "temporary_failure", "session", "connect", "https://knowledge.broadcom.com/external/article/159110/symantec-messaging-gateway-smg-defers-or.html"),
("Symantec Messaging Gateway", "421 4.3.2 MAX connections exceeded: - message rejected", "too_many_connections", "session", None, "https://knowledge.broadcom.com/external/article/214237"),
# KumoMTA and Stalwart outbound, more of their own texts
("KumoMTA (own)", "451 4.4.4 KumoMTA internal: no sources for example.com pool=`unspecified` are eligible for selection at this time", "temporary_failure", "relay", None, "https://github.com/KumoCorp/kumomta crates/kumod/src/ready_queue.rs"),
("KumoMTA (own)", "551 5.4.7 Next delivery time would be at 2026-12-01 10:00:00 UTC which exceeds the expiry time 2026-12-01 08:00:00 UTC configured via set_scheduling", "expired", "relay", None, "https://github.com/KumoCorp/kumomta crates/kumod/src/ready_queue.rs"),
("KumoMTA (own)", "KumoMTA internal: returning message to scheduled queue", "temporary_failure", "relay", None, "https://github.com/KumoCorp/kumomta crates/kumod/src/queue.rs"),
("Stalwart (own, outbound)", "DANE failed to authenticate 'mx.example.com': No certificates were provided by host", "temporary_failure", "relay", None, "https://github.com/stalwartlabs/mail-server crates/smtp/src/outbound/dane/verify.rs"),
("Stalwart (own, outbound)", "DANE failed to authenticate 'mx.example.com': No TLSA DNSSEC records found", "temporary_failure", "relay", None, "https://github.com/stalwartlabs/mail-server crates/smtp/src/outbound/delivery.rs"),
("Stalwart (own, outbound)", "DANE failed to authenticate 'mx.example.com': No matching certificates found in TLSA records", "temporary_failure", "relay", None, "https://github.com/stalwartlabs/mail-server crates/smtp/src/outbound/dane/verify.rs"),
("Stalwart (own, outbound)", "DANE failed to authenticate 'mx.example.com': No valid TLSA records were found", "temporary_failure", "relay", None, "https://github.com/stalwartlabs/mail-server crates/smtp/src/outbound/delivery.rs"),
("Stalwart (own, outbound)", "DANE failed to authenticate 'mx.example.com': No TLSA records found", "temporary_failure", "relay", None, "https://github.com/stalwartlabs/mail-server crates/smtp/src/outbound/delivery.rs"),
("Stalwart (own, outbound)", "DNS lookup failed: Domain does not accept messages (null MX)", "routing_dns", "recipient", None, "https://github.com/stalwartlabs/mail-server crates/smtp/src/outbound/delivery.rs"),
("Stalwart (own, outbound)", 'MTA-STS auth failed: MX "mx.example.com" not authorized by policy.', "temporary_failure", "relay", None, "https://github.com/stalwartlabs/mail-server crates/smtp/src/outbound/delivery.rs"),
# Exim's transport summary when no host was tried, and Postfix's native host lookup
("Exim (own)", "all hosts have been failing for a long time and were last tried after this message arrived", "expired", "relay", None, EX + " (end of smtp_transport_entry)"),
("Exim (own)", "all host address lookups failed temporarily", "routing_dns", "relay", None, EX + " (end of smtp_transport_entry)"),
("Exim (own)", "all host address lookups failed", "routing_dns", "relay", None, EX + " (end of smtp_transport_entry)"),
("Exim (own)", "connection limit reached for all hosts", "temporary_failure", "relay", None, EX + " (end of smtp_transport_entry)"),
("Exim (own)", "some host address lookups failed and retry time not reached for other hosts or connection limit reached", "temporary_failure", "relay", None, EX + " (end of smtp_transport_entry)"),
(PF, "unable to look up host smtp.example.com: Name or service not known", "routing_dns", "relay", None, "https://github.com/vdukhovni/postfix postfix/src/smtp/smtp_addr.c (smtp_addr_one, the native lookup's gai_strerror text)"),
("DragonFly Mail Agent (own)", "remote delivery deferred: SSL handshake failed fatally: error:1408F10B:SSL routines:ssl3_get_record:wrong version number", "temporary_failure", "relay", None, "https://github.com/corecode/dma/pull/87"),
("DragonFly Mail Agent (own), Exim's reply", "remote delivery deferred: could not perform server greeting: 501 Syntactically invalid EHLO argument(s)", "protocol_error", "session", "helo", "https://github.com/corecode/dma/pull/87"),
]
