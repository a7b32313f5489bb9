// A misbehaving or silent service: the proxy ends with the documented exit code
// and one line saying what happened, within a bound, and prints nothing on stdout.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { encodeFrame } from '../../src/protocol/frame.ts';
import { encodeChannelClosed, encodeHandshakeComplete, encodeHandshakeRequest } from '../../src/protocol/payloads.ts';
import { SessionRegistry } from '../sim/sessions.ts';
import { FakeSsmApi, TEST_CREDENTIALS } from '../sim/ssm-api.ts';
import { startSimulator } from '../sim/index.ts';
import { requireOpenSsh } from './openssh.ts';
import { cleanAwsEnv, runProxy, simAwsEnv } from './proxy-process.ts';

type Behaviour = (ws: WebSocket) => void;
let behaviour: Behaviour = () => {};
let wss: WebSocketServer;
let api: FakeSsmApi;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  requireOpenSsh();
  wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  await new Promise((r) => wss.once('listening', r));
  const port = (wss.address() as { port: number }).port;
  // Every connection: wait for the OpenDataChannel text frame, then act out the behaviour.
  wss.on('connection', (ws) => ws.once('message', () => behaviour(ws)));
  api = new FakeSsmApi({ registry: new SessionRegistry(), streamUrl: (id) => `ws://127.0.0.1:${port}/v1/data-channel/${id}?role=publish_subscribe` });
  await api.listen();
  env = cleanAwsEnv({ AWS_ACCESS_KEY_ID: TEST_CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: TEST_CREDENTIALS.secretAccessKey, AWS_REGION: 'us-east-1', AWS_ENDPOINT_URL_SSM: api.url });
});
afterAll(async () => {
  await api?.close();
  wss?.close();
});

function agentFrame(seq: number, payloadType: number, payload: Buffer): Buffer {
  return encodeFrame({ messageType: 'output_stream_data', createdDate: Date.now(), sequenceNumber: seq, flags: seq === 0 ? 1 : 0, payloadType, payload });
}

function oneLine(stderr: string): string {
  const lines = stderr.split('\n').filter((l) => l !== '');
  expect(lines, stderr).toHaveLength(1);
  return lines[0];
}

describe('a service that misbehaves', () => {
  it('websocket closed during setup: retried with ResumeSession, then exit 6 and the session terminated', async () => {
    behaviour = (ws) => ws.close(1011, 'internal error');
    const before = api.calls.length;
    const r = await runProxy(['i-0123456789abcdef0'], { ...env, SSM_PROXY_RECONNECT_FOR: '2' }, { keepStdinOpen: true, timeoutMs: 15_000 });
    expect(r.code).toBe(6);
    expect(r.stdout.length).toBe(0);
    expect(oneLine(r.stderr)).toMatch(/data channel closed during setup \(websocket closed \(code 1011, internal error\)\)/);
    const ops = api.calls.slice(before).map((c) => c.operation);
    expect(ops.filter((o) => o === 'ResumeSession').length).toBeGreaterThanOrEqual(2);
    expect(ops.at(-1)).toBe('TerminateSession');
  });

  it('a shell session instead of a Port session: exit 8 (handshake refused with a reason)', async () => {
    let response = '';
    behaviour = (ws) => {
      ws.on('message', (d: Buffer) => {
        if (d.length > 120 && d.readUInt32BE(112) === 6) response = d.subarray(120).toString();
      });
      ws.send(agentFrame(0, 5, encodeHandshakeRequest({ agentVersion: '3.3.1142.0', requestedClientActions: [{ actionType: 'SessionType', actionParameters: { SessionType: 'Standard_Stream', Properties: null } }] })));
    };
    const r = await runProxy(['i-0123456789abcdef0'], env, { keepStdinOpen: true, timeoutMs: 15_000 });
    expect(r.code).toBe(8);
    expect(r.stdout.length).toBe(0);
    expect(oneLine(r.stderr)).toMatch(/handshake failed: session type Standard_Stream is not supported/);
    expect(JSON.parse(response).ProcessedClientActions[0]).toMatchObject({ ActionType: 'SessionType', ActionStatus: 2 });
  });

  it('stream data without a handshake (not a Port session): exit 8', async () => {
    behaviour = (ws) => ws.send(agentFrame(0, 1, Buffer.from('$ ')));
    const r = await runProxy(['i-0123456789abcdef0'], env, { keepStdinOpen: true, timeoutMs: 15_000 });
    expect(r.code).toBe(8);
    expect(r.stdout.length).toBe(0);
    expect(oneLine(r.stderr)).toMatch(/not a Port session/);
  });

  it('a channel_closed with an irregular header (PayloadLength 0, no digest, sequence -1) still ends the session: exit 1 with its Output', async () => {
    behaviour = (ws) => {
      const payload = Buffer.from(JSON.stringify({ MessageId: '6a3e2f10-5b4c-4d8e-9f01-23456789abcd', CreatedDate: String(Date.now()), DestinationId: 'i-0123456789abcdef0', SessionId: 's', MessageType: 'channel_closed', SchemaVersion: 1, Output: 'Session terminated by the administrator' }));
      const frame = encodeFrame({ messageType: 'channel_closed', createdDate: Date.now(), sequenceNumber: 0, flags: 0, payloadType: 0, payload });
      frame.writeUInt32BE(0, 116); // PayloadLength
      frame.fill(0, 80, 112); // PayloadDigest
      frame.writeBigInt64BE(-1n, 48); // SequenceNumber
      ws.send(frame);
    };
    const before = api.calls.length;
    const r = await runProxy(['i-0123456789abcdef0'], env, { keepStdinOpen: true, timeoutMs: 15_000 });
    expect(r.code).toBe(1);
    expect(r.stdout.length).toBe(0);
    expect(oneLine(r.stderr)).toMatch(/the session was closed by the service: Session terminated by the administrator/);
    // The session is over: no ResumeSession, no TerminateSession (§5.3).
    expect(api.calls.slice(before).map((c) => c.operation)).toEqual(['StartSession']);
  });

  it('channel_closed with output still missing behind a lost frame: exit 9 saying the end is lost, not 0', async () => {
    behaviour = (ws) => {
      ws.send(agentFrame(0, 5, encodeHandshakeRequest({ agentVersion: '3.3.1142.0', requestedClientActions: [{ actionType: 'SessionType', actionParameters: { SessionType: 'Port', Properties: { portNumber: '22' } } }] })));
      ws.on('message', (d: Buffer) => {
        if (d.length <= 120 || d.readUInt32BE(112) !== 6) return; // the HandshakeResponse
        ws.send(agentFrame(1, 7, encodeHandshakeComplete({ handshakeTimeToComplete: 1_000_000, customerMessage: '' })));
        ws.send(agentFrame(2, 1, Buffer.from('SSH-2.0-OpenSSH_9.2\r\n')));
        // seq 3 is lost on the way, and the session ends before it is resent.
        ws.send(agentFrame(4, 1, Buffer.from('never deliverable')));
        const closed = encodeChannelClosed({ messageId: '6a3e2f10-5b4c-4d8e-9f01-23456789abcd', createdDate: String(Date.now()), destinationId: 'i-0123456789abcdef0', sessionId: 's', messageType: 'channel_closed', schemaVersion: 1, output: '' });
        ws.send(encodeFrame({ messageType: 'channel_closed', createdDate: Date.now(), sequenceNumber: 0, flags: 0, payloadType: 0, payload: closed }));
      });
    };
    const r = await runProxy(['i-0123456789abcdef0'], env, { keepStdinOpen: true, timeoutMs: 15_000 });
    expect(r.code).toBe(9);
    expect(r.stdout.toString()).toBe('SSH-2.0-OpenSSH_9.2\r\n');
    expect(oneLine(r.stderr)).toMatch(/the service closed the session while output from the target was still missing \(17 bytes received after a gap could not be delivered\)/);
  });

  it('garbage frames are ignored, never a crash; then a silent agent hits the handshake timeout: exit 8', async () => {
    behaviour = (ws) => {
      ws.send(Buffer.from('not a frame at all'));
      ws.send(Buffer.alloc(200, 0xff));
      ws.send('a text frame from the service');
    };
    const r = await runProxy(['i-0123456789abcdef0'], { ...env, SSM_PROXY_HANDSHAKE_TIMEOUT: '2' }, { keepStdinOpen: true, timeoutMs: 15_000 });
    expect(r.code).toBe(8);
    expect(r.stdout.length).toBe(0);
    expect(oneLine(r.stderr)).toMatch(/no handshake from the SSM agent within 2 s/);
    expect(r.ms).toBeLessThan(10_000);
  });
});

