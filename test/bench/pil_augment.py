"""PIL reference for bench:augment: the same training pipeline written with PIL (what the authors used),
one core: read + decode, p = 0.7 down to 2^k (k in 3..8) and back, shorter side 256, random 224 crop,
to a uint8 array. Run with /usr/bin/python3 (Debian's python3-pil, numpy):

    pil_augment.py DIR [ROUNDS]

After a warm-up on 200 images, ROUNDS (default 3) passes over every image; prints one JSON line with the
median images/s of wall-clock time and of this process's CPU time, and every round's figures."""
import json
import os
import random
import sys
import time

import numpy as np
from PIL import Image

root = sys.argv[1]
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
files = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.lower().endswith(('.jpg', '.jpeg', '.png')))
rnd = random.Random(0)


def pipeline(path):
    img = Image.open(path).convert('RGB')
    w, h = img.size
    if rnd.random() < 0.7:
        side = 2 ** rnd.randint(3, 8)
        if min(w, h) > side:
            small = (side, int(side * h / w)) if w < h else (int(side * w / h), side)
            img = img.resize(small, Image.BILINEAR).resize((w, h), Image.BILINEAR)
    s = 256 / min(w, h)
    img = img.resize((max(256, int(w * s)), max(256, int(h * s))), Image.BILINEAR)
    x, y = rnd.randint(0, img.size[0] - 224), rnd.randint(0, img.size[1] - 224)
    return np.asarray(img.crop((x, y, x + 224, y + 224)))


for f in files[:200]:
    pipeline(f)  # warm-up
wall, cpu = [], []
for _ in range(rounds):
    t0, c0 = time.perf_counter(), time.process_time()
    for f in files:
        pipeline(f)
    wall.append(len(files) / (time.perf_counter() - t0))
    cpu.append(len(files) / (time.process_time() - c0))
print(json.dumps({"imagesPerSec": sorted(wall)[len(wall) // 2], "imagesPerCpuSec": sorted(cpu)[len(cpu) // 2],
                  "rounds": [round(r) for r in wall], "cpuRounds": [round(r) for r in cpu]}))
