// Seeded fault injection for the simulated gateway. Each frame's fate is a function of the seed,
// the session's ordinal, the direction and the frame's identity ("the 2nd transmission of agent
// seq 7", "the 1st ack of client seq 3"), not of arrival order or timing. Two runs with the same
// seed therefore treat the same frames the same way even when timers make the runs diverge.
import { createHash } from 'node:crypto';
import { MessageType } from '../../src/protocol/constants.ts';
import { PAYLOAD_OFFSET } from '../../src/protocol/constants.ts';
import { commonMessageType } from '../../src/protocol/frame.ts';
import { parseAckSequence } from '../../src/protocol/payloads.ts';

export type Direction = 'clientToAgent' | 'agentToClient';
export const DIRECTIONS: readonly Direction[] = ['clientToAgent', 'agentToClient'];

/** Faults on binary frames travelling one way through the gateway. Probabilities are 0..1. */
export interface DirectionFaults {
  drop?: number;
  duplicate?: number;
  /** Hold a frame back and release it after the next `reorderAfter` frames (or holdMaxMs). */
  reorder?: number;
  reorderAfter?: number;
  delayMs?: number;
  jitterMs?: number;
  /** Flip a byte of the PayloadDigest field. */
  corruptDigest?: number;
  /** Flip a byte of the payload (of the digest when the payload is empty). */
  corruptPayload?: number;
  /** Drop probability for acknowledge frames; when unset acks use `drop`. */
  dropAcks?: number;
}

export interface CloseClientFault {
  /** Close once this many websocket bytes (both directions) went over one connection. */
  afterBytes?: number;
  /** Close this long after the connection was accepted. */
  afterMs?: number;
  /** Every connection (true) or only the first one that qualifies (false, default). */
  repeat?: boolean;
  /** 'terminate' drops the TCP connection without a close frame (code 1006 at the client). */
  mode?: 'terminate' | 'close';
  code?: number;
  reason?: string;
}

export interface FaultConfig {
  clientToAgent?: DirectionFaults;
  agentToClient?: DirectionFaults;
  /** Drop the first transmission of these sequence numbers (e.g. agentToClient [1]: HandshakeComplete). */
  dropFirst?: { agentToClient?: number[]; clientToAgent?: number[] };
  closeClient?: CloseClientFault;
  /** Targets (instance ids; true = all) whose port has no listener: the agent's dial is refused. */
  refuseTargets?: string[] | boolean;
  /** From this long after the session's agent started, every agent->client ack is dropped. */
  agentStopsAckingAfterMs?: number;
  /** Writes to the target port limited to this many bytes per second. */
  slowTargetBytesPerSec?: number;
  /** The agent waits this long after HandshakeComplete before dialling the target. */
  dialDelayMs?: number;
  /**
   * MGS pauses the client as if the agent's websocket were reconnecting (§12.1):
   * pause_publication every `everyMs` (first after `firstAtMs`), start_publication `forMs` later.
   */
  pauseClient?: { everyMs?: number; firstAtMs?: number; forMs: number; times?: number };
  /** Longest time a reordered frame is held. Default 200 ms. */
  holdMaxMs?: number;
  /**
   * The gateway answers this many websocket upgrades (counted over the whole simulator)
   * with HTTP 503 before it accepts any: an HTTP upgrade failure (§11.6 step 1).
   */
  refuseUpgrades?: number;
}

export type FaultAction =
  | 'pass'
  | 'drop'
  | 'drop-first'
  | 'drop-ack'
  | 'stop-acking'
  | 'duplicate'
  | 'hold'
  | 'corrupt-digest'
  | 'corrupt-payload';

export interface FaultDecision {
  dir: Direction;
  /** Frame identity: d<seq>#<n> data, a<ackedSeq>#<n> ack, o#<n> anything else. */
  key: string;
  action: FaultAction;
  delayMs: number;
}

export type ActionCounts = Record<FaultAction, number>;

export interface FaultCounts {
  clientToAgent: ActionCounts;
  agentToClient: ActionCounts;
  /** Websocket closes done by closeClient, and by the periodic recycle. */
  closes: number;
  recycles: number;
  pausesInjected: number;
  refusedDials: number;
}

function emptyActions(): ActionCounts {
  return { pass: 0, drop: 0, 'drop-first': 0, 'drop-ack': 0, 'stop-acking': 0, duplicate: 0, hold: 0, 'corrupt-digest': 0, 'corrupt-payload': 0 };
}

/** The header fields the injector keys on, read without validating the frame. */
export interface FrameHeader {
  kind: 'data' | 'ack' | 'other';
  messageType: string;
  seq: number;
  payloadType: number;
  ackedSeq: number;
}

