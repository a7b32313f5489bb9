// Runs OpenSSH tools against the private sshd through ssm-proxy and the simulator.
import { spawn } from 'node:child_process';
import { startSimulator, type SimOptions, type Simulator } from '../sim/index.ts';
import { pathWithNode, type SshdHandle } from './openssh.ts';

export const TARGET = 'i-0123456789abcdef0';

export interface CmdResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
  ms: number;
}

export function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, opts: { input?: Buffer | string; timeoutMs?: number; cwd?: string } = {}): Promise<CmdResult> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const p = spawn(cmd, args, { env, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    p.stdout.on('data', (d) => out.push(d));
    p.stderr.on('data', (d) => (err += d));
    p.stdin.on('error', () => {});
    p.stdin.end(opts.input ?? '');
    const timeoutMs = opts.timeoutMs ?? 120_000;
    const timer = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`${cmd} ${args.join(' ')} did not finish within ${timeoutMs} ms; stderr: ${err.trim()}`));
    }, timeoutMs);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out), stderr: err, ms: performance.now() - t0 });
    });
  });
}

export interface Rig {
  sim: Simulator;
  env: NodeJS.ProcessEnv;
  config: string;
  ssh(args: string[], opts?: { input?: Buffer | string; timeoutMs?: number }): Promise<CmdResult>;
  close(): Promise<void>;
}

/** A simulator mapping TARGET to the private sshd, and an ssh config that reaches it through ssm-proxy. */
export async function rig(sshd: SshdHandle, simOptions: SimOptions = {}, proxyArgs: string[] = []): Promise<Rig> {
  const sim = await startSimulator({ targets: { [TARGET]: { port: sshd.port } }, ...simOptions });
  const env: NodeJS.ProcessEnv = {
    PATH: pathWithNode(),
    HOME: sshd.dir,
    AWS_ACCESS_KEY_ID: sim.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: sim.credentials.secretAccessKey,
    AWS_REGION: sim.region,
    AWS_ENDPOINT_URL_SSM: sim.apiUrl,
    AWS_EC2_METADATA_DISABLED: 'true',
  };
  const config = sshd.writeConfig(proxyArgs);
  return {
    sim,
    env,
    config,
    ssh: (args, opts) => run(sshd.bins.ssh, ['-F', config, ...args], env, opts),
    close: () => sim.close(),
  };
}
