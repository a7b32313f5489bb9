// Where the data channel will be, before StartSession says (so its connection can be
// opened while StartSession is answered).
import { describe, expect, it } from 'vitest';
import { expectedStreamOrigin, parseRememberedOrigins, rememberStreamOrigin, streamOriginKey } from '../../src/session/stream-origin.ts';

const sim = 'http://127.0.0.1:4100';
const streamUrl = (origin: string) => `${origin}/v1/data-channel/alice-0a1b2c3d4e5f67890?role=publish_subscribe`;

describe('expectedStreamOrigin', () => {
  it("is ssmmessages in the region's partition for the default endpoint", () => {
    expect(expectedStreamOrigin('eu-west-1', undefined, {})).toBe('wss://ssmmessages.eu-west-1.amazonaws.com');
    expect(expectedStreamOrigin('us-gov-west-1', undefined, {})).toBe('wss://ssmmessages.us-gov-west-1.amazonaws.com');
    expect(expectedStreamOrigin('cn-north-1', undefined, {})).toBe('wss://ssmmessages.cn-north-1.amazonaws.com.cn');
  });

  it('has no guess for partitions with other DNS suffixes, nor for another endpoint', () => {
    expect(expectedStreamOrigin('us-iso-east-1', undefined, {})).toBeUndefined();
    expect(expectedStreamOrigin('us-isob-east-1', undefined, {})).toBeUndefined();
    expect(expectedStreamOrigin('eu-west-1', sim, {})).toBeUndefined();
  });

  it('is what the last StreamUrl had, for the same endpoint and region', () => {
    const remembered = { [streamOriginKey('eu-west-1', sim)]: 'ws://127.0.0.1:4200', [streamOriginKey('us-iso-east-1', undefined)]: 'wss://ssmmessages.us-iso-east-1.c2s.ic.gov' };
    expect(expectedStreamOrigin('eu-west-1', sim, remembered)).toBe('ws://127.0.0.1:4200');
    expect(expectedStreamOrigin('eu-west-2', sim, remembered)).toBeUndefined();
    expect(expectedStreamOrigin('eu-west-1', 'http://127.0.0.1:4101', remembered)).toBeUndefined();
    expect(expectedStreamOrigin('us-iso-east-1', undefined, remembered)).toBe('wss://ssmmessages.us-iso-east-1.c2s.ic.gov');
  });
});

describe('rememberStreamOrigin', () => {
  it('writes nothing when the StreamUrl was where expected', () => {
    expect(rememberStreamOrigin({}, 'eu-west-1', undefined, streamUrl('wss://ssmmessages.eu-west-1.amazonaws.com'))).toBeUndefined();
    const remembered = { [streamOriginKey('eu-west-1', sim)]: 'ws://127.0.0.1:4200' };
    expect(rememberStreamOrigin(remembered, 'eu-west-1', sim, streamUrl('ws://127.0.0.1:4200'))).toBeUndefined();
  });

  it('remembers a new origin per endpoint and region, and the note reads back', () => {
    const first = rememberStreamOrigin({}, 'eu-west-1', sim, streamUrl('ws://127.0.0.1:4200'))!;
    const remembered = parseRememberedOrigins(first);
    expect(expectedStreamOrigin('eu-west-1', sim, remembered)).toBe('ws://127.0.0.1:4200');
    const moved = parseRememberedOrigins(rememberStreamOrigin(remembered, 'eu-west-1', sim, streamUrl('ws://127.0.0.1:4300')));
    expect(expectedStreamOrigin('eu-west-1', sim, moved)).toBe('ws://127.0.0.1:4300');
    expect(Object.keys(moved)).toHaveLength(1);
    // The default endpoint's StreamUrl somewhere unexpected is remembered too.
    const odd = parseRememberedOrigins(rememberStreamOrigin(moved, 'eu-west-1', undefined, streamUrl('wss://ssmmessages-fips.eu-west-1.amazonaws.com')));
    expect(expectedStreamOrigin('eu-west-1', undefined, odd)).toBe('wss://ssmmessages-fips.eu-west-1.amazonaws.com');
    expect(expectedStreamOrigin('eu-west-1', sim, odd)).toBe('ws://127.0.0.1:4300');
  });

  it('keeps the 16 most recent endpoints', () => {
    let remembered: Record<string, string> = {};
    for (let i = 0; i < 20; i++) remembered = parseRememberedOrigins(rememberStreamOrigin(remembered, 'eu-west-1', `http://127.0.0.1:${5000 + i}`, streamUrl(`ws://127.0.0.1:${6000 + i}`)));
    expect(Object.keys(remembered)).toHaveLength(16);
    expect(expectedStreamOrigin('eu-west-1', 'http://127.0.0.1:5019', remembered)).toBe('ws://127.0.0.1:6019');
    expect(expectedStreamOrigin('eu-west-1', 'http://127.0.0.1:5003', remembered)).toBeUndefined();
  });

  it('ignores a StreamUrl that is not a URL, and a damaged note', () => {
    expect(rememberStreamOrigin({}, 'eu-west-1', sim, 'not a url')).toBeUndefined();
    for (const note of [undefined, '', '{', '[1]', 'null', '"x"']) expect(parseRememberedOrigins(note)).toEqual({});
    expect(parseRememberedOrigins('{"a":"ws://x","b":3,"c":"x","d":"https://h","e":"wss://h/path","f":"wss://h:443"}')).toEqual({ a: 'ws://x' });
  });
});
