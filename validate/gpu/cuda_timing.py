"""CUDA-event timing shared by the PyTorch measurement scripts in this folder."""
import statistics


def timed(fn, warm, reps):
    """Calls ``fn`` (which enqueues GPU work) ``warm`` times, then times ``reps`` calls one by
    one with CUDA events; returns (median seconds, min seconds, reps)."""
    import torch
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) / 1e3)
    return statistics.median(times), min(times), reps
