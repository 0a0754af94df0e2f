"""The transformer family every model is read into: config, torch module, traced forward.

One architecture hosts tracr-compiled and gradient-trained small transformers:
token and positional embeddings, `n_layers` blocks of multi-head attention then
an MLP (each added to the residual stream, optionally pre-LayerNorm), and an
unembedding onto the output space. Weight and activation names follow
TransformerLens, so `blocks.0.attn.W_Q` and `blocks.0.attn.hook_pattern` mean
what a user of that library expects.

Token ids: id `i < len(vocab)` is `vocab[i]`; id `len(vocab)` is BOS; id
`len(vocab) + 1` is PAD (padding of ragged batches; PAD positions are masked out
as attention keys and their outputs are discarded). Position 0 always holds BOS.
Special tokens other than BOS and PAD (a separator, an end-of-sequence mark) are
ordinary vocab entries: the model reads them like any token, and a model's task
record (`distill.models.task`) says which entries are special.

Positions: learned position embeddings used at an offset of 0: the BOS at
position 0 adds `W_pos[0]`, the i-th input token `W_pos[i]` (as GPT-2 and
TransformerLens number them when the sequence starts with BOS).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import torch

from distill.errors import BadInputError
from distill.models.numerics import RESOLUTION

FORMAT_VERSION = 1
ACT_FNS = ("relu", "gelu", "gelu_new")
NORMALIZATIONS = (None, "LN")
OUTPUT_KINDS = ("categorical", "numerical")
# The default LayerNorm epsilon: GPT-2's layer_norm_epsilon and TransformerLens' eps.
LN_EPS = 1e-5
DEFAULT_BATCH_SIZE = 8192
# Token and output values a config may hold: what JSON stores without loss.
VALUE_TYPES = (str, int, float, bool)


class ModelConfigError(BadInputError):
    """A model configuration with a field of the wrong type or out of range."""


@dataclass(frozen=True)
class ModelConfig:
    """The architecture and the input/output spec of a model (stored in its file)."""

    n_layers: int
    """Number of blocks (attention then MLP)."""
    d_model: int
    """Width of the residual stream."""
    n_heads: int
    """Attention heads per block (unused heads have zero weights)."""
    d_head: int
    """Width of each head's queries, keys and values; scores are scaled by 1/sqrt(d_head)."""
    d_mlp: int
    """Hidden units per MLP (unused units have zero weights)."""
    n_ctx: int
    """Positions the model can see, BOS included: max_seq_len + 1."""
    act_fn: str
    """MLP activation: "relu", "gelu" (the exact, erf-based GELU) or "gelu_new" (GPT-2's tanh
    approximation, 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))))."""
    normalization: str | None
    """None, or "LN": pre-LayerNorm before attention, MLP and unembedding."""
    causal: bool
    """Whether a query position attends only to itself and earlier positions."""
    vocab: tuple
    """Input token values; token id i is vocab[i], then BOS, then PAD."""
    bos: str
    """The name of the beginning-of-sequence token (never in vocab)."""
    max_seq_len: int
    """Longest input, BOS excluded."""
    output_kind: str
    """"categorical" (argmax over output_values) or "numerical" (one value per position)."""
    output_values: tuple = ()
    """The values a categorical output decodes to, in unembedding order; () if numerical."""
    format_version: int = FORMAT_VERSION
    """Version of the model file format this config belongs to."""
    ln_eps: float = LN_EPS
    """The epsilon every LayerNorm adds to the variance (used when normalization is "LN")."""
    tied_unembed: bool = False
    """Whether the unembedding is the token embedding transposed: output value j is token id j
    (output_values is a prefix of vocab + (bos,)) and W_U = W_E[:d_out].T. W_U is still stored,
    and a model file whose W_U differs from it is refused (`file_format.load_model`)."""

    def __post_init__(self):
        problems = config_problems(self)
        if problems:
            raise ModelConfigError("; ".join(problems))

    @property
    def d_vocab(self) -> int:
        """Rows of the token embedding: the vocab, BOS and PAD."""
        return len(self.vocab) + 2

    @property
    def bos_id(self) -> int:
        return len(self.vocab)

    @property
    def pad_id(self) -> int:
        return len(self.vocab) + 1

    @property
    def d_out(self) -> int:
        """Width of the unembedding: one score per output value, or one number."""
        return len(self.output_values) if self.output_kind == "categorical" else 1


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_value(value) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, VALUE_TYPES)


