"""PyTorch reference for bench:gpu: the SE-ResNet-50 training step (forward, summed cross-entropy,
backward; 224 px, fp32, the fixture script's architecture with the project's default arguments) on
CUDA, in two modes: "fp32" (TF32 off for matmul and cuDNN: the numbers tfjs computes) and "default"
(PyTorch's defaults: cuDNN convolutions may use TF32 on Ampere and later). cudnn.benchmark on.

Prints one JSON line per mode as it goes: {"mode": ..., "imagesPerSec": ..., "seconds": ...}, or
{"error": ...} when torch or CUDA is missing. Usage: python3 torch_gpu.py BATCH SECONDS_BUDGET
"""
import json
import sys
import time
from pathlib import Path


def main():
    batch = int(sys.argv[1]) if len(sys.argv) > 1 else 32
    budget = float(sys.argv[2]) if len(sys.argv) > 2 else 120.0
    try:
        import torch
        import torch.nn.functional as F
    except Exception as e:  # noqa: BLE001
        print(json.dumps({"error": f"no torch: {e}"}), flush=True)
        return
    if not torch.cuda.is_available():
        print(json.dumps({"error": f"torch {torch.__version__} sees no CUDA device"}), flush=True)
        return
    here = Path(__file__).resolve().parent
    for p in (here.parent / "fixtures", here):
        sys.path.insert(0, str(p))
    from make_torch_reference import SENet  # noqa: E402

    dev = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    model = SENet(stages=(3, 4, 6, 3), widths=(64, 128, 256, 512), stem=64, expansion=4, se_reduction=16,
                  num_classes=8631, eps=1e-4).to(dev)
    model.train()
    x = torch.randn(batch, 3, 224, 224, device=dev) * 60
    y = torch.randint(0, 8631, (batch,), device=dev)
    info = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version()}
    print(json.dumps({"info": info}), flush=True)
    deadline = time.perf_counter() + budget
    for mode, tf32 in (("fp32", False), ("default", None)):
        if tf32 is None:
            torch.backends.cuda.matmul.allow_tf32 = False  # PyTorch's default since 1.12
            torch.backends.cudnn.allow_tf32 = True  # PyTorch's default
        else:
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.allow_tf32 = tf32
        times = []
        for i in range(25):
            if time.perf_counter() > deadline:
                break
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            model.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x)[1], y, reduction="sum")
            loss.backward()
            torch.cuda.synchronize()
            if i >= 3:  # cudnn.benchmark tries algorithms in the first steps
                times.append(time.perf_counter() - t0)
        if not times:
            print(json.dumps({"mode": mode, "error": "out of time"}), flush=True)
            continue
        times.sort()
        s = times[len(times) // 2]
        print(json.dumps({"mode": mode, "seconds": s, "imagesPerSec": batch / s, "steps": len(times)}), flush=True)


if __name__ == "__main__":
    main()
