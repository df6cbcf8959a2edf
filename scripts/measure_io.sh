#!/usr/bin/env bash
# The time and peak RSS of `xent loss` on a 1 GiB f32 [8192, 32768] .npy file and a bf16
# .safetensors file of the same shape, beside the floor of the same machine in the same run:
# `cat FILE > /dev/null` for a loss, `cp FILE OTHER` for a loss with --grad-out. Each figure is
# the median of RUNS runs (default 5), files in the page cache. Needs python3 with numpy (to
# write the inputs) and GNU time; prints a Markdown table.
#
#   scripts/measure_io.sh [DIR] [DEVICE...]      # defaults: a temporary folder; cpu gpu
set -euo pipefail
dir=${1:-$(mktemp -d)}
shift || true
if [ $# -gt 0 ]; then devices=("$@"); else devices=(cpu gpu); fi
runs=${RUNS:-5}
xent=${XENT:-target/release/xent}
[ -x "$xent" ] || cargo build --release --locked
mkdir -p "$dir"
python3 - "$dir" <<'PY'
import json, struct, sys, numpy as np
d = sys.argv[1]
rng = np.random.default_rng(19)
x = (rng.standard_normal((8192, 32768), dtype=np.float32) * 3)
np.save(f"{d}/logits.npy", x)
np.save(f"{d}/target.npy", rng.integers(0, 32768, 8192).astype(np.int64))
bf16 = (x.view(np.uint32) >> 16).astype(np.uint16)  # truncation is enough for timing
header = json.dumps({"logits": {"dtype": "BF16", "shape": [8192, 32768],
                                "data_offsets": [0, bf16.nbytes]}}).encode()
header += b" " * (-len(header) % 8)
with open(f"{d}/logits.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(header)) + header)
    bf16.tofile(f)
PY
# The median wall time and peak RSS (KiB) of a command, over $runs runs.
measure() {
  local t=() m=()
  for _ in $(seq "$runs"); do
    rm -f "$dir/out.npy" "$dir/grad.npy"
    /usr/bin/time -f "%e %M" -o "$dir/time" "$@" >/dev/null 2>"$dir/err" || { cat "$dir/err"; exit 1; }
    read -r s k <"$dir/time"; t+=("$s"); m+=("$k")
  done
  printf '%s %s\n' "$(printf '%s\n' "${t[@]}" | sort -g | sed -n "$(((runs + 1) / 2))p")" \
    "$(printf '%s\n' "${m[@]}" | sort -g | sed -n "$(((runs + 1) / 2))p")"
}
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs; runs: $runs"
echo
echo "| file | command | time | × floor | peak RSS | × file |"
echo "|---|---|---|---|---|---|"
for file in logits.npy logits.safetensors; do
  path=$dir/$file
  bytes=$(stat -c %s "$path")
  cat "$path" >/dev/null
  read -r cat_s _ < <(measure sh -c "cat '$path' > /dev/null")
  read -r cp_s _ < <(measure cp "$path" "$dir/out.npy")
  echo "| $file | \`cat\` (floor) | $cat_s s | 1 | | |"
  echo "| $file | \`cp\` (floor) | $cp_s s | 1 | | |"
  for device in "${devices[@]}"; do
    for grad in "" "--grad-out $dir/grad.npy"; do
      # shellcheck disable=SC2086
      read -r s k < <(measure "$xent" loss --device "$device" --input "$path" \
        --target "$dir/target.npy" $grad)
      floor=$([ -z "$grad" ] && echo "$cat_s" || echo "$cp_s")
      name=$([ -z "$grad" ] && echo "loss" || echo "loss --grad-out")
      awk -v f="$file" -v n="$name" -v d="$device" -v s="$s" -v fl="$floor" -v k="$k" -v b="$bytes" \
        'BEGIN { printf "| %s | `xent %s --device %s` | %s s | %.1f | %.2f GiB | %.2f |\n",
                 f, n, d, s, s / fl, k / 1048576, k * 1024 / b }'
    done
  done
done
