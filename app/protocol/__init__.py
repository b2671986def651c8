"""Pure translation: the Responses API's objects, events and schemas, and each dialect's.

`responses/` is the Responses API (objects, the event emitter, SSE framing,
request schemas); `chat/` is Chat Completions (requests and history,
answers, stream turns, SSE parsing). Nothing here does I/O or imports
Flask, peewee, requests or prometheus: an ext_proc process uses it as is.
"""
