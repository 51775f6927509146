#!/usr/bin/env python3
"""Writes einsim's JSON Schemas into configs/schemas (installed to share/einsim/configs/schemas).

Config schemas come from the loaders themselves (`einsim schema config KIND`). Output schemas
are inferred from the `--format json` outputs of the commands below, several variants each:
a key present in every sample is required, types are the union of those seen, arrays' items
the union of their elements. Regenerate after changing an output, and review the diff:

    python3 scripts/gen-schemas.py build/sim/einsim

python/tests/test_schemas.py checks other commands' outputs and every shipped preset against
the schemas, and that the config schemas match what the loaders read today.
"""

import json
import os
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "configs" / "schemas"

# A small sweep and a small serving sweep, for pareto, export, merge and plan.
SWEEP = """version = 1
[sweep]
name = "schema-sweep"
arch = "h100"
model = "llama-3-8b"
phase = "decode"
[parameters]
batch = [1, 8, 64]
tp = [1, 2]
"""
SERVE = """version = 1
[sweep]
mode = "serve"
arch = "h100"
model = "llama-3-8b"
trace = "conv"
request_rate = 8
duration = "60 s"
ttft_slo = "500 ms"
tpot_slo = "20 ms"
[parameters]
tp = [1, 2]
instances = [1, 2]
"""


def corpus(tmp: pathlib.Path) -> dict:
    """Output name -> the command lines (after `einsim`) whose JSON it describes."""
    (tmp / "sweep.toml").write_text(SWEEP)
    (tmp / "serve.toml").write_text(SERVE)
    db, sdb = str(tmp / "s.db"), str(tmp / "serve.db")
    run = ["run", "--arch", "h100", "--model"]
    measured = str(ROOT / "validate" / "data" / "h100-2026-11-27" / "torch_bench.csv")
    return {
        "list": [["list"], ["list", "models"]],
        "describe-model": [["describe", "llama-3-8b"], ["describe", "mixtral-8x7b"], ["describe", "deepseek-v3"]],
        "describe-cascade": [["describe", "attention-1pass"], ["describe", "pedagogical-2pass"]],
        "describe-arch": [["describe", "h100"], ["describe", "fusemax"], ["describe", "ddr5-socket"]],
        "run": [run + ["llama-3-8b", "--phase", "decode"],
                run + ["llama-3-70b", "--phase", "prefill", "--prompt", "2k", "--tp", "4"],
                run + ["mixtral-8x7b", "--phase", "decode", "--batch", "64", "--tp", "2", "--ep", "8"],
                run + ["llama-3-70b", "--phase", "decode", "--batch", "16", "--tp", "2", "--pp", "2"],
                run + ["llama-3-8b", "--phase", "decode", "--layers", "2", "--engine", "systemc", "--tiles", "4"],
                ["run", "--arch", "a100", "--model", "llama-3-8b", "--phase", "prefill", "--prompt", "1k", "--runtime", "pytorch-eager"],
                run + ["llama-3-8b", "--phase", "decode", "--context", "32k", "--kv-tier", "ddr:0.5", "--attach", "host-ddr5"]],
        "place": [["place", "--model", "llama-3-70b", "--arch", "h100", "--phase", "decode", "--batch", "32"],
                  ["place", "--model", "mixtral-8x7b", "--arch", "h100", "--phase", "prefill", "--prompt", "2k"]],
        "study-fusemax": [["study", "fusemax"]],
        "analyze-flash": [["analyze", "flash"]],
        "analyze-kv-compression": [["analyze", "kv-compression"]],
        "analyze-long-context": [["analyze", "long-context"]],
        "analyze-offload": [["analyze", "offload"]],
        "analyze-power": [["analyze", "power"]],
        "serve": [["serve", "--model", "llama-3-8b", "--arch", "h100", "--duration", "20"],
                  ["serve", "--model", "llama-3-8b", "--arch", "h100", "--duration", "20", "--prefix-caching", "--trace", "conv"],
                  ["serve", "--model", "llama-3-8b", "--arch", "h100", "--duration", "20", "--prefill-instances", "1", "--decode-instances", "1"]],
        "validate": [["validate", measured, "--arch", "h100"]],
        "simulate": [["simulate", "kv-host"], ["simulate", "context-switch"]],
        "pareto": [["sweep", str(tmp / "sweep.toml"), "--db", db, "--no-json"], ["pareto", "--db", db]],
        "export": [["export", "--db", db]],
        "merge": [["merge", db, "-o", str(tmp / "merged.db")]],
        "plan": [["sweep", str(tmp / "serve.toml"), "--db", sdb, "--no-json"], ["plan", "--db", sdb, "--attainment", "0.5"]],
        "error": [["run", "--arch", "h100", "--model", "no-such-model", "--phase", "decode"],
                  ["run", "--arch", "h100", "--model", "llama-3-8b", "--phase", "decode", "--set", "model.hidden_size=-1"]],
    }


# Type inference ------------------------------------------------------------------------------

