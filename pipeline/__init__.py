"""Vigie plumbing: settings, schemas, topics, watchlist, producers, notifiers, metrics, CLI."""
