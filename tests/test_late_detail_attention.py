"""Where a late mention is dropped: cross-attention mass on the mention, the encoder's states of it."""

from __future__ import annotations

import json
import math

import pytest
import torch
from pipeline_builders import sd_components, sdxl_components

from debias_diffusion import DeBiasStableDiffusionPipeline, DeBiasStableDiffusionXLPipeline
from debias_diffusion.errors import ProminenceDataError
from debias_diffusion.late_detail import build_prompts, context_pool, read_items
from debias_diffusion.late_detail.attention import (
    MentionAttention,
    cross_attention_mass,
    measure_mention_attention,
    mention_positions,
    summarize_mention_attention,
    write_mention_attention,
)
from debias_diffusion.late_detail.runner import evaluate_late_detail
from debias_diffusion.prominence.detectors import ColourDetector
from debias_diffusion.prominence.jobs import SamplingSettings
from debias_diffusion.tokenization import build_clip_tokenizer

pytestmark = pytest.mark.usefixtures("single_torch_thread")
ITEMS = [{"target": "green star", "anchor": "blue square"}, "red circle"]
OFFSETS = (12, 40, 110)
TINY = SamplingSettings(steps=2, guidance_scale=3.0, width=32, height=32)


@pytest.fixture(scope="module")
def prompts():
    items = read_items(ITEMS)
    pool = context_pool([label for item in items for label in item.labels])
    return build_prompts(items, OFFSETS, pool, build_clip_tokenizer())


def _pipe(positions: int) -> DeBiasStableDiffusionPipeline:
    pipe = DeBiasStableDiffusionPipeline(**sd_components(positions))
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.mark.parametrize(("positions", "policy"), [(77, "truncate"), (77, "chunk"), (248, "truncate")])
def test_mention_positions_point_at_the_target_tokens_in_the_conditioning_sequence(prompts, positions, policy):
    tokenizer = _pipe(positions).tokenizer
    target_ids = tokenizer("green star", add_special_tokens=False).input_ids
    for prompt in (p for p in prompts if p.mentioned and p.item == 0):
        span = mention_positions(prompt, tokenizer, policy)
        if positions == 77 and policy == "truncate" and prompt.offset == 110:
            assert span is None  # cut away: not conditioned
            continue
        # the ids the pipeline feeds: each segment padded to one window, concatenated
        from debias_diffusion.conditioning import plan_prompt

        ids = []
        for segment in plan_prompt(prompt.prompt, tokenizer, policy).segments:
            ids += tokenizer(segment, padding="max_length", max_length=positions, truncation=True).input_ids
        assert ids[span.start : span.stop] == target_ids, (policy, prompt.offset)
        if policy == "chunk" and prompt.offset == 110:
            assert span.start >= positions  # in the second chunk
    with pytest.raises(ProminenceDataError, match="mentions no target"):
        mention_positions(next(p for p in prompts if not p.mentioned), tokenizer, "truncate")


