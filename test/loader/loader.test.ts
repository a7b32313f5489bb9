// The loader: runs the CommonJS build through V8's code cache, and never lets the
// cache change what the program does.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { cacheDirFor, decodeCacheFile, encodeCacheFile, Loader, sdkLikely, STALE_BUILD_MS } from '../../src/loader/loader.ts';

const LOADER = join(import.meta.dirname, '..', '..', 'src', 'loader', 'loader.ts');

describe('cacheDirFor', () => {
  const id = 'b1';
  const leaf = join('code-cache', `b1-${process.version}-${process.arch}`);

  it('is off when asked', () => {
    for (const v of ['off', 'OFF', '0', 'false', 'no', ' off ']) expect(cacheDirFor({ SSM_PROXY_CODE_CACHE: v, HOME: '/h' }, id, process.platform, [])).toBeUndefined();
  });

  it('uses an absolute SSM_PROXY_CODE_CACHE as given and ignores a relative one', () => {
    expect(cacheDirFor({ SSM_PROXY_CODE_CACHE: '/var/c', HOME: '/h' }, id, process.platform, [])).toEqual({ dir: join('/var/c', leaf), mayCreate: true });
    expect(cacheDirFor({ SSM_PROXY_CODE_CACHE: 'rel/c', HOME: '/h' }, id, process.platform, [])).toBeUndefined();
  });

  it('follows XDG_CACHE_HOME, then ~/.cache; macOS and Windows have their own places', () => {
    const home = mkdtempSync(join(tmpdir(), 'ssm-proxy-home-'));
    try {
      expect(cacheDirFor({ XDG_CACHE_HOME: home, HOME: '/h' }, id, 'linux', [])).toEqual({ dir: join(home, 'ssm-proxy', leaf), mayCreate: true });
      expect(cacheDirFor({ XDG_CACHE_HOME: 'relative', HOME: home }, id, 'linux', [])).toEqual({ dir: join(home, '.cache', 'ssm-proxy', leaf), mayCreate: true });
      expect(cacheDirFor({ HOME: home }, id, 'darwin', [])).toEqual({ dir: join(home, 'Library', 'Caches', 'ssm-proxy', leaf), mayCreate: true });
      expect(cacheDirFor({ LOCALAPPDATA: home }, id, 'win32', [])).toEqual({ dir: join(home, 'ssm-proxy', 'Cache', leaf), mayCreate: true });
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });

  it('keeps one cache per set of node flags: V8 refuses bytecode made under others', () => {
    const plain = cacheDirFor({ SSM_PROXY_CODE_CACHE: '/var/c' }, id, 'linux', [])!.dir;
    const single = cacheDirFor({ SSM_PROXY_CODE_CACHE: '/var/c' }, id, 'linux', ['--single-threaded'])!.dir;
    const other = cacheDirFor({ SSM_PROXY_CODE_CACHE: '/var/c' }, id, 'linux', ['--single-threaded', '--max-old-space-size=64'])!.dir;
    expect(plain).toBe(join('/var/c', leaf));
    expect(single.slice(0, plain.length)).toBe(plain);
    expect(single.slice(plain.length)).toMatch(/^-[0-9a-f]{8}$/);
    expect(new Set([plain, single, other]).size).toBe(3);
    expect(cacheDirFor({ SSM_PROXY_CODE_CACHE: '/var/c' }, id, 'linux', ['--single-threaded'])!.dir).toBe(single);
  });

  it('does not create a home that does not exist', () => {
    const missing = join(tmpdir(), 'ssm-proxy-no-such-home');
    expect(cacheDirFor({ HOME: missing }, id, 'linux', [])).toEqual({ dir: join(missing, '.cache', 'ssm-proxy', leaf), mayCreate: false });
  });
});

describe('sdkLikely', () => {
  it("expects the AWS SDK but with keys in the environment, or when SSM_PROXY_USE_SDK says so", () => {
    const keys = { AWS_ACCESS_KEY_ID: 'AKID', AWS_SECRET_ACCESS_KEY: 'secret' };
    expect(sdkLikely({})).toBe(true);
    expect(sdkLikely({ AWS_PROFILE: 'work' })).toBe(true);
    expect(sdkLikely({ AWS_ACCESS_KEY_ID: 'AKID' })).toBe(true);
    expect(sdkLikely(keys)).toBe(false);
    expect(sdkLikely({ ...keys, SSM_PROXY_USE_SDK: '1' })).toBe(true);
    expect(sdkLikely({ ...keys, SSM_PROXY_USE_SDK: 'off' })).toBe(false);
  });
});

describe('cache file', () => {
  const source = 'exports.f = () => 42;\n'.repeat(100);
  const data = Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7) & 0xff));

  it('gives back the data for the source it was made from', () => {
    expect(decodeCacheFile(source, encodeCacheFile(source, data))?.equals(data)).toBe(true);
  });

  it('refuses other source, damaged data, a cut file and the older format', () => {
    const file = encodeCacheFile(source, data);
    expect(decodeCacheFile(`${source} `, file)).toBeUndefined();
    expect(decodeCacheFile(source.replace('42', '43'), file)).toBeUndefined();
    for (const at of [file.length - 1, file.length - 2500, 30]) {
      const damaged = Buffer.from(file);
      damaged[at] ^= 0x10;
      expect(decodeCacheFile(source, damaged)).toBeUndefined();
    }
    expect(decodeCacheFile(source, file.subarray(0, file.length - 1))).toBeUndefined();
    expect(decodeCacheFile(source, file.subarray(0, 30))).toBeUndefined();
    const older = Buffer.from(file);
    older.write('ssm-proxy code cache 1\n', 0, 'latin1');
    expect(decodeCacheFile(source, older)).toBeUndefined();
  });
});

