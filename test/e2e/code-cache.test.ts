// The built program through its loader: the first session writes V8's code cache, the
// next ones start from it, and a damaged cache changes nothing but the start-up time.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSimulator, type Simulator } from '../sim/index.ts';
import { PROXY_BIN, requireOpenSsh, startSshd } from './openssh.ts';
import { rig } from './ssh-helpers.ts';
import { cleanAwsEnv, NO_HOME, startProxy, simAwsEnv } from './proxy-process.ts';

const TARGET = 'i-0123456789abcdef0';
let sim: Simulator;
let echo: ReturnType<typeof createServer>;
let echoPort: number;
let cacheRoot: string;

beforeAll(async () => {
  requireOpenSsh(); // checks the bundle exists too
  echo = createServer((s) => s.pipe(s));
  echoPort = await new Promise<number>((r) => echo.listen(0, '127.0.0.1', () => r((echo.address() as { port: number }).port)));
  sim = await startSimulator({ profile: 'unlimited', targets: { [TARGET]: { port: echoPort } } });
  cacheRoot = mkdtempSync(join(tmpdir(), 'ssm-proxy-code-cache-'));
});
afterAll(async () => {
  await sim?.close();
  echo?.close();
  if (cacheRoot) rmSync(cacheRoot, { recursive: true, force: true });
});

function env(extra: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const e = simAwsEnv(sim);
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete e[k];
    else e[k] = v;
  }
  return e;
}

/** 256 KiB (or `how.bytes`) through the proxy to the echo target and back; then stdin EOF, the normal end. */
async function session(e: NodeJS.ProcessEnv, verbose: boolean | '-vvv', how: { nodeFlags?: string[]; bytes?: number } = {}): Promise<{ code: number | null; stderr: string }> {
  const data = randomBytes(how.bytes ?? 256 * 1024);
  const { child, done } = startProxy([...(verbose ? [verbose === true ? '-vv' : verbose] : []), '--frame-rate', '0', TARGET, String(echoPort)], e, how);
  const back: Buffer[] = [];
  let got = 0;
  await new Promise<void>((resolve) => {
    const t = setTimeout(resolve, 20_000);
    child.stdout!.on('data', (d: Buffer) => {
      back.push(d);
      got += d.length;
      if (got >= data.length) {
        clearTimeout(t);
        resolve();
      }
    });
    child.stdin!.write(data);
  });
  child.stdin!.end();
  const r = await done;
  expect(Buffer.concat(back).equals(data)).toBe(true);
  return { code: r.code, stderr: r.stderr };
}

function summaryLine(stderr: string): string {
  const line = stderr.split('\n').find((l) => l.includes('code cache'));
  expect(line, stderr).toBeDefined();
  return line!.replace(/^.*debug: /, '');
}

