"""The API-server callback receiver served the way ``airflow api-server`` serves it, in its own process:

    python -m tests.reliability._receiver_server PORT MAX_BODY_BYTES BODY_TIMEOUT_SECONDS

The receiver app (``plugins/callback_receiver.py``) is mounted under its plugin ``url_prefix`` on a parent FastAPI
app, as ``airflow/api_fastapi/app.py`` ``init_plugins`` does (``app.mount(url_prefix, subapp)``), and served by
uvicorn with the settings of ``airflow/cli/commands/api_server_command.py`` ``_run_api_server_with_uvicorn``
(Airflow 3.1.8 and 3.3.2): ``timeout_keep_alive`` and ``timeout_graceful_shutdown`` = ``--worker-timeout`` (default
120, ``cli_config.py`` ``ARG_API_SERVER_WORKER_TIMEOUT``), uvicorn's defaults for everything else (``http="auto"``:
httptools when installed, as it is with Airflow; ``loop="auto"``: uvloop; no ``limit_concurrency``; backlog 2048),
without TLS and proxy headers. The token key and the relay come from the environment (``[tencent_ci]``).
"""

from __future__ import annotations

import sys

API_SERVER_WORKER_TIMEOUT = 120
API_SERVER_UVICORN_SETTINGS = {
    "timeout_keep_alive": API_SERVER_WORKER_TIMEOUT,
    "timeout_graceful_shutdown": API_SERVER_WORKER_TIMEOUT,
    "access_log": False,
    "proxy_headers": False,
    "log_config": None,
}


def main(port: int, max_body_bytes: int, body_timeout: float) -> None:
    import uvicorn
    from fastapi import FastAPI

    from airflow_provider_tencent_ci.plugins import callback_receiver
    from airflow_provider_tencent_ci.triggers.callbacks.core import Limits

    app = FastAPI()
    receiver = callback_receiver.create_app(Limits(max_body_bytes=max_body_bytes, body_timeout=body_timeout))
    app.mount(callback_receiver.URL_PREFIX, receiver)
    uvicorn.run(app, host="127.0.0.1", port=port, **API_SERVER_UVICORN_SETTINGS)  # type: ignore[arg-type]


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]))
