"""The fine-tuning optimiser: the same updates as torch.optim.Adam, without importing
torch._dynamo (which every torch.optim optimizer does on first use)."""
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch", reason="fine-tuning needs torch")

from ivos.video.osvos.finetune import HeadAdam  # noqa: E402


def test_updates_equal_torch_adam_with_a_changing_learning_rate():
    torch.manual_seed(0)
    ours = [torch.randn(5, 3, requires_grad=True), torch.randn(7, requires_grad=True)]
    theirs = [t.detach().clone().requires_grad_(True) for t in ours]
    mine, ref = HeadAdam(ours, torch), torch.optim.Adam(theirs, lr=1e-2)
    for step in range(1, 30):
        lr = 1e-2 * (1 - step / 40)
        for group in ref.param_groups:
            group["lr"] = lr
        x = torch.randn(5)
        for params in (ours, theirs):
            ((params[0] @ torch.ones(3) * x).pow(2).sum() + params[1].sin().sum()).backward()
        mine.step(lr)
        ref.step()
        ref.zero_grad()
        assert all(p.grad is None for p in ours)
    for p, q in zip(ours, theirs):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-6, atol=1e-7)


def test_a_step_does_not_import_dynamo():
    code = ("import sys, torch; from ivos.video.osvos.finetune import HeadAdam; p = torch.ones(3, requires_grad=True); "
            "opt = HeadAdam([p], torch); (p * 2).sum().backward(); opt.step(0.1); "
            "print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
