"""numpy + sklearn reference for bench:eval (test/bench/eval.ts), run with /usr/bin/python3.

Reads the bench's files from DIR: features.f32 (float32 [templates x dim]), t1.i32, t2.i32 (int32 pair
template indices), labels.u8 (1 genuine, 0 impostor), meta.json ({"templates", "dim"}). Scores every pair
as the dot product of its two rows -- in chunks of pairs, np.einsum('ij,ij->i', F[t1], F[t2]) (float32,
as the authors' numpy evaluation would) -- then sklearn.metrics.roc_curve(drop_intermediate=False) and
TAR@FAR under roc.ts's rule (last ROC point with FAR <= target; null with fewer than ceil(10 / far)
impostors). Writes the scores to DIR/scores_numpy.f32 for the comparison and prints one JSON line:
{"scoreSeconds", "rocSeconds", "seconds", "tarAtFar": [{"far", "tar", "threshold"}]}.

    /usr/bin/python3 test/bench/eval_numpy.py DIR
"""
import json
import math
import os
import sys
import time

import numpy as np
from sklearn.metrics import roc_curve

CHUNK = 8192
FARS = [1e-4, 1e-3, 1e-2]


def main(d):
    meta = json.load(open(os.path.join(d, 'meta.json')))
    F = np.fromfile(os.path.join(d, 'features.f32'), dtype=np.float32).reshape(meta['templates'], meta['dim'])
    t1 = np.fromfile(os.path.join(d, 't1.i32'), dtype=np.int32)
    t2 = np.fromfile(os.path.join(d, 't2.i32'), dtype=np.int32)
    labels = np.fromfile(os.path.join(d, 'labels.u8'), dtype=np.uint8)

    t0 = time.perf_counter()
    scores = np.empty(len(t1), dtype=np.float32)
    for s in range(0, len(t1), CHUNK):
        scores[s:s + CHUNK] = np.einsum('ij,ij->i', F[t1[s:s + CHUNK]], F[t2[s:s + CHUNK]])
    t_score = time.perf_counter() - t0

    t0 = time.perf_counter()
    fpr, tpr, thr = roc_curve(labels, scores, drop_intermediate=False)
    impostors = int(len(labels) - labels.sum())
    tars = []
    for far in FARS:
        if impostors < math.ceil(10 / far * (1 - 1e-12)):
            tars.append({'far': far, 'tar': None, 'threshold': None})
            continue
        i = int(np.searchsorted(fpr, far, side='right')) - 1
        tars.append({'far': far, 'tar': float(tpr[i]), 'threshold': float(thr[i])})
    t_roc = time.perf_counter() - t0

    scores.tofile(os.path.join(d, 'scores_numpy.f32'))
    print(json.dumps({'scoreSeconds': t_score, 'rocSeconds': t_roc, 'seconds': t_score + t_roc, 'tarAtFar': tars}))


if __name__ == '__main__':
    main(sys.argv[1])
