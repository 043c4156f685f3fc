"""Local stand-ins for external HTTP services; the real clients talk to them over HTTP."""
