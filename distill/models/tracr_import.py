"""Import a tracr-compiled model into the family, dropping every residual label.

tracr's network (tracr/transformer/model.py): one-hot token and position
embeddings summed, then per layer attention (softmax of QK^T/sqrt(key_size),
masked keys at -1e30) and a ReLU MLP, each added to the residual, no layer
norm, then `residual @ res_to_out` onto the output space. `apply` runs one
unpadded input with BOS first, so PAD never occurs as a key there; our ragged
batches mask PAD keys, which gives the same function.

The unembedding is tracr's own `res_to_out` projection (read by running its
unembed module on the identity), not an identity over the residual
(TransformerLens issue #481).
"""

from __future__ import annotations

import numpy as np
import torch

from distill.errors import BadInputError
from distill.models.family import Model, ModelConfig


def from_tracr(assembled, rotate: int | None = None, dtype: torch.dtype = torch.float64) -> Model:
    """A `Model` computing what tracr's `AssembledTransformerModel` computes.

    `rotate=SEED` applies a seeded random orthogonal change of basis to the
    residual stream (every embedding, read, write and the unembedding): the
    function is unchanged and no weight is axis-aligned. The model keeps the
    input vocab and output values (the I/O spec) and no residual labels. The rotated
    weights stay in float64 (and are saved so): rounding them to float32 would perturb
    the function by float32's precision, which no tolerance could then tell from a fault.
    """
    config = _config(assembled)
    weights = _weights(assembled, config)
    if rotate is not None:
        weights = rotate_residual(
            weights, config.n_layers, random_orthogonal(config.d_model, rotate)
        )
    model = Model(config, dtype=dtype)
    model.load_state_dict({name: torch.from_numpy(array) for name, array in weights.items()})
    return model


def _config(assembled) -> ModelConfig:
    import jax

    tracr_config = assembled.model_config
    if tracr_config.layer_norm:
        raise BadInputError("from_tracr: expected a compiled model without layer norm")
    if tracr_config.activation_function is not jax.nn.relu:
        raise BadInputError("from_tracr: expected a compiled model with ReLU MLPs")
    encoder = assembled.input_encoder
    special = {encoder.bos_token, encoder.pad_token}
    by_id = sorted(encoder.encoding_map.items(), key=lambda item: item[1])
    categorical = assembled.output_encoder is not None and hasattr(
        assembled.output_encoder, "encoding_map"
    )
    n_ctx = np.asarray(assembled.params["pos_embed"]["embeddings"]).shape[0]
    return ModelConfig(
        n_layers=tracr_config.num_layers,
        d_model=len(assembled.residual_labels),
        n_heads=tracr_config.num_heads,
        d_head=tracr_config.key_size,
        d_mlp=tracr_config.mlp_hidden_size,
        n_ctx=n_ctx,
        act_fn="relu",
        normalization=None,
        causal=bool(tracr_config.causal),
        vocab=tuple(value for value, _ in by_id if value not in special),
        bos=encoder.bos_token,
        max_seq_len=n_ctx - 1,
        output_kind="categorical" if categorical else "numerical",
        output_values=tuple(
            value
            for value, _ in sorted(
                assembled.output_encoder.encoding_map.items(), key=lambda i: i[1]
            )
        )
        if categorical
        else (),
    )


def _unembedding(assembled, d_model: int) -> np.ndarray:
    """tracr's residual -> output projection [d_model, d_out], from its own unembed module."""
    import haiku as hk
    import jax.numpy as jnp

    @hk.without_apply_rng
    @hk.transform
    def project_identity():
        unembed = assembled.get_compiled_model().unembed
        return unembed(jnp.eye(d_model), use_unembed_argmax=False)

    return np.asarray(project_identity.apply({}), dtype=np.float64).reshape(d_model, -1)


def _weights(assembled, config: ModelConfig) -> dict[str, np.ndarray]:
    params = {
        module: {name: np.asarray(value, dtype=np.float64) for name, value in tensors.items()}
        for module, tensors in assembled.params.items()
    }
    encoding = assembled.input_encoder.encoding_map
    token_rows = [encoding[value] for value in config.vocab]
    token_rows += [
        encoding[assembled.input_encoder.bos_token],
        encoding[assembled.input_encoder.pad_token],
    ]
    h, k, d = config.n_heads, config.d_head, config.d_model
    weights = {
        "embed.W_E": params["token_embed"]["embeddings"][token_rows],
        "pos_embed.W_pos": params["pos_embed"]["embeddings"],
        "unembed.W_U": _unembedding(assembled, d),
        "unembed.b_U": np.zeros(config.d_out),
    }
    for layer in range(config.n_layers):
        attn = f"transformer/layer_{layer}/attn"
        mlp = f"transformer/layer_{layer}/mlp"
        prefix = f"blocks.{layer}"
        for ours, theirs in (("Q", "query"), ("K", "key"), ("V", "value")):
            # tracr: w [d_model, heads * key_size]; ours: [heads, d_model, d_head].
            weights[f"{prefix}.attn.W_{ours}"] = (
                params[f"{attn}/{theirs}"]["w"].reshape(d, h, k).transpose(1, 0, 2)
            )
            weights[f"{prefix}.attn.b_{ours}"] = params[f"{attn}/{theirs}"]["b"].reshape(h, k)
        weights[f"{prefix}.attn.W_O"] = params[f"{attn}/linear"]["w"].reshape(h, k, d)
        weights[f"{prefix}.attn.b_O"] = params[f"{attn}/linear"]["b"]
        weights[f"{prefix}.mlp.W_in"] = params[f"{mlp}/linear_1"]["w"]
        weights[f"{prefix}.mlp.b_in"] = params[f"{mlp}/linear_1"]["b"]
        weights[f"{prefix}.mlp.W_out"] = params[f"{mlp}/linear_2"]["w"]
        weights[f"{prefix}.mlp.b_out"] = params[f"{mlp}/linear_2"]["b"]
    return weights


def random_orthogonal(size: int, seed: int) -> np.ndarray:
    """A seeded random orthogonal matrix, uniform over O(size) (QR of a Gaussian, signs fixed)."""
    gaussian = np.random.default_rng(seed).standard_normal((size, size))
    q, r = np.linalg.qr(gaussian)
    return q * np.sign(np.diag(r))


def rotate_residual(
    weights: dict[str, np.ndarray], n_layers: int, q: np.ndarray
) -> dict[str, np.ndarray]:
    """The same network in the residual basis x' = x @ q (valid without layer norm).

    Writes into the residual (embeddings, W_O, b_O, W_out, b_out) are multiplied
    by q on the right; reads (W_Q, W_K, W_V, W_in, W_U) by q.T on the left.
    """
    rotated = dict(weights)
    for name in ("embed.W_E", "pos_embed.W_pos"):
        rotated[name] = weights[name] @ q
    rotated["unembed.W_U"] = q.T @ weights["unembed.W_U"]
    for layer in range(n_layers):
        prefix = f"blocks.{layer}"
        for read in ("attn.W_Q", "attn.W_K", "attn.W_V"):
            rotated[f"{prefix}.{read}"] = np.einsum("ed,hek->hdk", q, weights[f"{prefix}.{read}"])
        rotated[f"{prefix}.mlp.W_in"] = q.T @ weights[f"{prefix}.mlp.W_in"]
        for write in ("attn.W_O", "attn.b_O", "mlp.W_out", "mlp.b_out"):
            rotated[f"{prefix}.{write}"] = weights[f"{prefix}.{write}"] @ q
    return rotated
