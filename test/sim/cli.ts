// `npm run sim -- [options]`: runs the simulator until SIGINT/SIGTERM, then prints the violation
// counts as one JSON line. The credentials printed are the simulator's own fake test values.
import { parseArgs } from 'node:util';
import { startSimulator, type FaultConfig, type SimOptions } from './index.ts';
import type { DirectionFaults } from './faults.ts';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { makeLoopbackCertificate } from '../helpers/tls.ts';

const USAGE = `usage: npm run sim -- [options]
  --profile service|unlimited   service limits and agent pacing (default service)
  --target i-ID=PORT            map an instance id to a local TCP port (repeatable; default: any
                                target, the portNumber parameter on 127.0.0.1)
  --seed N                      fault seed (default 1)
  --drop P --duplicate P --reorder P --corrupt P --drop-acks P   per-frame probabilities, both directions
  --delay MS --jitter MS        added latency, both directions
  --api-latency MS              API calls answered MS late
  --connect-latency MS          an API request or websocket upgrade taken no sooner than MS after its connection
  --close-after-bytes N --close-after-ms MS [--close-repeat]     cut the client websocket
  --recycle-ms MS               close every client websocket with 1000 "Bye" after MS
  --refuse                      every target's port refuses the agent's dial
  --slow-target BPS             writes to the target limited to BPS bytes/s
  --frame-rate N --frame-burst N --max-payload N --agent-chunk N
  --missing-ack-ms MS --pause-grace-ms MS --token-ttl-ms MS
  --api-port N --gateway-port N --region R
  --tls                         serve https:// and wss:// with a certificate made now (needs openssl);
                                prints the AWS_CA_BUNDLE to trust it
  --verbose                     log gateway events to stderr`;

function num(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) {
    process.stderr.write(`--${name}: not a non-negative number: ${v}\n${USAGE}\n`);
    process.exit(2);
  }
  return n;
}

