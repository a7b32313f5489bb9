// Real OpenSSH through `ProxyCommand ssm-proxy %h %p` and the simulator, to a private sshd.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startSshd, type SshdHandle } from './openssh.ts';
import { TARGET, rig, run, type Rig } from './ssh-helpers.ts';

const MiB = 1024 * 1024;
let sshd: SshdHandle;

beforeAll(async () => {
  sshd = await startSshd();
});
afterAll(async () => {
  await sshd?.stop();
});

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function expectClean(r: Rig) {
  const v = r.sim.violations();
  expect(Object.fromEntries(Object.entries(v).filter(([, n]) => n > 0))).toEqual({});
}

describe('ssh through ssm-proxy (service profile: the agent paced like the real one)', () => {
  let r: Rig;
  beforeAll(async () => {
    r = await rig(sshd, { profile: 'service' });
  });
  afterAll(async () => {
    await r?.close();
  });

  it('runs a command and returns its output, with nothing on stderr', async () => {
    const res = await r.ssh([TARGET, 'echo ok']);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    expect(res.stdout.toString()).toBe('ok\n');
    expectClean(r);
  });

  it("returns the remote command's exit status", async () => {
    const res = await r.ssh([TARGET, 'exit 7']);
    expect(res.code).toBe(7);
    expect(res.stderr).toBe('');
    expectClean(r);
  });

  it('carries 1 MiB each way on the paced path, byte-exact', async () => {
    const data = randomBytes(MiB);
    const up = await r.ssh([TARGET, 'sha256sum'], { input: data });
    expect(up.code).toBe(0);
    expect(up.stdout.toString().split(' ')[0]).toBe(sha256(data));
    const file = join(sshd.dir, 'paced.bin');
    writeFileSync(file, data);
    const down = await r.ssh([TARGET, `cat ${file}`]);
    expect(down.code).toBe(0);
    expect(sha256(down.stdout)).toBe(sha256(data));
    expectClean(r);
  });

  it("shows nothing but the SSH banner exchange on the proxy's stdout (ssh -v)", async () => {
    const res = await r.ssh(['-v', '-o', 'LogLevel=DEBUG1', TARGET, 'true']);
    expect(res.code).toBe(0);
    // ssh reports any non-banner line that precedes the server's version string.
    expect(res.stderr).not.toMatch(/banner line/);
    expect(res.stderr).toMatch(/Remote protocol version 2\.0, remote software version OpenSSH/);
    expectClean(r);
  });
});

describe('bulk transfers (unlimited profile: no pacing, the proxy is the bottleneck)', () => {
  let r: Rig;
  const work = () => join(sshd.dir, 'bulk');
  beforeAll(async () => {
    r = await rig(sshd, { profile: 'unlimited' }, ['--frame-rate', '0']);
    mkdirSync(work(), { recursive: true });
  });
  afterAll(async () => {
    await r?.close();
  });

  it('scp uploads and downloads 32 MiB byte-exact', async () => {
    const data = randomBytes(32 * MiB);
    const local = join(work(), 'local.bin');
    writeFileSync(local, data);
    const up = await run(sshd.bins.scp, ['-F', r.config, '-q', local, `${TARGET}:${join(work(), 'remote.bin')}`], r.env);
    expect(up.stderr).toBe('');
    expect(up.code).toBe(0);
    expect(sha256(readFileSync(join(work(), 'remote.bin')))).toBe(sha256(data));
    const down = await run(sshd.bins.scp, ['-F', r.config, '-q', `${TARGET}:${join(work(), 'remote.bin')}`, join(work(), 'back.bin')], r.env);
    expect(down.code).toBe(0);
    expect(sha256(readFileSync(join(work(), 'back.bin')))).toBe(sha256(data));
    expectClean(r);
  });

  it('rsync copies a tree of many small files and a few large ones; a second --checksum run has nothing to do', async () => {
    const src = join(work(), 'tree');
    for (let d = 0; d < 10; d++) {
      mkdirSync(join(src, `d${d}`), { recursive: true });
      for (let f = 0; f < 40; f++) writeFileSync(join(src, `d${d}`, `f${f}.txt`), randomBytes(1 + ((d * 40 + f) * 37) % 3000));
    }
    for (let i = 0; i < 3; i++) writeFileSync(join(src, `large${i}.bin`), randomBytes(4 * MiB));
    const dst = join(work(), 'tree-copy');
    const rsh = `ssh -F ${r.config}`;
    const first = await run(sshd.bins.rsync, ['-a', '-e', rsh, `${src}/`, `${TARGET}:${dst}/`], r.env);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    const second = await run(sshd.bins.rsync, ['-a', '--checksum', '--itemize-changes', '-e', rsh, `${src}/`, `${TARGET}:${dst}/`], r.env);
    expect(second.code).toBe(0);
    expect(second.stdout.toString()).toBe('');
    expect(readFileSync(join(dst, 'large2.bin')).equals(readFileSync(join(src, 'large2.bin')))).toBe(true);
    expectClean(r);
  });

  it('tar c | ssh tar x round trip', async () => {
    const src = join(work(), 'tar-src');
    mkdirSync(join(src, 'sub'), { recursive: true });
    const files: Record<string, Buffer> = { 'a.bin': randomBytes(3 * MiB), 'sub/b.txt': Buffer.from('hello\n'), 'sub/c.bin': randomBytes(100_000) };
    for (const [n, b] of Object.entries(files)) writeFileSync(join(src, n), b);
    const tar = await run('tar', ['-C', src, '-cf', '-', '.'], r.env);
    const dst = join(work(), 'tar-dst');
    const res = await r.ssh([TARGET, `mkdir -p ${dst} && tar -C ${dst} -xf -`], { input: tar.stdout });
    expect(res.code).toBe(0);
    for (const [n, b] of Object.entries(files)) expect(readFileSync(join(dst, n)).equals(b)).toBe(true);
    expectClean(r);
  });
});