// Each run is a fresh node process, as every ssh connection is: a cache is only ever
// consumed by a process that did not write it.
describe('Loader', () => {
  let dir: string;
  let app: string;
  let driver: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'ssm-proxy-loader-'));
    app = join(dir, 'my app%20#');
    mkdirSync(join(app, 'chunks'), { recursive: true });
    // An application shaped like the build's output: an entry, a chunk required twice
    // (one instance), a chunk loaded through the Promise-wrapped require that import()
    // becomes, a builtin, and import.meta.url as __ssmUrl (in a folder whose name a URL
    // escapes, and for a file name that needs escaping too).
    writeFileSync(join(app, 'chunks', 'shared.cjs'), 'exports.url = __ssmUrl; let n = 0; exports.next = () => ++n; exports.work = (k) => { let s = 0; for (let i = 0; i < k; i++) s = (s * 31 + i) | 0; return s; };\n');
    writeFileSync(join(app, 'chunks', 'late 1%.cjs'), 'const s = require("./shared.cjs"); exports.value = () => s.next() * 100 + s.work(1000); exports.url = __ssmUrl; exports.sharedUrl = s.url;\n');
    writeFileSync(
      join(app, 'main.cjs'),
      [
        'const s = require("./chunks/shared.cjs");',
        'const { createHash } = require("node:crypto");',
        'const url = __ssmUrl;',
        'Promise.resolve().then(() => require("./chunks/late 1%.cjs")).then((late) => {',
        '  const out = { first: s.next(), late: late.value(), again: require("./chunks/shared.cjs") === s, urls: [url, late.sharedUrl, late.url], file: __filename.endsWith("main.cjs"), hash: createHash("sha256").update("x").digest("hex").slice(0, 8) };',
        '  globalThis.__result = out;',
        '});',
      ].join('\n'),
    );
    driver = join(dir, 'driver.mts');
    writeFileSync(
      driver,
      [
        `import { Loader } from ${JSON.stringify(LOADER)};`,
        'const [entry, cacheDir, mayCreate] = process.argv.slice(2);',
        "const loader = new Loader({ entry, cacheDir: cacheDir === '-' ? undefined : cacheDir, mayCreate: mayCreate === 'yes' });",
        'loader.start();',
        'await new Promise((r) => setTimeout(r, 10));',
        'loader.save();',
        'process.stdout.write(JSON.stringify({ result: globalThis.__result, summary: loader.summary() }));',
      ].join('\n'),
    );
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  function run(cacheDir: string | undefined, mayCreate = true): { result: Record<string, unknown>; summary: string } {
    const r = spawnSync(process.execPath, ['--import', 'tsx', driver, join(app, 'main.cjs'), cacheDir ?? '-', mayCreate ? 'yes' : 'no'], { encoding: 'utf8', timeout: 20_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    return JSON.parse(r.stdout);
  }

  const expected = { first: 1, late: 200 + 0, again: true, file: true, hash: '2d711642' };

  function expectedResult(): Record<string, unknown> {
    let s = 0;
    for (let i = 0; i < 1000; i++) s = (s * 31 + i) | 0;
    const urls = [join(app, 'main.cjs'), join(app, 'chunks', 'shared.cjs'), join(app, 'chunks', 'late 1%.cjs')].map((f) => pathToFileURL(f).href);
    return { ...expected, late: 200 + s, urls };
  }

  it('runs the application the same without a cache, with a missing one, with a valid one', () => {
    const cache = join(dir, 'c1', 'code-cache', 'build-a');
    const off = run(undefined);
    expect(off.result).toEqual(expectedResult());
    expect(off.summary).toBe('code cache off, 3 files compiled');

    const first = run(cache);
    expect(first.result).toEqual(expectedResult());
    expect(first.summary).toBe(`code cache ${cache}: 0 files from cache, 0 refused, 3 without one; 3 written now`);
    expect(readdirSync(cache).sort()).toEqual(['chunks_late 1%.cjs.v8', 'chunks_shared.cjs.v8', 'main.cjs.v8']);
    expect(statSync(cache).mode & 0o777).toBe(0o700);
    for (const f of readdirSync(cache)) expect(statSync(join(cache, f)).mode & 0o777).toBe(0o600);

    const second = run(cache);
    expect(second.result).toEqual(expectedResult());
    expect(second.summary).toBe(`code cache ${cache}: 3 files from cache, 0 refused, 0 without one`);
  });

  it('recovers from a corrupt cache file: V8 refuses it, the program runs, the file is rewritten', () => {
    const cache = join(dir, 'c2', 'code-cache', 'build-a');
    run(cache);
    const f = join(cache, 'chunks_shared.cjs.v8');
    const good = readFileSync(f);
    const bad = Buffer.from(good);
    for (let i = 0; i < bad.length; i += 7) bad[i] ^= 0x5a;
    writeFileSync(f, bad, { mode: 0o600 });
    const hit = run(cache);
    expect(hit.result).toEqual(expectedResult());
    expect(hit.summary).toBe(`code cache ${cache}: 2 files from cache, 1 refused, 0 without one; 1 written now`);
    expect(run(cache).summary).toBe(`code cache ${cache}: 3 files from cache, 0 refused, 0 without one`);

    // Damage inside V8's data only, past every header: V8 would take it and crash
    // (SIGTRAP); the loader's own digest refuses it.
    const inner = readFileSync(f);
    for (let i = inner.length - 1; i > inner.length / 2; i -= 61) inner[i] ^= 0x33;
    writeFileSync(f, inner, { mode: 0o600 });
    const damaged = run(cache);
    expect(damaged.result).toEqual(expectedResult());
    expect(damaged.summary).toBe(`code cache ${cache}: 2 files from cache, 1 refused, 0 without one; 1 written now`);

    // Truncated to nothing: refused the same way.
    writeFileSync(f, Buffer.alloc(0), { mode: 0o600 });
    const empty = run(cache);
    expect(empty.result).toEqual(expectedResult());
    expect(empty.summary).toBe(`code cache ${cache}: 2 files from cache, 1 refused, 0 without one; 1 written now`);
  });

  it('refuses a cache made for other source of the same length', () => {
    const cache = join(dir, 'c6', 'code-cache', 'build-a');
    const late = join(app, 'chunks', 'late 1%.cjs');
    const original = readFileSync(late, 'utf8');
    run(cache);
    try {
      // V8 compares only the length: without the loader's source digest it would run the old bytecode.
      writeFileSync(late, original.replace('* 100', '* 300'));
      const r = run(cache);
      expect(r.result).toEqual({ ...expectedResult(), late: (expectedResult().late as number) + 400 });
      expect(r.summary).toBe(`code cache ${cache}: 2 files from cache, 1 refused, 0 without one; 1 written now`);
    } finally {
      writeFileSync(late, original);
    }
  });

  it('ignores a cache file that others may write', () => {
    const cache = join(dir, 'c3', 'code-cache', 'build-a');
    run(cache);
    const f = join(cache, 'main.cjs.v8');
    chmodSync(f, 0o666);
    const r = run(cache);
    expect(r.result).toEqual(expectedResult());
    expect(r.summary).toBe(`code cache ${cache}: 2 files from cache, 0 refused, 1 without one; 1 written now`);
    expect(statSync(f).mode & 0o777).toBe(0o600);
  });

  it('writes nothing where it may not create the directory, and survives a directory it cannot create', () => {
    const notAllowed = join(dir, 'c4', 'code-cache', 'build-a');
    const r = run(notAllowed, false);
    expect(r.result).toEqual(expectedResult());
    expect(r.summary).toBe(`code cache ${notAllowed}: 0 files from cache, 0 refused, 3 without one`);
    expect(existsSync(join(dir, 'c4'))).toBe(false);

    // A file where a directory should be: mkdir fails (as root too), the program does not.
    writeFileSync(join(dir, 'blocker'), 'x');
    const blocked = join(dir, 'blocker', 'code-cache', 'build-a');
    const b = run(blocked);
    expect(b.result).toEqual(expectedResult());
    expect(b.summary).toBe(`code cache ${blocked}: 0 files from cache, 0 refused, 3 without one`);
  });

  it("removes other builds' caches untouched for a week when it creates its own", () => {
    const base = join(dir, 'c5', 'code-cache');
    run(join(base, 'build-a'));
    for (const name of ['build-old', 'build-recent']) {
      mkdirSync(join(base, name), { recursive: true });
      writeFileSync(join(base, name, 'main.cjs.v8'), 'x');
    }
    const old = (Date.now() - STALE_BUILD_MS - 60_000) / 1000;
    utimesSync(join(base, 'build-old'), old, old);
    const recent = (Date.now() - STALE_BUILD_MS + 3_600_000) / 1000;
    utimesSync(join(base, 'build-a'), recent, recent);
    run(join(base, 'build-b'));
    expect(readdirSync(base).sort()).toEqual(['build-a', 'build-b', 'build-recent']);
  });
});

