/**
 * The vendor's result codes with the messages the simulator answers. Code 3 means different
 * things per endpoint (as on the real platform); code 6 is our own choice for the daily token
 * limit, which the vendor names but never gives a code for.
 */
export const CODE = {
  ok: 0,
  /** token endpoint: credentials rejected; device endpoints: token expired/unknown/revoked */
  tokenOrAuth: 1,
  noDevice: 2,
  /** device_key wrong (all device calls), query invalid (history), device offline (setting) */
  endpointSpecific: 3,
  urlParams: 4,
  bodyParams: 5,
  /** simulator decision: the token endpoint's daily call limit is exhausted */
  dailyLimit: 6,
} as const;

export const MESSAGE = {
  ok: 'ok',
  authFailed: '验证失败',
  tokenExpired: 'token过期',
  noDevice: '设备不存在',
  badDeviceKey: 'device_key不存在',
  badQuery: '查询参数非法',
  offline: '设备不在线',
  urlParams: 'URL参数非法',
  bodyParams: 'BODY参数非法',
  dailyLimit: '超过每日调用次数限制',
} as const;

/** Message of an arbitrary code (fault storms), vendor text where there is one. */
export function messageOf(code: number): string {
  switch (code) {
    case 0:
      return MESSAGE.ok;
    case 1:
      return MESSAGE.tokenExpired;
    case 2:
      return MESSAGE.noDevice;
    case 3:
      return MESSAGE.badDeviceKey;
    case 4:
      return MESSAGE.urlParams;
    case 5:
      return MESSAGE.bodyParams;
    case 6:
      return MESSAGE.dailyLimit;
    default:
      return `未知错误 ${code}`;
  }
}
