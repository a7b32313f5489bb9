// `npm run bench`: real OpenSSH through `ProxyCommand ssm-proxy %h %p` and the simulator to a
// private sshd, against the same operations with ssh connecting to that sshd directly,
// interleaved in one run (A B A B ...). Medians and min–max; read ratios, not absolute times.
// See bench/README.md for what every figure means and how it is measured.
//
//   npm run bench                       full run (~10 min on 2 cores) -> bench/results.{json,md}
//   npm run bench -- --quick            small sizes, 3 runs          -> bench/results-quick.{json,md}
//   npm run bench -- --only connect,memory   sections: connect, unlimited, service, memory
//   npm run bench -- --runs 7           runs per comparison (overrides the mode's default)
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { join, resolve } from 'node:path';
import { startSimulator, type Profile, type Simulator, type ViolationCounts } from '../test/sim/index.ts';
import { connectClient, destroyClient, waitFor } from '../test/sim/testing.ts';
import { pathWithNode, startSshd, type SshdHandle } from '../test/e2e/openssh.ts';
import { makeLoopbackCertificate } from '../test/helpers/tls.ts';
import { MiB, exec, fmtNum, fmtStat, forgetProxyPid, killAll, killProxyPid, poll, procMem, readIfExists, sleep, spawnTracked, stat, tableMarkdown, tableText, trackProxyPid, type ExecResult, type Stat, type Table } from './lib.ts';
import { buildWrapper, parseUsage, type ProxyUsage } from './rusage.ts';

const REPO = resolve(new URL('..', import.meta.url).pathname);

// The simulator's test helpers load the AWS SDK in this process; its Node-version notice is noise here.
const emitWarning = process.emitWarning.bind(process);
process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
  const text = typeof warning === 'string' ? warning : warning.message;
  const type = typeof rest[0] === 'string' ? rest[0] : (rest[0] as { type?: string } | undefined)?.type;
  if (type === 'NodeVersionSupportWarning' || /AWS SDK for JavaScript \(v3\)/.test(text)) return;
  (emitWarning as (...a: unknown[]) => void)(warning, ...rest);
}) as typeof process.emitWarning;
const TARGET = 'i-0123456789abcdef0';
const SECTIONS = ['connect', 'unlimited', 'service', 'memory'] as const;
type Section = (typeof SECTIONS)[number];

// ---- command line ----

const USAGE = `usage: npm run bench -- [--quick] [--only connect,unlimited,service,memory] [--ops upload,download,scp-up,scp-down] [--runs N]
  --quick      small sizes and 3 runs (a check of the harness; writes bench/results-quick.*)
  --only LIST  run only these sections (comma separated)
  --ops LIST   in the transfer sections, run only these operations (comma separated)
  --runs N     runs per interleaved comparison (default: full 5, connect 10; quick 3)`;

const TRANSFER_OPS = ['upload', 'download', 'scp-up', 'scp-down'] as const;
type TransferOp = (typeof TRANSFER_OPS)[number];

function parseCli(argv: string[]): { quick: boolean; only: Set<Section>; ops: TransferOp[]; runs?: number } {
  let quick = false;
  let only = new Set<Section>(SECTIONS);
  let ops: TransferOp[] = [...TRANSFER_OPS];
  let runs: number | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = (): string => {
      const v = a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[++i];
      if (v === undefined) fail(`${a} needs a value`);
      return v;
    };
    if (a === '--quick') quick = true;
    else if (a === '--only' || a.startsWith('--only=')) {
      only = new Set(listOf(value(), SECTIONS, '--only: unknown section'));
    } else if (a === '--ops' || a.startsWith('--ops=')) {
      const names = listOf(value(), TRANSFER_OPS, '--ops: unknown operation');
      if (names.length === 0) fail('--ops needs at least one operation');
      ops = TRANSFER_OPS.filter((o) => names.includes(o));
    } else if (a === '--runs' || a.startsWith('--runs=')) {
      runs = Number(value());
      if (!Number.isInteger(runs) || runs < 1 || runs > 50) fail('--runs must be a whole number from 1 to 50');
    } else if (a === '--help' || a === '-h') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else fail(`unknown option ${JSON.stringify(a)}`);
  }
  return { quick, only, ops, runs };
}

/** A comma-separated option value, each name one of `allowed`. */
function listOf<T extends string>(v: string, allowed: readonly T[], unknown: string): T[] {
  const names = v.split(',').map((s) => s.trim()).filter(Boolean);
  for (const n of names) if (!(allowed as readonly string[]).includes(n)) fail(`${unknown} ${JSON.stringify(n)}`);
  return names as T[];
}

function fail(msg: string): never {
  process.stderr.write(`bench: ${msg}\n${USAGE}\n`);
  process.exit(2);
}

const cli = parseCli(process.argv.slice(2));
const QUICK = cli.quick;
const PARTIAL = cli.only.size < SECTIONS.length || cli.ops.length < TRANSFER_OPS.length;
const PLAN = {
  connectRuns: cli.runs ?? (QUICK ? 3 : 10),
  unlimitedRuns: cli.runs ?? (QUICK ? 3 : 5),
  serviceRuns: cli.runs ?? (QUICK ? 3 : 5),
  stallRuns: QUICK ? 1 : 2,
  unlimitedSize: (QUICK ? 8 : 64) * MiB,
  serviceSize: (QUICK ? 1 : 8) * MiB,
  stallSize: (QUICK ? 64 : 200) * MiB,
  stallFlowMs: QUICK ? 1000 : 2000,
  stallMs: QUICK ? 5000 : 10_000,
  /** Nothing new starts after this; what is left is reported as skipped. */
  hardCapMs: 40 * 60_000,
};
/** The service's client frame budget: 1000 frames/s of 1 KiB payloads. */
const BUDGET_MBPS = (1000 * 1024) / 1e6;
const PROXY_EXIT_WAIT_MS = 20_000;

const TARGETS = {
  serviceUploadFraction: 0.95,
  serviceDownloadFraction: 0.95,
  unlimitedMBps: 30,
  startupMs: 150,
  connectOverheadMs: 200,
  peakRssMiB: 64,
  stallGrowthMiB: 16,
  cpuPer100MiB: 1.5,
};

// ---- state shared by the sections ----

const benchStart = performance.now();
const notes: string[] = [];
let tmp = '';
let snapDir = '';
let snapBin = '';
let wrapperPath: string | undefined;
let sshd: SshdHandle | undefined;
let sshBin = '';
let scpBin = '';
const configs: Record<Profile, string> = { service: '', unlimited: '' };
let seq = 0;

function log(line: string): void {
  const t = ((performance.now() - benchStart) / 1000).toFixed(0).padStart(4);
  process.stderr.write(`[${t}s] ${line}\n`);
}

function overCap(): boolean {
  return performance.now() - benchStart > PLAN.hardCapMs;
}

// ---- records ----

interface SimSummary {
  totalViolations: number;
  violations: Partial<ViolationCounts>;
  sessions: number;
  pausesSent: number;
  retransmissionsSeen: number;
  agentRetransmissions: number;
  duplicatesAtAgent: number;
  bytesToTarget: number;
  bytesFromTarget: number;
  endReasons: string[];
  states: string[];
  /** The latest violation records (kind, epoch ms, detail), when there were any. */
  violationRecords?: { kind: string; at: number; detail: string }[];
}

interface ProxyFigures {
  cpuS: number;
  userS: number;
  sysS: number;
  maxRssMiB: number;
  exit: string;
  lifeMs: number;
}

interface RunRecord {
  section: Section;
  op: string;
  path: 'proxy' | 'direct' | 'reference';
  iter: number;
  sizeBytes: number;
  ok: boolean;
  failure?: string;
  wallMs: number;
  /** Data phase: see README (remote command start to the last byte). */
  phaseMs?: number;
  mbps?: number;
  wallMbps?: number;
  cpuPer100MiB?: number;
  proxy?: ProxyFigures;
  sim?: SimSummary;
  /** CPU of this bench process (simulator + byte counting) during the run. */
  simCpuS?: number;
  /** Event-loop delay of this process (the simulator's) during the run: max and p99, ms. */
  simLoopLagMs?: { max: number; p99: number };
  extra?: Record<string, unknown>;
}

const allRuns: RunRecord[] = [];

function summarizeSim(sim: Simulator): SimSummary {
  const sessions = sim.sessions();
  const s: SimSummary = {
    totalViolations: sim.totalViolations(),
    violations: Object.fromEntries(Object.entries(sim.violations()).filter(([, v]) => v > 0)) as Partial<ViolationCounts>,
    sessions: sessions.length,
    pausesSent: 0,
    retransmissionsSeen: 0,
    agentRetransmissions: 0,
    duplicatesAtAgent: 0,
    bytesToTarget: 0,
    bytesFromTarget: 0,
    endReasons: [],
    states: [],
  };
  for (const x of sessions) {
    s.pausesSent += x.pausesSent;
    s.retransmissionsSeen += x.retransmissionsSeen;
    s.agentRetransmissions += x.agentRetransmissions;
    s.duplicatesAtAgent += x.duplicatesAtAgent;
    s.bytesToTarget += x.bytesToTarget;
    s.bytesFromTarget += x.bytesFromTarget;
    s.endReasons.push(x.endReason ?? '(not ended)');
    s.states.push(x.state);
  }
  if (s.totalViolations > 0) s.violationRecords = sim.gateway.stats().recentViolations.slice(-10).map((v) => ({ kind: v.kind, at: v.at, detail: v.detail }));
  return s;
}

