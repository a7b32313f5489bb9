// The reliable, ordered data channel for one session, in either role (PROTOCOL.md
// §6, §8, §9, §12). No sockets and no timers: it is fed websocket messages,
// outgoing bytes and the time, and it returns frames to send, bytes to deliver,
// events and the next deadline (drain() and nextDeadline()).
import {
  ActionStatus,
  DEFAULT_MAX_PAYLOAD,
  MessageType,
  PayloadType,
} from '../protocol/constants.ts';
import { ackSequenceOf, decodeFrame, encodeAckFrame, encodeFrame, type Frame, type FrameFields } from '../protocol/frame.ts';
import {
  encodeAck,
  encodeFlag,
  encodeHandshakeComplete,
  encodeHandshakeRequest,
  encodeHandshakeResponse,
  parseAckSequence,
  parseChannelClosed,
  parseFlag,
  parseHandshakeComplete,
  parseHandshakeRequest,
  parseHandshakeResponse,
  parseSessionTypeParameters,
  type ChannelClosed,
  type HandshakeRequest,
  type HandshakeResponse,
  type ProcessedClientAction,
  type RequestedClientAction,
} from '../protocol/payloads.ts';
import { describeError, type ProtocolError } from '../protocol/result.ts';
import { REFERENCE_RTO, RtoEstimator, type RtoConfig } from './rto.ts';
import { FlipArena } from './frame-slots.ts';
import { Sender, type RetransmitPolicy } from './sender.ts';

const EMPTY = Buffer.alloc(0);

export type Role = 'client' | 'agent';

export interface ChannelConfig {
  role: Role;
  /** Monotonic milliseconds at construction. */
  now: number;
  /** Wall clock for CreatedDate (epoch ms). */
  wallClock?: () => number;
  randomUUID?: () => string;
  /** Unacked data frames allowed in flight (§8.7: 256). */
  window?: number;
  maxPayload?: number;
  /** Sequenced frames per second we may send; 0 = unlimited. */
  frameRate?: number;
  frameBurst?: number;
  /** Out-of-order frames held for reordering. */
  incomingLimit?: number;
  incomingByteLimit?: number;
  /** Give up when the oldest frame stays unacked this long while connected and unpaused; 0 = never. */
  giveUpMs?: number;
  retransmitPolicy?: RetransmitPolicy;
  rto?: Partial<RtoConfig>;
  /** Whether the transport is up at construction. */
  connected?: boolean;
  /**
   * Build data frames into storage that is reused once they are acked, and acks into
   * storage reused two drain() calls later. Only for an owner that writes or copies
   * every drain()'s frames before its next drain().
   */
  reuseFrameBuffers?: boolean;
  // client role
  clientVersion?: string;
  // agent role
  agentVersion?: string;
  sessionType?: string;
  properties?: unknown;
  extraActions?: RequestedClientAction[];
  customerMessage?: string;
}

/** Peer behaviour worth logging (client) or counting as a violation (simulator). */
export type AnomalyKind =
  | 'decode-error'
  | 'unknown-type'
  | 'wrong-direction'
  | 'ack-unknown-seq'
  | 'bad-ack'
  | 'data-before-handshake'
  | 'unexpected-payload-type'
  | 'bad-payload'
  | 'buffer-full'
  | 'frame-warning';

export type ChannelEvent =
  | { type: 'handshake-request'; request: HandshakeRequest }
  | { type: 'handshake-response'; response: HandshakeResponse }
  | { type: 'ready'; customerMessage: string }
  | { type: 'flag'; flag: number }
  /** `stranded`: output bytes received (and acked) behind a gap that will now never be filled. */
  | { type: 'channel-closed'; closed: ChannelClosed; stranded: number }
  | { type: 'paused' }
  | { type: 'resumed' }
  | { type: 'drain' }
  | { type: 'fatal'; kind: 'handshake' | 'protocol'; message: string }
  | { type: 'give-up'; seq: number; unackedMs: number }
  | { type: 'anomaly'; kind: AnomalyKind; detail: string; error?: ProtocolError };

