// dist/ssm-proxy.cjs: starts the application (dist/app/*.cjs) through V8's code cache.
//
// ssh starts a ProxyCommand for every connection, and most of a short connection's CPU
// went into compiling the same JavaScript again: the AWS SDK, ws and our own modules.
// V8 can serialize the bytecode of a script, including the functions compiled while it
// ran, and accept it back on the next start for the same source. Node 20 offers that
// only to scripts compiled with `vm.Script`, so the build turns the code-split bundle
// into CommonJS files and this loader runs them: each file is compiled with its cached
// bytecode when there is one, and after a session has run, the files that had none (or
// whose cache V8 refused) are written to the user's cache directory for the next start.
//
// Any failure to read or write the cache is ignored: the program then compiles as it
// would without one. SSM_PROXY_CODE_CACHE=off turns it off; SSM_PROXY_CODE_CACHE=DIR
// puts it in DIR instead of the user's cache directory.
import { setFlagsFromString } from 'node:v8';
import { Script } from 'node:vm';
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createHash } from 'node:crypto';
import { homedir } from 'node:os';
import * as zlib from 'node:zlib';
import { dirname, isAbsolute, join, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { CODE_CACHE_HANDLE, type CodeCacheHandle, type CodeCacheState } from './handle.ts';
import { V8_FLAGS } from '../cli/v8-flags.ts';
import { SWITCH_OFF, SWITCH_ON } from '../cli/switch.ts';

declare const __SSM_BUILD_ID__: string;
/** From the build: for each module loaded in steps, its files, dependencies first (names under dist/app). */
declare const __SSM_STEPS__: Record<string, string[]>;

export interface LoaderOptions {
  /** The application's entry file (CommonJS, as the build writes it). */
  entry: string;
  /** Where this build's cache files live; undefined: no cache. */
  cacheDir?: string;
  /** Set when cacheDir may be created: its parent exists or was named by the user. */
  mayCreate?: boolean;
  /** Why there is no cache, when that is worth saying (-vv). */
  offReason?: string;
  /** For loadInSteps: module source path -> its files under the entry's folder, dependencies first. */
  steps?: Record<string, readonly string[]>;
}

interface LoadedFile {
  name: string;
  /**
   * Kept only for a file whose cache is to be written. V8 holds its own copy (with the
   * wrapper line), so a kept copy of every file would be ~0.6 MB of heap for nothing.
   */
  source: string | undefined;
  script: Script;
  state: CodeCacheState;
}

/** A file name under the application's folder that is the same in a path and a URL (no `..`, `/` only). */
const SAFE_NAME = /^(?:[\w-]+\/)*[\w-]+(?:\.[\w-]+)*$/;

/**
 * The cache directory for this build, node version, architecture and node flags;
 * undefined when there is none. V8 refuses bytecode cached under other flags, so
 * `ssm-proxy` and `node --some-flag bin/ssm-proxy` keep apart instead of rewriting
 * one cache in turn.
 */
export function cacheDirFor(env: NodeJS.ProcessEnv, buildId: string, platform = process.platform, nodeFlags = process.execArgv): { dir: string; mayCreate: boolean } | undefined {
  const setting = env.SSM_PROXY_CODE_CACHE;
  if (setting !== undefined && SWITCH_OFF.test(setting.trim())) return undefined;
  const flags = nodeFlags.length > 0 ? `-${sha256(nodeFlags.join('\0')).toString('hex').slice(0, 8)}` : '';
  const leaf = join('code-cache', `${buildId}-${process.version}-${process.arch}${flags}`);
  if (setting) return isAbsolute(setting) ? { dir: join(setting, leaf), mayCreate: true } : undefined;
  let base: string | undefined;
  let parent: string | undefined;
  if (platform === 'win32') {
    base = env.LOCALAPPDATA ? join(env.LOCALAPPDATA, 'ssm-proxy', 'Cache') : undefined;
    parent = env.LOCALAPPDATA;
  } else if (env.XDG_CACHE_HOME && isAbsolute(env.XDG_CACHE_HOME)) {
    base = join(env.XDG_CACHE_HOME, 'ssm-proxy');
    parent = env.XDG_CACHE_HOME;
  } else {
    const home = env.HOME || safeHomedir();
    if (!home) return undefined;
    base = platform === 'darwin' ? join(home, 'Library', 'Caches', 'ssm-proxy') : join(home, '.cache', 'ssm-proxy');
    parent = home;
  }
  if (!base || !parent) return undefined;
  // A missing home (a service account, a test) is not created just to hold a cache.
  return { dir: join(base, leaf), mayCreate: existsSync(parent) };
}

function safeHomedir(): string | undefined {
  try {
    return homedir();
  } catch {
    return undefined;
  }
}

// A cache file: MAGIC, a checksum of the script's source, a checksum of V8's data, the
// data. V8 itself checks only the data's header (its version, the flags, the source's
// length): bytes damaged further in crash the process (SIGTRAP), so the data is
// checked here, and tied to the exact source it was made from. The checksum guards
// against damage, not an attacker (the files are the user's own, 0600): CRC-32 where
// node has it (20.15+), as SHA-256 of the 1.5 MB read at every start was ~5 % of a
// short session's instructions; else the first 4 bytes of SHA-256. A cache folder is
// only ever read by the node version that wrote it.
const MAGIC = Buffer.from('ssm-proxy code cache 2\n');
const HEADER = MAGIC.length + 8;

function sha256(data: string | Uint8Array): Buffer {
  return createHash('sha256').update(data).digest();
}

const crc32 = (zlib as { crc32?: (data: string | Uint8Array) => number }).crc32;

function checksum(data: string | Uint8Array): number {
  return crc32 ? crc32(data) : sha256(data).readUInt32BE(0);
}

/** Wraps V8's cached data for `source` in the file format above. */
export function encodeCacheFile(source: string, data: Buffer): Buffer {
  const sums = Buffer.alloc(8);
  sums.writeUInt32BE(checksum(source), 0);
  sums.writeUInt32BE(checksum(data), 4);
  return Buffer.concat([MAGIC, sums, data]);
}

/** V8's cached data for `source` from a file's bytes; undefined unless every check passes. */
export function decodeCacheFile(source: string, file: Buffer): Buffer | undefined {
  if (file.length <= HEADER || !file.subarray(0, MAGIC.length).equals(MAGIC)) return undefined;
  const data = file.subarray(HEADER);
  if (file.readUInt32BE(MAGIC.length) !== checksum(source) || file.readUInt32BE(MAGIC.length + 4) !== checksum(data)) return undefined;
  return data;
}

/** Reads a cache file written by this user and writable by no one else; undefined otherwise. */
function readCache(file: string): Buffer | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(file, 'r');
    const st = fstatSync(fd);
    if (!st.isFile()) return undefined;
    // POSIX only: Windows reports every writable file as 0666 and has no uid here.
    if (process.platform !== 'win32' && ((st.mode & 0o022) !== 0 || (typeof process.getuid === 'function' && st.uid !== process.getuid()))) return undefined;
    return readFileSync(fd);
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

export class Loader implements CodeCacheHandle {
  private readonly modules = new Map<string, { exports: unknown }>();
  private readonly files: LoadedFile[] = [];
  private readonly root: string;
  /** `file://` URL of root, with the trailing slash. */
  private readonly rootUrl: string;
  /** Paths of relative require()s already resolved, by the requiring file's folder and the id. */
  private readonly resolved = new Map<string, string>();
  /** One require() for packages per folder: the files of a folder share their node_modules. */
  private readonly outside = new Map<string, NodeJS.Require>();
  private saved = false;
  private written = 0;

  constructor(private readonly options: LoaderOptions) {
    this.root = dirname(options.entry);
    this.rootUrl = pathToFileURL(join(this.root, 'x')).href.slice(0, -1);
  }

  start(): unknown {
    return this.require(this.options.entry);
  }

  private require(file: string): unknown {
    const known = this.modules.get(file);
    if (known) return known.exports;
    const module = { exports: {} as unknown };
    this.modules.set(file, module);
    const source = readFileSync(file, 'utf8');
    const name = file.slice(this.root.length + 1);
    const cacheFile = this.cacheFileFor(name);
    const stored = cacheFile ? readCache(cacheFile) : undefined;
    const cachedData = stored && decodeCacheFile(source, stored);
    // One line of wrapper, as Node's own CommonJS loader does; import.meta.url was
    // replaced by __ssmUrl at build time.
    const script = new Script(`(function (exports, require, module, __filename, __dirname, __ssmUrl) {${source}\n})`, { filename: file, cachedData });
    let state: CodeCacheState = 'missing';
    if (cachedData) state = script.cachedDataRejected ? 'rejected' : 'accepted';
    else if (stored) state = 'rejected';
    this.files.push({ name, source: state === 'accepted' ? undefined : source, script, state });
    const dir = dirname(file);
    const require = (id: string): unknown => (id.startsWith('./') || id.startsWith('../') ? this.require(this.resolve(dir, id)) : this.outsideRequire(dir, file)(id));
    const fn = script.runInThisContext() as (...args: unknown[]) => void;
    fn(module.exports, require, module, file, dir, this.urlOf(name, file));
    return module.exports;
  }

  // A session loads ~20 files that require one another ~50 times. Through path.join and
  // pathToFileURL each time, node's path normalisation ran often enough at every start
  // for V8 to optimize it: ~3.5 ms of CPU on a background thread, per connection.
  private resolve(dir: string, id: string): string {
    const key = `${dir}\0${id}`;
    let file = this.resolved.get(key);
    if (file === undefined) this.resolved.set(key, (file = join(dir, id)));
    return file;
  }

  private outsideRequire(dir: string, file: string): NodeJS.Require {
    let r = this.outside.get(dir);
    if (r === undefined) this.outside.set(dir, (r = createRequire(file)));
    return r;
  }

  /** The file's URL (for import.meta.url); the build names its files in characters a URL keeps as they are. */
  private urlOf(name: string, file: string): string {
    return SAFE_NAME.test(name) ? this.rootUrl + name : pathToFileURL(file).href;
  }

  /**
   * Runs the files that import() of `source` would run, in the same order, one per turn
   * of the event loop; the import() that follows then finds them loaded. Loading the
   * AWS SDK takes ~25 ms of the main thread: in one piece, the API's connection opened
   * before it makes no progress meanwhile (no DNS answer taken, no TLS handshake).
   * Resolves at once for a module the build did not list.
   */
  async loadInSteps(source: string): Promise<number> {
    let loaded = 0;
    for (const name of this.options.steps?.[source] ?? []) {
      const file = join(this.root, name);
      if (this.modules.has(file)) continue;
      await new Promise((resolve) => setImmediate(resolve));
      this.require(file);
      loaded++;
    }
    return loaded;
  }

  private cacheFileFor(name: string): string | undefined {
    const dir = this.options.cacheDir;
    return dir ? `${dir}${sep}${name.replace(/[\\/]/g, '_')}.v8` : undefined;
  }

  summary(): string {
    const count = (s: CodeCacheState) => this.files.filter((f) => f.state === s).length;
    if (!this.options.cacheDir) {
      const why = this.options.offReason ? ` (${this.options.offReason})` : '';
      return `code cache off${why}, ${this.files.length} files compiled`;
    }
    return `code cache ${this.options.cacheDir}: ${count('accepted')} files from cache, ${count('rejected')} refused, ${count('missing')} without one${this.written > 0 ? `; ${this.written} written now` : ''}`;
  }

  save(): void {
    const dir = this.options.cacheDir;
    if (!dir || this.saved) return;
    this.saved = true;
    const todo = this.files.filter((f) => f.state !== 'accepted');
    if (todo.length === 0 || !this.ensureDir(dir)) return;
    for (const f of todo) {
      if (writeAtomically(this.cacheFileFor(f.name)!, () => encodeCacheFile(f.source!, f.script.createCachedData()))) this.written++;
    }
  }

  readNote(name: string): string | undefined {
    const dir = this.options.cacheDir;
    return dir ? readCache(noteFile(dir, name))?.toString('utf8') : undefined;
  }

  writeNote(name: string, text: string): void {
    const dir = this.options.cacheDir;
    if (dir && this.ensureDir(dir)) writeAtomically(noteFile(dir, name), () => Buffer.from(text, 'utf8'));
  }

  /** Whether `dir` exists, creating it (and clearing old builds' caches) if allowed. */
  private ensureDir(dir: string): boolean {
    try {
      if (!existsSync(dir)) {
        if (!this.options.mayCreate) return false;
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        removeOtherBuilds(dir);
      }
      return true;
    } catch {
      // A read-only disk or a file in the way only costs later starts their compile time.
      return existsSync(dir);
    }
  }
}

function noteFile(dir: string, name: string): string {
  return join(dir, `${name}.note`);
}

/**
 * Writes a whole file or nothing: concurrent connections (ansible forks) each write
 * whole files. False when it could not.
 */
function writeAtomically(file: string, content: () => Uint8Array): boolean {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, content(), { mode: 0o600 });
    renameSync(tmp, file);
    return true;
  } catch {
    try {
      rmSync(tmp, { force: true });
    } catch {
      // nothing more to do
    }
    return false;
  }
}

