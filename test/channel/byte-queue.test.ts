import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ByteQueue } from '../../src/channel/byte-queue.ts';
import { decodeFrame } from '../../src/protocol/frame.ts';
import { connectedPair } from '../helpers/channel-pair.ts';

// A tiny deterministic generator, so that a failure can be replayed.
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('ByteQueue', () => {
  it('returns exactly the bytes pushed, in order, across wrap-around, growth and shrinking', () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const rnd = lcg(seed);
      const q = new ByteQueue(4096);
      const pushed: Buffer[] = [];
      const taken: Buffer[] = [];
      let grew = false;
      for (let step = 0; step < 3000; step++) {
        if (rnd() < 0.5) {
          // Mostly small writes, sometimes one larger than the whole ring.
          const n = rnd() < 0.02 ? 4096 + Math.floor(rnd() * 20_000) : Math.floor(rnd() * 3000);
          const data = randomBytes(n);
          pushed.push(Buffer.from(data));
          q.push(data);
          data.fill(0); // the caller reuses its buffer at once
          if (q.capacity > 4096) grew = true;
        } else {
          const before = q.length;
          const out = q.take(1 + Math.floor(rnd() * 1500));
          expect(q.length).toBe(before - out.length);
          taken.push(Buffer.from(out)); // copied before the next push, as the sender does
        }
      }
      taken.push(Buffer.from(q.take(q.length)));
      expect(q.length).toBe(0);
      expect(Buffer.concat(taken).equals(Buffer.concat(pushed))).toBe(true);
      expect(grew).toBe(true);
      // Emptied after growing: back to its first size.
      expect(q.capacity).toBe(4096);
    }
  });

  it('writes around the end of the ring and reads a run that wraps in one piece', () => {
    const q = new ByteQueue(16);
    q.push(Buffer.from('0123456789'));
    expect(q.take(8).toString()).toBe('01234567');
    q.push(Buffer.from('abcdefghij')); // 6 bytes to the end of the ring, 4 from its start
    expect(q.capacity).toBe(16);
    expect(q.take(12).toString()).toBe('89abcdefghij');
    q.push(Buffer.from('XYZ'));
    expect(q.take(3).toString()).toBe('XYZ');
  });

  it('grows around a wrapped run without reordering it', () => {
    const q = new ByteQueue(16);
    q.push(Buffer.from('0123456789abcd'));
    q.take(12);
    q.push(Buffer.from('efghijkl')); // wrapped: 'cd' + 'efghijkl'
    q.push(Buffer.from('mnopqrstuvwxyz')); // needs 24 of 16
    expect(q.capacity).toBe(32);
    expect(q.take(100).toString()).toBe('cdefghijklmnopqrstuvwxyz');
  });

  it('take() of more than is queued returns what there is; take() of an empty queue returns nothing', () => {
    const q = new ByteQueue(64);
    expect(q.take(10).length).toBe(0);
    q.push(Buffer.from('abc'));
    expect(q.take(10).toString()).toBe('abc');
    expect(q.length).toBe(0);
  });
});

describe('ReliableChannel.write copies its input', () => {
  it('frames the bytes as they were at write(), even when the caller reuses the buffer at once', () => {
    // A window of 4 frames: nearly everything waits in the queue, not in frames.
    const { client, agent } = connectedPair({ window: 4 });
    const reused = Buffer.alloc(5000);
    const sent: Buffer[] = [];
    for (let i = 0; i < 20; i++) {
      randomBytes(reused.length).copy(reused);
      sent.push(Buffer.from(reused));
      client.write(reused, 2); // frames what the window allows, queues the rest
    }
    expect(client.pendingBytes).toBeGreaterThan(90_000);
    const got: Buffer[] = [];
    for (let round = 0; round < 200 && Buffer.concat(got).length < 100_000; round++) {
      for (const b of client.drain().transmit) {
        const f = decodeFrame(b);
        if (f.ok && f.value.payloadType === 1) agent.receive(b, 3 + round);
      }
      const out = agent.drain();
      got.push(...out.deliver);
      for (const b of out.transmit) client.receive(b, 3 + round);
    }
    expect(Buffer.concat(got).equals(Buffer.concat(sent))).toBe(true);
  });
});