function peekMessageType(buf: Buffer): string {
  return commonMessageType(buf) ?? buf.toString('latin1', 4, 36).replace(/[\0\s]+$/, '').replace(/^[\0\s]+/, '');
}

export function peekHeader(buf: Buffer): FrameHeader {
  if (buf.length < PAYLOAD_OFFSET) return { kind: 'other', messageType: '', seq: -1, payloadType: -1, ackedSeq: -1 };
  const messageType = peekMessageType(buf);
  const seqHigh = buf.readInt32BE(48);
  const seq = seqHigh >= 0 && seqHigh < 0x200000 ? seqHigh * 0x100000000 + buf.readUInt32BE(52) : -1;
  const payloadType = buf.readUInt32BE(112);
  if (messageType === MessageType.InputStreamData || messageType === MessageType.OutputStreamData) {
    return { kind: 'data', messageType, seq, payloadType, ackedSeq: -1 };
  }
  if (messageType === MessageType.Acknowledge) {
    // An ack we cannot read is keyed like any other frame.
    const a = parseAckSequence(buf.subarray(PAYLOAD_OFFSET));
    if (a.ok && a.value >= 0) return { kind: 'ack', messageType, seq, payloadType, ackedSeq: a.value };
  }
  return { kind: 'other', messageType, seq, payloadType, ackedSeq: -1 };
}

/** Uniform draws in [0,1) derived from the seed and a frame identity. */
export function draws(seed: number, sessionOrdinal: number, dir: Direction, key: string): number[] {
  const h = createHash('sha256').update(`${seed}/${sessionOrdinal}/${dir}/${key}`).digest();
  const out: number[] = [];
  for (let i = 0; i < 8; i++) out.push(h.readUInt32BE(i * 4) / 4294967296);
  return out;
}

function hasFrameFaults(d: DirectionFaults | undefined): boolean {
  if (!d) return false;
  return Boolean(d.drop || d.duplicate || d.reorder || d.delayMs || d.jitterMs || d.corruptDigest || d.corruptPayload || d.dropAcks);
}

/** A copy of `buf` with one byte flipped: in the digest field or in the payload. */
export function corrupt(buf: Buffer, where: 'digest' | 'payload', u: number): Buffer {
  const c = Buffer.from(buf);
  if (c.length < PAYLOAD_OFFSET) {
    if (c.length > 0) c[Math.floor(u * c.length)] ^= 0xff;
    return c;
  }
  const payloadLen = c.length - PAYLOAD_OFFSET;
  const i = where === 'payload' && payloadLen > 0 ? PAYLOAD_OFFSET + Math.floor(u * payloadLen) : 80 + Math.floor(u * 32);
  c[i] ^= 0xff;
  return c;
}

const DECISION_LIMIT = 200_000;

interface Held {
  bytes: Buffer;
  corrupted: boolean;
  remaining: number;
  timer: NodeJS.Timeout;
}

/** Delivers one copy of a frame; `corrupted` copies must not count as delivered data. */
export type Deliver = (bytes: Buffer, corrupted: boolean) => void;

/**
 * One session's injector. `apply` decides a frame's fate and calls `deliver` zero, one or two
 * times, now or later. `reset` (websocket gone) cancels what is still held or delayed.
 */
export class FaultInjector {
  readonly decisions: FaultDecision[] = [];
  decisionsTruncated = false;
  readonly counts: FaultCounts = { clientToAgent: emptyActions(), agentToClient: emptyActions(), closes: 0, recycles: 0, pausesInjected: 0, refusedDials: 0 };
  private readonly transmissions: Record<Direction, Map<string, number>> = { clientToAgent: new Map(), agentToClient: new Map() };
  private readonly held: Record<Direction, Held[]> = { clientToAgent: [], agentToClient: [] };
  private readonly timers = new Set<NodeJS.Timeout>();
  private generation = 0;
  private readonly active: Record<Direction, boolean>;
  private readonly dropFirst: Record<Direction, Set<number>>;

  constructor(
    readonly config: FaultConfig,
    readonly seed: number,
    readonly sessionOrdinal: number,
    /** Monotonic ms since this session's agent started. */
    private readonly sinceStart: () => number,
  ) {
    this.dropFirst = {
      clientToAgent: new Set(config.dropFirst?.clientToAgent ?? []),
      agentToClient: new Set(config.dropFirst?.agentToClient ?? []),
    };
    this.active = {
      clientToAgent: hasFrameFaults(config.clientToAgent) || this.dropFirst.clientToAgent.size > 0,
      agentToClient: hasFrameFaults(config.agentToClient) || this.dropFirst.agentToClient.size > 0 || config.agentStopsAckingAfterMs !== undefined,
    };
  }

