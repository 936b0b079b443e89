"""The per-client queue limit at its unit: admissions counted before the queue shows them."""

import os
from types import SimpleNamespace

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import ui.limits as limits  # noqa: E402
from ui.limits import ClientQueueLimit, client_key  # noqa: E402


class FakeQueue:
    """Gradio's queue as the limit reads it: waiting events per concurrency group, and the
    running jobs."""

    def __init__(self):
        self.waiting = []
        self.event_queue_per_concurrency_id = {"model": SimpleNamespace(queue=self.waiting)}
        self.active_jobs = []

    def add(self, session: str):
        self.waiting.append(SimpleNamespace(concurrency_id="model", username=None,
                                            session_hash=session))


def limit_over(queue: FakeQueue, per_client: int = 2) -> ClientQueueLimit:
    limit = ClientQueueLimit(per_client, "model")
    limit.demo = SimpleNamespace(_queue=queue)
    return limit


def admitted(limit: ClientQueueLimit, session: str) -> bool:
    request = SimpleNamespace(username=None, session_hash=session)
    return limit.admit(request, "message")[0]["is_valid"]


def test_requests_sent_at_once_are_counted_before_they_are_queued():
    queue = FakeQueue()
    limit = limit_over(queue)
    # five requests validated before any of them is queued: two pass, as the limit says
    assert [admitted(limit, "a") for _ in range(5)] == [True, True, False, False, False]
    assert admitted(limit, "b")  # another client is counted on its own
    queue.add("a"), queue.add("a")  # the two admitted ones reach the queue
    assert not admitted(limit, "a")


def test_an_admission_counts_only_a_moment_once_the_queue_is_empty(monkeypatch):
    queue = FakeQueue()
    limit = limit_over(queue, per_client=1)
    now = [100.0]
    monkeypatch.setattr(limits.time, "monotonic", lambda: now[0])
    assert admitted(limit, "a") and not admitted(limit, "a")
    now[0] += limits.GRACE_S  # never queued (or finished): the place is free again
    assert admitted(limit, "a")
    queue.add("a")  # queued now: held by the queue itself, however long it waits
    now[0] += 10 * limits.GRACE_S
    assert not admitted(limit, "a")
    assert client_key("ann", "s1") == "user:ann" and client_key(None, "s1") == "connection:s1"
