"""Console DSP: pure, differentiable torch functions, batched over rows (tracks).

Each function takes and returns tensors with documented shapes and, where a processor
has memory, an explicit ``state`` so the console can stream long sessions in chunks
with output identical to processing the whole signal at once.
"""
