"""The fidelity stage: held-out text and probes, metrics, and the deployment gate that judges every
precision (fp32 where a stock loader changes it, fp16, bf16, int8) against the fp32 reference."""
