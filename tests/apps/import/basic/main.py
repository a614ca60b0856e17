"""A runpod-flash app: a GPU and a CPU load-balanced endpoint in one file."""

from runpod_flash import Endpoint, GpuGroup

gpu_api = Endpoint(name="inference-api", gpu=GpuGroup.ADA_24, workers=(1, 5), idle_timeout=30)
cpu_api = Endpoint(name="data_api", cpu="cpu3c-2-4", workers=(0, 3))


@gpu_api.post("/predict")
async def predict(values: list[float], scale: float = 2.0) -> dict:
    return {"predictions": [v * scale for v in values]}


@gpu_api.get("/items/{item_id}")
async def get_item(item_id: int) -> dict:
    return {"item_id": item_id}


@cpu_api.post("/process")
async def process(input_data: dict) -> dict:
    """Process input data on a load-balanced CPU endpoint."""
    return {"status": "success", "echo": input_data}


@cpu_api.get("/health")
async def health() -> dict:
    return {"status": "healthy"}
