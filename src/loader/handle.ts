// What the loader (src/loader/loader.ts) offers the application it started.

export type CodeCacheState = 'accepted' | 'rejected' | 'missing';

export interface CodeCacheHandle {
  /** One line for -vv: where the cache is and how many files it served. */
  summary(): string;
  /** Writes the cache for every file that had none or had one V8 refused; once per process. */
  save(): void;
  /** A small text file kept beside the cache (this user's, 0600); undefined if there is none. */
  readNote(name: string): string | undefined;
  /** Replaces that file (atomically); failures are ignored. */
  writeNote(name: string, text: string): void;
  /**
   * Runs the files of import(`source`) ahead, one per turn of the event loop, for a module
   * the build lists (`source` as in the repository, e.g. 'src/aws/sdk.ts'); how many it ran.
   */
  loadInSteps(source: string): Promise<number>;
}

export const CODE_CACHE_HANDLE = Symbol.for('ssm-proxy.code-cache');

/** The loader's handle when the program was started by it (not under tsx or in tests). */
export function codeCacheHandle(): CodeCacheHandle | undefined {
  return (globalThis as Record<symbol, unknown>)[CODE_CACHE_HANDLE] as CodeCacheHandle | undefined;
}
