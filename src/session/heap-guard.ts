// A bound on the garbage V8 lets pile up in its old space during a transfer.
//
// In some runs (1 to 2 of 14 bench uploads, most often the first of a series), V8
// promotes the data path's short-lived objects: old space then fills with garbage at
// ~15 MB/s, and the next full collection comes only 8 MB or more later, so the
// process peaks at 74-83 MiB instead of 60-62. A heap snapshot taken in such a run
// found 7.8 MB live and nothing unusual; turning off allocation-site pretenuring and
// page promotion (at run time) did not prevent it. ssh starts us, so V8's heap
// cannot be sized at launch. Instead: once the heap has grown `slackBytes` past what
// the last full collection left, collect. Ordinary runs never get there; affected
// runs pay a full collection (~5 ms on this heap) per `slackBytes` of garbage.
import { createRequire } from 'node:module';
import { getHeapStatistics, setFlagsFromString } from 'node:v8';

export interface HeapGuardOptions {
  slackBytes?: number;
  /** Heap bytes in use (tests inject this). */
  usedBytes?: () => number;
  /** A full, compacting collection (tests inject this). */
  collect?: () => void;
}

export class HeapGuard {
  private readonly slack: number;
  private readonly used: () => number;
  private collectFn: (() => void) | undefined;
  private limit: number;
  /** Full collections this guard has asked for. */
  collections = 0;

  constructor(o: HeapGuardOptions = {}) {
    this.slack = o.slackBytes ?? 3 * 1024 * 1024;
    this.used = o.usedBytes ?? (() => getHeapStatistics().used_heap_size);
    this.collectFn = o.collect;
    this.limit = this.used() + this.slack;
  }

  /** Cheap (one heap statistics call); call it every megabyte or so of traffic. */
  check(): void {
    if (this.used() <= this.limit) return;
    (this.collectFn ??= exposeGc())();
    this.collections++;
    this.limit = this.used() + this.slack;
  }
}

/** V8's gc(): the flag must be set before the context that gets it is created. */
function exposeGc(): () => void {
  setFlagsFromString('--expose-gc');
  const vm = createRequire(import.meta.url)('node:vm') as typeof import('node:vm');
  return vm.runInNewContext('gc') as () => void;
}
