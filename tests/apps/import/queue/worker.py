import os

from runpod_flash import Endpoint, GpuGroup, remote

api = Endpoint(name="api", gpu=os.environ.get("GPU", "ADA_24"), workers=(1, 2), template="x")
jobs = Endpoint(name="jobs", gpu=GpuGroup.ADA_24)


@api.post("/run")
async def run(prompt: str, steps: int = 10) -> dict:
    return {"prompt": prompt, "steps": steps}


@remote(resource_config=jobs)
async def train(data: dict) -> dict:
    return data


@jobs
async def fine_tune(data: dict) -> dict:
    return data
