"""Integrations with other frameworks (BasicSR)."""
