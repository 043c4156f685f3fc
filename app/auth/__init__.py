"""Identity: users, passwords, sessions (and, with the identity issue, tokens and keys)."""
