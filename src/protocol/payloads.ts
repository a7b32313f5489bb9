// Typed payloads (§3.2, §4.6, §5.2, §5.3, §6), validated at the boundary.
import { fail, ok, type Result } from './result.ts';
import { isUuid } from './uuid.ts';

type Json = Record<string, unknown>;

function parseObject(payload: Uint8Array, what: string): Result<Json> {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(payload.buffer, payload.byteOffset, payload.length).toString('utf8'));
  } catch {
    return fail(what, 'is not valid JSON');
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return fail(what, 'is not a JSON object');
  return ok(value as Json);
}

function str(o: Json, key: string, what: string, optional = false): Result<string> {
  const v = o[key];
  if (v === undefined && optional) return ok('');
  if (typeof v !== 'string') return fail(`${what}.${key}`, v === undefined ? 'is missing' : 'is not a string');
  return ok(v);
}

function json(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), 'utf8');
}

// ---- acknowledge (§5.2) ----

export interface AckPayload {
  acknowledgedMessageType: string;
  acknowledgedMessageId: string;
  acknowledgedSequenceNumber: number;
  isSequentialMessage: boolean;
}

/**
 * The fixed text of a canonical ack payload (the form encodeAck writes) around its
 * type, id, sequence number and flag: parseAckSequence reads acks by it, and the
 * byte-by-byte ack encoder in frame.ts writes them by it.
 */
export const ACK_TEXT = {
  beforeType: '{"AcknowledgedMessageType":"',
  beforeId: '","AcknowledgedMessageId":"',
  beforeSequence: '","AcknowledgedMessageSequenceNumber":',
  beforeSequential: ',"IsSequentialMessage":',
} as const;

export function encodeAck(a: AckPayload): Buffer {
  // Key order as both reference implementations emit it; a template is what
  // JSON.stringify would produce for these value types, at a fraction of the cost.
  return Buffer.from(
    `{"AcknowledgedMessageType":${JSON.stringify(a.acknowledgedMessageType)},"AcknowledgedMessageId":${JSON.stringify(a.acknowledgedMessageId)},"AcknowledgedMessageSequenceNumber":${a.acknowledgedSequenceNumber},"IsSequentialMessage":${a.isSequentialMessage}}`,
    'latin1',
  );
}

// The exact form both implementations emit; anything else takes the JSON path.
const CANONICAL_ACK = /^\{"AcknowledgedMessageType":"([a-z_]{1,32})","AcknowledgedMessageId":"([0-9a-f-]{36})","AcknowledgedMessageSequenceNumber":(0|[1-9]\d{0,14}),"IsSequentialMessage":(true|false)\}$/;

const P1 = Buffer.from(ACK_TEXT.beforeType, 'latin1');
const P2 = Buffer.from(ACK_TEXT.beforeId, 'latin1');
const P3 = Buffer.from(ACK_TEXT.beforeSequence, 'latin1');
const P4 = Buffer.from(ACK_TEXT.beforeSequential, 'latin1');

function matchAt(b: Uint8Array, at: number, end: number, lit: Buffer): boolean {
  if (at + lit.length > end) return false;
  for (let i = 0; i < lit.length; i++) if (b[at + i] !== lit[i]) return false;
  return true;
}

/**
 * The sequence number of an ack payload in `b[start, end)` written in the canonical
 * form (the one both reference implementations emit), read straight from the bytes;
 * -1 for any other form.
 */
