"""Milter mode: the relay's policy steps inside Postfix or Sendmail (the milter protocol, version 6).

- `codec`: packets on the wire, both directions (no I/O).
- `session`: one MTA connection's state, mapped onto the pipeline's Session and Transaction.
- `server`: the asyncio listener (TCP or a UNIX socket) that drives sessions.
"""
