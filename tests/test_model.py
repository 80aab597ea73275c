"""Chapter 04: the GPT-1 model — exact architecture, HF parity both ways, bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from gpt1_lib.hub import hub_reachable
from gpt1_lib.model import GPT, MODEL_FIELDS, GPTConfig, model_config
from gpt1_lib.profiles import PROFILES

transformers = pytest.importorskip("transformers")
transformers.utils.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()

SMALL = dict(vocab_size=101, n_ctx=32, n_embd=48, n_layer=2, n_head=4)


def small_hf_config(**changes):
    """The HF OpenAIGPTConfig of the SMALL sizes."""
    return transformers.OpenAIGPTConfig(
        vocab_size=SMALL["vocab_size"],
        n_positions=SMALL["n_ctx"],
        n_embd=SMALL["n_embd"],
        n_layer=SMALL["n_layer"],
        n_head=SMALL["n_head"],
        **changes,
    )


def small_hf_model(seed: int = 0):
    """A random OpenAIGPTLMHeadModel with *every* tensor noisy (no zero biases, no unit LNs)."""
    torch.manual_seed(seed)
    model = transformers.OpenAIGPTLMHeadModel(small_hf_config()).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.1)
    return model


def noisy_gpt(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    model = GPT(GPTConfig(**SMALL)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.1)
    return model


@pytest.mark.parametrize("seq_len", [1, 7, 32])
def test_hf_checkpoint_loads_with_equal_logits(tmp_path, seq_len):
    hf = small_hf_model()
    hf.save_pretrained(tmp_path)
    ours = GPT.from_pretrained(tmp_path)
    idx = torch.randint(SMALL["vocab_size"], (3, seq_len))
    with torch.no_grad():
        diff = (ours(idx)[0] - hf(idx).logits).abs().max().item()
    assert diff < 1e-5


@pytest.mark.parametrize("seq_len", [1, 13, 32])
def test_save_pretrained_loads_in_transformers_with_equal_logits(tmp_path, seq_len):
    ours = noisy_gpt()
    ours.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    hf = transformers.OpenAIGPTLMHeadModel.from_pretrained(tmp_path).eval()
    assert hf.lm_head.weight.data_ptr() == hf.transformer.tokens_embed.weight.data_ptr()
    idx = torch.randint(SMALL["vocab_size"], (2, seq_len))
    with torch.no_grad():
        diff = (ours(idx)[0] - hf(idx).logits).abs().max().item()
    assert diff < 1e-5


def test_round_trip_keeps_every_tensor_and_the_tying(tmp_path):
    ours = noisy_gpt()
    ours.save_pretrained(tmp_path)
    back = GPT.from_pretrained(tmp_path)
    assert back.config == ours.config
    assert back.lm_head.weight is back.tokens_embed.weight
    for (name, a), (_, b) in zip(ours.state_dict().items(), back.state_dict().items()):
        assert torch.equal(a, b), name


def test_from_pretrained_overrides_config_fields_and_returns_eval_mode(tmp_path):
    noisy_gpt().train().save_pretrained(tmp_path)
    model = GPT.from_pretrained(tmp_path, dropout=0.0)
    assert model.config.dropout == 0.0
    assert not model.training  # as transformers' from_pretrained


def test_gpt1_has_exactly_116_534_784_parameters():
    with torch.device("meta"):
        model = GPT(GPTConfig())  # GPT-1's sizes are GPTConfig's defaults
    assert sum(p.numel() for p in model.parameters()) == 116_534_784
    assert model_config("gpt1") == GPTConfig()


def test_lm_head_is_the_token_embedding():
    model = GPT(GPTConfig(**SMALL))
    assert model.lm_head.weight is model.tokens_embed.weight
    assert model.lm_head.bias is None
    _, loss = model(torch.randint(101, (2, 8)), torch.randint(101, (2, 8)))
    loss.backward()  # one gradient, the sum of both uses
    assert model.tokens_embed.weight.grad is model.lm_head.weight.grad


def test_initialisation_is_gpt1s():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=2048, n_ctx=128, n_embd=256, n_layer=2, n_head=8))
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            assert torch.count_nonzero(p) == 0, name
        elif ".ln_" in name:
            assert torch.all(p == 1), name
        else:  # every weight matrix and embedding ~ N(0, 0.02)
            assert abs(p.std().item() - 0.02) < 0.001, name
            assert abs(p.mean().item()) < 0.001, name


def test_loss_at_initialisation_is_about_ln_v():
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=2048, n_ctx=64, n_embd=64, n_layer=2, n_head=4)
    model = GPT(config).eval()
    idx = torch.randint(2048, (4, 64))
    with torch.no_grad():
        _, loss = model(idx, torch.randint(2048, (4, 64)))
    expected = math.log(2048) + (0.02**2 * 64) / 2  # ln V + sigma^2 / 2, sigma = 0.02 sqrt(d)
    assert abs(loss.item() - expected) < 0.02


def test_whole_model_is_causal():
    model = noisy_gpt()
    idx = torch.randint(SMALL["vocab_size"], (2, 20))
    changed = idx.clone()
    changed[:, 12] = (changed[:, 12] + 1) % SMALL["vocab_size"]
    with torch.no_grad():
        moved = (model(idx)[0] - model(changed)[0]).abs().amax(dim=(0, 2))
    assert torch.all(moved[:12] == 0)
    assert torch.all(moved[12:] > 0)


class ListCache:
    """The smallest kv_cache the model accepts: per-layer append-only K/V lists."""

    def __init__(self, n_layer: int) -> None:
        self.layers = [self.Layer() for _ in range(n_layer)]

    class Layer:
        k = v = None

        def update(self, k, v):
            self.k = k if self.k is None else torch.cat([self.k, k], dim=2)
            self.v = v if self.v is None else torch.cat([self.v, v], dim=2)
            return self.k, self.v

    def __getitem__(self, i):
        return self.layers[i]

    @property
    def length(self) -> int:
        k = self.layers[0].k
        return 0 if k is None else k.size(2)


def test_kv_cache_continues_positions_and_matches_the_full_pass():
    model = noisy_gpt()
    idx = torch.randint(SMALL["vocab_size"], (2, 12))
    cache = ListCache(SMALL["n_layer"])
    with torch.no_grad():
        full, _ = model(idx)
        first, _ = model(idx[:, :9], kv_cache=cache)
        steps = [model(idx[:, t : t + 1], kv_cache=cache)[0] for t in range(9, 12)]
    assert torch.allclose(torch.cat([first, *steps], dim=1), full, atol=1e-5)


def test_training_mode_applies_dropout_and_eval_does_not():
    model = GPT(GPTConfig(**SMALL))
    idx = torch.randint(SMALL["vocab_size"], (2, 16))
    with torch.no_grad():
        a, b = model.train()(idx)[0], model(idx)[0]
        c, d = model.eval()(idx)[0], model(idx)[0]
    assert not torch.equal(a, b)
    assert torch.equal(c, d)


@pytest.mark.parametrize("name", PROFILES)
def test_every_profile_names_a_buildable_model(name):
    config = model_config(name)
    with torch.device("meta"):
        model = GPT(config)
    assert model.config.n_layer == len(model.h)


def test_model_config_takes_mappings_and_overrides_and_names_missing_fields():
    base = {k: getattr(GPTConfig(**SMALL), k) for k in MODEL_FIELDS}
    assert model_config({**base, "lr": 1.0}, n_layer=3).n_layer == 3
    with pytest.raises(ValueError, match="n_head"):
        model_config({k: v for k, v in base.items() if k != "n_head"})


# --- bad input: each a clear error naming the problem ---------------------------------------


@pytest.mark.parametrize(
    ("idx", "match"),
    [
        (torch.tensor([[1, 101]]), r"\[0, 101\)"),
        (torch.tensor([[-1, 3]]), r"\[0, 101\)"),
        (torch.zeros(1, 33, dtype=torch.long), "longer than n_ctx=32"),
        (torch.zeros(4, dtype=torch.long), "batch, time"),
        (torch.zeros(1, 4), "integer token ids"),
    ],
)
def test_bad_token_input_is_a_clear_error(idx, match):
    with pytest.raises(ValueError, match=match):
        GPT(GPTConfig(**SMALL))(idx)


def test_targets_of_another_shape_are_a_clear_error():
    with pytest.raises(ValueError, match="targets must have the shape"):
        GPT(GPTConfig(**SMALL))(torch.zeros(1, 4, dtype=torch.long), torch.zeros(4, dtype=torch.long))


def test_a_directory_that_is_not_a_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no config.json"):
        GPT.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ValueError, match="not 'openai-gpt' or 'gpt2'"):
        GPT.from_pretrained(tmp_path)


def test_config_without_weights_is_a_clear_error(tmp_path):
    noisy_gpt().save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(ValueError, match="no model.safetensors"):
        GPT.from_pretrained(tmp_path)


def test_weights_that_disagree_with_the_config_are_a_clear_error(tmp_path):
    noisy_gpt().save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["n_embd"], config["n_head"] = 64, 4
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"has shape .* but the config asks for"):
        GPT.from_pretrained(tmp_path)


def test_missing_tensors_are_a_clear_error(tmp_path):
    noisy_gpt().save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["n_layer"] = 3
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="tensors missing"):
        GPT.from_pretrained(tmp_path)


def test_unknown_names_are_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="neither a checkpoint directory nor a hub id"):
        GPT.from_pretrained("not-a-model")
    with pytest.raises(ValueError, match="neither a checkpoint directory nor a hub id"):
        GPT.from_pretrained(tmp_path / "missing")


def test_unreachable_hub_is_a_clear_error_without_retries(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # what an offline machine sets; no network used
    assert not hub_reachable()
    with pytest.raises(ConnectionError, match="unreachable .* local directory"):
        GPT.from_pretrained("gpt1-from-scratch/no-such-model")


def test_save_pretrained_refuses_what_transformers_cannot_run(tmp_path):
    model = GPT(GPTConfig(**SMALL, activation="gelu"))  # post-LN with the exact GELU
    with pytest.raises(ValueError, match="tanh GELU only"):
        model.save_pretrained(tmp_path / "ckpt")
    assert not (tmp_path / "ckpt").exists()  # nothing written


def test_the_default_cpu_model_round_trips_through_save_pretrained(tmp_path):
    """The README's example: the book's default model (pre-LN) leaves in GPT-2's format."""
    model = GPT(model_config("cpu"))
    back = GPT.from_pretrained(model.save_pretrained(tmp_path / "cpu"))
    assert back.config == model.config
    assert all(torch.equal(a, b) for a, b in zip(back.state_dict().values(), model.state_dict().values()))


