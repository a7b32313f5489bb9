// Each violation kind, tripped alone by a hand-built client; and a well-behaved client trips none.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { MessageType, PayloadType } from '../../src/protocol/constants.ts';
import { encodeFlag } from '../../src/protocol/payloads.ts';
import { startSimulator, nonZero, VIOLATION_KINDS, type Simulator, type ViolationKind } from './index.ts';
import { ackFrame, clientFrame, connectClient, delay, destroyClient, RawClient, startSession, tcpTarget, waitFor, type TcpTarget } from './testing.ts';

const MISSING_ACK_MS = 400;
const PAUSE_GRACE_MS = 100;
const TARGET = 'i-0123456789abcdef0';

let sim: Simulator;
let echo: TcpTarget;
let banner: TcpTarget;
const covered = new Set<ViolationKind>();
const raws: RawClient[] = [];

beforeAll(async () => {
  sim = await startSimulator({ profile: 'service', missingAckMs: MISSING_ACK_MS, pauseGraceMs: PAUSE_GRACE_MS, penaltyMs: 300 });
  echo = await tcpTarget('echo');
  banner = await tcpTarget('sink', (s) => s.write('SSH-2.0-sim\r\n'));
});

afterAll(async () => {
  for (const r of raws) r.terminate();
  destroyClient(sim);
  await sim.close();
  await echo.close();
  await banner.close();
});

/** A raw client on a fresh session that has done a correct handshake. */
async function handshaken(port = echo.port): Promise<{ c: RawClient; id: string }> {
  const t = await startSession(sim, TARGET, port);
  const c = await RawClient.connect(t);
  raws.push(c);
  await c.handshake();
  return { c, id: t.sessionId };
}

function counts(id: string) {
  return nonZero(sim.gateway.session(id)!.violations);
}

async function expectOnly(id: string, kind: ViolationKind, n = 1): Promise<void> {
  covered.add(kind);
  await waitFor([sim.gateway], () => (sim.gateway.session(id)!.violations[kind] >= n ? true : undefined), 5000, `${n} ${kind}`);
  expect(counts(id)).toEqual({ [kind]: n });
}

function data(seq: number, text: string): Buffer {
  return clientFrame({ sequenceNumber: seq, payload: Buffer.from(text) });
}

