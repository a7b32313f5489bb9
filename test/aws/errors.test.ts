import { describe, expect, it } from 'vitest';
import { classifyAwsError, isTransientAwsError, type AwsErrorContext } from '../../src/aws/errors.ts';
import { ExitCode, ProxyError } from '../../src/cli/exit-codes.ts';

/** Shaped like an SDK v3 service exception. */
function serviceError(name: string, message: string, httpStatusCode = 400): Error {
  const err = new Error(message) as Error & { $metadata: object; $fault: string };
  err.name = name;
  err.$metadata = { httpStatusCode, requestId: 'req-1', attempts: 1 };
  err.$fault = httpStatusCode >= 500 ? 'server' : 'client';
  return err;
}

/** Shaped like a Node socket or DNS error. */
function systemError(code: string, message: string, extra: Record<string, unknown> = {}): Error {
  return Object.assign(new Error(message), { code, syscall: 'connect', ...extra });
}

const start: AwsErrorContext = {
  operation: 'StartSession',
  target: 'i-0123456789abcdef0',
  region: 'eu-west-1',
  documentName: 'AWS-StartSSHSession',
};

function expectOneLine(err: ProxyError): void {
  expect(err.message).not.toMatch(/[\r\n]/);
  expect(err.message.length).toBeGreaterThan(20);
  expect(err.message).toContain('; ');
}

