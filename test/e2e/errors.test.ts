// Every failure reaches a person as one line on stderr with a documented exit
// code, nothing on stdout, and never a hang.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:net';
import { SessionRegistry } from '../sim/sessions.ts';
import { FakeSsmApi, TEST_CREDENTIALS } from '../sim/ssm-api.ts';
import { freePort, requireOpenSsh } from './openssh.ts';
import { cleanAwsEnv, runProxy } from './proxy-process.ts';

let api: FakeSsmApi;
let registry: SessionRegistry;
let closedPort: number;
let httpRefuser: Server;
let refuserPort: number;
const issuedTokens: string[] = [];

beforeAll(async () => {
  requireOpenSsh(); // checks the bundle exists too
  closedPort = await freePort();
  // Answers the websocket upgrade with a plain HTTP 403, as a gateway refusing a token might.
  httpRefuser = createServer((s) => {
    s.once('data', () => s.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'));
  });
  await new Promise<void>((r) => httpRefuser.listen(0, '127.0.0.1', r));
  refuserPort = (httpRefuser.address() as { port: number }).port;
  registry = new SessionRegistry();
  // Keep every token handed out, to prove none of them reaches a log.
  const create = registry.create.bind(registry);
  registry.create = (...args: Parameters<SessionRegistry['create']>) => {
    const r = create(...args);
    issuedTokens.push(r.token);
    return r;
  };
  const resume = registry.resume.bind(registry);
  registry.resume = (...args: Parameters<SessionRegistry['resume']>) => {
    const r = resume(...args);
    if ('token' in r) issuedTokens.push(r.token);
    return r;
  };
  api = new FakeSsmApi({
    registry,
    targets: { 'i-0123456789abcdef0': { port: 22 }, 'i-0000000000000dead': { port: 22 }, 'i-0000000000000403': { port: 22 } },
    denyTargets: ['i-00000000000000bad'],
    streamUrl: (id) => (id ? `ws://127.0.0.1:${closedPort}/v1/data-channel/${id}?role=publish_subscribe` : ''),
  });
  await api.listen();
});

afterAll(async () => {
  await api?.close();
  httpRefuser?.close();
});

function env(extra: Record<string, string> = {}) {
  return cleanAwsEnv({ AWS_ACCESS_KEY_ID: TEST_CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: TEST_CREDENTIALS.secretAccessKey, AWS_REGION: 'us-east-1', AWS_ENDPOINT_URL_SSM: api.url, ...extra });
}

function expectOneLine(stderr: string, pattern: RegExp) {
  const lines = stderr.split('\n').filter((l) => l.length > 0);
  expect(lines, stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^ssm-proxy: /);
  expect(lines[0]).toMatch(pattern);
}

describe('errors a person can act on', () => {
  it('usage error: exit 2', async () => {
    const r = await runProxy(['--no-such-option', 'i-0123456789abcdef0'], env());
    expect(r.code).toBe(2);
    expect(r.stdout.length).toBe(0);
    expectOneLine(r.stderr, /--help/);
  });

  it('missing credentials: exit 3', async () => {
    const r = await runProxy(['i-0123456789abcdef0', '22'], cleanAwsEnv({ AWS_REGION: 'us-east-1', AWS_ENDPOINT_URL_SSM: api.url }));
    expect(r.code).toBe(3);
    expect(r.stdout.length).toBe(0);
    expectOneLine(r.stderr, /credentials/i);
  });

  it('wrong credentials: exit 3', async () => {
    const r = await runProxy(['i-0123456789abcdef0', '22'], env({ AWS_SECRET_ACCESS_KEY: 'wrong-secret' }));
    expect(r.code).toBe(3);
    expectOneLine(r.stderr, /credential|signature|secret/i);
    expect(r.stderr).not.toContain('wrong-secret');
  });

  it('AccessDenied: exit 4', async () => {
    const r = await runProxy(['i-00000000000000bad', '22'], env());
    expect(r.code).toBe(4);
    expectOneLine(r.stderr, /ssm:StartSession/);
  });

  it('TargetNotConnected (unknown target): exit 5, quickly', async () => {
    const r = await runProxy(['i-0ffffffffffffffff', '22'], env(), { timeoutMs: 15_000 });
    expect(r.code).toBe(5);
    expect(r.stdout.length).toBe(0);
    expectOneLine(r.stderr, /i-0ffffffffffffffff.*not connected/);
  });

  it('InvalidDocument: exit 5', async () => {
    const r = await runProxy(['--document-name', 'No-Such-Document', 'i-0123456789abcdef0', '22'], env());
    expect(r.code).toBe(5);
    expectOneLine(r.stderr, /document/i);
  });

  it('no region: exit 2', async () => {
    const e = env();
    delete e.AWS_REGION;
    const r = await runProxy(['i-0123456789abcdef0', '22'], e);
    expect(r.code).toBe(2);
    expectOneLine(r.stderr, /region/i);
  });

  it('SSM endpoint unreachable: exit 6', async () => {
    const r = await runProxy(['i-0123456789abcdef0', '22'], env({ AWS_ENDPOINT_URL_SSM: `http://127.0.0.1:${closedPort}` }), { timeoutMs: 30_000 });
    expect(r.code).toBe(6);
    expectOneLine(r.stderr, /cannot reach the SSM endpoint/);
  });

  it('an endpoint that is not the SSM API (an HTML error page): exit 6, one line without the SDK\'s internals', async () => {
    const page = createServer((sock) => sock.once('data', () => sock.end('HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: 17\r\nConnection: close\r\n\r\n<html>nope</html>')));
    await new Promise<void>((r) => page.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(page.address() as { port: number }).port}`;
      const r = await runProxy(['i-0123456789abcdef0', '22'], env({ AWS_ENDPOINT_URL_SSM: url }), { timeoutMs: 30_000 });
      expect(r.code).toBe(6);
      expectOneLine(r.stderr, new RegExp(`^ssm-proxy: cannot use the SSM endpoint ${url.replace(/\./g, '\\.')}: it answered HTTP 404 with something other than the SSM API's reply .*check --endpoint-url`));
      expect(r.stderr).not.toMatch(/Deserialization|\$response/);
    } finally {
      page.close();
    }
  });

  // A websocket that cannot be opened is connection loss (PROTOCOL.md §11.6): retried with
  // ResumeSession until the handshake's time runs out (here the shorter reconnect budget),
  // then the session is terminated so that it does not linger on the service's side.
  function expectRetriedThenTerminated(calls: { operation: string }[]) {
    const ops = calls.map((c) => c.operation);
    expect(ops[0]).toBe('StartSession');
    expect(ops.filter((o) => o === 'ResumeSession').length).toBeGreaterThanOrEqual(2);
    expect(ops.at(-1)).toBe('TerminateSession');
    expect(ops.filter((o) => o === 'TerminateSession')).toHaveLength(1);
  }

  it('websocket refused: retried, then exit 6 and the session terminated', async () => {
    const before = api.calls.length;
    const r = await runProxy(['i-0123456789abcdef0', '22'], env({ SSM_PROXY_RECONNECT_FOR: '2' }), { keepStdinOpen: true, timeoutMs: 15_000 });
    expect(r.code).toBe(6);
    expect(r.stdout.length).toBe(0);
    expectOneLine(r.stderr, /cannot open the Session Manager data channel at ws:\/\/127\.0\.0\.1:\d+: .*ECONNREFUSED/);
    expectRetriedThenTerminated(api.calls.slice(before));
  });

  it('websocket upgrade answered with HTTP 403: retried, then exit 6 and the session terminated', async () => {
    const refusing = new FakeSsmApi({ registry: new SessionRegistry(), streamUrl: (id) => `ws://127.0.0.1:${refuserPort}/v1/data-channel/${id}` });
    await refusing.listen();
    try {
      const r = await runProxy(['i-0123456789abcdef0', '22'], env({ AWS_ENDPOINT_URL_SSM: refusing.url, SSM_PROXY_RECONNECT_FOR: '2' }), { keepStdinOpen: true, timeoutMs: 15_000 });
      expect(r.code).toBe(6);
      expectOneLine(r.stderr, /HTTP 403/);
      expectRetriedThenTerminated(refusing.calls);
    } finally {
      await refusing.close();
    }
  });

  it('never prints the session token or secret key, even at -vvv', async () => {
    const before = issuedTokens.length;
    const r = await runProxy(['-vvv', 'i-0123456789abcdef0', '22'], env({ SSM_PROXY_RECONNECT_FOR: '2' }), { keepStdinOpen: true, timeoutMs: 15_000 });
    expect(r.code).toBe(6);
    // StartSession's token and those of the ResumeSession retries.
    expect(issuedTokens.length).toBeGreaterThanOrEqual(before + 3);
    expect(r.stderr.split('\n').length).toBeGreaterThan(2); // -vvv did log
    for (const t of issuedTokens) expect(r.stderr).not.toContain(t);
    expect(r.stderr).not.toContain(TEST_CREDENTIALS.secretAccessKey);
  });
});
