import { describe, expect, it } from 'vitest';
import { createRequire } from 'node:module';
import type { EventEmitter } from 'node:events';
import { WsReceiver, isValidCloseCode } from '../../src/transport/ws-receiver.ts';
import { Rng } from '../helpers/rng.ts';

// ws's own frame parser (exported at run time, not declared by @types/ws) is the judge.
interface WsParser extends EventEmitter {
  write(chunk: Buffer): boolean;
}
const Receiver = createRequire(import.meta.url)('ws').Receiver as new (opts: { isServer: boolean; binaryType: string; maxPayload: number }) => WsParser;

type Event = ['message', string, boolean] | ['ping', string] | ['pong', string] | ['close', number, string] | ['error', number];

const MAX = 4096;

function ours(chunks: Buffer[]): Event[] {
  const ev: Event[] = [];
  const r = new WsReceiver(
    {
      message: (d, binary) => ev.push(['message', d.toString('hex'), binary]),
      ping: (d) => ev.push(['ping', d.toString('hex')]),
      pong: (d) => ev.push(['pong', d.toString('hex')]),
      close: (code, reason) => ev.push(['close', code, reason]),
      error: (_m, code) => ev.push(['error', code]),
    },
    MAX,
  );
  for (const c of chunks) r.push(c);
  return ev;
}

async function theirs(chunks: Buffer[]): Promise<Event[]> {
  const ev: Event[] = [];
  const r = new Receiver({ isServer: false, binaryType: 'nodebuffer', maxPayload: MAX });
  r.on('message', (d: Buffer, binary: boolean) => ev.push(['message', d.toString('hex'), binary]));
  r.on('ping', (d: Buffer) => ev.push(['ping', d.toString('hex')]));
  r.on('pong', (d: Buffer) => ev.push(['pong', d.toString('hex')]));
  r.on('conclude', (code: number, reason: Buffer) => ev.push(['close', code, reason.toString()]));
  r.on('error', (err: Error) => {
    const status = Object.getOwnPropertySymbols(err).map((s) => (err as unknown as Record<symbol, unknown>)[s]).find((v) => typeof v === 'number');
    ev.push(['error', status as number]);
  });
  for (const c of chunks) {
    if (r.listenerCount('conclude') === 0 || ev.some((e) => e[0] === 'close' || e[0] === 'error')) break;
    r.write(c);
  }
  await new Promise((resolve) => setImmediate(resolve));
  return ev;
}

interface FrameSpec {
  fin?: boolean;
  opcode: number;
  payload: Buffer;
  rsv?: number;
  masked?: boolean;
  /** Force a longer length encoding than needed (legal). */
  wideLength?: 16 | 64;
  /** Claim this length instead of the payload's (for out-of-range lengths; payload unused). */
  claimedLength?: bigint;
}

function frame(f: FrameSpec): Buffer {
  const n = f.payload.length;
  const b0 = ((f.fin ?? true) ? 0x80 : 0) | ((f.rsv ?? 0) << 4) | f.opcode;
  const mask = f.masked ? 0x80 : 0;
  let head: Buffer;
  if (f.claimedLength !== undefined) {
    head = Buffer.alloc(10);
    head[1] = mask | 127;
    head.writeBigUInt64BE(f.claimedLength, 2);
  } else if (n < 126 && f.wideLength === undefined) {
    head = Buffer.from([0, mask | n]);
  } else if (n < 65536 && f.wideLength !== 64) {
    head = Buffer.alloc(4);
    head[1] = mask | 126;
    head.writeUInt16BE(n, 2);
  } else {
    head = Buffer.alloc(10);
    head[1] = mask | 127;
    head.writeBigUInt64BE(BigInt(n), 2);
  }
  head[0] = b0;
  // A masked frame gets a zero key, so its payload is unchanged (it is refused anyway).
  return Buffer.concat([head, f.masked ? Buffer.alloc(4) : Buffer.alloc(0), f.payload]);
}

function text(rng: Rng, n: number): Buffer {
  const alphabet = ['a', 'Z', '0', ' ', 'é', '€', '𝄞', '\n'];
  let s = '';
  while (Buffer.byteLength(s) < n) s += alphabet[rng.int(alphabet.length)];
  return Buffer.from(s);
}

function closePayload(code: number, reason: string): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(code);
  return Buffer.concat([b, Buffer.from(reason)]);
}

/** A valid stream of messages, with control frames between fragments. */
function validStream(rng: Rng): Buffer[] {
  const frames: Buffer[] = [];
  const messages = 1 + rng.int(12);
  for (let m = 0; m < messages; m++) {
    const isText = rng.chance(0.2);
    const size = rng.chance(0.1) ? rng.int(MAX + 1) : rng.int(1300);
    const payload = isText ? text(rng, size) : rng.bytes(size);
    const pieces = rng.chance(0.3) ? 1 + rng.int(4) : 1;
    const cuts = [...Array(pieces - 1)].map(() => rng.int(payload.length + 1)).sort((a, b) => a - b);
    const bounds = [0, ...cuts, payload.length];
    for (let i = 0; i < pieces; i++) {
      const wide = rng.chance(0.1) ? (rng.chance(0.5) ? 16 : 64) : undefined;
      frames.push(frame({ fin: i === pieces - 1, opcode: i === 0 ? (isText ? 1 : 2) : 0, payload: payload.subarray(bounds[i], bounds[i + 1]), wideLength: wide }));
      if (rng.chance(0.15)) frames.push(frame({ opcode: rng.chance(0.5) ? 9 : 10, payload: rng.bytes(rng.int(126)) }));
    }
  }
  return frames;
}

