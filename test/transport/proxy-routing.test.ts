// The agents the SDK's calls use when HTTP(S)_PROXY is set: each connection's route is
// decided for its own host, so NO_PROXY works for whatever endpoint a call goes to (the
// SSM endpoint of any partition, STS, SSO), not only for the one known at start.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer as createHttpServer, request as httpRequest, type Agent, type Server } from 'node:http';
import { createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import type { LookupFunction } from 'node:net';
import { RoutingHttpAgent, RoutingHttpsAgent, proxiesConfigured } from '../../src/transport/proxy.ts';
import { startConnectProxy, type ConnectProxy } from '../helpers/connect-proxy.ts';
import { makeLoopbackCertificate } from '../helpers/tls.ts';

let proxy: ConnectProxy;
let plain: Server;
let plainPort: number;
let secure: Server;
let securePort: number;
let cert: string;
/** Hosts connected to directly, by name, as the agent's lookup saw them. */
const lookedUp: string[] = [];

// Direct connections resolve every name to 127.0.0.1 (and note it): public names stay off the network.
const loopbackLookup = ((hostname: string, options: { all?: boolean }, cb: (...args: unknown[]) => void) => {
  lookedUp.push(hostname);
  if (options?.all) cb(null, [{ address: '127.0.0.1', family: 4 }]);
  else cb(null, '127.0.0.1', 4);
}) as unknown as LookupFunction;

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
}

beforeAll(async () => {
  proxy = await startConnectProxy();
  plain = createHttpServer((req, res) => res.end(`plain ${req.headers.host}`));
  plainPort = await listen(plain);
  const tls = makeLoopbackCertificate();
  cert = tls.cert;
  secure = createHttpsServer({ key: tls.key, cert: tls.cert }, (req, res) => res.end(`secure ${req.headers.host}`));
  securePort = await listen(secure);
});
afterAll(async () => {
  await proxy?.close();
  plain?.close();
  secure?.close();
});

/** GET url through `agent`: the body, or the error's code or message. */
function get(url: string, agent: Agent): Promise<string> {
  const request = url.startsWith('https:') ? httpsRequest : httpRequest;
  return new Promise((resolve) => {
    const req = request(url, { agent, timeout: 5_000 }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve(body));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (err: NodeJS.ErrnoException) => resolve(`error ${err.code ?? err.message}`));
    req.end();
  });
}

function reset(): void {
  proxy.tunnels.length = 0;
  lookedUp.length = 0;
}

