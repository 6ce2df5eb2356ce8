"""Layer 2, the corpus index: its format and reader, its builder, the token codec, the first stage, and
retrieve-then-rerank (`rerank`).

Imports the network (to encode and score) and the shared bottom, never training or the front ends.
"""
