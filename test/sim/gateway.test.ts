// The fake gateway and agent: token checks, handshake order and the agent's dial, the ways a
// session ends (channel_closed), resuming after a websocket drop, and /stats.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { WebSocket } from 'ws';
import { MessageType, PayloadType } from '../../src/protocol/constants.ts';
import { startSimulator, type SimOptions, type Simulator } from './index.ts';
import {
  ackFrame,
  clientFrame,
  connectClient,
  destroyClient,
  openWs,
  RawClient,
  receivedBytes,
  resumeSession,
  startSession,
  tcpTarget,
  terminateSession,
  waitFor,
  type TcpTarget,
} from './testing.ts';

const TARGET = 'i-0123456789abcdef0';
let sim: Simulator;
let echo: TcpTarget;
const extraSims: Simulator[] = [];
const raws: RawClient[] = [];

beforeAll(async () => {
  sim = await startSimulator({ profile: 'service' });
  echo = await tcpTarget('echo');
});
afterAll(async () => {
  for (const r of raws) r.terminate();
  for (const s of [sim, ...extraSims]) {
    destroyClient(s);
    await s.close();
  }
  await echo.close();
});

async function another(opts: SimOptions): Promise<Simulator> {
  const s = await startSimulator({ profile: 'service', ...opts });
  extraSims.push(s);
  return s;
}

async function raw(t: { streamUrl: string; token: string }, extra?: Parameters<typeof RawClient.connect>[1]): Promise<RawClient> {
  const c = await RawClient.connect({ sessionId: '', ...t }, extra);
  raws.push(c);
  return c;
}

describe('OpenDataChannel and tokens', () => {
  it('a bad token is refused: close 1008 "bad-token"', async () => {
    const t = await startSession(sim, TARGET, echo.port);
    const c = await raw({ ...t, token: 'AAAA' + t.token.slice(4) });
    expect(await c.waitClose()).toEqual({ code: 1008, reason: 'bad-token' });
    expect(c.frames).toEqual([]);
  });

  it('a token works once: the second use is refused with "token-used"', async () => {
    const t = await startSession(sim, TARGET, echo.port);
    const first = await raw(t);
    await first.waitFrame((f) => f.payloadType === PayloadType.HandshakeRequest);
    const second = await raw(t);
    expect(await second.waitClose()).toEqual({ code: 1008, reason: 'token-used' });
    expect(first.close).toBeUndefined();
  });

  it('an expired token is refused with "token-expired"', async () => {
    const s = await another({ tokenTtlMs: 0 });
    const t = await startSession(s, TARGET, echo.port);
    const c = await raw(t);
    expect(await c.waitClose()).toEqual({ code: 1008, reason: 'token-expired' });
  });

  it('unknown and terminated sessions are refused', async () => {
    const t = await startSession(sim, TARGET, echo.port);
    const unknown = await raw({ streamUrl: t.streamUrl.replace(t.sessionId, 'sim-user-0000000000000000f'), token: t.token });
    expect(await unknown.waitClose()).toEqual({ code: 1008, reason: 'unknown-session' });
    await terminateSession(sim, t.sessionId);
    const late = await raw(t);
    expect(await late.waitClose()).toEqual({ code: 1008, reason: 'session-terminated' });
  });

  it('accepts an OpenDataChannel without ClientId and ClientVersion (older clients)', async () => {
    const t = await startSession(sim, TARGET, echo.port);
    const c = await raw(t, { clientId: null, clientVersion: null });
    await c.handshake();
  });

  it('refuses a binary first message, a wrong path and a missing role', async () => {
    const t = await startSession(sim, TARGET, echo.port);
    const ws = await openWs(t.streamUrl);
    const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
    ws.send(clientFrame({ sequenceNumber: 0 }));
    expect(await closed).toBe(1008);
    await expect(openWs(`${sim.gatewayUrl}/v1/elsewhere/${t.sessionId}?role=publish_subscribe`)).rejects.toThrow(/404/);
    await expect(openWs(`${sim.gatewayUrl}/v1/data-channel/${t.sessionId}`)).rejects.toThrow(/400/);
    // The token was not spent by the refused attempts above: the first frame was binary, so no token was read.
    const c = await raw(t);
    await c.handshake();
  });
});