function usageFigures(u: ProxyUsage): ProxyFigures {
  return { cpuS: u.cpuS, userS: u.userS, sysS: u.sysS, maxRssMiB: u.maxRssKiB / 1024, exit: `${u.how} ${u.code}`, lifeMs: u.endMs - u.startMs };
}

// ---- environment and ssh configuration ----

function sshdUser(): string {
  return process.env.USER || spawnSync('id', ['-un'], { encoding: 'utf8' }).stdout.trim() || 'root';
}

/** `Host direct` reaches sshd itself; `Host i-*` goes through the wrapper and the snapshot of ssm-proxy. */
function writeSshConfig(h: SshdHandle, name: string, proxyArgs: string[]): string {
  const file = join(tmp, `ssh_config_${name}`);
  const common = [`  User ${sshdUser()}`, `  IdentityFile ${h.userKey}`, '  IdentitiesOnly yes', `  UserKnownHostsFile ${h.knownHosts}`, '  StrictHostKeyChecking yes', '  BatchMode yes', '  LogLevel ERROR'];
  const argv = [...(wrapperPath ? [wrapperPath] : []), snapBin, ...proxyArgs];
  const proxy = argv.map((a) => (/\s/.test(a) ? `"${a}"` : a)).join(' ');
  writeFileSync(file, ['Host direct', '  HostName 127.0.0.1', `  Port ${h.port}`, ...common, '', 'Host i-* mi-*', `  ProxyCommand ${proxy} %h %p`, ...common, ''].join('\n'));
  return file;
}

function directEnv(): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: sshd!.dir };
}

function proxyEnv(sim: Simulator, rusageFile?: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    PATH: pathWithNode(),
    HOME: sshd!.dir,
    AWS_ACCESS_KEY_ID: sim.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: sim.credentials.secretAccessKey,
    AWS_REGION: sim.region,
    AWS_ENDPOINT_URL_SSM: sim.apiUrl,
    AWS_EC2_METADATA_DISABLED: 'true',
  };
  if (rusageFile) env.SSM_BENCH_RUSAGE = rusageFile;
  if (sim.apiUrl.startsWith('https:') && tlsCaFile) env.AWS_CA_BUNDLE = tlsCaFile;
  return env;
}

/** A fresh simulator per proxied run, so that every figure (violations, pauses, retransmissions) is that run's. */
async function withProxy<T>(
  profile: Profile,
  fn: (env: NodeJS.ProcessEnv, ctx: { sim: Simulator; ruFile: string }) => Promise<T>,
): Promise<{ value: T; usage?: ProxyUsage; sim: SimSummary; simCpuS: number; simLoopLagMs: { max: number; p99: number }; problems: string[] }> {
  const sim = await startSimulator({ profile, targets: { [TARGET]: { port: sshd!.port } } });
  const ruFile = join(tmp, `ru-${++seq}`);
  const env = proxyEnv(sim, wrapperPath ? ruFile : undefined);
  const problems: string[] = [];
  const lag = monitorEventLoopDelay({ resolution: 10 });
  lag.enable();
  const cpu0 = process.cpuUsage();
  try {
    const value = await fn(env, { sim, ruFile });
    const c = process.cpuUsage(cpu0);
    lag.disable();
    const simLoopLagMs = { max: lag.max / 1e6, p99: lag.percentile(99) / 1e6 };
    let usage: ProxyUsage | undefined;
    if (wrapperPath) {
      // ssh does not wait for its ProxyCommand: wait here (bounded) for the proxy to finish its
      // terminate procedure, so that its CPU is complete and the simulator outlives it.
      const pidText = readIfExists(`${ruFile}.pid`);
      if (pidText) {
        const pid = Number(pidText.trim().split(/\s+/)[0]);
        trackProxyPid(pid, snapDir);
        let text = await poll(() => readIfExists(ruFile), PROXY_EXIT_WAIT_MS);
        if (!text) {
          problems.push(`ssm-proxy still running ${PROXY_EXIT_WAIT_MS / 1000} s after ssh exited (killed)`);
          killProxyPid(pid);
          text = await poll(() => readIfExists(ruFile), 3000);
        }
        forgetProxyPid(pid);
        usage = text ? parseUsage(text) : undefined;
      }
    } else {
      await poll(() => (sim.sessions().every((s) => s.state === 'closed') ? true : undefined), PROXY_EXIT_WAIT_MS, 50);
    }
    const summary = summarizeSim(sim);
    if (summary.totalViolations > 0) {
      const first = summary.violationRecords?.[0];
      problems.push(`simulator violations: ${JSON.stringify(summary.violations)}${first ? ` (first: ${first.detail})` : ''}; the simulator's event loop lagged up to ${simLoopLagMs.max.toFixed(0)} ms in this run`);
    }
    return { value, usage, sim: summary, simCpuS: (c.user + c.system) / 1e6, simLoopLagMs, problems };
  } finally {
    lag.disable();
    await Promise.race([sim.close(), sleep(5000)]);
  }
}

// ---- the operations ----

type Op = 'ssh-true' | 'upload' | 'download' | 'scp-up' | 'scp-down';

const OP_LABEL: Record<Op, string> = {
  'ssh-true': "ssh host true",
  upload: "upload: ssh host 'cat > /dev/null' < file",
  download: "download: ssh host 'cat f'",
  'scp-up': 'upload: scp file host:',
  'scp-down': 'download: scp host:f .',
};

const STAMP = 'date +%s%N >&2';

function stamps(stderr: string): number[] {
  return stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => /^\d{19}$/.test(l))
    .map((l) => Number(BigInt(l) / 1000n) / 1000); // epoch ms with µs precision
}

function tail(s: string, n = 300): string {
  const t = s.trim().replace(/\s+/g, ' ');
  return t.length > n ? `…${t.slice(-n)}` : t;
}

function timeoutFor(profile: Profile, size: number): number {
  return 30_000 + (size / (profile === 'service' ? 0.5e6 : 2e6)) * 1000;
}

/** One ssh/scp operation on one path; returns the run's record (never throws for a failed run). */
async function runOp(section: Section, op: Op, path: 'proxy' | 'direct', profile: Profile, iter: number, size: number, file: string): Promise<RunRecord> {
  const host = path === 'proxy' ? TARGET : 'direct';
  const cfg = configs[profile];
  const timeoutMs = op === 'ssh-true' ? 30_000 : timeoutFor(profile, size);
  const rec: RunRecord = { section, op, path, iter, sizeBytes: op === 'ssh-true' ? 0 : size, ok: false, wallMs: 0 };

  // One scp of the test file up to `dest` on the host, or down from the host to `dest`; the
  // copy must have `size` bytes, and is removed afterwards (both ends are this machine).
  const scp = async (env: NodeJS.ProcessEnv, direction: 'up' | 'down', dest: string): Promise<string | undefined> => {
    const args = direction === 'up' ? [file, `${host}:${dest}`] : [`${host}:${file}`, dest];
    try {
      const r = await exec(scpBin, ['-F', cfg, '-q', ...args], { env, timeoutMs });
      rec.wallMs = r.t1 - r.t0;
      const bad = checkExit(r);
      if (bad) return bad;
      const got = existsSync(dest) ? statSync(dest).size : -1;
      if (got !== size) return `${direction === 'up' ? 'remote' : 'local'} file has ${got} bytes, expected ${size}`;
    } finally {
      rmSync(dest, { force: true });
    }
    rec.phaseMs = rec.wallMs;
    return undefined;
  };

  const doIt = async (env: NodeJS.ProcessEnv): Promise<string | undefined> => {
    let r: ExecResult;
    switch (op) {
      case 'ssh-true':
        r = await exec(sshBin, ['-F', cfg, host, 'true'], { env, timeoutMs });
        rec.wallMs = r.t1 - r.t0;
        return checkExit(r);
      case 'upload': {
        // The file goes into ssh's stdin only once the remote command has started (its first
        // timestamp is on stderr): data sent earlier would wait in sshd's channel window while the
        // remote shell starts, and the rate would come out too high.
        r = await exec(sshBin, ['-F', cfg, host, `${STAMP}; cat > /dev/null; ${STAMP}`], { env, feedStdin: { file, gate: (e) => stamps(e).length >= 1 }, timeoutMs });
        rec.wallMs = r.t1 - r.t0;
        const bad = checkExit(r);
        if (bad) return bad;
        const st = stamps(r.stderr);
        if (st.length !== 2 || r.feedStartWall === undefined) return `expected 2 remote timestamps on stderr, got ${st.length}: ${tail(r.stderr)}`;
        rec.phaseMs = st[1] - r.feedStartWall;
        rec.extra = { remoteStartToFeedMs: r.feedStartWall - st[0] };
        return undefined;
      }
      case 'download': {
        r = await exec(sshBin, ['-F', cfg, host, `${STAMP}; cat '${file}'`], { env, countStdout: true, timeoutMs });
        rec.wallMs = r.t1 - r.t0;
        const bad = checkExit(r);
        if (bad) return bad;
        if (r.stdoutBytes !== size) return `got ${r.stdoutBytes} bytes on stdout, expected ${size}`;
        const st = stamps(r.stderr);
        if (st.length !== 1 || r.lastByteWall === undefined) return `expected 1 remote timestamp on stderr, got ${st.length}: ${tail(r.stderr)}`;
        rec.phaseMs = r.lastByteWall - st[0];
        return undefined;
      }
      case 'scp-up':
        return scp(env, 'up', join(sshd!.dir, `up-${++seq}.bin`));
      case 'scp-down':
        return scp(env, 'down', join(tmp, `down-${++seq}.bin`));
    }
  };

  let failure: string | undefined;
  if (path === 'direct') {
    failure = await doIt(directEnv());
  } else {
    const w = await withProxy(profile, (env) => doIt(env));
    failure = w.value;
    rec.sim = w.sim;
    rec.simCpuS = w.simCpuS;
    rec.simLoopLagMs = w.simLoopLagMs;
    if (w.usage) rec.proxy = usageFigures(w.usage);
    else if (wrapperPath && !failure) w.problems.push('no rusage from the wrapper');
    if (!failure && w.problems.length > 0) failure = w.problems.join('; ');
    else if (w.problems.length > 0) failure = `${failure}; ${w.problems.join('; ')}`;
  }
  rec.ok = !failure;
  if (failure) rec.failure = failure;
  if (rec.sizeBytes > 0 && rec.phaseMs && rec.phaseMs > 0) {
    rec.mbps = rec.sizeBytes / 1e6 / (rec.phaseMs / 1000);
    rec.wallMbps = rec.sizeBytes / 1e6 / (rec.wallMs / 1000);
  }
  if (rec.proxy && rec.sizeBytes > 0) rec.cpuPer100MiB = (rec.proxy.cpuS * 100 * MiB) / rec.sizeBytes;
  allRuns.push(rec);
  const fig = rec.sizeBytes > 0 ? `${fmtNum(rec.mbps, 2)} MB/s (wall ${(rec.wallMs / 1000).toFixed(2)} s)` : `${rec.wallMs.toFixed(0)} ms`;
  const px = rec.proxy ? `, proxy cpu ${rec.proxy.cpuS.toFixed(2)} s, rss ${rec.proxy.maxRssMiB.toFixed(1)} MiB` : '';
  const sm = rec.sim ? `, viol ${rec.sim.totalViolations}, pauses ${rec.sim.pausesSent}, retrans ${rec.sim.retransmissionsSeen}/${rec.sim.agentRetransmissions}, sim loop lag max ${fmtNum(rec.simLoopLagMs?.max, 0)} ms` : '';
  log(`${section} #${iter} ${op} ${path}: ${rec.ok ? fig : `FAILED: ${rec.failure}`}${px}${sm}`);
  return rec;
}

