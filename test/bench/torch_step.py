"""PyTorch reference for bench:step: one training step (forward, backward, SGD) of the small SE-ResNet
at batch 16, 64 px, one thread. Run with /usr/bin/python3 (Debian's python3-torch). Prints JSON."""
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fixtures"))
from make_torch_reference import SENet  # noqa: E402  (the fixture script's architecture)

torch.set_num_threads(1)
torch.manual_seed(0)
model = SENet(stages=(1, 1, 1, 1), widths=(16, 32, 64, 128), stem=16, expansion=4, se_reduction=16,
              num_classes=100, eps=1e-4)
model.train()
opt = torch.optim.SGD(model.parameters(), lr=5e-4, momentum=0.9, weight_decay=1e-5)
x = torch.randn(16, 3, 64, 64) * 60
y = torch.randint(0, 100, (16,))
times = []
for i in range(12):
    t0 = time.perf_counter()
    opt.zero_grad()
    loss = F.cross_entropy(model(x)[1], y, reduction="sum")
    loss.backward()
    opt.step()
    if i >= 2:
        times.append(time.perf_counter() - t0)
times.sort()
print(json.dumps({"seconds": times[len(times) // 2]}))