export interface ChannelOutput {
  transmit: Buffer[];
  deliver: Buffer[];
  events: ChannelEvent[];
}

const WRITE_HIGH_WATER = 64 * 1024;

export class ReliableChannel {
  readonly role: Role;
  private readonly sender: Sender;
  /** Where acks are built when reuseFrameBuffers is on (a few hundred per turn fit). */
  private readonly ackStorage: FlipArena | undefined;
  private readonly takeAckStorage: ((bytes: number) => Buffer | undefined) | undefined;
  private readonly wall: () => number;
  /** Injected MessageId source (tests); by default the encoder draws random ids. */
  private readonly uuid: (() => string) | undefined;
  private readonly streamFields: FrameFields;
  private readonly outType: string;
  private readonly inType: string;
  private readonly incomingLimit: number;
  private readonly incomingByteLimit: number;
  private expected = 0;
  private readonly buffered = new Map<number, Frame>();
  private bufferedBytes = 0;
  private out: ChannelOutput = { transmit: [], deliver: [], events: [] };
  private consumerReady = true;
  private writeBlocked = false;
  private handshakeStarted = false;
  /** Client: HandshakeComplete received. Agent: HandshakeComplete sent. */
  ready = false;
  failed = false;
  closed = false;
  agentVersion = '';
  peerClientVersion = '';
  private sawPeerData = false;
  private readonly cfg: ChannelConfig;
  private handshakeSentAt = 0;
  stats = { framesReceived: 0, duplicates: 0, outOfOrder: 0, acksSent: 0, bytesDelivered: 0, dropped: 0 };

  constructor(cfg: ChannelConfig) {
    this.cfg = cfg;
    this.role = cfg.role;
    this.wall = cfg.wallClock ?? Date.now;
    this.uuid = cfg.randomUUID;
    this.outType = cfg.role === 'client' ? MessageType.InputStreamData : MessageType.OutputStreamData;
    this.streamFields = { messageType: this.outType, createdDate: 0, sequenceNumber: 0, flags: 0, messageId: undefined, payloadType: 0, payload: EMPTY };
    this.inType = cfg.role === 'client' ? MessageType.OutputStreamData : MessageType.InputStreamData;
    this.incomingLimit = cfg.incomingLimit ?? (cfg.role === 'client' ? 10_000 : 100_000);
    this.incomingByteLimit = cfg.incomingByteLimit ?? 16 * 1024 * 1024;
    const frameRate = cfg.frameRate ?? 0;
    // The client seeds its estimate from the first sample and keeps a 100 ms floor:
    // losses on this channel come mostly from reconnects and pauses, which are
    // recovered at once, while spurious retransmissions cost frame budget.
    const clientRto = cfg.role === 'client' ? { seedFromFirstSample: true, minRto: 100 } : {};
    const rto = new RtoEstimator({ ...REFERENCE_RTO, ...clientRto, ...cfg.rto });
    this.ackStorage = cfg.reuseFrameBuffers ? new FlipArena(64 * 1024) : undefined;
    const acks = this.ackStorage;
    this.takeAckStorage = acks ? (n) => acks.take(n) : undefined;
    this.sender = new Sender(
      {
        window: cfg.window ?? 256,
        maxPayload: cfg.maxPayload ?? DEFAULT_MAX_PAYLOAD,
        frameRate,
        frameBurst: cfg.frameBurst ?? Math.max(1, Math.ceil(frameRate / 50)),
        giveUpMs: cfg.giveUpMs ?? (cfg.role === 'client' ? 300_000 : 0),
        retransmitPolicy: cfg.retransmitPolicy ?? 'per-frame',
        scanIntervalMs: 100,
        maxRtoMs: rto.config.maxRto,
        reuseFrameBuffers: cfg.reuseFrameBuffers ?? false,
      },
      rto,
      (seq, pt, payload, into) => this.buildStreamFrame(seq, pt, payload, into),
      (frame) => this.out.transmit.push(frame),
      (seq, ms) => this.out.events.push({ type: 'give-up', seq, unackedMs: ms }),
      PayloadType.Output,
      cfg.now,
      cfg.connected ?? true,
    );
  }

