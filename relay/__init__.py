"""relay: a self-hosted outbound SMTP relay and milter that explains every delivery error."""

__version__ = "0.1.0"
