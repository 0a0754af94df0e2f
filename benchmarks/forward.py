"""Batched torch forward vs tracr, on the full domain of a compiled model.

tracr's lib.make_sort_unique(tokens, tokens), vocab 1..6, lengths 1..6: 55,986
inputs. Three timings in the same run, on the same batches (one length per
batch, as dsl.domain.enumerate_inputs gives them):

  ours   distill.from_tracr(...).predict on every batch (encode, forward, decode)
  (a)    tracr's assembled.apply in a loop over a 300-input sample, scaled to the domain
  (b)    tracr's haiku forward under jax.jit on every batch, decoded (compiled once
         per shape in a warm-up pass, which is timed separately)

Prints the ratios (a)/ours and (b)/ours.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import torch
from tracr.compiler import compiling, lib
from tracr.rasp import rasp

import distill
from dsl.domain import enumerate_inputs, sample_inputs

VOCAB = [1, 2, 3, 4, 5, 6]
MAX_LEN = 6
APPLY_SAMPLE = 300


def timed(function):
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def main() -> None:
    program = lib.make_sort_unique(rasp.tokens, rasp.tokens)
    assembled = compiling.compile_rasp_to_model(program, set(VOCAB), MAX_LEN, compiler_bos="BOS")
    batches = list(enumerate_inputs(VOCAB, MAX_LEN))
    n_inputs = sum(map(len, batches))
    print(
        f"model: make_sort_unique, {assembled.model_config.num_layers} layers, "
        f"residual {len(assembled.residual_labels)}, vocab 1..6, lengths 1..{MAX_LEN}: "
        f"{n_inputs:,} inputs in {len(batches)} batches"
    )

    model = distill.from_tracr(assembled, rotate=0)
    default_threads = torch.get_num_threads()
    ours, ours_default_s = timed(lambda: [out for batch in batches for out in model.predict(batch)])
    # On a shared machine torch's intra-op threads spin against other processes; one
    # thread is often faster for tensors this small. Both are shown; the ratios use the best.
    torch.set_num_threads(1)
    _, ours_one_s = timed(lambda: [out for batch in batches for out in model.predict(batch)])
    torch.set_num_threads(default_threads)
    ours_s = min(ours_default_s, ours_one_s)

    encode = assembled.input_encoder.encode
    decode = assembled.output_encoder.decode
    forward = jax.jit(assembled.forward)

    def tracr_jit():
        outputs = []
        for batch in batches:
            ids = jnp.asarray([encode(["BOS", *tokens]) for tokens in batch])
            unembedded = np.asarray(forward(assembled.params, ids).unembedded_output)
            outputs.extend(decode(row[1:].tolist()) for row in unembedded)
        return outputs

    _, jit_first_s = timed(tracr_jit)  # compiles once per length
    theirs, jit_s = timed(tracr_jit)

    sample = sample_inputs(VOCAB, MAX_LEN, APPLY_SAMPLE, seed=0)
    _, apply_s = timed(lambda: [assembled.apply(["BOS", *tokens]) for tokens in sample])
    apply_scaled_s = apply_s / APPLY_SAMPLE * n_inputs

    agree = sum(a == b for a, b in zip(ours, theirs))
    print(
        f"ours   (torch, batched)          {ours_s:9.3f} s  "
        f"({default_threads} threads {ours_default_s:.3f} s, 1 thread {ours_one_s:.3f} s)"
    )
    print(f"(a)    tracr apply, 300 scaled   {apply_scaled_s:9.1f} s  ({apply_s:.2f} s measured)")
    print(
        f"(b)    tracr jit forward, warm   {jit_s:9.3f} s  (first pass with compiles {jit_first_s:.2f} s)"
    )
    print(
        f"ratio (a)/ours: {apply_scaled_s / ours_s:,.0f}x   ratio (b)/ours: {jit_s / ours_s:.2f}x"
    )
    print(
        f"decoded outputs equal to tracr's on {agree:,} of {n_inputs:,} inputs. Inputs with "
        "repeated tokens leave sort_unique undefined: tracr's scores tie and its argmax follows "
        "float noise, ours takes the first value (tests/test_model_tracr.py checks every position "
        "where tracr's scores decide)"
    )


if __name__ == "__main__":
    main()
