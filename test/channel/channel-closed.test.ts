// channel_closed (§5.3): the session is over at once; what it leaves undeliverable is said.
import { describe, expect, it } from 'vitest';
import { encodeFrame } from '../../src/protocol/frame.ts';
import { encodeChannelClosed } from '../../src/protocol/payloads.ts';
import { connectedPair } from '../helpers/channel-pair.ts';

function channelClosed(output: string): Buffer {
  const payload = encodeChannelClosed({ messageId: '6a3e2f10-5b4c-4d8e-9f01-23456789abcd', createdDate: '1730000000000', destinationId: 'i-1', sessionId: 's', messageType: 'channel_closed', schemaVersion: 1, output });
  return encodeFrame({ messageType: 'channel_closed', createdDate: 1730000000000, sequenceNumber: 0, flags: 0, payloadType: 0, payload });
}

describe('channel_closed', () => {
  it('reports no stranded output when everything arrived in order', () => {
    const { client, agent, pass } = connectedPair();
    agent.write(Buffer.alloc(3000, 0x61), 10);
    pass(agent, client, 11);
    client.receive(channelClosed(''), 12);
    const out = client.drain();
    expect(Buffer.concat(out.deliver).length).toBe(3000);
    expect(out.events).toContainEqual(expect.objectContaining({ type: 'channel-closed', stranded: 0 }));
  });

  it('counts the output received behind a frame that never came: it can never be delivered in order', () => {
    const { client, agent } = connectedPair({ maxPayload: 1024 });
    agent.write(Buffer.alloc(3000, 0x61), 10); // the agent's frames: 1024 + 1024 + 952 bytes
    const frames = agent.drain().transmit;
    expect(frames).toHaveLength(3);
    client.receive(frames[0], 11);
    client.receive(frames[2], 11); // the middle one is lost, and the agent ends before resending it
    client.receive(channelClosed(''), 12);
    const out = client.drain();
    expect(Buffer.concat(out.deliver).length).toBe(1024);
    expect(out.events).toContainEqual(expect.objectContaining({ type: 'channel-closed', stranded: 952 }));
  });
});
