"""Delivery to the next hop: MX routes, connections, and the TLS each destination asks for."""
