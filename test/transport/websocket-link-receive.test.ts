// What the link reads from the service: messages however the reads cut them, pings,
// close frames and protocol errors; with our receiver and with ws's, the same outcome.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createServer, type Server } from 'node:http';
import { WebSocketServer, type WebSocket } from 'ws';
import { WebSocketLink } from '../../src/transport/websocket-link.ts';
import { encodeBinaryMessages } from '../../src/transport/ws-frames.ts';
import { silentLogger } from '../../src/cli/log.ts';

let server: Server;
let url: string;
let nextPeer: (ws: WebSocket) => void = () => {};

beforeAll(async () => {
  server = createServer();
  const wss = new WebSocketServer({ server });
  // Past OpenDataChannel (the first message), the test drives the server side.
  wss.on('connection', (ws) => ws.once('message', () => nextPeer(ws)));
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  url = `ws://127.0.0.1:${(server.address() as { port: number }).port}/v1/data-channel/s`;
});
afterAll(() => server?.close());

/** The raw socket under the server's ws (an internal): the test writes frames there itself. */
function rawSocket(ws: WebSocket): { write(b: Buffer): void } {
  return (ws as unknown as { _socket: { write(b: Buffer): void } })._socket;
}

function frame(b0: number, payload: Buffer, maskBit = 0): Buffer {
  if (payload.length > 125) throw new Error('short frames only');
  return Buffer.concat([Buffer.from([b0, maskBit | payload.length]), maskBit ? Buffer.alloc(4) : Buffer.alloc(0), payload]);
}

async function open(wsReceiver: boolean) {
  const peer = new Promise<WebSocket>((r) => (nextPeer = r));
  const link = new WebSocketLink({ clientId: 'c', clientVersion: '1.2.694.0', allowInsecure: true, logger: silentLogger, wsReceiver });
  const got: Buffer[] = [];
  link.on('message', (m) => got.push(Buffer.from(m)));
  const down = new Promise<string>((r) => link.on('down', r));
  await link.connect(url, 'token');
  expect(link.ownReceiver).toBe(!wsReceiver);
  const ws = await peer;
  const peerClosed = new Promise<number>((r) => ws.on('close', (code) => r(code)));
  return { link, got, down, ws, peerClosed };
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([p, new Promise<T>((_, rej) => setTimeout(() => rej(new Error(`no ${what} within ${ms} ms`)), ms))]);
}

for (const [name, wsReceiver] of [['our receiver', false], ["ws's receiver", true]] as const) {
  describe(`WebSocketLink reading, ${name}`, () => {
    it('passes up every message in order, answers pings, and echoes the close', async () => {
      const { got, down, ws, peerClosed } = await open(wsReceiver);
      const messages = [Buffer.from('one'), Buffer.alloc(1300, 7), Buffer.alloc(70_000, 9), Buffer.from('four')];
      const bytes = encodeBinaryMessages(messages, false);
      const pong = new Promise<string>((r) => ws.once('pong', (d) => r(d.toString())));
      // Cut inside the second header and inside the third payload; then a ping.
      rawSocket(ws).write(bytes.subarray(0, 6));
      rawSocket(ws).write(bytes.subarray(6, 1500));
      rawSocket(ws).write(bytes.subarray(1500));
      ws.ping(Buffer.from('are you there'));
      // A fragmented message with a pong between its fragments.
      rawSocket(ws).write(Buffer.concat([frame(0x02, Buffer.from('frag-')), frame(0x8a, Buffer.from('p')), frame(0x80, Buffer.from('mented'))]));
      expect(await within(pong, 2000, 'pong')).toBe('are you there');
      await within(
        (async () => {
          for (let i = 0; i < 200 && got.length < 5; i++) await new Promise((r) => setTimeout(r, 10));
        })(),
        3000,
        'messages',
      );
      expect(got.map((b) => b.toString('hex'))).toEqual([...messages, Buffer.from('frag-mented')].map((b) => b.toString('hex')));
      ws.close(4001, 'bye');
      expect(await within(down, 2000, 'down event')).toBe('websocket closed (code 4001, bye)');
      expect(await within(peerClosed, 2000, 'close at the server')).toBe(4001);
    });

    // The server's answering close frame reaches the receiver before the socket closes;
    // close() must take the handshake's end as its end, not wait out its 1 s fallback.
    // With that fallback's timer faked (it never fires), close() resolves only through the handshake.
    it('close(): ends with the close handshake, not with the fallback timer', async () => {
      const { link, peerClosed } = await open(wsReceiver);
      const realSetTimeout = setTimeout;
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
      try {
        await Promise.race([link.close(), new Promise((_, reject) => realSetTimeout(() => reject(new Error('close() did not end with the close handshake')), 3000))]);
      } finally {
        vi.useRealTimers();
      }
      expect(await within(peerClosed, 2000, 'close at the server')).toBe(1000);
    });

    it('goes down on a protocol error and closes with 1002', async () => {
      const { down, ws, peerClosed } = await open(wsReceiver);
      rawSocket(ws).write(frame(0x82, Buffer.from('masked'), 0x80));
      expect(await within(down, 2000, 'down event')).toMatch(/^websocket (error|closed)/);
      expect(await within(peerClosed, 2000, 'close at the server')).toBe(1002);
    });
  });
}

describe('a service that goes silent', () => {
  it('is taken down when the dead-connection timeout passes, not at the next ping after it (§3.4)', async () => {
    const silentServer = createServer();
    const wss = new WebSocketServer({ server: silentServer, autoPong: false }); // answers nothing, pings included
    wss.on('connection', () => {});
    await new Promise<void>((res) => silentServer.listen(0, '127.0.0.1', res));
    try {
      const link = new WebSocketLink({ clientId: 'c', clientVersion: '1.2.694.0', allowInsecure: true, logger: silentLogger, pingIntervalMs: 3000, deadAfterMs: 3500 });
      const down = new Promise<string>((r) => link.on('down', r));
      await link.connect(`ws://127.0.0.1:${(silentServer.address() as { port: number }).port}/v1/data-channel/s`, 'token');
      const t0 = Date.now();
      expect(await down).toBe('no traffic from the service for 4 s');
      const after = Date.now() - t0;
      // The ping ticks are at 3 and 6 s: the timeout at 3.5 s is not left until the second.
      expect(after).toBeGreaterThanOrEqual(3400);
      expect(after).toBeLessThan(5500);
    } finally {
      for (const c of wss.clients) c.terminate();
      silentServer.close();
    }
  });
});
