import { describe, expect, it } from 'vitest';
import { ReliableChannel } from '../../src/channel/channel.ts';
import { PayloadFlag } from '../../src/protocol/constants.ts';
import { decodeFrame, encodeFrame, type Frame } from '../../src/protocol/frame.ts';
import { encodeAck } from '../../src/protocol/payloads.ts';
import { connectedPair } from '../helpers/channel-pair.ts';

function frames(bufs: Buffer[]): Frame[] {
  return bufs.map((b) => {
    const r = decodeFrame(b);
    if (!r.ok) throw new Error(r.error.reason);
    return r.value;
  });
}

function ackFor(seq: number): Buffer {
  return encodeFrame({ messageType: 'acknowledge', createdDate: 1, sequenceNumber: 0, flags: 3, messageId: '0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9', payloadType: 0, payload: encodeAck({ acknowledgedMessageType: 'input_stream_data', acknowledgedMessageId: '0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9', acknowledgedSequenceNumber: seq, isSequentialMessage: true }) });
}

describe('sender', () => {
  it('holds the window and applies back-pressure instead of dropping', () => {
    const { client } = connectedPair({ window: 8 });
    client.drain();
    const ok = client.write(Buffer.alloc(200 * 1024, 7), 10);
    expect(ok).toBe(false);
    const sent = frames(client.drain().transmit);
    expect(sent).toHaveLength(8);
    expect(sent.every((f) => f.payload.length === 1024)).toBe(true);
    // Acks open the window; draining the queue raises 'drain'.
    let seq = 1;
    let drained = false;
    for (let t = 20; t < 2000 && !drained; t++) {
      client.receive(ackFor(seq++), t);
      const out = client.drain();
      drained = out.events.some((e) => e.type === 'drain');
      expect(client.unacked).toBeLessThanOrEqual(8);
    }
    expect(drained).toBe(true);
  });

  it('paces data frames to the frame budget', () => {
    const { client } = connectedPair({ frameRate: 1000, window: 100_000 });
    client.drain();
    client.write(Buffer.alloc(4 * 1024 * 1024), 0);
    let sent = 0;
    // One second of fake time in 1 ms steps.
    for (let t = 0; t <= 1000; t++) {
      client.tick(t);
      sent += client.drain().transmit.length;
    }
    expect(sent).toBeGreaterThan(950);
    expect(sent).toBeLessThanOrEqual(1000 + 20 + 1);
    expect(client.nextDeadline(1000)).toBeGreaterThanOrEqual(1000);
  });

  it('sends paced frames in batches of 8 under load, and a small write at once', () => {
    const { client } = connectedPair({ frameRate: 1000, window: 100_000 });
    client.drain();
    client.write(Buffer.alloc(200 * 1024), 0);
    // The bucket starts full: its burst (20, less what the handshake took) goes at once.
    const burst = client.drain().transmit.length;
    expect(burst).toBeGreaterThanOrEqual(19);
    const batches: [number, number][] = [];
    // 90 ms of budget (before the first retransmission timeout): batches of 8, 8 ms apart.
    for (let t = 1; t <= 90; t++) {
      client.tick(t);
      const n = client.drain().transmit.length;
      if (n > 0) batches.push([t, n]);
    }
    expect(batches.length).toBe(11);
    expect(batches.every(([, n]) => n === 8)).toBe(true);
    const first = batches[0][0];
    expect(first).toBeLessThanOrEqual(9);
    expect(batches.map(([t]) => t - first)).toEqual(batches.map((_, i) => 8 * i));
    // The next batch is where the channel's timer is set.
    expect(client.nextDeadline(90)).toBe(first + 8 * batches.length);

    // With fewer frames waiting, fewer tokens are waited for: three frames go together after 3 ms.
    const small = connectedPair({ frameRate: 1000, window: 100_000 }).client;
    small.drain();
    // One frame at a time while tokens last (the pair's clock is at 1 after its handshake):
    // each goes at once, until one has to wait.
    let sentAtOnce = 0;
    for (let i = 0; i < 40; i++) {
      small.write(Buffer.alloc(1024), 1);
      if (small.drain().transmit.length === 0) break;
      sentAtOnce++;
    }
    expect(sentAtOnce).toBe(burst);
    small.write(Buffer.alloc(2 * 1024), 1);
    expect(small.drain().transmit).toHaveLength(0);
    expect(small.nextDeadline(1)).toBe(4);
    small.tick(3);
    expect(small.drain().transmit).toHaveLength(0);
    small.tick(4);
    expect(small.drain().transmit).toHaveLength(3);
    // A keystroke with a token to spare goes at once.
    small.write(Buffer.from('x'), 30);
    expect(small.drain().transmit).toHaveLength(1);
  });

  /**
   * With a 1 s give-up rule and unacked data: no give-up while `hold` is in force (from
   * 10 ms to 5 s), then one after `release` at 5 s, not before a full second of it.
   */
  function expectGiveUpOnlyAfterRelease(data: string, hold: (c: ReliableChannel, t: number) => void, release: (c: ReliableChannel, t: number) => void) {
    const { client } = connectedPair({ giveUpMs: 1000 });
    client.drain();
    client.write(Buffer.from(data), 0);
    hold(client, 10);
    for (let t = 10; t < 5000; t += 50) client.tick(t);
    expect(client.drain().events.some((e) => e.type === 'give-up')).toBe(false);
    release(client, 5000);
    let gaveUp = false;
    for (let t = 5000; t < 7000 && !gaveUp; t += 50) {
      client.tick(t);
      gaveUp = client.drain().events.some((e) => e.type === 'give-up');
      if (gaveUp) expect(t).toBeGreaterThanOrEqual(5000 + 990);
    }
    expect(gaveUp).toBe(true);
  }

  it('reports the give-up rule as an event, counting only connected, unpaused time', () => {
    expectGiveUpOnlyAfterRelease('never acked', (c, t) => c.setConnected(false, t), (c, t) => c.setConnected(true, t));
  });

  it('does not count against the peer the time we held back reading it (a slow consumer: its acks wait unread)', () => {
    expectGiveUpOnlyAfterRelease('acked, but the ack sits unread', (c, t) => c.setReadingHeld(true, t), (c, t) => c.setReadingHeld(false, t));
  });

  it('resends its first frames as soon as the agent shows the target is connected (quirk Q32)', () => {
    const { client, agent, pass } = connectedPair();
    client.drain();
    agent.drain();
    agent.setConsumerReady(false, 2); // the agent is still dialling the target port
    client.write(Buffer.from('SSH-2.0-client\r\n'), 3);
    pass(client, agent, 3);
    expect(agent.drain().transmit).toEqual([]); // not acked: not ready
    agent.setConsumerReady(true, 5);
    agent.write(Buffer.from('SSH-2.0-server\r\n'), 5);
    pass(agent, client, 6);
    // The client resends right away, well before its retransmission timeout.
    const resent = frames(client.drain().transmit).filter((f) => f.messageType === 'input_stream_data');
    expect(resent.map((f) => f.payload.toString())).toEqual(['SSH-2.0-client\r\n']);
    expect(client.rto).toBeGreaterThan(6 - 3);
    for (const b of resent.map((f) => encodeFrame({ ...f, messageId: f.messageId }))) agent.receive(b, 7);
    expect(agent.drain().deliver.map((b) => b.toString())).toEqual(['SSH-2.0-client\r\n']);
  });

  it('reports acks for sequence numbers it never sent, and ignores duplicate acks', () => {
    const { client } = connectedPair();
    client.drain();
    client.receive(ackFor(0), 5); // HandshakeResponse: already acked, a duplicate
    client.receive(ackFor(99), 5);
    const kinds = client.drain().events.filter((e) => e.type === 'anomaly').map((e) => e.type === 'anomaly' && e.kind);
    expect(kinds).toEqual(['ack-unknown-seq']);
  });

  it('sends flags as sequenced input_stream_data with PayloadType 10', () => {
    const { client } = connectedPair();
    client.drain();
    const seq = client.sendFlag(PayloadFlag.TerminateSession, 3);
    const [f] = frames(client.drain().transmit);
    expect(f).toMatchObject({ messageType: 'input_stream_data', sequenceNumber: seq, payloadType: 10 });
    expect(f.payload.toString('hex')).toBe('00000002');
  });

  it('agent in the reference retransmission mode resends only the oldest frame per 100 ms scan', () => {
    const agent = new ReliableChannel({ role: 'agent', now: 0, retransmitPolicy: 'oldest-only' });
    agent.startHandshake(0);
    agent.drain();
    // The HandshakeRequest is never acked. Scans every 100 ms resend it once more than
    // the 200 ms RTO has passed since the last send: at 300, 600 and 900 ms.
    const at: number[] = [];
    for (let t = 0; t <= 1000; t += 10) {
      agent.tick(t);
      if (agent.drain().transmit.length > 0) at.push(t);
    }
    expect(at).toEqual([300, 600, 900]);
  });
});