  // ---- inputs ----

  /** Agent role: send the HandshakeRequest (§6.1). */
  startHandshake(now: number): void {
    if (this.role !== 'agent' || this.handshakeStarted) return;
    this.handshakeStarted = true;
    this.handshakeSentAt = now;
    const actions: RequestedClientAction[] = [
      { actionType: 'SessionType', actionParameters: { SessionType: this.cfg.sessionType ?? 'Port', Properties: this.cfg.properties ?? { portNumber: '22' } } },
      ...(this.cfg.extraActions ?? []),
    ];
    this.sender.advance(now);
    this.sender.sendControl(PayloadType.HandshakeRequest, encodeHandshakeRequest({ agentVersion: this.cfg.agentVersion ?? '3.3.1142.0', requestedClientActions: actions }), now);
  }

  /** Queues stream bytes. Returns false when the producer should stop until a 'drain' event. */
  write(data: Buffer, now: number): boolean {
    this.sender.advance(now);
    this.sender.queueData(data);
    if (this.ready) this.sender.pump(now);
    const ok = this.sender.pendingBytes < WRITE_HIGH_WATER;
    if (!ok) this.writeBlocked = true;
    return ok;
  }

  /** Sends a Flag payload (client role: TerminateSession; never DisconnectToPort for SSH). Returns its seq. */
  sendFlag(flag: number, now: number): number {
    this.sender.advance(now);
    return this.sender.sendControl(PayloadType.Flag, encodeFlag(flag), now);
  }

  /** The consumer (stdout, or the target socket) can take more. Data is not acked while it cannot. */
  setConsumerReady(ready: boolean, now: number): void {
    this.consumerReady = ready;
    if (ready) this.drainBuffered(now);
  }

  setConnected(connected: boolean, now: number): void {
    this.sender.advance(now);
    if (this.sender.connected === connected) return;
    this.sender.connected = connected;
    if (connected) {
      this.sender.retransmitAll(now);
      if (this.ready) this.sender.pump(now);
    }
  }

  /**
   * The owner stops (true) or resumes reading the peer's messages, for a slow consumer:
   * acks then wait unread, so that time is not counted against the peer by the give-up rule.
   */
  setReadingHeld(held: boolean, now: number): void {
    this.sender.advance(now);
    this.sender.giveUpClockHeld = held;
  }

  tick(now: number): void {
    this.sender.advance(now);
    this.sender.tick(now);
    if (this.ready) this.sender.pump(now);
    this.checkDrain();
  }

  nextDeadline(now: number): number {
    return this.sender.nextDeadline(now);
  }

  drain(): ChannelOutput {
    this.sender.drained();
    this.ackStorage?.flip();
    const o = this.out;
    this.out = { transmit: [], deliver: [], events: [] };
    return o;
  }

  /** Unacked sequenced frames, data and control. */
  get unacked(): number {
    return this.sender.inflight.size;
  }
  /** Unacked data frames. */
  get unackedData(): number {
    return this.sender.dataInflight;
  }
  get pendingBytes(): number {
    return this.sender.pendingBytes;
  }
  get paused(): boolean {
    return this.sender.paused;
  }
  get maxDataInflight(): number {
    return this.sender.maxDataInflight;
  }
  get senderStats() {
    return this.sender.stats;
  }
  /** Slabs of reused frame storage allocated (reuseFrameBuffers). */
  get frameSlabs(): number {
    return this.sender.frameSlabs;
  }
  get rto(): number {
    return this.sender.rto.rto;
  }
  get nextSequence(): number {
    return this.sender.nextSeq;
  }
  get expectedSequence(): number {
    return this.expected;
  }

