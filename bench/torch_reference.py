"""PyTorch reference of one figure workload, for `cargo xtask bench`.

Same computation as jax_reference.py, in eager PyTorch with autograd and
batched matmuls over the ensemble; prints one line:
    torch <seconds per network-step>
Install: pip install torch   (the registry's wheel pulls its CUDA libraries,
about 2.8 GB; the CPU-only wheel from download.pytorch.org is much smaller)
"""
import json
import sys
import time

import torch

torch.set_num_threads(1)


def main():
    w = json.load(open(sys.argv[1]))
    e, n, d, steps, repeats = w["members"], w["points"], w["dim"], w["steps"], w["repeats"]
    init = [torch.tensor(layer, dtype=torch.float32).reshape(e, o, i) for (o, i), layer in zip(w["shapes"], w["layers"])]
    x = torch.tensor(w["x"], dtype=torch.float32).reshape(e, n, d)
    y = torch.tensor(w["y"], dtype=torch.float32).reshape(e, n)
    lr = w["learning_rate"]
    hinge = w["loss"] == "hinge"

    def run():
        ps = [p.clone().requires_grad_(True) for p in init]
        for _ in range(steps):
            h = x
            for l, p in enumerate(ps):
                h = torch.bmm(h, p.transpose(1, 2))
                if l + 1 < len(ps):
                    h = torch.relu(h)
            m = h[:, :, 0] * y
            per_point = torch.relu(1.0 - m) if hinge else torch.nn.functional.softplus(-m)
            # Summed over members: each member's gradient is its own mean loss's.
            total = per_point.mean(dim=1).sum()
            grads = torch.autograd.grad(total, ps)
            with torch.no_grad():
                ps = [(p - lr * g).requires_grad_(True) for p, g in zip(ps, grads)]
        return ps

    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    times.sort()
    print("torch", times[len(times) // 2] / (steps * e))


if __name__ == "__main__":
    main()
