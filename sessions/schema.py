"""The session database's schema, as versioned sqlite-utils migrations (applied in order,
each once, recorded in `_sqlite_migrations`). Add a new function to change the schema;
never edit an applied one."""

from __future__ import annotations

from sqlite_utils.migrations import Migrations

migrations = Migrations("nextomni.sessions")


@migrations()
def m001_initial(db) -> None:
    db["sessions"].create({
        "id": str, "owner": str, "title": str, "created": str, "updated": str,
        "model": str, "model_revision": str, "quantization": str, "app_version": str,
    }, pk="id")
    db["blobs"].create({"sha256": str, "mime": str, "size": int, "created": str}, pk="sha256")
    db["turns"].create({
        "id": int, "session_id": str, "parent_id": int, "idx": int, "role": str,
        "status": str, "settings": str, "metrics": str, "error": str, "created": str,
        "finished": str,
    }, pk="id", foreign_keys=[("session_id", "sessions", "id"), ("parent_id", "turns", "id")])
    db["parts"].create({
        "id": int, "turn_id": int, "ord": int, "kind": str, "text": str, "blob": str,
        "name": str,
    }, pk="id", foreign_keys=[("turn_id", "turns", "id"), ("blob", "blobs", "sha256")])
    db["sessions"].create_index(["owner", "updated"])
    db["turns"].create_index(["session_id", "idx"])
    db["parts"].create_index(["turn_id", "ord"])