  /** Processes one websocket message. */
  receive(message: Buffer, now: number): void {
    const acked = ackSequenceOf(message);
    if (acked >= 0) {
      // The common case, read without building a Frame: receiveFrame()'s ack case.
      this.beginInput(now);
      this.ackReceived(acked, now);
      this.endInput(now);
      return;
    }
    const r = decodeFrame(message);
    if (!r.ok) {
      this.stats.framesReceived++;
      this.stats.dropped++;
      this.anomaly('decode-error', describeError(r.error), r.error);
      return;
    }
    this.receiveFrame(r.value, now);
  }

  /** Processes a frame its caller has already decoded (and so validated). */
  receiveFrame(f: Frame, now: number): void {
    this.beginInput(now);
    if (f.warnings.length > 0) this.anomaly('frame-warning', f.warnings.join(','));
    switch (f.messageType) {
      case MessageType.Acknowledge:
        this.onAck(f, now);
        break;
      case this.inType:
        this.unpause(now, false);
        this.onStreamFrame(f, now);
        break;
      case MessageType.PausePublication:
        if (!this.sender.paused) {
          this.sender.paused = true;
          this.out.events.push({ type: 'paused' });
        }
        break;
      case MessageType.StartPublication:
        this.unpause(now, true);
        break;
      case MessageType.ChannelClosed:
        this.onChannelClosed(f);
        break;
      case this.outType:
        this.anomaly('wrong-direction', `received ${f.messageType} seq ${f.sequenceNumber}`);
        break;
      default:
        this.anomaly('unknown-type', `ignored message type ${JSON.stringify(f.messageType)}`);
    }
    this.endInput(now);
  }

  // ---- internals ----

  /** Every accepted frame, before it is handled. */
  private beginInput(now: number): void {
    this.sender.advance(now);
    this.stats.framesReceived++;
  }

  /** Every accepted frame, after it is handled: what it freed up may go out. */
  private endInput(now: number): void {
    if (this.ready) this.sender.pump(now);
    this.checkDrain();
  }

  private unpause(now: number, explicit: boolean): void {
    if (!this.sender.paused) return;
    this.sender.paused = false;
    this.out.events.push({ type: 'resumed' });
    // Retransmit everything unacked at once: the paused peer may have dropped it (quirk Q2, Q9).
    if (explicit || this.role === 'client') this.sender.retransmitAll(now);
  }

  private anomaly(kind: AnomalyKind, detail: string, error?: ProtocolError): void {
    this.out.events.push(error ? { type: 'anomaly', kind, detail, error } : { type: 'anomaly', kind, detail });
  }

  private checkDrain(): void {
    if (this.writeBlocked && this.sender.pendingBytes < WRITE_HIGH_WATER / 2) {
      this.writeBlocked = false;
      this.out.events.push({ type: 'drain' });
    }
  }

  private buildStreamFrame(seq: number, payloadType: number, payload: Buffer, into?: Buffer): Buffer {
    // One fields object, refilled for every frame (encodeFrame keeps no reference to it).
    const f = this.streamFields;
    f.createdDate = this.wall();
    f.sequenceNumber = seq;
    f.flags = this.role === 'agent' && seq === 0 ? 1 : 0; // SYN on the agent's first frame (§4.7)
    f.messageId = this.uuid?.();
    f.payloadType = payloadType;
    f.payload = payload;
    const frame = encodeFrame(f, into);
    f.payload = EMPTY;
    return frame;
  }

