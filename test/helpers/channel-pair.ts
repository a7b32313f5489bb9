import { expect } from 'vitest';
import { ReliableChannel } from '../../src/channel/channel.ts';

/** A client and an agent that have completed the handshake at t=0. */
export function connectedPair(clientOpts: Partial<ConstructorParameters<typeof ReliableChannel>[0]> = {}) {
  const client = new ReliableChannel({ role: 'client', now: 0, ...clientOpts });
  const agent = new ReliableChannel({ role: 'agent', now: 0 });
  agent.startHandshake(0);
  const pass = (from: ReliableChannel, to: ReliableChannel, t: number) => {
    const out = from.drain();
    for (const b of out.transmit) to.receive(b, t);
    return out;
  };
  for (let i = 0; i < 4; i++) {
    pass(agent, client, 1);
    pass(client, agent, 1);
  }
  expect(client.ready && agent.ready).toBe(true);
  return { client, agent, pass };
}
