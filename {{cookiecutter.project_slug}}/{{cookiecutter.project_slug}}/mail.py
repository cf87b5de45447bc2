"""Mail while no mail server is set (EMAIL_URL empty): kept in files, not lost.

Django's console backend would print each message to standard output, which the Windows
service throws away, so a password-reset page would say "we've e-mailed you" with nothing
anywhere. Here each message is written to a file in EMAIL_FILE_PATH (logs/mail/) and a
WARNING in the log names its recipients, subject and file.
"""

import logging

from django.core.mail.backends.filebased import EmailBackend

log = logging.getLogger(__name__)


class UnsentMailBackend(EmailBackend):
    def send_messages(self, email_messages):
        sent = super().send_messages(email_messages)
        if sent:
            for message in email_messages:
                log.warning("E-mail to %s (%r) was not sent: EMAIL_URL is empty. It is in %s.",
                            ", ".join(message.recipients()) or "nobody", message.subject,
                            self._get_filename())
        return sent