describe('a service that closes every websocket soon after it opens', () => {
  it('backs off and gives up within the reconnect budget: exit 9, not ResumeSession as fast as it answers, forever', async () => {
    const sink = createServer((sock) => sock.resume());
    await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
    const sinkPort = (sink.address() as { port: number }).port;
    // 300 ms: the first websocket lives long enough for the handshake; none lasts.
    const sim = await startSimulator({ profile: 'service', faults: { closeClient: { afterMs: 300, repeat: true, mode: 'close', code: 1011, reason: 'going away' } } });
    try {
      const r = await runProxy(['i-0123456789abcdef0', String(sinkPort)], simAwsEnv(sim, { SSM_PROXY_RECONNECT_FOR: '3' }), { keepStdinOpen: true, timeoutMs: 20_000 });
      expect(r.code).toBe(9);
      expect(oneLine(r.stderr)).toMatch(/lost the connection to Session Manager and could not resume within 3 s/);
      // Backoff 0.5, 1, 2 s between attempts within the 3 s: a handful, not one per 300 ms.
      expect(sim.api.count('ResumeSession')).toBeLessThanOrEqual(6);
      expect(sim.api.count('TerminateSession')).toBe(1);
    } finally {
      await sim.close();
      sink.close();
    }
  });
});

describe('the give-up rule', () => {
  it('an agent that stops acknowledging: exit 9 after SSM_PROXY_GIVE_UP_AFTER, one TerminateSession call', async () => {
    const sink = createServer((sock) => sock.resume());
    await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
    const sinkPort = (sink.address() as { port: number }).port;
    const sim = await startSimulator({ profile: 'service', faults: { agentStopsAckingAfterMs: 0 } });
    try {
      const e = simAwsEnv(sim, { SSM_PROXY_GIVE_UP_AFTER: '2' });
      const r = await runProxy(['i-0123456789abcdef0', String(sinkPort)], e, { input: Buffer.from('hello'), keepStdinOpen: true, timeoutMs: 20_000 });
      expect(r.code).toBe(9);
      expect(oneLine(r.stderr)).toMatch(/has not acknowledged data for 2 s/);
      expect(sim.api.count('TerminateSession')).toBe(1);
      expect(r.ms).toBeLessThan(12_000);
    } finally {
      await sim.close();
      sink.close();
    }
  });
});
