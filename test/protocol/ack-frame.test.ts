import { describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { decodeFrame, encodeAckFrame, encodeFrame, type Frame } from '../../src/protocol/frame.ts';
import { encodeAck, parseAck } from '../../src/protocol/payloads.ts';

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
