// How ssm-proxy ends: stdin EOF, the signals ssh and users send, and a refused port.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { startSshd, type SshdHandle } from './openssh.ts';
import { startProxy, simAwsEnv, runProxy, type ProxyResult } from './proxy-process.ts';
import { TARGET } from './ssh-helpers.ts';
import { startSimulator, type Simulator } from '../sim/index.ts';

let sshd: SshdHandle;
let sim: Simulator;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  sshd = await startSshd();
  sim = await startSimulator({ profile: 'service', targets: { [TARGET]: { port: sshd.port }, 'i-00000000000000001': { port: sshd.port } }, faults: { refuseTargets: ['i-00000000000000001'] } });
  env = simAwsEnv(sim);
});
afterAll(async () => {
  await sim?.close();
  await sshd?.stop();
});

/** Waits (bounded) until the proxy has relayed sshd's banner to stdout. */
function waitForBanner(child: ChildProcess, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const t = setTimeout(() => reject(new Error(`no SSH banner within ${timeoutMs} ms (got ${JSON.stringify(seen)})`)), timeoutMs);
    child.stdout!.on('data', (d: Buffer) => {
      seen += d.toString('latin1');
      if (seen.includes('\r\n')) {
        clearTimeout(t);
        resolve(seen);
      }
    });
  });
}

async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const r = await Promise.race([p, new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error(`${what} took longer than ${ms} ms`)), ms)))]);
  clearTimeout(timer);
  return r;
}

async function endWith(
  action: (child: ChildProcess) => void,
  on: { sim: Simulator; env: NodeJS.ProcessEnv } = { sim, env },
): Promise<{ result: ProxyResult; terminateCalls: number; sessionState?: string; endedBy?: string; flagSent: boolean }> {
  const { sim, env } = on;
  const before = sim.api.count('TerminateSession');
  const { child, done } = startProxy([TARGET, '22'], env);
  const banner = await waitForBanner(child);
  expect(banner).toMatch(/^SSH-2\.0-OpenSSH/);
  const sessionId = sim.registry.list().at(-1)!.sessionId;
  // The client banner, so sshd has something to wait on.
  child.stdin!.write('SSH-2.0-OpenSSH_9.2 lifecycle-test\r\n');
  const t0 = performance.now();
  action(child);
  const result = await within(done, 10_000, 'ssm-proxy exit');
  result.ms = performance.now() - t0;
  const record = sim.registry.get(sessionId);
  const flagSent = sim.gateway.session(sessionId)?.timeline.some((e) => e.event === 'flag' && e.detail === 'TerminateSession') ?? false;
  return { result, terminateCalls: sim.api.count('TerminateSession') - before, sessionState: record?.state, endedBy: record?.terminateReason, flagSent };
}

describe('lifecycle', () => {
  // The agent takes the TerminateSession flag and the service closes the channel, so the
  // session is over without the API call (§10.2 step 6).
  it('stdin EOF: exit 0, the session ended by the flag, no TerminateSession call', async () => {
    const { result, terminateCalls, sessionState, endedBy } = await endWith((c) => c.stdin!.end());
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('');
    expect(terminateCalls).toBe(0);
    expect(sessionState).toBe('terminated');
    expect(endedBy).toBe('TerminateSession flag');
    expect(result.ms).toBeLessThan(8_000);
    expect(sim.totalViolations()).toBe(0);
  });

  // Profiles, SSO and roles make the calls through the AWS SDK: the same clean ending, and
  // none of the SDK's own output (its Node-version warning) on stderr.
  it('stdin EOF with the calls through the AWS SDK (SSM_PROXY_USE_SDK=1): exit 0, stderr silent', async () => {
    const { result, terminateCalls, sessionState } = await endWith((c) => c.stdin!.end(), { sim, env: { ...env, SSM_PROXY_USE_SDK: '1' } });
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('');
    expect(terminateCalls).toBe(0);
    expect(sessionState).toBe('terminated');
    expect(sim.totalViolations()).toBe(0);
  });

  // Whoever reads ssh's stderr to its end (ansible does) waits for the proxy to close it;
  // the proxy closes stdio before node's exit work and the kernel's teardown, not after.
  // A preloaded 'exit' hook writes to fds 1 and 2: once they are released that goes nowhere.
  it('stdin EOF: stdout and stderr are closed before the exit itself (a write at exit reaches neither)', async () => {
    const hook = join(mkdtempSync(join(tmpdir(), 'ssm-proxy-exit-hook-')), 'hook.cjs');
    writeFileSync(hook, `process.on('exit', () => { const fs = require('node:fs'); for (const fd of [1, 2]) { try { fs.writeSync(fd, 'written at exit\\n'); } catch {} } });\n`);
    try {
      const { result } = await endWith((c) => c.stdin!.end(), { sim, env: { ...env, NODE_OPTIONS: `--require ${hook}` } });
      expect(result.code).toBe(0);
      expect(result.stderr).toBe('');
      expect(result.stdout.toString('latin1')).not.toContain('written at exit');
      expect(result.stdout.toString('latin1')).toMatch(/^SSH-2\.0-OpenSSH/);
    } finally {
      rmSync(dirname(hook), { recursive: true, force: true });
    }
  });

  for (const [signal, code] of [
    ['SIGHUP', 129],
    ['SIGTERM', 143],
    ['SIGINT', 130],
  ] as const) {
    it(`${signal}: exit ${code} after cleanup, the session ended by the flag`, async () => {
      const { result, terminateCalls, sessionState, endedBy } = await endWith((c) => c.kill(signal));
      expect(result.code).toBe(code);
      expect(result.stderr).toBe('');
      expect(terminateCalls).toBe(0);
      expect(sessionState).toBe('terminated');
      expect(endedBy).toBe('TerminateSession flag');
      expect(result.ms).toBeLessThan(6_000);
      expect(sim.totalViolations()).toBe(0);
    });
  }

  it('target port refused: exit 7 with one line saying so', async () => {
    const r = await runProxy(['i-00000000000000001', '22'], env, { keepStdinOpen: true, timeoutMs: 15_000 });
    expect(r.code).toBe(7);
    expect(r.stdout.length).toBe(0);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^ssm-proxy: .*could not connect to port 22/);
  });

  it('the service ending the session (TerminateSession API) ends the proxy with exit 0', async () => {
    const { child, done } = startProxy([TARGET, '22'], env);
    await waitForBanner(child);
    const id = sim.registry.list().at(-1)!.sessionId;
    sim.registry.terminate(id, 'test');
    const r = await within(done, 10_000, 'ssm-proxy exit');
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
  });
});

