"""`GET /`: the model card and a form to try an input, as one self-contained HTML page (no external assets).

The card is the export folder's README.md (an export pulled from the Hub has one), else the card `hftl push --what
onnx` would write for the run the folder belongs to, else the export report's facts. ``/?text=...`` fills the
form and runs it at once (a shareable link; the headless-browser test uses it too).
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any


def card_text(export_dir: Path) -> str:
    readme = export_dir / "README.md"
    if readme.is_file():
        return readme.read_text(encoding="utf-8")
    run_dir = export_dir.parent
    from hftl.deploy.model_card import render_card
    from hftl.errors import HftlError
    from hftl.run import rundir
    from hftl.run.record import read_record, results_path

    report = _read_json(export_dir / rundir.EXPORT_REPORT)
    config = _read_yaml(run_dir / "config.yaml")
    if config and results_path(run_dir).is_file():

        try:
            results = read_record(run_dir)
            return render_card(what="onnx", repo_id=run_dir.name, results=results, config=config, export_report=report)
        except (HftlError, KeyError, TypeError, ValueError):  # an unreadable run record: the plain facts below
            pass
    facts = {k: (report or {}).get(k) for k in ("task", "num_samples", "parity", "accuracy")}
    return f"# {export_dir.name}\n\nExport report:\n\n{json.dumps(facts, indent=2)}\n"


def render_page(
    *,
    title: str,
    modality: str,
    task: str = "classification",
    takes_files: bool,
    upload_types: str | None,
    labels: list[str],
    backend: str,
    top_k: int,
    card: str,
) -> str:
    """The page: a file picker (offering ``upload_types``) for a model of files, else a text box (JSON strings);
    a classifier's answers as label/score tables, a speech recogniser's as transcripts."""
    if takes_files:
        accept = f' accept="{html.escape(upload_types)}"' if upload_types else ""
        field = f'<input type="file" id="files" name="inputs"{accept} multiple required>'
    else:
        field = '<textarea id="text" name="inputs" rows="4" cols="70" required placeholder="A text to classify"></textarea>'
    config = json.dumps({"modality": modality, "files": takes_files, "top_k": top_k})
    classifies = task == "classification"
    if classifies:
        what = f"A <b>{html.escape(modality)}</b> classifier"
        options = f'<label>top k <input type="number" id="top_k" min="1" max="{max(1, len(labels))}" value="{top_k}"></label>'
    else:
        what, options = f"A <b>{html.escape(task)}</b> model ({html.escape(modality)} in, text out)", ""
    return _TEMPLATE.format(
        title=html.escape(title),
        what=what,
        backend=html.escape(backend),
        labels=f" Labels: {html.escape(', '.join(labels))}." if labels else "",
        field=field,
        options=options,
        button="Classify" if classifies else "Transcribe",
        card=html.escape(card),
        config=config,
    )


def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _read_yaml(path: Path) -> dict[str, Any] | None:
    import yaml

    return yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None


_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} - hftl serve</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em; padding: 0 1em; }}
pre.card {{ background: #f6f8fa; padding: 1em; overflow-x: auto; white-space: pre-wrap; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: .3em .6em; text-align: left; }}
.error {{ color: #b00020; }}
</style></head>
<body>
<h1>{title}</h1>
<p>{what} served by hftl on <b>{backend}</b>.{labels}</p>
<p>API: <code>POST /predict</code> (<a href="/openapi.json">schema</a>), <code>GET /health</code>,
<code>GET /ready</code>, <code>GET /metrics</code>.</p>
<h2>Try it</h2>
<form id="try">
{field}<br>
{options}
<button type="submit">{button}</button>
</form>
<div id="result" aria-live="polite"></div>
<h2>Model card</h2>
<pre class="card" id="card">{card}</pre>
<script>
const CONFIG = {config};
const form = document.getElementById("try"), out = document.getElementById("result");

function show(data) {{
  out.innerHTML = "";
  if (data.transcripts) {{
    data.transcripts.forEach((t, i) => {{
      const p = document.createElement("p");
      p.className = "transcript";
      p.textContent = "input " + i + ": " + t.text;
      out.appendChild(p);
    }});
    return;
  }}
  data.predictions.forEach((preds, i) => {{
    const table = document.createElement("table");
    table.className = "prediction";
    table.innerHTML = "<caption>input " + i + "</caption><tr><th>label</th><th>score</th></tr>";
    preds.forEach(p => {{
      const row = table.insertRow();
      row.insertCell().textContent = p.label;
      row.insertCell().textContent = p.score.toFixed(4);
    }});
    out.appendChild(table);
  }});
}}

async function classify() {{
  const box = document.getElementById("top_k");
  const topK = (box && parseInt(box.value, 10)) || CONFIG.top_k;
  let init;
  if (!CONFIG.files) {{
    const text = document.getElementById("text").value;
    init = {{method: "POST", headers: {{"Content-Type": "application/json"}},
            body: JSON.stringify({{inputs: [text], top_k: topK || undefined}})}};
  }} else {{
    const body = new FormData();
    for (const f of document.getElementById("files").files) body.append("inputs", f);
    if (topK) body.append("top_k", String(topK));  // a speech recogniser has no top k
    init = {{method: "POST", body}};
  }}
  out.textContent = "...";
  try {{
    const response = await fetch("/predict", init);
    const data = await response.json();
    if (!response.ok) {{ out.innerHTML = ""; const p = document.createElement("p"); p.className = "error";
      p.textContent = response.status + ": " + data.error; out.appendChild(p); return; }}
    show(data);
  }} catch (err) {{ out.textContent = "request failed: " + err; }}
}}

form.addEventListener("submit", e => {{ e.preventDefault(); classify(); }});
const preset = new URLSearchParams(location.search).get("text");
if (preset !== null && !CONFIG.files) {{ document.getElementById("text").value = preset; classify(); }}
</script>
</body></html>
"""