def test_save_pretrained_replaces_an_existing_checkpoint(tmp_path):
    noisy_gpt(seed=0).save_pretrained(tmp_path)
    newer = noisy_gpt(seed=1)
    newer.save_pretrained(tmp_path)
    back = GPT.from_pretrained(tmp_path)
    assert torch.equal(back.tokens_embed.weight, newer.tokens_embed.weight)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]


# --- the real GPT-1 (needs the hub) ---------------------------------------------------------


def test_real_gpt1_greedy_golden_continuation():
    if not hub_reachable():
        pytest.skip("the Hugging Face hub is unreachable (or HF_HUB_OFFLINE is set): "
                    "cannot download openai-community/openai-gpt")
    tokenizer = transformers.AutoTokenizer.from_pretrained("openai-community/openai-gpt")
    model = GPT.from_pretrained("openai-gpt")
    out = torch.tensor([tokenizer.encode("the president is")])
    with torch.no_grad():
        for _ in range(6):
            out = torch.cat([out, model(out)[0][:, -1].argmax(-1, keepdim=True)], dim=1)
    text = tokenizer.decode(out[0]).replace(" .", ".")  # GPT-1's BPE splits off punctuation
    assert text.startswith("the president is a very good man.")


# --- one config derivation: every GPTConfig field a preset sets reaches the model -----------


