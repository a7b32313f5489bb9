// The sending half of the reliable channel (PROTOCOL.md §8.7, §12.4): sequence
// numbers, a bounded in-flight window, retransmission and pacing. Pure: it is
// told the time and hands frames to `transmit`.
import { PAYLOAD_OFFSET } from '../protocol/constants.ts';
import { ByteQueue } from './byte-queue.ts';
import { FrameSlots } from './frame-slots.ts';
import { RtoEstimator } from './rto.ts';
import { SeqRing } from './seq-ring.ts';
import { TokenBucket } from './token-bucket.ts';

export type RetransmitPolicy =
  /** Ours: every unacked frame has its own timer with exponential backoff. */
  | 'per-frame'
  /** The SSM agent's: every 100 ms look at the oldest unacked frame only (§8.5, quirk Q2). */
  | 'oldest-only';

export interface SenderConfig {
  window: number;
  maxPayload: number;
  frameRate: number;
  frameBurst: number;
  giveUpMs: number;
  retransmitPolicy: RetransmitPolicy;
  scanIntervalMs: number;
  maxRtoMs: number;
  /** Build data frames into reused slots (see FrameSlots for what the caller must then do). */
  reuseFrameBuffers?: boolean;
}

interface OutEntry {
  seq: number;
  frame: Buffer;
  /** The reused storage `frame` lives in, if any. */
  slot: Buffer | undefined;
  isData: boolean;
  firstSent: number;
  lastSent: number;
  deadline: number;
  attempts: number;
  everSent: boolean;
  retransmitted: boolean;
  /** Connected, unpaused time at the first send; drives the give-up rule. */
  activeAtFirstSend: number;
  /** Order of the first transmission among all frames. */
  sendIndex: number;
}

const EMPTY_FRAME = Buffer.alloc(0);
const MAX_SPARE_ENTRIES = 1024;
/**
 * Paced data frames go out this many at a time (~8 ms of the budget at 970 frames/s)
 * when that much is waiting: the process then wakes once per batch instead of once per
 * frame, which at the service's pace was most of its CPU. Fewer waiting frames wait for
 * fewer tokens (a keystroke is not held back), and never more than the burst.
 */
const PACED_BATCH = 8;

function blankEntry(): OutEntry {
  return { seq: 0, frame: EMPTY_FRAME, slot: undefined, isData: false, firstSent: 0, lastSent: 0, deadline: 0, attempts: 0, everSent: false, retransmitted: false, activeAtFirstSend: 0, sendIndex: -1 };
}

/** Builds a frame; into `into` when given (see encodeFrame). */
export type FrameBuilder = (seq: number, payloadType: number, payload: Buffer, into?: Buffer) => Buffer;

export class Sender {
  nextSeq = 0;
  readonly inflight = new SeqRing<OutEntry>();
  dataInflight = 0;
  /** Highest number of unacked data frames ever held; tests check it against the window. */
  maxDataInflight = 0;
  private readonly pending = new ByteQueue();
  /** Acked entries kept for reuse: one object per frame sent was most of the sender's garbage. */
  private readonly spareEntries: OutEntry[] = [];
  private readonly slots: FrameSlots | undefined;
  connected: boolean;
  paused = false;
  /** Our side holds back reading the peer (its acks too): that time does not count toward giving up. */
  giveUpClockHeld = false;
  readonly rto: RtoEstimator;
  private readonly bucket: TokenBucket;
  private activeMs = 0;
  private lastAdvance: number;
  private lastScan: number;
  private gaveUp = false;
  /** After a reconnect or resume: old frames go out again before any new one. */
  private resendPending = false;
  private sendCounter = 0;
  /** Highest sendIndex among acked frames: an unacked frame sent before it was probably lost. */
  private ackedSendIndex = -1;
  stats = { framesSent: 0, dataFramesSent: 0, retransmissions: 0, bytesQueued: 0, sentWhilePaused: 0 };

  constructor(
    private readonly cfg: SenderConfig,
    rto: RtoEstimator,
    private readonly build: FrameBuilder,
    private readonly transmit: (frame: Buffer) => void,
    private readonly onGiveUp: (seq: number, activeMs: number) => void,
    private readonly dataPayloadType: number,
    now: number,
    connected: boolean,
  ) {
    this.rto = rto;
    this.slots = cfg.reuseFrameBuffers ? new FrameSlots(PAYLOAD_OFFSET + cfg.maxPayload) : undefined;
    this.bucket = new TokenBucket(cfg.frameRate, cfg.frameBurst, now);
    this.lastAdvance = now;
    this.lastScan = now;
    this.connected = connected;
  }

  get canTransmit(): boolean {
    return this.connected && !this.paused;
  }

