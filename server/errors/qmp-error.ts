/**
 * The error every layer throws for a refused request: QEMU's error class and its text,
 * which the QMP session turns into {"error": {"class", "desc"}}. It lives below the
 * protocol so that guests, SEV, KVM-facing code and the daemon can refuse in QEMU's words
 * without importing the QMP floor (server/qmp/).
 */
export type ErrorClass = 'GenericError' | 'CommandNotFound' | 'DeviceNotActive' | 'DeviceNotFound' | 'KVMMissingCap';

export class QmpError extends Error {
  constructor(readonly cls: ErrorClass, readonly desc: string) {
    super(desc);
    this.name = 'QmpError';
  }

  static generic(desc: string): QmpError {
    return new QmpError('GenericError', desc);
  }
}
