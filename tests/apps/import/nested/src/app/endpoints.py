from runpod_flash import CpuInstanceType, Endpoint

api = Endpoint(name="api", cpu=CpuInstanceType.CPU5C_2_4, workers=(0, 1))