describe('handshake and the agent dial', () => {
  it('HandshakeRequest is agent seq 0, Flags 1, PT 5, a Port session with the portNumber property', async () => {
    const t = await startSession(sim, TARGET, echo.port);
    const c = await raw(t);
    const req = await c.waitFrame((f) => f.messageType === MessageType.OutputStreamData);
    expect(req).toMatchObject({ sequenceNumber: 0, flags: 1n, payloadType: PayloadType.HandshakeRequest, schemaVersion: 1, headerLength: 116 });
    expect(JSON.parse(req.payload.toString())).toEqual({
      AgentVersion: '3.3.1142.0',
      RequestedClientActions: [{ ActionType: 'SessionType', ActionParameters: { SessionType: 'Port', Properties: { portNumber: String(echo.port) } } }],
    });
    await c.handshake();
    const hc = c.find((f) => f.payloadType === PayloadType.HandshakeComplete)!;
    expect(hc).toMatchObject({ sequenceNumber: 1, flags: 0n });
    expect(JSON.parse(hc.payload.toString())).toMatchObject({ CustomerMessage: '' });
  });

  it('the agent dials only after HandshakeComplete', async () => {
    const target = await tcpTarget('sink');
    try {
      const t = await startSession(sim, TARGET, target.port);
      const c = await raw(t);
      c.noAck.add(0);
      // No ack and no response yet: wait for the agent to retransmit its HandshakeRequest (>= 200 ms); still no dial.
      await waitFor([c], () => c.frames.filter((f) => f.payloadType === PayloadType.HandshakeRequest).length >= 2, 3000, 'a HandshakeRequest retransmission');
      expect(target.accepted).toBe(0);
      c.send(ackFrame(c.frames[0]));
      await c.handshake();
      const session = sim.gateway.session(t.sessionId)!;
      await waitFor([sim.gateway], () => session.timeline.find((e) => e.event === 'dial-ok'), 3000, 'the dial');
      expect(target.accepted).toBe(1);
      const events = session.timeline.map((e) => e.event);
      expect(events.indexOf('handshake-complete-sent')).toBeGreaterThan(-1);
      expect(events.indexOf('dial-start')).toBeGreaterThan(events.indexOf('handshake-complete-sent'));
      expect(events.indexOf('dial-ok')).toBeGreaterThan(events.indexOf('dial-start'));
    } finally {
      await target.close();
    }
  });

  it('client data that arrives before the dial completes is left unacked until retransmitted (Q32)', async () => {
    const s = await another({ faults: { dialDelayMs: 300 } });
    const target = await tcpTarget('sink');
    try {
      const t = await startSession(s, TARGET, target.port);
      const c = await raw(t);
      await c.handshake();
      const first = clientFrame({ sequenceNumber: 1, payload: Buffer.from('SSH-2.0-client\r\n') });
      c.send(first);
      const second = clientFrame({ sequenceNumber: 2, payload: Buffer.from('more') });
      c.send(second);
      const session = s.gateway.session(t.sessionId)!;
      await waitFor([s.gateway], () => session.timeline.find((e) => e.event === 'dial-ok'), 3000, 'dial-ok');
      // seq 2 was out of order: buffered and acked. seq 1 was "not ready": no ack.
      await c.waitAck(2);
      expect(c.acksFor(1)).toEqual([]);
      expect(target.accepted).toBe(1);
      c.send(first); // the client's retransmission, byte-identical
      await c.waitAck(1);
      await waitFor([target.events], () => receivedBytes(target).toString() === 'SSH-2.0-client\r\nmore', 3000, 'both frames at the target');
      expect(session.stats().retransmissionsSeen).toBe(1);
      expect(s.totalViolations()).toBe(0);
    } finally {
      await target.close();
    }
  });

  it('no HandshakeResponse within the timeout: channel_closed with the agent\'s message', async () => {
    const s = await another({ handshakeTimeoutMs: 300 });
    const t = await startSession(s, TARGET, echo.port);
    const c = await raw(t);
    const closed = await c.waitChannelClosed(3000);
    expect(closed.output).toMatch(/^Handshake timed out/);
    expect(s.registry.get(t.sessionId)!.state).toBe('terminated');
  });

  it('the handshake clock starts with the session, not when the client connects late (§6.5)', async () => {
    const s = await another({ handshakeTimeoutMs: 1000 });
    const t = await startSession(s, TARGET, echo.port);
    await new Promise((r) => setTimeout(r, 800));
    const c = await raw(t);
    const t0 = performance.now();
    const closed = await c.waitChannelClosed(3000);
    expect(closed.output).toMatch(/^Handshake timed out/);
    // ~200 ms were left of the 1000 when the client attached, not another 1000.
    expect(performance.now() - t0).toBeLessThan(900);
  });
});

