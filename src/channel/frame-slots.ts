// Reused storage for data frames in flight (PROTOCOL.md §8.7: at most a window of
// them). A frame of its own per Buffer.allocUnsafe is a slice of an 8 KiB pool:
// when those pools were promoted before their frames were acked, dead ones piled up
// at the upload rate until a major collection (peaks of 80+ MiB instead of 61).
// Slots are carved from a few slabs instead and reused after the frame's ack.
//
// A slot is reused only after two further drain() calls: the acked frame may still
// be in the output of the turn in which its ack arrived (a retransmission queued
// earlier in that turn). The owner of the channel must therefore consume (copy or
// write) each drain()'s frames before it calls drain() again.
const SLOTS_PER_SLAB = 64;

export class FrameSlots {
  private readonly free: Buffer[] = [];
  private retiring: Buffer[] = [];
  private retired: Buffer[] = [];
  /** Slabs allocated so far; tests check that reuse keeps this small. */
  slabs = 0;

  constructor(readonly slotSize: number) {}

  acquire(): Buffer {
    const slot = this.free.pop();
    if (slot !== undefined) return slot;
    const slab = Buffer.allocUnsafeSlow(this.slotSize * SLOTS_PER_SLAB);
    this.slabs++;
    for (let i = SLOTS_PER_SLAB - 1; i > 0; i--) this.free.push(slab.subarray(i * this.slotSize, (i + 1) * this.slotSize));
    return slab.subarray(0, this.slotSize);
  }

  /** The frame in `slot` has been acked. */
  retire(slot: Buffer): void {
    this.retiring.push(slot);
  }

  /** At every drain(): what was retired before the previous drain() becomes free. */
  advance(): void {
    const done = this.retired;
    for (let i = 0; i < done.length; i++) this.free.push(done[i]);
    done.length = 0;
    this.retired = this.retiring;
    this.retiring = done;
  }
}

/**
 * Storage for frames that are sent once and never kept (acks), carved from two
 * buffers in turn. What is taken before a drain() is overwritten only after the next
 * drain(), so the same consume-before-the-next-drain() rule as for slots applies.
 */
export class FlipArena {
  private readonly halves: [Buffer, Buffer];
  private current = 0;
  private used = 0;

  constructor(readonly size: number) {
    this.halves = [Buffer.allocUnsafeSlow(size), Buffer.allocUnsafeSlow(size)];
  }

  /** `n` bytes, or undefined when this turn's half is full (the caller allocates). */
  take(n: number): Buffer | undefined {
    const start = this.used;
    if (start + n > this.size) return undefined;
    this.used = start + n;
    return this.halves[this.current].subarray(start, start + n);
  }

  /** At every drain(): switch to the half last used two drain() calls ago. */
  flip(): void {
    this.current ^= 1;
    this.used = 0;
  }
}
