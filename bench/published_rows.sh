# shellcheck shell=bash
# Shared by the scripts that plan published runs at their layouts (bridge_h100.sh,
# nemo_h100.sh); source it, then call plan_row per row and row_summary per group.
#
#   plan_row BIN GROUP NAME MEASURED FIGURE ARGS
#     plans `BIN plan ARGS`, reads the report's `per GPU` line (FIGURE tflops: its model
#     TFLOP/s, tokens: its tokens/s), prints NAME, MEASURED, the prediction and the signed
#     error, and adds the error to the group GROUP. A layout the tool finds no split for is
#     printed with the tool's reason and compared with nothing.
#   row_summary GROUP LABEL
#     prints the median and worst absolute error of the group.

declare -A published_rows_errors=()

plan_row() {
  local bin=$1 group=$2 name=$3 measured=$4 figure=$5 args=$6 out line predicted error
  # shellcheck disable=SC2086
  if ! out=$("$bin" plan $args 2>&1); then
    printf '%-48s %10s %10s  (%s)\n' "$name" "$measured" "-" \
      "$(tail -1 <<<"$out" | sed 's/^pp-partition: //')"
    return 0
  fi
  line=$(grep '^per GPU' <<<"$out")
  if [[ $figure == tflops ]]; then
    predicted=$(sed -E 's/.*, ([0-9.]+) model TFLOP\/s.*/\1/' <<<"$line")
  else
    predicted=$(sed -E 's/^per GPU *([0-9.]+) tokens\/s.*/\1/' <<<"$line")
  fi
  error=$(awk -v p="$predicted" -v m="$measured" 'BEGIN { printf "%+.1f", 100 * (p - m) / m }')
  printf '%-48s %10s %10s %7s%%\n' "$name" "$measured" "$predicted" "$error"
  published_rows_errors[$group]+="$error "
}

row_summary() {
  local group=$1 label=$2
  # shellcheck disable=SC2086
  printf '%s\n' ${published_rows_errors[$group]} | tr -d '+-' | sort -g | awk -v label="$label" '
    { a[NR] = $1 }
    END {
      median = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
      printf "%s: |error| median %.1f%%, worst %.1f%% over %d rows\n", label, median, a[NR], NR
    }'
}