def config_problems(config: ModelConfig) -> list[str]:
    """Every way `config` is invalid, as `field: expected ..., got ...` lines."""
    problems = []

    def expect(name, ok, expected):
        if not ok:
            problems.append(f"{name}: expected {expected}, got {getattr(config, name)!r}")

    for name in ("n_layers", "d_model", "n_heads", "d_head", "d_mlp", "max_seq_len"):
        value = getattr(config, name)
        expect(name, _is_int(value) and value >= 1, "a positive integer")
    expect(
        "format_version",
        _is_int(config.format_version) and config.format_version == FORMAT_VERSION,
        f"{FORMAT_VERSION}",
    )
    expect("act_fn", config.act_fn in ACT_FNS, _one_of(ACT_FNS))
    expect("normalization", config.normalization in NORMALIZATIONS, "null or 'LN'")
    expect("causal", isinstance(config.causal, bool), "true or false")
    expect("bos", isinstance(config.bos, str) and config.bos != "", "a non-empty string")
    expect("output_kind", config.output_kind in OUTPUT_KINDS, " or ".join(map(repr, OUTPUT_KINDS)))
    vocab_ok = (
        isinstance(config.vocab, tuple)
        and len(config.vocab) >= 1
        and all(_is_value(v) for v in config.vocab)
        and _distinct(config.vocab)
        and config.bos not in config.vocab
    )
    expect("vocab", vocab_ok, "a non-empty list of distinct strings or numbers, without bos")
    if _is_int(config.max_seq_len):
        expect(
            "n_ctx",
            _is_int(config.n_ctx) and config.n_ctx == config.max_seq_len + 1,
            f"max_seq_len + 1 = {config.max_seq_len + 1}",
        )
    if config.output_kind == "categorical":
        values_ok = (
            isinstance(config.output_values, tuple)
            and len(config.output_values) >= 1
            and all(v is None or _is_value(v) for v in config.output_values)
            and _distinct(config.output_values)
        )
        expect("output_values", values_ok, "a non-empty list of distinct values")
    elif config.output_kind == "numerical":
        expect("output_values", config.output_values == (), "an empty list for numerical output")
    expect(
        "ln_eps",
        isinstance(config.ln_eps, float) and math.isfinite(config.ln_eps) and config.ln_eps > 0,
        "a positive finite number",
    )
    expect("tied_unembed", isinstance(config.tied_unembed, bool), "true or false")
    if config.tied_unembed is True:
        tokens = (*config.vocab, config.bos) if isinstance(config.vocab, tuple) else ()
        expect(
            "output_values",
            config.output_kind == "categorical"
            and config.output_values == tokens[: len(config.output_values)],
            "with tied_unembed, the first tokens of vocab + (bos,) in order (output j is token j)",
        )
    return problems


def _one_of(names: tuple) -> str:
    quoted = [repr(name) for name in names]
    return ", ".join(quoted[:-1]) + " or " + quoted[-1]


def _distinct(values: tuple) -> bool:
    # 1 == True == 1.0 in Python; values that compare equal cannot be told apart.
    try:
        return len(set(values)) == len(values)
    except TypeError:
        return False