describe('code cache', () => {
  it('is written by the first session and used by the next; a damaged one is refused and rewritten', async () => {
    const root = join(cacheRoot, 'a');
    const first = await session(env({ SSM_PROXY_CODE_CACHE: root }), true);
    expect(first.code).toBe(0);
    const s1 = summaryLine(first.stderr);
    const files = Number(/(\d+) without one; (\d+) written now$/.exec(s1)?.[1]);
    expect(s1).toMatch(new RegExp(`^code cache ${root}/code-cache/[0-9a-f]{16}-${process.version}-${process.arch}: 0 files from cache, 0 refused, ${files} without one; ${files} written now$`));
    expect(files).toBeGreaterThan(5);
    const [dir] = readdirSync(join(root, 'code-cache'));
    const cacheFiles = () => readdirSync(join(root, 'code-cache', dir)).filter((f) => f.endsWith('.v8'));
    expect(cacheFiles()).toHaveLength(files);

    const second = await session(env({ SSM_PROXY_CODE_CACHE: root }), true);
    expect(second.code).toBe(0);
    expect(summaryLine(second.stderr)).toMatch(new RegExp(`: ${files} files from cache, 0 refused, 0 without one$`));

    for (const f of cacheFiles()) {
      const p = join(root, 'code-cache', dir, f);
      const b = readFileSync(p);
      for (let i = b.length - 1; i > b.length / 2; i -= 101) b[i] ^= 0xa5;
      writeFileSync(p, b, { mode: 0o600 });
    }
    const damaged = await session(env({ SSM_PROXY_CODE_CACHE: root }), true);
    expect(damaged.code).toBe(0);
    expect(summaryLine(damaged.stderr)).toMatch(new RegExp(`: 0 files from cache, ${files} refused, 0 without one; ${files} written now$`));
    expect(summaryLine((await session(env({ SSM_PROXY_CODE_CACHE: root }), true)).stderr)).toMatch(new RegExp(`: ${files} files from cache, 0 refused, 0 without one$`));
  });

  it('says nothing on stderr, with or without a cache', async () => {
    const root = join(cacheRoot, 'b');
    for (let i = 0; i < 2; i++) {
      const r = await session(env({ SSM_PROXY_CODE_CACHE: root }), false);
      expect(r.code).toBe(0);
      expect(r.stderr).toBe('');
    }
    const off = await session(env({ SSM_PROXY_CODE_CACHE: 'off' }), true);
    expect(summaryLine(off.stderr)).toMatch(/^code cache off, \d+ files compiled$/);
    const relative = await session(env({ SSM_PROXY_CODE_CACHE: 'some/dir' }), true);
    expect(relative.code).toBe(0);
    expect(summaryLine(relative.stderr)).toMatch(/^code cache off \(SSM_PROXY_CODE_CACHE is not an absolute path; ignored\), \d+ files compiled$/);
  });

  it('goes to ~/.cache/ssm-proxy by default, and creates no home that does not exist', async () => {
    const home = mkdtempSync(join(tmpdir(), 'ssm-proxy-home-'));
    try {
      const r = await session(env({ SSM_PROXY_CODE_CACHE: undefined, HOME: home, XDG_CACHE_HOME: undefined }), false);
      expect(r.code).toBe(0);
      const builds = readdirSync(join(home, '.cache', 'ssm-proxy', 'code-cache'));
      expect(builds).toHaveLength(1);
      // Written at the exit of a quiet run too (after stdio is released).
      expect(readdirSync(join(home, '.cache', 'ssm-proxy', 'code-cache', builds[0])).filter((f) => f.endsWith('.v8')).length).toBeGreaterThan(3);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
    const r = await session(env({ SSM_PROXY_CODE_CACHE: undefined, XDG_CACHE_HOME: undefined }), false);
    expect(r.code).toBe(0);
    expect(existsSync(NO_HOME)).toBe(false);
  });

  it('is written when ssh ends the first connection (stdin EOF, then SIGHUP) and used by the next', async () => {
    const sshd = await startSshd();
    try {
      const r = await rig(sshd, { profile: 'service' }, ['-vv']);
      try {
        const first = await r.ssh([TARGET, 'echo one']);
        expect(first.code, first.stderr).toBe(0);
        expect(first.stdout.toString()).toBe('one\n');
        expect(summaryLine(first.stderr)).toMatch(/: 0 files from cache, 0 refused, (\d+) without one; \1 written now$/);
        const second = await r.ssh([TARGET, 'echo two']);
        expect(second.code, second.stderr).toBe(0);
        expect(second.stdout.toString()).toBe('two\n');
        expect(summaryLine(second.stderr)).toMatch(/: (\d+) files from cache, 0 refused, 0 without one$/);
        expect(r.sim.totalViolations()).toBe(0);
      } finally {
        await r.close();
      }
    } finally {
      await sshd.stop();
    }
  });
});

describe('data channel origin', () => {
  it('is remembered beside the cache, so the next session connects to it while StartSession is answered', async () => {
    const root = join(cacheRoot, 'origin');
    const opened = 'opening a connection to ' + new URL(sim.gatewayUrl).origin + ' for the data channel';
    const used = 'data channel: using the connection opened ahead';
    const first = await session(env({ SSM_PROXY_CODE_CACHE: root }), '-vvv');
    expect(first.code).toBe(0);
    expect(first.stderr).not.toContain(opened);
    const [dir] = readdirSync(join(root, 'code-cache'));
    const note = JSON.parse(readFileSync(join(root, 'code-cache', dir, 'stream-origins.note'), 'utf8'));
    expect(note).toEqual({ [`${sim.apiUrl} ${sim.region}`]: new URL(sim.gatewayUrl).origin });
    const violationsBefore = sim.totalViolations();
    for (let i = 0; i < 2; i++) {
      const next = await session(env({ SSM_PROXY_CODE_CACHE: root }), '-vvv');
      expect(next.code).toBe(0);
      expect(next.stderr).toContain(opened);
      expect(next.stderr).toContain(used);
    }
    expect(sim.totalViolations()).toBe(violationsBefore);
  });

  it('costs nothing when the remembered origin is wrong or the note is damaged', async () => {
    const root = join(cacheRoot, 'origin-wrong');
    expect((await session(env({ SSM_PROXY_CODE_CACHE: root }), false)).code).toBe(0);
    const [dir] = readdirSync(join(root, 'code-cache'));
    const noteFile = join(root, 'code-cache', dir, 'stream-origins.note');
    const key = `${sim.apiUrl} ${sim.region}`;
    // A port nothing listens on: the connection opened ahead is refused, the websocket connects on its own.
    const closed = createServer();
    const closedPort = await new Promise<number>((r) => closed.listen(0, '127.0.0.1', () => r((closed.address() as { port: number }).port)));
    await new Promise((r) => closed.close(r));
    writeFileSync(noteFile, JSON.stringify({ [key]: `ws://127.0.0.1:${closedPort}` }), { mode: 0o600 });
    const refused = await session(env({ SSM_PROXY_CODE_CACHE: root }), '-vvv');
    expect(refused.code).toBe(0);
    expect(refused.stderr).toContain('data channel: not using the connection opened ahead (');
    // The StreamUrl's real origin is remembered again.
    expect(JSON.parse(readFileSync(noteFile, 'utf8'))).toEqual({ [key]: new URL(sim.gatewayUrl).origin });
    for (const damaged of ['{', JSON.stringify({ [key]: 'not a url' })]) {
      writeFileSync(noteFile, damaged, { mode: 0o600 });
      const r = await session(env({ SSM_PROXY_CODE_CACHE: root }), true);
      expect(r.code).toBe(0);
    }
  });

  it('is not opened ahead without a place to remember it (SSM_PROXY_CODE_CACHE=off)', async () => {
    const r = await session(env({ SSM_PROXY_CODE_CACHE: 'off' }), '-vvv');
    expect(r.code).toBe(0);
    expect(r.stderr).not.toContain('for the data channel');
  });
});

describe('launcher', () => {
  it('keeps a separate cache for node started with other flags, which V8 would refuse', async () => {
    const root = join(cacheRoot, 'c');
    const flags = ['--max-old-space-size=256'];
    const launched = await session(env({ SSM_PROXY_CODE_CACHE: root }), true);
    expect(launched.code).toBe(0);
    expect(launched.stderr).toMatch(new RegExp(`debug: ssm-proxy \\S+ on node ${process.version}\n`));
    const flagged = await session(env({ SSM_PROXY_CODE_CACHE: root }), true, { nodeFlags: flags });
    expect(flagged.code).toBe(0);
    expect(flagged.stderr).toMatch(new RegExp(`debug: ssm-proxy \\S+ on node ${process.version} ${flags[0]}\n`));
    expect(summaryLine(flagged.stderr)).toMatch(/: 0 files from cache, 0 refused, (\d+) without one; \1 written now$/);
    expect(readdirSync(join(root, 'code-cache'))).toHaveLength(2);
    for (const how of [{}, { nodeFlags: flags }]) expect(summaryLine((await session(env({ SSM_PROXY_CODE_CACHE: root }), true, how)).stderr)).toMatch(/: (\d+) files from cache, 0 refused, 0 without one$/);
  });

  it.each([
    ['signed here', {}],
    ['through the AWS SDK', { SSM_PROXY_USE_SDK: '1' }],
  ])("loads node's own modules before it sets V8's flags, which would make V8 refuse their cached bytecode (API calls %s)", async (_route, extra: Record<string, string>) => {
    const dir = mkdtempSync(join(tmpdir(), 'ssm-proxy-builtins-'));
    try {
      // Records the node modules loaded after the first setFlagsFromString of the run.
      const hook = join(dir, 'hook.cjs');
      const out = join(dir, 'late.json');
      writeFileSync(
        hook,
        `const v8 = require('node:v8'); const set = v8.setFlagsFromString; let at = -1;
v8.setFlagsFromString = function (f) { if (at < 0) at = process.moduleLoadList.length; return set.call(this, f); };
process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(out)}, JSON.stringify({ at, late: process.moduleLoadList.slice(at).filter((m) => m.startsWith('NativeModule ')) })));\n`,
      );
      const r = await session(env({ SSM_PROXY_CODE_CACHE: join(cacheRoot, 'd'), ...extra }), false, { nodeFlags: ['--require', hook] });
      expect(r.code).toBe(0);
      const seen = JSON.parse(readFileSync(out, 'utf8')) as { at: number; late: string[] };
      expect(seen.at).toBeGreaterThan(0);
      expect(seen.late).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('loads the AWS SDK one file per turn of the event loop while the API connection opens', async () => {
    // The SDK loads for every credential source but keys in the environment, or when asked to.
    const r = await session(env({ SSM_PROXY_CODE_CACHE: join(cacheRoot, 'steps'), SSM_PROXY_USE_SDK: '1' }), '-vvv');
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/trace: opening a connection to http:\/\/127\.0\.0\.1:\d+ for the SSM API\n/);
    const steps = /trace: AWS SDK loaded in \d+ ms \((\d+) files in turns of the event loop\)\n/.exec(r.stderr);
    expect(steps, r.stderr).not.toBeNull();
    expect(Number(steps![1])).toBeGreaterThanOrEqual(5);
  });

  it("does not load the AWS SDK's files at all with keys in the environment", async () => {
    const files = async (extra: Record<string, string>) => {
      const r = await session(env({ SSM_PROXY_CODE_CACHE: join(cacheRoot, 'direct'), ...extra }), '-vvv');
      expect(r.code).toBe(0);
      const line = /code cache [^\n]*: (\d+) files from cache, (\d+) refused, (\d+) without one/.exec(r.stderr);
      expect(line, r.stderr).not.toBeNull();
      return { files: Number(line![1]) + Number(line![2]) + Number(line![3]), stderr: r.stderr };
    };
    const viaSdk = await files({ SSM_PROXY_USE_SDK: '1' });
    const direct = await files({});
    const sdkSteps = Number(/AWS SDK loaded in \d+ ms \((\d+) files/.exec(viaSdk.stderr)?.[1] ?? NaN);
    expect(sdkSteps).toBeGreaterThanOrEqual(5);
    expect(direct.files).toBeLessThanOrEqual(viaSdk.files - sdkSteps);
    expect(direct.stderr).toContain('requests signed by ssm-proxy');
  });

  it("starts without node's ES module loader (import() of the bundle cost 10-20 ms of every start)", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ssm-proxy-esm-'));
    try {
      const hook = join(dir, 'hook.cjs');
      const out = join(dir, 'modules.json');
      writeFileSync(hook, `process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(out)}, JSON.stringify(process.moduleLoadList)));\n`);
      const r = await session(env({ SSM_PROXY_CODE_CACHE: join(cacheRoot, 'esm') }), false, { nodeFlags: ['--require', hook] });
      expect(r.code).toBe(0);
      const loaded = JSON.parse(readFileSync(out, 'utf8')) as string[];
      expect(loaded).toContain('NativeModule net'); // the list is the process's own
      // node:module (createRequire) brings in internal/modules/esm/loader itself; import() also needs these:
      expect(loaded.filter((m) => /^NativeModule internal\/modules\/esm\/(module_job|translators|resolve|load)$/.test(m))).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // Loading bufferutil cost ~5 ms on the way to the first byte; a short session masks a few
  // KiB, in JavaScript. (Where bufferutil is not installed, neither run loads it.)
  it('loads the native masking helper only once a session moves bulk data', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ssm-proxy-bufferutil-'));
    try {
      const hook = join(dir, 'hook.cjs');
      const out = join(dir, 'loaded.json');
      writeFileSync(hook, `process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(out)}, JSON.stringify(Object.keys(require.cache))));\n`);
      const loaded = async (bytes: number) => {
        const r = await session(env({ SSM_PROXY_CODE_CACHE: join(cacheRoot, 'mask') }), false, { nodeFlags: ['--require', hook], bytes });
        expect(r.code).toBe(0);
        return (JSON.parse(readFileSync(out, 'utf8')) as string[]).some((f) => f.includes(`${'node_modules'}/bufferutil/`));
      };
      expect(await loaded(4 * 1024)).toBe(false);
      const installed = existsSync(join(PROXY_BIN, '..', '..', 'node_modules', 'bufferutil', 'package.json'));
      expect(await loaded(1024 * 1024)).toBe(installed);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('says how to build when the bundle or part of it is missing', () => {
    const root = mkdtempSync(join(tmpdir(), 'ssm-proxy-launcher-'));
    try {
      const repo = join(PROXY_BIN, '..', '..');
      cpSync(join(repo, 'bin'), join(root, 'bin'), { recursive: true });
      writeFileSync(join(root, 'package.json'), readFileSync(join(repo, 'package.json')));
      const run = () => spawnSync(process.execPath, [join(root, 'bin', 'ssm-proxy'), '--version'], { encoding: 'utf8', timeout: 20_000, env: cleanAwsEnv() });
      const expected = 'ssm-proxy: the bundle is missing; run `npm run build` in the ssm-proxy folder\n';
      let r = run();
      expect([r.status, r.stdout, r.stderr]).toEqual([1, '', expected]);
      cpSync(join(repo, 'dist'), join(root, 'dist'), { recursive: true });
      r = run();
      expect(r.status).toBe(0);
      expect(r.stdout).toMatch(/^ssm-proxy \d/);
      rmSync(join(root, 'dist', 'app', 'ssm-proxy.cjs'));
      r = run();
      expect([r.status, r.stdout, r.stderr]).toEqual([1, '', expected]);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
