# SPDX-License-Identifier: MIT
# hypercorn --bind 127.0.0.1:PORT hypercorn_app:app: the smallest ASGI app
# (lifespan, then "ok hypercorn <pid>" to every request).
import os


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            m = await receive()
            if m["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif m["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:
        m = await receive()
        more = m.get("more_body", False)
    body = ("ok hypercorn %d\n" % os.getpid()).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
