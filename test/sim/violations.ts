// Strict accounting of what a client sends to the simulated gateway (PROTOCOL.md §3-§6, §8, §12).
// Every client frame is inspected here, as the client sent it, before fault injection touches it.
// The monitor also applies the service's limits (frame budget, payload size, pause) and says
// whether the frame may be relayed to the agent.
import { MessageType, PayloadFlag, PayloadType } from '../../src/protocol/constants.ts';
import { decodeFrame, type Frame } from '../../src/protocol/frame.ts';
import { parseAck, parseFlag, parseHandshakeResponse } from '../../src/protocol/payloads.ts';
import { TokenBucket } from '../../src/channel/token-bucket.ts';

export const VIOLATION_KINDS = [
  'bad-digest',
  'bad-header',
  'unknown-message-type',
  'sequence-gap',
  'sequence-regression',
  'data-before-handshake',
  'sent-while-paused',
  'missing-ack',
  'ack-unknown-seq',
  'oversized-payload',
  'budget-overrun',
  'disconnect-to-port',
  'text-after-first',
  // Not in the brief's list: a well-formed frame whose payload is not what its type promises
  // (ack JSON that does not parse, a flag that is not 4 bytes or not 1/2, a malformed
  // HandshakeResponse, a payload type a Port session never carries).
  'bad-payload',
] as const;

export type ViolationKind = (typeof VIOLATION_KINDS)[number];
export type ViolationCounts = Record<ViolationKind, number>;

export function emptyCounts(): ViolationCounts {
  return Object.fromEntries(VIOLATION_KINDS.map((k) => [k, 0])) as ViolationCounts;
}

export function totalOf(c: ViolationCounts): number {
  let n = 0;
  for (const k of VIOLATION_KINDS) n += c[k];
  return n;
}

/** Only the non-zero counters, for short assertions and log lines. */
export function nonZero(c: ViolationCounts): Partial<ViolationCounts> {
  const out: Partial<ViolationCounts> = {};
  for (const k of VIOLATION_KINDS) if (c[k] > 0) out[k] = c[k];
  return out;
}

export interface ViolationRecord {
  kind: ViolationKind;
  sessionId: string;
  /** Epoch ms. */
  at: number;
  detail: string;
}

const RECENT_LIMIT = 500;

/** Simulator-wide counters plus a bounded list of the latest records. */
export class ViolationLog {
  readonly counts = emptyCounts();
  readonly recent: ViolationRecord[] = [];

  constructor(private readonly onRecord?: (r: ViolationRecord) => void) {}

  add(kind: ViolationKind, sessionId: string, detail: string): void {
    this.counts[kind]++;
    const r: ViolationRecord = { kind, sessionId, at: Date.now(), detail };
    this.recent.push(r);
    if (this.recent.length > RECENT_LIMIT) this.recent.shift();
    this.onRecord?.(r);
  }

  total(): number {
    return totalOf(this.counts);
  }
}

export interface MonitorConfig {
  /** Largest client stream payload; Infinity disables the check. */
  maxClientPayload: number;
  /** Client input_stream_data frames per second (data and retransmissions); 0 disables the budget. */
  frameRate: number;
  frameBurst: number;
  /** Frames may still be in flight this long after pause_publication went out. */
  pauseGraceMs: number;
  missingAckMs: number;
}

export type Verdict =
  | { forward: true }
  /** budget/oversize: the service limit was hit and a pause episode should start. */
  | { forward: false; reason: 'budget' | 'oversize' | 'paused' };

export interface MonitorStats {
  framesFromClient: number;
  bytesFromClient: number;
  dataFramesFromClient: number;
  acksFromClient: number;
  /** Client input_stream_data whose seq had been seen before, byte-identical. */
  retransmissionsSeen: number;
  droppedWhilePaused: number;
  droppedOverBudget: number;
  droppedOversize: number;
}

const FORWARD: Verdict = { forward: true };
/** Forget frame digests this far below the highest sequence number, to bound memory. */
const SEEN_HORIZON = 200_000;

function isCleanHeader(warnings: readonly string[]): boolean {
  return warnings.length === 0;
}

/**
 * Per-session inspector. Pure apart from the clock values it is handed: the gateway calls it
 * for every client message, for every agent frame actually written to the client, and when
 * pause/start_publication go out.
 */
