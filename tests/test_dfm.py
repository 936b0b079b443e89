"""DFM core: the path's equations, the sampler, the loss, and a model that learns a law."""

import subprocess
import sys
import textwrap

import pytest
import torch

from bench import dfm_toy
from nextomni.dfm import (
    MaskedPath, MetricPath, dfm_loss, drop_condition, euler_sample, euler_steps, guided,
    noise_targets,
)


def metric_path(k=7, d=5, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return MetricPath(torch.randn(k, d, generator=g, dtype=dtype))


def oracle(x1, vocab):
    """A denoiser that knows the data: logits peaked at x1."""
    def denoise(x_t):
        out = torch.full((*x_t.shape, vocab), -1e4)
        return out.scatter(-1, x1.expand(x_t.shape[0], -1)[..., None], 0.0)
    return denoise


# --------------------------------------------------------------------------- path

@pytest.mark.parametrize("k,seed", [(5, 0), (9, 1), (16, 2)])
@pytest.mark.parametrize("t", [0.05, 0.3, 0.5, 0.8, 0.95])
def test_velocity_satisfies_kolmogorov_forward_equation(k, seed, t):
    path = metric_path(k, seed=seed)
    x1 = torch.tensor([seed % k])
    tt = torch.tensor([t], dtype=torch.float64, requires_grad=True)
    # d p_t(x) / dt exactly, by autograd through the schedule
    dp = torch.autograd.functional.jacobian(lambda s: path.probs(x1, s)[0], tt)[:, 0]
    p = path.probs(x1, t)[0]
    u = torch.stack([path.velocity(torch.tensor([z]), x1, t)[0] for z in range(k)])  # [z, x]
    inflow = (u * p[:, None]).sum(0)          # sum_z u(x, z) p(z)
    outflow = u.sum(1) * p                     # sum_z u(z, x) p(x)
    rel = (dp - (inflow - outflow)).abs().max() / dp.abs().max()
    assert rel <= 1e-5
    assert torch.all(u >= 0) and torch.all(u.diagonal() == 0)


def test_source_is_uniform_and_path_concentrates_on_data():
    # 16-dim random embeddings are well separated; how fast p_t concentrates depends on the
    # distance from x1 to its nearest neighbour.
    path = metric_path(11, d=16)
    x1 = torch.arange(11)
    p0 = path.probs(x1, 0.0)
    assert torch.allclose(p0, torch.full_like(p0, 1 / 11), atol=1e-6)
    p1 = path.probs(x1, 0.999)
    assert (p1.gather(1, x1[:, None]) >= 0.999).all()
    mass = torch.stack([path.probs(x1, t).gather(1, x1[:, None])[:, 0]
                        for t in torch.linspace(0, 0.999, 50, dtype=torch.float64)])
    assert (mass[1:] >= mass[:-1]).all() and (mass[1] > mass[0]).all()  # grows with t


def test_velocity_only_moves_towards_data():
    path = metric_path(12, seed=3)
    z, x1 = torch.tensor([4]), torch.tensor([9])
    u = path.velocity(z, x1, 0.4)[0]
    d = path.distance(x1)[0]
    assert torch.all(u[d >= d[4]] == 0)
    assert torch.all(u[d < d[4]] > 0)


def test_time_broadcasts_per_example_and_per_position():
    path = metric_path(6)
    x1 = torch.randint(6, (3, 4), generator=torch.Generator().manual_seed(0))
    per_example = path.probs(x1, torch.tensor([0.1, 0.5, 0.9]))
    per_position = path.probs(x1, torch.tensor([0.1, 0.5, 0.9])[:, None].expand(3, 4))
    assert per_example.shape == (3, 4, 6)
    assert torch.allclose(per_example, per_position)
    assert torch.allclose(per_example[1], path.probs(x1[1], 0.5))
    with pytest.raises(ValueError, match="prefix"):
        path.probs(x1, torch.zeros(4))


def test_bad_inputs_raise_clear_errors():
    path = metric_path(6)
    with pytest.raises(ValueError, match="outside"):
        path.probs(torch.tensor([6]), 0.5)
    with pytest.raises(ValueError, match="integer"):
        path.sample(torch.tensor([1.0]), 0.5)
    with pytest.raises(ValueError, match="embeddings"):
        MetricPath(torch.randn(5))
    with pytest.raises(ValueError, match="steps"):
        euler_sample(oracle(torch.tensor([[1]]), 6), torch.zeros(1, 1, dtype=torch.long),
                     path, steps=-3)


# --------------------------------------------------------------------------- sampler

def test_sampler_with_oracle_ends_at_data_and_keeps_prompt_fixed():
    path = metric_path(10, dtype=torch.float32)
    x1 = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6]])
    prompt = torch.tensor([True, True, False, False, False, False, False, False])
    x_init = torch.where(prompt, x1, 0).repeat(4, 1)
    seen = []
    out = euler_sample(oracle(x1, 10), x_init, path, fixed=prompt, steps=10,
                       generator=torch.Generator().manual_seed(0), on_step=seen.append)
    assert torch.equal(out, x1.repeat(4, 1))
    assert [s.step for s in seen] == list(range(1, 11)) and seen[-1].t == 1.0
    assert all(torch.equal(s.x_t[:, :2], x1[:, :2].repeat(4, 1)) for s in seen)


