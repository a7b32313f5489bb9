import { describe, expect, it } from 'vitest';
import { ReliableChannel, type ChannelEvent } from '../../src/channel/channel.ts';
import { encodeFrame } from '../../src/protocol/frame.ts';
import { SimLink, type LinkFaults } from '../helpers/link.ts';
import { Rng } from '../helpers/rng.ts';

interface Scenario {
  name: string;
  faults: LinkFaults;
  chunks: number;
  pauses?: boolean;
  consumerStalls?: boolean;
  seed: number;
}

const CLEAN: LinkFaults = { loss: 0, duplicate: 0, jitterMs: 0, delayMs: 2 };

/** Random chunks of 1..2048 bytes: sizes both under and over the 1024-byte frame payload. */
function makeChunks(rng: Rng, n: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) out.push(rng.bytes(1 + rng.int(2048)));
  return out;
}

function pauseFrame(type: 'pause_publication' | 'start_publication', t: number): Buffer {
  return encodeFrame({ messageType: type, createdDate: 1730000000000 + t, sequenceNumber: 0, flags: 0, messageId: '8293a4b5-c6d7-48e9-8a1b-2c3d4e5f6071', payloadType: 0, payload: Buffer.alloc(0) });
}

function run(s: Scenario) {
  const rng = new Rng(s.seed);
  let uuidCounter = 0;
  const uuid = () => {
    const h = (++uuidCounter).toString(16).padStart(12, '0');
    return `00000000-0000-4000-8000-${h}`;
  };
  const window = 64;
  const client = new ReliableChannel({ role: 'client', now: 0, wallClock: () => 1730000000000 + link.now, randomUUID: uuid, window, giveUpMs: 0 });
  const agent = new ReliableChannel({ role: 'agent', now: 0, wallClock: () => 1730000000000 + link.now, randomUUID: uuid, window });
  const ends: [ReliableChannel, ReliableChannel] = [client, agent];
  const link: SimLink = new SimLink(ends, [s.faults, s.faults], s.seed ^ 0x9e3779b9);

  const toSend = [makeChunks(rng, s.chunks), makeChunks(rng, s.chunks)];
  const expected = toSend.map((c) => Buffer.concat(c));
  const received: Buffer[][] = [[], []];
  const nextChunk = [0, 0];
  const blocked = [false, false];
  const events: ChannelEvent[][] = [[], []];
  let paused = false;
  let pauseToggles = 0;
  let consumerStalled = false;

  const flush = (i: 0 | 1) => {
    const out = ends[i].drain();
    for (const b of out.transmit) link.send(i, b);
    received[i].push(...out.deliver.map((b) => Buffer.from(b)));
    for (const e of out.events) {
      events[i].push(e);
      if (e.type === 'drain') blocked[i] = false;
    }
  };
  const feed = (i: 0 | 1) => {
    // Producers honour back-pressure: stop on false, resume on 'drain'.
    while (ends[i].ready && !blocked[i] && nextChunk[i] < toSend[i].length) {
      if (!ends[i].write(toSend[i][nextChunk[i]++], link.now)) blocked[i] = true;
    }
    flush(i);
  };

  agent.startHandshake(0);
  flush(1);
  const done = () => received[0].reduce((n, b) => n + b.length, 0) === expected[1].length && received[1].reduce((n, b) => n + b.length, 0) === expected[0].length;

  let steps = 0;
  const MAX_STEPS = 5_000_000;
  const MAX_TIME = 3_600_000;
  while (!done()) {
    if (++steps > MAX_STEPS || link.now > MAX_TIME) throw new Error(`${s.name}: no progress (steps ${steps}, t=${link.now})`);
    feed(0);
    feed(1);
    let t = Math.min(link.nextEventAt(), client.nextDeadline(link.now), agent.nextDeadline(link.now));
    if (s.pauses) t = Math.min(t, Math.floor(link.now / 500) * 500 + 500);
    if (s.consumerStalls) t = Math.min(t, Math.floor(link.now / 300) * 300 + 300);
    if (t === Infinity) throw new Error(`${s.name}: deadlock at t=${link.now}`);
    link.now = Math.max(link.now, t);
    if (s.pauses && link.now % 500 === 0 && link.now > 0 && pauseToggles < 40) {
      // The service pauses the client for 200 ms out of every 500.
      pauseToggles++;
      paused = !paused;
      link.inject(0, pauseFrame(paused ? 'pause_publication' : 'start_publication', link.now));
    }
    if (s.consumerStalls && link.now % 300 === 0) {
      consumerStalled = !consumerStalled;
      client.setConsumerReady(!consumerStalled, link.now);
      agent.setConsumerReady(!consumerStalled, link.now);
    }
    link.deliverDue((to, bytes) => {
      ends[to].receive(bytes, link.now);
      flush(to);
    });
    client.tick(link.now);
    agent.tick(link.now);
    flush(0);
    flush(1);
  }
  return { client, agent, link, received, expected, events, window };
}

const scenarios: Scenario[] = [
  { name: 'clean', faults: CLEAN, chunks: 10_000, seed: 1 },
  { name: '5% loss', faults: { ...CLEAN, loss: 0.05 }, chunks: 10_000, seed: 2 },
  { name: '30% loss', faults: { ...CLEAN, loss: 0.3 }, chunks: 10_000, seed: 3 },
  { name: 'duplication, reordering and delay', faults: { loss: 0.02, duplicate: 0.1, jitterMs: 40, delayMs: 15 }, chunks: 10_000, seed: 4 },
  { name: '5% loss with pauses and stalled consumers', faults: { loss: 0.05, duplicate: 0.05, jitterMs: 10, delayMs: 5 }, chunks: 3_000, pauses: true, consumerStalls: true, seed: 5 },
];

describe('two channels over a simulated link (fake clock)', () => {
  for (const s of scenarios) {
    it(`${s.name}: ${s.chunks} chunks each way arrive exactly once and in order`, () => {
      const r = run(s);
      expect(Buffer.concat(r.received[1]).equals(r.expected[0])).toBe(true);
      expect(Buffer.concat(r.received[0]).equals(r.expected[1])).toBe(true);
      expect(r.client.maxDataInflight).toBeLessThanOrEqual(r.window);
      expect(r.agent.maxDataInflight).toBeLessThanOrEqual(r.window);
      expect(r.client.maxDataInflight).toBeGreaterThan(1);
      // Nothing was sent while the client was paused.
      expect(r.link.dataSentWhilePaused).toBe(0);
      expect(r.client.senderStats.sentWhilePaused).toBe(0);
      for (const evs of r.events) {
        expect(evs.filter((e) => e.type === 'fatal' || e.type === 'give-up')).toEqual([]);
        expect(evs.filter((e) => e.type === 'anomaly' && e.kind !== 'decode-error')).toEqual([]);
      }
      if (s.faults.loss > 0) {
        expect(r.link.lost[0] + r.link.lost[1]).toBeGreaterThan(0);
        expect(r.client.senderStats.retransmissions).toBeGreaterThan(0);
      }
      if (s.pauses) expect(r.events[0].filter((e) => e.type === 'paused').length).toBeGreaterThan(1);
    });
  }
});
