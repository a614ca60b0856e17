"""FastAPI on uvicorn (runpod-flash's LB worker stack) with the same route."""

import os
from typing import Annotated

import uvicorn
from fastapi import Body, FastAPI
from pydantic import BaseModel

app = FastAPI()


class Item(BaseModel):
    name: str
    values: list[int]


@app.post("/echo")
async def echo(body: dict) -> dict:
    return body


@app.post("/model")
async def model(item: Item) -> Item:
    return item


@app.post("/keyword")  # several Body() parameters: FastAPI reads them as keys of one JSON object
async def keyword(
    name: Annotated[str, Body()], values: Annotated[list[int], Body()], flag: Annotated[bool, Body()] = False
) -> dict:
    return {"name": name, "values": values, "flag": flag}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning", access_log=False)
