/** A non-zero result code of the vendor API as its typed error (SPEC §7). */
import {
  CredentialsRejectedError,
  DeviceKeyError,
  DeviceNotFoundError,
  DeviceOfflineError,
  ENDPOINT,
  InvalidParametersError,
  PlatformError,
  RESULT_CODE,
  TokenExpiredError,
  UnknownResultCodeError,
  type Endpoint,
} from './errors.js';

/** Maps a non-zero result code to its typed error, per endpoint (SPEC §7). */
export function resultCodeError(
  endpoint: Endpoint,
  code: number,
  vendorMessage: string | undefined,
  deviceId = '',
): PlatformError {
  switch (code) {
    case RESULT_CODE.tokenOrCredentials:
      return endpoint === ENDPOINT.token
        ? new CredentialsRejectedError(vendorMessage)
        : new TokenExpiredError(endpoint, vendorMessage, { afterRefresh: false });
    case RESULT_CODE.deviceNotFound:
      if (endpoint === ENDPOINT.token) break;
      return new DeviceNotFoundError(endpoint, deviceId, vendorMessage);
    case RESULT_CODE.endpointSpecific:
      // the platform also answers 3 for a wrong key on history and setting; its message tells which
      if (endpoint !== ENDPOINT.token && vendorMessage !== undefined && /device_key|key/i.test(vendorMessage)) {
        return new DeviceKeyError(endpoint, deviceId, vendorMessage);
      }
      if (endpoint === ENDPOINT.history) return new InvalidParametersError(endpoint, 'query', code, vendorMessage);
      if (endpoint === ENDPOINT.deviceSetting) return new DeviceOfflineError(deviceId, vendorMessage);
      if (endpoint === ENDPOINT.token) break;
      return new DeviceKeyError(endpoint, deviceId, vendorMessage);
    case RESULT_CODE.urlParameters:
      return new InvalidParametersError(endpoint, 'url', code, vendorMessage);
    case RESULT_CODE.bodyParameters:
      return new InvalidParametersError(endpoint, 'body', code, vendorMessage);
  }
  return new UnknownResultCodeError(endpoint, code, vendorMessage);
}
