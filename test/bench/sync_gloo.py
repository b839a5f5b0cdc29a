"""PyTorch gloo all-reduce of PARAMS float32 between WORLD processes: the anchor of bench:sync.

Usage: /usr/bin/python3 sync_gloo.py RANK WORLD MASTER_ADDR PORT PARAMS WARMUP ROUNDS
Each round: a barrier, then all_reduce(SUM) timed on every rank; the round's time is the slowest rank's
(a MAX all-reduce of one float). Rank 0 prints {"seconds": median} as its last line.
"""
import json
import statistics
import sys
import time

import torch
import torch.distributed as dist

rank, world, addr, port, params, warmup, rounds = sys.argv[1:8]
rank, world, params, warmup, rounds = int(rank), int(world), int(params), int(warmup), int(rounds)
torch.set_num_threads(1)
dist.init_process_group('gloo', init_method=f'tcp://{addr}:{port}', rank=rank, world_size=world)
t = torch.full((params,), 1e-3, dtype=torch.float32)
times = []
for r in range(warmup + rounds):
    dist.barrier()
    t0 = time.perf_counter()
    dist.all_reduce(t)
    dt = torch.tensor([time.perf_counter() - t0], dtype=torch.float64)
    dist.all_reduce(dt, op=dist.ReduceOp.MAX)
    if r >= warmup:
        times.append(float(dt[0]))
    t.fill_(1e-3)
if rank == 0:
    print(json.dumps({'seconds': statistics.median(times)}), flush=True)
dist.destroy_process_group()