  private sendAck(f: Frame): void {
    this.stats.acksSent++;
    const fast = this.uuid ? undefined : encodeAckFrame(f, this.wall(), this.takeAckStorage);
    if (fast) {
      this.out.transmit.push(fast);
      return;
    }
    this.out.transmit.push(
      encodeFrame({
        messageType: MessageType.Acknowledge,
        createdDate: this.wall(),
        sequenceNumber: 0,
        flags: 3, // as both reference implementations send on acks (§4.7)
        messageId: this.uuid?.(),
        payloadType: PayloadType.Unset,
        payload: encodeAck({ acknowledgedMessageType: f.messageType, acknowledgedMessageId: f.messageId, acknowledgedSequenceNumber: f.sequenceNumber, isSequentialMessage: true }),
      }),
    );
  }

  private onAck(f: Frame, now: number): void {
    const a = parseAckSequence(f.payload);
    if (!a.ok) {
      this.anomaly('bad-ack', describeError(a.error), a.error);
      return;
    }
    this.ackReceived(a.value, now);
  }

  private ackReceived(seq: number, now: number): void {
    this.unpause(now, false);
    if (!this.sender.onAck(seq, now)) this.anomaly('ack-unknown-seq', `ack for seq ${seq}, but only ${this.sender.nextSeq} frames were ever sent`);
  }

  private onChannelClosed(f: Frame): void {
    if (this.role !== 'client') return;
    const c = parseChannelClosed(f.payload);
    this.closed = true;
    // A channel_closed we cannot parse still ends the session (§5.3).
    const closed = c.ok ? c.value : { messageId: f.messageId, createdDate: '', destinationId: '', sessionId: '', messageType: MessageType.ChannelClosed, schemaVersion: 1, output: '' };
    if (!c.ok) this.anomaly('bad-payload', describeError(c.error), c.error);
    this.out.events.push({ type: 'channel-closed', closed, stranded: this.bufferedBytes });
  }

  private onStreamFrame(f: Frame, now: number): void {
    const seq = f.sequenceNumber;
    if (seq < this.expected) {
      // Re-ack duplicates (the agent does; the reference client does not: quirk Q6).
      this.stats.duplicates++;
      this.sendAck(f);
      return;
    }
    if (seq > this.expected) {
      if (this.buffered.has(seq)) {
        this.sendAck(f);
        return;
      }
      if (seq - this.expected > this.incomingLimit || this.buffered.size >= this.incomingLimit || this.bufferedBytes + f.payload.length > this.incomingByteLimit) {
        this.stats.dropped++;
        this.anomaly('buffer-full', `dropped seq ${seq} (expecting ${this.expected})`);
        return;
      }
      this.stats.outOfOrder++;
      this.buffered.set(seq, f);
      this.bufferedBytes += f.payload.length;
      this.sendAck(f);
      return;
    }
    const verdict = this.process(f, now, false);
    if (verdict === 'not-ready') return;
    this.expected++;
    this.drainBuffered(now);
  }

  /** Processes buffered frames that are now in order. They were acked when buffered. */
  private drainBuffered(now: number): void {
    while (this.buffered.size > 0 && !this.failed) {
      const f = this.buffered.get(this.expected);
      if (!f) return;
      if (this.process(f, now, true) === 'not-ready') return;
      this.buffered.delete(this.expected);
      this.bufferedBytes -= f.payload.length;
      this.expected++;
    }
  }

