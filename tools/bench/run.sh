#!/usr/bin/env bash
# Benchmarks the synthetic models of the released shapes with `rwkv7 bench` (and, if
# LLAMA_BENCH points at llama.cpp's llama-bench, llama.cpp on the same files in the same
# run), and prints one JSON line per model plus a Markdown table for the README.
#
#   tools/bench/run.sh [SHAPES] [TYPES]        defaults: "0.1b 0.4b 1.5b" "q8_0 q4_0"
#   THREADS=2 REPS=5 ROUNDS=1 MODELS=models/synth LLAMA_BENCH=/path/to/llama-bench tools/bench/run.sh
#
# ROUNDS > 1 measures each model that many times, ours and llama.cpp alternately, and the
# table gives medians over the rounds; the ratio columns are the medians of each round's
# ratio (ours against llama.cpp measured right after it). On a shared machine whose
# speed drifts within minutes, ratios taken a few seconds apart move much less than
# figures taken minutes apart.
#
# Models are written once to $MODELS (about 3.6 GB for all six) by `rwkv7-quant synth`.
# Each model is read once before it is measured (the machine pages out files idle for
# about a minute), so the figures are for a warm page cache.
set -euo pipefail
cd "$(dirname "$0")/../.."
shapes=${1:-"0.1b 0.4b 1.5b"}
types=${2:-"q8_0 q4_0"}
threads=${THREADS:-2}
reps=${REPS:-5}
rounds=${ROUNDS:-1}
models=${MODELS:-models/synth}
mkdir -p "$models"
cargo build --release --locked -p rwkv7-quant -p rwkv7-cli >&2
bin=target/release
results=$(mktemp)
for shape in $shapes; do
  for type in $types; do
    file="$models/synth-$shape-$type.gguf"
    [ -f "$file" ] || "$bin/rwkv7-quant" synth --shape "$shape" --type "$type" -o "$file" -q
    for round in $(seq "$rounds"); do
      cat "$file" > /dev/null
      line=$("$bin/rwkv7" bench -m "$file" -p 128 -n 64 -t "$threads" -r "$reps" | tail -n 1)
      if [ -n "${LLAMA_BENCH:-}" ]; then
        llama=$("$LLAMA_BENCH" -m "$file" -t "$threads" -p 128 -n 64 -r "$reps" -o json 2>/dev/null \
          | python3 -c 'import json,sys; r=json.load(sys.stdin); print(json.dumps({x["n_prompt"] and "llama_pp_tok_s" or "llama_tg_tok_s": x["avg_ts"] for x in r}))')
        line=$(python3 -c 'import json,sys; a=json.loads(sys.argv[1]); a.update(json.loads(sys.argv[2])); print(json.dumps(a))' "$line" "$llama")
      fi
      echo "$line" | tee -a "$results"
    done
  done
done
python3 - "$results" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
llama = any("llama_tg_tok_s" in r for r in rows)
models = {}
for r in rows:
    models.setdefault(r["model"], []).append(r)
med = lambda runs, f: statistics.median(f(r) for r in runs)
head = "| model | file MB | pp128 tok/s | tg64 tok/s | ceiling tok/s | tg / ceiling | peak RSS MB | private MB | load + first token ms |"
if llama:
    head += " llama.cpp pp128 | llama.cpp tg64 | pp ratio | tg ratio |"
print(head)
print("|" + "---|" * (head.count("|") - 1))
for model, runs in models.items():
    name = model.rsplit("/", 1)[-1].removeprefix("synth-").removesuffix(".gguf")
    cells = [name, f'{runs[0]["file_bytes"]/1e6:.0f}', f'{med(runs, lambda r: r["pp_tok_s"]):.0f}',
             f'{med(runs, lambda r: r["tg_tok_s"]):.1f}', f'{med(runs, lambda r: r["ceiling_tg_tok_s"]):.1f}',
             f'{100*med(runs, lambda r: r["tg_of_ceiling"]):.0f} %', f'{med(runs, lambda r: r["peak_rss_bytes"])/1e6:.0f}',
             f'{med(runs, lambda r: r["anon_rss_bytes"])/1e6:.1f}', f'{med(runs, lambda r: r["load_ms"]+r["first_token_ms"]):.0f}']
    if llama:
        cells += [f'{med(runs, lambda r: r.get("llama_pp_tok_s", 0)):.0f}', f'{med(runs, lambda r: r.get("llama_tg_tok_s", 0)):.1f}',
                  f'{med(runs, lambda r: r["pp_tok_s"] / r["llama_pp_tok_s"]):.2f}×',
                  f'{med(runs, lambda r: r["tg_tok_s"] / r["llama_tg_tok_s"]):.2f}×']
    if len(runs) > 1:
        cells[0] += f" ({len(runs)} rounds)"
    print("| " + " | ".join(cells) + " |")
PY
rm -f "$results"
