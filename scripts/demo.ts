// The demo behind the README's first command: no AWS account needed. It starts
// the simulator (fake SSM API + Session Manager gateway + agent) and a private
// sshd, then carries real ssh sessions through ssm-proxy and prints what happened.
// Where sshd is not installed it relays a built-in TCP echo service instead.
import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { randomBytes } from 'node:crypto';
import { startSimulator } from '../test/sim/index.ts';
import { PROXY_BIN, requireOpenSsh, startSshd } from '../test/e2e/openssh.ts';

const TARGET = 'i-0123456789abcdef0';
const MiB = 1024 * 1024;
const SIZE = 2 * MiB;

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, input?: Buffer): Promise<{ code: number | null; stdout: Buffer; stderr: string; ms: number }> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const p = spawn(cmd, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    p.stdout.on('data', (d) => out.push(d));
    p.stderr.on('data', (d) => (err += d));
    p.stdin.on('error', () => {});
    p.stdin.end(input ?? Buffer.alloc(0));
    p.on('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr: err, ms: performance.now() - t0 }));
  });
}

const mbps = (bytes: number, ms: number) => `${(bytes / MiB / (ms / 1000)).toFixed(2)} MiB/s`;

/** Sends data through ssm-proxy to an echo service; closes stdin only once all of it came back. */
function echoRoundTrip(env: NodeJS.ProcessEnv, port: number, data: Buffer): Promise<{ ok: boolean; code: number | null; ms: number; connectMs: number }> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    let connectMs = 0;
    const p = spawn(process.execPath, [PROXY_BIN, TARGET, String(port)], { env, stdio: ['pipe', 'pipe', 'inherit'] });
    const out: Buffer[] = [];
    let got = 0;
    const timer = setTimeout(() => p.kill('SIGTERM'), 120_000);
    p.stdout.on('data', (d: Buffer) => {
      out.push(d);
      got += d.length;
      if (got >= data.length) p.stdin.end();
    });
    p.stdin.on('error', () => {});
    // The proxy reads stdin only once the session is ready; the first echoed byte marks it.
    p.stdout.once('data', () => (connectMs = performance.now() - t0));
    p.stdin.write(data);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ ok: Buffer.concat(out).equals(data), code, ms: performance.now() - t0, connectMs });
    });
  });
}

async function main(): Promise<void> {
  let haveSsh = process.env.SSM_PROXY_DEMO_NO_SSHD !== '1';
  try {
    if (haveSsh) requireOpenSsh();
  } catch (e) {
    haveSsh = false;
    console.log(`note: ${(e as Error).message}; using a built-in TCP echo service instead of sshd`);
  }
  const echo = haveSsh ? undefined : createServer((s) => s.pipe(s));
  if (echo) await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  const sshd = haveSsh ? await startSshd() : undefined;
  const port = sshd ? sshd.port : (echo!.address() as { port: number }).port;
  const sim = await startSimulator({ profile: 'service', targets: { [TARGET]: { port } } });
  const env = {
    ...process.env,
    AWS_ACCESS_KEY_ID: sim.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: sim.credentials.secretAccessKey,
    AWS_REGION: sim.region,
    AWS_ENDPOINT_URL_SSM: sim.apiUrl,
    AWS_EC2_METADATA_DISABLED: 'true',
  };
  console.log(`simulator: SSM API ${sim.apiUrl}, ${TARGET} -> 127.0.0.1:${port} (service profile: agent paced like the real one)`);
  try {
    if (sshd) {
      const cfg = sshd.writeConfig([]);
      const direct = await run('ssh', ['-F', cfg, 'direct', 'true'], env);
      const first = await run('ssh', ['-F', cfg, TARGET, 'echo ok from $(hostname)'], env);
      if (first.code !== 0) throw new Error(`ssh through ssm-proxy failed (exit ${first.code}): ${first.stderr.trim()}`);
      const session = sim.registry.list().at(-1);
      console.log(`ssh ${TARGET}: "${first.stdout.toString().trim()}"  session ${session?.sessionId}`);
      console.log(`connect + command: ${first.ms.toFixed(0)} ms through ssm-proxy, ${direct.ms.toFixed(0)} ms direct`);
      const data = randomBytes(SIZE);
      const up = await run('ssh', ['-F', cfg, TARGET, 'sha256sum'], env, data);
      const want = spawnSync('sha256sum', { input: data }).stdout.toString().split(' ')[0];
      const ok = up.stdout.toString().startsWith(want);
      console.log(`upload   ${SIZE / MiB} MiB: ${up.ms.toFixed(0)} ms, ${mbps(SIZE, up.ms)}, sha256 ${ok ? 'matches' : 'MISMATCH'}`);
      const down = await run('ssh', ['-F', cfg, TARGET, `head -c ${SIZE} /dev/urandom`], env);
      console.log(`download ${SIZE / MiB} MiB: ${down.ms.toFixed(0)} ms, ${mbps(down.stdout.length, down.ms)}, ${down.stdout.length} bytes`);
      if (!ok || down.stdout.length !== SIZE) process.exitCode = 1;
    } else {
      const r = await echoRoundTrip(env, port, randomBytes(SIZE));
      const session = sim.registry.list().at(-1);
      console.log(`session ${session?.sessionId}: connected in ${r.connectMs.toFixed(0)} ms`);
      console.log(`echo round trip of ${SIZE / MiB} MiB through ssm-proxy: ${r.ms.toFixed(0)} ms, ${mbps(SIZE, r.ms)} each way, ${r.ok ? 'byte-exact' : 'MISMATCH'} (exit ${r.code})`);
      if (!r.ok || r.code !== 0) process.exitCode = 1;
    }
    const v = sim.totalViolations();
    console.log(`sessions: ${sim.registry.list().length}, protocol violations counted by the simulator: ${v}`);
    if (v !== 0) process.exitCode = 1;
  } finally {
    await sim.close();
    await sshd?.stop();
    echo?.close();
  }
}

main().catch((e) => {
  console.error(`demo failed: ${(e as Error).message}`);
  process.exit(1);
});
