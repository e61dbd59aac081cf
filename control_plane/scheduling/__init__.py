"""Schedules as arithmetic: when a schedule fires, how to say it in words, how to hand it to EventBridge.

Pure code, no I/O: :mod:`.timetable` computes run times (with the DST rules documented there), :mod:`.eventbridge`
translates a schedule to an EventBridge Scheduler expression when that is exact. The schedule definitions
themselves (validation included) are the API schema in :mod:`orch.control_plane.schemas.schedules`.
"""

from orch.control_plane.scheduling.eventbridge import EventBridgeExpression, schedule_name, to_eventbridge
from orch.control_plane.scheduling.timetable import describe, is_elapsed_time, iter_times, next_times

__all__ = [
    "EventBridgeExpression",
    "describe",
    "is_elapsed_time",
    "iter_times",
    "next_times",
    "schedule_name",
    "to_eventbridge",
]
