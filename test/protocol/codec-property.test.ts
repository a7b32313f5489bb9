import { describe, expect, it } from 'vitest';
import { KNOWN_MESSAGE_TYPES, MessageType } from '../../src/protocol/constants.ts';
import { decodeFrame, encodeFrame, type FrameFields } from '../../src/protocol/frame.ts';
import { Rng } from '../helpers/rng.ts';

const types = [...KNOWN_MESSAGE_TYPES].filter((t) => t !== MessageType.StartPublication && t !== MessageType.PausePublication);

function randomFields(rng: Rng, maxPayload: number): FrameFields {
  // Mostly small payloads, with enough large ones to cover the 64 KiB end.
  const len = rng.chance(0.1) ? rng.int(maxPayload + 1) : rng.int(2048);
  return {
    messageType: rng.chance(0.9) ? types[rng.int(types.length)] : 'x'.repeat(1 + rng.int(32)),
    schemaVersion: 1,
    createdDate: 1 + rng.int(2 ** 31) * 2 ** 20 + rng.int(2 ** 20),
    sequenceNumber: rng.chance(0.5) ? rng.int(1000) : rng.int(2 ** 31) * 2 ** 21,
    flags: BigInt(rng.int(2 ** 32)) * BigInt(rng.int(2 ** 32)),
    messageId: rng.uuid(),
    payloadType: rng.int(13),
    payload: rng.bytes(len),
  };
}

describe('frame codec round trip', () => {
  it('decodes 2,000 random frames (payloads 0 to 64 KiB) back to their fields', () => {
    const rng = new Rng(0x5eed);
    let sawEmpty = false;
    let sawMax = false;
    for (let i = 0; i < 2000; i++) {
      const f = randomFields(rng, 64 * 1024);
      if (i === 0) f.payload = Buffer.alloc(0);
      if (i === 1) f.payload = rng.bytes(64 * 1024);
      sawEmpty ||= f.payload.length === 0;
      sawMax ||= f.payload.length === 64 * 1024;
      const bytes = encodeFrame(f);
      const r = decodeFrame(bytes);
      if (!r.ok) throw new Error(`frame ${i}: ${r.error.field}: ${r.error.reason}`);
      const d = r.value;
      expect(d.messageType).toBe(f.messageType);
      expect(d.createdDate).toBe(f.createdDate);
      expect(d.sequenceNumber).toBe(f.sequenceNumber);
      expect(d.flags).toBe(BigInt(f.flags));
      expect(d.messageId).toBe(f.messageId);
      expect(d.payloadType).toBe(f.payloadType);
      expect(d.payloadLength).toBe(f.payload.length);
      expect(Buffer.compare(d.payload, f.payload)).toBe(0);
      expect(d.warnings).toEqual([]);
      // Re-encoding the decoded frame gives the same bytes.
      expect(encodeFrame({ ...d, messageId: d.messageId }).equals(bytes)).toBe(true);
    }
    expect(sawEmpty && sawMax).toBe(true);
  });
});

describe('frame encoder argument checks', () => {
  it('refuses a PayloadType outside 0..2^32-1 instead of wrapping it', () => {
    const f: FrameFields = { messageType: MessageType.InputStreamData, createdDate: 1, sequenceNumber: 0, flags: 0, payloadType: 1, payload: Buffer.from('x') };
    for (const payloadType of [-1, 2 ** 32]) expect(() => encodeFrame({ ...f, payloadType })).toThrow(RangeError);
    expect(decodeFrame(encodeFrame({ ...f, payloadType: 2 ** 32 - 1 }))).toMatchObject({ ok: true, value: { payloadType: 2 ** 32 - 1 } });
  });
});