  /**
   * One dispatcher for in-order and buffered frames (quirk Q7). Acks in-order
   * frames once they are accepted; 'not-ready' leaves them unacked so the peer
   * retransmits.
   */
  private process(f: Frame, now: number, alreadyAcked: boolean): 'accepted' | 'not-ready' {
    if (this.failed) {
      this.ackOnce(f, alreadyAcked);
      return 'accepted';
    }
    const pt = f.payloadType;
    if (this.role === 'client') {
      switch (pt) {
        case PayloadType.HandshakeRequest:
          this.ackOnce(f, alreadyAcked);
          this.onHandshakeRequest(f, now);
          return 'accepted';
        case PayloadType.HandshakeComplete:
          this.ackOnce(f, alreadyAcked);
          this.onHandshakeComplete(f, now);
          return 'accepted';
        case PayloadType.EncChallengeRequest:
          this.ackOnce(f, alreadyAcked);
          this.fatal('handshake', 'the agent sent an encryption challenge although encryption was declined');
          return 'accepted';
        case PayloadType.Output:
          if (!this.ready) {
            this.ackOnce(f, alreadyAcked);
            this.fatal('protocol', this.handshakeStarted ? 'the agent sent data before completing the handshake' : 'the agent sent data without a handshake: this is not a Port session');
            return 'accepted';
          }
          return this.deliver(f, now, alreadyAcked);
        case PayloadType.Flag:
          return this.acceptFlag(f, alreadyAcked);
        default:
          // Acked and skipped, or the agent would retransmit it forever (§8.7 receiving step 3).
          this.ackOnce(f, alreadyAcked);
          this.anomaly('unexpected-payload-type', `ignored payload type ${pt} at seq ${f.sequenceNumber}`);
          return 'accepted';
      }
    }
    // agent role
    switch (pt) {
      case PayloadType.HandshakeResponse:
        return this.onHandshakeResponse(f, now, alreadyAcked);
      case PayloadType.Output:
        if (!this.ready) {
          // The agent acks and discards data before the handshake is complete (§6.5).
          this.ackOnce(f, alreadyAcked);
          this.anomaly('data-before-handshake', `discarded ${f.payload.length} bytes at seq ${f.sequenceNumber}`);
          return 'accepted';
        }
        return this.deliver(f, now, alreadyAcked);
      case PayloadType.Flag:
        if (!this.consumerReady) return 'not-ready'; // flags wait for the target connection too (§9.5)
        return this.acceptFlag(f, alreadyAcked);
      default:
        this.ackOnce(f, alreadyAcked);
        this.anomaly('unexpected-payload-type', `ignored payload type ${pt} at seq ${f.sequenceNumber}`);
        return 'accepted';
    }
  }

  /** Acks a frame process() accepted, unless it was acked when it was buffered. */
  private ackOnce(f: Frame, alreadyAcked: boolean): void {
    if (!alreadyAcked) this.sendAck(f);
  }

  private acceptFlag(f: Frame, alreadyAcked: boolean): 'accepted' {
    this.ackOnce(f, alreadyAcked);
    const fl = parseFlag(f.payload);
    if (fl.ok) this.out.events.push({ type: 'flag', flag: fl.value });
    else this.anomaly('bad-payload', describeError(fl.error), fl.error);
    return 'accepted';
  }

  private deliver(f: Frame, now: number, alreadyAcked: boolean): 'accepted' | 'not-ready' {
    if (!this.consumerReady) return 'not-ready';
    if (f.payload.length > 0) {
      this.out.deliver.push(f.payload);
      this.stats.bytesDelivered += f.payload.length;
    }
    this.ackOnce(f, alreadyAcked);
    if (!this.sawPeerData && this.role === 'client') {
      // The agent dials the target only after HandshakeComplete and leaves our first
      // frames unacked until then (quirk Q32). Its first output means the dial is done:
      // resend those frames now instead of waiting for a timeout.
      this.sawPeerData = true;
      this.sender.retransmitDataNow(now);
    }
    return 'accepted';
  }

  private fatal(kind: 'handshake' | 'protocol', message: string): void {
    if (this.failed) return;
    this.failed = true;
    this.out.events.push({ type: 'fatal', kind, message });
  }

