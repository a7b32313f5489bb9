// Network trouble between the proxy and the service: lost frames, reordering,
// a lost HandshakeComplete, and websockets that drop mid-transfer.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startSshd, type SshdHandle } from './openssh.ts';
import { TARGET, rig, run } from './ssh-helpers.ts';

const MiB = 1024 * 1024;
let sshd: SshdHandle;
beforeAll(async () => {
  sshd = await startSshd();
  mkdirSync(join(sshd.dir, 'net'), { recursive: true });
});
afterAll(async () => {
  await sshd?.stop();
});
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('network trouble', () => {
  it('connects although the first transmission of HandshakeComplete is lost, and loses no banner byte', async () => {
    const r = await rig(sshd, { profile: 'service', faults: { dropFirst: { agentToClient: [1] } } });
    try {
      const res = await r.ssh(['-v', '-o', 'LogLevel=DEBUG1', TARGET, 'echo ok']);
      expect(res.code).toBe(0);
      expect(res.stdout.toString()).toBe('ok\n');
      // Both banners crossed intact: ssh saw sshd's, and sshd accepted ours (the session ran).
      expect(res.stderr).toMatch(/Remote protocol version 2\.0, remote software version OpenSSH/);
      expect(res.stderr).not.toMatch(/banner line/);
      // The fault really fired: HandshakeComplete (agent seq 1) was dropped once.
      const decisions = [...r.sim.gateway.sessions.values()].flatMap((s) => s.decisions);
      expect(decisions.filter((d) => d.action === 'drop-first').map((d) => d.key)).toEqual(['d1#0']); // agent seq 1, first transmission
      expect(r.sim.totalViolations()).toBe(0);
    } finally {
      await r.close();
    }
  });

  // The service profile: the agent is paced, so (as with the real agent) few of its frames
  // are in flight when the socket dies; it recovers those one per 100 ms (quirk Q2).
  it('resumes (ResumeSession + new websocket) when the service drops the websocket mid-transfer, byte-exact', { timeout: 90_000 }, async () => {
    const r = await rig(sshd, { profile: 'service', faults: { closeClient: { afterBytes: 1 * MiB, repeat: true, mode: 'terminate' } } });
    try {
      const data = randomBytes(3 * MiB);
      const up = await r.ssh([TARGET, 'sha256sum'], { input: data });
      expect(up.stderr).toBe('');
      expect(up.code).toBe(0);
      expect(up.stdout.toString().split(' ')[0]).toBe(sha256(data));
      const file = join(sshd.dir, 'net', 'resume.bin');

      writeFileSync(file, data);
      const down = await r.ssh([TARGET, `cat ${file}`]);
      expect(down.stderr).toBe('');
      expect(down.code).toBe(0);
      expect(sha256(down.stdout)).toBe(sha256(data));
      expect(r.sim.api.count('ResumeSession')).toBeGreaterThanOrEqual(4);
      // Both sessions ended (by our flag, sshd closing, or the API), and no API call was
      // spent on a session that had already ended.
      const sessions = r.sim.registry.list();
      expect(sessions.map((s) => s.state)).toEqual(['terminated', 'terminated']);
      expect(r.sim.api.count('TerminateSession')).toBe(sessions.filter((s) => s.terminateReason === 'TerminateSession').length);
      expect(Object.entries(r.sim.violations()).filter(([, n]) => n > 0)).toEqual([]);
    } finally {
      await r.close();
    }
  });

  // The agent is switched to per-frame resends here: the real one resends its oldest
  // unacked frame once per 100 ms (quirk Q2), which would take minutes to recover 5 %
  // of 32 MiB, and what is under test is the proxy.
  it('scp up and down 32 MiB byte-exact with 5 % of frames dropped and reordering in both directions', { timeout: 300_000 }, async () => {
    const lossy = { drop: 0.05, reorder: 0.05, reorderAfter: 3 };
    const r = await rig(sshd, { profile: 'unlimited', agentRetransmit: 'per-frame', seed: 5, faults: { clientToAgent: lossy, agentToClient: lossy } }, ['--frame-rate', '0']);
    try {
      const data = randomBytes(32 * MiB);
      const local = join(sshd.dir, 'net', 'lossy.bin');
      writeFileSync(local, data);
      const up = await run(sshd.bins.scp, ['-F', r.config, '-q', local, `${TARGET}:${join(sshd.dir, 'net', 'lossy-up.bin')}`], r.env, { timeoutMs: 240_000 });
      expect(up.stderr).toBe('');
      expect(up.code).toBe(0);
      expect(sha256(readFileSync(join(sshd.dir, 'net', 'lossy-up.bin')))).toBe(sha256(data));
      const down = await run(sshd.bins.scp, ['-F', r.config, '-q', `${TARGET}:${local}`, join(sshd.dir, 'net', 'lossy-down.bin')], r.env, { timeoutMs: 240_000 });
      expect(down.code).toBe(0);
      expect(sha256(readFileSync(join(sshd.dir, 'net', 'lossy-down.bin')))).toBe(sha256(data));
      // The faults really happened, both ways.
      const decisions = [...r.sim.gateway.sessions.values()].flatMap((s) => s.decisions);
      for (const dir of ['clientToAgent', 'agentToClient'] as const) {
        expect(decisions.filter((d) => d.dir === dir && d.action === 'drop').length).toBeGreaterThan(1000);
        expect(decisions.filter((d) => d.dir === dir && d.action === 'hold').length).toBeGreaterThan(1000);
      }
      expect(Object.entries(r.sim.violations()).filter(([, n]) => n > 0)).toEqual([]);
    } finally {
      await r.close();
    }
  });

  it('reconnects over a connection opened while ResumeSession is answered', async () => {
    // The API answers 150 ms late: a connection opened before the call is that old when
    // the websocket's upgrade comes over it; a fresh one would be a few ms old.
    const r = await rig(sshd, { profile: 'unlimited', recycleMs: 400, latency: { apiMs: 150 } }, ['--frame-rate', '0']);
    try {
      const data = randomBytes(1 * MiB);
      const res = await r.ssh([TARGET, 'sleep 1.5; sha256sum'], { input: data });
      expect(res.code).toBe(0);
      expect(res.stdout.toString().split(' ')[0]).toBe(sha256(data));
      const resumes = r.sim.api.count('ResumeSession');
      expect(resumes).toBeGreaterThanOrEqual(1);
      const reconnects = r.sim.gateway.upgradeAges.slice(1);
      expect(reconnects).toHaveLength(resumes);
      for (const age of reconnects) expect(age).toBeGreaterThanOrEqual(100);
      expect(r.sim.totalViolations()).toBe(0);
    } finally {
      await r.close();
    }
  });

  it('a websocket upgrade refused during setup is retried with ResumeSession, and the session then runs', async () => {
    const r = await rig(sshd, { profile: 'service', faults: { refuseUpgrades: 2 } });
    try {
      const res = await r.ssh([TARGET, 'echo ok']);
      expect(res.stderr).toBe('');
      expect(res.code).toBe(0);
      expect(res.stdout.toString()).toBe('ok\n');
      expect(r.sim.gateway.upgradesRefused).toBe(2);
      // One ResumeSession (a fresh token) per new websocket; the first token was never used.
      expect(r.sim.api.count('ResumeSession')).toBe(2);
      expect(r.sim.totalViolations()).toBe(0);
    } finally {
      await r.close();
    }
  });

  it('ResumeSession answering HTTP 500 beyond the SDK\'s own retries does not end the session (§11.6: 5xx is retried)', async () => {
    const r = await rig(sshd, { profile: 'unlimited', faults: { closeClient: { afterBytes: 256 * 1024, mode: 'terminate' } } }, ['--frame-rate', '0']);
    try {
      // The SDK makes three attempts per call: the first call fails outright, the second
      // call's last attempt succeeds.
      r.sim.api.injectNext('ResumeSession', { error: 'InternalServerError', message: 'boom', status: 500 }, 5);
      const data = randomBytes(1 * MiB);
      const res = await r.ssh([TARGET, 'sha256sum'], { input: data });
      expect(res.stderr).toBe('');
      expect(res.code).toBe(0);
      expect(res.stdout.toString().split(' ')[0]).toBe(sha256(data));
      const resumes = r.sim.api.calls.filter((c) => c.operation === 'ResumeSession');
      expect(resumes.map((c) => c.status)).toEqual([500, 500, 500, 500, 500, 200]);
      expect(r.sim.totalViolations()).toBe(0);
    } finally {
      await r.close();
    }
  });

  it('survives the periodic websocket recycle (close 1000 "Bye")', async () => {
    const r = await rig(sshd, { profile: 'unlimited', recycleMs: 400 }, ['--frame-rate', '0']);
    try {
      const data = randomBytes(4 * MiB);
      const res = await r.ssh([TARGET, 'sleep 1; sha256sum'], { input: data });
      expect(res.code).toBe(0);
      expect(res.stdout.toString().split(' ')[0]).toBe(sha256(data));
      expect(r.sim.api.count('ResumeSession')).toBeGreaterThanOrEqual(1);
      expect(r.sim.totalViolations()).toBe(0);
    } finally {
      await r.close();
    }
  });
});
