"""Hold idle connections to a port (a separate process: its descriptors are not the server's):

    python -m tests.reliability._idle_clients PORT COUNT [HEAD]

Opens COUNT connections from 127.0.0.1 that never send a byte (or only HEAD, the start of a request head that
never ends: a slowloris at rest), prints one line ``connected N``, then holds them until stdin closes.
"""

from __future__ import annotations

import socket
import sys

if __name__ == "__main__":
    port, count = int(sys.argv[1]), int(sys.argv[2])
    head = sys.argv[3].encode() if len(sys.argv) > 3 else b""
    held = []
    for _ in range(count):
        sock = socket.socket()
        sock.settimeout(10)
        sock.connect(("127.0.0.1", port))  # completes from the kernel's backlog, accepted or not
        if head:
            sock.sendall(head)
        held.append(sock)
    print(f"connected {len(held)}", flush=True)
    sys.stdin.read()