  /** Decides the fate of one frame. Pure given the seed, the frame identity and the clock (stop-acking). */
  decide(dir: Direction, h: FrameHeader): FaultDecision & { u: number[] } {
    const base = h.kind === 'data' ? `d${h.seq}` : h.kind === 'ack' ? `a${h.ackedSeq}` : 'o';
    const m = this.transmissions[dir];
    const n = m.get(base) ?? 0;
    m.set(base, n + 1);
    const key = `${base}#${n}`;
    const u = draws(this.seed, this.sessionOrdinal, dir, key);
    const f = this.config[dir] ?? {};
    const delayMs = Math.round((f.delayMs ?? 0) + u[3] * (f.jitterMs ?? 0));
    let action: FaultAction = 'pass';
    if (h.kind === 'data' && n === 0 && this.dropFirst[dir].has(h.seq)) action = 'drop-first';
    else if (dir === 'agentToClient' && h.kind === 'ack' && this.config.agentStopsAckingAfterMs !== undefined && this.sinceStart() >= this.config.agentStopsAckingAfterMs) action = 'stop-acking';
    else if (h.kind === 'ack' && f.dropAcks !== undefined) {
      if (u[0] < f.dropAcks) action = 'drop-ack';
    } else if (u[0] < (f.drop ?? 0)) action = 'drop';
    if (action === 'pass') {
      if (u[4] < (f.corruptDigest ?? 0)) action = 'corrupt-digest';
      else if (u[5] < (f.corruptPayload ?? 0)) action = 'corrupt-payload';
      else if (u[1] < (f.duplicate ?? 0)) action = 'duplicate';
      else if (u[2] < (f.reorder ?? 0)) action = 'hold';
    }
    return { dir, key, action, delayMs, u };
  }

  apply(dir: Direction, frame: Buffer, deliver: Deliver): void {
    if (!this.active[dir]) {
      deliver(frame, false);
      return;
    }
    const d = this.decide(dir, peekHeader(frame));
    this.counts[dir][d.action]++;
    if (this.decisions.length < DECISION_LIMIT) this.decisions.push({ dir: d.dir, key: d.key, action: d.action, delayMs: d.delayMs });
    else this.decisionsTruncated = true;
    switch (d.action) {
      case 'drop':
      case 'drop-first':
      case 'drop-ack':
      case 'stop-acking':
        return;
      case 'corrupt-digest':
      case 'corrupt-payload':
        this.later(dir, d.delayMs, corrupt(frame, d.action === 'corrupt-digest' ? 'digest' : 'payload', d.u[6]), true, deliver);
        return;
      case 'duplicate':
        this.later(dir, d.delayMs, frame, false, deliver);
        this.later(dir, d.delayMs, frame, false, deliver);
        return;
      case 'hold': {
        const gen = this.generation;
        const entry: Held = {
          bytes: frame,
          corrupted: false,
          remaining: Math.max(1, this.config[dir]?.reorderAfter ?? 2),
          timer: setTimeout(() => {
            this.timers.delete(entry.timer);
            const list = this.held[dir];
            const i = list.indexOf(entry);
            if (i >= 0) list.splice(i, 1);
            if (gen === this.generation) deliver(entry.bytes, false);
          }, this.config.holdMaxMs ?? 200),
        };
        this.timers.add(entry.timer);
        this.held[dir].push(entry);
        return;
      }
      default:
        this.later(dir, d.delayMs, frame, false, deliver);
    }
  }

  private later(dir: Direction, delayMs: number, bytes: Buffer, corrupted: boolean, deliver: Deliver): void {
    const send = () => {
      deliver(bytes, corrupted);
      this.releaseHeld(dir, deliver);
    };
    if (delayMs <= 0) {
      send();
      return;
    }
    const gen = this.generation;
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (gen === this.generation) send();
    }, delayMs);
    this.timers.add(t);
  }

  /** A frame went past the held ones: count it, and release those whose turn has come. */
  private releaseHeld(dir: Direction, deliver: Deliver): void {
    const list = this.held[dir];
    if (list.length === 0) return;
    const due: Held[] = [];
    for (const h of list) if (--h.remaining <= 0) due.push(h);
    for (const h of due) {
      list.splice(list.indexOf(h), 1);
      clearTimeout(h.timer);
      this.timers.delete(h.timer);
      deliver(h.bytes, h.corrupted);
    }
  }

  /** The client's websocket went away: frames still held or delayed were lost with it. */
  reset(): void {
    this.generation++;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.held.clientToAgent = [];
    this.held.agentToClient = [];
  }

  dispose(): void {
    this.reset();
  }
}

/** True when the close-client fault says this connection should be closed now. */
export function closeDue(f: CloseClientFault | undefined, bytes: number, alreadyClosedOne: boolean): boolean {
  if (!f || f.afterBytes === undefined) return false;
  if (alreadyClosedOne && !f.repeat) return false;
  return bytes >= f.afterBytes;
}
