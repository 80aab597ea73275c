"""Chapter 09, exercise 1: predict what fine-tuning adds to GPT-1, then check.

The prediction, from §3 and §5 of the chapter: three embedding rows (start, delimiter, extract),
3·768 = 2,304 numbers, and one linear head on the extract token's 768-wide state: 768 + 1 = 769
for multiple choice (one score per choice), 3·768 + 3 = 2,307 for three classes. The LM head
grows by three outputs too, but it *is* the embedding matrix (tied), so it adds nothing more.
That makes 3,073 and 4,611 new parameters on GPT-1's 116,534,784: about 0.003 % and 0.004 %.
Fine-tuning still updates all of them; what is new is a rounding error of the model.

We check with `grow_vocab` and `FineTuneModel` on GPT-1's shape, built on the meta device: the
same modules and shapes, no memory and no time for 116M random numbers. (Aside: OpenAI's code
also crops the position table to the longest transformed input, so its fine-tuned model can be
*smaller* than the pre-trained one; ours keeps all 512 rows.)
"""

import torch

from gpt1_lib.finetune_model import FineTuneModel, grow_vocab
from gpt1_lib.model import GPT, GPTConfig


def n_params(module: torch.nn.Module) -> int:
    """Parameters as PyTorch counts them: a tied tensor once."""
    return sum(p.numel() for p in module.parameters())


def predicted_added(config: GPTConfig, outputs: int, special: int = 3) -> int:
    """New embedding rows plus a linear head n_embd -> outputs (weights and biases)."""
    d = config.n_embd
    return special * d + d * outputs + outputs


if __name__ == "__main__":
    config = GPTConfig()  # GPT-1: vocab 40478, n_ctx 512, 12 x 768
    with torch.device("meta"):
        before = n_params(GPT(config))
    print(f"GPT-1 before fine-tuning: {before:,} parameters")
    assert before == 116_534_784

    for kind, n_classes, outputs in (("multiple_choice", 4, 1), ("classification", 3, 3)):
        with torch.device("meta"):
            model = FineTuneModel(grow_vocab(GPT(config), 3), kind, n_classes)
        gpt = model.transformer
        assert gpt.lm_head.weight is gpt.tokens_embed.weight  # still tied after growing
        assert gpt.lm_head.out_features == config.vocab_size + 3  # the head has 3 more outputs
        added = n_params(model) - before
        predicted = predicted_added(config, outputs)
        print(f"{kind:>16}: predicted {predicted:,} added, counted {added:,} "
              f"({added / before:.4%} of the model)")  # fmt: skip
        assert added == predicted
        assert added / before < 5e-5  # under 0.005 %
    # the number of choices does not matter for multiple choice: one head scores each sequence
    with torch.device("meta"):
        two = n_params(FineTuneModel(grow_vocab(GPT(config), 3), "multiple_choice", 2))
    assert two - before == predicted_added(config, 1)
