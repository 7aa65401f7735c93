"""JAX reference of one figure workload, for `cargo xtask bench`.

Reads the workload JSON written by the benchmark (ensemble weights, data,
loss, learning rate, steps), runs the same full-batch gradient descent of the
bias-free ReLU MLP ensemble in two ways, and prints one line each:
    scan <seconds per network-step>   jit + vmap over members + lax.scan over steps
    loop <seconds per network-step>   jit + vmap of one step, driven by a Python loop
Install: pip install jax   (CPU wheel, about 88 MB)
"""
import json
import sys
import time

import jax
import jax.numpy as jnp

jax.config.update("jax_platforms", "cpu")


def main():
    w = json.load(open(sys.argv[1]))
    e, n, d, steps, repeats = w["members"], w["points"], w["dim"], w["steps"], w["repeats"]
    params = [jnp.asarray(layer, jnp.float32).reshape(e, o, i) for (o, i), layer in zip(w["shapes"], w["layers"])]
    x = jnp.asarray(w["x"], jnp.float32).reshape(e, n, d)
    y = jnp.asarray(w["y"], jnp.float32).reshape(e, n)
    lr = w["learning_rate"]
    hinge = w["loss"] == "hinge"

    def loss(ps, x, y):
        h = x
        for l, p in enumerate(ps):
            h = h @ p.T
            if l + 1 < len(ps):
                h = jax.nn.relu(h)
        m = h[:, 0] * y
        per_point = jax.nn.relu(1.0 - m) if hinge else jax.nn.softplus(-m)
        return per_point.mean()

    def step(ps, x, y):
        g = jax.grad(loss)(ps, x, y)
        return [p - lr * gp for p, gp in zip(ps, g)]

    vstep = jax.vmap(step)

    @jax.jit
    def scan(ps):
        return jax.lax.scan(lambda ps, _: (vstep(ps, x, y), None), ps, None, length=steps)[0]

    one = jax.jit(vstep)

    def timed(f):
        jax.block_until_ready(f())  # compile and warm up
        best = []
        for _ in range(repeats):
            start = time.perf_counter()
            jax.block_until_ready(f())
            best.append(time.perf_counter() - start)
        best.sort()
        return best[len(best) // 2] / (steps * e)

    def loop():
        ps = params
        for _ in range(steps):
            ps = one(ps, x, y)
        return ps

    print("scan", timed(lambda: scan(params)))
    print("loop", timed(loop))


if __name__ == "__main__":
    main()
