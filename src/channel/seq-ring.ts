// The sender's unacked frames, keyed by sequence number. Frames are added with
// consecutive numbers and removed in any order (acks are per frame). A Map did this
// with a new hash table every few hundred frames as deleted entries piled up; a
// power-of-two ring indexed by the number itself allocates only when the span from
// the oldest unacked frame to the newest outgrows it.
export class SeqRing<T> {
  private slots: (T | undefined)[];
  private mask: number;
  /** Lowest sequence number that may be present (the oldest unacked one when size > 0). */
  private base = 0;
  /** One past the highest sequence number added. */
  private end = 0;
  size = 0;

  constructor(initialCapacity = 256) {
    let cap = 1;
    while (cap < initialCapacity) cap *= 2;
    this.slots = new Array<T | undefined>(cap).fill(undefined);
    this.mask = cap - 1;
  }

  /** Adds `value` under `seq`, which must be one past the last added while anything is held. */
  add(seq: number, value: T): void {
    if (this.size === 0) this.base = this.end = seq;
    else if (seq !== this.end) throw new RangeError(`sequence ${seq} added after ${this.end - 1}`);
    if (seq - this.base >= this.slots.length) this.grow();
    this.slots[seq & this.mask] = value;
    this.end = seq + 1;
    this.size++;
  }

  get(seq: number): T | undefined {
    return seq >= this.base && seq < this.end ? this.slots[seq & this.mask] : undefined;
  }

  delete(seq: number): boolean {
    if (seq < this.base || seq >= this.end || this.slots[seq & this.mask] === undefined) return false;
    this.slots[seq & this.mask] = undefined;
    this.size--;
    if (this.size === 0) this.base = this.end;
    else if (seq === this.base) {
      let b = seq + 1;
      while (this.slots[b & this.mask] === undefined) b++;
      this.base = b;
    }
    return true;
  }

  /** The entry with the lowest sequence number. */
  first(): T | undefined {
    return this.size > 0 ? this.slots[this.base & this.mask] : undefined;
  }

  /**
   * Iteration, oldest first: `for (let s = r.lowest; s < r.limit; s++)` with `r.at(s)`,
   * which is undefined for numbers already removed. Not to be mixed with add/delete.
   */
  get lowest(): number {
    return this.base;
  }

  get limit(): number {
    return this.end;
  }

  at(seq: number): T | undefined {
    return this.slots[seq & this.mask];
  }

  private grow(): void {
    const old = this.slots;
    const oldMask = this.mask;
    const cap = old.length * 2;
    this.slots = new Array<T | undefined>(cap).fill(undefined);
    this.mask = cap - 1;
    for (let s = this.base; s < this.end; s++) this.slots[s & this.mask] = old[s & oldMask];
  }
}
