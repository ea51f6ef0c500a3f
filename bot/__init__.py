"""Newsdesk: cited answers from a newsroom corpus."""
