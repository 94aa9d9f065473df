"""Ingestion sources: one module per platform, all producing the post schema.

`base` holds the framework (runner, backoff, resume state, dedup); `sinks` where posts go;
`bluesky`, `mastodon`, `twitter`, `reddit`, `rss` the connectors; `push` the HTTP endpoint.
"""
