"""Schedules as arithmetic: when a schedule fires, how to say it in words, how to hand it to EventBridge.

Pure code, no I/O: :mod:`.timetable` computes run times (with the DST rules orch documents there),
:mod:`.eventbridge` translates a schedule to an EventBridge Scheduler expression when that is exact. The
schedule definitions themselves (validation included) are the API schema in
:mod:`orch.control_plane.schemas.schedules`.
"""