export class ClientMonitor {
  readonly counts = emptyCounts();
  readonly stats: MonitorStats = {
    framesFromClient: 0,
    bytesFromClient: 0,
    dataFramesFromClient: 0,
    acksFromClient: 0,
    retransmissionsSeen: 0,
    droppedWhilePaused: 0,
    droppedOverBudget: 0,
    droppedOversize: 0,
  };
  private highestSeq = -1;
  private readonly seen = new Map<number, string>();
  /** Agent HandshakeComplete has been written to a client websocket. */
  handshakeCompleteSent = false;
  private agentHighest = -1;
  private readonly agentHoles = new Set<number>();
  /** Agent seq -> time it was first written to the current websocket, until the client acks it. */
  private readonly awaitingAck = new Map<number, number>();
  private readonly missingCounted = new Set<number>();
  private pausedAt: number | null = null;
  private readonly bucket: TokenBucket | null;

  constructor(
    private readonly cfg: MonitorConfig,
    private readonly report: (kind: ViolationKind, detail: string) => void,
    now: number,
  ) {
    this.bucket = cfg.frameRate > 0 ? new TokenBucket(cfg.frameRate, cfg.frameBurst, now) : null;
  }

  get paused(): boolean {
    return this.pausedAt !== null;
  }

  private violation(kind: ViolationKind, detail: string): void {
    this.counts[kind]++;
    this.report(kind, detail);
  }

  /** A text websocket message after the OpenDataChannel frame. */
  inspectText(length: number): void {
    this.stats.framesFromClient++;
    this.stats.bytesFromClient += length;
    this.violation('text-after-first', `text message of ${length} bytes after OpenDataChannel`);
  }

  // The last frame decoded here, so the agent need not decode (and hash) it again when it is
  // handed over at once (a WeakMap of every frame cost the garbage collector more than it saved).
  private lastBuf: Buffer | undefined;
  private lastFrame: Frame | undefined;

  /** The decoding of `buf` if it is the frame inspected last. */
  decodedFrame(buf: Buffer): Frame | undefined {
    return buf === this.lastBuf ? this.lastFrame : undefined;
  }

  /** A binary websocket message from the client. */
  inspectBinary(buf: Buffer, now: number): Verdict {
    this.stats.framesFromClient++;
    this.stats.bytesFromClient += buf.length;
    this.lastBuf = this.lastFrame = undefined;
    const r = decodeFrame(buf);
    if (!r.ok) {
      if (r.error.field === 'payloadDigest') this.violation('bad-digest', r.error.reason);
      else this.violation('bad-header', `${r.error.field}: ${r.error.reason}`);
      return FORWARD; // relayed unchanged, like MGS; the agent rejects it
    }
    const f = r.value;
    this.lastBuf = buf;
    this.lastFrame = f;
    if (!isCleanHeader(f.warnings)) this.violation('bad-header', `header: ${f.warnings.join(', ')}`);

    if (f.messageType === MessageType.Acknowledge) {
      this.stats.acksFromClient++;
      const a = parseAck(f.payload);
      if (!a.ok) {
        this.violation('bad-payload', `acknowledge: ${a.error.field} ${a.error.reason}`);
        return FORWARD;
      }
      const seq = a.value.acknowledgedSequenceNumber;
      if (seq > this.agentHighest || this.agentHoles.has(seq)) {
        this.violation('ack-unknown-seq', `ack for agent seq ${seq}, which was never sent to the client`);
      } else {
        this.awaitingAck.delete(seq);
      }
      return FORWARD;
    }
    if (f.messageType !== MessageType.InputStreamData) {
      this.violation('unknown-message-type', `client sent ${JSON.stringify(f.messageType)}`);
      return FORWARD;
    }

    this.stats.dataFramesFromClient++;
    const seq = f.sequenceNumber;
    // The whole header identifies the bytes: it carries the PayloadDigest, which the
    // decoder has just checked against the payload. No need to hash every frame again.
    const digest = buf.toString('latin1', 0, Math.min(buf.length, 120));
    const before = this.seen.get(seq);
    let firstSight = false;
    if (before !== undefined) {
      if (before === digest) this.stats.retransmissionsSeen++;
      else this.violation('sequence-regression', `seq ${seq} was sent again with different bytes`);
    } else if (seq <= this.highestSeq - SEEN_HORIZON) {
      this.stats.retransmissionsSeen++; // too old to compare; assume a retransmission
    } else {
      firstSight = true;
      if (seq > this.highestSeq + 1) this.violation('sequence-gap', `seq ${seq} after highest seq ${this.highestSeq}`);
      this.seen.set(seq, digest);
      if (seq > this.highestSeq) {
        this.highestSeq = seq;
        const horizon = seq - SEEN_HORIZON;
        // Seqs arrive nearly in order, so the oldest are at the front of the map: stop at the
        // first one still inside the horizon (a scan of the whole map per frame was O(n²)).
        if (horizon > 0 && this.seen.size > SEEN_HORIZON) {
          for (const k of this.seen.keys()) {
            if (k >= horizon) break;
            this.seen.delete(k);
          }
        }
      }
    }
    if (firstSight) this.checkPayload(f.payloadType, f.payload, seq);

    if (f.payload.length > this.cfg.maxClientPayload) {
      this.violation('oversized-payload', `seq ${seq} carries ${f.payload.length} bytes (limit ${this.cfg.maxClientPayload})`);
      this.stats.droppedOversize++;
      return this.pausedAt === null ? { forward: false, reason: 'oversize' } : { forward: false, reason: 'paused' };
    }
    if (this.pausedAt !== null) {
      if (now - this.pausedAt > this.cfg.pauseGraceMs) {
        this.violation('sent-while-paused', `seq ${seq} arrived ${Math.round(now - this.pausedAt)} ms after pause_publication`);
      }
      this.stats.droppedWhilePaused++;
      return { forward: false, reason: 'paused' };
    }
    if (this.bucket && !this.bucket.tryTake(now)) {
      this.violation('budget-overrun', `seq ${seq} exceeds ${this.cfg.frameRate} frames/s (burst ${this.cfg.frameBurst})`);
      this.stats.droppedOverBudget++;
      return { forward: false, reason: 'budget' };
    }
    return FORWARD;
  }