export function canonicalAckSequence(b: Uint8Array, start: number, end: number): number {
  let i = start + P1.length;
  if (!matchAt(b, start, end, P1)) return -1;
  while (i < end && ((b[i] >= 0x61 && b[i] <= 0x7a) || b[i] === 0x5f)) i++;
  if (!matchAt(b, i, end, P2)) return -1;
  i += P2.length;
  const idEnd = i + 36;
  for (; i < idEnd && i < end; i++) {
    const c = b[i];
    if (!((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || c === 0x2d)) break;
  }
  if (i !== idEnd || !matchAt(b, i, end, P3)) return -1;
  i += P3.length;
  const digitsStart = i;
  let seq = 0;
  while (i < end && b[i] >= 0x30 && b[i] <= 0x39 && i - digitsStart < 15) seq = seq * 10 + (b[i++] - 0x30);
  const digits = i - digitsStart;
  if (digits === 0 || (digits > 1 && b[digitsStart] === 0x30) || !matchAt(b, i, end, P4)) return -1;
  i += P4.length;
  const rest = end - i;
  // "true}" or "false}"
  if (rest === 5 && b[i] === 0x74 && b[i + 1] === 0x72 && b[i + 2] === 0x75 && b[i + 3] === 0x65 && b[i + 4] === 0x7d) return seq;
  if (rest === 6 && b[i] === 0x66 && b[i + 1] === 0x61 && b[i + 2] === 0x6c && b[i + 3] === 0x73 && b[i + 4] === 0x65 && b[i + 5] === 0x7d) return seq;
  return -1;
}

/**
 * The acknowledged sequence number, which is all the reliable channel needs from
 * an ack: the canonical form straight from the bytes (one ack arrives per data frame
 * sent); anything else goes through the full parser.
 */
export function parseAckSequence(payload: Uint8Array): Result<number> {
  const seq = canonicalAckSequence(payload, 0, payload.length);
  if (seq >= 0) return ok(seq);
  const full = parseAck(payload);
  return full.ok ? ok(full.value.acknowledgedSequenceNumber) : full;
}

export function parseAck(payload: Uint8Array): Result<AckPayload> {
  if (payload.length < 256) {
    const m = CANONICAL_ACK.exec(Buffer.from(payload.buffer, payload.byteOffset, payload.length).toString('latin1'));
    if (m) return ok({ acknowledgedMessageType: m[1], acknowledgedMessageId: m[2], acknowledgedSequenceNumber: Number(m[3]), isSequentialMessage: m[4] === 'true' });
  }
  const r = parseObject(payload, 'ack');
  if (!r.ok) return r;
  const o = r.value;
  const seq = o.AcknowledgedMessageSequenceNumber;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) {
    return fail('ack.AcknowledgedMessageSequenceNumber', seq === undefined ? 'is missing' : 'is not a non-negative integer');
  }
  const type = str(o, 'AcknowledgedMessageType', 'ack', true);
  if (!type.ok) return type;
  const id = str(o, 'AcknowledgedMessageId', 'ack', true);
  if (!id.ok) return id;
  const seqFlag = o.IsSequentialMessage;
  if (seqFlag !== undefined && typeof seqFlag !== 'boolean') return fail('ack.IsSequentialMessage', 'is not a boolean');
  return ok({
    acknowledgedMessageType: type.value,
    acknowledgedMessageId: id.value,
    acknowledgedSequenceNumber: seq,
    isSequentialMessage: seqFlag ?? true,
  });
}

// ---- handshake (§6) ----

export interface RequestedClientAction {
  actionType: string;
  /** Kept raw until dispatched on actionType. */
  actionParameters: unknown;
}

export interface HandshakeRequest {
  agentVersion: string;
  requestedClientActions: RequestedClientAction[];
}

export function encodeHandshakeRequest(h: HandshakeRequest): Buffer {
  return json({
    AgentVersion: h.agentVersion,
    RequestedClientActions: h.requestedClientActions.map((a) => ({ ActionType: a.actionType, ActionParameters: a.actionParameters })),
  });
}