@pytest.mark.parametrize("name", PROFILES)
def test_model_config_honours_every_field_the_preset_sets(name):
    import dataclasses

    from gpt1_lib.profiles import load_config

    preset = load_config(name)
    config = model_config(name)
    for field in dataclasses.fields(GPTConfig):
        expected = preset.get(field.name, field.default)
        assert getattr(config, field.name) == expected, (name, field.name)
    with torch.device("meta"):
        model = GPT(config)
    assert isinstance(model.ln_f, torch.nn.LayerNorm) == bool(preset.get("pre_ln", False))


def test_the_cpu_preset_builds_a_pre_ln_model_with_a_final_layernorm():
    config = model_config("cpu")
    assert config.pre_ln
    assert "ln_f.weight" in GPT(config).state_dict()


def test_pre_ln_and_post_ln_checkpoints_do_not_load_into_each_other():
    post, pre = GPT(GPTConfig(**SMALL)), GPT(GPTConfig(**SMALL, pre_ln=True))
    assert set(pre.state_dict()) - set(post.state_dict()) == {"ln_f.weight", "ln_f.bias"}
    with pytest.raises(RuntimeError, match="ln_f"):
        post.load_state_dict(pre.state_dict())
    with pytest.raises(RuntimeError, match="ln_f"):
        pre.load_state_dict(post.state_dict())


