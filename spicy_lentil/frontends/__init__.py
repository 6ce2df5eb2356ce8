"""Layer 4, the front ends: the `SpicyLentil` facade, batch jobs, Ray, the HTTP server, the CLI and the
RAG framework components. Everything below is theirs to call; nothing below calls them.
"""