  private onHandshakeRequest(f: Frame, now: number): void {
    if (this.handshakeStarted) {
      this.anomaly('bad-payload', 'a second HandshakeRequest was ignored');
      return;
    }
    this.handshakeStarted = true;
    const r = parseHandshakeRequest(f.payload);
    if (!r.ok) {
      this.fatal('handshake', `malformed HandshakeRequest (${describeError(r.error)})`);
      return;
    }
    this.agentVersion = r.value.agentVersion;
    this.out.events.push({ type: 'handshake-request', request: r.value });
    const processed: ProcessedClientAction[] = [];
    const errors: string[] = [];
    for (const action of r.value.requestedClientActions) {
      const p = this.processAction(action);
      if (p.actionStatus !== ActionStatus.Success) errors.push(p.error);
      processed.push(p);
    }
    this.sender.sendControl(
      PayloadType.HandshakeResponse,
      encodeHandshakeResponse({ clientVersion: this.cfg.clientVersion ?? '1.2.694.0', processedClientActions: processed, errors }),
      now,
    );
    if (errors.length > 0) this.fatal('handshake', errors.join('; '));
  }

  private processAction(action: RequestedClientAction): ProcessedClientAction {
    const result = (status: number, error: string): ProcessedClientAction => ({ actionType: action.actionType, actionStatus: status, actionResult: null, error });
    if (action.actionType === 'SessionType') {
      const p = parseSessionTypeParameters(action.actionParameters);
      if (!p.ok) return result(ActionStatus.Failed, `malformed SessionType parameters (${describeError(p.error)})`);
      if (p.value.sessionType !== 'Port') {
        return result(ActionStatus.Failed, `session type ${p.value.sessionType} is not supported: ssm-proxy only carries Port sessions such as AWS-StartSSHSession`);
      }
      const props = p.value.properties;
      if (props && typeof props === 'object' && (props as Record<string, unknown>).type === 'LocalPortForwarding') {
        return result(ActionStatus.Failed, 'port forwarding sessions (type LocalPortForwarding) are not supported: use an SSH document such as AWS-StartSSHSession');
      }
      return result(ActionStatus.Success, '');
    }
    if (action.actionType === 'KMSEncryption') {
      return result(ActionStatus.Failed, 'KMS encryption of the session is not supported by ssm-proxy (Port sessions are never KMS-encrypted by current agents)');
    }
    return result(ActionStatus.Unsupported, `unsupported action ${action.actionType}`);
  }

  private onHandshakeComplete(f: Frame, now: number): void {
    if (!this.handshakeStarted) {
      this.fatal('handshake', 'HandshakeComplete arrived before any HandshakeRequest');
      return;
    }
    const r = parseHandshakeComplete(f.payload);
    if (!r.ok) this.anomaly('bad-payload', describeError(r.error), r.error);
    this.ready = true;
    this.out.events.push({ type: 'ready', customerMessage: r.ok ? r.value.customerMessage : '' });
    this.sender.pump(now);
  }

  private onHandshakeResponse(f: Frame, now: number, alreadyAcked: boolean): 'accepted' {
    // The agent processes the response first, then acks it.
    const r = parseHandshakeResponse(f.payload);
    this.ackOnce(f, alreadyAcked);
    if (this.ready) {
      this.anomaly('bad-payload', 'a second HandshakeResponse was ignored');
      return 'accepted';
    }
    if (!r.ok) {
      this.fatal('handshake', `malformed HandshakeResponse (${describeError(r.error)})`);
      return 'accepted';
    }
    this.peerClientVersion = r.value.clientVersion;
    this.out.events.push({ type: 'handshake-response', response: r.value });
    const bad = r.value.processedClientActions.find((a) => a.actionStatus !== ActionStatus.Success);
    if (bad) {
      this.fatal('handshake', `${bad.actionType} failed on client with status ${bad.actionStatus} error: ${bad.error}`);
      return 'accepted';
    }
    this.sender.sendControl(
      PayloadType.HandshakeComplete,
      encodeHandshakeComplete({ handshakeTimeToComplete: Math.round((now - this.handshakeSentAt) * 1e6), customerMessage: this.cfg.customerMessage ?? '' }),
      now,
    );
    this.ready = true;
    this.out.events.push({ type: 'ready', customerMessage: '' });
    this.sender.pump(now);
    return 'accepted';
  }
}