export function parseHandshakeRequest(payload: Uint8Array): Result<HandshakeRequest> {
  const r = parseObject(payload, 'HandshakeRequest');
  if (!r.ok) return r;
  const v = str(r.value, 'AgentVersion', 'HandshakeRequest');
  if (!v.ok) return v;
  const list = r.value.RequestedClientActions;
  if (!Array.isArray(list)) return fail('HandshakeRequest.RequestedClientActions', list === undefined ? 'is missing' : 'is not an array');
  const actions: RequestedClientAction[] = [];
  for (let i = 0; i < list.length; i++) {
    const a = list[i];
    const where = `HandshakeRequest.RequestedClientActions[${i}]`;
    if (a === null || typeof a !== 'object' || Array.isArray(a)) return fail(where, 'is not an object');
    const t = str(a as Json, 'ActionType', where);
    if (!t.ok) return t;
    actions.push({ actionType: t.value, actionParameters: (a as Json).ActionParameters ?? null });
  }
  return ok({ agentVersion: v.value, requestedClientActions: actions });
}

export interface SessionTypeParameters {
  sessionType: string;
  properties: unknown;
}

export function parseSessionTypeParameters(params: unknown): Result<SessionTypeParameters> {
  if (params === null || typeof params !== 'object' || Array.isArray(params)) {
    return fail('SessionType.ActionParameters', 'is not an object');
  }
  const t = str(params as Json, 'SessionType', 'SessionType.ActionParameters');
  if (!t.ok) return t;
  return ok({ sessionType: t.value, properties: (params as Json).Properties ?? null });
}

export interface ProcessedClientAction {
  actionType: string;
  actionStatus: number;
  actionResult: unknown;
  error: string;
}

export interface HandshakeResponse {
  clientVersion: string;
  processedClientActions: ProcessedClientAction[];
  errors: string[] | null;
}

export function encodeHandshakeResponse(h: HandshakeResponse): Buffer {
  return json({
    ClientVersion: h.clientVersion,
    ProcessedClientActions: h.processedClientActions.map((a) => ({
      ActionType: a.actionType,
      ActionStatus: a.actionStatus,
      ActionResult: a.actionResult ?? null,
      Error: a.error,
    })),
    Errors: h.errors && h.errors.length > 0 ? h.errors : null,
  });
}

export function parseHandshakeResponse(payload: Uint8Array): Result<HandshakeResponse> {
  const r = parseObject(payload, 'HandshakeResponse');
  if (!r.ok) return r;
  const v = str(r.value, 'ClientVersion', 'HandshakeResponse', true);
  if (!v.ok) return v;
  const list = r.value.ProcessedClientActions;
  if (list !== null && list !== undefined && !Array.isArray(list)) return fail('HandshakeResponse.ProcessedClientActions', 'is not an array');
  const actions: ProcessedClientAction[] = [];
  for (const [i, a] of (list ?? []).entries()) {
    const where = `HandshakeResponse.ProcessedClientActions[${i}]`;
    if (a === null || typeof a !== 'object' || Array.isArray(a)) return fail(where, 'is not an object');
    const o = a as Json;
    const t = str(o, 'ActionType', where);
    if (!t.ok) return t;
    if (typeof o.ActionStatus !== 'number') return fail(`${where}.ActionStatus`, 'is not a number');
    const e = str(o, 'Error', where, true);
    if (!e.ok) return e;
    actions.push({ actionType: t.value, actionStatus: o.ActionStatus, actionResult: o.ActionResult ?? null, error: e.value });
  }
  const errs = r.value.Errors;
  if (errs !== null && errs !== undefined && !(Array.isArray(errs) && errs.every((x) => typeof x === 'string'))) {
    return fail('HandshakeResponse.Errors', 'is not null or an array of strings');
  }
  return ok({ clientVersion: v.value, processedClientActions: actions, errors: (errs as string[] | null | undefined) ?? null });
}

export interface HandshakeComplete {
  /** Nanoseconds (a Go time.Duration). */
  handshakeTimeToComplete: number;
  customerMessage: string;
}

export function encodeHandshakeComplete(h: HandshakeComplete): Buffer {
  return json({ HandshakeTimeToComplete: h.handshakeTimeToComplete, CustomerMessage: h.customerMessage });
}

