"""The Philox4x32-10 stream of the noise and rain fields: known answers, device independence, versioned replay."""

from __future__ import annotations

import hashlib
import math
import random
import warnings

import pytest
import torch
from torch.utils.data import DataLoader

from mio_strategies.data import MiODataset, embedded_image_paths, mio_collate
from mio_strategies.degradations import _philox, add_rain, degrade, gaussian_noise, sample_params
from mio_strategies.degradations._philox import (
    DOMAIN_NOISE,
    DOMAIN_RAIN,
    philox4x32,
    philox4x32_reference,
    philox_normal,
    philox_uint32,
    philox_uniform,
)

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

# Philox4x32-10 known answers of the Random123 distribution (kat_vectors): counter, key, output
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


def _t(*values: int) -> tuple[torch.Tensor, ...]:
    return tuple(torch.tensor(v, dtype=torch.int64) for v in values)


@pytest.mark.parametrize("counter,key,expected", KAT)
def test_philox_matches_random123_known_answers(counter, key, expected):
    assert tuple(int(w) for w in philox4x32(_t(*counter), _t(*key))) == expected
    assert philox4x32_reference(counter, key) == expected


def test_tensor_philox_equals_pure_python_reference_on_random_inputs():
    rnd = random.Random(0)
    rows = [([rnd.getrandbits(32) for _ in range(4)], [rnd.getrandbits(32) for _ in range(2)]) for _ in range(300)]
    c = [torch.tensor([r[0][i] for r in rows]) for i in range(4)]
    k = [torch.tensor([r[1][i] for r in rows]) for i in range(2)]
    got = torch.stack(philox4x32(tuple(c), tuple(k)), dim=1).tolist()
    assert got == [list(philox4x32_reference(ci, ki)) for ci, ki in rows]


def test_stream_words_are_the_reference_blocks_of_each_seed():
    seeds = torch.tensor([0, 1, 2**40 + 3, 2**63 - 1])
    words = philox_uint32(seeds, 10, domain=DOMAIN_NOISE)
    for s, row in zip(seeds.tolist(), words.tolist()):
        key = (s & 0xFFFFFFFF, s >> 32)
        expect = [w for j in range(3) for w in philox4x32_reference((j, 0, DOMAIN_NOISE, 0), key)][:10]
        assert row == expect


def test_field_depends_only_on_its_seed_not_on_batch_or_length():
    seeds = torch.tensor([11, 12, 13])
    both = philox_normal(seeds, 301)
    assert torch.equal(philox_normal(seeds[1:2], 301)[0], both[1])
    assert torch.equal(philox_normal(seeds, 1000)[:, :300], both[:, :300])
    assert torch.equal(philox_uniform(seeds, 64)[:, :10], philox_uniform(seeds, 10))
    assert not torch.equal(philox_uint32(seeds, 8, domain=1), philox_uint32(seeds, 8, domain=2))


def test_uniforms_are_exact_24_bit_fractions_and_normals_are_standard():
    u = philox_uniform(torch.tensor([3]), 4096)
    assert bool((u >= 0).all() and (u < 1).all())
    assert torch.equal(u * 2**24, torch.floor(u * 2**24))
    z = philox_normal(torch.tensor([5, 6]), 200_000)
    assert z.dtype == torch.float32 and z.shape == (2, 200_000)
    assert abs(z.mean().item()) < 0.01 and abs(z.std().item() - 1.0) < 0.01
    assert abs(((z > 1.96).float().mean() - 0.025).item()) < 0.002


def test_bad_seeds_and_sizes_are_refused():
    with pytest.raises(TypeError, match="int64"):
        philox_uint32(torch.tensor([1.0]), 4)
    with pytest.raises(ValueError, match=r"\[0, 2\*\*63 - 1\]"):
        philox_uint32(torch.tensor([-1]), 4)
    with pytest.raises(ValueError, match="n must be"):
        philox_uint32(torch.tensor([1]), -1)


# -- the stream's values are pinned: the chunked, in-place CPU path changed no word --------------------
PIN_SEEDS = torch.tensor([0, 1, 7, 123456789, 2**40 + 3, 2**62 + 9, 2**63 - 1])
# sha256 (first 20 hex digits) of the little-endian words (int64) and uniforms (float32) of PIN_SEEDS,
# recorded from the unchunked implementation (one int64 tensor per word, 16-bit split multiplications)
PINNED = {
    1: ("dc63b9189217f98c9d11", "a0b6db8c258fa67c2222"),
    5: ("048a1efcd708364b9014", "3f0d0565a28a4ba7b37e"),
    301: ("ff6c3f84fe7d92568486", "353c5df327ceb7198d31"),
    4099: ("d950cc6333a0273860a5", "0ba56158dd48f752d8d3"),
    12288: ("6f9238b0c95ffac8eaa8", "fb9148098922abfd9189"),
}