function checkExit(r: ExecResult): string | undefined {
  if (r.timedOut) return `timed out (killed): ${tail(r.stderr)}`;
  if (r.code !== 0) return `exit ${r.code ?? r.signal}: ${tail(r.stderr)}`;
  return undefined;
}

// ---- connect: ssh host true, and the proxy's own start-up ----

interface StartupRecord {
  iter: number;
  ok: boolean;
  failure?: string;
  /** Date.now() just before spawn -> the simulator's arrival time of StartSession (same clock). */
  startSessionMs?: number;
  /** spawn -> the first byte on the proxy's stdout (performance.now(), this process). */
  firstByteMs?: number;
  banner?: string;
  exit?: string;
  sim?: SimSummary;
}

const startupRuns: StartupRecord[] = [];
/** The same with SSM_PROXY_CODE_CACHE=off: the first connection after an install or upgrade. */
const coldStartupRuns: StartupRecord[] = [];
/**
 * The same with SSM_PROXY_USE_SDK=1: the API calls through the AWS SDK, as they go for every
 * credential source but keys in the environment (profiles, SSO, roles).
 */
const sdkStartupRuns: StartupRecord[] = [];

/**
 * The same through a simulator that stands in for a distant region: the API answers 60 ms
 * late and a websocket upgrade is held 40 ms after its connection was accepted (TCP + TLS).
 * One simulator for all of them, so that the proxy has learned where its data channel is
 * (the warm-up run) and can open that connection while StartSession is answered.
 */
const LONG_PATH = { apiMs: 60, connectMs: 40 };
const longPathRuns: StartupRecord[] = [];

/**
 * The same with TLS to the API and the data channel, as the real service has, on
 * loopback: what TLS costs the start-up (the simulator's certificate is the CA bundle).
 * One simulator with a warm-up run, as for the long path.
 */
const tlsRuns: StartupRecord[] = [];
let tlsCaFile: string | undefined;

/** A kind of start-up run: its records, its name in the log, and its simulator (a fresh one per run when none). */
interface StartupPath {
  label: string;
  runs: StartupRecord[];
  codeCache: boolean;
  /** SSM_PROXY_USE_SDK=1. */
  useSdk?: boolean;
  sim?: Simulator;
}
const WARM_START: StartupPath = { label: '', runs: startupRuns, codeCache: true };
const COLD_START: StartupPath = { label: ' without code cache', runs: coldStartupRuns, codeCache: false };
const VIA_SDK: StartupPath = { label: ' through the AWS SDK', runs: sdkStartupRuns, codeCache: true, useSdk: true };

/** Every start-up run, with and without the code cache, and over the long path. */
function everyStartupRun(): StartupRecord[] {
  return [...startupRuns, ...coldStartupRuns, ...sdkStartupRuns, ...longPathRuns, ...tlsRuns];
}

/** Failed count and medians of spawn → StartSession and spawn → first byte over the runs that passed. */
function startupSummary(runs: StartupRecord[]): { failed: number; startSession: Stat | null; firstByte: Stat | null } {
  const ok = runs.filter((r) => r.ok);
  return { failed: runs.length - ok.length, startSession: stat(ok.map((r) => r.startSessionMs ?? NaN)), firstByte: stat(ok.map((r) => r.firstByteMs ?? NaN)) };
}

