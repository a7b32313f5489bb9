// The SSM API's connection opened while the SDK loads (agentWithPreconnection): the
// agent's first request to that origin goes over it; requests elsewhere, or after it
// failed, connect as node's agent would.
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { get as httpGet, createServer, type Agent, type Server } from 'node:http';
import { get as httpsGet, createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { Preconnection, agentWithPreconnection } from '../../src/transport/preconnect.ts';
import { makeLoopbackCertificate } from '../helpers/tls.ts';

interface Endpoint {
  origin: string;
  port: number;
  /** TCP connections accepted, and how many have closed. */
  connections: number;
  closed: number;
  /** For each request, the number (1-based) of the connection it came on. */
  requestsOn: number[];
  /** Destroys the Nth connection (1-based) as soon as it is accepted. */
  hangUpOn: number;
  server: Server;
}

const endpoints: Endpoint[] = [];
afterEach(async () => {
  for (const e of endpoints.splice(0)) {
    e.server.closeAllConnections();
    await new Promise((r) => e.server.close(r));
  }
});

function track(server: Server, e: Endpoint, connectionEvent: 'connection' | 'secureConnection'): void {
  const numbers = new WeakMap<Socket, number>();
  server.on(connectionEvent, (socket: Socket) => {
    const n = ++e.connections;
    numbers.set(socket, n);
    socket.once('close', () => e.closed++);
    if (n === e.hangUpOn) socket.destroy();
  });
  server.on('request', (req, res) => {
    e.requestsOn.push(numbers.get(req.socket) ?? 0);
    res.end('ok');
  });
}

async function endpoint(tls?: { key: string; cert: string }): Promise<Endpoint> {
  const server = tls ? createHttpsServer(tls) : createServer();
  const e: Endpoint = { origin: '', port: 0, connections: 0, closed: 0, requestsOn: [], hangUpOn: 0, server };
  track(server, e, tls ? 'secureConnection' : 'connection');
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  e.port = (server.address() as { port: number }).port;
  e.origin = `${tls ? 'https' : 'http'}://127.0.0.1:${e.port}`;
  endpoints.push(e);
  return e;
}

/** Waits (bounded) until `cond` holds. */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  if (!cond()) throw new Error(`timed out waiting for ${what}`);
}

function fetchText(agent: Agent, e: Endpoint, ca?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const options = { host: '127.0.0.1', port: e.port, path: '/', agent, ...(ca !== undefined ? { ca } : {}) };
    const req = (e.origin.startsWith('https') ? httpsGet : httpGet)(options, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve(text));
    });
    req.on('error', reject);
  });
}

describe('agentWithPreconnection', () => {
  it("sends the first request to the origin over the connection opened ahead, once", async () => {
    const e = await endpoint();
    let used = 0;
    const a = agentWithPreconnection(false, { keepAlive: false }, () => used++);
    a.use(new Preconnection(new URL(e.origin)));
    await until(() => e.connections === 1, 'the connection opened ahead');
    expect(await fetchText(a.agent, e)).toBe('ok');
    expect(await fetchText(a.agent, e)).toBe('ok');
    expect(e.requestsOn).toEqual([1, 2]);
    expect(used).toBe(1);
  });

  it('connects on its own for another origin and keeps the connection for its own', async () => {
    const guessed = await endpoint();
    const other = await endpoint();
    const a = agentWithPreconnection(false, { keepAlive: true });
    a.use(new Preconnection(new URL(guessed.origin)));
    await until(() => guessed.connections === 1, 'the connection opened ahead');
    expect(await fetchText(a.agent, other)).toBe('ok');
    expect(await fetchText(a.agent, guessed)).toBe('ok');
    expect([other.connections, other.requestsOn]).toEqual([1, [1]]);
    expect([guessed.connections, guessed.requestsOn]).toEqual([1, [1]]);
    a.agent.destroy();
  });

  it('costs one fresh connection when the server closed it before the request', async () => {
    const e = await endpoint();
    e.hangUpOn = 1;
    const a = agentWithPreconnection(false, { keepAlive: false });
    const pre = new Preconnection(new URL(e.origin));
    a.use(pre);
    await until(() => pre.failure !== undefined, 'the hang-up');
    expect(await fetchText(a.agent, e)).toBe('ok');
    expect(e.requestsOn).toEqual([2]);
  });

  it('closes one nobody used on discard()', async () => {
    const e = await endpoint();
    const a = agentWithPreconnection(false, {});
    a.use(new Preconnection(new URL(e.origin)));
    await until(() => e.connections === 1, 'the connection opened ahead');
    a.discard();
    await until(() => e.closed === 1, 'the connection to close');
    expect(await fetchText(a.agent, e)).toBe('ok');
    expect(e.requestsOn).toEqual([2]);
  });

  describe('over TLS', () => {
    let tls: { key: string; cert: string };
    beforeAll(() => {
      tls = makeLoopbackCertificate();
    });

    it('verifies the connection opened ahead with the same CA bundle, and uses it', async () => {
      const e = await endpoint(tls);
      const a = agentWithPreconnection(true, { keepAlive: false, ca: tls.cert });
      a.use(new Preconnection(new URL(e.origin), tls.cert));
      await until(() => e.connections === 1, 'the TLS connection opened ahead');
      expect(await fetchText(a.agent, e, tls.cert)).toBe('ok');
      expect(e.requestsOn).toEqual([1]);
    });

    it('is TLS, verified, even when taken in the turn it was opened (before its TLS set-up was due)', async () => {
      const e = await endpoint(tls);
      const a = agentWithPreconnection(true, { keepAlive: false, ca: tls.cert });
      a.use(new Preconnection(new URL(e.origin), tls.cert));
      expect(await fetchText(a.agent, e, tls.cert)).toBe('ok');
      expect([e.connections, e.requestsOn]).toEqual([1, [1]]);
    });

    it('that was refused leaves the request to connect on its own, without an unhandled error', async () => {
      const gone = await endpoint(tls);
      gone.server.close();
      endpoints.splice(endpoints.indexOf(gone), 1);
      const pre = new Preconnection(new URL(gone.origin), tls.cert);
      await until(() => pre.failure !== undefined, 'the refusal');
      expect(pre.failure).toBe('ECONNREFUSED');
      expect(pre.established).toBe(false);
      // A turn later, when its TLS set-up would have been due: nothing left to take.
      await new Promise((r) => setImmediate(r));
      expect(pre.takeIfTo(new URL(gone.origin).origin)).toBeUndefined();
    });

    it('fails the request as a fresh connection would when the certificate is not trusted', async () => {
      const e = await endpoint(tls);
      const a = agentWithPreconnection(true, { keepAlive: false });
      const pre = new Preconnection(new URL(e.origin));
      a.use(pre);
      await until(() => pre.failure !== undefined, 'the refused certificate');
      await expect(fetchText(a.agent, e)).rejects.toMatchObject({ code: expect.stringMatching(/SELF_SIGNED|UNABLE_TO_VERIFY/) });
      expect(e.requestsOn).toEqual([]);
    });
  });
});
