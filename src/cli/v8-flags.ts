// V8 flags ssm-proxy runs under, set at run time (ssh starts the launcher through its #!
// line, so there is no command line to put them on). The loader sets them before it
// compiles anything, since V8 refuses cached bytecode made under other flags; main()
// sets them again for runs without the loader (tests run the sources).
//
// --semi-space-growth-factor=1: every frame allocates a little, and V8 answers that churn
//   by doubling its young generation up to tens of MB: a 64 MiB upload peaked at ~113 MB
//   RSS. V8 consults the flag each time it considers growing, so setting it at run time
//   works; set before the SDK loads, start-up does not grow it either (peak RSS 63 MB
//   against 65-66 MB when set after StartSession, for ~10 ms more start-up).
// --max-inlined-bytecode-size-cumulative=230 (V8's default 920): TurboFan compiles the hot
//   data path again in every process, on its own threads, and a quarter of a transfer's
//   CPU went there. With a quarter of the inlining budget those threads spent ~110 instead
//   of ~160 ms on a 64 MiB transfer and the main thread no more (cpu-probe, 8 interleaved
//   runs each way): 0.75 -> 0.69 s up, 0.77 -> 0.69 s down. Start-up is unchanged.
export const V8_FLAGS = '--semi-space-growth-factor=1 --max-inlined-bytecode-size-cumulative=230';