async function startupRun(iter: number, path: StartupPath): Promise<StartupRecord> {
  const rec: StartupRecord = { iter, ok: false };
  const shared = path.sim;
  const sim = shared ?? (await startSimulator({ profile: 'service', targets: { [TARGET]: { port: sshd!.port } } }));
  const violationsBefore = sim.totalViolations();
  try {
    const env = proxyEnv(sim);
    if (!path.codeCache) env.SSM_PROXY_CODE_CACHE = 'off';
    if (path.useSdk) env.SSM_PROXY_USE_SDK = '1';
    let first: number | undefined;
    let head = '';
    let stderr = '';
    let onFirst: () => void = () => {};
    const firstSeen = new Promise<void>((r) => (onFirst = r));
    const wall0 = Date.now();
    const t0 = performance.now();
    const child = spawnTracked(snapBin, [TARGET, '22'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    child.stdout!.on('data', (d: Buffer) => {
      if (first === undefined) {
        first = performance.now();
        onFirst();
      }
      if (head.length < 64) head += d.subarray(0, 64).toString('latin1');
    });
    child.stderr!.on('data', (d: Buffer) => {
      if (stderr.length < 16384) stderr += d.toString();
    });
    child.stdin!.on('error', () => {});
    const exited = new Promise<string>((r) => child.once('close', (code, sig) => r(`${code ?? sig}`)));
    await Promise.race([firstSeen, exited, sleep(20_000)]);
    // EOF on stdin: the proxy's normal terminate procedure (drain, TerminateSession flag, API call).
    child.stdin!.end();
    let exit = await Promise.race([exited, sleep(15_000).then(() => undefined)]);
    if (exit === undefined) {
      child.kill('SIGKILL');
      exit = `killed after 15 s: ${await exited}`;
    }
    rec.exit = exit;
    const call = sim.api.calls.filter((c) => c.operation === 'StartSession').at(-1);
    if (call) rec.startSessionMs = call.at - wall0;
    if (first !== undefined) rec.firstByteMs = first - t0;
    rec.banner = head.split(/\r?\n/)[0];
    await poll(() => (sim.sessions().every((s) => s.state === 'closed') ? true : undefined), 5000, 50);
    rec.sim = summarizeSim(sim);
    // A shared simulator's counters are since it started: this run's own are the difference.
    rec.sim.totalViolations -= violationsBefore;
    const problems: string[] = [];
    if (!call) problems.push('no StartSession call reached the simulator');
    if (first === undefined) problems.push(`no byte on stdout within 20 s: ${tail(stderr)}`);
    else if (!head.startsWith('SSH-2.0-')) problems.push(`stdout did not start with an SSH banner: ${JSON.stringify(head.slice(0, 40))}`);
    if (exit !== '0') problems.push(`proxy exit ${exit} after stdin EOF: ${tail(stderr)}`);
    if (rec.sim.totalViolations > 0) problems.push(`simulator violations: ${JSON.stringify(rec.sim.violations)}`);
    rec.ok = problems.length === 0;
    if (!rec.ok) rec.failure = problems.join('; ');
  } finally {
    if (!shared) await Promise.race([sim.close(), sleep(5000)]);
  }
  log(`connect #${iter} start-up${path.label}: ${rec.ok ? `StartSession after ${fmtNum(rec.startSessionMs, 0)} ms, first byte after ${fmtNum(rec.firstByteMs, 0)} ms` : `FAILED: ${rec.failure}`}`);
  path.runs.push(rec);
  return rec;
}

async function sectionConnect(): Promise<void> {
  log(`connect: ${PLAN.connectRuns} interleaved runs of ssh host true (service profile), direct ssh, and the proxy's start-up`);
  // Warm-up, not recorded: page cache for node, the bundle, ssh and sshd; and the proxy's
  // code cache (HOME is the sshd folder), which every later proxied run uses.
  await runOp('connect', 'ssh-true', 'proxy', 'service', 0, 0, '').then(() => allRuns.pop());
  await runOp('connect', 'ssh-true', 'direct', 'service', 0, 0, '').then(() => allRuns.pop());
  const longPath: StartupPath = { label: ' over the long path', runs: longPathRuns, codeCache: true, sim: await startSimulator({ profile: 'service', targets: { [TARGET]: { port: sshd!.port } }, latency: LONG_PATH }) };
  const tls = makeLoopbackCertificate();
  tlsCaFile = join(sshd!.dir, 'simulator-ca.pem');
  writeFileSync(tlsCaFile, tls.cert);
  const overTls: StartupPath = { label: ' over TLS', runs: tlsRuns, codeCache: true, sim: await startSimulator({ profile: 'service', targets: { [TARGET]: { port: sshd!.port } }, tls }) };
  try {
    // Unrecorded warm-ups: the proxy learns where each shared simulator's data channel is;
    // the AWS SDK's files, which the warm-up connection did not load, get their code cache.
    for (const path of [longPath, overTls, VIA_SDK]) await startupRun(0, path).then(() => path.runs.pop());
    for (let i = 1; i <= PLAN.connectRuns && !overCap(); i++) {
      await runOp('connect', 'ssh-true', 'proxy', 'service', i, 0, '');
      await runOp('connect', 'ssh-true', 'direct', 'service', i, 0, '');
      for (const path of [WARM_START, COLD_START, VIA_SDK, longPath, overTls]) await startupRun(i, path);
    }
  } finally {
    await Promise.race([Promise.all([longPath.sim!.close(), overTls.sim!.close()]), sleep(5000)]);
  }
}

// ---- transfers ----

async function sectionTransfers(section: 'unlimited' | 'service', files: Record<string, string>): Promise<void> {
  const profile: Profile = section;
  const size = section === 'unlimited' ? PLAN.unlimitedSize : PLAN.serviceSize;
  const runs = section === 'unlimited' ? PLAN.unlimitedRuns : PLAN.serviceRuns;
  const file = files[section];
  log(`${section}: ${runs} interleaved runs of ${size / MiB} MiB each way (ssh cat and scp), proxy ${section === 'unlimited' ? '--frame-rate 0' : 'defaults (--frame-rate 1000)'}`);
  // Unrecorded warm-ups: the simulator runs in this process, and its first unlimited
  // transfers (its code not yet optimized) took ~1.5 s of CPU against ~0.9 s for the
  // next ones, which made each section's first proxied run the slowest. The proxy is a
  // fresh process in every run either way.
  if (section === 'unlimited') {
    for (const op of cli.ops.filter((o) => o === 'upload' || o === 'download')) await runOp(section, op, 'proxy', profile, 0, size, file).then(() => allRuns.pop());
  }
  for (let i = 1; i <= runs && !overCap(); i++) {
    for (const op of cli.ops) {
      await runOp(section, op, 'proxy', profile, i, size, file);
      await runOp(section, op, 'direct', profile, i, size, file);
      if (section === 'service' && op === 'download') await referenceRun(i, size, file);
    }
    // The proxy's CPU for a connection that moves nothing: subtracted for the marginal CPU figure.
    if (section === 'unlimited') await runOp(section, 'ssh-true', 'proxy', profile, i, 0, '');
  }
}

/**
 * The rate the paced agent reaches into an ideal consumer: a TCP source that writes `size`
 * bytes as fast as the agent reads them, through a fresh service-profile simulator, into the
 * simulator's own ReliableChannel client in this process (it acks every frame on arrival and
 * never applies back-pressure). Timed from the source's connection (the agent's dial) to the
 * last byte delivered to the client.
 */
async function referenceRun(iter: number, size: number, file: string): Promise<RunRecord> {
  const rec: RunRecord = { section: 'service', op: 'download', path: 'reference', iter, sizeBytes: size, ok: false, wallMs: 0 };
  const data = readFileSync(file);
  let t0: number | undefined;
  const sockets = new Set<Socket>();
  const src: Server = createServer((sock) => {
    sockets.add(sock);
    sock.on('error', () => {});
    sock.on('close', () => sockets.delete(sock));
    t0 ??= performance.now();
    void (async () => {
      for (let off = 0; off < data.length && !sock.destroyed; off += 65536) {
        if (!sock.write(data.subarray(off, off + 65536))) {
          await new Promise<void>((r) => {
            sock.once('drain', r);
            sock.once('close', r);
          });
        }
      }
      sock.end();
    })();
  });
  await new Promise<void>((r) => src.listen(0, '127.0.0.1', r));
  const port = (src.address() as { port: number }).port;
  const sim = await startSimulator({ profile: 'service' });
  const cpu0 = process.cpuUsage();
  let client: Awaited<ReturnType<typeof connectClient>>['client'] | undefined;
  try {
    const c = await connectClient(sim, port, { keep: false });
    client = c.client;
    let got = 0;
    let t1: number | undefined;
    c.client.on('data', (b: Buffer) => {
      got += b.length;
      if (got >= size && t1 === undefined) t1 = performance.now();
    });
    const w0 = performance.now();
    await waitFor([c.client], () => got >= size || c.client.closed, timeoutFor('service', size), 'reference download');
    rec.wallMs = performance.now() - w0;
    if (got !== size || t1 === undefined || t0 === undefined) throw new Error(`reference client got ${got} of ${size} bytes${c.client.closed ? ` (closed: ${c.client.closed.output})` : ''}`);
    rec.phaseMs = t1 - t0;
    rec.mbps = size / 1e6 / (rec.phaseMs / 1000);
    await waitFor([c.client], () => c.client.closed, 5000, 'channel_closed').catch(() => undefined);
    rec.sim = summarizeSim(sim);
    rec.ok = rec.sim.totalViolations === 0;
    if (!rec.ok) rec.failure = `simulator violations: ${JSON.stringify(rec.sim.violations)}`;
  } catch (e) {
    rec.failure = e instanceof Error ? e.message : String(e);
  } finally {
    const c = process.cpuUsage(cpu0);
    rec.simCpuS = (c.user + c.system) / 1e6;
    client?.close();
    destroyClient(sim);
    await Promise.race([sim.close(), sleep(5000)]);
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => src.close(() => r()));
  }
  allRuns.push(rec);
  log(`service #${iter} download reference (paced agent -> ideal consumer): ${rec.ok ? `${fmtNum(rec.mbps, 3)} MB/s` : `FAILED: ${rec.failure}`}`);
  return rec;
}

// ---- memory: the stalled consumer ----

interface StallRecord {
  iter: number;
  ok: boolean;
  failure?: string;
  sizeBytes: number;
  stallMs: number;
  baselineRssMiB?: number;
  maxRssDuringStallMiB?: number;
  growthMiB?: number;
  peakRssMiB?: number;
  /** Bytes ssh wrote to its stdout while the reader was stalled (the pipe and stream buffers). */
  bytesDuringStall?: number;
  /** What the agent took from sshd while the reader was stalled (bounded by SSH's channel window). */
  agentBytesFromTargetDuringStall?: number;
  samples: { t: number; rssKiB: number; phase: string }[];
  proxy?: ProxyFigures;
  sim?: SimSummary;
}

const stallRuns: StallRecord[] = [];

async function stallRun(iter: number): Promise<StallRecord> {
  const size = PLAN.stallSize;
  const rec: StallRecord = { iter, ok: false, sizeBytes: size, stallMs: PLAN.stallMs, samples: [] };
  const timers: NodeJS.Timeout[] = [];
  const w = await withProxy('unlimited', async (env, ctx) => {
    let pid: number | undefined;
    let phase = 'flow';
    let baseline: number | undefined;
    let stallStartBytes = 0;
    let agentAtStart = 0;
    const t0 = performance.now();
    const agentFromTarget = () => ctx.sim.sessions().reduce((a, s) => a + s.bytesFromTarget, 0);
    const sample = () => {
      if (pid === undefined) {
        const t = readIfExists(`${ctx.ruFile}.pid`);
        if (t) pid = Number(t.trim().split(/\s+/)[0]);
      }
      if (pid === undefined) return undefined;
      const m = procMem(pid);
      if (m && rec.samples.length < 10_000) rec.samples.push({ t: Math.round(performance.now() - t0), rssKiB: m.rssKiB, phase });
      return m;
    };
    const sampler = setInterval(sample, 100);
    timers.push(sampler);
    const r = await exec(sshBin, ['-F', configs.unlimited, TARGET, `head -c ${size} /dev/zero`], {
      env,
      countStdout: true,
      timeoutMs: PLAN.stallFlowMs + PLAN.stallMs + timeoutFor('unlimited', size),
      onSpawn: (child, res) => {
        child.stdout!.once('data', () => {
          timers.push(
            setTimeout(() => {
              // The reader stops: Node stops reading the pipe once its buffer is full, the pipe
              // fills, ssh blocks on stdout, and the back-pressure runs up to the remote side.
              const m = sample();
              baseline = m?.rssKiB;
              phase = 'stall';
              stallStartBytes = res.stdoutBytes;
              agentAtStart = agentFromTarget();
              child.stdout!.pause();
              timers.push(
                setTimeout(() => {
                  sample();
                  rec.bytesDuringStall = res.stdoutBytes - stallStartBytes;
                  rec.agentBytesFromTargetDuringStall = agentFromTarget() - agentAtStart;
                  phase = 'drain';
                  child.stdout!.resume();
                }, PLAN.stallMs),
              );
            }, PLAN.stallFlowMs),
          );
        });
      },
    });
    for (const t of timers) clearTimeout(t);
    clearInterval(sampler);
    const bad = checkExit(r);
    if (bad) return bad;
    if (r.stdoutBytes !== size) return `got ${r.stdoutBytes} bytes, expected ${size}`;
    if (baseline === undefined) return 'the stall never started (no RSS sample before it)';
    if (phase !== 'drain') return 'the transfer ended before the stall did';
    const during = rec.samples.filter((s) => s.phase === 'stall').map((s) => s.rssKiB);
    rec.baselineRssMiB = baseline / 1024;
    rec.maxRssDuringStallMiB = Math.max(baseline, ...during) / 1024;
    rec.growthMiB = rec.maxRssDuringStallMiB - rec.baselineRssMiB;
    return undefined;
  });
  for (const t of timers) clearTimeout(t);
  rec.sim = w.sim;
  if (w.usage) {
    rec.proxy = usageFigures(w.usage);
    rec.peakRssMiB = rec.proxy.maxRssMiB;
  }
  const failure = [w.value, ...w.problems].filter(Boolean).join('; ');
  rec.ok = failure === '';
  if (!rec.ok) rec.failure = failure;
  stallRuns.push(rec);
  log(`memory #${iter} stalled consumer: ${rec.ok ? `baseline ${fmtNum(rec.baselineRssMiB, 1)} MiB, max during ${PLAN.stallMs / 1000} s stall ${fmtNum(rec.maxRssDuringStallMiB, 1)} MiB, growth ${fmtNum(rec.growthMiB, 1)} MiB, peak ${fmtNum(rec.peakRssMiB, 1)} MiB; ssh wrote ${rec.bytesDuringStall} B and the agent read ${rec.agentBytesFromTargetDuringStall} B from sshd during the stall` : `FAILED: ${rec.failure}`}`);
  return rec;
}

async function sectionMemory(): Promise<void> {
  log(`memory: stalled consumer, ssh host 'head -c ${PLAN.stallSize / MiB}M /dev/zero', reader drains ${PLAN.stallFlowMs / 1000} s, stops ${PLAN.stallMs / 1000} s, drains (unlimited profile)`);
  for (let i = 1; i <= PLAN.stallRuns && !overCap(); i++) await stallRun(i);
}

// ---- summaries ----

interface OpSummary {
  op: string;
  path: string;
  runs: number;
  failed: number;
  failures: string[];
  mbps: Stat | null;
  wallS: Stat | null;
  wallMs: Stat | null;
  cpuS: Stat | null;
  cpuPer100MiB: Stat | null;
  maxRssMiB: Stat | null;
  retransmissionsSeen: number;
  agentRetransmissions: number;
  pausesSent: number;
  violations: number;
  simCpuPct: Stat | null;
}

function summarize(section: Section, op: string, path: string): OpSummary {
  const rs = allRuns.filter((r) => r.section === section && r.op === op && r.path === path);
  const ok = rs.filter((r) => r.ok);
  return {
    op,
    path,
    runs: rs.length,
    failed: rs.length - ok.length,
    failures: rs.filter((r) => !r.ok).map((r) => `#${r.iter}: ${r.failure}`),
    mbps: stat(ok.map((r) => r.mbps ?? NaN)),
    wallS: stat(ok.map((r) => r.wallMs / 1000)),
    wallMs: stat(ok.map((r) => r.wallMs)),
    cpuS: stat(ok.map((r) => r.proxy?.cpuS ?? NaN)),
    cpuPer100MiB: stat(ok.map((r) => r.cpuPer100MiB ?? NaN)),
    maxRssMiB: stat(ok.map((r) => r.proxy?.maxRssMiB ?? NaN)),
    retransmissionsSeen: rs.reduce((a, r) => a + (r.sim?.retransmissionsSeen ?? 0), 0),
    agentRetransmissions: rs.reduce((a, r) => a + (r.sim?.agentRetransmissions ?? 0), 0),
    pausesSent: rs.reduce((a, r) => a + (r.sim?.pausesSent ?? 0), 0),
    violations: rs.reduce((a, r) => a + (r.sim?.totalViolations ?? 0), 0),
    simCpuPct: stat(ok.filter((r) => r.simCpuS !== undefined).map((r) => (100 * r.simCpuS!) / r.wallMs * 1000)),
  };
}

type Verdict = 'PASS' | 'MISS' | 'FAILED' | 'n/a';

interface TargetRow {
  name: string;
  measured: string;
  value: number | null;
  goal: string;
  result: Verdict;
  detail?: string;
}

const targetRows: TargetRow[] = [];

function judge(name: string, value: number | null, ok: (v: number) => boolean, fmt: (v: number) => string, goal: string, failedRuns: number, detail?: string): void {
  let result: Verdict;
  let measured: string;
  if (failedRuns > 0) {
    result = 'FAILED';
    measured = `FAILED (${failedRuns} run${failedRuns > 1 ? 's' : ''})`;
  } else if (value === null || !Number.isFinite(value)) {
    result = 'n/a';
    measured = 'n/a';
  } else {
    result = ok(value) ? 'PASS' : 'MISS';
    measured = fmt(value);
  }
  targetRows.push({ name, measured, value, goal, result, ...(detail ? { detail } : {}) });
}

function statusOf(s: OpSummary): string {
  return s.failed > 0 ? `FAILED ${s.failed}/${s.runs}` : s.runs === 0 ? 'skipped' : 'ok';
}

function transferTable(section: 'unlimited' | 'service'): Table {
  const size = section === 'unlimited' ? PLAN.unlimitedSize : PLAN.serviceSize;
  const rows: string[][] = [];
  const tableNotes: string[] = [];
  for (const op of ['upload', 'download', 'scp-up', 'scp-down'] as const) {
    const p = summarize(section, op, 'proxy');
    const d = summarize(section, op, 'direct');
    const ratio = p.mbps && d.mbps ? p.mbps.median / d.mbps.median : null;
    const frac =
      section === 'service' && p.mbps
        ? op === 'upload' || op === 'scp-up'
          ? `${((100 * p.mbps.median) / BUDGET_MBPS).toFixed(1)} % of budget`
          : refMedian()
            ? `${((100 * p.mbps.median) / refMedian()!).toFixed(1)} % of ref`
            : ''
        : '';
    rows.push([
      OP_LABEL[op],
      'ssm-proxy',
      p.failed > 0 ? `FAILED ${p.failed}/${p.runs}` : fmtStat(p.mbps, 2),
      ratio === null ? 'n/a' : `${ratio.toFixed(3)}×`,
      ...(section === 'service' ? [frac] : []),
      fmtStat(p.wallS, 2),
      fmtStat(p.cpuPer100MiB, 2),
      fmtStat(p.maxRssMiB, 1),
      `${p.retransmissionsSeen}/${p.agentRetransmissions}`,
      String(p.pausesSent),
      String(p.violations),
      fmtStat(p.simCpuPct, 0),
      statusOf(p),
    ]);
    rows.push([
      '',
      'direct',
      d.failed > 0 ? `FAILED ${d.failed}/${d.runs}` : fmtStat(d.mbps, 1),
      '',
      ...(section === 'service' ? [''] : []),
      fmtStat(d.wallS, 2),
      '',
      '',
      '',
      '',
      '',
      '',
      statusOf(d),
    ]);
    for (const f of [...p.failures, ...d.failures]) tableNotes.push(`${op} FAILED run ${f}`);
  }
  if (section === 'service') {
    const r = summarize('service', 'download', 'reference');
    rows.push(['reference: paced agent -> ideal consumer', 'in-process', r.failed > 0 ? `FAILED ${r.failed}/${r.runs}` : fmtStat(r.mbps, 3), '', '', '', '', '', `${r.retransmissionsSeen}/${r.agentRetransmissions}`, String(r.pausesSent), String(r.violations), fmtStat(r.simCpuPct, 0), statusOf(r)]);
    rows.push(['frame budget: 1000 frames/s × 1 KiB', '', BUDGET_MBPS.toFixed(3), '', '', '', '', '', '', '', '', '', '']);
    for (const f of r.failures) tableNotes.push(`reference FAILED run ${f}`);
  }
  if (section === 'unlimited') {
    const b = summarize('unlimited', 'ssh-true', 'proxy');
    rows.push(['proxy CPU of `ssh host true` (baseline)', 'ssm-proxy', '', '', fmtStat(b.wallS, 2), `${fmtStat(b.cpuS, 3)} s/conn`, fmtStat(b.maxRssMiB, 1), `${b.retransmissionsSeen}/${b.agentRetransmissions}`, String(b.pausesSent), String(b.violations), '', statusOf(b)]);
  }
  const head = ['operation', 'path', 'MB/s median [min–max]', 'vs direct', ...(section === 'service' ? ['fraction'] : []), 'wall s', 'proxy CPU s/100 MiB', 'proxy peak RSS MiB', 'retrans client/agent', 'pauses', 'violations', 'sim CPU %', 'status'];
  const sizeNote =
    section === 'service'
      ? `${size / MiB} MiB per transfer (not 64 MiB: at ~1 MB/s that takes ~70 s a run), ${PLAN.serviceRuns} interleaved runs each; simulator profile "service" (agent paced ~1 KiB/ms, 1000 frames/s budget, burst 100), proxy defaults (--frame-rate 1000, 1 KiB payloads)`
      : `${size / MiB} MiB per transfer, ${PLAN.unlimitedRuns} interleaved runs each, after an unrecorded upload and download through the proxy that warm up the simulator (it runs in the bench process); simulator profile "unlimited" (no pacing, no budget), proxy --frame-rate 0 (1 KiB payloads)`;
  return {
    title: `${section} profile: ${size / MiB} MiB transfers`,
    head,
    rows,
    notes: [
      sizeNote,
      'MB/s = 10^6 bytes/s of payload over the data phase: upload, from the bench starting to feed ssh\'s stdin (once the remote command is running) to the remote cat seeing EOF; download, from the remote command\'s start to the last byte on ssh\'s stdout; scp, the whole command including connection set-up',
      ...(section === 'service' ? ['fraction: upload ÷ the 1.024 MB/s frame budget; download ÷ the reference (paced agent into an ideal in-process consumer) measured in the same run'] : []),
      'sim CPU % = CPU of the bench process (simulator + byte counting) ÷ the run wall time; near 100 % means the simulator, not ssm-proxy, set the pace',
      ...tableNotes,
    ],
  };
}

function refMedian(): number | null {
  return summarize('service', 'download', 'reference').mbps?.median ?? null;
}

function connectTable(): Table {
  const p = summarize('connect', 'ssh-true', 'proxy');
  const d = summarize('connect', 'ssh-true', 'direct');
  const warm = startupSummary(startupRuns);
  const cold = startupSummary(coldStartupRuns);
  const viaSdk = startupSummary(sdkStartupRuns);
  const far = startupSummary(longPathRuns);
  const secure = startupSummary(tlsRuns);
  const overhead = p.wallMs && d.wallMs ? p.wallMs.median - d.wallMs.median : null;
  const loopbackFirst = warm.firstByte?.median;
  const pairs = allRuns.filter((r) => r.section === 'connect' && r.path === 'proxy' && r.ok).flatMap((r) => {
    const dd = allRuns.find((x) => x.section === 'connect' && x.path === 'direct' && x.iter === r.iter && x.ok);
    return dd ? [r.wallMs - dd.wallMs] : [];
  });
  const rows: string[][] = [
    ['ssh host true via ssm-proxy + simulator', p.failed > 0 ? `FAILED ${p.failed}/${p.runs}` : fmtStat(p.wallMs, 0, 'ms'), '', ''],
    ['ssh host true, direct', fmtStat(d.wallMs, 0, 'ms'), '', ''],
    ['overhead: median(proxy) − median(direct)', overhead === null ? 'n/a' : `+${overhead.toFixed(0)} ms (×${(p.wallMs!.median / d.wallMs!.median).toFixed(2)}); per-pair ${fmtStat(stat(pairs), 0, 'ms')}`, `≤ +${TARGETS.connectOverheadMs} ms`, verdictFor('ssh host true overhead')],
    ['ssm-proxy start-up: spawn → StartSession received', warm.failed > 0 ? `FAILED ${warm.failed}/${startupRuns.length}` : fmtStat(warm.startSession, 0, 'ms'), `< ${TARGETS.startupMs} ms`, verdictFor('ssm-proxy start-up')],
    ['spawn → first stdout byte (SSH banner)', fmtStat(warm.firstByte, 0, 'ms'), '', ''],
    ['the same two without code cache (first connection after install)', cold.failed > 0 ? `FAILED ${cold.failed}/${coldStartupRuns.length}` : `${fmtStat(cold.startSession, 0, 'ms')}; ${fmtStat(cold.firstByte, 0, 'ms')}`, '', ''],
    ['the same two through the AWS SDK (SSM_PROXY_USE_SDK=1; how profiles, SSO and roles go)', viaSdk.failed > 0 ? `FAILED ${viaSdk.failed}/${sdkStartupRuns.length}` : `${fmtStat(viaSdk.startSession, 0, 'ms')}; ${fmtStat(viaSdk.firstByte, 0, 'ms')}`, '', ''],
    [
      `spawn → first stdout byte over a long path (API answered ${LONG_PATH.apiMs} ms late; each connection's set-up, API and websocket, ${LONG_PATH.connectMs} ms)`,
      far.failed > 0
        ? `FAILED ${far.failed}/${longPathRuns.length}`
        : `${fmtStat(far.firstByte, 0, 'ms')}${loopbackFirst !== undefined ? `; loopback's median + ${LONG_PATH.apiMs} ms = ${(loopbackFirst + LONG_PATH.apiMs).toFixed(0)} ms (all set-up overlapped), + ${LONG_PATH.apiMs + 2 * LONG_PATH.connectMs} ms = ${(loopbackFirst + LONG_PATH.apiMs + 2 * LONG_PATH.connectMs).toFixed(0)} ms (none)` : ''}`,
      '',
      '',
    ],
    [
      'the same two with TLS to the API and the data channel, as the real service (loopback)',
      secure.failed > 0
        ? `FAILED ${secure.failed}/${tlsRuns.length}`
        : `${fmtStat(secure.startSession, 0, 'ms')}; ${fmtStat(secure.firstByte, 0, 'ms')}${warm.startSession && warm.firstByte && secure.startSession && secure.firstByte ? ` (+${(secure.startSession.median - warm.startSession.median).toFixed(0)} / +${(secure.firstByte.median - warm.firstByte.median).toFixed(0)} ms over plain)` : ''}`,
      '',
      '',
    ],
    ['ssm-proxy CPU per ssh host true', fmtStat(p.cpuS, 3, 's'), '', ''],
    ['ssm-proxy peak RSS (ssh host true)', fmtStat(p.maxRssMiB, 1, 'MiB'), '', ''],
    ['violations / pauses / retransmissions (client/agent)', `${p.violations + everyStartupRun().reduce((a, r) => a + (r.sim?.totalViolations ?? 0), 0)} / ${p.pausesSent} / ${p.retransmissionsSeen}/${p.agentRetransmissions}`, '0 violations', ''],
  ];
  const tableNotes = [
    `${p.runs} interleaved runs (proxy, direct, start-up); simulator profile "service", proxy defaults; each proxied run has its own fresh simulator`,
    'start-up: ssm-proxy spawned by the bench (not ssh): Date.now() just before spawn vs the simulator\'s arrival time of the StartSession request (FakeSsmApi.calls[].at, Date.now, same machine); first byte: performance.now() at spawn and at the first stdout chunk',
    'code cache: the warm-up connection writes it (src/loader); every measured run uses it but the "without code cache" ones (SSM_PROXY_CODE_CACHE=off)',
    ...p.failures.map((f) => `proxy FAILED run ${f}`),
    ...d.failures.map((f) => `direct FAILED run ${f}`),
    ...startupRuns.filter((r) => !r.ok).map((r) => `start-up FAILED run #${r.iter}: ${r.failure}`),
    ...coldStartupRuns.filter((r) => !r.ok).map((r) => `start-up without code cache FAILED run #${r.iter}: ${r.failure}`),
    ...sdkStartupRuns.filter((r) => !r.ok).map((r) => `start-up through the AWS SDK FAILED run #${r.iter}: ${r.failure}`),
    ...longPathRuns.filter((r) => !r.ok).map((r) => `start-up over the long path FAILED run #${r.iter}: ${r.failure}`),
    ...tlsRuns.filter((r) => !r.ok).map((r) => `start-up over TLS FAILED run #${r.iter}: ${r.failure}`),
    'long path: one simulator with latency (test/sim: latency.apiMs, latency.connectMs) for all its runs and an unrecorded warm-up, so the proxy knows where the data channel is: it opens the connection to the API before it loads the AWS SDK, and the one to the data channel while StartSession is answered (src/transport/preconnect.ts); this simulator serves plain http:// and ws://, its set-up delay standing in for TCP and TLS',
    'TLS: one simulator serving https:// and wss:// with a certificate made for the run (its CA bundle given in AWS_CA_BUNDLE), with a warm-up run like the long path; the targets are measured without TLS, as the issue asks, and this row shows what TLS adds on this machine',
  ];
  return { title: 'connect', head: ['metric', 'median [min–max]', 'target', 'result'], rows, notes: tableNotes };
}

function memoryTable(): Table {
  const ok = stallRuns.filter((r) => r.ok);
  const failed = stallRuns.length - ok.length;
  const g = stat(ok.map((r) => r.growthMiB ?? NaN));
  const stallPeaks = ok.map((r) => r.peakRssMiB ?? NaN);
  const peaks = [...allRuns.filter((r) => r.path === 'proxy' && r.ok && r.proxy && r.sizeBytes > 0).map((r) => r.proxy!.maxRssMiB), ...stallPeaks.filter((x) => Number.isFinite(x))];
  const rows: string[][] = [
    ['peak RSS (VmHWM) over all proxied transfers and stall runs', peaks.length ? `${Math.max(...peaks).toFixed(1)} MiB max; median ${fmtStat(stat(peaks), 1)}` : 'n/a', `< ${TARGETS.peakRssMiB} MiB`, verdictFor('peak RSS')],
  ];
  if (stallRuns.length === 0) return { title: 'memory', head: ['metric', 'value', 'target', 'result'], rows, notes: ['peak RSS: ru_maxrss of the ssm-proxy process from wait4(2) in the ProxyCommand wrapper (= its VmHWM); MiB = 2^20 bytes'] };
  rows.push(
    [`stalled consumer: RSS growth during a ${PLAN.stallMs / 1000} s stall`, failed > 0 ? `FAILED ${failed}/${stallRuns.length}` : fmtStat(g, 1, 'MiB'), `< ${TARGETS.stallGrowthMiB} MiB`, verdictFor('stalled-consumer growth')],
    ['stalled consumer: baseline RSS before the stall', fmtStat(stat(ok.map((r) => r.baselineRssMiB ?? NaN)), 1, 'MiB'), '', ''],
    ['stalled consumer: peak RSS (VmHWM) of the run', fmtStat(stat(stallPeaks), 1, 'MiB'), '', ''],
    ['stalled consumer: bytes ssh wrote / agent read from sshd during the stall', ok.map((r) => `${r.bytesDuringStall} / ${r.agentBytesFromTargetDuringStall}`).join('; ') || 'n/a', '', ''],
  );
  return {
    title: 'memory',
    head: ['metric', 'value', 'target', 'result'],
    rows,
    notes: [
      'peak RSS: ru_maxrss of the ssm-proxy process from wait4(2) in the ProxyCommand wrapper (= its VmHWM); MiB = 2^20 bytes',
      `stalled consumer: ssh host 'head -c ${PLAN.stallSize / MiB}M /dev/zero' (unlimited profile, --frame-rate 0); the bench reads ssh's stdout for ${PLAN.stallFlowMs / 1000} s, stops reading for ${PLAN.stallMs / 1000} s, then drains; VmRSS of the proxy sampled every 100 ms from /proc; growth = max during the stall − the sample taken as the stall began`,
      ...stallRuns.filter((r) => !r.ok).map((r) => `FAILED run #${r.iter}: ${r.failure}`),
    ],
  };
}

function verdictFor(name: string): string {
  const t = targetRows.find((r) => r.name.startsWith(name));
  return t ? t.result : '';
}

function computeTargets(): void {
  const ran = (s: Section) => allRuns.some((r) => r.section === s) || (s === 'memory' && stallRuns.length > 0);
  if (ran('service')) {
    const up = summarize('service', 'upload', 'proxy');
    const down = summarize('service', 'download', 'proxy');
    const ref = summarize('service', 'download', 'reference');
    judge('service upload ≥ 95 % of the frame budget', up.mbps ? up.mbps.median / BUDGET_MBPS : null, (v) => v >= TARGETS.serviceUploadFraction, (v) => `${(100 * v).toFixed(1)} % (${up.mbps!.median.toFixed(3)} MB/s)`, '≥ 95 % of 1.024 MB/s', up.failed);
    judge(
      'service download ≥ 95 % of the paced agent\'s ideal rate',
      down.mbps && ref.mbps ? down.mbps.median / ref.mbps.median : null,
      (v) => v >= TARGETS.serviceDownloadFraction,
      (v) => `${(100 * v).toFixed(1)} % (${down.mbps!.median.toFixed(3)} of ${ref.mbps!.median.toFixed(3)} MB/s)`,
      '≥ 95 % of the reference',
      down.failed + ref.failed,
    );
    const svc = allRuns.filter((r) => r.section === 'service' && r.path === 'proxy');
    judge('service pause_publication = 0', svc.reduce((a, r) => a + (r.sim?.pausesSent ?? 0), 0), (v) => v === 0, (v) => String(v), '0 over all service runs', 0);
  }
  if (ran('unlimited')) {
    for (const op of ['upload', 'download'] as const) {
      const s = summarize('unlimited', op, 'proxy');
      judge(`unlimited ${op} ≥ 30 MB/s`, s.mbps?.median ?? null, (v) => v >= TARGETS.unlimitedMBps, (v) => `${v.toFixed(1)} MB/s`, '≥ 30 MB/s', s.failed);
    }
    const base = summarize('unlimited', 'ssh-true', 'proxy').cpuS?.median ?? null;
    for (const op of ['upload', 'download'] as const) {
      const s = summarize('unlimited', op, 'proxy');
      const rs = allRuns.filter((r) => r.section === 'unlimited' && r.op === op && r.path === 'proxy' && r.ok && r.proxy);
      const marginal = base === null ? null : stat(rs.map((r) => ((r.proxy!.cpuS - base) * 100 * MiB) / r.sizeBytes));
      judge(
        `CPU per 100 MiB, ${op} (unlimited, whole process)`,
        s.cpuPer100MiB?.median ?? null,
        (v) => v < TARGETS.cpuPer100MiB,
        (v) => `${v.toFixed(2)} s (marginal, minus the ssh-true baseline: ${marginal ? marginal.median.toFixed(2) : 'n/a'} s)`,
        '< 1.5 s',
        s.failed,
      );
    }
  }
  if (ran('connect')) {
    const warm = startupSummary(startupRuns);
    judge('ssm-proxy start-up (spawn → StartSession)', warm.startSession?.median ?? null, (v) => v < TARGETS.startupMs, (v) => `${v.toFixed(0)} ms`, '< 150 ms', warm.failed);
    const p = summarize('connect', 'ssh-true', 'proxy');
    const d = summarize('connect', 'ssh-true', 'direct');
    judge('ssh host true overhead over direct ssh', p.wallMs && d.wallMs ? p.wallMs.median - d.wallMs.median : null, (v) => v <= TARGETS.connectOverheadMs, (v) => `+${v.toFixed(0)} ms`, '≤ +200 ms', p.failed + d.failed);
  }
  const peaks = [
    ...allRuns.filter((r) => r.path === 'proxy' && r.ok && r.proxy && r.sizeBytes > 0).map((r) => r.proxy!.maxRssMiB),
    ...stallRuns.filter((r) => r.ok && r.peakRssMiB !== undefined).map((r) => r.peakRssMiB!),
  ];
  if (peaks.length > 0) judge('peak RSS of ssm-proxy', Math.max(...peaks), (v) => v < TARGETS.peakRssMiB, (v) => `${v.toFixed(1)} MiB`, '< 64 MiB', 0);
  if (stallRuns.length > 0) {
    const ok = stallRuns.filter((r) => r.ok);
    judge('stalled-consumer growth', ok.length ? Math.max(...ok.map((r) => r.growthMiB ?? NaN)) : null, (v) => v < TARGETS.stallGrowthMiB, (v) => `${v.toFixed(1)} MiB (max of ${ok.length})`, '< 16 MiB', stallRuns.length - ok.length);
  }
  const viol = allRuns.reduce((a, r) => a + (r.sim?.totalViolations ?? 0), 0) + everyStartupRun().reduce((a, r) => a + (r.sim?.totalViolations ?? 0), 0) + stallRuns.reduce((a, r) => a + (r.sim?.totalViolations ?? 0), 0);
  const simRuns = allRuns.filter((r) => r.sim).length + everyStartupRun().length + stallRuns.length;
  const violRuns = [...allRuns, ...everyStartupRun(), ...stallRuns].filter((r) => (r.sim?.totalViolations ?? 0) > 0).length;
  if (simRuns > 0) judge('simulator violations = 0', viol, (v) => v === 0, (v) => `${v} over ${simRuns} runs`, '0', violRuns);
}

// ---- setup and main ----

function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) return m[1].trim();
  } catch {
    /* fall through */
  }
  return cpus()[0]?.model ?? 'unknown';
}

