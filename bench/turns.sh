# Sourced by bench/run.sh (and t/bench_table.t, which checks it).
#
# in_turn I CMD...: turn I (1, 2, ...) of commands measured in turn. Odd
# turns run them forward, even turns backward, each from a start that moves
# every two turns: over 2n turns of n commands each one is first twice and
# last twice, and none always follows the same one (a rotation alone keeps
# the cycle: the same command came before each one every turn). Drift of the
# machine within a turn then falls on every command alike.
in_turn() {
  local i=$1 k n r
  shift
  local -a cmds=("$@")
  n=${#cmds[@]}
  r=$(((i / 2) % n))
  for ((k = 0; k < n; k++)); do
    if ((i % 2)); then eval "${cmds[$(((r + k) % n))]}"; else eval "${cmds[$(((r - k + n) % n))]}"; fi
  done
}
