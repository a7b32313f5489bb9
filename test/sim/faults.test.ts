// Every fault kind happens as configured and the client core (ReliableChannel) still gets its
// bytes through exactly; the same seed gives the same fault schedule.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { PayloadType } from '../../src/protocol/constants.ts';
import { FaultInjector, type FaultConfig, type FaultDecision } from './faults.ts';
import { startSimulator, type SimOptions, type Simulator } from './index.ts';
import { ChannelClient, connectClient, delay, destroyClient, receivedBytes, tcpTarget, waitFor, type ChannelClientOptions, type TcpTarget } from './testing.ts';

let echo: TcpTarget;
const sims: Simulator[] = [];
const clients: ChannelClient[] = [];

beforeAll(async () => {
  echo = await tcpTarget('echo');
});
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const s of sims.splice(0)) {
    destroyClient(s);
    await s.close();
  }
});
afterAll(async () => {
  await echo.close();
});

async function sim(opts: SimOptions): Promise<Simulator> {
  const s = await startSimulator({ profile: 'service', ...opts });
  sims.push(s);
  return s;
}

/** Echoes `size` random bytes through the simulator and checks them byte for byte. */
async function echoThrough(s: Simulator, size: number, opts: ChannelClientOptions & { resumable?: boolean } = {}, timeoutMs = 20_000) {
  const { client, ticket } = await connectClient(s, echo.port, { frameRate: 1000, frameBurst: 20, ...opts });
  clients.push(client);
  const data = randomBytes(size);
  await client.writeAll(data, 16 * 1024, timeoutMs);
  await waitFor([client], () => client.receivedBytes >= data.length || client.closed, timeoutMs, `${size} echoed bytes`);
  expect(client.closed).toBeUndefined();
  expect(client.receivedBytes).toBe(data.length);
  expect(client.data().equals(data)).toBe(true);
  const session = s.gateway.session(ticket.sessionId)!;
  return { client, ticket, session, stats: session.stats() };
}

