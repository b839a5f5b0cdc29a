"""PIL reference for bench:augment: the same training pipeline written with PIL (what the authors used),
one core: read + decode, p = 0.7 down to 2^k (k in 3..8) and back, shorter side 256, random 224 crop,
to a uint8 array. Run with /usr/bin/python3 (Debian's python3-pil, numpy). Prints JSON."""
import json
import os
import random
import sys
import time

import numpy as np
from PIL import Image

root = sys.argv[1]
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
rates = []
for _ in range(3):
    t0 = time.perf_counter()
    for f in files:
        pipeline(f)
    rates.append(len(files) / (time.perf_counter() - t0))
print(json.dumps({"imagesPerSec": sorted(rates)[1]}))
