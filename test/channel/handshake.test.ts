import { describe, expect, it } from 'vitest';
import { ReliableChannel } from '../../src/channel/channel.ts';
import { decodeFrame, encodeFrame } from '../../src/protocol/frame.ts';
import { bytes, frame, sequence } from '../helpers/vectors.ts';

const V2 = 'agent_handshake_request';
const V3 = 'client_ack_of_handshake_request';
const V4 = 'client_handshake_response';
const V5 = 'agent_handshake_complete';

function decoded(b: Buffer) {
  const r = decodeFrame(b);
  if (!r.ok) throw new Error(r.error.reason);
  return r.value;
}

describe('handshake, client role, against V2-V5', () => {
  it('acks the request (V3), answers it (V4), then becomes ready on HandshakeComplete (V5)', () => {
    const c = new ReliableChannel({
      role: 'client',
      now: 0,
      randomUUID: sequence([frame(V3).fields.messageId, frame(V4).fields.messageId, '00000000-0000-4000-8000-000000000001', '00000000-0000-4000-8000-000000000002']),
      wallClock: sequence([frame(V3).fields.createdDate, frame(V4).fields.createdDate, 1730000000240, 1730000000241]),
      clientVersion: '1.2.694.0',
    });
    c.receive(bytes(V2), 100);
    const out = c.drain();
    expect(out.transmit.map((b) => b.toString('hex'))).toEqual([frame(V3).hex, frame(V4).hex]);
    expect(out.events.find((e) => e.type === 'handshake-request')).toMatchObject({ request: { agentVersion: '3.3.1142.0' } });
    expect(c.ready).toBe(false);
    expect(c.agentVersion).toBe('3.3.1142.0');

    // Stream data written before HandshakeComplete is held back (§6.5).
    c.write(Buffer.from('SSH-2.0-OpenSSH_9.6\r\n'), 110);
    expect(c.drain().transmit).toEqual([]);

    c.receive(bytes(V5), 230);
    const done = c.drain();
    expect(done.events).toContainEqual({ type: 'ready', customerMessage: '' });
    const sent = done.transmit.map(decoded);
    expect(sent[0]).toMatchObject({ messageType: 'acknowledge', sequenceNumber: 0, flags: 3n, payloadType: 0 });
    expect(JSON.parse(sent[0].payload.toString())).toEqual({ AcknowledgedMessageType: 'output_stream_data', AcknowledgedMessageId: frame(V5).fields.messageId, AcknowledgedMessageSequenceNumber: 1, IsSequentialMessage: true });
    // The held stdin bytes go out as client seq 1, PayloadType 1, Flags 0.
    expect(sent[1]).toMatchObject({ messageType: 'input_stream_data', sequenceNumber: 1, flags: 0n, payloadType: 1 });
    expect(sent[1].payload.toString()).toBe('SSH-2.0-OpenSSH_9.6\r\n');
    expect(c.ready).toBe(true);
  });

  it('refuses port forwarding, KMS and unknown actions with a reason and status', () => {
    const c = new ReliableChannel({ role: 'client', now: 0 });
    const agent = new ReliableChannel({
      role: 'agent',
      now: 0,
      properties: { portNumber: '22', type: 'LocalPortForwarding' },
      extraActions: [
        { actionType: 'KMSEncryption', actionParameters: { KMSKeyId: 'alias/x' } },
        { actionType: 'Teleport', actionParameters: null },
      ],
    });
    agent.startHandshake(0);
    for (const b of agent.drain().transmit) c.receive(b, 1);
    const out = c.drain();
    const resp = out.transmit.map(decoded).find((f) => f.payloadType === 6)!;
    const body = JSON.parse(resp.payload.toString());
    expect(body.ProcessedClientActions.map((a: { ActionStatus: number }) => a.ActionStatus)).toEqual([2, 2, 3]);
    expect(body.ProcessedClientActions[2]).toMatchObject({ ActionType: 'Teleport', ActionResult: null });
    expect(body.Errors).toHaveLength(3);
    expect(out.events.find((e) => e.type === 'fatal')).toMatchObject({ kind: 'handshake' });
    // The agent fails the session on any status other than 1.
    for (const b of out.transmit) agent.receive(b, 2);
    expect(agent.drain().events.find((e) => e.type === 'fatal')?.type).toBe('fatal');
  });

  it('aborts when Output arrives without a handshake (not a Port session)', () => {
    const c = new ReliableChannel({ role: 'client', now: 0 });
    c.receive(encodeFrame({ messageType: 'output_stream_data', createdDate: 1, sequenceNumber: 0, flags: 1, messageId: '6a3e2f10-5b4c-4d8e-9f01-23456789abcd', payloadType: 1, payload: Buffer.from('$ ') }), 1);
    const ev = c.drain().events.find((e) => e.type === 'fatal');
    expect(ev).toMatchObject({ kind: 'protocol' });
  });
});

describe('handshake, agent role, against V2-V5', () => {
  it('sends V2, and answers V4 with an ack then V5', () => {
    const ackId = '99999999-0000-4000-8000-000000000000';
    const a = new ReliableChannel({
      role: 'agent',
      now: 1000,
      randomUUID: sequence([frame(V2).fields.messageId, ackId, frame(V5).fields.messageId]),
      wallClock: sequence([frame(V2).fields.createdDate, 1730000000229, frame(V5).fields.createdDate]),
      agentVersion: '3.3.1142.0',
      properties: { portNumber: '22' },
    });
    a.startHandshake(1000);
    expect(a.drain().transmit.map((b) => b.toString('hex'))).toEqual([frame(V2).hex]);

    // The client's ack of the request (V3) settles agent seq 0.
    a.receive(bytes(V3), 1030);
    expect(a.unacked).toBe(0);

    a.receive(bytes(V4), 1000 + 61.234567);
    const out = a.drain();
    expect(out.events.find((e) => e.type === 'handshake-response')).toMatchObject({ response: { clientVersion: '1.2.694.0' } });
    expect(out.transmit).toHaveLength(2);
    const ack = decoded(out.transmit[0]);
    expect(ack.messageType).toBe('acknowledge');
    expect(JSON.parse(ack.payload.toString())).toMatchObject({ AcknowledgedMessageType: 'input_stream_data', AcknowledgedMessageSequenceNumber: 0 });
    expect(out.transmit[1].toString('hex')).toBe(frame(V5).hex);
    expect(a.ready).toBe(true);
  });

  it('acks and discards stream data that arrives before the handshake is complete (§6.5)', () => {
    const a = new ReliableChannel({ role: 'agent', now: 0 });
    a.startHandshake(0);
    a.drain();
    // A client that sends data as its seq 0 instead of a HandshakeResponse.
    a.receive(bytes('client_input_data'), 1); // seq 1: buffered out of order and acked
    const out = a.drain();
    expect(out.transmit).toHaveLength(1);
    expect(out.deliver).toEqual([]);
  });
});
