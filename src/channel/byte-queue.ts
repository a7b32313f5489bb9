// Stream bytes waiting to be framed (PROTOCOL.md §8.7), copied into one reused ring.
// push() copies, so the caller may reuse its buffer as soon as push() returns: stdin is
// read into a single buffer, and the upload path allocates nothing per read. A buffer
// per read, promoted before it died, let dead reads pile up to tens of MB between
// major collections.
export class ByteQueue {
  private buf: Buffer;
  private head = 0;
  private scratch: Buffer | null = null;
  length = 0;

  constructor(private readonly initialCapacity = 128 * 1024) {
    this.buf = Buffer.allocUnsafeSlow(initialCapacity);
  }

  get capacity(): number {
    return this.buf.length;
  }

  push(data: Uint8Array): void {
    const n = data.length;
    if (n === 0) return;
    if (this.length + n > this.buf.length) this.grow(this.length + n);
    const cap = this.buf.length;
    let tail = this.head + this.length;
    if (tail >= cap) tail -= cap;
    const first = Math.min(n, cap - tail);
    this.buf.set(first === n ? data : data.subarray(0, first), tail);
    if (first < n) this.buf.set(data.subarray(first), 0);
    this.length += n;
  }

  /**
   * Removes and returns the next min(n, length) bytes. The view is only valid until the
   * next push(): copy it before then.
   */
  take(n: number): Buffer {
    n = Math.min(n, this.length);
    const buf = this.buf;
    const cap = buf.length;
    let out: Buffer;
    if (this.head + n <= cap) out = buf.subarray(this.head, this.head + n);
    else {
      if (!this.scratch || this.scratch.length < n) this.scratch = Buffer.allocUnsafeSlow(Math.max(n, 4096));
      const first = cap - this.head;
      buf.copy(this.scratch, 0, this.head, cap);
      buf.copy(this.scratch, first, 0, n - first);
      out = this.scratch.subarray(0, n);
    }
    this.length -= n;
    this.head += n;
    if (this.head >= cap) this.head -= cap;
    if (this.length === 0) {
      this.head = 0;
      // One oversized write must not keep its memory for the rest of the session.
      if (cap > this.initialCapacity) this.buf = Buffer.allocUnsafeSlow(this.initialCapacity);
    }
    return out;
  }

  private grow(need: number): void {
    let cap = this.buf.length * 2;
    while (cap < need) cap *= 2;
    const next = Buffer.allocUnsafeSlow(cap);
    const first = Math.min(this.length, this.buf.length - this.head);
    this.buf.copy(next, 0, this.head, this.head + first);
    if (first < this.length) this.buf.copy(next, first, 0, this.length - first);
    this.buf = next;
    this.head = 0;
  }
}