  /** Checks that only apply once per sequence number (a retransmission is not a second offence). */
  private checkPayload(pt: number, payload: Buffer, seq: number): void {
    switch (pt) {
      case PayloadType.Output:
        if (!this.handshakeCompleteSent) this.violation('data-before-handshake', `Output at seq ${seq} before HandshakeComplete was sent`);
        return;
      case PayloadType.HandshakeResponse: {
        const h = parseHandshakeResponse(payload);
        if (!h.ok) this.violation('bad-payload', `HandshakeResponse: ${h.error.field} ${h.error.reason}`);
        return;
      }
      case PayloadType.Flag: {
        const fl = parseFlag(payload);
        if (!fl.ok) this.violation('bad-payload', `Flag: ${fl.error.reason}`);
        else if (fl.value === PayloadFlag.DisconnectToPort) this.violation('disconnect-to-port', `DisconnectToPort at seq ${seq} in an SSH session`);
        else if (fl.value !== PayloadFlag.TerminateSession) this.violation('bad-payload', `Flag value ${fl.value} at seq ${seq}`);
        return;
      }
      case PayloadType.EncChallengeResponse:
        return; // legal in KMS sessions; the agent decides
      default:
        this.violation('bad-payload', `payload type ${pt} at seq ${seq} is not used in Port sessions`);
    }
  }

  /** An agent frame was written to the client's websocket (after faults; never a corrupted copy). */
  onAgentFrameSent(messageType: string, seq: number, payloadType: number, now: number): void {
    if (messageType !== MessageType.OutputStreamData) return;
    if (payloadType === PayloadType.HandshakeComplete) this.handshakeCompleteSent = true;
    if (seq > this.agentHighest) {
      for (let s = this.agentHighest + 1; s < seq; s++) this.agentHoles.add(s);
      this.agentHighest = seq;
    } else {
      this.agentHoles.delete(seq);
    }
    if (!this.missingCounted.has(seq) && !this.awaitingAck.has(seq)) this.awaitingAck.set(seq, now);
  }

  /** The websocket went away: whatever was in flight to the client may never have reached it. */
  onDetach(): void {
    this.awaitingAck.clear();
    this.pausedAt = null;
  }

  onPauseSent(now: number): void {
    this.pausedAt = now;
  }

  onStartSent(): void {
    this.pausedAt = null;
  }

  /** Counts frames unacked for missingAckMs; returns when to look again (Infinity: nothing pending). */
  checkMissingAcks(now: number): number {
    for (const [seq, at] of this.awaitingAck) {
      if (now - at < this.cfg.missingAckMs) return at + this.cfg.missingAckMs;
      this.awaitingAck.delete(seq);
      this.missingCounted.add(seq);
      this.violation('missing-ack', `agent seq ${seq} unacked ${Math.round(now - at)} ms after it was delivered`);
    }
    return Infinity;
  }

  get awaitingAckCount(): number {
    return this.awaitingAck.size;
  }
}
