"""Write text-probe results: ``results.json``, ``table.md`` (like the paper's Table 1), ``captions.jsonl``."""

from __future__ import annotations

import json
from pathlib import Path

from ..atomic_io import atomic_directory
from ..probing.tables import markdown_table as _table
from ..probing.tables import percent as _percent
from .results import EncoderProbeResult, TextProbeResults

__all__ = ["REPORT_FILES", "markdown_table", "markdown_report", "write_report"]

REPORT_FILES = ("results.json", "table.md", "captions.jsonl")


def _rows(encoder: EncoderProbeResult, n: int) -> list[list[str]]:
    tor, toc = encoder.tor, encoder.toc
    cut = f"; {encoder.truncated_captions} captions truncated" if encoder.truncated_captions else ""
    tor_cells = [_percent(s) for s in tor.shares] if tor.shares is not None else ["-"] * n
    outside = tor.qualified - sum(tor.counts)
    outside_note = f"; {outside} with a top-1 outside the caption" if outside else ""
    rows = [[encoder.name, "TOR", *tor_cells, f"{tor.qualified}/{tor.total} captions qualified{outside_note}{cut}"]]
    if toc is not None:
        toc_details = f"chance {_percent(toc.chance)}; {toc.train_size} train / {toc.test_size} test{cut}"
        rows.append([encoder.name, "TOC", *(_percent(a) for a in toc.accuracies), toc_details])
    return rows


def markdown_table(results: TextProbeResults) -> str:
    """Rows encoder x probe (TOR, and TOC under our protocol), columns object positions 1..n, in percent."""
    n = results.settings.num_objects
    header = ["Encoder", "Probe", *(f"Obj {k}" for k in range(1, n + 1)), "Details"]
    rows = [row for encoder in results.encoders for row in _rows(encoder, n)]
    return _table(header, rows, numeric=range(2, 2 + n))


def markdown_report(results: TextProbeResults) -> str:
    """A short heading with the settings, the table, and what the numbers mean."""
    s = results.settings
    if s.protocol == "paper":
        captions = f"all {s.num_captions} combinations in vocabulary order ('cat and dog'), the paper's protocol"
        meaning = (
            "TOR (clip-oscope's protocol): among captions each of whose top-n retrieved names is a substring of "
            "the caption, % whose top-1 is the name at each position (no bias: about 100/n each; a row may sum "
            "to less than 100 when a caption qualified through a substring such as 'dog' in 'hot dog')."
        )
    else:
        style = s.style + (" with articles" if s.articles else "") + (" + summary sentence" if s.summary else "")
        captions = f"{s.num_captions} captions ({style}), seed {s.seed}"
        meaning = (
            "TOR: among captions whose top-n retrieved single objects are exactly their n objects, % whose top-1 "
            "is the object at each position (no bias: about 100/n each). TOC: held-out accuracy (%) of a linear "
            f"probe predicting the object at each position ({100 * s.test_fraction:.0f}% of captions held out)."
        )
    lines = [
        "# Text probes: object position bias",
        "",
        f"Vocabulary `{s.vocabulary}` ({s.vocabulary_size} objects), {s.num_objects} objects per caption, {captions}.",
        "",
        markdown_table(results),
        meaning,
        "",
    ]
    return "\n".join(lines)


def write_report(results: TextProbeResults, output_dir: str | Path, *, overwrite: bool = False) -> list[Path]:
    """Write ``REPORT_FILES`` into ``output_dir`` atomically (all or nothing); returns their paths."""
    output_dir = Path(output_dir)
    names = results.vocabulary.objects
    with atomic_directory(output_dir, overwrite=overwrite) as scratch:
        (scratch / "results.json").write_text(json.dumps(results.to_json(), indent=2) + "\n", encoding="utf-8")
        (scratch / "table.md").write_text(markdown_report(results), encoding="utf-8")
        with (scratch / "captions.jsonl").open("w", encoding="utf-8") as lines:  # streamed: 2.5 M under "paper"
            for c in results.iter_captions():
                record = {"text": c.text, "objects": list(c.objects), "names": [names[i] for i in c.objects]}
                lines.write(json.dumps(record) + "\n")
    return [output_dir / name for name in REPORT_FILES]
