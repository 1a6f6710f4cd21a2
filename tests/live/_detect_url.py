"""How the smoke pre-encodes ``detect-url`` values before handing them to the hook.

The hook passes ``detect_url`` to requests as a query parameter, and requests percent-encodes it once. So the
value is pre-encoded ``times - 1`` times to put it on the wire encoded ``times`` times. The AIPortraitMatting seed
(/work/shared/seeds/ci-ai-portrait-matting.txt) gives ``http://www.example.com/abc.jpg`` as
``http%25253A%25252F%25252Fwww.example.com%25252Fabc.jpg``: three times. cos-python-sdk-v5
(``ci_recognize_logo_process``) and cos-go-sdk-v5 (go-querystring) encode once.
"""

from __future__ import annotations

from urllib.parse import quote

SEED_URL = "http://www.example.com/abc.jpg"
SEED_ON_THE_WIRE = "http%25253A%25252F%25252Fwww.example.com%25252Fabc.jpg"


def pre_encode(url: str, times: int) -> str:
    """``url`` percent-encoded ``times`` times (every reserved character, as requests' query encoding does)."""
    for _ in range(times):
        url = quote(url, safe="")
    return url
