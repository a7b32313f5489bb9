// The real service speaks https:// and wss:// only: the built program against the
// simulator over TLS, with the simulator's certificate as the CA bundle. The
// connections opened ahead (plain TCP first, TLS over it a turn later) carry the
// StartSession call and the data channel.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSimulator, type Simulator } from '../sim/index.ts';
import { requireOpenSsh } from './openssh.ts';
import { runProxy, simAwsEnv, startProxy } from './proxy-process.ts';
import { makeLoopbackCertificate } from '../helpers/tls.ts';
import { startConnectProxy } from '../helpers/connect-proxy.ts';
import { ExitCode } from '../../src/cli/exit-codes.ts';

const TARGET = 'i-0123456789abcdef0';
let sim: Simulator;
let echo: ReturnType<typeof createServer>;
let echoPort: number;
let dir: string;
let caFile: string;

beforeAll(async () => {
  requireOpenSsh(); // checks the bundle exists too
  echo = createServer((s) => {
    s.on('error', () => {});
    s.pipe(s);
  });
  echoPort = await new Promise<number>((r) => echo.listen(0, '127.0.0.1', () => r((echo.address() as { port: number }).port)));
  const tls = makeLoopbackCertificate();
  sim = await startSimulator({ profile: 'unlimited', targets: { [TARGET]: { port: echoPort } }, tls });
  dir = mkdtempSync(join(tmpdir(), 'ssm-proxy-tls-e2e-'));
  caFile = join(dir, 'ca.pem');
  writeFileSync(caFile, tls.cert);
});
afterAll(async () => {
  await sim?.close();
  echo?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('over TLS', () => {
  it('moves the bytes exactly, over the API and data channel connections opened ahead', async () => {
    expect(sim.apiUrl).toMatch(/^https:\/\//);
    expect(sim.gatewayUrl).toMatch(/^wss:\/\//);
    const env = simAwsEnv(sim, { AWS_CA_BUNDLE: caFile });
    // The first session notes where the data channel is; the next opens its connection ahead.
    expect((await runProxy([TARGET, String(echoPort)], env, { timeoutMs: 30_000 })).code).toBe(0);
    const data = randomBytes(256 * 1024);
    const r = await runProxy(['-vvv', '--frame-rate', '0', TARGET, String(echoPort)], env, { input: data, timeoutMs: 30_000 });
    expect(r.code, r.stderr).toBe(0);
    // stdin ends at once: what came back before the session ended is a prefix of what went out.
    expect(data.subarray(0, r.stdout.length).equals(r.stdout)).toBe(true);
    expect(r.stderr).toContain(`opening a connection to ${sim.apiUrl} for the SSM API`);
    expect(r.stderr).toContain('SSM API: using the connection opened ahead');
    expect(r.stderr).toMatch(/opening a connection to wss:\/\/127\.0\.0\.1:\d+ for the data channel/);
    expect(r.stderr).toContain('data channel: using the connection opened ahead');
    expect(sim.totalViolations()).toBe(0);
  });

  it('survives the service recycling the websocket: ResumeSession and the new wss connections, byte-exact', async () => {
    const tls = makeLoopbackCertificate();
    const ca = join(dir, 'recycle-ca.pem');
    writeFileSync(ca, tls.cert);
    const recycling = await startSimulator({ profile: 'unlimited', targets: { [TARGET]: { port: echoPort } }, tls, recycleMs: 700 });
    try {
      const { child, done } = startProxy(['-vv', '--frame-rate', '0', TARGET, String(echoPort)], simAwsEnv(recycling, { AWS_CA_BUNDLE: ca }));
      const sent: Buffer[] = [];
      const got: Buffer[] = [];
      let gotBytes = 0;
      child.stdout!.on('data', (d: Buffer) => {
        got.push(d);
        gotBytes += d.length;
      });
      // ~2.4 s of writes: three recycles at 700 ms.
      for (let i = 0; i < 24; i++) {
        const chunk = randomBytes(16 * 1024);
        sent.push(chunk);
        child.stdin!.write(chunk);
        await new Promise((r) => setTimeout(r, 100));
      }
      const total = sent.reduce((n, b) => n + b.length, 0);
      for (let i = 0; i < 200 && gotBytes < total; i++) await new Promise((r) => setTimeout(r, 50));
      child.stdin!.end();
      const r = await done;
      expect(r.code, r.stderr).toBe(0);
      expect(Buffer.concat(got).equals(Buffer.concat(sent))).toBe(true);
      expect(recycling.api.count('ResumeSession')).toBeGreaterThanOrEqual(2);
      expect(r.stderr).toMatch(/data channel resumed after 1 attempt/);
      expect(recycling.totalViolations()).toBe(0);
    } finally {
      await recycling.close();
    }
  });

  it('goes through HTTPS_PROXY as a corporate network would have it: TLS to the service inside each tunnel', async () => {
    const proxy = await startConnectProxy();
    try {
      const data = randomBytes(64 * 1024);
      const r = await runProxy(['-vv', '--frame-rate', '0', TARGET, String(echoPort)], simAwsEnv(sim, { AWS_CA_BUNDLE: caFile, HTTPS_PROXY: proxy.url }), { input: data, timeoutMs: 30_000 });
      expect(r.code, r.stderr).toBe(0);
      expect(data.subarray(0, r.stdout.length).equals(r.stdout)).toBe(true);
      const api = new URL(sim.apiUrl);
      const gateway = new URL(sim.gatewayUrl);
      // The proxy only ever saw CONNECT: the API call and the websocket are TLS end to end.
      expect(proxy.tunnels).toContain(`${api.hostname}:${api.port}`);
      expect(proxy.tunnels).toContain(`${gateway.hostname}:${gateway.port}`);
      expect(r.stderr).toContain(`connecting to ${api.hostname}:${api.port} through the proxy 127.0.0.1:${proxy.port}`);
      expect(r.stderr).not.toContain('using the connection opened ahead');
      expect(sim.totalViolations()).toBe(0);
    } finally {
      await proxy.close();
    }
  });

  it('refuses a service whose certificate the CA bundle does not vouch for, in one line', async () => {
    const r = await runProxy([TARGET, String(echoPort)], simAwsEnv(sim), { timeoutMs: 30_000 });
    expect(r.code).toBe(ExitCode.Network);
    expect(r.stdout.length).toBe(0);
    const lines = r.stderr.trim().split('\n');
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/^ssm-proxy: cannot reach the SSM endpoint https:\/\/127\.0\.0\.1:\d+: its TLS certificate is not trusted .*--ca-bundle or AWS_CA_BUNDLE$/);
  });
});
