"""A browser tab without the browser: calls the page's own (private) events through Gradio's
HTTP protocol, as the page's JavaScript does (upload, queue/join, the queue's event stream),
so tests can drive the sidebar's import like a person clicking it."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx

API = "gradio_api"


class EventFailed(AssertionError):
    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class Page:
    def __init__(self, url: str, timeout: float = 120):
        self.url = url.rstrip("/") + "/"
        self.http = httpx.Client(timeout=timeout)
        self.session_hash = uuid.uuid4().hex[:11]
        self.config = self.http.get(self.url + "config").raise_for_status().json()
        self.by_elem = {c["props"].get("elem_id"): c["id"] for c in self.config["components"]
                        if c.get("props", {}).get("elem_id")}

    def close(self) -> None:
        self.http.close()

    def dependency(self, trigger: str, elem_id: str | None = None,
                   output_elem: str | None = None) -> dict:
        """The event fired by `trigger` on the component `elem_id` (or, for page events such
        as "load", the one that updates `output_elem`)."""
        for dep in self.config["dependencies"]:
            triggers = [t[1] for t in dep["targets"]]
            if elem_id is not None and [self.by_elem.get(elem_id), trigger] in \
                    [list(t) for t in dep["targets"]]:
                return dep
            if elem_id is None and trigger in triggers and \
                    self.by_elem.get(output_elem) in dep["outputs"]:
                return dep
        raise AssertionError(f"no {trigger} event on {elem_id or output_elem} in the page")

    def open(self) -> list:
        """The page's start event, as a fresh browser sends it (no stored token)."""
        dep = self.dependency("load", output_elem="sessions")
        return self.call(dep, [None] * len(dep["inputs"]))

    def upload(self, path: Path) -> dict:
        with open(path, "rb") as f:
            r = self.http.post(self.url + f"{API}/upload",
                               files={"files": (Path(path).name, f)})
        r.raise_for_status()
        return {"path": r.json()[0], "orig_name": Path(path).name,
                "meta": {"_type": "gradio.FileData"}}

    def call(self, dep: dict, data: list) -> list:
        """Run one event to its end; its outputs, or EventFailed with the server's words."""
        trigger = dep["targets"][0][0] if dep["targets"] else None
        r = self.http.post(self.url + f"{API}/queue/join", json={
            "data": data, "fn_index": dep["id"], "trigger_id": trigger,
            "session_hash": self.session_hash, "event_data": None})
        if r.status_code != 200:
            raise EventFailed(r.text, r.status_code)
        event_id = r.json()["event_id"]
        with self.http.stream("GET", self.url + f"{API}/queue/data",
                              params={"session_hash": self.session_hash}) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                msg = json.loads(line[5:])
                if msg.get("event_id") != event_id or msg.get("msg") != "process_completed":
                    continue
                if not msg.get("success", True) or "error" in (msg.get("output") or {}):
                    raise EventFailed(str((msg.get("output") or {}).get("error")))
                return msg["output"]["data"]
        raise EventFailed("the event stream ended before the event completed")
