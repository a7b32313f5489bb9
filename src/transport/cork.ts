// Writing each 1 KiB frame with its own syscall dominated the CPU profile. Corking a
// stream until the next tick sends everything written in this tick (the acks for all
// messages parsed from one socket read, a batch of frames) in one writev.

interface Corkable {
  cork(): void;
  uncork(): void;
}

const corked = new WeakSet<Corkable>();

/** Corks `stream` unless already corked this tick; cork nests, so inner cork/uncork pairs stay correct. */
export function corkUntilNextTick(stream: Corkable | undefined): void {
  if (!stream || corked.has(stream) || typeof stream.cork !== 'function') return;
  corked.add(stream);
  stream.cork();
  process.nextTick(() => {
    corked.delete(stream);
    stream.uncork();
  });
}