describe('classifyAwsError: service errors', () => {
  it('TargetNotConnected -> 5 naming the target and region', () => {
    const err = classifyAwsError(serviceError('TargetNotConnected', 'i-0123456789abcdef0 is not connected.'), start);
    expect(err.exitCode).toBe(ExitCode.TargetUnavailable);
    expect(err.code).toBe('TargetNotConnected');
    expect(err.message).toContain('i-0123456789abcdef0 is not connected to Session Manager in eu-west-1');
    expect(err.message).toContain('SSM agent');
    expectOneLine(err);
  });

  it('InvalidDocument -> 5 naming the document', () => {
    const err = classifyAwsError(serviceError('InvalidDocument', 'Document My-Doc does not exist.'), { ...start, documentName: 'My-Doc' });
    expect(err.exitCode).toBe(ExitCode.TargetUnavailable);
    expect(err.message).toMatch(/^the document My-Doc is not available in eu-west-1 \(InvalidDocument: Document My-Doc does not exist\.\); check --document-name/);
  });

  it.each(['ValidationException', 'InvalidParameters'])('%s -> 5', (code) => {
    const err = classifyAwsError(serviceError(code, "1 validation error detected: Value 'x' at 'target' failed"), start);
    expect(err.exitCode).toBe(ExitCode.TargetUnavailable);
    expect(err.message).toContain(code);
    expect(err.message).toContain('check the target ID');
    expectOneLine(err);
  });

  it('AccessDeniedException -> 4 naming the IAM action', () => {
    const err = classifyAwsError(
      serviceError('AccessDeniedException', 'User: arn:aws:iam::123456789012:user/alice is not authorized to perform: ssm:StartSession'),
      start,
    );
    expect(err.exitCode).toBe(ExitCode.AccessDenied);
    expect(err.message).toContain('ssm:StartSession');
    expect(err.message).toContain('arn:aws:iam::123456789012:user/alice');
    expectOneLine(err);
  });

  it('AccessDeniedException on ResumeSession names that action', () => {
    const err = classifyAwsError(serviceError('AccessDeniedException', 'denied'), { operation: 'ResumeSession', sessionId: 's-1' });
    expect(err.exitCode).toBe(ExitCode.AccessDenied);
    expect(err.message).toContain('ssm:ResumeSession');
  });

  it.each([
    'UnrecognizedClientException',
    'InvalidSignatureException',
    'ExpiredTokenException',
    'IncompleteSignature',
    'MissingAuthenticationTokenException',
    'InvalidClientTokenId',
  ])('%s -> 3', (code) => {
    const err = classifyAwsError(serviceError(code, 'The security token included in the request is invalid.', 403), start);
    expect(err.exitCode).toBe(ExitCode.Credentials);
    expect(err.code).toBe(code);
    expectOneLine(err);
  });

  it('ExpiredTokenException says the credentials expired', () => {
    const err = classifyAwsError(serviceError('ExpiredTokenException', 'The security token included in the request is expired'), start);
    expect(err.message).toMatch(/expired/);
    expect(err.message).toContain('aws sso login');
  });

  it('credential chain failure -> 3 with what to do', () => {
    const chain = Object.assign(new Error('Could not load credentials from any providers'), {
      name: 'CredentialsProviderError',
      tryNextLink: false,
    });
    const err = classifyAwsError(chain, { ...start, operation: 'credentials' });
    expect(err.exitCode).toBe(ExitCode.Credentials);
    expect(err.message).toBe(
      'no AWS credentials found (Could not load credentials from any providers); run `aws configure` or `aws sso login`, or set AWS_PROFILE',
    );
  });

  it('names the profile when one is in use', () => {
    const chain = Object.assign(new Error('Could not load credentials from any providers'), { name: 'CredentialsProviderError' });
    const err = classifyAwsError(chain, { operation: 'credentials', profile: 'dev' });
    expect(err.exitCode).toBe(ExitCode.Credentials);
    expect(err.message).toMatch(/^no AWS credentials found for profile dev \(/);
    expect(err.message).toContain('aws sso login --profile dev');
  });

  it('any non-network failure while loading credentials -> 3', () => {
    const sso = Object.assign(new Error('The SSO session associated with this profile has expired.\nTo refresh run aws sso login.'), {
      name: 'TokenProviderError',
    });
    const err = classifyAwsError(sso, { operation: 'credentials' });
    expect(err.exitCode).toBe(ExitCode.Credentials);
    expect(err.message).toContain('could not load AWS credentials (The SSO session associated with this profile has expired. To refresh');
    expectOneLine(err);
    const stsDenied = classifyAwsError(serviceError('SomethingOdd', 'odd', 400), { operation: 'credentials' });
    expect(stsDenied.exitCode).toBe(ExitCode.Credentials);
  });

  it('ThrottlingException -> 6', () => {
    const err = classifyAwsError(serviceError('ThrottlingException', 'Rate exceeded'), start);
    expect(err.exitCode).toBe(ExitCode.Network);
    expect(err.message).toContain('throttling');
    expect(isTransientAwsError(err)).toBe(true);
  });

  it('DoesNotExistException on resume -> 9', () => {
    const err = classifyAwsError(serviceError('DoesNotExistException', 'Session s-1 does not exist'), {
      operation: 'ResumeSession',
      sessionId: 'alice-0123',
    });
    expect(err.exitCode).toBe(ExitCode.ConnectionLost);
    expect(err.message).toMatch(/^session alice-0123 no longer exists/);
    expect(isTransientAwsError(err)).toBe(false);
  });

  it('InternalServerError -> 1 with code and message, and is transient', () => {
    const err = classifyAwsError(serviceError('InternalServerError', 'boom', 500), start);
    expect(err.exitCode).toBe(ExitCode.Failure);
    expect(err.message).toBe('StartSession failed: HTTP 500 InternalServerError: boom; the service had a problem; try again shortly');
    expect(isTransientAwsError(err)).toBe(true);
  });

  it('an unknown code with HTTP 5xx is a fault on the service side, worth retrying', () => {
    const err = classifyAwsError(serviceError('SomethingBroke', 'down for a moment', 503), start);
    expect(err.exitCode).toBe(ExitCode.Failure);
    expect(err.message).toBe('StartSession failed: HTTP 503 SomethingBroke: down for a moment; the service had a problem; try again shortly');
    expect(isTransientAwsError(err)).toBe(true);
  });

  it('an endpoint that does not speak HTTP -> 6, naming it', () => {
    const raw = Object.assign(new Error('Parse Error: Expected HTTP/, RTSP/ or ICE/'), { code: 'HPE_INVALID_CONSTANT' });
    const err = classifyAwsError(raw, { ...start, endpoint: 'http://127.0.0.1:9' });
    expect(err.exitCode).toBe(ExitCode.Network);
    expect(err.message).toBe('cannot use the SSM endpoint http://127.0.0.1:9: it does not answer in HTTP (HPE_INVALID_CONSTANT); check --endpoint-url and AWS_ENDPOINT_URL_SSM, and any proxy or firewall in the way');
  });

  it('an HTML page instead of the API\'s JSON -> 6 without the SDK\'s internals; a 5xx one may pass', () => {
    const page = (status: number) =>
      Object.assign(serviceError('SyntaxError', `Unexpected token '<', "<html>down</html>" is not valid JSON\n  Deserialization error: to see the raw response, inspect the hidden field {error}.$response on this object.`, status));
    const e503 = classifyAwsError(page(503), { ...start, endpoint: 'https://vpce.example.test' });
    expect(e503.exitCode).toBe(ExitCode.Network);
    expect(e503.message).toBe(`cannot use the SSM endpoint https://vpce.example.test: it answered HTTP 503 with something other than the SSM API's reply (Unexpected token '<', "<html>down</html>" is not valid JSON); check --endpoint-url and AWS_ENDPOINT_URL_SSM, and any proxy or firewall in the way`);
    expect(isTransientAwsError(e503)).toBe(true);
    const e404 = classifyAwsError(page(404), start);
    expect(e404.exitCode).toBe(ExitCode.Network);
    expect(e404.message).toMatch(/^cannot use the SSM endpoint https:\/\/ssm\.eu-west-1\.amazonaws\.com: it answered HTTP 404 /);
    expect(e404.serviceFault).toBe(false);
  });

  it('a signature scoped to the wrong region -> 2 pointing at the region, not the key or the clock', () => {
    const err = classifyAwsError(serviceError('InvalidSignatureException', 'Credential should be scoped to a valid region.'), start);
    expect(err.exitCode).toBe(ExitCode.Usage);
    expect(err.message).toBe("AWS rejected the request's region eu-west-1 (InvalidSignatureException: Credential should be scoped to a valid region.); check --region, AWS_REGION and your profile's region against the endpoint");
  });

  it('a region name the SDK refuses -> 2', () => {
    const err = classifyAwsError(new Error('Region not accepted: region="not a region!" is not a valid hostname component.'), { operation: 'configuration' });
    expect(err.exitCode).toBe(ExitCode.Usage);
    expect(err.message).toMatch(/^the AWS region configured is not a valid region name \(Region not accepted: .*\); check --region/);
  });

  it('a credential with a line break in it -> 3 saying so', () => {
    const raw = Object.assign(new TypeError('Invalid character in header content ["x-amz-security-token"]'), { code: 'ERR_INVALID_CHAR' });
    const err = classifyAwsError(raw, start);
    expect(err.exitCode).toBe(ExitCode.Credentials);
    expect(err.message).toMatch(/^an AWS credential contains a character that cannot be sent in a request, such as a line break /);
  });

  it('unknown codes -> 1 with the code and message', () => {
    const err = classifyAwsError(serviceError('WeirdException', 'odd\nthing', 409), start);
    expect(err.exitCode).toBe(ExitCode.Failure);
    expect(err.message).toBe('StartSession failed: HTTP 409 WeirdException: odd thing; run with -vv for details');
    expect(isTransientAwsError(err)).toBe(false);
  });

  it('keeps the part of a namespaced __type after #', () => {
    const raw = { __type: 'com.amazonaws.ssm#TargetNotConnected', message: 'x', $metadata: { httpStatusCode: 400 } };
    expect(classifyAwsError(raw, start).exitCode).toBe(ExitCode.TargetUnavailable);
  });

  it('passes ProxyError through unchanged', () => {
    const original = new ProxyError(ExitCode.Protocol, 'already classified; nothing to do', 'X');
    expect(classifyAwsError(original, start)).toBe(original);
  });

  it('copes with non-Error values', () => {
    expect(classifyAwsError('a string', start).exitCode).toBe(ExitCode.Failure);
    expect(classifyAwsError(undefined, start).exitCode).toBe(ExitCode.Failure);
    expect(classifyAwsError(null, start).message).toContain('StartSession failed');
  });
});

describe('classifyAwsError: network errors', () => {
  const withEndpoint = { ...start, endpoint: 'https://vpce.example.test' };

  it.each(['ECONNREFUSED', 'ETIMEDOUT', 'EAI_AGAIN', 'ECONNRESET', 'EHOSTUNREACH'])('%s -> 6', (code) => {
    const err = classifyAwsError(systemError(code, `connect ${code} 10.0.0.1:443`), withEndpoint);
    expect(err.exitCode).toBe(ExitCode.Network);
    expect(err.message).toMatch(/^cannot reach the SSM endpoint https:\/\/vpce\.example\.test: /);
    expect(err.message).toContain(code);
    expect(err.message).toContain('check the region, your network and proxy settings');
    expect(isTransientAwsError(err)).toBe(true);
  });

  it('ENOTFOUND on the regional endpoint points at the region', () => {
    const err = classifyAwsError(
      systemError('ENOTFOUND', 'getaddrinfo ENOTFOUND ssm.eu-wst-1.amazonaws.com', { hostname: 'ssm.eu-wst-1.amazonaws.com' }),
      { ...start, region: 'eu-wst-1' },
    );
    expect(err.exitCode).toBe(ExitCode.Network);
    expect(err.message).toContain('"eu-wst-1" is probably not an AWS region');
    expect(err.message).toContain('https://ssm.eu-wst-1.amazonaws.com');
  });

  it('ENOTFOUND on a custom endpoint is a plain network error', () => {
    const err = classifyAwsError(systemError('ENOTFOUND', 'getaddrinfo ENOTFOUND vpce.example.test', { hostname: 'vpce.example.test' }), withEndpoint);
    expect(err.exitCode).toBe(ExitCode.Network);
    expect(err.message).not.toContain('not an AWS region');
  });

  it('SDK TimeoutError -> 6', () => {
    const timeout = Object.assign(new Error('the request socket did not establish a connection within 5000 ms'), { name: 'TimeoutError' });
    const err = classifyAwsError(timeout, start);
    expect(err.exitCode).toBe(ExitCode.Network);
    expect(err.message).toContain('no answer in time');
    expect(err.message).toContain('https://ssm.eu-west-1.amazonaws.com');
  });

  it('socket hang up -> 6', () => {
    expect(classifyAwsError(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }), start).exitCode).toBe(ExitCode.Network);
    expect(classifyAwsError(new Error('socket hang up'), start).exitCode).toBe(ExitCode.Network);
  });

  it('TLS trust failure suggests the CA bundle', () => {
    const err = classifyAwsError(systemError('SELF_SIGNED_CERT_IN_CHAIN', 'self-signed certificate in certificate chain'), start);
    expect(err.exitCode).toBe(ExitCode.Network);
    expect(err.message).toContain('AWS_CA_BUNDLE');
  });

  it('a network error that came with an HTTP status is not a socket problem', () => {
    expect(classifyAwsError(serviceError('ECONNRESET', 'odd', 502), start).exitCode).toBe(ExitCode.Failure);
  });
});

describe('classifyAwsError: messages never leak secrets', () => {
  it('redacts tokens and keys that appear in service text', () => {
    const leaky = serviceError(
      'WeirdException',
      'bad request {"TokenValue":"AAEAAESecretToken=="} aws_secret_access_key=wJalrXUtnFEMI X-Amz-Security-Token=FwoGZX',
    );
    const err = classifyAwsError(leaky, start);
    expect(err.message).not.toContain('AAEAAESecretToken');
    expect(err.message).not.toContain('wJalrXUtnFEMI');
    expect(err.message).not.toContain('FwoGZX');
  });

  it('truncates very long service messages', () => {
    const err = classifyAwsError(serviceError('WeirdException', 'x'.repeat(5000)), start);
    expect(err.message.length).toBeLessThan(500);
  });
});