function gitInfo(): { commit: string | null; dirty: boolean | null } {
  const r = spawnSync('git', ['rev-parse', 'HEAD'], { cwd: REPO, encoding: 'utf8' });
  if (r.status !== 0) return { commit: null, dirty: null };
  const s = spawnSync('git', ['status', '--porcelain', '--untracked-files=no', '--', 'src'], { cwd: REPO, encoding: 'utf8' });
  return { commit: r.stdout.trim(), dirty: s.status === 0 ? s.stdout.trim() !== '' : null };
}

/** Copies bin/ and dist/ to a private folder so that a concurrent `npm run build` cannot pull the bundle away mid-run. */
function snapshotProxy(): string {
  const distDir = join(REPO, 'dist');
  if (!existsSync(join(distDir, 'ssm-proxy.cjs'))) throw new Error('dist/ssm-proxy.cjs is missing: run `npm run bench` (it builds first) or `npm run build`');
  snapDir = join(tmp, 'ssm-proxy-snapshot');
  mkdirSync(join(snapDir, 'bin'), { recursive: true });
  cpSync(join(REPO, 'bin', 'ssm-proxy'), join(snapDir, 'bin', 'ssm-proxy'));
  cpSync(distDir, join(snapDir, 'dist'), { recursive: true });
  // Optional requires in the bundle (ws's bufferutil etc.) resolve as they would in the repo.
  symlinkSync(join(REPO, 'node_modules'), join(snapDir, 'node_modules'));
  snapBin = join(snapDir, 'bin', 'ssm-proxy');
  const h = createHash('sha256');
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else h.update(e.name).update(readFileSync(p));
    }
  };
  walk(join(snapDir, 'dist'));
  return h.digest('hex').slice(0, 16);
}

