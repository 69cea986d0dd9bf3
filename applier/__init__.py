"""Applier: fetch -> decode/unseal -> plan -> server-side apply -> record."""
