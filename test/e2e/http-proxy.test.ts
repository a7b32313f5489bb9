// Behind a corporate proxy: HTTP(S)_PROXY tunnels both the SSM API and the data
// channel through CONNECT, NO_PROXY bypasses it, and a refusing proxy is one clear error.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer } from 'node:net';
import { startSimulator, type Simulator } from '../sim/index.ts';
import { requireOpenSsh } from './openssh.ts';
import { simAwsEnv, startProxy } from './proxy-process.ts';
import { startConnectProxy, type ConnectProxy } from '../helpers/connect-proxy.ts';
import { proxyFor } from '../../src/transport/proxy.ts';

let sim: Simulator;
let echo: ReturnType<typeof createServer>;
let echoPort: number;
let proxy: ConnectProxy;

beforeAll(async () => {
  requireOpenSsh();
  echo = createServer((s) => s.pipe(s));
  echoPort = await new Promise<number>((r) => echo.listen(0, '127.0.0.1', () => r((echo.address() as { port: number }).port)));
  proxy = await startConnectProxy();
  sim = await startSimulator({ profile: 'unlimited', targets: { 'i-0123456789abcdef0': { port: echoPort } } });
});
afterAll(async () => {
  await sim?.close();
  await proxy?.close();
  echo?.close();
});

function env(extra: Record<string, string>) {
  return simAwsEnv(sim, extra);
}

/** Sends a line through ssm-proxy to the echo target and waits for it to come back. */
async function echoOnce(e: NodeJS.ProcessEnv): Promise<{ echoed: string; code: number | null; stderr: string }> {
  const { child, done } = startProxy(['--frame-rate', '0', 'i-0123456789abcdef0', String(echoPort)], e);
  let echoed = '';
  await new Promise<void>((resolve) => {
    const t = setTimeout(resolve, 10_000);
    // A proxy that fails ends before anything comes back.
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    child.stdout!.on('data', (d: Buffer) => {
      echoed += d.toString();
      if (echoed.includes('\n')) {
        clearTimeout(t);
        resolve();
      }
    });
    child.stdin!.write('through the proxy\n');
  });
  child.stdin!.end();
  const r = await done;
  return { echoed, code: r.code, stderr: r.stderr };
}

describe('HTTP(S)_PROXY', () => {
  it('tunnels the SSM API call and the websocket through CONNECT, with the proxy credentials', async () => {
    proxy.tunnels.length = 0;
    const r = await echoOnce(env({ HTTP_PROXY: `http://alice:s%40cret@127.0.0.1:${proxy.port}` }));
    expect(r.echoed).toBe('through the proxy\n');
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    const api = new URL(sim.apiUrl);
    const gw = new URL(sim.gatewayUrl);
    expect(proxy.tunnels).toContain(`${api.hostname}:${api.port}`);
    expect(proxy.tunnels).toContain(`${gw.hostname}:${gw.port}`);
    expect(proxy.auth.every((a) => a === `Basic ${Buffer.from('alice:s@cret').toString('base64')}`)).toBe(true);
    expect(sim.totalViolations()).toBe(0);
  });

  it('connects directly to hosts in NO_PROXY', async () => {
    proxy.tunnels.length = 0;
    const r = await echoOnce(env({ HTTP_PROXY: `${proxy.url}`, NO_PROXY: 'localhost,127.0.0.1' }));
    expect(r.echoed).toBe('through the proxy\n');
    expect(proxy.tunnels).toEqual([]);
  });

  it('a proxy that refuses the tunnel is one line on stderr, not a hang', async () => {
    proxy.refuse = true;
    try {
      const r = await echoOnce(env({ HTTP_PROXY: `${proxy.url}` }));
      expect(r.code, r.stderr).toBe(6);
      const lines = r.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/proxy .*HTTP 403/);
    } finally {
      proxy.refuse = false;
    }
  });

  it('matches NO_PROXY like curl and the AWS CLI', () => {
    const e = (no: string) => ({ HTTPS_PROXY: 'http://proxy:3128', NO_PROXY: no });
    const t = new URL('https://ssm.eu-west-1.amazonaws.com');
    expect(proxyFor(t, { HTTPS_PROXY: 'http://proxy:3128' })?.host).toBe('proxy:3128');
    expect(proxyFor(t, e('amazonaws.com'))).toBeUndefined();
    expect(proxyFor(t, e('.amazonaws.com'))).toBeUndefined();
    expect(proxyFor(t, e('*'))).toBeUndefined();
    expect(proxyFor(t, e('ssm.eu-west-1.amazonaws.com:443'))).toBeUndefined();
    expect(proxyFor(t, e('ssm.eu-west-1.amazonaws.com:8443'))?.host).toBe('proxy:3128');
    expect(proxyFor(t, e('example.com,other'))?.host).toBe('proxy:3128');
    expect(proxyFor(new URL('http://127.0.0.1:80'), { HTTPS_PROXY: 'http://proxy:3128' })).toBeUndefined(); // http uses HTTP_PROXY
    expect(() => proxyFor(t, { HTTPS_PROXY: 'socks5://proxy:1080' })).toThrow(/only http:\/\/ proxies/);
  });
});
