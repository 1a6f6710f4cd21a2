"""Hold idle connections to a port (a separate process: its descriptors are not the listener's):

    python -m tests.reliability._idle_clients PORT COUNT

Opens COUNT connections from 127.0.0.1 that never send a byte, prints one line ``connected N``, then holds them
until stdin closes.
"""

from __future__ import annotations

import socket
import sys

if __name__ == "__main__":
    port, count = int(sys.argv[1]), int(sys.argv[2])
    held = []
    for _ in range(count):
        sock = socket.socket()
        sock.settimeout(10)
        sock.connect(("127.0.0.1", port))  # completes from the kernel's backlog, accepted or not
        held.append(sock)
    print(f"connected {len(held)}", flush=True)
    sys.stdin.read()