def _sha(t: torch.Tensor) -> str:
    a = t.contiguous().numpy()
    return hashlib.sha256(a.astype(a.dtype.newbyteorder("<")).tobytes()).hexdigest()[:20]


def _box_muller(words: torch.Tensor, n: int) -> torch.Tensor:
    """Normals from words, as the unchunked implementation computed them (the formula of the docs)."""
    w = words.view(words.shape[0], -1, 2)
    u1 = (w[..., 0].to(torch.float64) + 1.0) * (2.0**-32)
    u2 = w[..., 1].to(torch.float64) * (2.0**-32)
    r = torch.sqrt(-2.0 * torch.log(u1))
    theta = (2.0 * math.pi) * u2
    z = torch.stack([r * torch.cos(theta), r * torch.sin(theta)], dim=-1).reshape(words.shape[0], -1)
    return z[:, :n].to(torch.float32)


@pytest.fixture(params=["numpy", "torch"])
def cpu_rounds(request, monkeypatch):
    """Both CPU round implementations: NumPy's (the default) and the torch rounds every other device runs."""
    monkeypatch.setattr(_philox, "CPU_ROUNDS", request.param)
    return request.param


@pytest.mark.parametrize("n", sorted(PINNED))
def test_stream_words_and_uniforms_equal_the_pinned_digests(n, cpu_rounds):
    words_sha, uniform_sha = PINNED[n]
    assert _sha(philox_uint32(PIN_SEEDS, n, domain=DOMAIN_NOISE)) == words_sha
    assert _sha(philox_uniform(PIN_SEEDS, n, domain=DOMAIN_RAIN)) == uniform_sha


def test_normals_are_the_box_muller_of_the_words_bit_for_bit(cpu_rounds):
    for n in (1, 5, 301, 4099):
        words = philox_uint32(PIN_SEEDS, n + n % 2, domain=DOMAIN_NOISE)
        assert torch.equal(philox_normal(PIN_SEEDS, n, domain=DOMAIN_NOISE), _box_muller(words, n)), n
    # values recorded from the unchunked implementation (float32 bit patterns); another CPU's float64
    # log/cos/sin may differ in the last bit, hence at most one float32 ulp
    z = philox_normal(PIN_SEEDS[3:4], 12288, domain=DOMAIN_NOISE)[0]
    idx = [0, 1, 2, 3, 4097, 12287]
    recorded = [1066100859, -1082199030, 1066268807, 1064069713, -1123976841, -1107342909]
    assert [abs(int(z[i].view(torch.int32)) - b) for i, b in zip(idx, recorded)] <= [1] * len(idx)
    assert abs(float(z[0]) - 1.0891259908676147) < 1e-6


@pytest.mark.parametrize("chunk", [1, 3, 64, 1000])
def test_chunking_changes_no_value(monkeypatch, chunk, cpu_rounds):
    seeds = torch.tensor([3, 2**33 + 1, 5, 6, 7])
    expect = [philox_uint32(seeds, 301, domain=7), philox_uniform(seeds, 301), philox_normal(seeds, 301)]
    monkeypatch.setattr(_philox, "CPU_CHUNK", chunk)
    got = [philox_uint32(seeds, 301, domain=7), philox_uniform(seeds, 301), philox_normal(seeds, 301)]
    assert all(torch.equal(a, b) for a, b in zip(got, expect))
    for n in (0, 1, 4, 5, 9):
        ref = [[w for j in range(3) for w in philox4x32_reference((j, 0, 0, 0), (s & 0xFFFFFFFF, s >> 32))][:n]
               for s in seeds.tolist()]
        assert philox_uint32(seeds, n).tolist() == ref
    empty = torch.zeros(0, dtype=torch.int64)
    assert philox_uint32(empty, 9).shape == (0, 9) and philox_normal(empty, 9).shape == (0, 9)
    assert philox_uniform(seeds, 0).shape == (5, 0)


