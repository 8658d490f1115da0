"""The champion follower's loop in a worker: it polls every ``serving.reload_seconds``,
not at all when that is 0, ends when there is nothing to follow, and stops when asked.
(What one poll does against a real registry: tests/serving/test_champion.py.)"""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any, cast

from pipeline.settings import Settings, load_settings
from serving.champion import ChampionFollower, ServedModel


def settings(reload_seconds: float) -> Settings:
    loaded = load_settings()
    serving = loaded.serving.model_copy(update={"reload_seconds": reload_seconds})
    return loaded.model_copy(update={"serving": serving})


def served() -> ServedModel:
    return cast(ServedModel, SimpleNamespace(name="m", version="1", run_id="r", classes=["0", "1"]))


class CountingFollower(ChampionFollower):
    """A follower whose poll only counts, answering ``follow`` (False: nothing to follow)."""

    def __init__(self, reload_seconds: float, follow: bool = True) -> None:
        super().__init__(settings(reload_seconds), served())
        self.follow = follow
        self.polls = 0
        self.polled = threading.Event()

    def poll(self) -> bool:
        self.polls += 1
        if self.polls >= 3:
            self.polled.set()
        return self.follow


def thread(follower: ChampionFollower) -> threading.Thread | None:
    return cast(Any, follower)._thread


def test_the_loop_polls_until_asked_to_stop() -> None:
    follower = CountingFollower(0.01).start()
    assert follower.polled.wait(5)
    follower.stop()
    running = thread(follower)
    assert running is not None and not running.is_alive()
    stopped_at = follower.polls
    follower.polled.clear()
    assert not follower.polled.wait(0.1)
    assert follower.polls == stopped_at


def test_no_loop_when_reload_seconds_is_zero() -> None:
    follower = CountingFollower(0).start()
    assert thread(follower) is None
    follower.stop()  # nothing to stop: no error
    assert follower.polls == 0


def test_the_loop_ends_by_itself_when_there_is_nothing_to_follow() -> None:
    follower = CountingFollower(0.01, follow=False).start()
    running = thread(follower)
    assert running is not None
    running.join(5)
    assert not running.is_alive()
    assert follower.polls == 1


def test_stop_does_not_wait_for_the_next_poll() -> None:
    follower = CountingFollower(60).start()
    running = thread(follower)
    assert running is not None
    follower.stop()
    running.join(0)  # already ended: the wait between polls is cut short
    assert not running.is_alive()
    assert follower.polls == 0
