# Shared by the bash benchmark scripts (source it): loopback ports and
# /proc readings.

die() { echo "bench: $*" >&2; exit 1; }

# free_ports N: N distinct free loopback TCP ports on one line (the kernel's
# ephemeral ports, bound at once so they differ, then released).
free_ports() {
  node -e '
    const net = require("node:net");
    const k = Number(process.argv[1]);
    const s = Array.from({ length: k }, () => net.createServer());
    let n = 0;
    for (const x of s) x.listen(0, "127.0.0.1", () => {
      if (++n < k) return;
      console.log(s.map((y) => y.address().port).join(" "));
      s.forEach((y) => y.close());
    });' "$1"
}

# proc_cpu_ticks PID: utime+stime (all threads) of a process, in clock ticks.
proc_cpu_ticks() {
  local line rest
  read -r line <"/proc/$1/stat" || return 1
  rest=${line##*) } # fields from 3 (state) on; comm may hold spaces
  # shellcheck disable=SC2086
  set -- $rest
  echo $((${12} + ${13}))
}

# sys_busy_ticks: whole machine, non-idle CPU ticks (all CPUs) from /proc/stat.
sys_busy_ticks() {
  local user nice system irq softirq steal
  read -r _ user nice system _ _ irq softirq steal _ </proc/stat
  echo $((user + nice + system + irq + softirq + steal))
}
