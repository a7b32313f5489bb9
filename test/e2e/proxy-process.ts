// Runs the built ssm-proxy as a child process, the way ssh runs a ProxyCommand.
import { spawn, type ChildProcess } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROXY_BIN, pathWithNode } from './openssh.ts';
import type { Simulator } from '../sim/index.ts';

export interface ProxyResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
  ms: number;
}

/** A HOME that does not exist: no ~/.aws to read, and nothing to clean up. */
export const NO_HOME = join(tmpdir(), 'ssm-proxy-test-home-that-does-not-exist');

/** One code cache for every test's proxies (the loader's default needs a home). */
const TEST_CODE_CACHE = join(tmpdir(), 'ssm-proxy-test-code-cache');

/** An environment with no AWS configuration from this machine leaking in. */
export function cleanAwsEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('AWS_') && !k.startsWith('SSM_PROXY_')) env[k] = v;
  env.HOME = NO_HOME;
  delete env.XDG_CACHE_HOME;
  env.SSM_PROXY_CODE_CACHE = TEST_CODE_CACHE;
  env.AWS_EC2_METADATA_DISABLED = 'true';
  env.PATH = pathWithNode(env.PATH);
  return { ...env, ...extra };
}

/** cleanAwsEnv with the simulator's credentials, region and SSM endpoint, plus `extra`. */
export function simAwsEnv(sim: Simulator, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return cleanAwsEnv({ AWS_ACCESS_KEY_ID: sim.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: sim.credentials.secretAccessKey, AWS_REGION: sim.region, AWS_ENDPOINT_URL_SSM: sim.apiUrl, ...extra });
}

/** Starts the launcher as ssh does (through its #! line), or with `nodeFlags` as `node FLAGS bin/ssm-proxy`. */
export function startProxy(args: string[], env: NodeJS.ProcessEnv, how: { nodeFlags?: string[] } = {}): { child: ChildProcess; done: Promise<ProxyResult> } {
  const t0 = performance.now();
  const [cmd, ...cmdArgs] = how.nodeFlags ? [process.execPath, ...how.nodeFlags, PROXY_BIN, ...args] : [PROXY_BIN, ...args];
  const child = spawn(cmd, cmdArgs, { env, stdio: ['pipe', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  let err = '';
  child.stdout!.on('data', (d) => out.push(d));
  child.stderr!.on('data', (d) => (err += d));
  child.stdin!.on('error', () => {});
  const done = new Promise<ProxyResult>((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal, stdout: Buffer.concat(out), stderr: err, ms: performance.now() - t0 }));
  });
  return { child, done };
}

/** Runs ssm-proxy to completion with a bounded wait; kills it if it hangs. */
export async function runProxy(args: string[], env: NodeJS.ProcessEnv, opts: { input?: Buffer; keepStdinOpen?: boolean; timeoutMs?: number } = {}): Promise<ProxyResult> {
  const { child, done } = startProxy(args, env);
  if (!opts.keepStdinOpen) child.stdin!.end(opts.input ?? Buffer.alloc(0));
  else if (opts.input) child.stdin!.write(opts.input);
  const timeoutMs = opts.timeoutMs ?? 20_000;
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const r = await done;
  clearTimeout(timer);
  if (r.signal === 'SIGKILL') throw new Error(`ssm-proxy hung for ${timeoutMs} ms (stderr: ${r.stderr.trim()})`);
  return r;
}
