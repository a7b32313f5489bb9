// 16 MiB of random bytes: a TCP socket -> client core (ReliableChannel, client role) -> websocket ->
// simulated gateway and agent -> TCP echo server, and all the way back, byte-exact, in both profiles.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { startSimulator, type SimOptions, type Simulator } from './index.ts';
import { connectClient, destroyClient, tcpBridge, tcpTarget, waitFor, type ChannelClientOptions, type TcpTarget } from './testing.ts';

const SIZE = 16 * 1024 * 1024;
let echo: TcpTarget;
const payload = randomBytes(SIZE);
const payloadHash = createHash('sha256').update(payload).digest('hex');

beforeAll(async () => {
  echo = await tcpTarget('echo');
});
afterAll(async () => {
  await echo.close();
});

async function relay(simOpts: SimOptions, clientOpts: ChannelClientOptions) {
  const sim: Simulator = await startSimulator(simOpts);
  const { client, ticket } = await connectClient(sim, echo.port, { keep: false, ...clientOpts });
  const bridge = await tcpBridge(client);
  const sock: Socket = connect(bridge.port, '127.0.0.1');
  sock.setNoDelay(true);
  const hash = createHash('sha256');
  let got = 0;
  const done = new Promise<number>((resolve, reject) => {
    sock.on('data', (d: Buffer) => {
      hash.update(d);
      got += d.length;
      if (got >= SIZE) resolve(performance.now());
    });
    sock.on('error', reject);
    sock.on('close', () => (got < SIZE ? reject(new Error(`socket closed after ${got} of ${SIZE} bytes`)) : undefined));
  });
  const t0 = await new Promise<number>((resolve) => sock.once('connect', () => resolve(performance.now())));
  // Written in 64 KiB pieces with the socket's own back-pressure.
  for (let off = 0; off < SIZE; off += 65536) {
    if (!sock.write(payload.subarray(off, off + 65536))) await new Promise((r) => sock.once('drain', r));
  }
  const t1 = await done;
  const secs = (t1 - t0) / 1000;
  expect(got).toBe(SIZE);
  expect(hash.digest('hex')).toBe(payloadHash);
  // EOF on the local socket -> TerminateSession flag -> channel_closed with empty Output.
  sock.end();
  const closed = await waitFor([client], () => client.closed, 5000, 'channel_closed');
  expect(closed.output).toBe('');
  const stats = sim.gateway.session(ticket.sessionId)!.stats();
  const result = { secs, mbps: SIZE / 1e6 / secs, stats, violations: sim.totalViolations(), clientRetransmissions: client.channel.senderStats.retransmissions };
  sock.destroy();
  client.close();
  await bridge.close();
  destroyClient(sim);
  await sim.close();
  return result;
}

describe('16 MiB round trip through the simulator', () => {
  it('unlimited profile: no pacing, no budgets', async () => {
    const r = await relay({ profile: 'unlimited' }, {});
    console.log(`unlimited: 16 MiB each way in ${r.secs.toFixed(2)} s = ${r.mbps.toFixed(1)} MB/s per direction; client retransmissions ${r.clientRetransmissions}, agent retransmissions ${r.stats.agentRetransmissions}, target stalls ${r.stats.consumerStalls}, duplicates at agent ${r.stats.duplicatesAtAgent}`);
    expect(r.violations).toBe(0);
    expect(r.stats.bytesToTarget).toBe(SIZE);
    expect(r.stats.bytesFromTarget).toBe(SIZE);
  }, 60_000);

  it('service profile: the agent paced at 1 KiB per ~1 ms, the client within 1000 frames/s', async () => {
    const r = await relay({ profile: 'service' }, { frameRate: 1000, frameBurst: 20 });
    console.log(`service: 16 MiB each way in ${r.secs.toFixed(2)} s = ${r.mbps.toFixed(2)} MB/s per direction; pauses ${r.stats.pausesSent}, client retransmissions ${r.clientRetransmissions}, agent retransmissions ${r.stats.agentRetransmissions}`);
    expect(r.violations).toBe(0);
    expect(r.stats.pausesSent).toBe(0);
    // The agent's pacing caps agent->client at about 1 MB/s (§9.2).
    expect(r.mbps).toBeLessThan(1.1);
  }, 90_000);
});
