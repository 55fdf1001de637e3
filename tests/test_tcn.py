"""FiLM-conditioned TCN blocks (`mixdown.models.tcn`): receptive field, FiLM, shapes."""

from __future__ import annotations

import pytest
import torch

from mixdown.models.tcn import (
    TCN,
    FiLM,
    TCNConfig,
    dilated_padding,
    film,
    receptive_field,
)


def _tcn(config: TCNConfig, seed: int = 0) -> TCN:
    torch.manual_seed(seed)
    return TCN(config).double().eval()


def test_receptive_field_formula_known_answers() -> None:
    assert receptive_field(3, (1, 2, 4)) == 1 + 2 * 7
    assert receptive_field(5, (1, 3, 9)) == 1 + 4 * 13
    config = TCNConfig(blocks=10, kernel_size=3, dilation_growth=2)
    assert config.dilations == tuple(2 ** i for i in range(10))
    assert config.receptive_field == 1 + 2 * 1023


@pytest.mark.parametrize(("causal", "kernel_size", "growth", "blocks"), [
    (True, 3, 2, 4), (True, 5, 3, 3), (True, 3, 3, 3), (True, 2, 2, 4),
    (False, 3, 2, 4), (False, 5, 3, 3), (False, 3, 3, 3)])
def test_impulse_response_support_matches_receptive_field(causal: bool, kernel_size: int, growth: int,
                                                           blocks: int) -> None:
    config = TCNConfig(channels=4, blocks=blocks, kernel_size=kernel_size, dilation_growth=growth, causal=causal,
                       cond_dim=3)
    tcn = _tcn(config)
    field = config.receptive_field
    frames, at = 4 * field, 2 * field
    cond = torch.randn(1, 3, dtype=torch.float64)
    silence = torch.zeros(1, 4, frames, dtype=torch.float64)
    impulse = silence.clone()
    impulse[0, :, at] = 1.0
    with torch.no_grad():
        response = (tcn(impulse, cond) - tcn(silence, cond)).abs().amax(dim=1)[0]
    support = torch.nonzero(response > 1e-12).flatten()
    # An input at frame `at` reaches the outputs whose receptive field contains it.
    first, last = (at, at + field - 1) if causal else (at - (field - 1) // 2, at + (field - 1) // 2)
    assert (int(support.min()), int(support.max())) == (first, last)
    assert len(support) == field  # no gaps inside the span


def test_dilated_padding_keeps_length() -> None:
    assert dilated_padding(3, 4, causal=True) == (8, 0)
    assert dilated_padding(3, 4, causal=False) == (4, 4)
    tcn = _tcn(TCNConfig(channels=2, blocks=3, cond_dim=1, causal=False))
    x = torch.randn(2, 2, 37, dtype=torch.float64)
    assert tcn(x, torch.zeros(2, 1, dtype=torch.float64)).shape == x.shape


def test_film_known_answer() -> None:
    x = torch.arange(6.0).reshape(1, 2, 3)
    out = film(x, torch.tensor([[2.0, -1.0]]), torch.tensor([[0.5, 1.0]]))
    assert torch.equal(out, torch.tensor([[[0.5, 2.5, 4.5], [-2.0, -3.0, -4.0]]]))


def test_film_module_is_affine_in_the_conditioning() -> None:
    torch.manual_seed(0)
    layer = FiLM(cond_dim=3, channels=2)
    with torch.no_grad():
        layer.project.weight.zero_()
        layer.project.bias.copy_(torch.tensor([1.0, -0.5, 0.25, 2.0]))  # scale 1 + (1, -0.5), shift (0.25, 2)
    x = torch.ones(1, 2, 4)
    out = layer(x, torch.randn(1, 3))
    assert torch.allclose(out[0, :, 0], torch.tensor([2.0 + 0.25, 0.5 + 2.0]))


def test_conditioning_changes_the_output_per_item() -> None:
    tcn = _tcn(TCNConfig(channels=4, blocks=3, cond_dim=5))
    x = torch.randn(1, 4, 64, dtype=torch.float64).expand(3, -1, -1)
    cond = torch.randn(3, 5, dtype=torch.float64)
    cond[2] = cond[0]
    with torch.no_grad():
        out = tcn(x, cond)
        single = torch.cat([tcn(x[i:i + 1], cond[i:i + 1]) for i in range(3)])
    assert torch.allclose(out, single)  # batched equals one at a time
    assert not torch.allclose(out[0], out[1])  # different parameters, different output
    assert torch.equal(out[0], out[2])  # same parameters, same output


@pytest.mark.parametrize("bad", [dict(kernel_size=4, causal=False), dict(dilation_growth=4, kernel_size=3),
                                 dict(channels=0), dict(kernel_size=1)])
def test_bad_configs_are_refused(bad: dict) -> None:
    with pytest.raises(ValueError):
        TCNConfig(**bad)


def test_wrong_shapes_name_the_expected_layout() -> None:
    tcn = TCN(TCNConfig(channels=4, blocks=1, cond_dim=2))
    with pytest.raises(ValueError, match=r"\(batch, 4, frames\)"):
        tcn(torch.zeros(1, 3, 10), torch.zeros(1, 2))