def _fresh_compile_state(monkeypatch, enabled=True):
    monkeypatch.setitem(_philox._compiled, "fn", None)
    monkeypatch.setitem(_philox._compiled, "error", None)
    monkeypatch.setitem(_philox._compiled, "enabled", enabled)


def test_compiled_rounds_fall_back_to_eager_with_a_warning(monkeypatch):
    seeds = torch.tensor([1, 2, 3])
    expect = philox_normal(seeds, 99)

    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler")

    _fresh_compile_state(monkeypatch)
    monkeypatch.setattr(torch, "compile", broken)
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler.*eager rounds"):
        assert torch.equal(philox_normal(seeds, 99), expect)
    assert torch.equal(philox_normal(seeds, 99), expect)  # warned once, eager from then on
    # a kernel whose words differ from the eager rounds' on the probe is refused
    _fresh_compile_state(monkeypatch)
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: lambda *a: fn(*a) ^ 1)
    with pytest.warns(RuntimeWarning, match="differ from the eager ones"):
        assert torch.equal(philox_normal(seeds, 99), expect)


def test_compiled_rounds_are_off_by_default_and_switchable(monkeypatch):
    _fresh_compile_state(monkeypatch, enabled=False)
    called = []
    monkeypatch.setattr(torch, "compile", lambda *a, **k: called.append(1))
    philox_uint32(torch.tensor([1]), 8)
    assert not called and _philox.use_compiled_philox(True) is False
    assert _philox.use_compiled_philox(False) is True


def test_compiled_rounds_give_the_same_words_and_normals(monkeypatch):
    """torch.compile of the rounds (inductor, a C++ compiler; a minute on a small CPU)."""
    seeds = torch.tensor([0, 5, 2**40 + 3, 2**63 - 1])
    expect = [philox_uint32(seeds, 4099, domain=9), philox_uniform(seeds, 301), philox_normal(seeds, 1001)]
    _fresh_compile_state(monkeypatch)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = [philox_uint32(seeds, 4099, domain=9), philox_uniform(seeds, 301), philox_normal(seeds, 1001)]
    if _philox._compiled["error"] is not None:
        pytest.skip(f"torch.compile unavailable here: {_philox._compiled['error']} ({len(caught)} warnings)")
    assert _philox._compiled["fn"] is not None
    assert all(torch.equal(a, b) for a, b in zip(got, expect))
    monkeypatch.setattr(_philox, "CPU_CHUNK", 37)  # chunks of other sizes: the kernel's shapes are dynamic
    assert torch.equal(philox_normal(seeds, 1001), expect[2])
    assert torch.equal(philox_uint32(seeds[:1], 5, domain=9), expect[0][:1, :5])


