// The data channel's connection opened while StartSession is answered (Preconnection):
// used when the StreamUrl has its origin, else closed; a failure on it before the
// service answers costs one fresh connection, never the session.
import { afterEach, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { WebSocketServer } from 'ws';
import { Preconnection } from '../../src/transport/preconnect.ts';
import { WebSocketLink } from '../../src/transport/websocket-link.ts';
import { silentLogger } from '../../src/cli/log.ts';

interface Gateway {
  origin: string;
  url: string;
  /** TCP connections accepted, and how many of them have closed. */
  connections: number;
  closed: number;
  /** Websockets opened, and the first text frame of each. */
  opened: number;
  firstFrames: string[];
  /** What to do with the upgrade request on the Nth connection (1-based). */
  onUpgrade: (connection: number, socket: Socket) => 'accept' | 'hang-up' | 'forbid';
  server: Server;
  sockets: Set<Socket>;
}

const gateways: Gateway[] = [];
afterEach(async () => {
  for (const g of gateways.splice(0)) {
    // Upgraded sockets are no longer the server's to close.
    for (const s of g.sockets) s.destroy();
    await new Promise((r) => g.server.close(r));
  }
});

async function gateway(): Promise<Gateway> {
  const server = createServer();
  const wss = new WebSocketServer({ noServer: true });
  const g: Gateway = { origin: '', url: '', connections: 0, closed: 0, opened: 0, firstFrames: [], onUpgrade: () => 'accept', server, sockets: new Set() };
  const numbers = new WeakMap<Socket, number>();
  server.on('connection', (socket: Socket) => {
    numbers.set(socket, ++g.connections);
    g.sockets.add(socket);
    socket.once('close', () => {
      g.closed++;
      g.sockets.delete(socket);
    });
  });
  server.on('upgrade', (req, socket: Socket, head) => {
    const what = g.onUpgrade(numbers.get(socket) ?? 0, socket);
    if (what === 'hang-up') return void socket.destroy();
    if (what === 'forbid') return void socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    wss.handleUpgrade(req, socket, head, (ws) => {
      g.opened++;
      ws.once('message', (d) => g.firstFrames.push(d.toString()));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  g.origin = `ws://127.0.0.1:${(server.address() as { port: number }).port}`;
  g.url = `${g.origin}/v1/data-channel/s-1?role=publish_subscribe`;
  gateways.push(g);
  return g;
}

function link() {
  return new WebSocketLink({ clientId: 'c', clientVersion: '1.2.694.0', allowInsecure: true, logger: silentLogger });
}

/** Waits (bounded) until `cond` holds. */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  if (!cond()) throw new Error(`timed out waiting for ${what}`);
}

/** A connection opened ahead to `g`, once `g` has accepted it. */
async function openedAhead(g: Gateway): Promise<Preconnection> {
  const pre = new Preconnection(new URL(g.origin));
  await until(() => g.connections === 1, 'the connection opened ahead');
  return pre;
}

/** The origin of a gateway that has just closed: connections to it are refused. */
async function refusedOrigin(): Promise<URL> {
  const gone = await gateway();
  await new Promise((r) => gone.server.close(r));
  gateways.splice(gateways.indexOf(gone), 1);
  return new URL(gone.origin);
}

describe('Preconnection', () => {
  it('is the connection the websocket uses when the StreamUrl has its origin', async () => {
    const g = await gateway();
    const pre = await openedAhead(g);
    const l = link();
    await l.connect(g.url, 'the-token', pre);
    await until(() => g.firstFrames.length === 1, 'OpenDataChannel');
    expect(g.connections).toBe(1);
    expect(g.opened).toBe(1);
    expect(JSON.parse(g.firstFrames[0])).toMatchObject({ TokenValue: 'the-token' });
    await l.close();
  });

  it('is closed when the StreamUrl is elsewhere; the websocket connects there', async () => {
    const guessed = await gateway();
    const actual = await gateway();
    const pre = await openedAhead(guessed);
    const l = link();
    await l.connect(actual.url, 'token', pre);
    await until(() => guessed.closed === 1, 'the unused connection to close');
    expect(pre.failure).toBe(`StreamUrl is at ${actual.origin}`);
    expect(guessed.opened).toBe(0);
    expect([actual.connections, actual.opened]).toEqual([1, 1]);
    await l.close();
  });

  it('costs one fresh connection when the service hangs up on it before answering', async () => {
    const g = await gateway();
    g.onUpgrade = (n) => (n === 1 ? 'hang-up' : 'accept');
    const pre = await openedAhead(g);
    const l = link();
    await l.connect(g.url, 'token', pre);
    expect([g.connections, g.opened]).toEqual([2, 1]);
    await l.close();
  });

  it('is not tried again when the service answered on it (HTTP 403 is final)', async () => {
    const g = await gateway();
    g.onUpgrade = () => 'forbid';
    const pre = await openedAhead(g);
    await expect(link().connect(g.url, 'token', pre)).rejects.toMatchObject({ exitCode: 6, message: expect.stringContaining('HTTP 403 Forbidden') });
    expect(g.connections).toBe(1);
  });

  it('that could not connect leaves the websocket to connect on its own', async () => {
    const g = await gateway();
    const pre = new Preconnection(await refusedOrigin());
    await until(() => pre.failure !== undefined, 'the refused connection');
    expect(pre.failure).toBe('ECONNREFUSED');
    const l = link();
    // A different origin than the refused one: the link reports and then ignores it.
    await l.connect(g.url, 'token', pre);
    expect([g.connections, g.opened]).toEqual([1, 1]);
    await l.close();
  });

  it('says when its TCP handshake is done, and never for a refused one', async () => {
    const g = await gateway();
    const pre = new Preconnection(new URL(g.origin));
    expect(pre.established).toBe(false); // node connects on a later tick at the earliest
    await until(() => pre.established, 'the handshake');
    const refused = new Preconnection(await refusedOrigin());
    await until(() => refused.failure !== undefined, 'the refusal');
    expect(refused.established).toBe(false);
    pre.discard();
  });

  it('is closed by discard() when the session never gets that far', async () => {
    const g = await gateway();
    const pre = await openedAhead(g);
    pre.discard();
    await until(() => g.closed === 1, 'the connection to close');
    expect(pre.take(new URL(g.url))).toBeUndefined();
  });

  it('is closed when the StreamUrl is refused (ws:// without a loopback endpoint)', async () => {
    const g = await gateway();
    const pre = await openedAhead(g);
    const strict = new WebSocketLink({ clientId: 'c', clientVersion: '1.2.694.0', allowInsecure: false, logger: silentLogger });
    await expect(strict.connect(g.url, 'token', pre)).rejects.toMatchObject({ exitCode: 8 });
    await until(() => g.closed === 1, 'the connection to close');
  });
});
