// A deterministic simulated link between two ReliableChannels, driven by a fake clock.
import type { ReliableChannel } from '../../src/channel/channel.ts';
import { decodeFrame } from '../../src/protocol/frame.ts';
import { Rng } from './rng.ts';

export interface LinkFaults {
  loss: number;
  duplicate: number;
  /** Extra random delay (ms) up to this value: frames overtake each other. */
  jitterMs: number;
  delayMs: number;
}

interface InFlight {
  at: number;
  seq: number; // tie-break for a stable order
  to: 0 | 1;
  bytes: Buffer;
}

export class SimLink {
  now = 0;
  private queue: InFlight[] = [];
  private order = 0;
  readonly rng: Rng;
  /** Client frames the link saw transmitted while the client was paused. */
  dataSentWhilePaused = 0;
  transmitted = [0, 0];
  lost = [0, 0];

  constructor(
    readonly ends: [ReliableChannel, ReliableChannel],
    readonly faults: [LinkFaults, LinkFaults],
    seed: number,
  ) {
    this.rng = new Rng(seed);
  }

  send(from: 0 | 1, bytes: Buffer): void {
    const f = this.faults[from];
    this.transmitted[from]++;
    if (this.ends[from].paused) {
      const d = decodeFrame(bytes);
      if (d.ok && d.value.messageType.endsWith('_stream_data')) this.dataSentWhilePaused++;
    }
    if (this.rng.chance(f.loss)) {
      this.lost[from]++;
      return;
    }
    const copies = this.rng.chance(f.duplicate) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const at = this.now + f.delayMs + this.rng.next() * f.jitterMs;
      this.queue.push({ at, seq: this.order++, to: from === 0 ? 1 : 0, bytes });
    }
  }

  /** Injects a service message (e.g. pause_publication) to one end, now. */
  inject(to: 0 | 1, bytes: Buffer): void {
    this.queue.push({ at: this.now, seq: this.order++, to, bytes });
  }

  nextEventAt(): number {
    let t = Infinity;
    for (const q of this.queue) if (q.at < t) t = q.at;
    return t;
  }

  /** Delivers every frame due at or before `now`, in time order. */
  deliverDue(onDeliver: (to: 0 | 1, bytes: Buffer) => void): void {
    for (;;) {
      let best = -1;
      for (let i = 0; i < this.queue.length; i++) {
        const q = this.queue[i];
        if (q.at > this.now) continue;
        if (best < 0 || q.at < this.queue[best].at || (q.at === this.queue[best].at && q.seq < this.queue[best].seq)) best = i;
      }
      if (best < 0) return;
      const [q] = this.queue.splice(best, 1);
      onDeliver(q.to, q.bytes);
    }
  }

  get pending(): number {
    return this.queue.length;
  }
}