  /** Accrues connected, unpaused time; call before acting at `now`. */
  advance(now: number): void {
    if (now > this.lastAdvance) {
      if (this.canTransmit && !this.giveUpClockHeld) this.activeMs += now - this.lastAdvance;
      this.lastAdvance = now;
    }
  }

  /** Bytes queued and not yet framed. */
  get pendingBytes(): number {
    return this.pending.length;
  }

  /** Copies `data`: the caller may reuse its buffer once this returns. */
  queueData(data: Buffer): void {
    this.pending.push(data);
    this.stats.bytesQueued += data.length;
  }

  /** Handshake replies and flags: sequenced like data but never held back by the window. */
  sendControl(payloadType: number, payload: Buffer, now: number): number {
    const seq = this.nextSeq++;
    const entry = this.newEntry(seq, this.build(seq, payloadType, payload), undefined, false, now);
    this.inflight.add(seq, entry);
    if (this.canTransmit) {
      this.bucket.tryTake(now); // counts against the budget, but is never delayed by it
      this.sendEntry(entry, now);
    }
    return seq;
  }

  private newEntry(seq: number, frame: Buffer, slot: Buffer | undefined, isData: boolean, now: number): OutEntry {
    const e = this.spareEntries.pop() ?? blankEntry();
    e.seq = seq;
    e.frame = frame;
    e.slot = slot;
    e.isData = isData;
    e.firstSent = now;
    e.lastSent = now;
    e.deadline = now;
    e.attempts = 0;
    e.everSent = false;
    e.retransmitted = false;
    e.activeAtFirstSend = this.activeMs;
    e.sendIndex = -1;
    return e;
  }

  private sendEntry(e: OutEntry, now: number): void {
    if (e.everSent) {
      e.retransmitted = true;
      e.attempts++;
      this.stats.retransmissions++;
    } else {
      e.everSent = true;
      e.sendIndex = this.sendCounter++;
      e.firstSent = now;
      e.activeAtFirstSend = this.activeMs;
    }
    e.lastSent = now;
    e.deadline = now + this.timeoutFor(e);
    this.stats.framesSent++;
    if (e.isData) this.stats.dataFramesSent++;
    if (this.paused) this.stats.sentWhilePaused++;
    this.transmit(e.frame);
  }

  private timeoutFor(e: OutEntry): number {
    const base = this.rto.rto;
    return Math.min(base * 2 ** Math.min(e.attempts, 16), Math.max(this.cfg.maxRtoMs, base));
  }

  /** Frames worth waiting for before a paced send: the batch, or what is pending and fits the window. */
  private batchWanted(): number {
    return Math.min(PACED_BATCH, Math.ceil(this.pendingBytes / this.cfg.maxPayload), this.cfg.window - this.dataInflight);
  }

  /** Moves queued bytes into sequenced frames while the window, pacing and pause state allow. */
  pump(now: number): void {
    if (!this.canTransmit || this.resendPending) return;
    const max = this.cfg.maxPayload;
    if (this.pendingBytes > 0 && this.bucket.readyAt(now, this.batchWanted()) > now) return;
    while (this.pendingBytes > 0 && this.dataInflight < this.cfg.window) {
      if (!this.bucket.tryTake(now)) return;
      // A view into the queue: build() copies it into the frame before anything is queued.
      const payload = this.pending.take(max);
      const seq = this.nextSeq++;
      const slot = this.slots?.acquire();
      const entry = this.newEntry(seq, this.build(seq, this.dataPayloadType, payload, slot), slot, true, now);
      this.inflight.add(seq, entry);
      this.dataInflight++;
      if (this.dataInflight > this.maxDataInflight) this.maxDataInflight = this.dataInflight;
      this.sendEntry(entry, now);
    }
  }

  /** Returns false when the peer acked a sequence number we never sent. */
  onAck(seq: number, now: number): boolean {
    const e = this.inflight.get(seq);
    if (!e) return seq < this.nextSeq;
    this.inflight.delete(seq);
    if (e.isData) this.dataInflight--;
    if (e.slot !== undefined) this.slots!.retire(e.slot);
    if (e.sendIndex > this.ackedSendIndex) this.ackedSendIndex = e.sendIndex;
    // Karn's rule: a retransmitted frame's ack cannot tell which copy it answers.
    if (e.everSent && !e.retransmitted) this.rto.sample(Math.max(0, now - e.firstSent));
    // Nothing else holds an entry once it has left `inflight`: the next frame reuses it.
    e.frame = EMPTY_FRAME;
    e.slot = undefined;
    if (this.spareEntries.length < MAX_SPARE_ENTRIES) this.spareEntries.push(e);
    return true;
  }

