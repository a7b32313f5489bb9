// The data channel trusts the same CA bundle as the SSM API (--ca-bundle /
// AWS_CA_BUNDLE), and still verifies TLS without it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:https';
import { createServer as createHttpServer } from 'node:http';
import { WebSocketServer } from 'ws';
import { WebSocketLink } from '../../src/transport/websocket-link.ts';
import { Preconnection } from '../../src/transport/preconnect.ts';
import { silentLogger } from '../../src/cli/log.ts';
import { makeLoopbackCertificate } from '../helpers/tls.ts';
import { hasContextFor } from '../../src/transport/tls-context.ts';

let cert: string;
let server: Server;
let url: string;
const firstFrames: string[] = [];
let tlsConnections = 0;

beforeAll(async () => {
  const made = makeLoopbackCertificate();
  cert = made.cert;
  server = createServer(made);
  server.on('secureConnection', () => tlsConnections++);
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws) => ws.once('message', (d) => firstFrames.push(d.toString())));
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  url = `wss://127.0.0.1:${(server.address() as { port: number }).port}/v1/data-channel/s?role=publish_subscribe`;
});
afterAll(() => {
  server?.close();
});

function link(ca?: string) {
  return new WebSocketLink({ clientId: 'c', clientVersion: '1.2.694.0', allowInsecure: false, logger: silentLogger, ca });
}

describe('WebSocketLink TLS', () => {
  it('refuses a certificate it cannot verify (exit 6), as such: the session does not retry it', async () => {
    await expect(link().connect(url, 'token')).rejects.toMatchObject({
      exitCode: 6,
      code: 'WebSocketTlsUntrusted',
      message: expect.stringMatching(/^cannot open the Session Manager data channel at wss:\/\/127\.0\.0\.1:\d+: its TLS certificate is not trusted \(DEPTH_ZERO_SELF_SIGNED_CERT: .*--ca-bundle or AWS_CA_BUNDLE$/),
    });
  });

  it('a refused connection is an ordinary open failure, worth retrying', async () => {
    const closed = createServer();
    await new Promise<void>((res) => closed.listen(0, '127.0.0.1', res));
    const port = (closed.address() as { port: number }).port;
    await new Promise((res) => closed.close(res));
    await expect(link().connect(`wss://127.0.0.1:${port}/v1/data-channel/s?role=publish_subscribe`, 'token')).rejects.toMatchObject({ exitCode: 6, code: 'WebSocketOpenFailed' });
  });

  it('accepts it with the CA bundle, and sends OpenDataChannel first', async () => {
    const l = link(cert);
    await l.connect(url, 'the-token');
    await l.close();
    expect(firstFrames.length).toBeGreaterThan(0);
    expect(JSON.parse(firstFrames.at(-1)!)).toMatchObject({ MessageSchemaVersion: '1.0', TokenValue: 'the-token', ClientVersion: '1.2.694.0' });
  });

  it('uses a TLS connection opened ahead, verified with the same CA bundle', async () => {
    const before = tlsConnections;
    const pre = new Preconnection(new URL(url), cert);
    for (let i = 0; i < 200 && tlsConnections === before; i++) await new Promise((r) => setTimeout(r, 5));
    expect(tlsConnections).toBe(before + 1);
    const l = link(cert);
    await l.connect(url, 'ahead-token', pre);
    await l.close();
    expect(tlsConnections).toBe(before + 1);
    expect(JSON.parse(firstFrames.at(-1)!)).toMatchObject({ TokenValue: 'ahead-token' });
  });

  it('makes no TLS context from the CA bundle for a plain ws:// data channel (a simulator)', async () => {
    const plain = createHttpServer();
    const wss = new WebSocketServer({ server: plain });
    wss.on('connection', (ws) => ws.on('message', () => {}));
    await new Promise<void>((res) => plain.listen(0, '127.0.0.1', res));
    try {
      const bundle = makeLoopbackCertificate().cert;
      const l = new WebSocketLink({ clientId: 'c', clientVersion: '1.2.694.0', allowInsecure: true, logger: silentLogger, ca: bundle });
      await l.connect(`ws://127.0.0.1:${(plain.address() as { port: number }).port}/v1/data-channel/s?role=publish_subscribe`, 'token');
      await l.close();
      expect(hasContextFor(bundle)).toBe(false);
    } finally {
      wss.close();
      plain.close();
    }
  });

  it('still refuses an unverifiable certificate when the connection opened ahead failed on it', async () => {
    const pre = new Preconnection(new URL(url));
    for (let i = 0; i < 200 && pre.failure === undefined; i++) await new Promise((r) => setTimeout(r, 5));
    expect(pre.failure).toMatch(/SELF_SIGNED|self.signed/i);
    await expect(link().connect(url, 'token', pre)).rejects.toMatchObject({ exitCode: 6, message: expect.stringMatching(/self.signed/i) });
  });
});
