"""How much of the model one visitor may hold: requests waiting or running per client.

The model runs one request at a time behind Gradio's queue, whose places are shared by all.
Without a limit one client can take every place, and a new page's own events are then refused
(503). `ClientQueueLimit` refuses a client's request before it joins the queue when that client
already has `per_client` requests waiting or running in the model's concurrency group; the
refusal is a Gradio validation message, shown on the page and raised by gradio_client. A
client is the logged-in user, or else the connection (a browser tab, a gradio_client
`Client`). The wall-time limit of one request is `ui.turns.ChatRunner`'s.

Known gap: the count is read from the queue, and a request joins it only after its validation,
so requests of one client sent at the same instant (none yet queued) can each pass; the limit
holds for requests sent one after another, which is what a page sends. Counting each admission
for a moment after it (until the queue would show it) closes the gap but refuses a fast
client's next turns: a reply that ends within that moment is never seen in the queue, so its
admission still counts (tried; the eight-client server test caught it). A fix needs the
request's end, from the event's own function, not from the queue.
"""

from __future__ import annotations

import gradio as gr


def client_key(username: str | None, session_hash: str | None) -> str:
    return f"user:{username}" if username else f"connection:{session_hash}"


class ClientQueueLimit:
    def __init__(self, per_client: int, concurrency_id: str):
        if per_client < 1:
            raise ValueError(f"the queue limit per client must be at least 1, not {per_client}")
        self.per_client, self.concurrency_id = per_client, concurrency_id
        self.demo = None

    def install(self, demo: gr.Blocks) -> int:
        """Check every event of the model's concurrency group before it is queued (Gradio's
        `validator` of those events); how many events that is."""
        self.demo = demo
        events = [fn for fn in demo.fns.values() if fn.concurrency_id == self.concurrency_id]
        for fn in events:
            if fn.validator is not None:
                raise ValueError(f"event {fn.name} already has a validator")
            fn.validator = self.admit
        return len(events)

    def held(self, key: str) -> int:
        """The client's requests waiting or running in the model's group (read from Gradio's
        queue, so a request that ends in any way, cancelled included, stops counting)."""
        queue = getattr(self.demo, "_queue", None)
        if queue is None:
            return 0
        group = queue.event_queue_per_concurrency_id.get(self.concurrency_id)
        waiting = list(group.queue) if group is not None else []
        running = [e for job in list(queue.active_jobs) if job for e in job]
        return sum(e.concurrency_id == self.concurrency_id
                   and client_key(e.username, e.session_hash) == key for e in waiting + running)

    def admit(self, request: gr.Request, *values):
        """A validation per input: all valid, or the first says why the request waits no
        place in the queue."""
        key = client_key(getattr(request, "username", None),
                         getattr(request, "session_hash", None))
        held = self.held(key)
        ok = [gr.validate(True, "") for _ in values]
        if held < self.per_client:
            return ok
        return [gr.validate(False, f"you already have {held} request(s) waiting or running "
                                   f"(at most {self.per_client} at a time); wait for one to "
                                   "finish, then send this again")] + ok[1:]