describe('frame faults (per direction)', () => {
  it('drop: frames vanish both ways; both sides retransmit; bytes arrive exactly', async () => {
    const s = await sim({ seed: 11, faults: { clientToAgent: { drop: 0.05 }, agentToClient: { drop: 0.05 } } });
    const { client, stats } = await echoThrough(s, 128 * 1024);
    expect(stats.faults.clientToAgent.drop).toBeGreaterThan(0);
    expect(stats.faults.agentToClient.drop).toBeGreaterThan(0);
    expect(stats.agentRetransmissions).toBeGreaterThan(0);
    expect(client.channel.senderStats.retransmissions).toBeGreaterThan(0);
    expect(s.totalViolations()).toBe(0);
  });

  it('duplicate: both receivers see copies and discard them', async () => {
    const s = await sim({ seed: 12, faults: { clientToAgent: { duplicate: 0.1 }, agentToClient: { duplicate: 0.1 } } });
    const { client, stats } = await echoThrough(s, 128 * 1024);
    expect(stats.faults.clientToAgent.duplicate).toBeGreaterThan(0);
    expect(stats.faults.agentToClient.duplicate).toBeGreaterThan(0);
    expect(stats.duplicatesAtAgent).toBeGreaterThan(0);
    expect(client.channel.stats.duplicates).toBeGreaterThan(0);
    expect(s.totalViolations()).toBe(0);
  });

  it('reorder: held frames overtaken by the next ones are buffered and reordered', async () => {
    const s = await sim({ seed: 13, faults: { clientToAgent: { reorder: 0.1, reorderAfter: 3 }, agentToClient: { reorder: 0.1, reorderAfter: 3 } } });
    const { client, session, stats } = await echoThrough(s, 128 * 1024);
    expect(stats.faults.clientToAgent.hold).toBeGreaterThan(0);
    expect(stats.faults.agentToClient.hold).toBeGreaterThan(0);
    expect(client.channel.stats.outOfOrder).toBeGreaterThan(0);
    expect(session.channel.stats.outOfOrder).toBeGreaterThan(0);
    expect(s.totalViolations()).toBe(0);
  });

  it('delay and jitter: every frame is late by delay..delay+jitter ms', async () => {
    const s = await sim({ seed: 14, faults: { clientToAgent: { delayMs: 10, jitterMs: 15 }, agentToClient: { delayMs: 10, jitterMs: 15 } } });
    const t0 = performance.now();
    const { session } = await echoThrough(s, 32 * 1024);
    const ds = session.decisions;
    expect(ds.length).toBeGreaterThan(50);
    expect(Math.min(...ds.map((d) => d.delayMs))).toBeGreaterThanOrEqual(10);
    expect(Math.max(...ds.map((d) => d.delayMs))).toBeLessThanOrEqual(25);
    expect(new Set(ds.map((d) => d.delayMs)).size).toBeGreaterThan(5);
    // HandshakeComplete arrives after at least three delayed hops (request, response, complete).
    const hc = session.timeline.find((e) => e.event === 'handshake-complete-sent')!;
    expect(hc.t).toBeGreaterThanOrEqual(20);
    expect(performance.now() - t0).toBeGreaterThan(30);
    expect(s.totalViolations()).toBe(0);
  });

  it('corrupt digest / payload: every corrupted frame is rejected by its receiver, and retransmitted', async () => {
    const both = { corruptDigest: 0.04, corruptPayload: 0.04 };
    const s = await sim({ seed: 15, faults: { clientToAgent: both, agentToClient: both } });
    const { client, stats } = await echoThrough(s, 128 * 1024);
    const c2a = stats.faults.clientToAgent['corrupt-digest'] + stats.faults.clientToAgent['corrupt-payload'];
    const a2c = stats.faults.agentToClient['corrupt-digest'] + stats.faults.agentToClient['corrupt-payload'];
    expect(stats.faults.clientToAgent['corrupt-digest']).toBeGreaterThan(0);
    expect(stats.faults.clientToAgent['corrupt-payload']).toBeGreaterThan(0);
    expect(a2c).toBeGreaterThan(0);
    // The agent rejected exactly the corrupted client frames; the client exactly the corrupted agent frames.
    expect(stats.anomalies['decode-error']).toBe(c2a);
    expect(client.anomalies('decode-error')).toBe(a2c);
    // The client sent clean frames: corruption happened after the gateway counted them.
    expect(s.totalViolations()).toBe(0);
  });

  it('dropFirst: the first HandshakeComplete (agent seq 1) and HandshakeResponse (client seq 0) are lost once', async () => {
    const s = await sim({ seed: 16, faults: { dropFirst: { agentToClient: [1], clientToAgent: [0] } } });
    const { session, stats } = await echoThrough(s, 8 * 1024);
    const dropped = session.decisions.filter((d) => d.action === 'drop-first').map((d) => `${d.dir}:${d.key}`);
    expect(dropped.sort()).toEqual(['agentToClient:d1#0', 'clientToAgent:d0#0']);
    expect(session.decisions.filter((d) => d.key === 'd1#1' && d.dir === 'agentToClient')[0]?.action).toBe('pass');
    expect(stats.agentRetransmissions).toBeGreaterThanOrEqual(1);
    expect(s.totalViolations()).toBe(0);
  });

  it('drop acks: only acknowledgements are lost (per-direction knob)', async () => {
    const s = await sim({ seed: 17, faults: { clientToAgent: { dropAcks: 0.3 }, agentToClient: { dropAcks: 0.3 } } });
    const { client, session } = await echoThrough(s, 64 * 1024);
    // The agent retransmits a frame whose ack was lost on its next scan (oldest-only, every 100 ms).
    await waitFor([s.gateway], () => session.channel.senderStats.retransmissions > 0, 3000, 'an agent retransmission');
    await waitFor([client], () => client.channel.senderStats.retransmissions > 0, 3000, 'a client retransmission');
    const stats = session.stats();
    expect(stats.faults.clientToAgent['drop-ack']).toBeGreaterThan(0);
    expect(stats.faults.agentToClient['drop-ack']).toBeGreaterThan(0);
    expect(stats.faults.clientToAgent.drop + stats.faults.agentToClient.drop).toBe(0);
    expect(s.totalViolations()).toBe(0);
  });

  it('agent stops acking after N ms: from then on every agent ack is dropped', async () => {
    const s = await sim({ seed: 18, faults: { agentStopsAckingAfterMs: 300 } });
    const sink = await tcpTarget('sink');
    try {
      const { client, ticket } = await connectClient(s, sink.port, { frameRate: 1000, frameBurst: 20 });
      clients.push(client);
      const session = s.gateway.session(ticket.sessionId)!;
      await waitFor([s.gateway], () => session.timeline.find((e) => e.event === 'dial-ok'), 5000, 'dial');
      const before = Buffer.from('before the agent stopped acking');
      client.write(before);
      await waitFor([client], () => client.channel.unacked === 0, 5000, 'acks while the agent still acks');
      // Build the timing: write again once the agent's acks are cut off.
      await delay(Math.max(0, 330 - (performance.now() - session.startedAt)));
      const after = Buffer.from('after');
      client.write(after);
      // The agent still delivers the bytes but its acks never reach the client, which keeps retransmitting.
      await waitFor([sink.events], () => receivedBytes(sink).length >= before.length + after.length, 5000, 'delivery');
      await waitFor([client], () => client.channel.senderStats.retransmissions >= 2, 5000, 'client retransmissions');
      expect(client.channel.unacked).toBeGreaterThan(0);
      expect(session.stats().faults.agentToClient['stop-acking']).toBeGreaterThanOrEqual(2);
      expect(receivedBytes(sink).toString()).toBe(before.toString() + after.toString());
    } finally {
      await sink.close();
    }
  });
});