# --- pre_ln=True is GPT-2's architecture exactly ---------------------------------------------


@pytest.mark.parametrize("seq_len", [1, 9, 32])
def test_pre_ln_model_matches_hf_gpt2_logits(seq_len):
    from gpt1_lib.pretrained import state_dict_from_gpt2

    torch.manual_seed(0)
    gpt2 = transformers.GPT2LMHeadModel(
        transformers.GPT2Config(
            vocab_size=SMALL["vocab_size"],
            n_positions=SMALL["n_ctx"],
            n_embd=SMALL["n_embd"],
            n_layer=SMALL["n_layer"],
            n_head=SMALL["n_head"],
            activation_function="gelu_new",  # the tanh GELU, as GPT-1
        )
    ).eval()
    with torch.no_grad():
        for p in gpt2.parameters():
            p.normal_(0, 0.1)  # every tensor noisy, ln_f included
    ours = GPT(GPTConfig(**SMALL, pre_ln=True)).eval()
    ours.load_state_dict(state_dict_from_gpt2(gpt2.state_dict()))
    idx = torch.randint(SMALL["vocab_size"], (3, seq_len))
    with torch.no_grad():
        diff = (ours(idx)[0] - gpt2(idx).logits).abs().max().item()
    assert diff < 1e-5
    # without the final LayerNorm the same weights give other logits: ln_f is really used
    ours.ln_f = torch.nn.Identity()
    with torch.no_grad():
        assert (ours(idx)[0] - gpt2(idx).logits).abs().max().item() > 1e-3


# --- HF config import: three dropout rates, tied heads --------------------------------------


def _hf_config_dict(**changes):
    return small_hf_config(**changes).to_dict()


def test_config_from_hf_reads_the_dropout_rates_and_refuses_different_ones():
    from gpt1_lib.pretrained import config_from_hf

    same = _hf_config_dict(embd_pdrop=0.2, attn_pdrop=0.2, resid_pdrop=0.2)
    assert config_from_hf(same).dropout == 0.2
    different = _hf_config_dict(embd_pdrop=0.1, attn_pdrop=0.0, resid_pdrop=0.1)
    with pytest.raises(ValueError, match="attn_pdrop=0.0.*dropout="):
        config_from_hf(different)
    assert config_from_hf(different, dropout=0.05).dropout == 0.05


def test_from_pretrained_refuses_mixed_dropout_unless_told_which(tmp_path):
    noisy_gpt().save_pretrained(tmp_path)
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps({**json.loads(config_file.read_text()), "embd_pdrop": 0.0}))
    with pytest.raises(ValueError, match="different dropout rates"):
        GPT.from_pretrained(tmp_path)
    assert GPT.from_pretrained(tmp_path, dropout=0.0).config.dropout == 0.0


