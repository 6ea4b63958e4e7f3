"""The tiny backbones in plain torch: the same initial weights, state dicts and outputs as with basicsr's
blocks, the shipped demo weights load into them, and they build without basicsr."""

import subprocess
import sys

import pytest
import torch

from mio_strategies.harness import load_restorer, shipped_weights
from mio_strategies.models import ResUNet, SRResNet, _backbones
from mio_strategies.models._blocks import RCAB, ResidualBlockNoBN


def _basicsr_blocks(monkeypatch):
    """Build the backbones from basicsr's own blocks and initialisation (what they were built from before)."""
    from mio_strategies.utils.basicsr_compat import import_basicsr

    arch_util = import_basicsr("archs.arch_util")
    rcab = import_basicsr("archs.rcan_arch").RCAB
    monkeypatch.setattr(_backbones, "ResidualBlockNoBN", arch_util.ResidualBlockNoBN)
    monkeypatch.setattr(_backbones, "RCAB", rcab)
    monkeypatch.setattr(_backbones, "scaled_kaiming_init", arch_util.default_init_weights)


def _equal_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.basicsr
@pytest.mark.parametrize(
    "build",
    [
        lambda: SRResNet(num_feat=8, num_block=2),
        lambda: ResUNet(num_feat=8, num_block=1, levels=2),
        lambda: ResUNet(num_feat=8, num_block=1, levels=3, channel_attention=True),
    ],
    ids=["srresnet", "unet", "unet_rcab"],
)
def test_plain_torch_backbones_match_the_basicsr_built_ones(build, monkeypatch):
    torch.manual_seed(7)
    ours = build()
    with monkeypatch.context() as m:
        _basicsr_blocks(m)
        torch.manual_seed(7)
        ref = build()
    assert type(ours.body[0] if hasattr(ours, "body") else ours.enc[0][0]).__module__ == "mio_strategies.models._blocks"
    assert _equal_state(ours, ref)  # same names, same initial weights from the same seed
    with torch.no_grad():
        for module in ours.modules():  # non-trivial weights where the output conv starts at zero
            if isinstance(module, torch.nn.Conv2d):
                module.weight.normal_(0, 0.05, generator=torch.Generator().manual_seed(1))
        ref.load_state_dict(ours.state_dict())
        x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
        assert torch.equal(ours(x), ref(x))


@pytest.mark.basicsr
def test_shipped_weights_give_the_same_outputs_as_with_basicsr_blocks(monkeypatch):
    weights = shipped_weights()
    assert weights, "the package ships demo weights"
    x = torch.rand(1, 3, 24, 24, generator=torch.Generator().manual_seed(3))
    task = torch.tensor([2])
    for path in weights.values():
        ours, _, _ = load_restorer(path)
        with monkeypatch.context() as m:
            _basicsr_blocks(m)
            ref, _, _ = load_restorer(path)
        with torch.no_grad():
            assert torch.equal(ours.restore(x, task), ref.restore(x, task)), path.name


def test_residual_blocks_are_identity_free_branches_of_the_right_shape():
    block, rcab = ResidualBlockNoBN(8), RCAB(8, squeeze_factor=4)
    x = torch.rand(1, 8, 5, 5)
    for b in (block, rcab):
        assert b(x).shape == x.shape
    with torch.no_grad():
        block.conv2.weight.zero_()
        assert torch.equal(block(x), x)  # a zero branch is the identity


def test_tiny_backbones_and_shipped_weights_need_no_basicsr():
    code = (
        "import sys; sys.modules['basicsr'] = None\n"  # `import basicsr` fails, as on a bare install
        "import torch\n"
        "from mio_strategies.models import create_backbone\n"
        "from mio_strategies.harness import load_restorer, shipped_weights\n"
        "for name in ('srresnet_tiny', 'unet_tiny'):\n"
        "    create_backbone(name)(torch.rand(1, 3, 16, 16))\n"
        "for path in shipped_weights().values():\n"
        "    r, _, _ = load_restorer(path)\n"
        "    r.restore(torch.rand(1, 3, 16, 16), torch.tensor([0]))\n"
        "print('basicsr' in sys.modules and sys.modules['basicsr'] is not None)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"
