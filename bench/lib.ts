// Small pieces for bench/run.ts: statistics, child processes with bounded waits and cleanup,
// /proc sampling, and a table printed both as aligned text and as markdown.
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { closeSync, createReadStream, existsSync, openSync, readFileSync } from 'node:fs';

export const MiB = 1024 * 1024;

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---- statistics ----

export interface Stat {
  n: number;
  median: number;
  min: number;
  max: number;
}

export function stat(xs: number[]): Stat | null {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = Math.floor(v.length / 2);
  const median = v.length % 2 === 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
  return { n: v.length, median, min: v[0], max: v[v.length - 1] };
}

export function fmtNum(x: number | null | undefined, digits: number): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return 'n/a';
  return x.toFixed(digits);
}

/** "12.3 [11.9–13.0]" */
export function fmtStat(s: Stat | null, digits: number, unit = ''): string {
  if (!s) return 'n/a';
  const u = unit ? ` ${unit}` : '';
  if (s.n === 1) return `${s.median.toFixed(digits)}${u}`;
  return `${s.median.toFixed(digits)}${u} [${s.min.toFixed(digits)}–${s.max.toFixed(digits)}]`;
}

// ---- child processes ----

const live = new Set<ChildProcess>();
/** Proxy pids learnt from the wrapper's pid files; killed on cleanup only if still ours. */
const proxyPids = new Map<number, string>();

export function trackProxyPid(pid: number, marker: string): void {
  proxyPids.set(pid, marker);
}

export function forgetProxyPid(pid: number): void {
  proxyPids.delete(pid);
}

/** Kills a proxy pid only when its command line still names our snapshot (pids are reused). */
export function killProxyPid(pid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  const marker = proxyPids.get(pid);
  if (!marker) return;
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    if (cmdline.includes(marker)) process.kill(pid, signal);
  } catch {
    /* gone */
  }
}

