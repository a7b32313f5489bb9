// AWS endpoint host names we can know without asking the SDK.

/** The DNS suffix of a region's partition, for the partitions whose suffix is well known. */
export function dnsSuffix(region: string): string | undefined {
  if (!/^[a-z]{2}(-gov)?-[a-z]+-\d+$/.test(region)) return undefined; // iso partitions and the unknown
  return region.startsWith('cn-') ? 'amazonaws.com.cn' : 'amazonaws.com';
}

/**
 * The origin of the SSM API the SDK will call: the custom endpoint's, else the regional
 * endpoint's. Undefined when that depends on settings we do not read (FIPS or dual-stack
 * endpoints, partitions other than aws, aws-cn and aws-us-gov). A wrong guess only
 * costs a connection nobody uses.
 */
export function expectedApiOrigin(region: string | undefined, endpointUrl: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (endpointUrl !== undefined) {
    try {
      const u = new URL(endpointUrl);
      return u.protocol === 'https:' || u.protocol === 'http:' ? u.origin : undefined;
    } catch {
      return undefined;
    }
  }
  if (region === undefined || /^true$/i.test(env.AWS_USE_FIPS_ENDPOINT ?? '') || /^true$/i.test(env.AWS_USE_DUALSTACK_ENDPOINT ?? '')) return undefined;
  const suffix = dnsSuffix(region);
  return suffix ? `https://ssm.${region}.${suffix}` : undefined;
}