  /** The owner has taken the frames transmitted so far (ReliableChannel.drain). */
  drained(): void {
    this.slots?.advance();
  }

  /** Slabs of frame slots allocated (tests). */
  get frameSlabs(): number {
    return this.slots?.slabs ?? 0;
  }

  /** Retransmits what is due; applies the give-up rule. */
  tick(now: number): void {
    if (!this.canTransmit) return;
    if (this.inflight.size === 0) {
      this.resendPending = false;
      return;
    }
    if (this.cfg.retransmitPolicy === 'oldest-only') {
      if (now - this.lastScan < this.cfg.scanIntervalMs) return;
      this.lastScan = now;
      const oldest = this.inflight.first()!;
      if (!oldest.everSent || now - oldest.lastSent > this.rto.rto) {
        if (this.bucket.tryTake(now)) this.sendEntry(oldest, now);
      }
    } else {
      let timedOut = false;
      let blocked = false;
      const ring = this.inflight;
      const lowest = ring.lowest;
      for (let s = lowest, end = ring.limit; s < end; s++) {
        const e = ring.at(s);
        if (e === undefined || e.deadline > now || !this.eligible(e, s === lowest)) continue;
        if (!this.bucket.tryTake(now)) {
          blocked = true;
          break;
        }
        if (e.everSent && !this.resendPending) timedOut = true;
        this.sendEntry(e, now);
      }
      if (timedOut) this.rto.backoff();
      if (!blocked) this.resendPending = false;
    }
    this.checkGiveUp();
  }

  private checkGiveUp(): void {
    if (this.gaveUp || this.cfg.giveUpMs <= 0) return;
    const oldest = this.inflight.first();
    if (oldest && oldest.everSent && this.activeMs - oldest.activeAtFirstSend > this.cfg.giveUpMs) {
      this.gaveUp = true;
      this.onGiveUp(oldest.seq, this.activeMs - oldest.activeAtFirstSend);
    }
  }

  /**
   * Acks are per frame, so they say which frames are missing. A timed-out frame is
   * resent when a frame sent after it has been acked (it is probably lost) or when it
   * is the oldest (a probe, backed off). When acks merely stall, for a GC pause or a
   * busy peer, that costs one probe instead of a window of duplicates.
   */
  private eligible(e: OutEntry, oldest: boolean): boolean {
    return oldest || !e.everSent || this.resendPending || e.sendIndex < this.ackedSendIndex;
  }

  /** After a reconnect or start_publication: everything unacked goes out again, in order (quirk Q2). */
  retransmitAll(now: number): void {
    const ring = this.inflight;
    for (let s = ring.lowest, end = ring.limit; s < end; s++) {
      const e = ring.at(s);
      if (e !== undefined) e.deadline = now;
    }
    if (this.cfg.retransmitPolicy === 'oldest-only') return; // the agent recovers one per scan
    // Keep sequence order on the wire: pump() sends nothing new until these are out.
    this.resendPending = this.inflight.size > 0;
    this.tick(now);
  }

  /** Retransmits unacked data frames now, once: used when the peer has just become able to take them. */
  retransmitDataNow(now: number): void {
    if (!this.canTransmit) return;
    const ring = this.inflight;
    for (let s = ring.lowest, end = ring.limit; s < end; s++) {
      const e = ring.at(s);
      if (e === undefined || !e.isData || !e.everSent || e.lastSent >= now) continue;
      if (!this.bucket.tryTake(now)) break;
      this.sendEntry(e, now);
    }
  }

  /** The earliest time at which tick() or pump() has work to do. */
  nextDeadline(now: number): number {
    if (!this.canTransmit) return Infinity;
    let t = Infinity;
    if (this.inflight.size > 0) {
      if (this.cfg.retransmitPolicy === 'oldest-only') t = this.lastScan + this.cfg.scanIntervalMs;
      else {
        const ring = this.inflight;
        const lowest = ring.lowest;
        for (let s = lowest, end = ring.limit; s < end; s++) {
          const e = ring.at(s);
          if (e !== undefined && e.deadline < t && this.eligible(e, s === lowest)) t = e.deadline;
        }
      }
      // A frame that is due waits for a token; do not report a deadline that has passed.
      if (t <= now) t = this.bucket.readyAt(now);
      if (this.cfg.giveUpMs > 0 && !this.gaveUp) {
        const oldest = this.inflight.first()!;
        t = Math.min(t, now + Math.max(1, this.cfg.giveUpMs - (this.activeMs - oldest.activeAtFirstSend) + 1));
      }
    }
    if (this.pendingBytes > 0 && this.dataInflight < this.cfg.window) t = Math.min(t, this.bucket.readyAt(now, this.batchWanted()));
    if (t !== Infinity && t < now) t = now;
    return t;
  }
}