describe('Loader notes', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'ssm-proxy-notes-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const loader = (cacheDir: string | undefined, mayCreate = true) => new Loader({ entry: join(dir, 'unused.cjs'), cacheDir, mayCreate });

  it('keeps a small text beside the cache, private to the user', () => {
    const cache = join(dir, 'n1', 'code-cache', 'build-a');
    expect(loader(cache).readNote('stream-origins')).toBeUndefined();
    loader(cache).writeNote('stream-origins', '{"a":"b"}');
    expect(loader(cache).readNote('stream-origins')).toBe('{"a":"b"}');
    expect(statSync(join(cache, 'stream-origins.note')).mode & 0o777).toBe(0o600);
    expect(statSync(cache).mode & 0o777).toBe(0o700);
    loader(cache).writeNote('stream-origins', 'new');
    expect(loader(cache).readNote('stream-origins')).toBe('new');
    expect(readdirSync(cache)).toEqual(['stream-origins.note']);
  });

  it('ignores a note others may write', () => {
    const cache = join(dir, 'n2', 'code-cache', 'build-a');
    loader(cache).writeNote('x', 'text');
    chmodSync(join(cache, 'x.note'), 0o666);
    expect(loader(cache).readNote('x')).toBeUndefined();
  });

  it('keeps none without a cache directory, or where it may not create one', () => {
    expect(loader(undefined).readNote('x')).toBeUndefined();
    loader(undefined).writeNote('x', 'text');
    const notAllowed = join(dir, 'n3', 'code-cache', 'build-a');
    loader(notAllowed, false).writeNote('x', 'text');
    expect(existsSync(join(dir, 'n3'))).toBe(false);
    writeFileSync(join(dir, 'blocker'), 'x');
    loader(join(dir, 'blocker', 'code-cache', 'build-a')).writeNote('x', 'text');
  });
});