def test_euler_marginal_matches_the_path():
    path = metric_path(8, seed=4)
    n, target = 20_000, 2
    x1 = torch.full((1, 1), target)
    grid = torch.linspace(0, 0.5, 101)
    out = euler_sample(oracle(x1, 8), torch.zeros(n, 1, dtype=torch.long), path,
                       time_grid=grid, generator=torch.Generator().manual_seed(0))
    hist = torch.bincount(out[:, 0], minlength=8).double() / n
    tv = 0.5 * (hist - path.probs(torch.tensor([target]), 0.5)[0]).abs().sum()
    assert tv < 0.05


def test_mixed_vocabularies_and_seeded_determinism():
    text, image = metric_path(20, seed=1, dtype=torch.float32), metric_path(7, seed=2,
                                                                           dtype=torch.float32)
    space = torch.tensor([0, 0, 1, 1, 1, 0])
    x1 = torch.tensor([[12, 3, 6, 0, 2, 19]])

    def denoise(x_t):  # one logit tensor per space, variables in sequence order
        return [oracle(x1[:, space == 0], 20)(x_t[:, space == 0]),
                oracle(x1[:, space == 1], 7)(x_t[:, space == 1])]

    def run(seed):
        states = list(euler_steps(denoise, torch.zeros(2, 6, dtype=torch.long), [text, image],
                                  space=space, steps=6, temperature=1.0, top_k=3,
                                  generator=torch.Generator().manual_seed(seed)))
        return torch.stack([s.x_t for s in states])

    a, b, c = run(0), run(0), run(1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(a[-1], x1.repeat(2, 1))
    assert int(a[:, :, 2:5].max()) < 7  # image variables stay in their vocabulary


def test_guidance_mixes_logits():
    cond = lambda x: torch.tensor([[[2.0, 0.0]]])
    uncond = lambda x: torch.tensor([[[1.0, 0.0]]])
    mixed = guided(cond, uncond, 3.0)(torch.zeros(1, 1, dtype=torch.long))
    assert torch.allclose(mixed, torch.tensor([[[4 * 2.0 - 3 * 1.0, 0.0]]]))


def test_masked_path_behind_the_same_interface():
    path = MaskedPath(vocab_size=6, mask_id=5)
    x1 = torch.tensor([[0, 4, 2, 3]])
    out = euler_sample(oracle(x1, 6), torch.zeros(3, 4, dtype=torch.long), path, steps=8,
                       generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, x1.repeat(3, 1))
    assert torch.allclose(path.probs(x1, 0.3).sum(-1), torch.ones(1, 4))


# --------------------------------------------------------------------------- loss

def test_loss_noises_only_the_target_and_scores_only_it():
    path = metric_path(9, dtype=torch.float32)
    g = torch.Generator().manual_seed(0)
    x1 = torch.randint(9, (4, 6), generator=g)
    target = torch.zeros(4, 6, dtype=torch.bool)
    target[:, 3:] = True
    x_t = noise_targets(x1, path, torch.full((4,), 0.1), target, generator=g)
    assert torch.equal(x_t[:, :3], x1[:, :3]) and not torch.equal(x_t[:, 3:], x1[:, 3:])
    perfect = oracle(x1, 9)
    assert dfm_loss(perfect, x1, path, target, generator=g) < 1e-3
    wrong = oracle(x1.roll(1, dims=1), 9)  # right on the prompt only: still a high loss
    assert dfm_loss(wrong, x1, path, target, generator=g) > 1.0


def test_loss_per_example_weighs_examples_not_variables():
    """Per example, a reply of one variable counts as much as a reply of five; by variable,
    five times less. Both reduce to the plain mean for a single example."""
    path = metric_path(9, dtype=torch.float32)
    g = torch.Generator().manual_seed(1)
    x1 = torch.randint(9, (2, 6), generator=g)
    target = torch.tensor([[1, 1, 1, 1, 1, 0], [0, 0, 1, 0, 0, 0]], dtype=torch.bool)
    logits = torch.randn(2, 6, 9, generator=g)
    ce = torch.nn.functional.cross_entropy(logits.reshape(-1, 9), x1.reshape(-1),
                                           reduction="none").reshape(2, 6)
    t = torch.tensor([0.2, 0.7])
    by_example = dfm_loss(lambda x: logits, x1, path, target, t=t, per_example=True)
    by_variable = dfm_loss(lambda x: logits, x1, path, target, t=t)
    assert torch.allclose(by_example, ((ce * target).sum(1) / target.sum(1)).mean())
    assert torch.allclose(by_variable, (ce * target).sum() / target.sum())
    assert not torch.allclose(by_example, by_variable)
    one = dfm_loss(lambda x: logits[:1], x1[:1], path, target[:1], t=t[:1], per_example=True)
    assert torch.allclose(one, dfm_loss(lambda x: logits[:1], x1[:1], path, target[:1], t=t[:1]))


def test_condition_dropout():
    x = torch.arange(12).reshape(3, 4)
    cond = torch.tensor([True, True, False, False])
    dropped, rows = drop_condition(x, cond, 1.0, fill=-1)
    assert rows.all() and (dropped[:, :2] == -1).all() and torch.equal(dropped[:, 2:], x[:, 2:])
    kept, rows = drop_condition(x, cond, 0.0, fill=-1)
    assert not rows.any() and torch.equal(kept, x)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_tiny_model_learns_a_joint_law(seed):
    """32 dependent sequences of length 8 over 16 tokens, trained in well under a minute."""
    model, path, data, freq, g = dfm_toy.train(seed)
    result = dfm_toy.evaluate(model, path, data, freq, g)
    assert result["in_support"] >= 0.95
    assert result["total_variation"] < 0.1


def test_large_vocabulary_within_memory_bound():
    """152k-token vocabulary x 256 positions: path ops and one sampler step under 1 GB extra."""
    script = textwrap.dedent("""
        import resource, torch
        from nextomni.dfm import MetricPath, euler_jump
        torch.set_num_threads(2)
        g = torch.Generator().manual_seed(0)
        K, N = 152_064, 256
        path = MetricPath(torch.randn(K, 64, generator=g))
        x1 = torch.randint(K, (1, N), generator=g)
        z = torch.randint(K, (1, N), generator=g)
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        xt = path.sample(x1, 0.5, g)
        u = path.velocity(z, x1, 0.5)
        assert u.shape == (1, N, K) and bool((u >= 0).all())
        del u
        nxt = euler_jump(path, z, x1, 0.5, 0.02, g)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print((peak - base) / 1024)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True)
    extra_mb = float(out.stdout.strip().splitlines()[-1])
    assert extra_mb < 1024


def test_rows_with_different_layouts():
    """Per-row spaces ([B, N]); -1 marks slots that are not variables and stay untouched."""
    text, codes = metric_path(12, seed=5, dtype=torch.float32), metric_path(5, seed=6,
                                                                           dtype=torch.float32)
    space = torch.tensor([[0, 0, 1, 1, -1], [1, 0, 0, 0, -1]])
    x1 = torch.tensor([[7, 3, 4, 2, 9], [1, 11, 0, 5, 9]])

    def denoise(x_t):
        out = []
        for k, vocab in ((0, 12), (1, 5)):
            mask = space == k
            logits = torch.full((int(mask.sum()), vocab), -1e4)
            out.append(logits.scatter(1, x1[mask][:, None], 0.0))
        return out

    x_init = torch.full((2, 5), 9)
    out = euler_sample(denoise, x_init, [text, codes], space=space, steps=5,
                       generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, x1)
    target = space >= 0
    assert dfm_loss(denoise, x1, [text, codes], target, space=space) < 1e-3
    x_t = noise_targets(x1, [text, codes], torch.tensor([0.0, 0.0]), target, space=space,
                        generator=torch.Generator().manual_seed(1))
    assert (x_t[space == 1] < 5).all() and (x_t[:, 4] == 9).all()