describe('how sessions end: channel_closed', () => {
  it('target EOF: the last bytes, then channel_closed with empty Output, then a websocket close', async () => {
    const target = await tcpTarget('sink', (sock) => sock.end('last words\r\n'));
    try {
      const t = await startSession(sim, TARGET, target.port);
      const c = await raw(t);
      await c.handshake();
      const closed = await c.waitChannelClosed(5000);
      expect(closed).toMatchObject({ output: '', sessionId: t.sessionId, destinationId: TARGET, messageType: 'channel_closed', schemaVersion: 1 });
      expect(c.output().toString()).toBe('last words\r\n');
      const ccIndex = c.frames.findIndex((f) => f.messageType === MessageType.ChannelClosed);
      const dataIndex = c.frames.findIndex((f) => f.payloadType === PayloadType.Output);
      expect(dataIndex).toBeLessThan(ccIndex);
      expect(c.frames[ccIndex]).toMatchObject({ sequenceNumber: 0, flags: 0n, payloadType: 0 });
      expect((await c.waitClose()).code).toBe(1000);
      expect(sim.registry.get(t.sessionId)!.state).toBe('terminated');
    } finally {
      await target.close();
    }
  });

  it('TerminateSession API: the target is closed and the client gets channel_closed', async () => {
    const target = await tcpTarget('sink');
    try {
      const t = await startSession(sim, TARGET, target.port);
      const c = await raw(t);
      await c.handshake();
      await waitFor([target.events], () => target.accepted === 1, 3000, 'dial');
      await terminateSession(sim, t.sessionId);
      expect((await c.waitChannelClosed()).output).toBe('');
      await waitFor([target.events], () => target.sockets.size === 0, 3000, 'target socket closed');
    } finally {
      await target.close();
    }
  });

  it('Flag TerminateSession: the session ends successfully', async () => {
    const { client, ticket } = await connectClient(sim, echo.port, { frameRate: 1000, frameBurst: 20 });
    client.write(Buffer.from('ping'));
    await waitFor([client], () => client.receivedBytes === 4, 3000, 'echo');
    client.sendTerminateFlag();
    const closed = await waitFor([client], () => client.closed, 3000, 'channel_closed');
    expect(closed.output).toBe('');
    expect(sim.registry.get(ticket.sessionId)!.terminateReason).toBe('TerminateSession flag');
    client.close();
  });

  it('sustained limit breaking: channel_closed "rate exceeded"', async () => {
    const s = await another({ penaltyMs: 30, sustain: { episodes: 3, windowMs: 10_000 } });
    const t = await startSession(s, TARGET, echo.port);
    const c = await raw(t);
    await c.handshake();
    let seq = 1;
    for (let i = 0; i < 3; i++) {
      c.send(clientFrame({ sequenceNumber: seq++, payload: randomBytes(2000) }));
      if (i < 2) await c.waitFrame((f) => f.messageType === MessageType.StartPublication && c.frames.filter((x) => x.messageType === MessageType.StartPublication).length > i, 3000);
    }
    const closed = await c.waitChannelClosed();
    expect(closed.output).toMatch(/^rate exceeded/);
    expect(s.violations()['oversized-payload']).toBe(3);
  });
});

