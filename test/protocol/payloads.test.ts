import { describe, expect, it } from 'vitest';
import { encodeAck, parseAck, parseAckSequence } from '../../src/protocol/payloads.ts';
import { Rng } from '../helpers/rng.ts';

describe('ack payloads', () => {
  it('reads the sequence number of canonical acks, and agrees with the full parser on anything else', () => {
    const rng = new Rng(7);
    const canonical = (seq: number, flag = true) => encodeAck({ acknowledgedMessageType: 'output_stream_data', acknowledgedMessageId: rng.uuid(), acknowledgedSequenceNumber: seq, isSequentialMessage: flag });
    for (const seq of [0, 1, 9, 10, 12345, 2 ** 40, Number.MAX_SAFE_INTEGER]) {
      expect(parseAckSequence(canonical(seq))).toEqual({ ok: true, value: seq });
      expect(parseAckSequence(canonical(seq, false))).toEqual({ ok: true, value: seq });
    }
    const odd = [
      '{"AcknowledgedMessageSequenceNumber":7}', // other key order, fields missing
      '{ "AcknowledgedMessageType": "x", "AcknowledgedMessageId": "y", "AcknowledgedMessageSequenceNumber": 8, "IsSequentialMessage": true }',
      '{"AcknowledgedMessageType":"output_stream_data","AcknowledgedMessageId":"6a3e2f10-5b4c-4d8e-9f01-23456789abcd","AcknowledgedMessageSequenceNumber":012,"IsSequentialMessage":true}',
      '{"AcknowledgedMessageType":"output_stream_data","AcknowledgedMessageId":"6a3e2f10-5b4c-4d8e-9f01-23456789abcd","AcknowledgedMessageSequenceNumber":-1,"IsSequentialMessage":true}',
      '{"AcknowledgedMessageType":"output_stream_data","AcknowledgedMessageId":"6a3e2f10-5b4c-4d8e-9f01-23456789abcd","AcknowledgedMessageSequenceNumber":5,"IsSequentialMessage":true}x',
      '{"AcknowledgedMessageSequenceNumber":1.5}',
      'not json',
      '',
    ];
    for (const text of odd) {
      const b = Buffer.from(text);
      const full = parseAck(b);
      const fast = parseAckSequence(b);
      expect(fast.ok, text).toBe(full.ok);
      if (full.ok && fast.ok) expect(fast.value).toBe(full.value.acknowledgedSequenceNumber);
    }
    // Random mutations of canonical acks: the fast path never disagrees with the full parser.
    for (let i = 0; i < 5000; i++) {
      const b = Buffer.from(canonical(rng.int(1e6)));
      b[rng.int(b.length)] = rng.int(128);
      const full = parseAck(b);
      const fast = parseAckSequence(b);
      expect(fast.ok).toBe(full.ok);
      if (full.ok && fast.ok) expect(fast.value).toBe(full.value.acknowledgedSequenceNumber);
    }
  });
});
