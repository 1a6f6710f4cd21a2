"""CI job callbacks: URL tokens, safe parsing, one transport-independent handling core, and the HTTP receiver.

- ``tokens``: the bearer token of a callback URL (a MAC over a random nonce with a server-side key).
- ``parsing``: what a callback body says (TaskFinish JobsDetail, WorkflowFinish WorkflowExecution; XML or JSON).
- ``core``: one request in, one status out (path -> token, token check, framing and size caps, body deadline,
  parsing, hand-off to registered triggers or the early buffer). Any receiver reuses it unchanged.
- ``server``: the in-triggerer receiver (h11 on asyncio streams, connection caps, header deadline).
"""
