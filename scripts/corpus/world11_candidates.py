"""Candidates for tests/data/corpus/train/world11.yaml (issue #8, thirteenth round "world11", branch
world11): the reply texts of two qmail-side filters that real mail hosts (shared hosts, Plesk, qmail
toasters, ISPs) run in front of qmail-smtpd, from their public sources - spamdyke's rejection table
(`chrisboulton/spamdyke spamdyke/spamdyke.h`, GPL-2.0; facts only: the texts, as spamdyke sends them with
its severity prefix) and chkuser's SMTP answers in both of their published wordings (the older netqmail
patch, `denislemire/netqmail chkuser_settings.h`, and the current one with enhanced codes,
`sagredo-dev/qmail chkuser_settings.h`) - aimed at the confusion families the issue names (unknown vs
disabled mailbox, recipient-address syntax vs the sender's, a 5.1.1 on a text that is not about the
recipient, reverse DNS and sender-domain checks vs routing, block lists); and providers' and gateways'
replies quoted in issue threads and help pages no earlier round used (Telstra BigPond, Andrews & Arnold,
AT&T Worldnet, BT Business, FortiGate, Zoho, SmarterMail, Mimecast, the University of Kentucky's and
Tufts's mail gateways, Postfix's own DNS texts). Every candidate's source was checked against the
`source:` fields of train/*.yaml before it was written down; three pages an earlier round had used
(bastion.umanix.net, blog.inframes.com, m.wh-163.com) were left out. Gathered and labelled by reading,
before any rule was changed for this round. Labels follow the corpus README's conventions and the labels
the corpus already gives the same kind of text (a reverse DNS refusal is auth_failed about the session, a
"generic" reverse DNS name a block of the IP, a sender domain without MX auth_failed about the sender, a
bad sender address syntax a protocol error about the sender, a per-session recipient limit rate_limited
about the message). The held-out part was never read. `scripts/corpus/build_world.py` drops every
candidate that is a near-duplicate of a corpus entry (a key shared with the held-out part drops it unseen).

spamdyke answers with a fixed severity per rejection (421, 454, 504, 535 or 554) and the text; the RBL
and RHSBL texts end in the list's name, filled here with Spamhaus's. chkuser answers at RCPT, also for its
checks of the sender (it runs them on the first recipient). Help pages' texts are kept as the page quotes
them; addresses and IPs are replaced with documentation values (RFC 5737, example.com).

Two labels were set after the first measurement and before any rule change to the labels the corpus
already gives the same wording: spamdyke's "reverse DNS entry contains your IP address and a banned
keyword" is auth_failed about the session as its "... and a country code" is in world5.yaml (first label:
blocklisted), and Mimecast's "451 Internal resource temporarily unavailable" is greylisted as in seed.yaml
and as Mimecast documents it (first label: temporary_failure).

Each tuple: (provider, reply, category, scope, stage, source).
"""
GH = "https://github.com/"
C = [
# --- spamdyke
('spamdyke (qmail filter)', '421 Too many recipients. Try the remaining addresses again later.', 'rate_limited', 'message', 'rcpt', 'chrisboulton/spamdyke spamdyke/spamdyke.h'),
('spamdyke (qmail filter)', '554 Improper recipient address. Try supplying a domain name.', 'syntax_error', 'recipient', 'rcpt', 'chrisboulton/spamdyke spamdyke/spamdyke.h'),
('spamdyke (qmail filter)', '421 Refused. You have no reverse DNS entry.', 'auth_failed', 'session', None, 'chrisboulton/spamdyke spamdyke/spamdyke.h'),
('spamdyke (qmail filter)', '421 Refused. Your reverse DNS entry does not resolve.', 'auth_failed', 'session', None, 'chrisboulton/spamdyke spamdyke/spamdyke.h'),
('spamdyke (qmail filter)', '554 Refused. Your reverse DNS entry contains your IP address and a country code.', 'blocklisted', 'session', None, 'chrisboulton/spamdyke spamdyke/spamdyke.h'),
('spamdyke (qmail filter)', '554 Refused. Your reverse DNS entry contains your IP address and a banned keyword.', 'auth_failed', 'session', None, 'chrisboulton/spamdyke spamdyke/spamdyke.h'),
('spamdyke (qmail filter)', '554 Refused. You are not following the SMTP protocol.', 'protocol_error', 'session', None, 'chrisboulton/spamdyke spamdyke/spamdyke.h'),
('spamdyke (qmail filter)', '554 Refused. Your domain name is blacklisted.', 'blocklisted', 'session', None, 'chrisboulton/spamdyke spamdyke/spamdyke.h'),
('spamdyke (qmail filter)', '554 Refused. Your IP address is blacklisted.', 'blocklisted', 'session', None, 'chrisboulton/spamdyke spamdyke/spamdyke.h'),
('spamdyke (qmail filter)', '421 Timeout. Talk faster next time.', 'temporary_failure', 'session', None, 'chrisboulton/spamdyke spamdyke/spamdyke.h'),
('spamdyke (qmail filter)', '554 Refused. Your sender address has been blacklisted.', 'blocklisted', 'sender', 'mail', 'chrisboulton/spamdyke spamdyke/spamdyke.h'),
('spamdyke (qmail filter)', '554 Refused. Mail is not being accepted at this address.', 'mailbox_disabled', 'recipient', 'rcpt', 'chrisboulton/spamdyke spamdyke/spamdyke.h'),
('spamdyke (qmail filter)', '421 Refused. The domain of your sender address has no mail exchanger (MX).', 'auth_failed', 'sender', 'mail', 'chrisboulton/spamdyke spamdyke/spamdyke.h'),
('spamdyke (qmail filter)', '554 Refused. Your IP address is listed in the RBL at zen.spamhaus.org', 'blocklisted', 'session', None, 'chrisboulton/spamdyke spamdyke/spamdyke.h'),
('spamdyke (qmail filter)', '554 Refused. Your domain name is listed in the RHSBL at dbl.spamhaus.org', 'blocklisted', 'session', None, 'chrisboulton/spamdyke spamdyke/spamdyke.h'),
('spamdyke (qmail filter)', '535 Refused. Authentication failed.', 'auth_failed', 'session', None, 'chrisboulton/spamdyke spamdyke/spamdyke.h'),
('spamdyke (qmail filter)', '504 Refused. Unknown authentication method.', 'protocol_error', 'session', None, 'chrisboulton/spamdyke spamdyke/spamdyke.h'),
('spamdyke (qmail filter)', '554 Refused. Access is denied.', 'policy_rejected', 'session', None, 'chrisboulton/spamdyke spamdyke/spamdyke.h'),
('spamdyke (qmail filter)', '554 Refused. Sending to remote addresses (relaying) is not allowed.', 'relay_denied', 'session', 'rcpt', 'chrisboulton/spamdyke spamdyke/spamdyke.h'),
('spamdyke (qmail filter)', '554 Refused. You must specify at least one valid recipient.', 'protocol_error', 'session', 'data', 'chrisboulton/spamdyke spamdyke/spamdyke.h'),
('spamdyke (qmail filter)', '554 Refused. Authentication is required to send mail.', 'relay_denied', 'session', None, 'chrisboulton/spamdyke spamdyke/spamdyke.h'),
('spamdyke (qmail filter)', '554 Refused. Mail is not being accepted.', 'policy_rejected', 'session', None, 'chrisboulton/spamdyke spamdyke/spamdyke.h'),
('spamdyke (qmail filter)', '554 Refused. Identical sender and recipient addresses are not allowed.', 'policy_rejected', 'message', 'rcpt', 'chrisboulton/spamdyke spamdyke/spamdyke.h'),
('spamdyke (qmail filter)', '454 Failed to negotiate TLS connection.', 'temporary_failure', 'session', None, 'chrisboulton/spamdyke spamdyke/spamdyke.h'),
# --- chkuser (qmail / vpopmail)
('qmail chkuser (vpopmail)', '511 sorry, no mailbox here by that name (#5.1.1 - chkuser)', 'unknown_recipient', 'recipient', 'rcpt', 'denislemire/netqmail chkuser_settings.h'),
('qmail chkuser (vpopmail)', '430 system temporary unavailable, try again later (#4.3.0 - chkuser)', 'temporary_failure', 'session', 'rcpt', 'denislemire/netqmail chkuser_settings.h'),
('qmail chkuser (vpopmail)', '522 sorry, recipient mailbox is full (#5.2.2 - chkuser)', 'mailbox_full', 'recipient', 'rcpt', 'denislemire/netqmail chkuser_settings.h'),
('qmail chkuser (vpopmail)', '571 sorry, reached maximum number of recipients for one session (#5.7.1 - chkuser)', 'rate_limited', 'message', 'rcpt', 'denislemire/netqmail chkuser_settings.h'),
('qmail chkuser (vpopmail)', '571 sorry, you are violating our security policies (#5.1.1 - chkuser)', 'policy_rejected', 'session', 'rcpt', 'denislemire/netqmail chkuser_settings.h'),
('qmail chkuser (vpopmail)', '511 sorry, you must specify a domain (#5.1.1 - chkuser)', 'syntax_error', 'recipient', 'rcpt', 'denislemire/netqmail chkuser_settings.h'),
('qmail chkuser (vpopmail)', '511 sorry, recipient address has invalid format (#5.1.1 - chkuser)', 'syntax_error', 'recipient', 'rcpt', 'denislemire/netqmail chkuser_settings.h'),
('qmail chkuser (vpopmail)', "511 sorry, can't find a valid MX for rcpt domain (#5.1.1 - chkuser)", 'routing_dns', 'recipient', 'rcpt', 'denislemire/netqmail chkuser_settings.h'),
('qmail chkuser (vpopmail)', '571 sorry, sender address has invalid format (#5.7.1 - chkuser)', 'protocol_error', 'sender', 'rcpt', 'denislemire/netqmail chkuser_settings.h'),
('qmail chkuser (vpopmail)', "511 sorry, can't find a valid MX for sender domain (#5.1.1 - chkuser)", 'auth_failed', 'sender', 'rcpt', 'denislemire/netqmail chkuser_settings.h'),
('qmail chkuser (vpopmail)', "553 sorry, that domain isn't in my list of allowed rcpthosts (#5.5.3 - chkuser)", 'relay_denied', 'session', 'rcpt', 'denislemire/netqmail chkuser_settings.h'),
('qmail chkuser (vpopmail)', '451 DNS temporary failure (#4.5.1 - chkuser)', 'temporary_failure', 'session', 'rcpt', 'denislemire/netqmail chkuser_settings.h'),
('qmail chkuser (vpopmail)', '550 5.1.1 sorry, no mailbox here by that name (chkuser)', 'unknown_recipient', 'recipient', 'rcpt', 'sagredo-dev/qmail chkuser_settings.h'),
('qmail chkuser (vpopmail)', '451 4.3.0 system temporary unavailable, try again later (chkuser)', 'temporary_failure', 'session', 'rcpt', 'sagredo-dev/qmail chkuser_settings.h'),
('qmail chkuser (vpopmail)', '552 5.2.2 sorry, recipient mailbox is full (chkuser)', 'mailbox_full', 'recipient', 'rcpt', 'sagredo-dev/qmail chkuser_settings.h'),
('qmail chkuser (vpopmail)', '550 5.5.3 sorry, reached maximum number of recipients allowed in one session (chkuser)', 'rate_limited', 'message', 'rcpt', 'sagredo-dev/qmail chkuser_settings.h'),
('qmail chkuser (vpopmail)', '550 5.5.3 sorry, you are violating our security policies (chkuser)', 'policy_rejected', 'session', 'rcpt', 'sagredo-dev/qmail chkuser_settings.h'),
('qmail chkuser (vpopmail)', '550 5.1.2 sorry, you must specify a domain (chkuser)', 'syntax_error', 'recipient', 'rcpt', 'sagredo-dev/qmail chkuser_settings.h'),
('qmail chkuser (vpopmail)', '553 5.1.3 sorry, mailbox syntax not allowed (chkuser)', 'syntax_error', 'recipient', 'rcpt', 'sagredo-dev/qmail chkuser_settings.h'),
('qmail chkuser (vpopmail)', "550 5.1.2 sorry, can't find a valid MX for rcpt domain (chkuser)", 'routing_dns', 'recipient', 'rcpt', 'sagredo-dev/qmail chkuser_settings.h'),
('qmail chkuser (vpopmail)', '553 5.1.7 sorry, mailbox syntax not allowed (chkuser)', 'protocol_error', 'sender', 'rcpt', 'sagredo-dev/qmail chkuser_settings.h'),
('qmail chkuser (vpopmail)', "550 5.1.8 sorry, can't find a valid MX for sender domain (chkuser)", 'auth_failed', 'sender', 'rcpt', 'sagredo-dev/qmail chkuser_settings.h'),
('qmail chkuser (vpopmail)', "553 5.7.1 sorry, that domain isn't in my list of allowed rcpthosts (chkuser)", 'relay_denied', 'session', 'rcpt', 'sagredo-dev/qmail chkuser_settings.h'),
('qmail chkuser (vpopmail)', '451 4.4.0 DNS temporary failure (chkuser)', 'temporary_failure', 'session', 'rcpt', 'sagredo-dev/qmail chkuser_settings.h'),
('qmail chkuser (vpopmail)', '530 5.7.0 Authentication required (chkuser)', 'relay_denied', 'session', 'rcpt', 'sagredo-dev/qmail chkuser_settings.h'),
# --- providers and gateways quoted in issue threads and help pages
('BigPond (qmail, sender rejected)', '192.0.2.1 Defined SPAM source: bl.spamcop.net', 'blocklisted', 'session', 'mail', 'http://www.themssforum.com/smallbiz/Email-blocked/'),
('Telstra BigPond outbound', 'nschwcmgw08p BigPond Outbound [OB105. Connection refused. (192.0.2.1) is listed on the Exploits Block List (XBL). Please visit for more information.', 'blocklisted', 'session', 'connect', 'https://crowdsupport.telstra.com.au:443/t5/broadband-nbn/why-is-my-email-being-blacklisted/ta-p/76234'),
('Andrews & Arnold (smtp.aa.net.uk)', 'Error CA2 see: http://wiki.aa.org.uk/Sending_Email_Errors 192.0.2.1 is blocked from sending. Probably due to sending spam messages.', 'blocklisted', 'session', None, 'https://support.aa.net.uk/index.php?diff=prev&oldid=11311&title=Sending_Email_Errors'),
('AT&T Worldnet', '550 Error. Blocked for abuse', 'blocklisted', 'session', None, 'http://worldnet.att.net/general-info/mail_info/block_enduser.html'),
('AT&T Worldnet', '550 Error. Blocked for status: <unknown sender>', 'auth_failed', 'session', None, 'http://worldnet.att.net/general-info/mail_info/block_enduser.html'),
('BT Business', '550 Message rejected due to sender IP reputation ([192.0.2.86])', 'blocklisted', 'session', None, 'https://btbusiness.custhelp.com/app/answers/detail/a_id/15074/~/my-emails-are-being-rejected---im-getting-messages-with-the-error-code-550/c/5183/'),
('BT Business', 'Recipient not authorised', 'relay_denied', 'session', None, 'https://btbusiness.custhelp.com/app/answers/detail/a_id/15074/~/my-emails-are-being-rejected---im-getting-messages-with-the-error-code-550/c/5183/'),
('FortiGate antispam (ASE)', '554 5.7.1 This message has been blocked because ASE reports it as spam.', 'spam_content', 'message', 'data', 'http://www.howtodo.co.il/?author=2&paged=3'),
('University of Kentucky mail gateway', 'Mail from domain not accepted from host', 'auth_failed', 'sender', None, 'http://www.uky.edu/IT/CustomerService/kb/mailgateways/commonerrors.php'),
('University of Kentucky mail gateway', 'Access is denied. Your server is listed by SpamCop bl.spamcop.net', 'blocklisted', 'session', None, 'http://www.uky.edu/IT/CustomerService/kb/mailgateways/commonerrors.php'),
('University of Kentucky mail gateway', 'Your message contained a virus or forbidden attachment.', 'spam_content', 'message', None, 'http://www.uky.edu/IT/CustomerService/kb/mailgateways/commonerrors.php'),
('remote MX quoted by Tufts', '552 Illegal Attachment', 'spam_content', 'message', 'data', 'http://uit.tufts.edu/?pid=548&c=429'),
('Tufts (Sendmail)', '550 5.1.1 unknown or illegal alias: user@host.example.edu', 'unknown_recipient', 'recipient', 'rcpt', 'http://uit.tufts.edu/?pid=548&c=429'),
('unknown MX', '550 No RDNS entry for 192.0.2.10', 'auth_failed', 'session', 'rcpt', 'https://github.com/meeting-room-booking-system/mrbs-code/issues/1692'),
('Postfix (fail2ban report)', '550 5.7.25 Client host rejected: cannot find your hostname', 'auth_failed', 'session', 'rcpt', 'https://github.com/fail2ban/fail2ban/issues/2996'),
('Postfix at an MX (hitobito)', '450 4.1.2 <user@example.com>: Recipient address rejected: Domain not found', 'routing_dns', 'recipient', 'rcpt', 'https://github.com/hitobito/hitobito/issues/495'),
('addy.io', '554 5.1.8 <no-reply@example.com>: Sender address rejected: Domain not found', 'auth_failed', 'sender', 'rcpt', 'https://github.com/anonaddy/anonaddy/issues/849'),
('SmarterMail (ZPanel host)', 'You are not allowed to use the domain hotmail.com as a sender domain.', 'relay_denied', 'sender', 'mail', 'https://github.com/PHPMailer/PHPMailer/issues/304'),
('Postal', '530 From/Sender name is not valid', 'relay_denied', 'sender', 'data', 'https://github.com/postalserver/postal/issues/1917'),
('iCloud', '550 5.7.1 Message rejected due to local policy. Please visit https://support.apple.com/en-us/HT204137', 'policy_rejected', 'message', 'data', 'https://github.com/MailCore/mailcore2/issues/1738'),
('Zoho Mail (submission)', '553 Relaying disallowed', 'relay_denied', 'sender', None, 'https://github.com/odoo/odoo/issues/1493'),
('Zoho Mail (submission)', '535 Authentication Failed', 'auth_failed', 'session', 'rcpt', 'https://github.com/nodemailer/nodemailer/issues/456'),
('Postfix (Mailu), its own DNS lookup', 'Host or domain name not found. Name service error for name=outlook-com.olc.protection.outlook.com type=AAAA: Host found but no data record of requested type', 'routing_dns', 'recipient', None, 'https://github.com/Mailu/Mailu/issues/2934'),
('Postfix (mailcow), its own DNS lookup', 'Host or domain name not found. Name service error for name=cent6.com type=AAAA: Host not found', 'routing_dns', 'recipient', None, 'https://github.com/mailcow/mailcow/issues/338'),
('Mimecast', '451 Internal resource temporarily unavailable - https://community.mimecast.com/docs/DOC-1369#451 [XXXXX]', 'greylisted', 'session', 'rcpt', 'https://github.com/tianon/dockerfiles/issues/96'),
('Exim (HestiaCP) at an MX', 'lowest numbered MX record points to local host', 'routing_dns', 'recipient', 'rcpt', 'https://github.com/hestiacp/hestiacp/issues/4132'),
]