describe('resume', () => {
  it('after a websocket drop the client resumes with a ResumeSession token; the agent kept its state', async () => {
    const { client, ticket } = await connectClient(sim, echo.port, { frameRate: 1000, frameBurst: 20 });
    const a = randomBytes(20_000);
    client.write(a);
    await waitFor([client], () => client.receivedBytes === a.length, 5000, 'first echo');
    client.ws!.terminate(); // the network drops
    await waitFor([client], () => !client.ws, 3000, 'close seen by the client');
    const session = sim.gateway.session(ticket.sessionId)!;
    await waitFor([sim.gateway], () => !session.conn, 3000, 'close seen by the gateway');
    const b = randomBytes(30_000);
    client.write(b); // queued while disconnected
    // The original token is spent; a fresh one comes from ResumeSession.
    const stale = await raw(ticket);
    expect(await stale.waitClose()).toEqual({ code: 1008, reason: 'token-used' });
    const resumed = await resumeSession(sim, ticket.sessionId);
    expect(resumed.streamUrl).toBe(ticket.streamUrl);
    await client.connect(resumed);
    await waitFor([client], () => client.receivedBytes === a.length + b.length, 10_000, 'echo after resume');
    expect(client.data().equals(Buffer.concat([a, b]))).toBe(true);
    expect(client.events.some((e) => e.type === 'handshake-request' && client.events.indexOf(e) > 0)).toBe(false);
    const s = session.stats();
    expect(s.connects).toBe(2);
    expect(s.startsSent).toBe(1);
    expect(sim.gateway.sessions.get(ticket.sessionId)).toBe(session);
    client.sendTerminateFlag();
    await waitFor([client], () => client.closed, 3000, 'channel_closed');
    client.close();
  });
});

describe('GET /stats', () => {
  it('reports violations and per-session counters', async () => {
    const t = await startSession(sim, TARGET, echo.port);
    const c = await raw(t);
    await c.handshake();
    c.send(clientFrame({ sequenceNumber: 7, payload: Buffer.from('gap') }));
    await waitFor([sim.gateway], () => sim.gateway.session(t.sessionId)?.violations['sequence-gap'], 3000, 'the violation');
    const body = (await (await fetch(sim.statsUrl)).json()) as { violations: Record<string, number>; totalViolations: number; sessions: { sessionId: string; framesFromClient: number; violations: Record<string, number> }[] };
    expect(body.violations['sequence-gap']).toBeGreaterThanOrEqual(1);
    expect(body.totalViolations).toBe(sim.totalViolations());
    const mine = body.sessions.find((x) => x.sessionId === t.sessionId)!;
    expect(mine.violations).toEqual({ 'sequence-gap': 1 });
    expect(mine.framesFromClient).toBeGreaterThanOrEqual(4);
    expect(JSON.stringify(body)).not.toContain(t.token);
  });
});

describe('latency (a long network path)', () => {
  it('takes a request or an upgrade no sooner than connectMs after its connection was accepted, and answers the API apiMs late', async () => {
    const slow = await startSimulator({ profile: 'service', latency: { apiMs: 150, connectMs: 600 } });
    extraSims.push(slow);
    // The first call opens the client's connection: its set-up, then the answer.
    let t0 = performance.now();
    const t = await startSession(slow, TARGET, echo.port);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(745);
    // The next goes over the same (kept-alive) connection: the answer's delay only.
    t0 = performance.now();
    await startSession(slow, TARGET, echo.port);
    const again = performance.now() - t0;
    expect(again).toBeGreaterThanOrEqual(145);
    expect(again).toBeLessThan(700);

    t0 = performance.now();
    const fresh = await openWs(t.streamUrl);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(595);
    fresh.terminate();

    // A connection accepted long enough before (one opened while StartSession was answered) is not held up.
    const u = new URL(slow.gatewayUrl);
    const early = connect(Number(u.port), u.hostname);
    await new Promise((r) => early.once('connect', r));
    await new Promise((r) => setTimeout(r, 600));
    t0 = performance.now();
    const ws = await new Promise<WebSocket>((resolve, reject) => {
      const w = new WebSocket(t.streamUrl, { perMessageDeflate: false, createConnection: () => early });
      w.once('open', () => resolve(w));
      w.once('error', reject);
    });
    expect(performance.now() - t0).toBeLessThan(550);
    ws.terminate();
  });
});
