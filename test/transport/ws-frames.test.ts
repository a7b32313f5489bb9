import { describe, expect, it } from 'vitest';
import { createRequire } from 'node:module';
import type { EventEmitter } from 'node:events';
import { BatchArenas, encodeBinaryMessages } from '../../src/transport/ws-frames.ts';

// ws exports its frame parser at run time; @types/ws does not declare it.
interface WsReceiver extends EventEmitter {
  write(chunk: Buffer, cb: (err?: Error | null) => void): boolean;
}
const Receiver = createRequire(import.meta.url)('ws').Receiver as new (opts: { isServer: boolean; binaryType: string; maxPayload: number }) => WsReceiver;

// ws's own parser is the judge: what it reads back must be the payloads, in order.
function parse(bytes: Buffer, isServer: boolean): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const got: Buffer[] = [];
    const r = new Receiver({ isServer, binaryType: 'nodebuffer', maxPayload: 1 << 20 });
    r.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) reject(new Error('not binary'));
      got.push(Buffer.from(data));
    });
    r.on('error', reject);
    r.write(bytes, (err) => (err ? reject(err) : resolve(got)));
  });
}

describe('encodeBinaryMessages', () => {
  const sizes = [0, 1, 47, 48, 125, 126, 1144, 65535, 65536, 70000];
  const payloads = sizes.map((n, i) => Buffer.alloc(n, i + 1).map((b, j) => (b + j) & 0xff) as Buffer);

  it('masks client frames with a fresh key each and ws reads them back (server side)', async () => {
    const bytes = encodeBinaryMessages(payloads, true);
    const got = await parse(bytes, true);
    expect(got.length).toBe(payloads.length);
    got.forEach((g, i) => expect(g.equals(payloads[i])).toBe(true));
    // Every frame carries the MASK bit.
    expect(bytes[1] & 0x80).toBe(0x80);
  });

  it('writes unmasked server frames that ws reads back (client side)', async () => {
    const got = await parse(encodeBinaryMessages(payloads, false), false);
    got.forEach((g, i) => expect(g.equals(payloads[i])).toBe(true));
  });

  // The first 256 KiB a process masks are masked in JavaScript, the rest by bufferutil
  // when it is installed: frames on both sides of the switch must read back the same.
  it('masks correctly before and after the switch to the native helper', async () => {
    const bulk = Array.from({ length: 400 }, (_, i) => Buffer.alloc(1024, i & 0xff).map((b, j) => (b * 31 + j) & 0xff) as Buffer);
    const got = await parse(encodeBinaryMessages(bulk, true), true);
    expect(got.length).toBe(bulk.length);
    got.forEach((g, i) => expect(g.equals(bulk[i])).toBe(true));
    const after = await parse(encodeBinaryMessages(payloads, true), true);
    after.forEach((g, i) => expect(g.equals(payloads[i])).toBe(true));
  });

  it('uses the shortest length encoding, as ws does', () => {
    expect(encodeBinaryMessages([Buffer.alloc(125)], false).length).toBe(2 + 125);
    expect(encodeBinaryMessages([Buffer.alloc(126)], false).length).toBe(4 + 126);
    expect(encodeBinaryMessages([Buffer.alloc(65536)], true).length).toBe(14 + 65536);
  });

  it('does not change the payloads it masks', () => {
    const p = Buffer.from('input that must stay as it was');
    const copy = Buffer.from(p);
    encodeBinaryMessages([p, p], true);
    expect(p.equals(copy)).toBe(true);
  });
});

describe('BatchArenas', () => {
  it('reuses an arena only after every write from it is done', async () => {
    const arenas = new BatchArenas();
    const frames = [Buffer.alloc(1000, 7), Buffer.alloc(1000, 8)];
    const first = arenas.encode(frames, false);
    const kept = Buffer.from(first.bytes);
    // Fill well past one arena while the first write is still pending.
    const later = [];
    for (let i = 0; i < 400; i++) later.push(arenas.encode([Buffer.alloc(1000, i & 0xff)], false));
    expect(first.bytes.equals(kept)).toBe(true);
    for (const l of later) l.done();
    for (let i = 0; i < 400; i++) arenas.encode([Buffer.alloc(1000, 0xee)], false).done();
    expect(first.bytes.equals(kept)).toBe(true);
    first.done();
    expect(await parse(kept, false)).toEqual(frames);
  });

  it('encodes what encodeBinaryMessages encodes', async () => {
    const arenas = new BatchArenas();
    const p = [Buffer.from('a'), Buffer.alloc(300, 1), Buffer.alloc(70000, 2)];
    expect(arenas.encode(p, false).bytes.equals(encodeBinaryMessages(p, false))).toBe(true);
    expect(await parse(arenas.encode(p, true).bytes, true)).toEqual(p);
  });

  it('gathers buffers into one, in order, from the same arenas', () => {
    const arenas = new BatchArenas();
    const parts = [Buffer.from('ab'), Buffer.alloc(0), Buffer.alloc(1024, 3), Buffer.from('z')];
    const g = arenas.gather(parts);
    expect(g.bytes.equals(Buffer.concat(parts))).toBe(true);
    const kept = Buffer.from(g.bytes);
    for (let i = 0; i < 600; i++) arenas.gather([Buffer.alloc(1000, 0xee)]).done();
    expect(g.bytes.equals(kept)).toBe(true);
    const big = arenas.gather([Buffer.alloc(200 * 1024, 1), Buffer.alloc(100 * 1024, 2)]);
    expect(big.bytes.equals(Buffer.concat([Buffer.alloc(200 * 1024, 1), Buffer.alloc(100 * 1024, 2)]))).toBe(true);
  });
});
