"""Candidates for tests/data/corpus/train/world6.yaml (issue #8, eighth round "world6", branch
cls-grow6): real replies quoted on help-desk, hosting-provider and ESP help pages, Q&A/forum pages
and mailing-list archives no earlier round used (English, German, Portuguese, Spanish, French
pages). Gathered and labelled by reading, before any rule was changed for this round, so that the
shipped rules could first be measured on them as on unseen text. Labels follow the README's
conventions and the labels the corpus already gives the same wording; the held-out part was never
read. `scripts/corpus/build_world.py` drops every candidate that is a near-duplicate of a corpus
entry (a key shared with the held-out part drops it unseen).

One label was set, after the first measurement and before any rule change, to the label the
corpus already gives the same wording: a 4xx "unable to verify sender" is temporary_failure
(scope sender), as "451 Could not complete sender verify callout" already is. A second one
was set after the rules were first changed (tests/test_corpus.py showed the corpus already
labels the same deferral "450 4.7.1 [EAB] 554 IP=... - A problem occurred" in world2.yaml as
blocklisted, scope session); it was first written as policy_rejected. A third, after the
rules were changed: the Chinese page lists "DNS query error" under 域名不存在 (the domain does
not exist), so its scope is the recipient's domain, not the sending side's path (it was
first written as scope relay).

Each tuple: (provider, reply, category, scope, stage, source).
"""
C = [
# --- help-desk and hosting help pages (English)
("unknown (Sendmail)", "550 <user@example.com>... Host unknown (Name server: example.com: host not found)", "routing_dns", "recipient", "rcpt", "http://helpdesk.umd.edu/documents/3/3025/"),
("unknown (Sendmail)", "553 <user@example.com>... unauthorized relay traffic prohibited", "relay_denied", "session", "rcpt", "http://helpdesk.umd.edu/documents/3/3025/"),
("unknown (Sendmail)", "550 Sorry, no access for this user", "policy_rejected", "sender", "mail", "http://helpdesk.umd.edu/documents/3/3025/"),
("unknown", "550 5.7.1 Rejected: mail.example.com listed at relays.ordb.org", "blocklisted", "session", None, "http://wiki.ubiquityhosting.com/index.php/Delivery_Status_Notification"),
("unknown", "551 Requested action not taken: mailbox full", "mailbox_full", "recipient", None, "http://wiki.ubiquityhosting.com/index.php/Delivery_Status_Notification"),
("unknown", "552 Requested action not taken: exceeded storage allocation", "mailbox_full", "recipient", None, "http://wiki.ubiquityhosting.com/index.php/Delivery_Status_Notification"),
("unknown", "553 bad reverse dns", "auth_failed", "session", None, "http://wiki.ubiquityhosting.com/index.php/Delivery_Status_Notification"),
("Yahoo", "554 delivery error: Sorry, your message to user@example.com cannot be delivered. This account is over quota.", "mailbox_full", "recipient", None, "http://wiki.ubiquityhosting.com/index.php/Delivery_Status_Notification"),
("Yahoo", "421 [GL01] Message from (192.0.2.1) temporarily deferred", "temporary_failure", "session", None, "http://support.blackpearlmail.com/knowledgebase/articles/650530-bounce-messages"),
("unknown", "452 Over Quota", "mailbox_full", "recipient", None, "http://support.blackpearlmail.com/knowledgebase/articles/650530-bounce-messages"),
("unknown", "550 No Such User Here", "unknown_recipient", "recipient", None, "http://support.blackpearlmail.com/knowledgebase/articles/650530-bounce-messages"),
("AOL", "550-'MAILBOX NOT FOUND'", "unknown_recipient", "recipient", None, "http://support.blackpearlmail.com/knowledgebase/articles/650530-bounce-messages"),
("Yahoo", "554 delivery error: This user doesn't have a example.com account", "unknown_recipient", "recipient", None, "http://support.blackpearlmail.com/knowledgebase/articles/650530-bounce-messages"),
("unknown (qmail chkuser)", "511 sorry, no mailbox here by that name (#5.1.1 - chkuser)", "unknown_recipient", "recipient", None, "https://clinician.rgnmed.com/support-admin/bounced-emails"),
("unknown", "550 4.4.7 Message expired: unable to deliver in 840 minutes", "expired", "relay", None, "https://clinician.rgnmed.com/support-admin/bounced-emails"),
("unknown", "550 5.4.4 Invalid domain", "routing_dns", "recipient", None, "https://clinician.rgnmed.com/support-admin/bounced-emails"),
("unknown", "550 5.5.0 Requested action not taken: mailbox unavailable", "unknown_recipient", "recipient", None, "https://clinician.rgnmed.com/support-admin/bounced-emails"),
("Orange", "550 5.7.1 Service refuse. Veuillez essayer plus tard. service refused, please try later.", "temporary_failure", "session", None, "https://clinician.rgnmed.com/support-admin/bounced-emails"),
("unknown", "550 Address unknown", "unknown_recipient", "recipient", None, "https://clinician.rgnmed.com/support-admin/bounced-emails"),
("unknown", "550 RCPT TO:<user@example.com> User unknown", "unknown_recipient", "recipient", "rcpt", "https://clinician.rgnmed.com/support-admin/bounced-emails"),
("unknown", "550 spam detected", "spam_content", "message", None, "https://clinician.rgnmed.com/support-admin/bounced-emails"),
("unknown", "552 1 Requested mail action aborted, mailbox not found", "unknown_recipient", "recipient", None, "https://clinician.rgnmed.com/support-admin/bounced-emails"),
("Yahoo", "554 30 Sorry, your message to user@example.com cannot be delivered. This mailbox is disabled", "mailbox_disabled", "recipient", None, "https://clinician.rgnmed.com/support-admin/bounced-emails"),
("Cyrus (Postfix lmtp)", "552 5.2.2 Over quota SESSIONID=<pop3.example.com-15031-1344498797-2>", "mailbox_full", "recipient", "rcpt", "https://netcoresupport.freshdesk.com/support/solutions/articles/26000027593-understanding-of-bounce-email"),
("Postfix (maildrop)", "permission denied. Command output: maildrop: maildir over quota.", "mailbox_full", "recipient", None, "http://blogs.iphouse.net/2010/01/19/undeliverable-mail/"),
("unknown (qmail)", "451 SPF lookup failure (#4.3.0)", "auth_failed", "sender", None, "https://support.dshost.com.au/knowledgebase.php?action=displayarticle&id=70"),
("GoDaddy", "421 Server temporarily unavailable. Try again later. IB101", "temporary_failure", "session", None, "http://topwebhostingoffers.com/various-email-bounce-backs-on-a-cpanel-server/"),
("GoDaddy", "550 Recipient not found.", "unknown_recipient", "recipient", None, "http://topwebhostingoffers.com/various-email-bounce-backs-on-a-cpanel-server/"),
("GoDaddy (qmail)", "451 Sorry, I wasn't able to establish an SMTP connection. I'm not going to try again; this message has been in the queue too long.", "expired", "relay", None, "http://topwebhostingoffers.com/various-email-bounce-backs-on-a-cpanel-server/"),
("GoDaddy", "550 From: Domain is invalid. Please provide a valid From: IB506", "auth_failed", "sender", None, "http://topwebhostingoffers.com/various-email-bounce-backs-on-a-cpanel-server/"),
("GoDaddy", "550 Invalid SPF record. Please inspect your SPF settings, and try again. IB508", "auth_failed", "sender", None, "http://topwebhostingoffers.com/various-email-bounce-backs-on-a-cpanel-server/"),
("GoDaddy", "421 Temporarily rejected. Reverse DNS for this IP failed. IB108", "auth_failed", "session", None, "http://topwebhostingoffers.com/various-email-bounce-backs-on-a-cpanel-server/"),
("GoDaddy", "452 This message contains too many recipients Please reduce the number of recipients and retry. IB605", "rate_limited", "message", None, "http://topwebhostingoffers.com/various-email-bounce-backs-on-a-cpanel-server/"),
# --- German-language hosting help pages
("unknown (Postfix)", "451 4.7.1 Service unavailable - try again later", "temporary_failure", "session", "data", "https://coviserver.de/e-mail-geblockt"),
("unknown", "450 4.7.1 [EAB] 554 IP=192.0.2.1 - A problem occurred.", "blocklisted", "session", "connect", "https://coviserver.de/e-mail-geblockt"),
("unknown (Postfix)", "450 4.7.1 <user@example.com>: Recipient address rejected: Service temporarily unavailable, please try later", "temporary_failure", "recipient", "rcpt", "https://coviserver.de/e-mail-geblockt"),
("unknown", "550, quota exceeded", "mailbox_full", "recipient", None, "https://orange-panther.de/support/e-mail-debug/"),
("unknown (qmail)", "550 #5.2.0 no such mailbox", "unknown_recipient", "recipient", None, "https://orange-panther.de/support/e-mail-debug/"),
("unknown (qmail)", "550 #5.1.1 unknown recipient", "unknown_recipient", "recipient", None, "https://orange-panther.de/support/e-mail-debug/"),
("unknown", "550 #5.7.1 service unavailable; client [192.0.2.4] blocked using bl.example.org", "blocklisted", "session", None, "https://orange-panther.de/support/e-mail-debug/"),
("unknown (Postfix)", "554 5.7.1 <user@example.com>: Recipient address rejected: User unknown", "unknown_recipient", "recipient", "rcpt", "https://support.onesystems.ch/722126-%C3%9Cbersicht-h%C3%A4ufig-vorkommender-Fehlermeldungen"),
("unknown (Postfix)", "550 5.1.8 <user@example.org>: Sender address rejected: Domain not found", "auth_failed", "sender", "rcpt", "https://support.onesystems.ch/722126-%C3%9Cbersicht-h%C3%A4ufig-vorkommender-Fehlermeldungen"),
("unknown (Postfix)", "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using ix.dnsbl.manitu.net", "blocklisted", "session", "rcpt", "https://support.onesystems.ch/722126-%C3%9Cbersicht-h%C3%A4ufig-vorkommender-Fehlermeldungen"),
("unknown (qmail)", "451 qq trouble in home directory", "temporary_failure", "recipient", None, "https://support.onesystems.ch/722126-%C3%9Cbersicht-h%C3%A4ufig-vorkommender-Fehlermeldungen"),
("Exchange", "550 5.1.1 RESOLVER.ADR.ExRecipNotFound; not found", "unknown_recipient", "recipient", None, "https://hilfe.cloud4you.biz/hosted-exchange/fehlermeldungen-beim-versand-und-empfang-von-mails"),
("Exchange", "550 5.1.1 RESOLVER.ADR.RecipNotFound; not found", "unknown_recipient", "recipient", None, "https://hilfe.cloud4you.biz/hosted-exchange/fehlermeldungen-beim-versand-und-empfang-von-mails"),
("unknown (Postfix)", "450 4.7.1 Client host rejected: cannot find your reverse hostname, [192.0.2.1]", "auth_failed", "session", "rcpt", "https://www.bytecamp.net/de/faq/email/zustellen.html"),
("unknown (Postfix)", "450 4.2.0 <user@example.com>: Recipient address rejected: Greylisted", "greylisted", "session", "rcpt", "https://www.bytecamp.net/de/faq/email/zustellen.html"),
("unknown (Postfix)", "421 4.7.0 Error: too many connections from 192.0.2.1", "too_many_connections", "session", "connect", "https://www.bytecamp.net/de/faq/email/zustellen.html"),
("unknown", "422 4.2.2 Quota limit exceeded (Speicherplatz des Kontos ueberschritten)", "mailbox_full", "recipient", None, "https://www.bytecamp.net/de/faq/email/zustellen.html"),
("unknown", "571 5.7.1 message classified as spam (Nachricht als Spam eingestuft)", "spam_content", "message", "data", "https://www.bytecamp.net/de/faq/email/zustellen.html"),
("comservice-ffo", "421 Reject due to policy violations", "policy_rejected", "session", "connect", "https://new-faq.comservice-ffo.de/smtp-fehlermeldungen-e-mail-fehler/"),
("comservice-ffo", "421 Rate limit reached. Please try again later", "rate_limited", "session", None, "https://new-faq.comservice-ffo.de/smtp-fehlermeldungen-e-mail-fehler/"),
("comservice-ffo", "451 Requested action aborted: local error in processing", "temporary_failure", "session", None, "https://new-faq.comservice-ffo.de/smtp-fehlermeldungen-e-mail-fehler/"),
("comramo (FortiMail)", "554 5.7.1 This email from IP [192.0.2.1] has been rejected. The email message was detected as spam", "spam_content", "message", "data", "https://www.comramo.de/mailfaq/"),
# --- Portuguese pages (Microsoft Office help, a Brazilian ISP)
("unknown", "550 nome@example.com... Retransmissão Negada", "relay_denied", "session", "rcpt", "http://office.microsoft.com/pt-br/outlook-help/recebo-um-erro-550-553-ou-de-retransmissao-proibida-ao-enviar-emails-HA010080002.aspx"),
("unknown (qmail)", "553 este domínio não consta na minha lista de rcpthosts autorizados (#5.7.1)", "relay_denied", "session", "rcpt", "http://office.microsoft.com/pt-br/outlook-help/recebo-um-erro-550-553-ou-de-retransmissao-proibida-ao-enviar-emails-HA010080002.aspx"),
("unknown", "550 <user@example.com>... Reencaminhamento Negado", "relay_denied", "session", "rcpt", "http://office.microsoft.com/pt-pt/outlook-help/resolucao-de-problemas-dos-erros-550-553-e-erros-de-proibicao-de-reencaminhamento-HA001112833.aspx"),
("unknown (qmail)", "553 este domínio não faz parte da minha lista de anfitriões rcpt (#5.7.1)", "relay_denied", "session", "rcpt", "http://office.microsoft.com/pt-pt/outlook-help/resolucao-de-problemas-dos-erros-550-553-e-erros-de-proibicao-de-reencaminhamento-HA001112833.aspx"),
# --- Chinese hosting page (退信 list)
("emailhost.com.cn", "Content reject/Spam denied", "spam_content", "message", None, "https://www.emailhost.com.cn/service.html?article_category=25&brd=1"),
("emailhost.com.cn", "sending quota exceeded", "rate_limited", "sender", None, "https://www.emailhost.com.cn/service.html?article_category=25&brd=1"),
("emailhost.com.cn", "rcpt handle timeout", "temporary_failure", "session", None, "https://www.emailhost.com.cn/service.html?article_category=25&brd=1"),
("emailhost.com.cn", "exceeded mailsize limit", "message_too_large", "message", None, "https://www.emailhost.com.cn/service.html?article_category=25&brd=1"),
("emailhost.com.cn", "DNS query error", "routing_dns", "recipient", None, "https://www.emailhost.com.cn/service.html?article_category=25&brd=1"),
("emailhost.com.cn", "user not exist", "unknown_recipient", "recipient", None, "https://www.emailhost.com.cn/service.html?article_category=25&brd=1"),
# --- Q&A / forum / list-archive pages and more help pages
("Outlook.com (via Plesk)", "550 mail not accepted from blacklisted IP address [192.0.2.2]", "blocklisted", "session", None, "https://www.plesk.com/kb/support/an-ip-address-of-a-plesk-mail-server-got-blacklisted-how-to-troubleshoot/"),
("Proofpoint", "5.7.1 Service unavailable; client [192.0.2.2] blocked using prs.proofpoint.com", "blocklisted", "session", "rcpt", "https://www.plesk.com/kb/support/an-ip-address-of-a-plesk-mail-server-got-blacklisted-how-to-troubleshoot/"),
("unknown", "451 4.0.0 Spam filter end message failed - server - license [slot 1]", "temporary_failure", "session", None, "https://lists.gnu.org/archive/html/emacs-devel/2014-05/msg00555.html"),
("unknown", "451 4.3.2 Please try again later", "temporary_failure", "session", "rcpt", "https://gihyo.jp/dev/serial/01/sc-literacy/0010?page=2"),
("unknown", "451 4.3.0 Mail server temporarily rejected message", "temporary_failure", "session", None, "https://postigo.net/en/smtp-errors/451/"),
("unknown", "451 4.7.1 Unable to verify sender - try again later", "temporary_failure", "sender", None, "https://postigo.net/en/smtp-errors/451/"),
("unknown", "451 4.3.0 Temporary server error", "temporary_failure", "session", None, "https://cr0x.net/en/email-451-temporary-local-problem"),
("unknown", "451 4.3.2 System not accepting network messages", "temporary_failure", "session", None, "https://cr0x.net/en/email-451-temporary-local-problem"),
("Host Europe", "550 User unknown (ID:440:1:2 (mx.example.com))", "unknown_recipient", "recipient", "rcpt", "https://www.conftool.net/ctforum/index.php?topic=441.0"),
("unknown", "554 5.7.1 Message rejected due to policy restrictions", "policy_rejected", "message", None, "https://www.emailacademy.fr/pt2/Blog/Les-erreurs-de-non-remise-des-emails-et-leurs-significations"),
("unknown", "ERROR Mailbox doesn't exist", "unknown_recipient", "recipient", None, "https://01net.com/astuces/decryptez-votre-messagerie-272181.html"),
("unknown (Sendmail)", "550 Host unknown", "routing_dns", "recipient", None, "http://help.g-wip.com/cat-285/550550.html"),
("unknown (Sendmail)", "550 Relaying Denied", "relay_denied", "session", "rcpt", "http://help.g-wip.com/cat-285/550550.html"),
("unknown", "550 5.7.1 Access denied", "policy_rejected", "session", None, "http://help.g-wip.com/cat-285/550550.html"),
("unknown (Sendmail)", "451 Name server timeout", "routing_dns", "relay", None, "https://mediarium.hatenadiary.org/entry/20070906"),
("unknown (Sendmail)", "550 5.7.1 <user@example.co.jp>... Relaying denied", "relay_denied", "session", "rcpt", "https://mediarium.hatenadiary.org/entry/20070906"),
("Japanese mobile carrier", "550 Unknown user", "unknown_recipient", "recipient", None, "https://moneytimes.jp/archives/185548/2"),
("unknown", "552 Message size exceeds", "message_too_large", "message", None, "https://moneytimes.jp/archives/185548/2"),
("unknown", "exceeds size limit", "message_too_large", "message", None, "https://moneytimes.jp/archives/185548/2"),
("Mail.ru", "550 message sending for this account is disabled", "policy_rejected", "sender", None, "https://mailout.ru/2015/09"),
("Mail.ru", "User quota exceeded", "mailbox_full", "recipient", None, "https://mailout.ru/2015/09"),
("Mail.ru", "550 spam message rejected", "spam_content", "message", "data", "https://errorsmaster.ru/oshibka-550-spam-message-rejected"),
("Gmail", "421 4.7.0 IP not in whitelist for RCPT domain, closing connection", "policy_rejected", "session", None, "https://newsletterstudio.it/errori-smtp.php"),
("Gmail", "421 4.4.5 Server busy, try again later", "temporary_failure", "session", None, "https://newsletterstudio.it/errori-smtp.php"),
("Libero", "MAILBOX FULL (User quota exceeded)", "mailbox_full", "recipient", None, "https://aiuto.libero.it/articolo/mail/messaggi-di-errore-piu-frequenti-dopo-invio-email"),
("Libero", "550 Relay Disabled", "relay_denied", "session", None, "https://aiuto.libero.it/articolo/mail/messaggi-di-errore-piu-frequenti-dopo-invio-email"),
("unknown", "550 unknown user account", "unknown_recipient", "recipient", None, "https://turbolab.it/email-54/principali-messaggi-derrore-quando-spedite-email-3010"),
("unknown", "The recipient has exceeded their mailbox limit", "mailbox_full", "recipient", None, "https://www.exedo.nl/mailmeldingen"),
("unknown", "Rejected due to spam content", "spam_content", "message", None, "https://www.exedo.nl/mailmeldingen"),
("unknown", "550 High probability of spam", "spam_content", "message", None, "http://nl.help.carerix.com/nl/articles/2245905-e-mail-bounce"),
("unknown", "554 Invalid recipient", "unknown_recipient", "recipient", "rcpt", "http://nl.help.carerix.com/nl/articles/2245905-e-mail-bounce"),
("unknown (qmail)", "550 no mailbox by that name is currently available", "unknown_recipient", "recipient", "rcpt", "http://nl.help.carerix.com/nl/articles/2245905-e-mail-bounce"),
# --- an ESP's SMTP submission server (Maropost's SMTP error page)
("Maropost", "501 5.5.2 MAIL FROM syntax error", "protocol_error", "session", "mail", "https://galaxy.maropost.com/kb/articles/821-smtp-error-codes"),
("Maropost", "501 5.5.2 RCPT TO syntax error", "syntax_error", "recipient", "rcpt", "https://galaxy.maropost.com/kb/articles/821-smtp-error-codes"),
("Maropost", "503 5.5.1 RCPT TO without MAIL FROM", "protocol_error", "session", "rcpt", "https://galaxy.maropost.com/kb/articles/821-smtp-error-codes"),
("Maropost", "503 5.5.1 DATA without RCPT TO", "protocol_error", "session", "data", "https://galaxy.maropost.com/kb/articles/821-smtp-error-codes"),
("Maropost", "554 Transaction failed[Missing Required Headers From or To[see RFC2822 section 3.6]]", "policy_rejected", "message", "data", "https://galaxy.maropost.com/kb/articles/821-smtp-error-codes"),
("Maropost", "554 Transaction failed[Service Temporarily Unavailable. Please try after a few minutes.]", "temporary_failure", "session", "data", "https://galaxy.maropost.com/kb/articles/821-smtp-error-codes"),
("unknown", "550 5.7.1 This message has been blocked because the sender's IP address is blacklisted", "blocklisted", "session", None, "https://intohost.in/kb/common-email-bounce-back-errors"),
("unknown", "421 4.2.0 Server busy, please try again later", "temporary_failure", "session", None, "https://intohost.in/kb/common-email-bounce-back-errors"),
("unknown", "550 5.1.10 Recipient domain not found", "routing_dns", "recipient", None, "https://intohost.in/kb/common-email-bounce-back-errors"),
("unknown", "550 5.7.0 Message Size Violation", "message_too_large", "message", None, "https://www.cyon.ch/support/a/smtp-error-550"),
("unknown", "550 Relay Not Permitted", "relay_denied", "session", None, "https://www.cyon.ch/support/a/smtp-error-550"),
("Gmail", "421 4.7.0 TLS required for RCPT domain, closing connection", "relay_denied", "session", None, "https://newsletterstudio.it/errori-smtp.php"),
("Gmail", "421 4.7.0 Try again later, closing connection", "temporary_failure", "session", None, "https://newsletterstudio.it/errori-smtp.php"),
("Gmail", "421 4.7.0 Temporary System Problem. Try again later.", "temporary_failure", "session", None, "https://newsletterstudio.it/errori-smtp.php"),
("comservice-ffo", "450 Reject due to policy violations.", "policy_rejected", "session", None, "https://new-faq.comservice-ffo.de/smtp-fehlermeldungen-e-mail-fehler/"),
]
