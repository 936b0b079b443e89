"""Session store: SQLite (sqlite-utils) with content-addressed media blobs, export and replay.

Needs no model to open, list, export or play back a session.
"""
