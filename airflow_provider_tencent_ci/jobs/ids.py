"""The shape of a CI JobId, checked before an id from outside (a callback) is put into a request path.

CI's JobIds are a letter followed by 32 hex digits (``ac7c990a00bf211ed946af9e0691f2b7a`` in the SegmentVideoBody
SubmitJob reply, /work/shared/seeds/ci-segment-video-body-submit-job.txt; ``j...`` ids in other CI job pages). The
rule here is deliberately wider (ASCII letters, digits, ``-`` and ``_``, at most 64), the safe reading: it refuses
everything that would change the meaning of ``GET /jobs/<id1,id2,...>`` (``,`` ``/`` ``?`` ``#`` ``%``, spaces)
without refusing an id format CI might introduce.
"""

from __future__ import annotations

import re

JOB_ID_MAX_LEN = 64
_JOB_ID_RE = re.compile(rf"[A-Za-z0-9_-]{{1,{JOB_ID_MAX_LEN}}}")
JOB_ID_RULE = f"a CI job id is 1..{JOB_ID_MAX_LEN} characters of A-Z a-z 0-9 _ -"


def is_job_id(value: object) -> bool:
    """True when ``value`` is a string in CI's JobId alphabet."""
    return isinstance(value, str) and _JOB_ID_RE.fullmatch(value) is not None


__all__ = ["JOB_ID_MAX_LEN", "JOB_ID_RULE", "is_job_id"]