def test_an_untied_head_is_refused_not_silently_re_tied(tmp_path):
    from safetensors.torch import load_file, save_file

    noisy_gpt().save_pretrained(tmp_path)
    config_file = tmp_path / "config.json"
    config = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**config, "tie_word_embeddings": False}))
    with pytest.raises(ValueError, match="not tied"):
        GPT.from_pretrained(tmp_path)
    config_file.write_text(json.dumps(config))  # the config says tied, the tensors disagree
    tensors = load_file(tmp_path / "model.safetensors")
    tensors["lm_head.weight"] = torch.randn_like(tensors["transformer.tokens_embed.weight"])
    save_file(tensors, tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match="untied head"):
        GPT.from_pretrained(tmp_path)


# --- OpenAI's own release: params_shapes.json + params_0..9.npy -----------------------------


def write_release_from_hf(hf, folder, n_shards: int = 10) -> None:
    """Lay an HF OpenAIGPT model out as OpenAI released GPT-1: positions, tokens, then 12
    arrays per block, Conv1D weights as (1, in, out), one flat float32 vector in shards."""
    import numpy as np

    sd = {k.removeprefix("transformer."): v.numpy() for k, v in hf.state_dict().items()}
    arrays = [sd["positions_embed.weight"], sd["tokens_embed.weight"]]
    for i in range(hf.config.n_layer):
        for name in ("attn.c_attn", "attn.c_proj", "ln_1", "mlp.c_fc", "mlp.c_proj", "ln_2"):
            weight = sd[f"h.{i}.{name}.weight"]
            arrays += [weight[None] if weight.ndim == 2 else weight, sd[f"h.{i}.{name}.bias"]]
    (folder / "params_shapes.json").write_text(json.dumps([list(a.shape) for a in arrays]))
    flat = np.concatenate([a.reshape(-1) for a in arrays]).astype(np.float32)
    for k, shard in enumerate(np.array_split(flat, n_shards)):
        np.save(folder / f"params_{k}.npy", shard)


def test_from_openai_release_equals_the_hf_port_path(tmp_path):
    hf = small_hf_model(seed=3)
    write_release_from_hf(hf, tmp_path)
    assert len(list(tmp_path.glob("params_*.npy"))) == 10
    from_release = GPT.from_openai_release(tmp_path, n_head=SMALL["n_head"])
    assert from_release.config == GPTConfig(**SMALL)
    assert not from_release.training
    assert from_release.lm_head.weight is from_release.tokens_embed.weight
    hf.save_pretrained(tmp_path / "hf")
    from_hf = GPT.from_pretrained(tmp_path / "hf")
    idx = torch.randint(SMALL["vocab_size"], (2, SMALL["n_ctx"]))
    with torch.no_grad():
        a, b, c = from_release(idx)[0], from_hf(idx)[0], hf(idx).logits
    assert torch.equal(a, b)
    assert (a - c).abs().max().item() < 1e-5


def test_gpt1_release_shapes_describe_gpt1(tmp_path):
    """The real params_shapes.json (mirrored offline) describes GPT-1: 146 arrays, 12 blocks."""
    import os

    mirror = os.environ.get("GPT1_DATA_MIRROR")
    shapes_file = None if mirror is None else Path(mirror) / "openai-gpt-bpe" / "params_shapes.json"
    if shapes_file is None or not shapes_file.is_file():
        pytest.skip("GPT1_DATA_MIRROR does not hold openai-gpt-bpe/params_shapes.json")
    shapes = json.loads(shapes_file.read_text())
    assert len(shapes) == 2 + 12 * 12
    assert shapes[0] == [512, 768] and shapes[1] == [40478, 768]
    assert sum(math.prod(s) for s in shapes) == 116_534_784


def test_a_broken_release_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="params_shapes.json"):
        GPT.from_openai_release(tmp_path)
    write_release_from_hf(small_hf_model(), tmp_path)
    (tmp_path / "params_9.npy").unlink()
    with pytest.raises(ValueError, match="missing or truncated"):
        GPT.from_openai_release(tmp_path, n_head=SMALL["n_head"])