def infer(v):
    if isinstance(v, bool):
        return {"types": {"boolean"}}
    if isinstance(v, int):
        return {"types": {"integer"}}
    if isinstance(v, float):
        return {"types": {"number"}}
    if isinstance(v, str):
        return {"types": {"string"}}
    if v is None:
        return {"types": {"null"}}
    if isinstance(v, list):
        items = None
        for e in v:
            items = merge(items, infer(e))
        return {"types": {"array"}, "items": items}
    return {"types": {"object"}, "props": {k: infer(x) for k, x in v.items()}, "required": set(v)}


def merge(a, b):
    if a is None:
        return b
    if b is None:
        return a
    out = {"types": a["types"] | b["types"]}
    if "props" in a or "props" in b:
        pa, pb = a.get("props"), b.get("props")
        if pa is None or pb is None:
            out["props"], out["required"] = (pa or pb), set()
        else:
            out["props"] = {k: merge(pa.get(k), pb.get(k)) for k in sorted(set(pa) | set(pb))}
            out["required"] = a["required"] & b["required"]
    if "items" in a or "items" in b:
        out["items"] = merge(a.get("items"), b.get("items"))
    return out


# Objects keyed by names the input chooses (data types, tiers, arrays, classes, ...): their
# keys are not fixed, so they are described by the union of their values.
MAPS = {"peak_flops"}
SWEEP_COLUMNS = {"hash", "idx", "status", "error", "bottleneck"}


def render(s, key=""):
    types = set(s["types"])
    if {"integer", "number"} <= types:
        types.discard("integer")
    # einsim writes a figure that does not apply to a case (no cost rate, no TTFT in decode, a
    # deployment that does not fit) as null: every number may be null.
    if types & {"integer", "number"}:
        types.add("null")
    if types == {"null"}:
        return {}  # seen only as null here: a figure other cases fill in
    j = {"type": sorted(types)[0] if len(types) == 1 else sorted(types)}
    if key in MAPS and s.get("props"):
        values = None
        for v in s["props"].values():
            values = merge(values, v)
        j["additionalProperties"] = render(values)
        return j
    if "props" in s and s["props"] is not None:
        j["properties"] = {k: render(v, k) for k, v in sorted(s["props"].items())}
        required = s["required"]
        # A sweep point: its columns are the sweep's own parameters and outputs besides the
        # ones every sweep database has.
        if {"hash", "idx"} <= set(s["props"]):
            required = required & SWEEP_COLUMNS
        if required:
            j["required"] = sorted(required)
    if "items" in s and s["items"] is not None:
        j["items"] = render(s["items"], key)
    return j


def run(einsim: str, args: list) -> object:
    quiet = "--no-json" in args  # a step that makes a database: its output is not described
    args = [a for a in args if a != "--no-json"]
    p = subprocess.run([einsim] + args + ([] if quiet else ["--format", "json"]), capture_output=True, text=True)
    if quiet:
        if p.returncode != 0:
            sys.exit(f"einsim {' '.join(args)} failed: {p.stderr}")
        return None
    try:
        doc = json.loads(p.stdout)
    except json.JSONDecodeError:
        sys.exit(f"einsim {' '.join(args)}: no JSON ({p.returncode}): {p.stderr[:500]}")
    if (p.returncode != 0) != (isinstance(doc, dict) and "error" in doc and len(doc) == 1):
        sys.exit(f"einsim {' '.join(args)}: exit {p.returncode} with {p.stdout[:300]}")
    return doc


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    einsim = sys.argv[1]
    OUT.mkdir(parents=True, exist_ok=True)
    kinds = subprocess.run([einsim, "schema", "--help"], capture_output=True, text=True).stdout
    kinds = kinds.split("The config kind: ")[1].split("\n")[0].strip().split(", ")
    for k in kinds:
        text = subprocess.run([einsim, "schema", "config", k], capture_output=True, text=True, check=True).stdout
        (OUT / f"config-{k}.schema.json").write_text(text)
    with tempfile.TemporaryDirectory() as d:
        for name, commands in corpus(pathlib.Path(d)).items():
            s = None
            for args in commands:
                doc = run(einsim, args)
                if name != "error" and isinstance(doc, dict) and "error" in doc:
                    sys.exit(f"einsim {' '.join(args)} failed: {doc['error']}")
                if doc is not None:
                    s = merge(s, infer(doc))
            j = {"$schema": "https://json-schema.org/draft/2020-12/schema",
                 "$id": f"https://einsim.dev/schemas/output-{name}.schema.json",
                 "title": f"einsim {name.replace('-', ' ')} --format json",
                 "description": "Inferred by scripts/gen-schemas.py from the outputs of: "
                                + "; ".join("einsim " + " ".join(a if not a.startswith("/") else pathlib.Path(a).name for a in c)
                                            for c in commands)
                                + ". Keys in every sample are required; other keys may appear in later versions."}
            j.update(render(s))
            (OUT / f"output-{name}.schema.json").write_text(json.dumps(j, indent=2) + "\n")
    print(f"wrote {len(list(OUT.glob('*.schema.json')))} schemas to {OUT}")


if __name__ == "__main__":
    main()