/** Another build's cache untouched this long is removed when a new build creates its own. */
export const STALE_BUILD_MS = 7 * 24 * 3600 * 1000;

/**
 * Caches of earlier builds or node versions are dead weight after an upgrade. One
 * written recently may belong to another installation still in use (a global and a
 * project copy): removing it would make the two rewrite their caches in turn.
 */
function removeOtherBuilds(dir: string): void {
  const parent = dirname(dir);
  const now = Date.now();
  for (const name of readdirSync(parent)) {
    const other = join(parent, name);
    if (other !== dir && now - statSync(other).mtimeMs > STALE_BUILD_MS) rmSync(other, { recursive: true, force: true });
  }
}

/**
 * Node's own modules that a session loads after the loader has started. Node keeps
 * cached bytecode for them, made under V8's default flags: once a flag is set, V8
 * refuses that cache and parses and compiles each of them from source, about 10 % of
 * the instructions of a short session. Loading them before the flag keeps their cache.
 * Modules missing from this list only cost their compile time.
 */
function loadBuiltinsFirst(env: NodeJS.ProcessEnv): void {
  const require = createRequire(import.meta.url);
  for (const id of ['node:net', 'node:http', 'node:https', 'node:tls', 'node:zlib', 'node:process']) require(id);
  // Modules that node loads on first use of these.
  void (require('node:util') as typeof import('node:util')).parseArgs;
  if (!sdkLikely(env)) return;
  // The AWS SDK's alone: ~3.5 ms of a start that does not load it.
  require('node:fs/promises');
  void globalThis.ReadableStream;
  void globalThis.WritableStream;
  void globalThis.crypto; // the Web Crypto global (the SDK's random values), once node's ES module loader no longer touched it
}

