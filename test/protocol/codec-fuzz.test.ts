import { describe, expect, it } from 'vitest';
import { MessageType } from '../../src/protocol/constants.ts';
import { decodeFrame, encodeFrame } from '../../src/protocol/frame.ts';
import { Rng } from '../helpers/rng.ts';

function seedFrames(rng: Rng): Buffer[] {
  const out: Buffer[] = [];
  const types = [MessageType.InputStreamData, MessageType.OutputStreamData, MessageType.Acknowledge, MessageType.ChannelClosed, MessageType.PausePublication];
  for (let i = 0; i < 32; i++) {
    out.push(
      encodeFrame({
        messageType: types[i % types.length],
        createdDate: 1730000000000 + i,
        sequenceNumber: i,
        flags: i % 4,
        messageId: rng.uuid(),
        payloadType: i % 13,
        payload: rng.bytes(i === 0 ? 0 : rng.int(300)),
      }),
    );
  }
  return out;
}

function mutate(rng: Rng, src: Buffer): Buffer {
  const kind = rng.int(6);
  if (kind === 0) return src.subarray(0, rng.int(src.length + 1)); // truncation
  if (kind === 1) return Buffer.concat([src, rng.bytes(1 + rng.int(64))]); // trailing garbage
  const b = Buffer.from(src);
  if (kind === 2) {
    // flip bits anywhere
    const n = 1 + rng.int(4);
    for (let i = 0; i < n; i++) b[rng.int(b.length)] ^= 1 << rng.int(8);
  } else if (kind === 3) {
    // overwrite a header integer with an extreme value
    if (rng.chance(0.3)) {
      const off64 = [40, 48, 56][rng.int(3)];
      b.writeBigUInt64BE([0n, 1n, 0xffffffffffffffffn, 1n << 63n][rng.int(4)], off64);
    } else {
      const off = [0, 36, 40, 48, 56, 112, 116][rng.int(7)];
      b.writeUInt32BE([0, 1, 115, 116, 117, 0xffffffff, b.length, b.length - 4][rng.int(8)] >>> 0, off);
    }
  } else if (kind === 4) {
    // scramble the message type field
    for (let i = 4; i < 36; i++) if (rng.chance(0.2)) b[i] = rng.int(256);
  } else {
    return rng.bytes(rng.int(300)); // pure noise
  }
  return b;
}