describe('connection faults', () => {
  it('close after N bytes, every connection: the client resumes via ResumeSession and the agent stays', async () => {
    const s = await sim({ seed: 21, faults: { closeClient: { afterBytes: 96 * 1024, repeat: true } } });
    const { client, session, ticket } = await echoThrough(s, 192 * 1024, { resumable: true }, 30_000);
    expect(session.stats().faults.closes).toBeGreaterThanOrEqual(3);
    expect(client.wsCloses.filter((c) => c.code === 1006).length).toBeGreaterThanOrEqual(3);
    expect(s.api.count('ResumeSession')).toBe(client.resumes);
    expect(session.stats().connects).toBe(client.resumes + 1);
    expect(s.gateway.sessions.size).toBe(1); // one agent across all reconnects
    expect(s.registry.get(ticket.sessionId)!.state).toBe('connected');
    expect(s.totalViolations()).toBe(0);
  });

  it('close after N ms, once', async () => {
    const s = await sim({ seed: 22, faults: { closeClient: { afterMs: 300 } } });
    const { client, ticket } = await connectClient(s, echo.port, { frameRate: 1000, frameBurst: 20, resumable: true } as never);
    clients.push(client);
    await waitFor([client], () => client.connects >= 2 && client.ws, 5000, 'reconnect');
    const data = randomBytes(32 * 1024);
    await client.writeAll(data);
    await waitFor([client], () => client.receivedBytes >= data.length, 10_000, 'echo after the reconnect');
    expect(client.data().equals(data)).toBe(true);
    expect(s.gateway.session(ticket.sessionId)!.stats().faults.closes).toBe(1);
    expect(client.resumes).toBe(1);
  });

  it('periodic recycle: close 1000 "Bye", then the client resumes', async () => {
    const s = await sim({ seed: 23, recycleMs: 250 });
    const { client, session } = await echoThrough(s, 64 * 1024, { resumable: true });
    await waitFor([client], () => client.wsCloses.length >= 1 && client.ws, 5000, 'a recycle');
    expect(client.wsCloses[0]).toEqual({ code: 1000, reason: 'Bye' });
    expect(session.stats().faults.recycles).toBeGreaterThanOrEqual(1);
    expect(s.totalViolations()).toBe(0);
  });

  it('refused target port: channel_closed with the dial error as Output', async () => {
    const s = await sim({ faults: { refuseTargets: ['i-0123456789abcdef0'] } });
    const { client, ticket } = await connectClient(s, 22, {});
    clients.push(client);
    const closed = await waitFor([client], () => client.closed, 5000, 'channel_closed');
    expect(closed.output).toMatch(/^Unable to connect to specified port: dial tcp 127\.0\.0\.1:\d+: connect: connection refused$/);
    expect(closed.sessionId).toBe(ticket.sessionId);
    expect(s.registry.get(ticket.sessionId)!.state).toBe('terminated');
    await waitFor([client], () => client.wsCloses[0], 2000, 'websocket close');
  });

  it('slow target: writes to the target are limited to N bytes/s', async () => {
    const s = await sim({ faults: { slowTargetBytesPerSec: 100_000 } });
    const sink = await tcpTarget('sink');
    try {
      const { client } = await connectClient(s, sink.port, { frameRate: 1000, frameBurst: 20 });
      clients.push(client);
      const data = randomBytes(100 * 1024);
      const t0 = performance.now();
      await client.writeAll(data);
      await waitFor([sink.events], () => receivedBytes(sink).length >= data.length, 10_000, 'all bytes at the target');
      const secs = (performance.now() - t0) / 1000;
      expect(secs).toBeGreaterThan(0.8);
      expect(secs).toBeLessThan(3);
      expect(receivedBytes(sink).equals(data)).toBe(true);
    } finally {
      await sink.close();
    }
  });

  it('pause_publication windows (agent reconnecting): the client holds its data, nothing is lost', async () => {
    const s = await sim({ seed: 24, faults: { pauseClient: { firstAtMs: 100, everyMs: 250, forMs: 120, times: 3 } } });
    const { client, session } = await echoThrough(s, 384 * 1024);
    const paused = () => client.events.filter((e) => e.type === 'paused').length;
    await waitFor([client], () => paused() === 3 && !client.channel.paused, 3000, 'three pause windows');
    expect(session.stats().faults.pausesInjected).toBe(3);
    expect(session.stats().startsSent).toBe(3);
    expect(s.totalViolations()).toBe(0);
  });
});