function makeDataFile(path: string, size: number): void {
  const fd = openSync(path, 'w');
  try {
    for (let off = 0; off < size; off += MiB) writeSync(fd, randomBytes(Math.min(MiB, size - off)));
  } finally {
    closeSync(fd);
  }
}

let cleaned = false;
async function cleanup(): Promise<void> {
  if (cleaned) return;
  cleaned = true;
  killAll();
  if (sshd) await Promise.race([sshd.stop(), sleep(5000)]);
  if (tmp) rmSync(tmp, { recursive: true, force: true });
}

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(sig, () => {
    process.stderr.write(`bench: ${sig}, cleaning up\n`);
    void cleanup().finally(() => process.exit(130));
  });
}

// How fast the machine is right now, independent of ssm-proxy: these shared machines
// drift by half or more between runs minutes apart, and start-up, connect and CPU
// move with them. A fresh node with a minimal environment: its start-up (median of
// 5), and the CPU of a fixed workload like the proxy's (1 KiB SHA-256s, small buffers
// and objects).
const CALIBRATION_WORK = `const c = require('node:crypto'); const b = Buffer.alloc(1024, 1); const t = process.cpuUsage();
let n = 0; for (let i = 0; i < 150000; i++) { n += c.hash('sha256', b, 'binary').length; n += Buffer.from(b.subarray(i & 511, 600)).length; n += JSON.stringify({ i, s: 'x' }).length; }
const u = process.cpuUsage(t); process.stdout.write(String(Math.round((u.user + u.system) / 1000)) + ' ' + n);`;