describe('each violation kind trips exactly its own counter', () => {
  it('bad-digest: a payload that does not match its digest', async () => {
    const { c, id } = await handshaken();
    const f = data(1, 'hello');
    f[80] ^= 0xff;
    c.send(f);
    await expectOnly(id, 'bad-digest');
  });

  it('bad-header: header length, padding, schema version, PayloadLength, CreatedDate, short frames', async () => {
    const { c, id } = await handshaken();
    // HL 120 (in bounds): the payload then starts at 124; the digest is made to match it.
    const hl = clientFrame({ sequenceNumber: 1, payload: Buffer.from('....hello') });
    hl.writeUInt32BE(120, 0);
    createHash('sha256').update(hl.subarray(124)).digest().copy(hl, 80);
    c.send(hl);
    const nul = data(2, 'nul padding');
    nul.fill(0, 4 + MessageType.InputStreamData.length, 36);
    c.send(nul);
    c.send(clientFrame({ sequenceNumber: 3, schemaVersion: 2, payload: Buffer.from('schema 2') }));
    const pl = data(4, 'length');
    pl.writeUInt32BE(9, 116);
    c.send(pl);
    c.send(clientFrame({ sequenceNumber: 5, createdDate: 0, payload: Buffer.from('zero date') }));
    c.send(randomBytes(100));
    const far = data(5, 'far');
    far.writeUInt32BE(5000, 0);
    c.send(far);
    const low = data(5, 'low');
    low.writeUInt32BE(100, 0);
    c.send(low);
    await expectOnly(id, 'bad-header', 8);
  });

  it('unknown-message-type: anything but input_stream_data and acknowledge', async () => {
    const { c, id } = await handshaken();
    c.send(clientFrame({ sequenceNumber: 1, messageType: MessageType.OutputStreamData, payload: Buffer.from('x') }));
    c.send(clientFrame({ sequenceNumber: 0, messageType: 'bogus_type', payload: Buffer.from('x') }));
    c.send(clientFrame({ sequenceNumber: 0, messageType: MessageType.StartPublication, payloadType: 0 }));
    await expectOnly(id, 'unknown-message-type', 3);
  });

  it('sequence-gap: a seq beyond highest + 1', async () => {
    const { c, id } = await handshaken();
    c.send(data(3, 'skipped 1 and 2'));
    await expectOnly(id, 'sequence-gap');
  });

  it('sequence-regression: a seq resent with different bytes (an identical resend is fine)', async () => {
    const { c, id } = await handshaken();
    const first = data(1, 'aaa');
    c.send(first);
    c.send(first);
    c.send(data(1, 'bbb'));
    await expectOnly(id, 'sequence-regression');
    expect(sim.gateway.session(id)!.stats().retransmissionsSeen).toBe(1);
  });

  it('data-before-handshake: Output before HandshakeComplete was sent', async () => {
    const t = await startSession(sim, TARGET, echo.port);
    const c = await RawClient.connect(t);
    raws.push(c);
    await c.waitFrame((f) => f.payloadType === PayloadType.HandshakeRequest);
    c.send(data(0, 'too early'));
    await expectOnly(t.sessionId, 'data-before-handshake');
  });

  it('sent-while-paused: data more than the grace period after pause_publication', async () => {
    const { c, id } = await handshaken();
    sim.gateway.session(id)!.pauseClient(2000);
    await c.waitFrame((f) => f.messageType === MessageType.PausePublication);
    c.send(data(1, 'in flight when the pause was sent: tolerated'));
    c.send(ackFrame({ messageType: MessageType.OutputStreamData, messageId: randomUUID(), sequenceNumber: 1 })); // acks may flow while paused
    await delay(PAUSE_GRACE_MS + 60); // build the timing: the next frame is late on purpose
    c.send(data(2, 'late'));
    await expectOnly(id, 'sent-while-paused');
  });

  it('missing-ack: an agent frame left unacked for missingAckMs (counted once per seq)', async () => {
    const t = await startSession(sim, TARGET, banner.port);
    const c = await RawClient.connect(t);
    raws.push(c);
    c.noAck.add(2); // agent seq 2 is the target's banner
    await c.handshake();
    await c.waitFrame((f) => f.sequenceNumber === 2 && f.payloadType === PayloadType.Output);
    await expectOnly(t.sessionId, 'missing-ack');
    // The agent keeps retransmitting seq 2; it is still one violation.
    const sends = () => c.frames.filter((f) => f.messageType === MessageType.OutputStreamData && f.sequenceNumber === 2).length;
    const before = sends();
    await waitFor([c], () => sends() > before, 3000, 'a retransmission of agent seq 2');
    expect(counts(t.sessionId)).toEqual({ 'missing-ack': 1 });
  });

  it('ack-unknown-seq: an ack for an agent seq never sent', async () => {
    const { c, id } = await handshaken();
    c.send(ackFrame({ messageType: MessageType.OutputStreamData, messageId: randomUUID(), sequenceNumber: 50 }));
    await expectOnly(id, 'ack-unknown-seq');
  });

  it('oversized-payload: answered with pause_publication, then start_publication after the penalty', async () => {
    const { c, id } = await handshaken();
    c.send(clientFrame({ sequenceNumber: 1, payload: randomBytes(1025) }));
    await expectOnly(id, 'oversized-payload');
    await c.waitFrame((f) => f.messageType === MessageType.PausePublication);
    await c.waitFrame((f) => f.messageType === MessageType.StartPublication, 3000);
    expect(sim.gateway.session(id)!.stats()).toMatchObject({ pausesSent: 1, droppedByPolicy: 1 });
  });

  it('budget-overrun: more frames than the burst, at once; the rest of the burst is dropped under the pause', async () => {
    const { c, id } = await handshaken();
    // 300 frames sent in one go: far over the burst of 100 even if the sends spread over tens of ms.
    for (let seq = 1; seq <= 300; seq++) c.send(data(seq, `frame ${seq}`));
    await expectOnly(id, 'budget-overrun');
    await c.waitFrame((f) => f.messageType === MessageType.PausePublication);
    const s = sim.gateway.session(id)!.stats();
    // Frames after the first one over budget were dropped under the pause, within the grace period.
    expect(s.droppedByPolicy).toBeGreaterThan(1);
    expect(s.droppedByPolicy).toBeLessThanOrEqual(200);
    expect(counts(id)).toEqual({ 'budget-overrun': 1 });
  });

  it('disconnect-to-port: Flag 1 in an SSH session ends it as failed', async () => {
    const { c, id } = await handshaken();
    const flag = clientFrame({ sequenceNumber: 1, payloadType: PayloadType.Flag, payload: encodeFlag(1) });
    c.send(flag);
    // The flag waits for the agent's dial like data (§9.5); resend it, byte-identical, until the session ends.
    for (let i = 0; i < 30 && !c.channelClosed(); i++) {
      await waitFor([c], () => c.channelClosed(), 150, 'channel_closed').catch(() => c.send(flag));
    }
    const closed = await c.waitChannelClosed();
    expect(closed.output).toContain('DisconnectToPort');
    expect(closed.output).not.toBe('');
    await expectOnly(id, 'disconnect-to-port');
  });

  it('text-after-first: a second text frame', async () => {
    const { c, id } = await handshaken();
    c.sendText('{"MessageSchemaVersion":"1.0"}');
    await expectOnly(id, 'text-after-first');
  });

  it('bad-payload: an acknowledge whose JSON does not parse', async () => {
    const { c, id } = await handshaken();
    c.send(clientFrame({ sequenceNumber: 0, messageType: MessageType.Acknowledge, flags: 3, payloadType: 0, payload: Buffer.from('{not json') }));
    await expectOnly(id, 'bad-payload');
  });

  it('covers every kind', () => {
    expect([...covered].sort()).toEqual([...VIOLATION_KINDS].sort());
  });
});

describe('a well-behaved client', () => {
  it('transfers data both ways, terminates with the flag, and trips nothing', async () => {
    const { client, ticket } = await connectClient(sim, echo.port, { frameRate: 1000, frameBurst: 20 });
    const payload = randomBytes(512 * 1024);
    await client.writeAll(payload);
    await waitFor([client], () => client.receivedBytes >= payload.length, 20_000, 'echo');
    expect(client.data().equals(payload)).toBe(true);
    client.sendTerminateFlag();
    const closed = await waitFor([client], () => client.closed, 5000, 'channel_closed');
    expect(closed.output).toBe('');
    expect(counts(ticket.sessionId)).toEqual({});
    expect(sim.gateway.session(ticket.sessionId)!.stats().pausesSent).toBe(0);
    client.close();
  });
});