/** One frame that breaks the protocol. */
function badFrame(rng: Rng): Buffer[] {
  const cases: Array<() => Buffer[]> = [
    () => [frame({ opcode: 2, payload: rng.bytes(10), rsv: 1 + rng.int(7) })],
    () => [frame({ opcode: 2, payload: rng.bytes(10), masked: true })],
    () => [frame({ opcode: [3, 4, 5, 6, 7, 11, 12, 13, 14, 15][rng.int(10)], payload: rng.bytes(3) })],
    () => [frame({ opcode: 0, payload: rng.bytes(5) })],
    () => [frame({ fin: false, opcode: 2, payload: rng.bytes(5) }), frame({ opcode: 2, payload: rng.bytes(5) })],
    () => [frame({ fin: false, opcode: 9, payload: rng.bytes(5) })],
    () => [frame({ opcode: 10, payload: rng.bytes(126) })],
    () => [frame({ opcode: 2, payload: rng.bytes(MAX + 1) })],
    () => [frame({ fin: false, opcode: 2, payload: rng.bytes(MAX - 10) }), frame({ opcode: 0, payload: rng.bytes(11) })],
    () => [frame({ opcode: 2, payload: Buffer.alloc(0), claimedLength: 2n ** 53n })],
    () => [frame({ opcode: 1, payload: Buffer.from([0x61, 0xc3, 0x28]) })],
    () => [frame({ opcode: 8, payload: Buffer.from([3]) })],
    () => [frame({ opcode: 8, payload: closePayload([0, 999, 1004, 1005, 1006, 1015, 2000, 5000][rng.int(8)], 'x') })],
    () => [frame({ opcode: 8, payload: Buffer.concat([closePayload(1000, ''), Buffer.from([0xff, 0xfe])]) })],
  ];
  return cases[rng.int(cases.length)]();
}

/** Cuts the stream at random places, 1-byte reads included. */
function chop(rng: Rng, bytes: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let o = 0;
  while (o < bytes.length) {
    const n = rng.chance(0.2) ? 1 + rng.int(3) : rng.chance(0.5) ? 1 + rng.int(200) : 1 + rng.int(9000);
    out.push(Buffer.from(bytes.subarray(o, o + n)));
    o += n;
  }
  return out;
}

describe('WsReceiver', () => {
  it('reports what ws reports, for valid streams cut anywhere (400 seeds)', async () => {
    for (let seed = 1; seed <= 400; seed++) {
      const rng = new Rng(seed);
      const frames = validStream(rng);
      const ending = rng.int(3);
      if (ending === 1) frames.push(frame({ opcode: 8, payload: Buffer.alloc(0) }));
      if (ending === 2) frames.push(frame({ opcode: 8, payload: closePayload(isValidCloseCode(4000 + seed) ? 4000 + seed : 1000, 'bye é') }));
      const chunks = chop(rng, Buffer.concat(frames));
      const expected = await theirs(chunks);
      expect(expected.filter((e) => e[0] === 'error')).toEqual([]);
      expect(ours(chunks), `seed ${seed}`).toEqual(expected);
    }
  });

  it('fails as ws does on every kind of protocol error, after the same messages (300 seeds)', async () => {
    let errors = 0;
    for (let seed = 1; seed <= 300; seed++) {
      const rng = new Rng(seed * 7919);
      const frames = [...validStream(rng).slice(0, 3), ...badFrame(rng), frame({ opcode: 2, payload: rng.bytes(20) })];
      const chunks = chop(rng, Buffer.concat(frames));
      const expected = await theirs(chunks);
      const got = ours(chunks);
      expect(got, `seed ${seed}`).toEqual(expected);
      if (got.at(-1)?.[0] === 'error') errors++;
    }
    expect(errors).toBeGreaterThan(250);
  });

  it('reports nothing after a close frame', () => {
    const chunks = [Buffer.concat([frame({ opcode: 8, payload: closePayload(1000, '') }), frame({ opcode: 2, payload: Buffer.from('late') })])];
    expect(ours(chunks)).toEqual([['close', 1000, '']]);
  });

  it('hands up a view of the read, not a copy, when a message arrives whole', () => {
    const read = Buffer.concat([frame({ opcode: 2, payload: Buffer.from('abc') }), frame({ opcode: 2, payload: Buffer.from('defg') })]);
    const got: Buffer[] = [];
    const r = new WsReceiver({ message: (d) => got.push(d), ping() {}, pong() {}, close() {}, error() {} }, MAX);
    r.push(read);
    expect(got.map((b) => b.toString())).toEqual(['abc', 'defg']);
    expect(got.every((b) => b.buffer === read.buffer)).toBe(true);
  });
});
