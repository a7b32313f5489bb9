// The proxy's own CPU for a one-way transfer, without ssh: bench/cpu-probe.ts up|down MiB.
// Proxy -> simulator (unlimited profile) -> a raw TCP sink or source. For profiling
// work on the data path; `npm run bench` is the benchmark of record.
import { spawn } from 'node:child_process';
import { createServer, type Socket } from 'node:net';
import { startSimulator } from '../test/sim/index.ts';
import { pathWithNode } from '../test/e2e/openssh.ts';

const dir = process.argv[2] === 'down' ? 'down' : 'up';
const total = Number(process.argv[3] ?? 64) * 1024 * 1024;
const chunk = Buffer.alloc(64 * 1024, 0x5a);
let done!: () => void;
const finished = new Promise<void>((r) => (done = r));
const server = createServer((s: Socket) => {
  if (dir === 'up') {
    let got = 0;
    s.on('data', (d) => {
      got += d.length;
      if (got >= total) done();
    });
  } else {
    let sent = 0;
    const push = () => {
      while (sent < total) {
        sent += chunk.length;
        if (!s.write(chunk)) return void s.once('drain', push);
      }
    };
    push();
  }
});
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
const port = (server.address() as { port: number }).port;
const profile = (process.env.PROBE_PROFILE ?? 'unlimited') as 'unlimited' | 'service';
const sim = await startSimulator({ profile });
const env = { ...process.env, AWS_ACCESS_KEY_ID: sim.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: sim.credentials.secretAccessKey, AWS_REGION: sim.region, AWS_ENDPOINT_URL_SSM: sim.apiUrl, AWS_EC2_METADATA_DISABLED: 'true' };
// The launcher runs as ssh runs it (its #! line picks node's flags); with PROBE_NODE_FLAGS
// set, even empty, node is started here with those flags instead.
const bin = process.env.PROBE_BIN ?? 'bin/ssm-proxy';
// PROBE_V=-vvv for the proxy's trace log (with PROBE_STDERR=1 to see it).
const args = [...(profile === 'unlimited' ? ['--frame-rate', '0'] : []), ...(process.env.PROBE_V ? [process.env.PROBE_V] : ['-vv']), 'i-0123456789abcdef0', String(port)];
const flags = process.env.PROBE_NODE_FLAGS;
// PROBE_WRAP="valgrind --tool=callgrind ..." runs it under another program (instruction counts).
const wrap = (process.env.PROBE_WRAP ?? '').split(' ').filter(Boolean);
const [cmd, ...cmdArgs] = [...wrap, ...(flags === undefined ? [bin] : [process.execPath, ...flags.split(' ').filter(Boolean), bin]), ...args];
const p = spawn(cmd, cmdArgs, { env: { ...env, PATH: pathWithNode() }, stdio: ['pipe', 'pipe', 'pipe'] });
let err = '';
p.stderr.on('data', (d) => {
  err += d;
  if (process.env.PROBE_STDERR) process.stderr.write(d);
});
const t0 = performance.now();
if (dir === 'up') {
  // PROBE_STDOUT=file keeps what the proxy wrote (V8's --trace-* output goes to stdout).
  if (process.env.PROBE_STDOUT) p.stdout.pipe((await import('node:fs')).createWriteStream(process.env.PROBE_STDOUT));
  else p.stdout.resume();
  for (let sent = 0; sent < total; sent += chunk.length) if (!p.stdin.write(chunk)) await new Promise((r) => p.stdin.once('drain', r));
} else {
  let got = 0;
  p.stdout.on('data', (d) => {
    got += d.length;
    if (got >= total) done();
  });
}
await finished;
const secs = (performance.now() - t0) / 1000;
if (process.env.PROBE_THREADS) {
  // CPU by thread of the proxy (main, libuv pool, V8 workers), in clock ticks (1/100 s).
  const { readdirSync, readFileSync } = await import('node:fs');
  const rows: string[] = [];
  for (const t of readdirSync(`/proc/${p.pid}/task`)) {
    const stat = readFileSync(`/proc/${p.pid}/task/${t}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    rows.push(`${stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))}=${Number(f[11]) + Number(f[12])} (${f[7]} faults)`);
  }
  console.log(`threads (cpu ticks): ${rows.join(' ')}`);
}
p.stdin.end();
await new Promise((r) => p.on('close', r));
const end = err.split('\n').find((l) => l.includes('ended:')) ?? '';
const cpu = Number(/cpu ([\d.]+) s/.exec(end)?.[1]);
console.log(`${dir} ${total / 1048576} MiB: ${(total / 1e6 / secs).toFixed(3)} MB/s, proxy cpu ${cpu.toFixed(2)} s = ${((cpu * 100 * 1048576) / total).toFixed(2)} s/100 MiB; ${end.replace(/.*reconnects, /, '')}`);
await sim.close();
server.close();