/**
 * Whether this run will load the AWS SDK: it does not with keys in the environment (see
 * src/aws/direct-route.ts, which decides). A wrong guess costs only the compile time of
 * the modules above.
 */
export function sdkLikely(env: NodeJS.ProcessEnv): boolean {
  if (SWITCH_ON.test(env.SSM_PROXY_USE_SDK ?? '')) return true;
  return !(env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY);
}

export function main(): void {
  const here = dirname(fileURLToPath(import.meta.url));
  loadBuiltinsFirst(process.env);
  // V8 refuses cached bytecode made under other flags, so the application's (see
  // src/cli/v8-flags.ts) are set before anything is compiled: every start then compiles
  // and caches under the same flags.
  setFlagsFromString(V8_FLAGS);
  const where = cacheDirFor(process.env, __SSM_BUILD_ID__);
  const setting = process.env.SSM_PROXY_CODE_CACHE;
  const offReason = !where && setting && !SWITCH_OFF.test(setting.trim()) ? 'SSM_PROXY_CODE_CACHE is not an absolute path; ignored' : undefined;
  const loader = new Loader({ entry: join(here, 'app', 'ssm-proxy.cjs'), cacheDir: where?.dir, mayCreate: where?.mayCreate, offReason, steps: __SSM_STEPS__ });
  (globalThis as Record<symbol, unknown>)[CODE_CACHE_HANDLE] = loader;
  loader.start();
}
