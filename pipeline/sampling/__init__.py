"""Sieve."""
