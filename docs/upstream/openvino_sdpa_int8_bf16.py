"""Minimal reproduction (OpenVINO CPU, AMX): ScaledDotProductAttention whose Q and K come through
FakeQuantize (levels=256, as NNCF PTQ emits) gives wrong results under the default bf16 inference precision
when the sequence length is 32; correct with INFERENCE_PRECISION_HINT=f32 and at other lengths.

usage: python repro_sdpa_int8_bf16.py [L ...]      (default: 16 31 32 33 64)
env:   REPRO_H (heads, 12), REPRO_D (head size, 32), REPRO_MASK (1: additive [1,1,L,L] mask input),
       REPRO_FQ (qk: FakeQuantize on q and k; q; k; none), REPRO_FQ_V (1: FakeQuantize on v too),
       REPRO_UNFUSED (1: MatMul-Softmax-MatMul instead of ScaledDotProductAttention),
       REPRO_STATIC (1: reshape to the static input shape and compile per length)
"""
import os, sys
import numpy as np
import openvino as ov
import openvino.opset13 as ops

H = int(os.environ.get("REPRO_H", 12)); D = int(os.environ.get("REPRO_D", 32))
MASK = os.environ.get("REPRO_MASK", "1") == "1"; FQ_V = os.environ.get("REPRO_FQ_V", "0") == "1"
FQ_QK = os.environ.get("REPRO_FQ", "qk")
UNFUSED = os.environ.get("REPRO_UNFUSED", "0") == "1"  # MatMul-Softmax-MatMul instead of the SDPA op
STATIC = os.environ.get("REPRO_STATIC", "0") == "1"  # compile one static-shape model per length  # which of q, k go through FakeQuantize


def fq(x, lo, hi):
    c = lambda v: ops.constant(np.float32(v))
    return ops.fake_quantize(x, c(lo), c(hi), c(lo), c(hi), 256)


def build():
    q = ops.parameter([1, H, -1, D], np.float32, name="q")
    k = ops.parameter([1, H, -1, D], np.float32, name="k")
    v = ops.parameter([1, H, -1, D], np.float32, name="v")
    params = [q, k, v]
    args = [fq(q, -6.87, 6.82) if "q" in FQ_QK else q, fq(k, -6.31, 6.26) if "k" in FQ_QK else k,
            fq(v, -4.0, 4.0) if FQ_V else v]
    if MASK:
        m = ops.parameter([1, 1, -1, -1], np.float32, name="mask")
        params.append(m)
        args.append(m)
    else:
        args.append(ops.constant(np.zeros((1, 1, 1, 1), np.float32)))
    args.append(ops.constant(np.float32(1 / np.sqrt(D))))
    if UNFUSED:
        s = ops.matmul(args[0], args[1], False, True)
        s = ops.multiply(s, args[4])
        s = ops.add(s, args[3])
        out = ops.matmul(ops.softmax(s, -1), args[2], False, False)
    else:
        out = ops.scaled_dot_product_attention(*args, causal=False)
    return ov.Model([out], params, "sdpa_fq")


def fq_np(x, lo, hi):
    s = (hi - lo) / 255
    return np.round((np.clip(x, lo, hi) - lo) / s) * s + lo


def reference(feeds):
    q = fq_np(feeds["q"], -6.87, 6.82) if "q" in FQ_QK else feeds["q"]
    k = fq_np(feeds["k"], -6.31, 6.26) if "k" in FQ_QK else feeds["k"]
    v = fq_np(feeds["v"], -4.0, 4.0) if FQ_V else feeds["v"]
    s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(D)
    if MASK:
        s = s + feeds["mask"]
    s = np.exp(s - s.max(-1, keepdims=True)); s /= s.sum(-1, keepdims=True)
    return s @ v


def main():
    lengths = [int(a) for a in sys.argv[1:]] or [16, 31, 32, 33, 64]
    core = ov.Core()
    print("openvino", ov.__version__, "| CPU caps", core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"),
          f"| H={H} D={D} mask={MASK} fq={FQ_QK} fq_v={FQ_V} unfused={UNFUSED}")
    model = build()

    def compile_all(m):
        return {name: core.compile_model(m, "CPU", cfg) for name, cfg in
                (("default(bf16)", {"PERF_COUNT": "YES"}), ("f32", {"INFERENCE_PRECISION_HINT": "f32", "PERF_COUNT": "YES"}))}
    compiled = compile_all(model)
    print("default INFERENCE_PRECISION_HINT:", compiled["default(bf16)"].get_property("INFERENCE_PRECISION_HINT"))
    rng = np.random.default_rng(0)
    for L in lengths:
        feeds = {"q": rng.normal(0, 2, (1, H, L, D)).astype(np.float32), "k": rng.normal(0, 2, (1, H, L, D)).astype(np.float32),
                 "v": rng.normal(0, 1, (1, H, L, D)).astype(np.float32)}
        if MASK:
            feeds["mask"] = np.zeros((1, 1, L, L), np.float32)
        ref = reference(feeds)
        if STATIC:
            m = build()
            m.reshape({p.get_any_name(): list(feeds[p.get_any_name()].shape) for p in m.inputs})
            compiled = compile_all(m)
        line = [f"L={L:4d}" + (" static" if STATIC else "")]
        for name, c in compiled.items():
            req = c.create_infer_request()
            got = np.array(req.infer(feeds)[c.outputs[0]])
            err = np.abs(got - ref).max()
            rel = np.linalg.norm(got - ref) / np.linalg.norm(ref)
            kern = sorted({f"{p.node_type}:{p.exec_type}" for p in req.get_profiling_info()
                           if p.status.name == "EXECUTED" and p.node_type not in ("Parameter", "Result", "Input", "Output")})
            line.append(f"{name}: max|err| {err:.3f} rel {rel:.4f} {'WRONG' if rel > 0.05 else 'ok'} [{', '.join(kern)}]")
        print("  ".join(line), flush=True)


if __name__ == "__main__":
    main()
