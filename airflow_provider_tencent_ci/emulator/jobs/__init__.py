"""CI SegmentVideoBody jobs: submit, query, list, cancel, a timed state machine, and completion callbacks.

Modules, one concern each: ``facts`` (documented names, limits, time format), ``submit`` (SubmitJob parsing and
validation), ``record`` (the typed job record: bookkeeping apart from the JobsDetail it renders), ``engine`` (the
state machine and its public interface), ``output`` (what a successful job writes), ``callbacks`` (callback bodies
and delivery), ``listing`` (the list filters), ``loop`` (the bridge to the server loop), ``handlers`` (HTTP).
"""

from __future__ import annotations

from .callbacks import CallbackVariants
from .engine import DEFAULT_WORKFLOW_NAME, JobEngine
from .handlers import handle_cancel, handle_create, handle_describe, handle_list, start_workflow_job

__all__ = [
    "DEFAULT_WORKFLOW_NAME",
    "CallbackVariants",
    "JobEngine",
    "handle_cancel",
    "handle_create",
    "handle_describe",
    "handle_list",
    "start_workflow_job",
]