export function killAll(): void {
  for (const c of live) {
    if (c.exitCode === null && c.signalCode === null) {
      try {
        c.kill('SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
  for (const pid of [...proxyPids.keys()]) killProxyPid(pid);
}

export interface ExecResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  stdoutBytes: number;
  /** The first 64 bytes of stdout (banners). */
  stdoutHead: string;
  stderr: string;
  /** performance.now() at spawn / exit. */
  t0: number;
  t1: number;
  /** Date.now() just before spawn. */
  wall0: number;
  /** Date.now() at the first and the last stdout chunk. */
  firstByteWall?: number;
  lastByteWall?: number;
  /** performance.now() at the first stdout chunk. */
  firstByteAt?: number;
  /** Date.now() when feedStdin started writing the file into stdin. */
  feedStartWall?: number;
}

export interface ExecOptions {
  env: NodeJS.ProcessEnv;
  /** A file to use as stdin; default /dev/null. */
  stdinFile?: string;
  /**
   * Instead: stdin is a pipe, and this file is streamed into it (with back-pressure) once gate()
   * accepts the stderr seen so far; stdin is closed at the end of the file.
   */
  feedStdin?: { file: string; gate: (stderr: string) => boolean };
  /** Count stdout bytes (default: stdout goes to /dev/null). */
  countStdout?: boolean;
  timeoutMs: number;
  /** Called with the child right after spawn (the stalled-consumer case pauses its stdout). */
  onSpawn?: (child: ChildProcess, res: ExecResult) => void;
}

/** Runs a command to completion; kills it (SIGKILL) after timeoutMs. Never rejects. */
export function exec(cmd: string, args: string[], o: ExecOptions): Promise<ExecResult> {
  return new Promise((resolve) => {
    const stdinFd = o.feedStdin ? 'pipe' : openSync(o.stdinFile ?? '/dev/null', 'r');
    const stdoutFd = o.countStdout ? 'pipe' : openSync('/dev/null', 'w');
    const stdio: StdioOptions = [stdinFd, stdoutFd, 'pipe'];
    const res: ExecResult = { code: null, signal: null, timedOut: false, stdoutBytes: 0, stdoutHead: '', stderr: '', t0: 0, t1: 0, wall0: Date.now() };
    res.t0 = performance.now();
    let child: ChildProcess;
    try {
      child = spawn(cmd, args, { env: o.env, stdio });
    } finally {
      if (typeof stdinFd === 'number') closeSync(stdinFd);
      if (typeof stdoutFd === 'number') closeSync(stdoutFd);
    }
    live.add(child);
    const feed = o.feedStdin;
    let fed = false;
    if (feed) child.stdin!.on('error', () => {});
    child.stderr!.on('data', (d: Buffer) => {
      if (res.stderr.length < 64 * 1024) res.stderr += d.toString();
      if (feed && !fed && feed.gate(res.stderr)) {
        fed = true;
        res.feedStartWall = Date.now();
        const rs = createReadStream(feed.file, { highWaterMark: 64 * 1024 });
        rs.on('error', () => child.stdin!.destroy());
        rs.pipe(child.stdin!);
      }
    });
    if (child.stdout) {
      child.stdout.on('data', (d: Buffer) => {
        const now = Date.now();
        if (res.firstByteWall === undefined) {
          res.firstByteWall = now;
          res.firstByteAt = performance.now();
        }
        if (res.stdoutHead.length < 64) res.stdoutHead += d.subarray(0, 64).toString('latin1');
        res.lastByteWall = now;
        res.stdoutBytes += d.length;
      });
    }
    const timer = setTimeout(() => {
      res.timedOut = true;
      child.kill('SIGKILL');
    }, o.timeoutMs);
    child.on('error', (e) => {
      res.stderr += `\nspawn error: ${e.message}`;
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (feed && !fed) child.stdin!.destroy();
      live.delete(child);
      res.code = code;
      res.signal = signal;
      res.t1 = performance.now();
      resolve(res);
    });
    o.onSpawn?.(child, res);
  });
}

/** Spawns a long-running helper that cleanup kills. */
export function spawnTracked(cmd: string, args: string[], opts: Parameters<typeof spawn>[2]): ChildProcess {
  const c = spawn(cmd, args, opts ?? {});
  live.add(c);
  c.on('exit', () => live.delete(c));
  return c;
}

/** Polls until check() returns a value or the time is up (bounded count and time). */
export async function poll<T>(check: () => T | undefined, timeoutMs: number, everyMs = 20): Promise<T | undefined> {
  const until = performance.now() + timeoutMs;
  const maxIter = Math.ceil(timeoutMs / everyMs) + 2;
  for (let i = 0; i < maxIter; i++) {
    const v = check();
    if (v !== undefined) return v;
    if (performance.now() >= until) break;
    await sleep(everyMs);
  }
  return check();
}

export function readIfExists(path: string): string | undefined {
  try {
    return existsSync(path) ? readFileSync(path, 'utf8') : undefined;
  } catch {
    return undefined;
  }
}

/** VmRSS and VmHWM of a live process in KiB, or undefined once it is gone. */
export function procMem(pid: number): { rssKiB: number; hwmKiB: number } | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = /VmRSS:\s+(\d+)\s+kB/.exec(s);
    const hwm = /VmHWM:\s+(\d+)\s+kB/.exec(s);
    if (!rss || !hwm) return undefined;
    return { rssKiB: Number(rss[1]), hwmKiB: Number(hwm[1]) };
  } catch {
    return undefined;
  }
}

// ---- tables ----

export interface Table {
  title: string;
  head: string[];
  rows: string[][];
  notes?: string[];
}

export function tableText(t: Table): string {
  const widths = t.head.map((h, i) => Math.max(h.length, ...t.rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (c ?? '').padEnd(widths[i])).join('  ').trimEnd();
  const out = [t.title, line(t.head), widths.map((w) => '-'.repeat(w)).join('  '), ...t.rows.map(line)];
  for (const n of t.notes ?? []) out.push(`  ${n}`);
  return out.join('\n');
}

export function tableMarkdown(t: Table): string {
  const esc = (s: string) => (s ?? '').replace(/\|/g, '\\|');
  const out = [`### ${t.title}`, '', `| ${t.head.map(esc).join(' | ')} |`, `|${t.head.map(() => '---').join('|')}|`];
  for (const r of t.rows) out.push(`| ${t.head.map((_, i) => esc(r[i] ?? '')).join(' | ')} |`);
  if (t.notes && t.notes.length > 0) {
    out.push('');
    for (const n of t.notes) out.push(`- ${n}`);
  }
  return out.join('\n');
}