export function parseHandshakeComplete(payload: Uint8Array): Result<HandshakeComplete> {
  const r = parseObject(payload, 'HandshakeComplete');
  if (!r.ok) return r;
  const t = r.value.HandshakeTimeToComplete;
  if (t !== undefined && typeof t !== 'number') return fail('HandshakeComplete.HandshakeTimeToComplete', 'is not a number');
  const m = str(r.value, 'CustomerMessage', 'HandshakeComplete', true);
  if (!m.ok) return m;
  return ok({ handshakeTimeToComplete: t ?? 0, customerMessage: m.value });
}

// ---- channel_closed (§5.3) ----

export interface ChannelClosed {
  messageId: string;
  createdDate: string;
  destinationId: string;
  sessionId: string;
  messageType: string;
  schemaVersion: number;
  output: string;
}

export function encodeChannelClosed(c: ChannelClosed): Buffer {
  return json({
    MessageId: c.messageId,
    CreatedDate: c.createdDate,
    DestinationId: c.destinationId,
    SessionId: c.sessionId,
    MessageType: c.messageType,
    SchemaVersion: c.schemaVersion,
    Output: c.output,
  });
}

export function parseChannelClosed(payload: Uint8Array): Result<ChannelClosed> {
  const r = parseObject(payload, 'channel_closed');
  if (!r.ok) return r;
  const o = r.value;
  const fields: Record<string, string> = {};
  for (const k of ['MessageId', 'CreatedDate', 'DestinationId', 'SessionId', 'MessageType', 'Output']) {
    const v = o[k];
    if (v !== undefined && v !== null && typeof v !== 'string') return fail(`channel_closed.${k}`, 'is not a string');
    fields[k] = (v as string | undefined) ?? '';
  }
  const sv = o.SchemaVersion;
  if (sv !== undefined && typeof sv !== 'number') return fail('channel_closed.SchemaVersion', 'is not a number');
  return ok({
    messageId: fields.MessageId,
    createdDate: fields.CreatedDate,
    destinationId: fields.DestinationId,
    sessionId: fields.SessionId,
    messageType: fields.MessageType,
    schemaVersion: sv ?? 1,
    output: fields.Output,
  });
}

// ---- Flag (§4.6) ----

export function encodeFlag(flag: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(flag, 0);
  return b;
}

export function parseFlag(payload: Uint8Array): Result<number> {
  if (payload.length !== 4) return fail('Flag', `payload is ${payload.length} bytes, not 4`);
  return ok(Buffer.from(payload.buffer, payload.byteOffset, 4).readUInt32BE(0));
}

// ---- OpenDataChannel (§3.2), the one text frame ----

export interface OpenDataChannel {
  messageSchemaVersion: string;
  requestId: string;
  tokenValue: string;
  clientId: string;
  clientVersion: string;
}

export function encodeOpenDataChannel(o: OpenDataChannel): string {
  return JSON.stringify({
    MessageSchemaVersion: o.messageSchemaVersion,
    RequestId: o.requestId,
    TokenValue: o.tokenValue,
    ClientId: o.clientId,
    ClientVersion: o.clientVersion,
  });
}

export function parseOpenDataChannel(text: string): Result<OpenDataChannel> {
  const r = parseObject(Buffer.from(text, 'utf8'), 'OpenDataChannel');
  if (!r.ok) return r;
  const o = r.value;
  const sv = str(o, 'MessageSchemaVersion', 'OpenDataChannel');
  if (!sv.ok) return sv;
  const rid = str(o, 'RequestId', 'OpenDataChannel');
  if (!rid.ok) return rid;
  if (rid.value.length < 16) return fail('OpenDataChannel.RequestId', 'is shorter than 16 characters');
  const tok = str(o, 'TokenValue', 'OpenDataChannel');
  if (!tok.ok) return tok;
  const cid = str(o, 'ClientId', 'OpenDataChannel', true);
  if (!cid.ok) return cid;
  const cv = str(o, 'ClientVersion', 'OpenDataChannel', true);
  if (!cv.ok) return cv;
  return ok({ messageSchemaVersion: sv.value, requestId: rid.value, tokenValue: tok.value, clientId: cid.value, clientVersion: cv.value });
}

export { isUuid };
