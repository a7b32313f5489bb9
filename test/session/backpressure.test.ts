// A consumer that stops reading must stop the proxy reading the service, also
// across a websocket that drops and is resumed while the consumer is stalled.
import { describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:net';
import { PassThrough, Writable } from 'node:stream';
import { PortSession } from '../../src/session/port-session.ts';
import { silentLogger } from '../../src/cli/log.ts';
import { createSsmApi } from '../../src/aws/ssm.ts';
import { startSimulator } from '../sim/index.ts';

const MiB = 1024 * 1024;

/** A stdout whose reader can be stalled: write callbacks are held while stalled. */
class StallableSink extends Writable {
  stalled = false;
  received = 0;
  private held: (() => void)[] = [];
  constructor() {
    super({ highWaterMark: 64 * 1024 });
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.received += chunk.length;
    if (this.stalled) this.held.push(cb);
    else cb();
  }
  release(): void {
    this.stalled = false;
    for (const cb of this.held.splice(0)) cb();
  }
}

function listen(server: Server): Promise<number> {
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r((server.address() as { port: number }).port)));
}

describe('back-pressure toward a stalled ssh', () => {
  it('keeps stdout buffering bounded through a stall longer than the dead-connection and give-up timeouts, without a false reconnect or give-up', { timeout: 60_000 }, async () => {
    const total = 24 * MiB;
    const source = createServer((s) => {
      s.on('error', () => {});
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      let sent = 0;
      const push = () => {
        while (sent < total) {
          sent += chunk.length;
          if (!s.write(chunk)) return void s.once('drain', push);
        }
        s.end();
      };
      push();
    });
    const port = await listen(source);
    const sim = await startSimulator({ profile: 'unlimited' });
    const saved = { ...process.env };
    Object.assign(process.env, { AWS_ACCESS_KEY_ID: sim.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: sim.credentials.secretAccessKey, AWS_EC2_METADATA_DISABLED: 'true' });
    try {
      const api = await createSsmApi({ region: sim.region, endpointUrl: sim.apiUrl });
      const start = await api.startSession({ target: 'i-0123456789abcdef0', documentName: 'AWS-StartSSHSession', port });
      const stdin = new PassThrough();
      const stdout = new StallableSink();
      // Pings every 100 ms, a 500 ms dead-connection timeout and a 1 s give-up rule, against
      // a 2.5 s stall with data of ours sent in it: its acks wait unread, which is our doing.
      const session = new PortSession({ ...start, targetPort: port, api, stdin, stdout, logger: silentLogger, clientVersion: '1.2.694.0', allowInsecure: true, frameRate: 0, maxPayload: 1024, pingIntervalMs: 100, deadAfterMs: 500, giveUpMs: 1000 });
      const done = session.run();
      // Stall at 1 MiB and hold it 2.5 s: five times the dead-connection timeout.
      let maxBuffered = 0;
      let wrote = false;
      await new Promise<void>((resolve, reject) => {
        const until = Date.now() + 20_000;
        let stalledAt = 0;
        const t = setInterval(() => {
          if (!stdout.stalled && stalledAt === 0 && stdout.received >= 1 * MiB) {
            stdout.stalled = true;
            stalledAt = Date.now();
          }
          if (stalledAt > 0 && Date.now() - stalledAt > 300 && stdin.writableLength === 0 && !wrote) {
            wrote = true;
            stdin.write(Buffer.alloc(8 * 1024, 0x62));
          }
          if (stdout.stalled) maxBuffered = Math.max(maxBuffered, stdout.writableLength);
          if (stalledAt > 0 && Date.now() - stalledAt > 2500) {
            clearInterval(t);
            resolve();
          }
          if (Date.now() > until) {
            clearInterval(t);
            reject(new Error(`the stall never started (received ${stdout.received})`));
          }
        }, 20);
      });
      // Our own pause is not a dead connection, nor an agent that stopped acknowledging.
      expect(wrote).toBe(true);
      expect(session.stats.reconnects).toBe(0);
      expect(sim.api.count('ResumeSession')).toBe(0);
      // Bounded by the socket's read batches, not by the 24 MiB the source is offering.
      expect(maxBuffered).toBeLessThan(4 * MiB);
      stdout.release();
      const until = Date.now() + 30_000;
      while (stdout.received < total && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      expect(stdout.received).toBe(total);
      const outcome = await done;
      expect(outcome.code).toBe(0);
      expect(sim.totalViolations()).toBe(0);
    } finally {
      process.env = saved;
      await sim.close();
      source.close();
    }
  });
});
