// Milliseconds since the process started, from a monotonic clock. The `performance`
// global would do, but its first use loads perf_hooks and its eight internal modules:
// a few ms of every start-up, for a number process.uptime() already has.
export function monotonicMs(): number {
  return process.uptime() * 1000;
}