class HookPoint(torch.nn.Module):
    """An identity at a named activation; `run_with_trace` hooks the ones asked for."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class LayerNorm(torch.nn.Module):
    def __init__(self, d_model: int, eps: float = LN_EPS):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(d_model))
        self.b = torch.nn.Parameter(torch.zeros(d_model))
        self.eps = eps
        self.hook_normalized = HookPoint()  # [batch, pos, d_model]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x - x.mean(-1, keepdim=True)
        x = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.hook_normalized(x * self.w + self.b)


class Attention(torch.nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        h, d, k = config.n_heads, config.d_model, config.d_head
        self.W_Q = torch.nn.Parameter(torch.zeros(h, d, k))
        self.W_K = torch.nn.Parameter(torch.zeros(h, d, k))
        self.W_V = torch.nn.Parameter(torch.zeros(h, d, k))
        self.W_O = torch.nn.Parameter(torch.zeros(h, k, d))
        self.b_Q = torch.nn.Parameter(torch.zeros(h, k))
        self.b_K = torch.nn.Parameter(torch.zeros(h, k))
        self.b_V = torch.nn.Parameter(torch.zeros(h, k))
        self.b_O = torch.nn.Parameter(torch.zeros(d))
        self.scale = 1.0 / math.sqrt(k)
        self.hook_q = HookPoint()  # [batch, pos, head, d_head]
        self.hook_k = HookPoint()  # [batch, pos, head, d_head]
        self.hook_v = HookPoint()  # [batch, pos, head, d_head]
        self.hook_attn_scores = HookPoint()  # [batch, head, query, key], masked
        self.hook_pattern = HookPoint()  # [batch, head, query, key]
        self.hook_z = HookPoint()  # [batch, pos, head, d_head]
        self.hook_result = HookPoint()  # [batch, pos, head, d_model], b_O excluded

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """x [batch, pos, d_model]; allowed [batch, 1, query, key] -> [batch, pos, d_model]."""
        q = self.hook_q(torch.einsum("bpd,hdk->bphk", x, self.W_Q) + self.b_Q)
        k = self.hook_k(torch.einsum("bpd,hdk->bphk", x, self.W_K) + self.b_K)
        v = self.hook_v(torch.einsum("bpd,hdk->bphk", x, self.W_V) + self.b_V)
        scores = torch.einsum("bqhk,bthk->bhqt", q, k) * self.scale
        # A finite floor, not -inf: a row with every key masked stays finite.
        scores = self.hook_attn_scores(scores.masked_fill(~allowed, torch.finfo(scores.dtype).min))
        pattern = self.hook_pattern(_softmax(scores))
        z = self.hook_z(torch.einsum("bhqt,bthk->bqhk", pattern, v))
        if self.hook_result._forward_hooks:  # per-head outputs cost heads x memory: only on request
            result = self.hook_result(torch.einsum("bqhk,hkd->bqhd", z, self.W_O))
            return result.sum(dim=2) + self.b_O
        return torch.einsum("bqhk,hkd->bqd", z, self.W_O) + self.b_O


def _softmax(scores: torch.Tensor) -> torch.Tensor:
    if scores.requires_grad:  # training: autograd cannot differentiate the in-place version
        return torch.softmax(scores, dim=-1)
    # torch.softmax's CPU kernel pays per row: on rows of a dozen keys this is 4x faster.
    exp = (scores - scores.amax(-1, keepdim=True)).exp_()
    return exp.div_(exp.sum(-1, keepdim=True))


ACTIVATIONS = {
    "relu": torch.nn.ReLU,
    "gelu": torch.nn.GELU,
    "gelu_new": lambda: torch.nn.GELU(approximate="tanh"),
}


class MLP(torch.nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.W_in = torch.nn.Parameter(torch.zeros(config.d_model, config.d_mlp))
        self.b_in = torch.nn.Parameter(torch.zeros(config.d_mlp))
        self.W_out = torch.nn.Parameter(torch.zeros(config.d_mlp, config.d_model))
        self.b_out = torch.nn.Parameter(torch.zeros(config.d_model))
        self.act = ACTIVATIONS[config.act_fn]()
        self.hook_pre = HookPoint()  # [batch, pos, d_mlp]
        self.hook_post = HookPoint()  # [batch, pos, d_mlp]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (
            torch.is_grad_enabled() or self.hook_pre._forward_hooks or self.hook_post._forward_hooks
        ):
            live = self._live()
            if live is not None:
                return self._forward_live(x, *live)
        pre = self.hook_pre(x @ self.W_in + self.b_in)
        return self.hook_post(self.act(pre)) @ self.W_out + self.b_out

    def _live(self):
        """(residual dimensions read, units that can write, dimensions written) when at
        most half the units can write (a compiled MLP of a wide model: most of its units
        belong to no value it computes); None for a dense MLP. Reads and writes are all
        dimensions unless they too are at most half (an unrotated compiled model)."""
        units = ((self.W_in != 0).any(dim=0) | (self.b_in != 0)) & (self.W_out != 0).any(dim=1)
        if int(units.sum()) * 2 > units.numel():
            return None
        reads = (self.W_in[:, units] != 0).any(dim=1)
        writes = (self.W_out[units] != 0).any(dim=0)
        every = slice(None)
        return (
            reads if int(reads.sum()) * 2 <= reads.numel() else every,
            units,
            writes if int(writes.sum()) * 2 <= writes.numel() else every,
        )

    def _forward_live(self, x, reads, units, writes) -> torch.Tensor:
        """The forward pass on the live units only (inference without hooks): the others
        contribute exact zeros (act(0) = 0, or a zero row of W_out)."""
        pre = x[..., reads] @ self.W_in[reads][:, units] + self.b_in[units]
        out = self.b_out.expand(*x.shape[:-1], -1).clone()
        out[..., writes] += self.act(pre) @ self.W_out[units][:, writes]
        return out


class Block(torch.nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.normalization == "LN":
            self.ln1 = LayerNorm(config.d_model, config.ln_eps)
            self.ln2 = LayerNorm(config.d_model, config.ln_eps)
        else:
            self.ln1 = self.ln2 = torch.nn.Identity()
        self.attn = Attention(config)
        self.mlp = MLP(config)
        self.hook_resid_pre = HookPoint()  # [batch, pos, d_model]
        self.hook_attn_out = HookPoint()  # [batch, pos, d_model]
        self.hook_resid_mid = HookPoint()  # [batch, pos, d_model]
        self.hook_mlp_out = HookPoint()  # [batch, pos, d_model]
        self.hook_resid_post = HookPoint()  # [batch, pos, d_model]

    def forward(self, resid: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        resid = self.hook_resid_pre(resid)
        resid = self.hook_resid_mid(resid + self.hook_attn_out(self.attn(self.ln1(resid), allowed)))
        return self.hook_resid_post(resid + self.hook_mlp_out(self.mlp(self.ln2(resid))))


class Embed(torch.nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.W_E = torch.nn.Parameter(torch.zeros(config.d_vocab, config.d_model))


class PosEmbed(torch.nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.W_pos = torch.nn.Parameter(torch.zeros(config.n_ctx, config.d_model))


class Unembed(torch.nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.W_U = torch.nn.Parameter(torch.zeros(config.d_model, config.d_out))
        self.b_U = torch.nn.Parameter(torch.zeros(config.d_out))


NamesFilter = None | Collection[str] | Callable[[str], bool]


class Model(torch.nn.Module):
    """A transformer of the family; parameters start at zero (load or import weights)."""

    def __init__(self, config: ModelConfig, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.config = config
        self.embed = Embed(config)
        self.pos_embed = PosEmbed(config)
        self.blocks = torch.nn.ModuleList(Block(config) for _ in range(config.n_layers))
        if config.normalization == "LN":
            self.ln_final = LayerNorm(config.d_model, config.ln_eps)
        self.unembed = Unembed(config)
        self.hook_embed = HookPoint()  # [batch, pos, d_model]
        self.hook_pos_embed = HookPoint()  # [batch, pos, d_model]
        # JSON sections stored beside the config in the model file, one per name
        # (e.g. "task": how the model is used; "training": the recipe that made it).
        self.records: dict[str, dict] = {}
        self.to(dtype)

    def save(self, path) -> None:
        """Write the model file (safetensors, config in the metadata); see `distill.load_model`."""
        from distill.models.file_format import save_model

        save_model(self, path)

    @property
    def hook_names(self) -> list[str]:
        """Every activation `run_with_trace` can record (module order)."""
        return [name for name, module in self.named_modules() if isinstance(module, HookPoint)]

    def forward(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """ids [batch, pos] (BOS first), mask [batch, pos] (False at PAD) -> out [batch, pos, d_out]."""
        if mask is None:
            mask = ids != self.config.pad_id
        n_pos = ids.shape[1]
        allowed = mask[:, None, None, :]  # [batch, 1, 1, key]
        if self.config.causal:
            allowed = allowed & torch.ones(n_pos, n_pos, dtype=torch.bool, device=ids.device).tril()
        resid = self.hook_embed(self.embed.W_E[ids]) + self.hook_pos_embed(
            self.pos_embed.W_pos[:n_pos].expand(ids.shape[0], -1, -1)
        )
        for block in self.blocks:
            resid = block(resid, allowed)
        if self.config.normalization == "LN":
            resid = self.ln_final(resid)
        return resid @ self.unembed.W_U + self.unembed.b_U

    def run_with_trace(
        self,
        ids: torch.Tensor,
        mask: torch.Tensor | None = None,
        names: NamesFilter = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Run a batch; return (out [batch, pos, d_out], {hook name: activation}).

        `names` picks the activations kept: None keeps all of `hook_names`, a
        collection keeps those names, a callable keeps the names it accepts.
        """
        wanted = self._select_hooks(names)
        trace: dict[str, torch.Tensor] = {}
        handles = []
        modules = dict(self.named_modules())
        try:
            for name in wanted:
                handles.append(modules[name].register_forward_hook(_recorder(trace, name)))
            with torch.no_grad():
                out = self(ids, mask)
        finally:
            for handle in handles:
                handle.remove()
        return out, trace

    def _select_hooks(self, names: NamesFilter) -> list[str]:
        available = self.hook_names
        if names is None:
            return available
        if callable(names):
            return [name for name in available if names(name)]
        if isinstance(names, str):
            names = [names]
        unknown = sorted(set(names) - set(available))
        if unknown:
            raise BadInputError(
                f"unknown trace name(s) {', '.join(unknown)}; expected names like "
                f"{', '.join(available[:4])}, ... (see Model.hook_names)"
            )
        return [name for name in available if name in set(names)]

    def encode(self, inputs: Sequence[Sequence]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token sequences -> (ids [batch, pos], mask [batch, pos]): BOS first, PAD after short inputs."""
        config = self.config
        token_ids = {value: i for i, value in enumerate(config.vocab)}
        rows = []
        for row, tokens in enumerate(inputs):
            if len(tokens) > config.max_seq_len:
                raise BadInputError(
                    f"input {row} has {len(tokens)} tokens; the model takes at most "
                    f"{config.max_seq_len}"
                )
            try:
                rows.append([token_ids[token] for token in tokens])
            except (KeyError, TypeError):
                bad = next(t for t in tokens if _lookup(token_ids, t) is None)
                raise BadInputError(
                    f"input {row}: token {bad!r} is not in the model's vocab "
                    f"({', '.join(map(str, config.vocab))})"
                ) from None
        longest = max(map(len, rows), default=0)
        ids = torch.full((len(rows), longest + 1), config.pad_id, dtype=torch.long)
        ids[:, 0] = config.bos_id
        if longest:
            padded = [row + [config.pad_id] * (longest - len(row)) for row in rows]
            ids[:, 1:] = torch.tensor(padded, dtype=torch.long)
        return ids, ids != config.pad_id

    def predict(
        self, inputs: Sequence[Sequence], batch_size: int = DEFAULT_BATCH_SIZE
    ) -> list[list]:
        """Decoded outputs per input, BOS position stripped (argmax value, or the number)."""
        results: list[list] = []
        for start in range(0, len(inputs), batch_size):
            chunk = inputs[start : start + batch_size]
            ids, mask = self.encode(chunk)
            device = self.embed.W_E.device
            with torch.no_grad():
                out = self(ids.to(device), mask.to(device))
            results.extend(self.decode(out, [len(tokens) for tokens in chunk]))
        return results

    def decode(self, out: torch.Tensor, lengths: Sequence[int]) -> list[list]:
        """out [batch, pos, d_out] -> per input, the values at positions 1..length."""
        if self.config.output_kind == "numerical":
            rows = out[:, 1:, 0].tolist()
        else:
            values = self.config.output_values
            rows = [[values[i] for i in row] for row in self.output_indices(out)[:, 1:].tolist()]
        return [row[:length] for row, length in zip(rows, lengths)]

    def output_indices(self, out: torch.Tensor) -> torch.Tensor:
        """Categorical out [batch, pos, d_out] -> [batch, pos] index of the decoded output value.

        Scores within the numerical resolution of the maximum are tied, and a tie goes to
        the first output value: tracr's argmax does exactly that for an aggregate that
        selects nothing (an all-zero output, up to its attention's leak); in another
        residual basis a plain argmax would pick an arbitrary value there.
        """
        tied = out >= out.max(-1, keepdim=True).values - RESOLUTION
        return tied.to(torch.int8).argmax(-1)  # argmax returns the first maximum


def _lookup(token_ids: dict, token):
    try:
        return token_ids.get(token)
    except TypeError:  # an unhashable token
        return None


def _recorder(trace: dict, name: str):
    def record(module, args, output):
        trace[name] = output.detach()

    return record


def parameter_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The name and shape of every tensor a model of `config` has, without allocating it."""
    with torch.device("meta"):
        model = Model(config)
    return {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}


__all__ = [
    "FORMAT_VERSION",
    "Model",
    "ModelConfig",
    "ModelConfigError",
    "parameter_shapes",
]