async function main(): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        profile: { type: 'string' },
        target: { type: 'string', multiple: true },
        seed: { type: 'string' },
        'api-latency': { type: 'string' },
        'connect-latency': { type: 'string' },
        drop: { type: 'string' },
        duplicate: { type: 'string' },
        reorder: { type: 'string' },
        corrupt: { type: 'string' },
        'drop-acks': { type: 'string' },
        delay: { type: 'string' },
        jitter: { type: 'string' },
        'close-after-bytes': { type: 'string' },
        'close-after-ms': { type: 'string' },
        'close-repeat': { type: 'boolean' },
        'recycle-ms': { type: 'string' },
        refuse: { type: 'boolean' },
        'slow-target': { type: 'string' },
        'frame-rate': { type: 'string' },
        'frame-burst': { type: 'string' },
        'max-payload': { type: 'string' },
        'agent-chunk': { type: 'string' },
        'missing-ack-ms': { type: 'string' },
        'pause-grace-ms': { type: 'string' },
        'token-ttl-ms': { type: 'string' },
        'api-port': { type: 'string' },
        'gateway-port': { type: 'string' },
        region: { type: 'string' },
        tls: { type: 'boolean' },
        verbose: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: false,
    });
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n${USAGE}\n`);
    process.exit(2);
  }
  const v = parsed.values;
  if (v.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (v.profile !== undefined && v.profile !== 'service' && v.profile !== 'unlimited') {
    process.stderr.write(`--profile must be service or unlimited\n${USAGE}\n`);
    process.exit(2);
  }
  let targets: SimOptions['targets'];
  for (const t of v.target ?? []) {
    const m = /^([^=]+)=(\d{1,5})$/.exec(t);
    if (!m) {
      process.stderr.write(`--target wants ID=PORT, got ${t}\n`);
      process.exit(2);
    }
    targets ??= {};
    targets[m[1]] = { port: Number(m[2]) };
  }
  const dir: DirectionFaults = {};
  const set = <K extends keyof DirectionFaults>(k: K, n: number | undefined) => {
    if (n !== undefined) dir[k] = n;
  };
  set('drop', num(v.drop, 'drop'));
  set('duplicate', num(v.duplicate, 'duplicate'));
  set('reorder', num(v.reorder, 'reorder'));
  set('corruptDigest', num(v.corrupt, 'corrupt'));
  set('dropAcks', num(v['drop-acks'], 'drop-acks'));
  set('delayMs', num(v.delay, 'delay'));
  set('jitterMs', num(v.jitter, 'jitter'));
  const faults: FaultConfig = {};
  if (Object.keys(dir).length > 0) {
    faults.clientToAgent = dir;
    faults.agentToClient = { ...dir };
  }
  const cab = num(v['close-after-bytes'], 'close-after-bytes');
  const cam = num(v['close-after-ms'], 'close-after-ms');
  if (cab !== undefined || cam !== undefined) faults.closeClient = { afterBytes: cab, afterMs: cam, repeat: v['close-repeat'] ?? false };
  if (v.refuse) faults.refuseTargets = true;
  const slow = num(v['slow-target'], 'slow-target');
  if (slow !== undefined) faults.slowTargetBytesPerSec = slow;

  let caFile: string | undefined;
  let tls: SimOptions['tls'];
  if (v.tls) {
    try {
      tls = makeLoopbackCertificate();
    } catch (e) {
      process.stderr.write(`--tls: ${(e as Error).message}\n`);
      process.exit(2);
    }
    caFile = join(mkdtempSync(join(tmpdir(), 'ssm-proxy-sim-')), 'ca.pem');
    writeFileSync(caFile, tls.cert);
  }
  const opts: SimOptions = {
    ...(tls ? { tls } : {}),
    profile: (v.profile as SimOptions['profile']) ?? 'service',
    targets,
    seed: num(v.seed, 'seed'),
    faults,
    frameRate: num(v['frame-rate'], 'frame-rate'),
    frameBurst: num(v['frame-burst'], 'frame-burst'),
    maxClientPayload: num(v['max-payload'], 'max-payload'),
    agentChunk: num(v['agent-chunk'], 'agent-chunk'),
    missingAckMs: num(v['missing-ack-ms'], 'missing-ack-ms'),
    pauseGraceMs: num(v['pause-grace-ms'], 'pause-grace-ms'),
    recycleMs: num(v['recycle-ms'], 'recycle-ms'),
    tokenTtlMs: num(v['token-ttl-ms'], 'token-ttl-ms'),
    apiPort: num(v['api-port'], 'api-port'),
    gatewayPort: num(v['gateway-port'], 'gateway-port'),
    region: v.region,
    latency: { apiMs: num(v['api-latency'], 'api-latency'), connectMs: num(v['connect-latency'], 'connect-latency') },
    logger: v.verbose ? (line) => process.stderr.write(`sim: ${line}\n`) : undefined,
  };
  // Handlers first, so a signal during start-up still ends with the JSON line.
  let stopRequested = false;
  let stop: () => Promise<void> = async () => {
    stopRequested = true;
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
  const sim = await startSimulator(opts);
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  process.stdout.write(
    [
      `SSM endpoint: ${sim.apiUrl}`,
      `export AWS_ENDPOINT_URL_SSM=${q(sim.apiUrl)}`,
      `export AWS_REGION=${q(sim.region)}`,
      `export AWS_ACCESS_KEY_ID=${q(sim.credentials.accessKeyId)}`,
      `export AWS_SECRET_ACCESS_KEY=${q(sim.credentials.secretAccessKey)}`,
      ...(caFile ? [`export AWS_CA_BUNDLE=${q(caFile)}`] : []),
      `# stats: ${sim.statsUrl}`,
      '',
    ].join('\n'),
  );
  let stopping = false;
  stop = async () => {
    if (stopping) return;
    stopping = true;
    const sessions = sim.sessions();
    await sim.close();
    if (caFile) rmSync(dirname(caFile), { recursive: true, force: true });
    process.stdout.write(`${JSON.stringify({ violations: sim.violations(), totalViolations: sim.totalViolations(), sessions: sessions.length })}\n`);
    process.exit(0);
  };
  if (stopRequested) await stop();
}

void main();
