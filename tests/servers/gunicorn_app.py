# SPDX-License-Identifier: MIT
# gunicorn -b 127.0.0.1:PORT -w 1 gunicorn_app:app (the sync worker);
# SIGHUP reloads: new workers, the old ones stop gracefully.
import os


def app(environ, start_response):
    body = ("ok gunicorn %d\n" % os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
