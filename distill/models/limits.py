"""Every size a model file, a compile and a `distill run` may reach, in one place.

Each limit is checked before the work it bounds starts, and the refusal names
the limit (`distill.models.limits.NAME`). They are generous for real use: the
trained GPT-2-style models the project imports have 1-4 layers, d_model up to
256, vocabularies of ~50 and contexts of a few hundred positions. What is
bounded tightly is work actually done (inputs traced and checked, evidence held
in memory), never the sizes a user needs to describe a model.

A model file may describe a longer context or a larger vocabulary than a check
enumerates or a program is typed over: those work limits are `dsl.limits`'
(longest input 512, vocabulary 1,000), applied when the work starts.
"""

from __future__ import annotations

# --- the file itself -------------------------------------------------------------------------
MAX_HEADER_BYTES = 16 * 1024**2
"""The safetensors header (tensor table and metadata); a 4-layer model's is a few KiB."""
MAX_CONFIG_BYTES = 1024**2
"""The JSON config in the header metadata."""
MAX_CONFIG_DEPTH = 3
"""Nesting of the JSON config: an object of scalars and flat lists (vocab, output values)."""
MAX_TENSORS = 8192
"""Tensors in one file: at most 16 per layer and a few more (MAX_LAYERS x 16 + 4 fit)."""

# --- the architecture ------------------------------------------------------------------------
MAX_LAYERS = 256
"""Blocks (attention + MLP). Loading costs time per layer, so this is checked first."""
MAX_D_MODEL = 16_384
MAX_HEADS = 256
MAX_D_HEAD = 4096
MAX_D_MLP = 65_536
MAX_PARAMETERS = 500_000_000
"""Weights in all (2 GB at float32); GPT-2 small has 124 M."""

# --- what a model file may declare (work over it is bounded by dsl.limits) ----------------------
MAX_SEQ_LEN = 8192
"""Longest input a model file may declare (n_ctx = MAX_SEQ_LEN + 1); GPT-2 has 1024."""
MAX_VOCAB = 65_536
"""Input tokens (and categorical output values) a model file may declare; GPT-2 has 50,257."""

# --- work done by `distill compile` (tracr builds one-hot spaces and MLP tables over these) ---
MAX_COMPILE_SEQ_LEN = 256
"""--max-len of a compile: tracr's indices space and numerical MLP tables grow with it."""
MAX_COMPILE_VOCAB = 1024
"""--vocab size of a compile: tracr's token space and categorical MLP tables grow with it."""

# --- work done by `distill run` ------------------------------------------------------------------
MAX_TRACE_VALUES = 1_000_000_000
"""Activation values the evidence holds in memory: traced inputs x positions x values recorded
per position (4 GB at float32). The traced inputs are min(domain size, evidence_inputs)."""
MAX_ATTENTION_SCORES = 2_000_000_000_000
"""Attention scores computed by tracing and checking: inputs x positions^2 x heads x layers
(hours on a CPU past this)."""

NAMED = {
    name: value
    for name, value in dict(globals()).items()
    if name.startswith("MAX_") and isinstance(value, int)
}


def limit_name(name: str) -> str:
    return f"distill.models.limits.{name}"


def architecture_problems(fields: dict) -> list[str]:
    """Sizes in a (type-checked) model config over their limits, as `field: ...` lines.

    `fields` holds the config's values; only integer values are compared (a value of the
    wrong type is reported by the config check itself).
    """
    bounds = {
        "n_layers": "MAX_LAYERS",
        "d_model": "MAX_D_MODEL",
        "n_heads": "MAX_HEADS",
        "d_head": "MAX_D_HEAD",
        "d_mlp": "MAX_D_MLP",
        "max_seq_len": "MAX_SEQ_LEN",
        "n_ctx": "MAX_SEQ_LEN",
    }
    problems = []
    for field, limit in bounds.items():
        value = fields.get(field)
        bound = NAMED[limit] + (field == "n_ctx")
        if _is_int(value) and value > bound:
            problems.append(f"{field}: {value} is over the limit {bound} ({limit_name(limit)})")
    for field in ("vocab", "output_values"):
        value = fields.get(field)
        if isinstance(value, list | tuple) and len(value) > MAX_VOCAB:
            problems.append(
                f"{field}: {len(value)} values, over the limit {MAX_VOCAB} "
                f"({limit_name('MAX_VOCAB')})"
            )
    return problems


def parameter_count(shapes: dict[str, tuple[int, ...]]) -> int:
    total = 0
    for shape in shapes.values():
        count = 1
        for size in shape:
            count *= size
        total += count
    return total


def domain_size(vocab_size: int, max_len: int, cap: int) -> int:
    """Inputs of length 1..max_len over vocab_size tokens, or `cap` + 1 once past `cap`."""
    total, power = 0, 1
    for _ in range(max_len):
        power *= vocab_size
        total += power
        if total > cap:
            return cap + 1
    return total


def run_work_problems(
    *,
    n_layers: int,
    d_model: int,
    n_heads: int,
    d_mlp: int,
    n_ctx: int,
    vocab_size: int,
    max_seq_len: int,
    evidence_inputs: int,
    exhaustive_limit: int,
    samples: int,
) -> list[str]:
    """The work `distill run` would do on a model of these sizes, against the limits above."""
    cap = max(evidence_inputs, exhaustive_limit, samples)
    domain = domain_size(vocab_size, max_seq_len, cap)
    traced = min(domain, evidence_inputs)
    checked = domain if domain <= exhaustive_limit else samples
    per_position = n_layers * (3 * d_model + n_heads * n_ctx + d_mlp) + 2 * d_model
    problems = []
    held = traced * n_ctx * per_position
    if held > MAX_TRACE_VALUES:
        problems.append(
            f"tracing {traced:,} inputs of up to {n_ctx} positions would hold {held:,} "
            f"activation values, over the limit {MAX_TRACE_VALUES:,} "
            f"({limit_name('MAX_TRACE_VALUES')})"
        )
    scores = (traced + checked) * n_ctx * n_ctx * n_heads * n_layers
    if scores > MAX_ATTENTION_SCORES:
        problems.append(
            f"tracing and checking {traced + checked:,} inputs of up to {n_ctx} positions would "
            f"compute {scores:,} attention scores, over the limit {MAX_ATTENTION_SCORES:,} "
            f"({limit_name('MAX_ATTENTION_SCORES')})"
        )
    return problems


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
