#!/usr/bin/env bash
# The largest timm run that fits one command on one GPU machine (H100/H200; ~10 minutes; no network there):
# smoke-test the GPU, build a mirror of timm architectures with random-initialised weights (one default tag per
# architecture, tests/fakes/timm_scale.py: config.json + model.safetensors in timm's HF layout, pulled through the Hub
# imitation by the timm: source), run `hubmirror bench --all` on it (a long-lived worker per GPU, replaced when it
# dies), and print models/hour, the count per status and the per-model overhead. Random weights: speeds, not accuracy.
#
#   benchmarks/gpu_all_timm.sh                # on the GPU machine, from the repository root
#   SHARD=2/2 benchmarks/gpu_all_timm.sh      # the other half of timm's architectures, in a second run
#   benchmarks/gpu_all_timm.sh --fetch-wheels # HERE, with PyPI: wheels of what the GPU image lacks, into .whl/
#
# Knobs (environment): SHARD (I/N, default 1/1), LIMIT (models at most), MAX_PARAMS (default 3e7), BUDGET (seconds for
# the whole script, default 540), GEN_BUDGET (seconds of weight generation, default a third of BUDGET), DEVICE (auto),
# DTYPE (fp32), BATCH (1), MIN_SECONDS (0.2), WORK (/tmp/hm-gpu), HM_PYTHON (an interpreter with hubmirror, timm and
# torch already installed: skips building a venv, e.g. HM_PYTHON=.venv/bin/python for a CPU proof with LIMIT=6),
# EXECUTOR (local, or ray: the same run through `bench --executor ray`, a Ray instance started on this machine with
# every GPU it has, one model per GPU as Ray tasks; needs ray in the image: its wheel, 80 MB, is over what the device
# tool carries, so --fetch-wheels does not bring it).
# On the device tool: run(command="benchmarks/gpu_all_timm.sh", carry=[".whl"], timeout_s=600); results land in $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--fetch-wheels" ]; then
    # the image has torch, timm, safetensors, huggingface_hub, click, pluggy, requests, tqdm, filelock, anyio, h11...
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform any -d .whl sqlite-utils sqlite-fts4 click-default-group picklescan starlette uvicorn kagglesdk \
        google-crc32c cryptography cffi pycparser boto3 botocore s3transfer jmespath
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
    du -sh .whl
    exit 0
fi

BUDGET=${BUDGET:-540}
GEN_BUDGET=${GEN_BUDGET:-$((BUDGET / 3))}
WORK=${WORK:-/tmp/hm-gpu}
SHARD=${SHARD:-1/1}
NAMES=${NAMES:-all}
started=$(date +%s)
mkdir -p "$WORK"

PY=${HM_PYTHON:-}
if [ -z "$PY" ]; then  # the machine's own python3 holds torch (with CUDA) and timm: a venv on top of it
    python3 -m venv --system-site-packages "$WORK/venv"
    PY=$WORK/venv/bin/python
    if compgen -G ".whl/*.whl" > /dev/null; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile .whl/*.whl
    fi
    "$PY" -m pip install -q --no-index --no-deps --no-build-isolation -e .
fi
HM=("$PY" -m hubmirror --root "$WORK/mirror" --quiet)

echo "== smoke test"
"$PY" - <<'EOF'
import torch, timm
ok = torch.cuda.is_available()
print(f"torch {torch.__version__}, timm {timm.__version__}, cuda {torch.version.cuda}, gpus {torch.cuda.device_count()}",
      f"({torch.cuda.get_device_name(0)})" if ok else "(no GPU: the run goes on on the CPU)")
if ok:
    x = torch.randn(1024, 1024, device="cuda")
    assert torch.allclose((x @ x).cpu(), x.cpu() @ x.cpu(), atol=1e-2, rtol=1e-2), "GPU matmul disagrees with the CPU"
EOF

echo "== mirror of timm architectures, random-initialised weights (shard $SHARD)"
"$PY" -m tests.fakes.timm_scale --root "$WORK/mirror" --cache "$WORK/generated" --names "$NAMES" --shard "$SHARD" \
    --max-params "${MAX_PARAMS:-3e7}" --workers "$(nproc)" --budget "$GEN_BUDGET" ${LIMIT:+--limit "$LIMIT"}

left=$((BUDGET - ($(date +%s) - started) - 15))
echo "== hubmirror bench --all (stopped after ${left} s if unfinished; what was measured is kept, a rerun resumes)"
bench_started=$(date +%s)
bench_since=$(date -u +%Y-%m-%dT%H:%M:%S)
EXECUTOR=${EXECUTOR:-local}
if [ "$EXECUTOR" = ray ] && ! "$PY" -c "import ray" 2>/dev/null; then
    echo "EXECUTOR=ray: ray is not installed for $PY (pip install 'hubmirror[ray]')" >&2
    exit 2
fi
timeout -s INT "$left" "${HM[@]}" bench --all --device "${DEVICE:-auto}" --dtype "${DTYPE:-fp32}" \
    --batch "${BATCH:-1}" --warmup 3 --min-iters 10 --min-seconds "${MIN_SECONDS:-0.2}" --timeout 120 \
    --executor "$EXECUTOR" ${LIMIT:+--limit "$LIMIT"} > "$WORK/bench.txt" || echo "(bench stopped: $?)"
bench_seconds=$(($(date +%s) - bench_started))
tail -n 1 "$WORK/bench.txt"

"${HM[@]}" report --format json --history > "$WORK/rows.json"
"$PY" - "$WORK/rows.json" "$bench_seconds" "$bench_since" <<'EOF'
import collections, json, statistics, sys
rows = [r for r in json.load(open(sys.argv[1])) if r["created_at"] >= sys.argv[3]]  # this run's rows only
seconds = float(sys.argv[2])
envs = [json.loads(r["environment"]) for r in rows]
over = [e["wall_seconds"] - e.get("measure_seconds", 0) for e in envs if "wall_seconds" in e]
print(f"models: {len(rows)} in {seconds:.0f} s of bench = {len(rows) * 3600 / max(seconds, 1):.0f} models/hour;",
      dict(collections.Counter(r["status"] for r in rows)), f"per-model overhead median {statistics.median(over):.2f} s"
      if over else "")
for r, e in zip(rows, envs):
    if r["status"] != "ok":
        print(f"  {r['status']:10} {r['model_key']}: {(e.get('error') or '').strip().splitlines()[-1:] }")
EOF
if [ -n "${OUT:-}" ]; then
    cp "$WORK/bench.txt" "$WORK/rows.json" "$OUT/"
    "${HM[@]}" report --format html --out "$OUT/report.html" > /dev/null
fi
