import { describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { ackSequenceOf, decodeFrame, encodeAckFrame, encodeFrame, type Frame } from '../../src/protocol/frame.ts';
import { encodeAck, parseAck, parseAckSequence } from '../../src/protocol/payloads.ts';
import { Rng } from '../helpers/rng.ts';

function decoded(messageType: string, seq: number, messageId: string): Frame {
  const r = decodeFrame(encodeFrame({ messageType, createdDate: 1_730_000_000_000, sequenceNumber: seq, flags: 0, messageId, payloadType: 1, payload: Buffer.from('x') }));
  if (!r.ok) throw new Error('test frame does not decode');
  return r.value;
}

describe('encodeAckFrame', () => {
  it('gives the bytes of encodeFrame(encodeAck(...)) apart from its own random MessageId', () => {
    const seqs = [0, 1, 9, 10, 99, 100, 12345, 2 ** 31, 2 ** 32 + 7, Number.MAX_SAFE_INTEGER];
    for (let i = 0; i < 300; i++) {
      const type = i % 2 ? 'input_stream_data' : 'output_stream_data';
      const seq = i < seqs.length ? seqs[i] : Math.floor(Math.random() * 2 ** 40);
      const id = randomUUID();
      const f = decoded(type, seq, id);
      const fast = encodeAckFrame(f, 1_730_000_000_123);
      expect(fast).toBeDefined();
      const slow = encodeFrame({
        messageType: 'acknowledge',
        createdDate: 1_730_000_000_123,
        sequenceNumber: 0,
        flags: 3,
        messageId: decodeFrame(fast!).ok ? (decodeFrame(fast!) as { value: Frame }).value.messageId : '',
        payloadType: 0,
        payload: encodeAck({ acknowledgedMessageType: type, acknowledgedMessageId: id, acknowledgedSequenceNumber: seq, isSequentialMessage: true }),
      });
      expect(fast!.equals(slow)).toBe(true);
      const back = decodeFrame(fast!);
      expect(back.ok && parseAck(back.value.payload)).toMatchObject({ ok: true, value: { acknowledgedMessageType: type, acknowledgedMessageId: id, acknowledgedSequenceNumber: seq } });
    }
  });

  it('gives a fresh v4 MessageId to every ack', () => {
    const f = decoded('output_stream_data', 5, randomUUID());
    const ids = new Set<string>();
    for (let i = 0; i < 100; i++) {
      const r = decodeFrame(encodeAckFrame(f, 1)!);
      expect(r.ok).toBe(true);
      if (r.ok) ids.add(r.value.messageId);
    }
    expect(ids.size).toBe(100);
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it('leaves frames it cannot write byte by byte to the JSON path', () => {
    const plain = { ...decoded('output_stream_data', 1, randomUUID()) } as Frame;
    expect(encodeAckFrame(plain, 1)).toBeUndefined();
    expect(encodeAckFrame(decoded('agent_session_state', 1, randomUUID()), 1)).toBeUndefined();
  });
});

describe('ackSequenceOf', () => {
  /** What the full path makes of a message: the acked sequence number, or -1 if it is not an ack it takes without a warning. */
  function slowPath(buf: Buffer): number {
    const r = decodeFrame(buf);
    if (!r.ok || r.value.messageType !== 'acknowledge' || r.value.warnings.length > 0) return -1;
    const a = parseAckSequence(r.value.payload);
    return a.ok ? a.value : -1;
  }

  function ack(rng: Rng, seq: number): Buffer {
    return encodeFrame({
      messageType: 'acknowledge',
      createdDate: 1_730_000_000_000 + rng.int(1000),
      sequenceNumber: 0,
      flags: 3,
      payloadType: 0,
      payload: encodeAck({ acknowledgedMessageType: 'input_stream_data', acknowledgedMessageId: rng.uuid(), acknowledgedSequenceNumber: seq, isSequentialMessage: rng.chance(0.9) }),
    });
  }

  it('reads canonical acks as the full path does, and declines whatever the full decoder rejects or warns about', () => {
    const rng = new Rng(20261128);
    let taken = 0;
    let declined = 0;
    for (let i = 0; i < 5000; i++) {
      const seq = rng.chance(0.1) ? rng.int(2 ** 29) * 2 ** 20 : rng.int(100_000);
      const buf = ack(rng, seq);
      const mutation = rng.int(12);
      switch (mutation) {
        case 0: buf.writeUInt32BE(rng.chance(0.5) ? 117 : 115, 0); break; // HeaderLength
        case 1: buf[4 + rng.int(32)] ^= 1 << rng.int(8); break; // MessageType
        case 2: buf.writeUInt32BE(2, 36); break; // SchemaVersion
        case 3: buf.fill(0, 40, 48); break; // CreatedDate 0
        case 4: buf.writeUInt32BE(0x80000000, 48); break; // negative sequence number
        case 5: buf.writeUInt32BE(buf.length - 121, 116); break; // PayloadLength
        case 6: buf[80 + rng.int(32)] ^= 1; break; // digest
        case 7: { // payload byte, digest still right: non-canonical or different text
          const f = decodeFrame(buf);
          if (!f.ok) throw new Error('test ack does not decode');
          const payload = Buffer.from(f.value.payload);
          payload[rng.int(payload.length)] = [0x20, 0x30, 0x39, 0x22, 0x7d][rng.int(5)];
          buf.set(encodeFrame({ messageType: 'acknowledge', createdDate: f.value.createdDate, sequenceNumber: 0, flags: 3, payloadType: 0, payload }).subarray(0, 120));
          if (payload.length !== buf.length - 120) throw new Error('length changed');
          buf.set(payload, 120);
          break;
        }
        default: break; // unchanged
      }
      const fast = ackSequenceOf(buf);
      const slow = slowPath(buf);
      // Declining is always safe (the full path then decides); a number must be the full path's.
      if (fast >= 0) expect(fast, `mutation ${mutation}`).toBe(slow);
      if (mutation <= 6) expect(fast, `mutation ${mutation}`).toBe(-1);
      if (mutation >= 8) expect(fast).toBe(seq);
      if (fast >= 0) taken++;
      else declined++;
    }
    expect(taken).toBeGreaterThan(1500);
    expect(declined).toBeGreaterThan(2500);
  });

  it('declines every other message type and short messages', () => {
    const data = encodeFrame({ messageType: 'output_stream_data', createdDate: 1, sequenceNumber: 3, flags: 0, payloadType: 1, payload: Buffer.from('{"AcknowledgedMessageType":"x"}') });
    expect(ackSequenceOf(data)).toBe(-1);
    expect(ackSequenceOf(data.subarray(0, 100))).toBe(-1);
    expect(ackSequenceOf(Buffer.alloc(0))).toBe(-1);
  });
});