describe('sender after a reconnect', () => {
  it('resends every unacked frame, in order, before any new one, and paces them', () => {
    const { client } = connectedPair({ frameRate: 1000, window: 64 });
    client.drain();
    client.write(Buffer.alloc(40 * 1024, 1), 0);
    for (let t = 0; t < 100; t++) client.tick(t);
    const firstRound = frames(client.drain().transmit).map((f) => f.sequenceNumber);
    expect(firstRound).toHaveLength(40);
    client.setConnected(false, 100);
    client.write(Buffer.alloc(20 * 1024, 2), 100); // queued while down
    client.setConnected(true, 200);
    const order: number[] = [];
    for (let t = 200; t < 400; t++) {
      client.tick(t);
      order.push(...frames(client.drain().transmit).map((f) => f.sequenceNumber));
      // Pacing holds: never more than the burst plus the elapsed budget.
      expect(order.length).toBeLessThanOrEqual(20 + (t - 200) + 1);
    }
    expect(order.slice(0, 40)).toEqual(firstRound);
    // Then the new frames; (nothing acks here, so later timeouts resend the old ones again).
    expect(order.slice(40, 60)).toEqual(Array.from({ length: 20 }, (_, i) => 41 + i));
    // While a due frame waits for a token the deadline is the token's time, not the past.
    expect(client.nextDeadline(400)).toBeGreaterThanOrEqual(400);
  });
});