describe('RoutingHttpAgent', () => {
  it('tunnels a host NO_PROXY does not list, and connects directly to one it does', async () => {
    const tunnelled: string[] = [];
    const env = { HTTP_PROXY: proxy.url, NO_PROXY: '.amazonaws.com.cn' };
    const agent = new RoutingHttpAgent({ lookup: loopbackLookup }, env, (target, via) => tunnelled.push(`${target} via ${via.host}`));
    reset();
    // China partition endpoints: NO_PROXY's suffix matches them (the regional name guessed at start used to be .amazonaws.com).
    expect(await get(`http://ssm.cn-north-1.amazonaws.com.cn:${plainPort}/`, agent)).toBe(`plain ssm.cn-north-1.amazonaws.com.cn:${plainPort}`);
    expect(proxy.tunnels).toEqual([]);
    expect(lookedUp).toEqual(['ssm.cn-north-1.amazonaws.com.cn']);
    reset();
    expect(await get(`http://sts.us-east-1.amazonaws.com:${plainPort}/`, agent)).toBe(`plain sts.us-east-1.amazonaws.com:${plainPort}`);
    expect(proxy.tunnels).toEqual([`sts.us-east-1.amazonaws.com:${plainPort}`]);
    expect(lookedUp).toEqual([]);
    expect(tunnelled).toEqual([`sts.us-east-1.amazonaws.com:${plainPort} via 127.0.0.1:${proxy.port}`]);
    agent.destroy();
  });

  it('connects directly when only HTTPS_PROXY is set', async () => {
    const agent = new RoutingHttpAgent({ lookup: loopbackLookup }, { HTTPS_PROXY: proxy.url });
    reset();
    expect(await get(`http://ssm.example.test:${plainPort}/`, agent)).toBe(`plain ssm.example.test:${plainPort}`);
    expect(proxy.tunnels).toEqual([]);
    agent.destroy();
  });

  it('leaves a host that no URL can hold to the direct connection instead of throwing', async () => {
    const agent = new RoutingHttpAgent({ lookup: loopbackLookup }, { HTTP_PROXY: proxy.url });
    reset();
    const body = await new Promise<string>((resolve) => {
      const req = httpRequest({ host: 'not a host', port: plainPort, path: '/', agent, timeout: 5_000 }, (res) => {
        let b = '';
        res.on('data', (d) => (b += d));
        res.on('end', () => resolve(b));
      });
      req.on('error', (err: NodeJS.ErrnoException) => resolve(`error ${err.code ?? err.message}`));
      req.end();
    });
    expect(body).toBe(`plain not a host:${plainPort}`);
    expect(proxy.tunnels).toEqual([]);
    agent.destroy();
  });

  it('reports a refused tunnel as a request error', async () => {
    const agent = new RoutingHttpAgent({}, { HTTP_PROXY: proxy.url });
    proxy.refuse = true;
    try {
      expect(await get(`http://ssm.example.test:${plainPort}/`, agent)).toBe('error EPROXYTUNNEL');
    } finally {
      proxy.refuse = false;
      agent.destroy();
    }
  });
});

describe('RoutingHttpsAgent', () => {
  it('verifies TLS inside the tunnel, and connects directly to a NO_PROXY host', async () => {
    const agent = new RoutingHttpsAgent({ ca: cert }, { HTTPS_PROXY: proxy.url, NO_PROXY: 'localhost' });
    reset();
    expect(await get(`https://127.0.0.1:${securePort}/`, agent)).toBe(`secure 127.0.0.1:${securePort}`);
    expect(proxy.tunnels).toEqual([`127.0.0.1:${securePort}`]);
    agent.destroy();

    const direct = new RoutingHttpsAgent({ ca: cert }, { HTTPS_PROXY: proxy.url, NO_PROXY: '127.0.0.1' });
    reset();
    expect(await get(`https://127.0.0.1:${securePort}/`, direct)).toBe(`secure 127.0.0.1:${securePort}`);
    expect(proxy.tunnels).toEqual([]);
    direct.destroy();
  });

  it('refuses a certificate it does not trust, through the tunnel too', async () => {
    const agent = new RoutingHttpsAgent({}, { HTTPS_PROXY: proxy.url });
    reset();
    expect(await get(`https://127.0.0.1:${securePort}/`, agent)).toMatch(/^error (DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE)/);
    expect(proxy.tunnels).toEqual([`127.0.0.1:${securePort}`]);
    agent.destroy();
  });
});

describe('proxiesConfigured', () => {
  it('says whether either proxy is set, and rejects a malformed one even for hosts NO_PROXY lists', () => {
    expect(proxiesConfigured({})).toBe(false);
    expect(proxiesConfigured({ HTTPS_PROXY: '' })).toBe(false);
    expect(proxiesConfigured({ https_proxy: 'proxy:3128' })).toBe(true);
    expect(proxiesConfigured({ HTTP_PROXY: 'http://proxy:3128', NO_PROXY: '*' })).toBe(true);
    expect(() => proxiesConfigured({ HTTPS_PROXY: 'socks5://proxy:1080', NO_PROXY: '*' })).toThrow(/only http:\/\/ proxies/);
    expect(() => proxiesConfigured({ HTTP_PROXY: 'http://[bad' })).toThrow(/HTTP_PROXY is not a URL/);
  });
});
