"""The hand-written minimal Sanic app the generated worker is compared with."""

import os

from sanic import Sanic
from sanic.response import json

app = Sanic("bare")


@app.post("/echo")
async def echo(request):
    return json(request.json)


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ["PORT"]), single_process=True, access_log=False, motd=False)
