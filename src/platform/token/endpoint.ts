/**
 * The token call (`/v1/platform/token`). Only the token budget calls it: every call counts against
 * the platform's daily limit, so nothing else may hold this function.
 */
import { ENDPOINT, RESULT_CODE } from '../errors.js';
import { resultCodeError } from '../result-code-errors.js';
import { DEFAULT_HTTP_OPTIONS, requestJson, toInteger, type HttpOptions } from '../platform-request.js';
import { missing } from '../answers.js';

export interface TokenGrant {
  accessToken: string;
  /** seconds, as the platform sent it */
  expiresIn: number;
}

export type TokenEndpoint = (signal?: AbortSignal) => Promise<TokenGrant>;

export interface TokenEndpointOptions extends Pick<HttpOptions, 'timeoutMs' | 'fetch' | 'scrubber'> {
  baseUrl: string;
  platformKey: string;
  secretKey: string;
}

/**
 * One attempt, never retried here: whether another attempt is worth a token call is the budget's
 * decision. Code 1 becomes CredentialsRejectedError. The URL (it holds the keys) never appears in
 * an error.
 */
export function createTokenEndpoint(
  options: Partial<TokenEndpointOptions> & Pick<TokenEndpointOptions, 'baseUrl' | 'platformKey' | 'secretKey'>,
): TokenEndpoint {
  const http: HttpOptions = { ...DEFAULT_HTTP_OPTIONS, ...options, retries: 0 };
  http.scrubber?.add(options.platformKey);
  http.scrubber?.add(options.secretKey);
  const url = `${options.baseUrl.replace(/\/+$/, '')}/v1/platform/token?platform_key=${encodeURIComponent(options.platformKey)}&secret_key=${encodeURIComponent(options.secretKey)}`;
  return async (signal) => {
    const endpoint = ENDPOINT.token;
    const answer = await requestJson({ endpoint, url, signal, retries: 0 }, http);
    if (answer.code !== RESULT_CODE.ok) throw resultCodeError(endpoint, answer.code, answer.message);
    const token = answer.body.access_token;
    if (typeof token !== 'string' || token.trim() === '')
      throw missing(endpoint, 'access_token', token === undefined ? undefined : '(not a non-empty string)');
    http.scrubber?.add(token);
    const expiresIn = toInteger(answer.body.expires_in);
    if (expiresIn === undefined || expiresIn <= 0) throw missing(endpoint, 'expires_in', answer.body.expires_in);
    return { accessToken: token, expiresIn };
  };
}
