import runpod_flash as rf

embedder = rf.Endpoint(
    name="embedder",
    gpu=[rf.GpuGroup.AMPERE_24, rf.GpuGroup.ADA_24],
    workers=(0, 2),
    dependencies=["numpy>=1.26"],
    env={"MODEL": "small", "TOKEN": "{{ RUNPOD_SECRET_hf }}"},
    datacenter="EU-RO-1",
)