describe('decoder fuzz', () => {
  it('survives 120,000 seeded mutations and truncations with a value or a typed error', () => {
    const rng = new Rng(20261128);
    const seeds = seedFrames(rng);
    let decoded = 0;
    let rejected = 0;
    const fields = new Set<string>();
    const started = Date.now();
    for (let i = 0; i < 120_000; i++) {
      const input = mutate(rng, seeds[rng.int(seeds.length)]);
      let r;
      try {
        r = decodeFrame(input);
      } catch (e) {
        throw new Error(`mutation ${i} threw: ${(e as Error).message}`);
      }
      if (r.ok) {
        decoded++;
        // A frame that decodes is internally consistent.
        expect(r.value.payload.length).toBeLessThanOrEqual(input.length);
        expect(typeof r.value.messageType).toBe('string');
      } else {
        rejected++;
        expect(typeof r.error.field).toBe('string');
        expect(r.error.reason.length).toBeGreaterThan(0);
        fields.add(r.error.field);
      }
    }
    expect(decoded + rejected).toBe(120_000);
    expect(decoded).toBeGreaterThan(1000);
    expect(rejected).toBeGreaterThan(1000);
    for (const f of ['frame', 'headerLength', 'payloadDigest', 'createdDate', 'sequenceNumber', 'messageType']) expect(fields).toContain(f);
    // Bounded: far below the test timeout even on a loaded machine.
    expect(Date.now() - started).toBeLessThan(25_000);
  });

  it('rejects each invalid header with the field named', () => {
    const good = encodeFrame({ messageType: 'output_stream_data', createdDate: 1, sequenceNumber: 3, flags: 0, messageId: '6a3e2f10-5b4c-4d8e-9f01-23456789abcd', payloadType: 1, payload: Buffer.from('hi') });
    const cases: [string, (b: Buffer) => Buffer][] = [
      ['frame', (b) => b.subarray(0, 119)],
      ['headerLength', (b) => (b.writeUInt32BE(115, 0), b)],
      ['headerLength', (b) => (b.writeUInt32BE(200, 0), b)],
      ['createdDate', (b) => (b.writeBigUInt64BE(0n, 40), b)],
      ['sequenceNumber', (b) => (b.writeBigInt64BE(-1n, 48), b)],
      ['payloadDigest', (b) => ((b[120] ^= 1), b)],
      ['messageType', (b) => (b.fill(0x20, 4, 36), b)],
      ['messageType', (b) => ((b[6] = 0x07), b)],
    ];
    for (const [field, f] of cases) {
      const r = decodeFrame(f(Buffer.from(good)));
      expect(r.ok, field).toBe(false);
      if (!r.ok) expect(r.error.field).toBe(field);
    }
  });

  it('accepts NUL padding, odd flags and a wrong PayloadLength with warnings (reference compatible)', () => {
    const b = encodeFrame({ messageType: 'acknowledge', createdDate: 5, sequenceNumber: 0, flags: 0xffffffffffffffffn, messageId: '6a3e2f10-5b4c-4d8e-9f01-23456789abcd', payloadType: 0, payload: Buffer.from('{}') });
    b.fill(0, 4 + 'acknowledge'.length, 36);
    b.writeUInt32BE(9, 116);
    const r = decodeFrame(b);
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(r.value.messageType).toBe('acknowledge');
      expect(r.value.flags).toBe(0xffffffffffffffffn);
      expect([...r.value.warnings].sort()).toEqual(['messageTypePadding', 'payloadLength']);
    }
  });

  it('checks the digest only when PayloadLength is not 0, as the reference client does (§4.5)', () => {
    const b = encodeFrame({ messageType: 'output_stream_data', createdDate: 1, sequenceNumber: 3, flags: 0, messageId: '6a3e2f10-5b4c-4d8e-9f01-23456789abcd', payloadType: 1, payload: Buffer.from('hi') });
    b.writeUInt32BE(0, 116);
    b.fill(0, 80, 112);
    const r = decodeFrame(b);
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(r.value.payload.toString()).toBe('hi');
      expect([...r.value.warnings]).toEqual(['payloadLength']);
    }
  });

  it('takes channel_closed whatever its sequence number (the service sets it, §5.3)', () => {
    const b = encodeFrame({ messageType: 'channel_closed', createdDate: 1, sequenceNumber: 0, flags: 0, messageId: '6a3e2f10-5b4c-4d8e-9f01-23456789abcd', payloadType: 0, payload: Buffer.from('{}') });
    b.writeBigInt64BE(-1n, 48);
    const r = decodeFrame(b);
    expect(r.ok && r.value.messageType).toBe('channel_closed');
    // A stream frame with that sequence number is still refused.
    const d = encodeFrame({ messageType: 'output_stream_data', createdDate: 1, sequenceNumber: 0, flags: 0, messageId: '6a3e2f10-5b4c-4d8e-9f01-23456789abcd', payloadType: 1, payload: Buffer.from('x') });
    d.writeBigInt64BE(-1n, 48);
    const rd = decodeFrame(d);
    expect(!rd.ok && rd.error.field).toBe('sequenceNumber');
  });

  it('parses start/pause_publication leniently, even with a broken header', () => {
    const b = encodeFrame({ messageType: 'pause_publication', createdDate: 1, sequenceNumber: 0, flags: 0, messageId: '6a3e2f10-5b4c-4d8e-9f01-23456789abcd', payloadType: 0, payload: Buffer.alloc(0) });
    b.writeUInt32BE(0, 0);
    b.writeBigUInt64BE(0n, 40);
    const r = decodeFrame(b);
    expect(r.ok && r.value.messageType).toBe('pause_publication');
  });
});