# -- the versioned stream of the noise and rain params -------------------------------------------------
@pytest.mark.parametrize("task", ["noise", "rain"])
def test_philox_params_record_their_stream_and_replay_exactly(task):
    x = torch.rand(3, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    y, p = degrade(x, task, generator=torch.Generator().manual_seed(1), stream="philox")
    assert p["stream"] == "philox"
    assert torch.equal(degrade(x, task, params=p)[0], y)
    y_old, p_old = degrade(x, task, generator=torch.Generator().manual_seed(1), stream="torch")
    assert "stream" not in p_old  # the torch stream's params are exactly today's
    assert all(torch.equal(p[k], p_old[k]) for k in p_old)  # the stream changes no parameter draw
    assert not torch.equal(y, y_old)


def test_params_without_stream_replay_the_per_image_torch_generators():
    """Params recorded before streams existed (no 'stream' key) replay the old per-image generator stream."""
    x = torch.full((2, 3, 16, 16), 0.5)
    recorded = {"sigma": torch.tensor([25.0, 40.0], dtype=torch.float64), "seed": torch.tensor([123, 2**62 + 5])}
    y, _ = degrade(x, "noise", params=recorded)
    expect = torch.stack([
        x[i] + torch.randn((3, 16, 16), generator=torch.Generator().manual_seed(s)) * (sg / 255.0)
        for i, (s, sg) in enumerate(zip([123, 2**62 + 5], [25.0, 40.0]))
    ])
    assert torch.equal(y, torch.round(expect.clamp(0, 1) * 255) / 255)
    assert torch.equal(degrade(x, "noise", params={**recorded, "stream": "torch"})[0], y)
    assert torch.equal(gaussian_noise(x, recorded["sigma"], recorded["seed"]), y)


def test_philox_noise_is_the_philox_normal_field_and_batch_independent():
    x = torch.full((3, 3, 20, 20), 0.5)
    sig, seed = torch.tensor([30.0, 30.0, 30.0], dtype=torch.float64), torch.tensor([7, 8, 9])
    y = gaussian_noise(x, sig, seed, stream="philox", quantize=False)
    field = philox_normal(seed, 3 * 20 * 20, domain=DOMAIN_NOISE).view(3, 3, 20, 20)
    assert torch.equal(y, (x + field * (30.0 / 255.0)).clamp(0, 1))
    assert torch.equal(gaussian_noise(x[1:2], 30.0, 8, stream="philox", quantize=False), y[1:2])
    r = add_rain(torch.zeros(3, 3, 40, 40), 80, 30, 10, 5, seed, stream="philox")
    assert torch.equal(add_rain(torch.zeros(1, 3, 40, 40), 80, 30, 10, 5, 9, stream="philox"), r[2:3])


def test_bad_streams_are_refused_naming_the_valid_ones():
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match=r"valid streams are \['torch', 'philox'\]"):
        degrade(x, "noise", stream="mt19937")
    _, p = degrade(x, "noise", generator=torch.Generator().manual_seed(0), stream="philox")
    with pytest.raises(ValueError, match="unknown stream 'cuda'"):
        degrade(x, "noise", params={**p, "stream": "cuda"})
    with pytest.raises(ValueError, match="unexpected keys \\['stream'\\]"):
        degrade(x, "blur", params={"sigma": 1.0, "kernel_size": 3, "stream": "philox"})
    with pytest.raises(ValueError, match="a replay uses the stream its params record"):
        degrade(x, "noise", params=p, stream="philox")
    with pytest.raises(ValueError, match="valid streams"):
        gaussian_noise(x, 10.0, 0, stream="numpy")
    with pytest.raises(ValueError, match="valid streams"):
        MiODataset(embedded_image_paths(), "N", patch_size=16, stream="numpy")


def test_dataset_stream_changes_only_the_noise_and_rain_images():
    kw = {"tasks": "SNR", "patch_size": 24, "seed": 3}
    old = MiODataset(embedded_image_paths(), **kw)
    new = MiODataset(embedded_image_paths(), stream="philox", **kw)
    a = next(iter(DataLoader(old, batch_size=6, collate_fn=mio_collate)))
    b = next(iter(DataLoader(new, batch_size=6, collate_fn=mio_collate)))
    assert torch.equal(a["gt"], b["gt"])
    for i, task in enumerate(a["task"].tolist()):
        same = torch.equal(a["lq"][i], b["lq"][i])
        assert same == (task == 0), task  # sr identical; noise and rain from the other stream
        if task:
            assert b["params"][i]["stream"] == "philox" and "stream" not in a["params"][i]
            replay = {k: v.reshape(1) if isinstance(v, torch.Tensor) else v for k, v in b["params"][i].items()}
            name = "noise" if task == 2 else "rain"
            assert torch.equal(degrade(b["gt"][i : i + 1], name, params=replay)[0][0], b["lq"][i])


def test_stream_is_recorded_only_for_the_tasks_with_random_fields():
    g = torch.Generator().manual_seed(0)
    assert "stream" not in sample_params("blur", 2, generator=g, stream="philox")
    assert sample_params("rain", 2, generator=g, stream="philox")["stream"] == "philox"


@needs_cuda
def test_philox_stream_is_identical_on_cpu_and_cuda():
    seeds = torch.tensor([0, 5, 2**62 + 9])
    assert torch.equal(philox_uint32(seeds, 4099, device="cuda").cpu(), philox_uint32(seeds, 4099))
    assert torch.equal(philox_uniform(seeds, 4099, device="cuda").cpu(), philox_uniform(seeds, 4099))
    zc, zg = philox_normal(seeds, 40_000), philox_normal(seeds, 40_000, device="cuda").cpu()
    ulp = torch.abs(zc.view(torch.int32).long() - zg.view(torch.int32).long())
    assert int(ulp.max()) <= 1 and int((ulp > 0).sum()) <= 2  # float64 transcendentals may differ in the last bit
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    for task in ("noise", "rain"):
        y, p = degrade(x, task, generator=torch.Generator().manual_seed(4), stream="philox")
        yc = degrade(x.cuda(), task, params=p)[0].cpu()
        assert (yc != y).float().mean().item() <= 1e-4, task