describe('Loader.loadInSteps', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'ssm-proxy-steps-'));
    mkdirSync(join(dir, 'chunks'));
    // c imports b and a, b imports a: the build lists a, b, c. Each file notes the event
    // loop turn it ran in (counted by a setImmediate chain the entry starts).
    const note = (name: string) => `globalThis.__stepsLog.push(${JSON.stringify(name)} + "@" + globalThis.__stepsTurn);`;
    writeFileSync(join(dir, 'chunks', 'a.cjs'), `${note('a')} exports.a = 1;\n`);
    writeFileSync(join(dir, 'chunks', 'b.cjs'), `const a = require("./a.cjs"); ${note('b')} exports.b = a.a + 1;\n`);
    writeFileSync(join(dir, 'chunks', 'c.cjs'), `const b = require("./b.cjs"); const a = require("./a.cjs"); ${note('c')} exports.c = a.a + b.b;\n`);
    writeFileSync(
      join(dir, 'main.cjs'),
      [
        'globalThis.__stepsLog = []; globalThis.__stepsTurn = 0;',
        'const turn = () => { globalThis.__stepsTurn++; if (globalThis.__stepsTurn < 50) setImmediate(turn); };',
        'setImmediate(turn);',
        'exports.importC = () => Promise.resolve().then(() => require("./chunks/c.cjs"));',
      ].join('\n'),
    );
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
    delete (globalThis as Record<string, unknown>).__stepsLog;
    delete (globalThis as Record<string, unknown>).__stepsTurn;
  });

  const steps = { 'src/c.ts': ['chunks/a.cjs', 'chunks/b.cjs', 'chunks/c.cjs'] };

  it('runs the files in the listed order, each in its own turn of the event loop, and import() then finds them', async () => {
    const loader = new Loader({ entry: join(dir, 'main.cjs'), steps });
    const main = loader.start() as { importC: () => Promise<{ c: number }> };
    expect(await loader.loadInSteps('src/c.ts')).toBe(3);
    const log = (globalThis as unknown as { __stepsLog: string[] }).__stepsLog;
    expect(log.map((l) => l.split('@')[0])).toEqual(['a', 'b', 'c']);
    const turns = log.map((l) => Number(l.split('@')[1]));
    expect(turns[1]).toBeGreaterThan(turns[0]);
    expect(turns[2]).toBeGreaterThan(turns[1]);
    expect((await main.importC()).c).toBe(3);
    expect(log).toHaveLength(3); // not run again
    expect(await loader.loadInSteps('src/c.ts')).toBe(0);
  });

  it('does nothing for a module the build did not list', async () => {
    const loader = new Loader({ entry: join(dir, 'main.cjs'), steps });
    loader.start();
    expect(await loader.loadInSteps('src/other.ts')).toBe(0);
    expect(await new Loader({ entry: join(dir, 'main.cjs') }).loadInSteps('src/c.ts')).toBe(0);
    expect((globalThis as unknown as { __stepsLog: string[] }).__stepsLog).toEqual([]);
  });
});