def test_the_recorder_measures_softmax_attention_and_changes_no_output():
    pipe = _pipe(77)
    attn = next(m for name, m in pipe.unet.named_modules() if name.endswith("attn2"))
    hidden, context = torch.randn(3, 16, attn.to_q.in_features), torch.randn(3, 7, attn.to_k.in_features)
    # by hand: softmax(q k^T * scale) per head, averaged over heads and queries, last 2 rows
    heads = attn.heads
    q = attn.to_q(hidden).view(3, 16, heads, -1).transpose(1, 2)
    k = attn.to_k(context).view(3, 7, heads, -1).transpose(1, 2)
    expected = torch.softmax(q @ k.transpose(-1, -2) * attn.scale, dim=-1).mean(dim=(1, 2))[-2:]

    def call():
        return attn(hidden, encoder_hidden_states=context)

    before = call()
    processors = pipe.unet.attn_processors
    mass = cross_attention_mass(pipe.unet, call, rows=2)
    torch.testing.assert_close(mass, expected.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(mass.sum(-1), torch.ones(2))
    assert torch.equal(call(), before)
    assert all(pipe.unet.attn_processors[name] is p for name, p in processors.items())  # restored

    # a whole generation: the same latents with and without recording; restored after an error too
    def generate():
        return pipe("a red circle", generator=torch.Generator().manual_seed(0), num_inference_steps=2,
                    width=32, height=32, output_type="latent").images  # fmt: skip

    plain = generate()
    recorded = []
    cross_attention_mass(pipe.unet, lambda: recorded.append(generate()), rows=1)
    assert torch.equal(recorded[0], plain)
    with pytest.raises(RuntimeError, match="boom"):
        cross_attention_mass(pipe.unet, lambda: (_ for _ in ()).throw(RuntimeError("boom")), rows=1)
    assert all(pipe.unet.attn_processors[name] is p for name, p in processors.items())
    with pytest.raises(ProminenceDataError, match="no cross-attention call"):
        cross_attention_mass(pipe.unet, lambda: None, rows=1)


def test_measure_reports_ratio_similarity_and_unread_mentions(prompts, tmp_path):
    records = measure_mention_attention(_pipe(77), prompts, condition="clip-77", seeds=(0, 1), generation=TINY,
                                        progress=False)  # fmt: skip
    assert len(records) == len(ITEMS) * len(OFFSETS) * 2
    for record in records:
        if record.offset == 110:  # past a 77-token window with truncate: not conditioned, nothing measured
            assert record.mention_offset is None and record.attention_ratio is None
            continue
        assert record.conditioning_tokens == 77 and record.mention_tokens == 2
        assert 0 < record.attention_share < 1
        assert record.attention_ratio == pytest.approx(record.attention_share * 77 / 2)
        if record.offset == 12:
            assert record.state_similarity == pytest.approx(1.0, abs=1e-5)
        else:
            assert -1 <= record.state_similarity < 0.999
    summaries = {(s.condition, s.offset): s for s in summarize_mention_attention(records)}
    assert summaries["clip-77", 110].measured == 0 and math.isnan(summaries["clip-77", 110].attention_ratio.value)
    at_12 = summaries["clip-77", 12].attention_ratio
    assert at_12.low <= at_12.value <= at_12.high and summaries["clip-77", 12].measured == 4

    paths = write_mention_attention(records, tmp_path / "report", caveat="tiny models")
    data = json.loads(paths["json"].read_text())
    assert len(data["records"]) == len(records) and data["summaries"][0]["offset"] == 12
    assert MentionAttention(**data["records"][0]) == records[0]
    table = paths["md"].read_text()
    assert "> tiny models" in table and "| clip-77 | 110 | 0 |  |  |" in table
    assert paths["csv"].read_text().splitlines()[0].startswith("condition,item,offset,seed")
    with pytest.raises(ProminenceDataError, match="nothing to measure"):
        measure_mention_attention(_pipe(77), prompts, condition="x", seeds=(), progress=False)


def test_the_late_detail_run_writes_the_attention_tables_beside_its_report(tmp_path):
    run = evaluate_late_detail({"tiny 248": _pipe(248)}, ["red circle"], detector=ColourDetector(),
                               output_dir=tmp_path / "run", offsets=(12, 110), seeds=(0,), generation=TINY,
                               attention=True, progress=False)  # fmt: skip
    assert [(r.offset, r.mention_offset is not None) for r in run.attention] == [(12, True), (110, True)]
    assert "| tiny 248 | 110 | 1 |" in (tmp_path / "run" / "report" / "attention.md").read_text()
    again = evaluate_late_detail({"tiny 248": _pipe(248)}, ["red circle"], detector=ColourDetector(),
                                 output_dir=tmp_path / "run", offsets=(12, 110), seeds=(0,), generation=TINY,
                                 progress=False)  # fmt: skip
    assert again.generated == 0 and again.attention == []  # images resumed; attention only when asked


def test_sdxl_pipelines_are_measured_too(prompts):
    pipe = DeBiasStableDiffusionXLPipeline(**sdxl_components(248))
    pipe.set_progress_bar_config(disable=True)
    records = measure_mention_attention(pipe, [p for p in prompts if p.item == 1], condition="xl", generation=TINY,
                                        progress=False)  # fmt: skip
    assert [r.offset for r in records] == list(OFFSETS)
    assert all(r.conditioning_tokens == 248 and 0 < r.attention_share < 1 for r in records)
    assert records[0].state_similarity == pytest.approx(1.0, abs=1e-5)
