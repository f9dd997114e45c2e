"""The adapter soup (training/soup.py) on a tiny random Llama: its weight update is exactly the mean of
the members' updates, and continuing a soup keeps the rank bounded."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


@pytest.fixture
def tiny_base(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=64)
    path = tmp_path / "base"
    LlamaForCausalLM(config).save_pretrained(path)
    return path


def make_adapter(base, out, seed: int, rank: int = 4):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    # init_lora_weights=False: B is random too, so each adapter really changes the model
    config = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules="all-linear", init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(out)
    return out


def deltas(base, adapter) -> dict[str, torch.Tensor]:
    """Each adapted layer's weight update (scaling * B @ A)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), str(adapter))
    return {
        name: m.scaling["default"] * m.lora_B["default"].weight @ m.lora_A["default"].weight
        for name, m in model.named_modules()
        if hasattr(m, "lora_A") and "default" in m.lora_A
    }


def test_the_soup_is_the_exact_mean_of_its_members(tiny_base, tmp_path):
    from training.soup import average_adapters

    members = [make_adapter(tiny_base, tmp_path / f"m{i}", seed=i) for i in range(3)]
    rank = average_adapters(str(tiny_base), members, tmp_path / "soup", max_rank=12)
    assert rank == 12  # 3 x 4: the factors are stacked, nothing is truncated
    soup = deltas(tiny_base, tmp_path / "soup")
    each = [deltas(tiny_base, m) for m in members]
    assert soup.keys() == each[0].keys() and len(soup) == 14  # 7 linear layers x 2 blocks
    for name, delta in soup.items():
        mean = sum(d[name] for d in each) / 3
        assert torch.allclose(delta, mean, atol=1e-6), name
        assert not torch.allclose(delta, each[0][name], atol=1e-3)  # not just one member


def test_a_soup_of_soups_is_truncated_to_the_rank_limit(tiny_base, tmp_path):
    from training.soup import average_adapters

    members = [make_adapter(tiny_base, tmp_path / f"m{i}", seed=i, rank=8) for i in range(2)]
    rank = average_adapters(str(tiny_base), members, tmp_path / "soup", max_rank=8)
    assert rank == 8  # 16 would exceed the limit: the mean is truncated by SVD
    soup = deltas(tiny_base, tmp_path / "soup")
    a, b = (deltas(tiny_base, m) for m in members)
    for name, delta in soup.items():
        mean = (a[name] + b[name]) / 2
        # the best rank-8 approximation of the mean (Eckart-Young: the error is its dropped singular values)
        assert torch.linalg.matrix_rank(delta) <= 8
        best_error = torch.linalg.svdvals(mean)[8:].norm()
        assert (delta - mean).norm() <= best_error * 1.001 + 1e-6, name
        assert best_error < 0.9 * mean.norm()  # and the truncation kept most of it


def test_no_members_is_an_error(tiny_base, tmp_path):
    from training.soup import average_adapters

    with pytest.raises(ValueError, match="no adapters"):
        average_adapters(str(tiny_base), [], tmp_path / "soup", max_rank=8)


def test_train_adapter_with_a_soup_trains_each_member_and_saves_their_average(tmp_path, lm_dir):
    """train_adapter(soup=2) on a tiny random Llama with the real tokenizer (chat template): two
    members are trained, one averaged adapter of twice the rank is saved, the members are removed."""
    import json
    from datetime import UTC, datetime

    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from training.dataset import Example, FeedbackDatasets
    from training.lora import TrainConfig, train_adapter

    tokenizer = AutoTokenizer.from_pretrained(lm_dir)
    base = tmp_path / "tiny-chat"
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512)
    LlamaForCausalLM(config).save_pretrained(base)
    tokenizer.save_pretrained(base)
    now = datetime.now(UTC)
    examples = [
        Example([{"role": "user", "content": f"Sources:\n[1] (Doc) Fact {i}.\n\nQuestion: q{i}?"}],
                f"Fact {i}.", "correction", f"a{i}", f"q{i}?", now)
        for i in range(4)
    ]
    out = tmp_path / "adapter"
    result = train_adapter(
        FeedbackDatasets(sft_train=examples),
        TrainConfig(base_model=str(base), max_steps=1, batch_size=1, grad_accum=1, max_length=128,
                    soup=2, threads=1, niceness=0, precision="fp32"),
        out,
        progress=False,
    )
    assert result.sft_steps == 2  # one step per member
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 16  # 2 x rank 8, exact average
    assert not list(out.glob("_member*"))