describe('a signal while the session is being started', () => {
  it('ends the session StartSession starts (TerminateSession) before exiting 128+N, not left open on the service', { timeout: 30_000 }, async () => {
    // StartSession answered 1.5 s late: ssh's SIGHUP (Ctrl-C while connecting) comes in between.
    const slowApi = await startSimulator({ profile: 'service', latency: { apiMs: 1500 }, targets: { [TARGET]: { port: sshd.port } } });
    try {
      const { child, done } = startProxy([TARGET, '22'], simAwsEnv(slowApi));
      for (let i = 0; i < 200 && !slowApi.api.calls.some((c) => c.operation === 'StartSession'); i++) await new Promise((r) => setTimeout(r, 25));
      expect(slowApi.api.count('StartSession')).toBe(1);
      child.kill('SIGHUP');
      const r = await within(done, 10_000, 'ssm-proxy exit');
      expect(r.code).toBe(129);
      expect(r.stderr).toBe('');
      expect(r.stdout.length).toBe(0);
      const [session] = slowApi.registry.list();
      expect(session.state).toBe('terminated');
      expect(session.terminateReason).toBe('TerminateSession');
    } finally {
      await slowApi.close();
    }
  });
});

describe('stdin EOF with data still on its way', () => {
  async function sinkServer() {
    let received = 0;
    const server = createServer((sock) => sock.on('data', (d) => (received += d.length)));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return { port: (server.address() as { port: number }).port, received: () => received, close: () => server.close() };
  }

  // ~8 s at this rate: longer than the 5 s §10.2 allows the drain. A current agent takes
  // the TerminateSession flag after the data before it, in order, so nothing is lost even
  // if the drain ends early; an agent too old for the flag is ended by the API call, which
  // does not wait for frames still on their way.
  for (const agentVersion of ['3.3.1142.0', '2.3.700.0']) {
    it(`agent ${agentVersion}: waits for a slow target as long as the agent keeps taking data, then exits 0 with every byte delivered`, { timeout: 60_000 }, async () => {
      const sink = await sinkServer();
      const slow = await startSimulator({ profile: 'service', agentVersion, faults: { slowTargetBytesPerSec: 40_000 } });
      try {
        const data = randomBytes(320 * 1024);
        const r = await runProxy([TARGET, String(sink.port)], simAwsEnv(slow), { input: data, timeoutMs: 45_000 });
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
        expect(sink.received()).toBe(data.length);
        expect(slow.totalViolations()).toBe(0);
      } finally {
        await slow.close();
        sink.close();
      }
    });
  }

  it('stdin closes while the websocket is down: the reconnect under way is waited for, and the data delivered', { timeout: 60_000 }, async () => {
    const sink = await sinkServer();
    // The first websocket is cut 1 s in; ResumeSession (like every API call here) answers 1.5 s late.
    const cut = await startSimulator({ profile: 'service', latency: { apiMs: 1500 }, faults: { closeClient: { afterMs: 1000, mode: 'terminate' } } });
    try {
      const { child, done } = startProxy([TARGET, String(sink.port)], simAwsEnv(cut));
      const wasCut = () => [...cut.gateway.sessions.values()].some((s) => s.timeline.some((e) => e.event === 'fault-close'));
      for (let i = 0; i < 400 && !wasCut(); i++) await new Promise((r) => setTimeout(r, 25));
      expect(wasCut()).toBe(true);
      const data = randomBytes(10 * 1024);
      child.stdin!.end(data);
      const r = await within(done, 30_000, 'ssm-proxy exit');
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(sink.received()).toBe(data.length);
      expect(cut.api.count('ResumeSession')).toBe(1);
    } finally {
      await cut.close();
      sink.close();
    }
  });

  // An agent too old for the TerminateSession flag is ended by the API call, which does not
  // wait for what is still unacknowledged. (One that takes the flag took everything before it.)
  it('an agent that stops acknowledging: after 5 s without progress the API ends the session, exit 9 saying the target may miss data, not 0', { timeout: 60_000 }, async () => {
    const sink = await sinkServer();
    const stuck = await startSimulator({ profile: 'service', agentVersion: '2.3.700.0', faults: { agentStopsAckingAfterMs: 0 } });
    try {
      const r = await runProxy([TARGET, String(sink.port)], simAwsEnv(stuck), { input: randomBytes(8 * 1024), timeoutMs: 30_000 });
      expect(r.code).toBe(9);
      expect(r.stdout.length).toBe(0);
      const lines = r.stderr.trim().split('\n');
      expect(lines, r.stderr).toHaveLength(1);
      expect(lines[0]).toMatch(/^ssm-proxy: the session ended before the SSM agent acknowledged the last data from stdin \(up to \d+ bytes\); the target may not have received all of it$/);
    } finally {
      await stuck.close();
      sink.close();
    }
  });
});

