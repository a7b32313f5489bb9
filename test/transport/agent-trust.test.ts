// A CA bundle's TLS context costs ~22 ms with a system-sized bundle. The agents are given
// the bundle and make its context with their first TLS connection, once: an agent made
// before the API's connection ahead must not spend that time before its TCP handshake.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createServer, get, type Server } from 'node:https';
import type { Agent } from 'node:http';
import { makeLoopbackCertificate } from '../helpers/tls.ts';

const made = vi.hoisted(() => ({ contexts: 0 }));
vi.mock('node:tls', async (importOriginal) => {
  const tls = await importOriginal<typeof import('node:tls')>();
  const createSecureContext: typeof tls.createSecureContext = (options) => {
    made.contexts++;
    return tls.createSecureContext(options);
  };
  return { ...tls, default: { ...tls, createSecureContext }, createSecureContext };
});

const { agentWithPreconnection } = await import('../../src/transport/preconnect.ts');
const { RoutingHttpsAgent } = await import('../../src/transport/proxy.ts');

let server: Server;
let port: number;
let cert: string;

beforeAll(async () => {
  const tls = makeLoopbackCertificate();
  cert = tls.cert;
  server = createServer({ key: tls.key, cert: tls.cert }, (_req, res) => res.end('ok'));
  port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
});
afterAll(() => {
  server?.closeAllConnections();
  server?.close();
});

function fetchText(agent: Agent): Promise<string> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

describe("an agent given a CA bundle (each test's own certificate text, so the cache starts empty)", () => {
  it('makes no context until its first connection, then one for all of them', async () => {
    const ca = `${cert}\n`;
    const before = made.contexts;
    const a = agentWithPreconnection(true, { keepAlive: false, ca });
    expect(made.contexts).toBe(before);
    expect(await fetchText(a.agent)).toBe('ok');
    expect(await fetchText(a.agent)).toBe('ok');
    expect(made.contexts).toBe(before + 1);
    a.agent.destroy();
  });

  it('shares that context with the other agents trusting the same bundle', async () => {
    const ca = `${cert}\n\n`;
    const before = made.contexts;
    const a = new RoutingHttpsAgent({ keepAlive: false, ca }, {});
    const b = new RoutingHttpsAgent({ keepAlive: false, ca }, {});
    expect(made.contexts).toBe(before);
    expect(await fetchText(a)).toBe('ok');
    expect(await fetchText(b)).toBe('ok');
    expect(made.contexts).toBe(before + 1);
    a.destroy();
    b.destroy();
  });
});
