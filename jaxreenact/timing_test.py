"""The timing loop: warm-up calls are not timed, rounds interleave, the budget stops early but never below 2."""
import time

import pytest

from jaxreenact import timing


def test_warmup_is_untimed_and_every_repeat_is_timed():
  log = []
  times = timing.time_calls(lambda: log.append(len(log)), 4, warmup=2)
  assert len(log) == 6 and len(times) == 4 and all(t >= 0 for t in times)


def test_calls_interleave_and_each_gets_its_own_times():
  order = []
  calls = {"a": lambda: order.append("a"), "b": lambda: (order.append("b"), time.sleep(0.01))}
  times = timing.time_interleaved(calls, 3, warmup=1)
  assert order == ["a", "b"] * 4
  assert len(times["a"]) == len(times["b"]) == 3 and min(times["b"]) >= 0.01 > max(times["a"])


def test_budget_stops_after_two_timed_calls_at_the_earliest():
  calls = []
  times = timing.time_calls(lambda: (calls.append(1), time.sleep(0.02)), 50, budget_s=0.001)
  assert len(times) == 2 and len(calls) == 2
  assert len(timing.time_calls(lambda: None, 5, budget_s=60.0)) == 5


def test_repeats_below_one_are_refused():
  with pytest.raises(ValueError, match="repeats"):
    timing.time_calls(lambda: None, 0)
