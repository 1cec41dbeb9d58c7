"""A plain PyTorch all-reduce measurement, to cross-check the preflight's (pdfleet/allreduce_bench.py).

Deliberately different in method: started by torchrun, 4 GiB bf16 only, timed on the host over a loop of
back-to-back all-reduces (nccl-tests' way: total time / iterations) instead of per-iteration CUDA events and a
median. Same definition of bus bandwidth: algbw * 2 * (n - 1) / n.

    NCCL_NVLS_ENABLE=0 torchrun --nproc-per-node 8 benchmarks/allreduce_plain.py
"""

import json
import os
import time

import torch
import torch.distributed as dist

SIZE = 4096 << 20  # bytes
WARMUP, ITERATIONS = 5, 20

rank, world = int(os.environ["LOCAL_RANK"]), int(os.environ["WORLD_SIZE"])
torch.cuda.set_device(rank)
dist.init_process_group("nccl", device_id=torch.device("cuda", rank))
data = torch.zeros(SIZE // 2, dtype=torch.bfloat16, device="cuda")
for _ in range(WARMUP):
    dist.all_reduce(data)
torch.cuda.synchronize()
dist.barrier()
start = time.perf_counter()
for _ in range(ITERATIONS):
    dist.all_reduce(data)
torch.cuda.synchronize()
seconds = (time.perf_counter() - start) / ITERATIONS
algbw = SIZE / seconds / 1e9
if rank == 0:
    busbw = algbw * 2 * (world - 1) / world
    print(json.dumps({"world": world, "size_mb": SIZE >> 20, "time_us": seconds * 1e6, "busbw_gbs": busbw}))
dist.destroy_process_group()