interface Calibration {
  nodeStartMs: number;
  workCpuMs: number;
}

function calibrate(): Calibration {
  const env = { PATH: process.env.PATH };
  const starts: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    spawnSync(process.execPath, ['-e', '0'], { env });
    starts.push(performance.now() - t);
  }
  const r = spawnSync(process.execPath, ['-e', CALIBRATION_WORK], { env, encoding: 'utf8' });
  return { nodeStartMs: stat(starts)!.median, workCpuMs: Number(r.stdout.split(' ')[0]) };
}

function fmtCalibration(c: Calibration): string {
  return `node start ${c.nodeStartMs.toFixed(0)} ms, fixed workload ${Number.isFinite(c.workCpuMs) ? c.workCpuMs.toFixed(0) : 'n/a'} ms CPU`;
}

async function main(): Promise<number> {
  tmp = mkdtempSync(join(tmpdir(), 'ssm-proxy-bench-'));
  const git = gitInfo();
  const meta: Record<string, unknown> = {
    date: new Date().toISOString(),
    mode: QUICK ? 'quick' : PARTIAL ? 'partial' : 'full',
    sections: [...cli.only],
    node: process.version,
    cpuModel: cpuModel(),
    nproc: cpus().length,
    loadavgStart: loadavg(),
    calibrationStart: calibrate(),
    commit: git.commit,
    srcDirty: git.dirty,
    plan: PLAN,
  };
  const distHash = snapshotProxy();
  meta.distSha256 = distHash;
  const w = buildWrapper(tmp);
  if ('path' in w) wrapperPath = w.path;
  else notes.push(w.error);
  meta.cpuMethod = wrapperPath ? 'ProxyCommand wrapper (C, fork+exec, signals forwarded) reaping ssm-proxy with wait4(2): ru_utime+ru_stime, ru_maxrss' : 'not measured';
  sshd = await startSshd();
  sshBin = sshd.bins.ssh;
  scpBin = sshd.bins.scp;
  meta.openssh = spawnSync(sshBin, ['-V'], { encoding: 'utf8' }).stderr.trim();
  configs.service = writeSshConfig(sshd, 'service', []);
  configs.unlimited = writeSshConfig(sshd, 'unlimited', ['--frame-rate', '0']);
  const files: Record<string, string> = {};
  if (cli.only.has('unlimited')) makeDataFile((files.unlimited = join(sshd.dir, 'data-unlimited.bin')), PLAN.unlimitedSize);
  if (cli.only.has('service')) makeDataFile((files.service = join(sshd.dir, 'data-service.bin')), PLAN.serviceSize);
  log(`bench ${QUICK ? '--quick' : 'full'}: sections ${[...cli.only].join(', ')}; node ${process.version}, ${meta.cpuModel} ×${meta.nproc}, ${meta.openssh}; proxy snapshot ${distHash} at ${snapDir}`);

  // The machine's speed drifts within a run: each section's figures are read against the
  // fixed workload timed as it starts.
  const bySection: Record<string, Calibration> = {};
  meta.calibrationBySection = bySection;
  if (cli.only.has('connect')) {
    bySection.connect = calibrate();
    await sectionConnect();
  }
  if (cli.only.has('unlimited')) {
    bySection.unlimited = calibrate();
    await sectionTransfers('unlimited', files);
  }
  if (cli.only.has('service')) {
    bySection.service = calibrate();
    await sectionTransfers('service', files);
  }
  if (cli.only.has('memory')) {
    bySection.memory = calibrate();
    if (wrapperPath) await sectionMemory();
    else notes.push('memory section skipped: it needs the wrapper to find the proxy process');
  }
  if (overCap()) notes.push(`hard cap of ${PLAN.hardCapMs / 60_000} min reached: later runs were skipped`);

  computeTargets();
  meta.loadavgEnd = loadavg();
  meta.calibrationEnd = calibrate();
  meta.durationS = Math.round((performance.now() - benchStart) / 1000);

  const tables: Table[] = [];
  if (cli.only.has('connect')) tables.push(connectTable());
  if (cli.only.has('unlimited')) tables.push(transferTable('unlimited'));
  if (cli.only.has('service')) tables.push(transferTable('service'));
  if (cli.only.has('memory') || allRuns.some((r) => r.proxy && r.sizeBytes > 0)) tables.push(memoryTable());
  tables.push({
    title: 'targets (from the issue)',
    head: ['target', 'measured (median unless stated)', 'goal', 'result'],
    rows: targetRows.map((t) => [t.name, t.measured, t.goal, t.result]),
    notes: ['a target whose runs include a FAILED run (violations, errors, wrong byte count, timeout) is FAILED, not a number'],
  });

  const header = [
    `ssm-proxy bench (${meta.mode}) ${meta.date}`,
    `node ${meta.node}, ${meta.cpuModel}, nproc ${meta.nproc}, load ${(meta.loadavgStart as number[]).map((x) => x.toFixed(2)).join(' ')} → ${(meta.loadavgEnd as number[]).map((x) => x.toFixed(2)).join(' ')}`,
    `commit ${git.commit ?? 'n/a'}${git.dirty ? ' (src/ modified)' : ''}, bundle ${distHash}, ${meta.openssh}, ${meta.durationS} s`,
    `machine speed at the start: ${fmtCalibration(meta.calibrationStart as Calibration)}; at the end: ${fmtCalibration(meta.calibrationEnd as Calibration)} (lower is faster; compare runs by these)`,
    `fixed workload as each section started: ${Object.entries(bySection)
      .map(([k, c]) => `${k} ${Number.isFinite(c.workCpuMs) ? c.workCpuMs.toFixed(0) : 'n/a'} ms`)
      .join(', ')}`,
    'loopback only; shared, noisy machine: read ratios, not absolute times',
    ...notes,
  ];
  const text = [...header, '', ...tables.map((t) => tableText(t) + '\n')].join('\n');
  process.stdout.write(`\n${text}\n`);

  const md = [`## ssm-proxy bench (${meta.mode})`, '', ...header.slice(1).map((l) => `- ${l}`), `- ${meta.date}`, '', ...tables.map((t) => tableMarkdown(t) + '\n')].join('\n');
  // Only a full run replaces the benchmark of record.
  const base = QUICK ? 'results-quick' : PARTIAL ? 'results-partial' : 'results';
  const results = {
    meta: { ...meta, notes },
    targets: targetRows,
    connect: { runs: allRuns.filter((r) => r.section === 'connect'), startup: startupRuns, startupWithoutCodeCache: coldStartupRuns, startupViaSdk: sdkStartupRuns, startupLongPath: { latency: LONG_PATH, runs: longPathRuns }, startupTls: { runs: tlsRuns }, summary: { proxy: summarize('connect', 'ssh-true', 'proxy'), direct: summarize('connect', 'ssh-true', 'direct') } },
    unlimited: {
      sizeBytes: PLAN.unlimitedSize,
      runs: allRuns.filter((r) => r.section === 'unlimited'),
      summary: Object.fromEntries(['upload', 'download', 'scp-up', 'scp-down', 'ssh-true'].flatMap((op) => ['proxy', 'direct'].map((p) => [`${op}/${p}`, summarize('unlimited', op, p)]))),
    },
    service: {
      sizeBytes: PLAN.serviceSize,
      budgetMBps: BUDGET_MBPS,
      runs: allRuns.filter((r) => r.section === 'service'),
      summary: Object.fromEntries([...['upload', 'download', 'scp-up', 'scp-down'].flatMap((op) => ['proxy', 'direct'].map((p) => [`${op}/${p}`, summarize('service', op, p)])), ['download/reference', summarize('service', 'download', 'reference')]]),
    },
    memory: { stall: stallRuns },
  };
  writeFileSync(join(REPO, 'bench', `${base}.json`), JSON.stringify(results, null, 2) + '\n');
  writeFileSync(join(REPO, 'bench', `${base}.md`), md + '\n');
  log(`wrote bench/${base}.json and bench/${base}.md`);
  const failedRuns = allRuns.filter((r) => !r.ok).length + everyStartupRun().filter((r) => !r.ok).length + stallRuns.filter((r) => !r.ok).length;
  if (failedRuns > 0) log(`${failedRuns} run(s) FAILED (see the notes under the tables); exit status 1`);
  return failedRuns > 0 || targetRows.some((t) => t.result === 'FAILED') ? 1 : 0;
}

let code = 1;
try {
  code = await main();
} catch (e) {
  process.stderr.write(`bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  code = 1;
} finally {
  await cleanup();
}
process.exit(code);
