"""The chunked policy-gradient forward (``forward_batch_size`` trajectories per pass) equals the single pass:
same loss, same gradients (tiny fp32 Llama, CPU), for every chunk size, including ones that split a group, with
and without recomputing each chunk in the backward (``recompute_chunks``), which keeps only one chunk's
activations for the backward."""

import pytest
import torch

from clarifylab.models.tiny import build_tiny_model_and_tokenizer
from clarifylab.training.group_pg_module import GroupPolicyGradientModule, ScoredTrajectory


def conversation(question: str, replies: list[str]) -> list[dict[str, str]]:
    """A system prompt, the question, then student replies alternating with teacher feedback."""
    messages = [{"role": "system", "content": "answer the question about the table ."},
                {"role": "user", "content": question}]
    for k, reply in enumerate(replies):
        if k:
            messages.append({"role": "user", "content": "check the year" if k % 2 else "look at the units"})
        messages.append({"role": "assistant", "content": reply})
    return messages


# Two groups of three dialogues with different lengths and turn counts (so chunks pad differently) and
# rewards that give every trajectory a non-zero advantage.
TRAJECTORIES = [
    ScoredTrajectory(conversation("what is the revenue ?", ["5 . 2"]), 1.0, 0),
    ScoredTrajectory(conversation("what is the revenue ?", ["the revenue is 2 . 5", "it is 5 . 2"]), 0.7, 0),
    ScoredTrajectory(conversation("what is the revenue ?", ["no", "still no", "the revenue is 9"]), 0.0, 0),
    ScoredTrajectory(conversation("what is the total of the profit in 2019 ?", ["12"]), 0.0, 1),
    ScoredTrajectory(conversation("what is the total of the profit in 2019 ?", ["the total is 4", "14"]), 0.49, 1),
    ScoredTrajectory(conversation("what is the total of the profit in 2019 ?", ["1 4"]), 1.0, 1),
]


def tiny_module(forward_batch_size: int, recompute: bool = False) -> GroupPolicyGradientModule:
    model, tokenizer = build_tiny_model_and_tokenizer(seed=3)
    model.train()
    return GroupPolicyGradientModule(model, lambda step: TRAJECTORIES, tokenizer, max_length=256, lr=1e-3,
                                     forward_batch_size=forward_batch_size, recompute_chunks=recompute)


def loss_and_grads(forward_batch_size: int, recompute: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    module = tiny_module(forward_batch_size, recompute)
    model = module.model
    loss = module.training_step(0, 0)
    loss.backward()
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), grads


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_chunked_forward_equals_single_pass_loss_and_gradients():
    single_loss, single_grads = loss_and_grads(len(TRAJECTORIES))
    assert single_loss.abs() > 1e-3  # a real signal, not 0 == 0
    assert len(single_grads) == len(list(build_tiny_model_and_tokenizer(seed=3)[0].parameters()))
    for size, recompute in ((1, False), (2, False), (4, False), (1, True), (4, True)):
        # 4: chunks of 4 and 2 trajectories, splitting group 1 across passes
        loss, grads = loss_and_grads(size, recompute)
        assert loss.item() == pytest.approx(single_loss.item(), rel=1e-6, abs=1e-7)
        assert grads.keys() == single_grads.keys()
        for name, grad in grads.items():
            torch.testing.assert_close(grad, single_grads[name], rtol=1e-5, atol=1e-7, msg=name)


def saved_bytes(module: GroupPolicyGradientModule) -> int:
    """Bytes of the tensors autograd saves for the backward during one training step's forward."""
    total = 0

    def pack(tensor):
        nonlocal total
        total += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        module.training_step(0, 0)
    return total


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_recomputed_chunks_keep_far_less_for_the_backward():
    kept_single = saved_bytes(tiny_module(len(TRAJECTORIES)))
    kept_chunked = saved_bytes(tiny_module(1))
    kept_recomputed = saved_bytes(tiny_module(1, recompute=True))
    assert kept_chunked > kept_single / 2  # plain chunks keep every chunk's graph: no saving for the backward
    assert kept_recomputed * 20 < kept_chunked  # only the chunks' inputs are kept
