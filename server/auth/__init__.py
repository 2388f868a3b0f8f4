"""Passwords, tokens, and the interceptor that authenticates every call."""
