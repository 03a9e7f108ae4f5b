"""The next hop when it is not one smarthost: MX routes from DNS (routes.py), the per-domain
choice of smarthost or MX (routing.py, policies/routes.yaml), the connection pools per
destination (pool.py) and the one outbound TLS decision (tls.py). See docs/delivery.md."""