describe('seeded schedule', () => {
  const faults: FaultConfig = {
    clientToAgent: { drop: 0.08, duplicate: 0.05, reorder: 0.05, corruptDigest: 0.03, dropAcks: 0.1, jitterMs: 3 },
    agentToClient: { drop: 0.08, duplicate: 0.05, reorder: 0.05, corruptPayload: 0.03, dropAcks: 0.1, jitterMs: 3 },
  };

  it('decisions are a pure function of seed, session, direction and frame identity', () => {
    const mk = (seed: number) => new FaultInjector(faults, seed, 0, () => 0);
    const seq = (inj: FaultInjector) =>
      Array.from({ length: 500 }, (_, i) => inj.decide(i % 3 === 0 ? 'agentToClient' : 'clientToAgent', { kind: i % 2 ? 'ack' : 'data', messageType: '', seq: i % 40, payloadType: PayloadType.Output, ackedSeq: i % 40 })).map((d) => `${d.key}:${d.action}:${d.delayMs}`);
    expect(seq(mk(5))).toEqual(seq(mk(5)));
    expect(seq(mk(5))).not.toEqual(seq(mk(6)));
  });

  async function run(seed: number): Promise<Map<string, FaultDecision>> {
    const s = await sim({ seed, faults });
    const { session } = await echoThrough(s, 48 * 1024);
    return new Map(session.decisions.map((d) => [`${d.dir}/${d.key}`, d]));
  }

  it('two runs with the same seed treat the same frames the same way', async () => {
    const a = await run(77);
    const b = await run(77);
    const c = await run(78);
    const common = [...a.keys()].filter((k) => b.has(k));
    expect(common.length).toBeGreaterThan(0.5 * Math.min(a.size, b.size));
    for (const k of common) expect(`${k} ${b.get(k)!.action} ${b.get(k)!.delayMs}`).toBe(`${k} ${a.get(k)!.action} ${a.get(k)!.delayMs}`);
    const actions = new Set(common.map((k) => a.get(k)!.action));
    expect(actions.size).toBeGreaterThanOrEqual(4);
    const commonAC = [...a.keys()].filter((k) => c.has(k));
    expect(commonAC.some((k) => a.get(k)!.action !== c.get(k)!.action)).toBe(true);
  });
});