describe('output ssh has yet to read when the session ends', () => {
  it('is all delivered before the proxy exits, however long ssh takes while it keeps reading', { timeout: 30_000 }, async () => {
    const payload = randomBytes(200 * 1024);
    const source = createServer((sock) => {
      sock.on('error', () => {});
      sock.end(payload); // the target sends its last bytes and closes: the service ends the session
    });
    await new Promise<void>((r) => source.listen(0, '127.0.0.1', r));
    const any = await startSimulator({ profile: 'service' }); // dials the port asked for
    try {
      const { child, done } = startProxy([TARGET, String((source.address() as { port: number }).port)], simAwsEnv(any));
      // ssh busy for 4 s: the session is over long before it reads again.
      child.stdout!.pause();
      await new Promise((r) => setTimeout(r, 4000));
      child.stdout!.resume();
      const r = await within(done, 20_000, 'ssm-proxy exit');
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout.length).toBe(payload.length);
      expect(r.stdout.equals(payload)).toBe(true);
    } finally {
      await any.close();
      source.close();
    }
  });
});

describe("the agent's CustomerMessage (§6.4)", () => {
  it('is shown on stderr at the default verbosity, one line, and never enters the SSH stream', async () => {
    const kms = await startSimulator({ profile: 'service', customerMessage: 'This session is encrypted using AWS KMS.', targets: { [TARGET]: { port: sshd.port } } });
    try {
      const { result } = await endWith((c) => c.stdin!.end(), { sim: kms, env: simAwsEnv(kms) });
      expect(result.code).toBe(0);
      expect(result.stderr).toBe('ssm-proxy: message from the SSM agent: This session is encrypted using AWS KMS.\n');
      expect(result.stdout.toString('latin1')).toMatch(/^SSH-2\.0-OpenSSH[^\n]*\r\n$/);
    } finally {
      await kms.close();
    }
  });
});

describe('agents that do not end the session on the TerminateSession flag', () => {
  // 2.3.740.0 acks the flag and ignores it (before 2.3.756.0); 2.3.700.0 is too old to be sent it (§9.5, §9.8).
  for (const [agentVersion, sendsFlag] of [
    ['2.3.740.0', true],
    ['2.3.700.0', false],
  ] as const) {
    it(`agent ${agentVersion}: stdin EOF ends the session with one TerminateSession call`, async () => {
      const old = await startSimulator({ profile: 'service', agentVersion, targets: { [TARGET]: { port: sshd.port } } });
      try {
        const { result, terminateCalls, sessionState, endedBy, flagSent } = await endWith((c) => c.stdin!.end(), { sim: old, env: simAwsEnv(old) });
        expect(flagSent).toBe(sendsFlag);
        expect(result.code).toBe(0);
        expect(result.stderr).toBe('');
        expect(terminateCalls).toBe(1);
        expect(sessionState).toBe('terminated');
        expect(endedBy).toBe('TerminateSession');
        expect(old.totalViolations()).toBe(0);
      } finally {
        await old.close();
      }
    });
  }
});

describe('the way ssh ends a ProxyCommand', () => {
  it('stdin EOF followed at once by SIGHUP still terminates the session, once', async () => {
    const { result, terminateCalls, sessionState } = await endWith((c) => {
      c.stdin!.end();
      c.kill('SIGHUP');
    });
    expect([0, 129]).toContain(result.code);
    expect(result.stderr).toBe('');
    expect(terminateCalls).toBe(0);
    expect(sessionState).toBe('terminated');
  });

  it('a second signal during cleanup exits at once', async () => {
    const { result } = await endWith((c) => {
      c.kill('SIGTERM');
      setTimeout(() => c.kill('SIGTERM'), 5);
    });
    expect(result.code).toBe(143);
  });
});
