import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { FlipArena, FrameSlots } from '../../src/channel/frame-slots.ts';
import { decodeFrame } from '../../src/protocol/frame.ts';
import { connectedPair } from '../helpers/channel-pair.ts';

describe('FrameSlots', () => {
  it('gives a retired slot out again only after two more drains', () => {
    const slots = new FrameSlots(100);
    const a = slots.acquire();
    slots.retire(a);
    const taken = new Set<number>();
    const grab = () => {
      const s = slots.acquire();
      taken.add(s.byteOffset);
      return s;
    };
    for (let i = 0; i < 10; i++) grab();
    slots.advance(); // the drain of the turn in which `a` was acked
    for (let i = 0; i < 10; i++) grab();
    expect(taken.has(a.byteOffset)).toBe(false);
    slots.advance();
    const again = slots.acquire();
    expect(again.byteOffset).toBe(a.byteOffset);
    expect(again.buffer).toBe(a.buffer);
    expect(slots.slabs).toBe(1);
  });

  it('hands out disjoint slots of the configured size', () => {
    const slots = new FrameSlots(1144);
    const seen: Buffer[] = [];
    for (let i = 0; i < 200; i++) seen.push(slots.acquire());
    expect(seen.every((s) => s.length === 1144)).toBe(true);
    const slabs: ArrayBufferLike[] = [];
    for (const s of seen) if (!slabs.includes(s.buffer)) slabs.push(s.buffer);
    const keys = new Set(seen.map((s) => `${slabs.indexOf(s.buffer)}:${s.byteOffset}`));
    expect(keys.size).toBe(200);
    expect(slots.slabs).toBe(4);
  });
});

describe('FlipArena', () => {
  it('reuses storage only after two flips, and says when a turn is full', () => {
    const arena = new FlipArena(1000);
    const a = arena.take(400)!;
    const b = arena.take(400)!;
    expect(arena.take(400)).toBeUndefined();
    expect(a.buffer).toBe(b.buffer);
    expect(b.byteOffset - a.byteOffset).toBe(400);
    arena.flip();
    const c = arena.take(400)!;
    expect(c.buffer).not.toBe(a.buffer);
    arena.flip();
    expect(arena.take(400)!.byteOffset).toBe(a.byteOffset);
  });
});

describe('ReliableChannel with reused frame buffers', () => {
  it('keeps the acks of one drain() intact while the next turn builds its own', () => {
    const { client, agent } = connectedPair({ window: 64, reuseFrameBuffers: true });
    const turns = [randomBytes(20 * 1024), randomBytes(20 * 1024), randomBytes(20 * 1024)];
    let held: { views: Buffer[]; copies: Buffer[] } | undefined;
    let now = 10;
    for (const data of turns) {
      client.write(data, now);
      for (const b of client.drain().transmit) agent.receive(Buffer.from(b), now);
      // The previous drain()'s acks are still unsent while this turn's are built.
      if (held) expect(held.views.map((v) => v.toString('hex'))).toEqual(held.copies.map((c) => c.toString('hex')));
      const acks = agent.drain().transmit;
      expect(acks.length).toBe(20);
      held = { views: acks, copies: acks.map((b) => Buffer.from(b)) };
      for (const a of acks) client.receive(a, now);
      now += 5;
    }
    expect(client.unacked).toBe(0);
  });


  it('keeps a queued retransmission intact when its ack and new data arrive in the same turn', () => {
    const { client, agent } = connectedPair({ window: 4, reuseFrameBuffers: true });
    client.write(randomBytes(4096), 10);
    const first = client.drain().transmit.map((b) => Buffer.from(b));
    expect(first.length).toBe(4);
    // The agent gets them; its acks are held back for now.
    for (const b of first) agent.receive(b, 11);
    const acks = agent.drain().transmit;
    expect(acks.length).toBe(4);
    // Long after: the oldest frame is retransmitted into this turn's output...
    client.tick(20_000);
    // ...then, in the same turn, every ack arrives and new data takes the window.
    for (const a of acks) client.receive(a, 20_000);
    client.write(randomBytes(4096), 20_000);
    const out = client.drain().transmit;
    const bySeq = new Map<number, Buffer[]>();
    for (const b of out) {
      const f = decodeFrame(b);
      expect(f.ok).toBe(true); // digest and all
      if (!f.ok) continue;
      bySeq.set(f.value.sequenceNumber, [...(bySeq.get(f.value.sequenceNumber) ?? []), b]);
    }
    const resent = bySeq.get(first.map((b) => (decodeFrame(b) as { ok: true; value: { sequenceNumber: number } }).value.sequenceNumber)[0]);
    expect(resent).toBeDefined();
    expect(resent!.every((b) => b.equals(first[0]))).toBe(true);
    expect(out.length).toBeGreaterThanOrEqual(5); // the retransmission and 4 new frames
  });

  it('moves a long stream byte-exact through a lossy link with a bounded number of slabs', () => {
    const window = 32;
    const { client, agent } = connectedPair({ window, reuseFrameBuffers: true });
    const data = randomBytes(3 * 1024 * 1024);
    let written = 0;
    const got: Buffer[] = [];
    let gotBytes = 0;
    let now = 100;
    let drop = 0;
    for (let round = 0; round < 20_000 && gotBytes < data.length; round++) {
      now += 5;
      if (written < data.length && client.pendingBytes < 64 * 1024) {
        const n = Math.min(48 * 1024, data.length - written);
        client.write(data.subarray(written, written + n), now);
        written += n;
      }
      client.tick(now);
      for (const b of client.drain().transmit) {
        if (++drop % 37 === 0) continue; // lost on the way
        // A copy, as the network makes: the agent holds out-of-order frames for a while.
        agent.receive(Buffer.from(b), now);
      }
      const back = agent.drain();
      for (const d of back.deliver) {
        got.push(Buffer.from(d));
        gotBytes += d.length;
      }
      for (const b of back.transmit) {
        if (++drop % 41 === 0) continue;
        client.receive(b, now);
      }
    }
    expect(gotBytes).toBe(data.length);
    expect(Buffer.concat(got).equals(data)).toBe(true);
    expect(client.senderStats.retransmissions).toBeGreaterThan(0);
    // A window in flight plus two turns of acked frames, at 64 slots a slab.
    expect(client.frameSlabs).toBeLessThanOrEqual(Math.ceil((3 * window) / 64) + 1);
  });
});
