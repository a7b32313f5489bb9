import { describe, expect, it } from 'vitest';
import { dnsSuffix, expectedApiOrigin } from '../../src/aws/partition.ts';

describe('expectedApiOrigin', () => {
  it("is a custom endpoint's origin, whatever the region", () => {
    expect(expectedApiOrigin(undefined, 'http://127.0.0.1:4566/some/path')).toBe('http://127.0.0.1:4566');
    expect(expectedApiOrigin('eu-west-1', 'https://vpce-0a1b.ssm.eu-west-1.vpce.amazonaws.com')).toBe('https://vpce-0a1b.ssm.eu-west-1.vpce.amazonaws.com');
  });

  it('is the regional endpoint in the aws, aws-cn and aws-us-gov partitions', () => {
    expect(expectedApiOrigin('eu-west-1', undefined, {})).toBe('https://ssm.eu-west-1.amazonaws.com');
    expect(expectedApiOrigin('cn-north-1', undefined, {})).toBe('https://ssm.cn-north-1.amazonaws.com.cn');
    expect(expectedApiOrigin('us-gov-west-1', undefined, {})).toBe('https://ssm.us-gov-west-1.amazonaws.com');
  });

  it('is unknown without a region, in other partitions, with FIPS or dual-stack endpoints, or for a non-HTTP URL', () => {
    expect(expectedApiOrigin(undefined, undefined, {})).toBeUndefined();
    expect(expectedApiOrigin('us-iso-east-1', undefined, {})).toBeUndefined();
    expect(expectedApiOrigin('us-east-1', undefined, { AWS_USE_FIPS_ENDPOINT: 'true' })).toBeUndefined();
    expect(expectedApiOrigin('us-east-1', undefined, { AWS_USE_DUALSTACK_ENDPOINT: 'TRUE' })).toBeUndefined();
    expect(expectedApiOrigin('us-east-1', undefined, { AWS_USE_FIPS_ENDPOINT: 'false' })).toBe('https://ssm.us-east-1.amazonaws.com');
    expect(expectedApiOrigin('us-east-1', 'ftp://example.com')).toBeUndefined();
  });

  it('shares the DNS suffix with the data channel', () => {
    expect(dnsSuffix('ap-southeast-2')).toBe('amazonaws.com');
    expect(dnsSuffix('us-isob-east-1')).toBeUndefined();
  });
});
