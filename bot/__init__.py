"""Newsdesk: cited answers from a newsroom corpus."""

from bot.lazy import defer_heavy_packages

defer_heavy_packages()  # before anything imports LangChain (bot/lazy.py says why)
