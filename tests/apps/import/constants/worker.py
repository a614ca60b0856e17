"""runpod-flash's enums and objects as arguments: each becomes a value that validates, or is reported."""

from runpod_flash import CpuInstanceType, DataCenter, Endpoint, GpuGroup, GpuType, NetworkVolume

CACHE = "/runpod-volume/cache"
shared = NetworkVolume(id="agv6w2qcg7")

vision = Endpoint(
    name="vision",
    gpu=[GpuType.NVIDIA_L4, GpuGroup.ADA_24, GpuType.NVIDIA_GEFORCE_RTX_4090],
    datacenter=[DataCenter.EU_RO_1, DataCenter.US_MO_1],
    volume=[shared, NetworkVolume(name="scratch", size=20)],
    env={"CACHE": CACHE},
    execution_timeout_ms=0,
)
small = Endpoint(name="small", cpu=CpuInstanceType.CPU3G_1_4, workers=2)
anywhere = Endpoint(name="anywhere", workers=(0, 1))


@vision.post("/see")
async def see(image_url: str) -> dict:
    return {"url": image_url}


@small.get("/ping-me")
async def ping_me() -> dict:
    return {"ok": True}


@anywhere.post("/run")
async def run(prompt: str) -> dict:
    return {"prompt": prompt}
