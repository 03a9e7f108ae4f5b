"""Webhook delivery the Standard Webhooks way (https://www.standardwebhooks.com/): events spooled to disk
(`relay/spool.py`), sent in signed batches (`signing.py`) by a sender that retries with back-off and
dead-letters what it cannot deliver (`sender.py`); `sink.py` ties them to the event stream."""

from .sink import WebhookSink

__all__ = ["WebhookSink"]
