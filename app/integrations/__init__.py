"""Integrations: events, outbound webhooks, REST hooks, and the SSRF guard they share."""
