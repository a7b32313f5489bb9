import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { decodeFrame, encodeFrame } from '../../src/protocol/frame.ts';
import { encodeOpenDataChannel, parseOpenDataChannel } from '../../src/protocol/payloads.ts';

interface VectorFields {
  headerLength: number;
  messageType: string;
  schemaVersion: number;
  createdDate: number;
  sequenceNumber: number;
  flags: number;
  messageId: string;
  messageIdWire: string;
  payloadDigest: string;
  payloadType: number;
  payloadLength: number;
  payloadHex: string;
}
interface BinaryVector {
  name: string;
  fields: VectorFields;
  frameLength: number;
  hex: string;
}

const vectors = JSON.parse(readFileSync(new URL('../../fixtures/frames.json', import.meta.url), 'utf8'));
const binary: BinaryVector[] = vectors.binaryFrames;

describe('golden frames (fixtures/frames.json)', () => {
  it('holds all eleven binary frames and the text frame', () => {
    expect(binary).toHaveLength(11);
    expect(vectors.textFrames).toHaveLength(1);
  });

  for (const v of binary) {
    it(`encodes ${v.name} byte for byte`, () => {
      const f = v.fields;
      const bytes = encodeFrame({
        messageType: f.messageType,
        schemaVersion: f.schemaVersion,
        createdDate: f.createdDate,
        sequenceNumber: f.sequenceNumber,
        flags: BigInt(f.flags),
        messageId: f.messageId,
        payloadType: f.payloadType,
        payload: Buffer.from(f.payloadHex, 'hex'),
      });
      expect(bytes.length).toBe(v.frameLength);
      expect(bytes.toString('hex')).toBe(v.hex);
      expect(bytes.subarray(64, 80).toString('hex')).toBe(f.messageIdWire);
    });

    it(`encodes ${v.name} byte for byte into a reused buffer`, () => {
      const f = v.fields;
      const fields = { messageType: f.messageType, schemaVersion: f.schemaVersion, createdDate: f.createdDate, sequenceNumber: f.sequenceNumber, flags: BigInt(f.flags), messageId: f.messageId, payloadType: f.payloadType, payload: Buffer.from(f.payloadHex, 'hex') };
      const slot = Buffer.alloc(v.frameLength + 50, 0xee); // stale bytes from an earlier frame
      const bytes = encodeFrame(fields, slot);
      expect(bytes.buffer).toBe(slot.buffer);
      expect(bytes.byteOffset).toBe(slot.byteOffset);
      expect(bytes.toString('hex')).toBe(v.hex);
      // Too small to hold the frame: a buffer of its own instead.
      const small = Buffer.alloc(v.frameLength - 1);
      const own = encodeFrame(fields, small);
      expect(own.buffer).not.toBe(small.buffer);
      expect(own.toString('hex')).toBe(v.hex);
    });

    it(`decodes ${v.name} to exactly its listed fields`, () => {
      const r = decodeFrame(Buffer.from(v.hex, 'hex'));
      if (!r.ok) throw new Error(`${r.error.field}: ${r.error.reason}`);
      const d = r.value;
      const f = v.fields;
      expect({
        headerLength: d.headerLength,
        messageType: d.messageType,
        schemaVersion: d.schemaVersion,
        createdDate: d.createdDate,
        sequenceNumber: d.sequenceNumber,
        flags: Number(d.flags),
        messageId: d.messageId,
        payloadDigest: d.payloadDigest.toString('hex'),
        payloadType: d.payloadType,
        payloadLength: d.payloadLength,
        payloadHex: d.payload.toString('hex'),
      }).toEqual({
        headerLength: f.headerLength,
        messageType: f.messageType,
        schemaVersion: f.schemaVersion,
        createdDate: f.createdDate,
        sequenceNumber: f.sequenceNumber,
        flags: f.flags,
        messageId: f.messageId,
        payloadDigest: f.payloadDigest,
        payloadType: f.payloadType,
        payloadLength: f.payloadLength,
        payloadHex: f.payloadHex,
      });
      expect(d.warnings).toEqual([]);
    });
  }

  it('reproduces the OpenDataChannel text frame and parses it back', () => {
    const t = vectors.textFrames[0];
    const text: string = t.text;
    expect(Buffer.from(text, "utf8").toString("hex")).toBe(t.hex);
    const parsed = parseOpenDataChannel(text);
    if (!parsed.ok) throw new Error(parsed.error.reason);
    expect(encodeOpenDataChannel(parsed.value)).toBe(text);
    expect(parsed.value.clientVersion).toBe('1.2.694.0');
  });
});
